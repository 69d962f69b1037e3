"""What our NATS client raises. `TRANSIENT` are the errors after which the same request may
simply be sent again (with the same `Nats-Msg-Id`, a JetStream publish is never stored twice)."""

from __future__ import annotations


class NatsError(Exception):
    """Anything our NATS client reports."""


class NatsUnavailable(NatsError, ConnectionError):
    """The first connection could not be made in time; the message says why."""


class ServerTooOld(NatsUnavailable):
    """The server answered, but it is older than the version we need (DESIGN §9)."""


class AuthorizationError(NatsError):
    """The server refused our credentials (an attempt ends; the message is the server's)."""


class PermissionDenied(NatsError):
    """The server refused one publish or subscription; the connection stays up."""


class ConnectionClosed(NatsError):
    """The client was closed: nothing more can be sent or awaited on it."""


class ConnectionLost(NatsError, ConnectionError):
    """The connection dropped while a request was in flight; its answer will not come. The
    client reconnects by itself: send the request again."""


class RequestTimeout(NatsError, TimeoutError):
    """No answer within the request's timeout."""


class NoResponders(NatsError):
    """Nobody subscribes to the subject requested (the server's 503 status)."""


class OutboundBufferFull(NatsError):
    """Too much is waiting to be written while the connection is down; try again later."""


class FetchFailed(NatsError):
    """A pull request was refused (a status other than no messages, timeout or conflict)."""


TRANSIENT = (RequestTimeout, ConnectionLost, NoResponders, OutboundBufferFull)
