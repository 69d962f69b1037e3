"""Daemons and entry points: brain, worker, projector, monitor, CLI; wired in bootstrap."""
