"""One contract for the bus port (`services.ports.bus`): the in-memory fake and the NATS
adapter on a real nats-server both subclass it."""

from __future__ import annotations

import abc
import asyncio
from collections import Counter

import pytest

from domain.bus import BusClosed, Message, NoResponders
from services.ports.bus import Bus, respond
from tests.polling import until


class Inbox:
    """A handler that keeps what it receives."""

    def __init__(self) -> None:
        self.got: list[Message] = []

    async def __call__(self, msg: Message) -> None:
        self.got.append(msg)

    def subjects(self) -> list[str]:
        return [m.subject for m in self.got]


class BusContract(abc.ABC):
    """Subclasses provide the `bus` fixture and `close(bus)`."""

    @abc.abstractmethod
    async def close(self, bus: Bus) -> None:
        """Close the bus's connection."""

    async def test_a_message_reaches_its_subscriber_with_data_and_headers(self, bus: Bus) -> None:
        inbox = Inbox()
        await bus.subscribe("orders.created", inbox)
        await bus.flush()
        await bus.publish("orders.created", b"one", {"traceparent": "00-abc-def-01"})
        await bus.publish("orders.created", b"two")
        await until(lambda: len(inbox.got) == 2, "both messages")
        first, second = inbox.got
        assert (first.subject, first.data, first.reply) == ("orders.created", b"one", "")
        assert first.headers is not None and first.headers["traceparent"] == "00-abc-def-01"
        assert second.data == b"two" and not second.headers

    async def test_wildcards_match_one_token_or_the_rest(self, bus: Bus) -> None:
        star, rest = Inbox(), Inbox()
        await bus.subscribe("a.*", star)
        await bus.subscribe("a.>", rest)
        await bus.flush()
        for subject in ("a", "a.b.c", "b.x", "a.b", "aa.b", "a.end"):
            await bus.publish(subject, b"")
        await until(lambda: "a.end" in star.subjects() and "a.end" in rest.subjects(), "a.end")
        assert star.subjects() == ["a.b", "a.end"]
        assert rest.subjects() == ["a.b.c", "a.b", "a.end"]

    async def test_a_handler_gets_one_message_at_a_time_in_order(self, bus: Bus) -> None:
        running, most, seen = 0, 0, []

        async def slow(msg: Message) -> None:
            nonlocal running, most
            running += 1
            most = max(most, running)
            await asyncio.sleep(0)  # a turn of the loop: another message could start now
            seen.append(int(msg.data))
            running -= 1

        await bus.subscribe("work", slow)
        await bus.flush()
        for i in range(50):
            await bus.publish("work", str(i).encode())
        await until(lambda: len(seen) == 50, "fifty messages handled")
        assert seen == list(range(50)) and most == 1

    async def test_a_failing_handler_loses_only_that_message(self, bus: Bus) -> None:
        seen: list[bytes] = []

        async def fragile(msg: Message) -> None:
            if msg.data == b"bad":
                raise ValueError("cannot handle this one")
            seen.append(msg.data)

        await bus.subscribe("fragile", fragile)
        await bus.flush()
        for data in (b"1", b"bad", b"2"):
            await bus.publish("fragile", data)
        await until(lambda: seen == [b"1", b"2"], "the good messages")

    async def test_a_queue_group_shares_the_messages(self, bus: Bus) -> None:
        first, second, everyone = Inbox(), Inbox(), Inbox()
        await bus.subscribe("jobs", first, queue="workers")
        await bus.subscribe("jobs", second, queue="workers")
        await bus.subscribe("jobs", everyone)
        await bus.flush()
        for i in range(40):
            await bus.publish("jobs", str(i).encode())
        await until(lambda: len(first.got) + len(second.got) == 40, "every message taken once")
        await until(lambda: len(everyone.got) == 40, "the plain subscriber saw all")
        taken = Counter(m.data for m in first.got + second.got)
        assert set(taken.values()) == {1} and len(taken) == 40

    async def test_unsubscribing_stops_delivery(self, bus: Bus) -> None:
        gone, staying = Inbox(), Inbox()
        sub = await bus.subscribe("news", gone)
        await bus.subscribe("news", staying)
        await bus.flush()
        await bus.publish("news", b"1")
        await until(lambda: len(gone.got) == 1, "the first message")
        await sub.unsubscribe()
        await bus.flush()
        await bus.publish("news", b"2")
        await until(lambda: len(staying.got) == 2, "the second message, elsewhere")
        assert [m.data for m in gone.got] == [b"1"]

    async def test_request_and_reply(self, bus: Bus) -> None:
        async def echo(msg: Message) -> None:
            assert msg.reply, "a request carries a reply subject"
            tag = (msg.headers or {}).get("tag", "")
            await respond(bus, msg, msg.data.upper() + tag.encode())

        await bus.subscribe("echo", echo)
        await bus.flush()
        answer = await bus.request("echo", b"hi", timeout=5, headers={"tag": "!"})
        assert answer.data == b"HI!"
        answers = await asyncio.gather(
            *(bus.request("echo", str(i).encode(), timeout=5) for i in range(10))
        )
        assert [a.data for a in answers] == [str(i).encode() for i in range(10)]

    async def test_a_request_nobody_listens_to_has_no_responders(self, bus: Bus) -> None:
        with pytest.raises(NoResponders):
            await bus.request("nobody.here", b"", timeout=5)

    async def test_a_request_nobody_answers_times_out(self, bus: Bus) -> None:
        silent = Inbox()
        await bus.subscribe("silent", silent)
        await bus.flush()
        with pytest.raises(TimeoutError):
            await bus.request("silent", b"?", timeout=0.2)
        assert silent.subjects() == ["silent"]

    async def test_respond_to_a_plain_message_sends_nothing(self, bus: Bus) -> None:
        replies = Inbox()
        await bus.subscribe(">", replies)
        await bus.flush()
        await respond(bus, Message("plain", b""), b"ignored")
        await bus.publish("marker", b"")
        await until(lambda: replies.subjects() == ["marker"], "only the marker")

    async def test_a_closed_bus_refuses_to_send(self, bus: Bus) -> None:
        assert bus.connected
        await self.close(bus)
        assert not bus.connected
        with pytest.raises(BusClosed):
            await bus.publish("after.close", b"")
        with pytest.raises(BusClosed):
            await bus.request("after.close", b"", timeout=1)
