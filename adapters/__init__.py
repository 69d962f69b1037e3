"""Thin I/O at the edges: NATS JetStream, SQLite, HTTP, subprocesses, Anthropic, OTel."""
