"""Publishing to JetStream and waiting for the PubAck, retrying silence with the same headers.

With a `Nats-Msg-Id` header a retry of a publish that was in fact stored within the duplicate
window is not stored again: it is answered as a duplicate, or (with an expected-sequence
header, which 2.11 and later check first) refused as a wrong last sequence, which the caller
then recognises by the id on the subject's last message. So retrying is always safe, and
every publish here retries what `errors.TRANSIENT` says may simply be sent again (no answer
in time, the connection dropped, nobody listening yet, the reconnect buffer full) until
`retry_for` has passed. A refusal (`JetStreamError`, with the server's `err_code`) is never
retried.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from adapters.nats.errors import TRANSIENT, ConnectionClosed, NatsError
from adapters.nats.message import JetStreamError, Msg, PubAck, parse_pub_ack

if TYPE_CHECKING:
    from adapters.nats.client import Client

__all__ = ["JetStreamError", "JetStreamPublisher", "Publish", "PublishUnavailable"]
Publish = tuple[str, bytes, dict[str, str] | None]  # subject, payload, headers


class PublishUnavailable(NatsError):
    """JetStream did not answer a publish within the retry budget (or the client closed)."""


class JetStreamPublisher:
    def __init__(
        self,
        client: Client,
        *,
        request_timeout: float = 2.0,
        retry_for: float = 30.0,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self.client = client
        self.timeout = request_timeout
        self.retry_for = retry_for
        self.retries = 0
        self._on_retry = on_retry

    def send(
        self, subject: str, payload: bytes, headers: dict[str, str] | None
    ) -> asyncio.Future[Msg]:
        """Publish once with a reply subject; the future gets the answer (no retry)."""
        return self.client.request(subject, payload, headers=headers, timeout=self.timeout)

    async def publish(
        self, subject: str, payload: bytes, headers: dict[str, str] | None = None
    ) -> PubAck:
        """The PubAck; `JetStreamError` (refused) or `PublishUnavailable`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.retry_for
        delay = 0.05
        while True:
            try:
                if self.client.congested:  # the socket is behind: let it drain first
                    await self.client.writable()
                msg = await self.send(subject, payload, headers)
            except TRANSIENT as exc:
                if loop.time() >= deadline:
                    raise PublishUnavailable(f"{subject}: no answer ({exc!r})") from exc
                self._retrying()
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)
                continue
            except ConnectionClosed as exc:
                raise PublishUnavailable(f"{subject}: the NATS connection is closed") from exc
            return parse_pub_ack(subject, msg)

    def _retrying(self) -> None:
        self.retries += 1
        if self._on_retry is not None:
            self._on_retry()

    async def publish_all(self, items: Sequence[Publish]) -> list[PubAck]:
        """Publish `items` back to back (all on the wire before the first answer is awaited)
        and return their PubAcks in order; one whose answer does not come is sent again on
        its own, as `publish` does (same headers, so it is never stored twice)."""
        sent: list[asyncio.Future[Msg] | None] = []
        try:
            for subject, payload, headers in items:
                try:
                    if self.client.congested:
                        await self.client.writable()
                    sent.append(self.send(subject, payload, headers))
                except TRANSIENT:
                    sent.append(None)
                except ConnectionClosed as exc:
                    raise PublishUnavailable(f"{subject}: the NATS connection is closed") from exc
            return [
                await self._answer_or_retry(waiting, *item)
                for waiting, item in zip(sent, items, strict=True)
            ]
        except BaseException:  # answers not taken (a refusal stopped us, or a cancel)
            abandon(sent)  # (not on success: every answer was taken, nothing to forget)
            raise

    async def _answer_or_retry(
        self,
        waiting: asyncio.Future[Msg] | None,
        subject: str,
        payload: bytes,
        headers: dict[str, str] | None,
    ) -> PubAck:
        if waiting is not None:
            try:
                return parse_pub_ack(subject, await waiting)
            except TRANSIENT:
                self._retrying()
        return await self.publish(subject, payload, headers)


def abandon(futures: Sequence[asyncio.Future[Msg] | None]) -> None:
    """Forget answers no longer wanted: cancel the pending, and mark a failure retrieved so
    asyncio does not report it as lost."""
    for future in futures:
        if future is None:
            continue
        if not future.done():
            future.cancel()
        elif not future.cancelled():
            future.exception()
