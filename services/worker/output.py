"""One job attempt's live output (DESIGN §10): what its executor writes, coalesced into
output messages and handed to the `OutputSink`.

Coalescing: a chunk waits until `every` seconds (50 ms) have passed since the first chunk
still waiting, or until `max_chunk` characters (8 KiB) wait, whichever comes first, so a
chatty command sends at most ~20 messages a second unless it writes more than 8 KiB in
that time; a change of stream (stdout to stderr) sends what waits first, so the order holds.
A job sends at most `max_total` characters (1 MiB) live; the rest is only in its result.

What is sent has every value that looks like a credential masked (DESIGN §12). A secret can
be cut in two by the pipe, so the end of a line that more output could still turn into one
(its last three words, or a private key block not yet ended) waits for what comes next, or for
the job's end, before it is sent (at most `HOLD` characters wait).

Output must never block or fail the job: `write` only buffers, and a send that fails is
counted and logged, never raised.
"""

from __future__ import annotations

import asyncio
import logging

from adapters.clock import SYSTEM_CLOCK
from domain.redaction import redact_text, unfinished_at
from domain.wire_output import OutputStream, encode_output
from services.ports.clock import Clock
from services.ports.output import OutputSink

log = logging.getLogger("baker.worker")

EVERY = 0.05
MAX_CHUNK = 8192
MAX_TOTAL = 1 << 20
HOLD = 65_536  # a private key block is far smaller


class JobOutput:
    def __init__(
        self,
        sink: OutputSink,
        job_id: str,
        attempt: int,
        *,
        clock: Clock = SYSTEM_CLOCK,
        every: float = EVERY,
        max_chunk: int = MAX_CHUNK,
        max_total: int = MAX_TOTAL,
    ) -> None:
        self._sink = sink
        self._job_id = job_id
        self._attempt = attempt
        self._clock = clock
        self._every = every
        self._max_chunk = max_chunk
        self._room = max_total
        self._stream: OutputStream = "text"
        self._waiting: list[str] = []
        self._size = 0
        self._timer: asyncio.Future[None] | None = None
        self._closed = False
        self.seq = 0
        self.failed = 0  # messages the sink refused
        self.dropped = 0  # characters past `max_total`, or written after `close`

    def write(self, stream: OutputStream, data: str) -> None:
        """Buffer a chunk; it is sent within `every` seconds (at once when enough waits)."""
        if self._closed or len(data) > self._room:
            kept = 0 if self._closed else self._room
            self.dropped += len(data) - kept
            data = data[:kept]
        if not data:
            return
        self._room -= len(data)
        if self._waiting and stream != self._stream:
            self.flush(whole=True)
        self._stream = stream
        self._waiting.append(data)
        self._size += len(data)
        if self._size >= self._max_chunk:
            self.flush()
        elif self._timer is None:
            # The interval counts from now, not from when the timer task first runs.
            self._timer = asyncio.ensure_future(self._flush_at(self._clock.now() + self._every))

    def flush(self, *, whole: bool = False) -> None:
        """Send what waits now, redacted, in messages of at most `max_chunk` characters; an
        unfinished end waits for more (unless `whole`, or it has grown past `HOLD`)."""
        if not self._waiting:
            return
        text = "".join(self._waiting)
        self._waiting.clear()
        cut = len(text) if whole or len(text) >= HOLD else unfinished_at(text)
        rest = text[cut:]
        self._waiting = [rest] if rest else []
        self._size = len(rest)
        ready = redact_text(text[:cut])
        for start in range(0, len(ready), self._max_chunk):
            self._send(ready[start : start + self._max_chunk])

    def close(self) -> None:
        """Send what waits; later writes are dropped (the job has ended)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self.flush(whole=True)
        self._closed = True
        if self.failed or self.dropped:
            log.info(
                "live output: %d messages not sent, %d characters dropped",
                self.failed, self.dropped, extra={"job_id": self._job_id},
            )  # fmt: skip

    async def _flush_at(self, due: float) -> None:
        await self._clock.sleep(due - self._clock.now())
        self._timer = None
        self.flush()

    def _send(self, data: str) -> None:
        self.seq += 1
        payload = encode_output(self._job_id, self._attempt, self.seq, self._stream, data)
        try:
            self._sink.send(self._job_id, payload)
        except Exception as exc:  # best effort: the job goes on, its result has everything
            self.failed += 1
            if self.failed == 1:
                log.warning("live output not sent: %s", exc, extra={"job_id": self._job_id})
