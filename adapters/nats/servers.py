"""Where and as whom to connect: the server pool, credentials and the CONNECT options.

URLs come comma-separated (`BAKER_NATS_URL`), with a user and password or a token in them;
a creds file (a user JWT and its nkey seed, or an nkey seed alone) needs the `nkeys` package
to sign the server's nonce and is refused with a clear error without it. Servers the cluster
announces (`connect_urls` in INFO) join the pool. Each server has its own back-off, so one
that is down does not slow reconnecting to the others.
"""

from __future__ import annotations

import base64
import importlib
import random
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from adapters.nats.errors import NatsError

DEFAULT_PORT = 4222
LANG = "python-baker"
VERSION = "1.0"


def redact_url(url: str) -> str:
    """The URL with any user:password@ or token@ replaced, safe for logs."""
    return re.sub(r"//[^@/]*@", "//***@", url)


@dataclass
class Server:
    host: str
    port: int
    user: str | None = None
    password: str | None = None
    token: str | None = None
    announced: bool = False  # learnt from INFO, not configured
    failures: int = 0
    retry_at: float = 0.0  # loop time before which we do not dial it again

    @property
    def url(self) -> str:
        """Safe for logs: credentials redacted."""
        auth = "***@" if self.user or self.token else ""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"nats://{auth}{host}:{self.port}"


def parse_url(url: str) -> Server:
    """One `nats://[user:password@|token@]host[:port]` (scheme optional)."""
    text = url.strip()
    if "://" not in text:
        text = f"nats://{text}"
    parts = urlsplit(text)
    if parts.scheme != "nats":
        raise ValueError(
            f"unsupported NATS URL scheme {parts.scheme!r} in {redact_url(url)}: "
            "only nats:// (plain TCP) is supported by this client"
        )
    try:
        port = parts.port or DEFAULT_PORT
    except ValueError:
        raise ValueError(f"bad port in NATS URL {redact_url(url)}") from None
    if not parts.hostname:
        raise ValueError(f"no host in NATS URL {redact_url(url)}")
    user = unquote(parts.username) if parts.username else None
    password = unquote(parts.password) if parts.password is not None else None
    if user is not None and password is None:
        return Server(parts.hostname, port, token=user)
    return Server(parts.hostname, port, user=user, password=password)


class ServerPool:
    """The servers to try, in turn, each with its own back-off."""

    def __init__(self, urls: str, *, wait: float = 0.5, wait_max: float = 2.0) -> None:
        self.servers = [parse_url(u) for u in urls.split(",") if u.strip()]
        if not self.servers:
            raise ValueError("no NATS server URL given")
        self._wait = wait
        self._wait_max = wait_max
        self._next = 0

    def next(self) -> Server:
        """The server whose turn it is (the caller waits until its `retry_at`)."""
        server = min(
            self.servers[self._next :] + self.servers[: self._next], key=lambda s: s.retry_at
        )
        self._next = (self.servers.index(server) + 1) % len(self.servers)
        return server

    def failed(self, server: Server, now: float) -> None:
        server.failures += 1
        wait = min(self._wait * 2 ** (server.failures - 1), self._wait_max)
        server.retry_at = now + wait * random.uniform(0.8, 1.2)  # noqa: S311 (jitter)

    def connected(self, server: Server) -> None:
        server.failures = 0
        server.retry_at = 0.0

    def announce(self, urls: list[str], like: Server) -> None:
        """Add the servers a cluster announces, with the credentials of the one we use."""
        known = {(s.host, s.port) for s in self.servers}
        for url in urls:
            try:
                found = parse_url(url)
            except ValueError:
                continue
            if (found.host, found.port) not in known:
                self.servers.append(
                    Server(found.host, found.port, like.user, like.password, like.token, True)
                )
                known.add((found.host, found.port))


@dataclass(frozen=True)
class Credentials:
    """A user JWT (may be empty: an nkey user) and the nkey seed that signs the nonce."""

    jwt: str
    seed: bytes = field(repr=False)

    @classmethod
    def load(cls, path: str) -> Credentials:
        text = Path(path).read_text()
        jwt = _block(text, "NATS USER JWT")
        seed = _block(text, "USER NKEY SEED") or text.strip()
        if not seed.startswith("SU"):
            raise NatsError(f"{path}: neither a NATS creds file nor an nkey seed")
        return cls(jwt, seed.encode())

    def sign(self, nonce: str) -> tuple[str, str]:
        """(signature, public key) of the server's nonce."""
        try:
            nkeys: Any = importlib.import_module("nkeys")
        except ImportError:
            raise NatsError(
                "a NATS creds file needs the `nkeys` package to sign the server's nonce: "
                "pip install nkeys"
            ) from None
        pair = nkeys.from_seed(bytearray(self.seed))
        signature = base64.b64encode(pair.sign(nonce.encode())).decode()
        return signature, pair.public_key.decode()


def _block(text: str, title: str) -> str:
    found = re.search(rf"-----BEGIN {title}-----\s*(\S+)\s*-+END {title}-+", text)
    return found[1] if found else ""


def connect_options(
    info: dict[str, Any], server: Server, creds: Credentials | None, name: str, echo: bool
) -> dict[str, Any]:
    """The CONNECT options for `server`, signed for `creds` where the server sent a nonce."""
    options: dict[str, Any] = {
        "verbose": False,
        "pedantic": False,
        "tls_required": False,
        "name": name,
        "lang": LANG,
        "version": VERSION,
        "protocol": 1,  # async INFO with the cluster's URLs
        "headers": True,
        "no_responders": True,
        "echo": echo,
    }
    if server.user is not None:
        options["user"] = server.user
        options["pass"] = server.password or ""
    elif server.token is not None:
        options["auth_token"] = server.token
    if creds is not None:
        signature, public = creds.sign(str(info.get("nonce", "")))
        options["sig"] = signature
        if creds.jwt:
            options["jwt"] = creds.jwt
        else:
            options["nkey"] = public
    return options
