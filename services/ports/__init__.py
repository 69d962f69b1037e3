"""Ports between the services and the world outside (NATS, mostly): small protocols in our own
types, implemented by thin adapters in `adapters/` and by in-memory fakes in `tests/fakes/`.

`jobs` holds the job queue's ports (dispatch, work source, report sink, ingest source, cancel
signals, advisories); `bus` the core publish/subscribe and request/reply port of heartbeats,
extensions and tasks; `topics` one core subject as the Brain's handoff and lease watch use
it, and the heartbeat a daemon is handed; `leader` the leader record; `clock` time.
"""
