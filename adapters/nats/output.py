"""Live job output (`services.ports.output`) over core NATS: `baker.jobs.output.<jobId>`,
outside every stream (DESIGN §10)."""

from __future__ import annotations

from collections.abc import Callable

from adapters.nats.client import Client
from adapters.nats.errors import ConnectionClosed
from domain.wire_output import output_subject


class NatsOutput:
    """Both sides: a worker's `OutputSink` and the API's `OutputFeed`."""

    def __init__(self, client: Client) -> None:
        self.nc = client

    def send(self, job_id: str, payload: bytes) -> None:
        # While reconnecting, the client's buffer is kept for what must arrive (reports,
        # acks); output is worthless late, so it is refused rather than buffered.
        if not self.nc.is_connected:
            raise ConnectionClosed("not connected to NATS: live output dropped")
        self.nc.publish(output_subject(job_id), payload)

    async def follow(self, job_id: str, on_message: Callable[[bytes], None]) -> _Following:
        sub = self.nc.subscribe(output_subject(job_id), lambda msg: on_message(msg.data))
        return _Following(sub.unsubscribe)


class _Following:
    def __init__(self, stop: Callable[[], None]) -> None:
        self._stop = stop

    async def unsubscribe(self) -> None:
        self._stop()
