"""NATS and JetStream: connection, stream provisioning, event store, job queue."""
