"""Live job output in memory: the `services.ports.output` port without a server.

`sent` keeps every message sent (decoded), in order; followers of a job hear its messages
as they are sent; `fail_with` makes every `send` raise, as a lost connection would.
"""

from __future__ import annotations

from collections.abc import Callable

from domain.wire_output import OutputMessage, decode_output


class FakeOutput:
    def __init__(self) -> None:
        self.sent: list[OutputMessage] = []
        self.fail_with: Exception | None = None
        self._followers: dict[str, list[Callable[[bytes], None]]] = {}

    def send(self, job_id: str, payload: bytes) -> None:
        if self.fail_with is not None:
            raise self.fail_with
        msg = decode_output(payload)  # what goes out must be a valid message
        assert msg.id == job_id, f"message of {msg.id} sent as {job_id}"
        self.sent.append(msg)
        for on_message in list(self._followers.get(job_id, ())):
            on_message(payload)

    async def follow(self, job_id: str, on_message: Callable[[bytes], None]) -> _Following:
        self._followers.setdefault(job_id, []).append(on_message)
        return _Following(self, job_id, on_message)

    def text(self, job_id: str, stream: str | None = None) -> str:
        """Everything sent for `job_id` (on one stream when given), joined."""
        return "".join(m.data for m in self.sent if m.id == job_id and stream in (None, m.stream))


class _Following:
    def __init__(self, fake: FakeOutput, job_id: str, on_message: Callable[[bytes], None]) -> None:
        self._fake, self._job_id, self._on_message = fake, job_id, on_message

    async def unsubscribe(self) -> None:
        followers = self._fake._followers.get(self._job_id, [])
        if self._on_message in followers:
            followers.remove(self._on_message)
