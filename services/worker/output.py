"""One job attempt's live output (DESIGN §10): what its executor writes, coalesced into
output messages and handed to the `OutputSink`.

Coalescing: a chunk waits until `every` seconds (50 ms) have passed since the first chunk
still waiting, or until `max_chunk` characters (8 KiB) wait, whichever comes first, so a
chatty command sends at most ~20 messages a second unless it writes more than 8 KiB in
that time; a change of stream (stdout to stderr) sends what waits first, so the order holds.
A job sends at most `max_total` characters (1 MiB) live; the rest is only in its result.

What is sent has every value that looks like a credential masked (DESIGN §12). A secret can
be cut in two by the pipe, so the end of a line that more output could still turn into one
(its last three words, or a private key block not yet ended) waits for what comes next, before
it is sent (at most `HOLD` characters wait) — but never longer than `hold_idle` seconds (0.5 s)
without more output, nor past the job's end: a model that pauses mid-sentence must not leave
its last words unseen. Released alone, held text is still masked (a key cut short by a pause
is masked as far as it goes).

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
HOLD_IDLE = 0.5


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
        hold_idle: float = HOLD_IDLE,
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
        self._hold_idle = hold_idle
        self._release: asyncio.Future[None] | None = None
        self._last_write = 0.0  # clock time of the last chunk: held text waits from there
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
        self._last_write = self._clock.now()
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
        if rest and self._release is None and not self._closed:
            self._release = asyncio.ensure_future(self._release_when_idle())

    def close(self) -> None:
        """Send what waits; later writes are dropped (the job has ended)."""
        for pending in (self._timer, self._release):
            if pending is not None:
                pending.cancel()
        self._timer = self._release = None
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

    async def _release_when_idle(self) -> None:
        """What still waits goes out `hold_idle` seconds after the last chunk came."""
        while (left := self._last_write + self._hold_idle - self._clock.now()) > 0:
            await self._clock.sleep(left)
        self._release = None
        self.flush(whole=True)

    def _send(self, data: str) -> None:
        self.seq += 1
        payload = encode_output(self._job_id, self._attempt, self.seq, self._stream, data)
        try:
            self._sink.send(self._job_id, payload)
        except Exception as exc:  # best effort: the job goes on, its result has everything
            self.failed += 1
            if self.failed == 1:
                log.warning("live output not sent: %s", exc, extra={"job_id": self._job_id})
