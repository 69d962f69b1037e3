"""A stream or KV bucket whose replicas are not `BAKER_REPLICAS` (DESIGN §13).

Unlike the other fields provisioning compares, the replica count may change on a live stream:
JetStream adds or removes peers in place, the new ones catch up from the leader, and the
stream's messages, its consumers (which inherit the stream's replicas) and their positions are
kept. So `baker provision` changes it when asked (`scale=True`); a daemon starting up only
reports it, since two daemons started with different `BAKER_REPLICAS` would otherwise resize
the streams back and forth.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING, Any

from adapters.nats import jsapi
from adapters.nats.message import JetStreamError

if TYPE_CHECKING:
    from adapters.nats.client import Client

log = logging.getLogger("baker.provision")
FIELD = "num_replicas"
KV_PREFIX = "KV_"


def what(stream: str) -> str:
    """`stream BAKER_EVENTS`, or `bucket baker-cancels (stream KV_baker-cancels)`."""
    if stream.startswith(KV_PREFIX):
        return f"bucket {stream.removeprefix(KV_PREFIX)} (stream {stream})"
    return f"stream {stream}"


def count(config: dict[str, Any]) -> int:
    """The replicas a configuration asks for (the server's 0 means 1)."""
    return int(config.get(FIELD) or 1)


def mismatch(stream: str, have: int, want: int) -> str:
    """What is wrong and the ways to fix it, for a stream that differs in replicas only."""
    return (
        f"{what(stream)} has {have} replica(s), BAKER_REPLICAS wants {want}: run "
        f"`BAKER_REPLICAS={want} baker provision` to change it in place (messages and "
        f"consumers are kept; or `nats stream edit {stream} --replicas {want}`), "
        f"or set BAKER_REPLICAS={have} to use it as it is"
    )


async def scale(client: Client, have: dict[str, Any], want: int) -> None:
    """Change the stream's replicas in place; `ScaleRefused` names why the server said no."""
    stream, before = str(have["name"]), count(have)
    try:
        await jsapi.update_stream(client, {**have, FIELD: want})
    except JetStreamError as exc:
        raise ScaleRefused(stream, before, want, exc.description) from None
    log.info("%s: replicas %d -> %d (new replicas catch up from the leader)",
             what(stream), before, want)  # fmt: skip


class ScaleRefused(RuntimeError):
    def __init__(self, stream: str, have: int, want: int, reason: str) -> None:
        hint = (
            f"BAKER_REPLICAS={want} needs a JetStream cluster of at least {want} running nodes "
            "(`baker cluster up` starts one on this machine)"
            if want > have
            else "see the server's reason"
        )
        super().__init__(
            f"cannot change {what(stream)} from {have} to {want} replica(s): the server says "
            f"{reason!r}; {hint}"
        )
