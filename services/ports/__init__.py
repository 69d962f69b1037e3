"""Ports between the services and the world outside (NATS, mostly): small protocols in our own
types, implemented by thin adapters in `adapters/` and by in-memory fakes in `tests/fakes/`.

`jobs` holds the job queue's ports (dispatch, work source, report sink, ingest source); `bus`
the core publish/subscribe and request/reply port of heartbeats, extensions and tasks.
"""
