"""An in-memory bus: the `services.ports.bus` port without a server, for unit tests.

It keeps the port's contract (`tests/contract/bus_contract.py` runs on it and on the NATS
adapter): `*`/`>` wildcards, queue groups, handlers awaited one message at a time in order,
request/reply with no-responders and timeouts. On top, for tests:

- `published` records every message sent (requests and answers included);
- `await bus.settled()` returns once every message sent so far has been handled (so a test
  knows "nothing more is coming" without sleeping);
- `errors` collects what handlers raised (the bus logs and carries on, as a client does);
- with a `clock`, request timeouts run on it (`tests.fakes.clock.FakeClock`), not on real time.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass, field

from domain.bus import BusClosed, Message, NoResponders
from services.ports.bus import Handler
from services.ports.clock import Clock

log = logging.getLogger("tests.fakes.bus")


def matches(pattern: str, subject: str) -> bool:
    """NATS subject matching: `*` is one token, `>` one or more trailing tokens."""
    want, have = pattern.split("."), subject.split(".")
    for i, token in enumerate(want):
        if token == ">":
            return len(have) > i
        if i >= len(have) or (token != "*" and token != have[i]):
            return False
    return len(want) == len(have)


def _check(subject: str, *, wildcards: bool) -> None:
    tokens = subject.split(".")
    if not subject or any(not t or " " in t for t in tokens):
        raise ValueError(f"invalid subject {subject!r}")
    if not wildcards and any(t in ("*", ">") for t in tokens):
        raise ValueError(f"cannot publish to a wildcard subject {subject!r}")
    if ">" in tokens[:-1]:
        raise ValueError(f"'>' must be the last token in {subject!r}")


@dataclass(eq=False)
class FakeSubscription:
    bus: FakeBus
    subject: str
    queue: str
    handler: Handler
    inbox: asyncio.Queue[Message] = field(default_factory=asyncio.Queue)
    busy: bool = False
    closed: bool = False
    task: asyncio.Task[None] | None = None

    async def unsubscribe(self) -> None:
        self.bus._remove(self)

    async def pump(self) -> None:
        while not self.closed:
            msg = await self.inbox.get()
            self.busy = True
            try:
                await self.handler(msg)
            except Exception as exc:  # one message lost, the subscription goes on
                self.bus.errors.append(exc)
                log.exception("handler on %s failed", self.subject)
            finally:
                self.busy = False


class FakeBus:
    def __init__(self, clock: Clock | None = None) -> None:
        self.clock = clock
        self.published: list[Message] = []
        self.errors: list[Exception] = []
        self._subs: list[FakeSubscription] = []
        self._turns: dict[str, itertools.count[int]] = {}
        self._inboxes = itertools.count(1)
        self._closed = False

    @property
    def connected(self) -> bool:
        return not self._closed

    async def publish(
        self, subject: str, data: bytes = b"", headers: Mapping[str, str] | None = None
    ) -> None:
        self._open(subject)
        _check(subject, wildcards=False)
        self._deliver(Message(subject, data, dict(headers) if headers else None))

    async def subscribe(
        self, subject: str, handler: Handler, *, queue: str = ""
    ) -> FakeSubscription:
        self._open(subject)
        _check(subject, wildcards=True)
        sub = FakeSubscription(self, subject, queue, handler)
        sub.task = asyncio.create_task(sub.pump(), name=f"fake-bus-{subject}")
        self._subs.append(sub)
        return sub

    async def request(
        self,
        subject: str,
        data: bytes = b"",
        *,
        timeout: float,
        headers: Mapping[str, str] | None = None,
    ) -> Message:
        self._open(subject)
        _check(subject, wildcards=False)
        answer: asyncio.Future[Message] = asyncio.get_running_loop().create_future()

        async def on_answer(msg: Message) -> None:
            if not answer.done():
                answer.set_result(msg)

        inbox = await self.subscribe(f"_INBOX.fake.{next(self._inboxes)}", on_answer)
        try:
            msg = Message(subject, data, dict(headers) if headers else None, inbox.subject)
            if self._deliver(msg) == 0:
                raise NoResponders(f"nobody listens on {subject}")
            return await self._wait(answer, timeout, subject)
        finally:
            await inbox.unsubscribe()

    async def flush(self, timeout: float = 5.0) -> None:
        self._open("flush")
        await asyncio.sleep(0)  # subscriptions are in place at once; nothing to wait for

    async def settled(self, within: float = 10.0) -> None:
        """Return once every subscription has handled everything delivered to it (also what
        its handlers published meanwhile). A handler still busy after `within` seconds of real
        time is stuck (waiting on a fake clock nobody advances, say): that fails the test."""
        deadline = time.monotonic() + within
        while busy := [s.subject for s in self._subs if s.busy or not s.inbox.empty()]:
            assert time.monotonic() < deadline, f"handlers on {busy} still busy after {within}s"
            await asyncio.sleep(0)  # give the handlers a turn of the loop; no time passes

    async def close(self) -> None:
        """Close the connection: every call after this raises `BusClosed`."""
        self._closed = True
        for sub in list(self._subs):
            self._remove(sub)

    def subjects(self, pattern: str = ">") -> list[str]:
        """Subjects of the published messages that match `pattern`, in order."""
        return [m.subject for m in self.published if matches(pattern, m.subject)]

    # --- inside ---------------------------------------------------------------------------

    def subscribed(self, subject: str) -> int:
        """How many live subscriptions would hear a message on `subject`."""
        return sum(1 for sub in self._subs if matches(sub.subject, subject))

    def _open(self, what: str) -> None:
        if self._closed:
            raise BusClosed(f"{what}: the fake bus is closed")

    def _deliver(self, msg: Message) -> int:
        """Queue `msg` for every matching subscription (one per queue group); how many got it."""
        self.published.append(msg)
        plain: list[FakeSubscription] = []
        groups: dict[str, list[FakeSubscription]] = {}
        for sub in self._subs:
            if matches(sub.subject, msg.subject):
                (groups.setdefault(sub.queue, []) if sub.queue else plain).append(sub)
        chosen = list(plain)
        for queue, members in groups.items():  # round robin: each member gets its share
            turn = next(self._turns.setdefault(queue, itertools.count()))
            chosen.append(members[turn % len(members)])
        for sub in chosen:
            sub.inbox.put_nowait(msg)
        return len(chosen)

    def _remove(self, sub: FakeSubscription) -> None:
        sub.closed = True
        with contextlib.suppress(ValueError):
            self._subs.remove(sub)
        if sub.task is not None and sub.task is not asyncio.current_task():
            sub.task.cancel()

    async def _wait(self, answer: asyncio.Future[Message], timeout: float, subject: str) -> Message:
        if self.clock is None:
            try:
                return await asyncio.wait_for(asyncio.shield(answer), timeout)
            except TimeoutError:
                raise TimeoutError(f"no answer on {subject} within {timeout:g}s") from None
        timer = asyncio.ensure_future(self.clock.sleep(timeout))
        try:
            await asyncio.wait({answer, timer}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            timer.cancel()
        if not answer.done():
            raise TimeoutError(f"no answer on {subject} within {timeout:g}s")
        return answer.result()
