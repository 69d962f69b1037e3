"""Ports between the services and the world outside (NATS, mostly): small protocols in our own
types, implemented by thin adapters in `adapters/` and by in-memory fakes in `tests/fakes/`.

`jobs` holds the job queue's ports (dispatch, work source, report sink, the ingest's and the
task service's delivery sources, cancel signals, advisories); `bus` the core publish/subscribe
and request/reply port of heartbeats, extensions and tasks; `topics` one subject of the bus as
the Brain's handoff and lease watch use it (`services.topic.BusTopic`), and the heartbeat a
daemon is handed; `leader` the leader record; `clock` time (`adapters.clock` is the real one,
`tests.fakes.clock.FakeClock` the one tests move by hand).
"""
