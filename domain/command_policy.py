"""What a `command` job may run: quote-aware parsing, the binary allowlist, env rules, limits.

Pure rules from the reference digest §3.3. A command line is split like a POSIX shell would
split words, but it is never given to a shell: `;`, `&&`, `|`, `$(…)` and backticks are plain
arguments of the one allowed binary.
"""

from __future__ import annotations

import codecs
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Final

from domain.argument_policy import ArgumentRefused, check_arguments

DEFAULT_ALLOWED_COMMANDS: Final = (
    "kubectl", "curl", "ls", "df", "uptime", "date", "whoami", "cat", "echo", "grep", "ps",
    "dig", "nslookup", "ping", "traceroute", "helm",
)  # fmt: skip
BLOCKED_ENV_KEYS: Final = frozenset(
    {
        "PATH", "LD_PRELOAD", "LD_LIBRARY_PATH", "NODE_OPTIONS", "ANTHROPIC_API_KEY",
        "AUTH_TOKEN", "VOYAGE_API_KEY", "HOME", "USER",
    }
)  # fmt: skip
MAX_COMMAND_LENGTH: Final = 1024
DEFAULT_COMMAND_TIMEOUT: Final = 30.0
MAX_OUTPUT_BYTES: Final = 64 * 1024

_ENV_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# CSI sequences (colours, cursor moves), OSC sequences (titles, links), charset selections,
# then the remaining two-byte escapes.
_ANSI = re.compile(
    r"\x1b\[[0-?]*[ -/]*[@-~]"
    r"|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)"
    r"|\x1b[()*+][0-9A-Za-z]"
    r"|\x1b[@-Z\\-_]"
)


class CommandRejected(ValueError):
    """A command line the policy refuses; the message is the digest's exact wording, or for
    a binary's argument rules (`domain.argument_policy`) names the rule; `rule` names it."""

    def __init__(self, message: str, rule: str = "allowlist") -> None:
        super().__init__(message)
        self.rule = rule


@dataclass(frozen=True)
class ParsedCommand:
    """The argv to exec (binary as given) and the env assignments that preceded it."""

    argv: tuple[str, ...]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def binary(self) -> str:
        """The binary's basename, the name the allowlist knows it by."""
        return basename(self.argv[0])


def basename(path: str) -> str:
    """The last path segment: `/usr/bin/df` is `df`."""
    return path.rsplit("/", 1)[-1]


def parse_allowed_commands(text: str | None) -> tuple[str, ...]:
    """`BAKER_ALLOWED_COMMANDS` (a comma list) as a tuple; unset or blank means the default."""
    names = tuple(name.strip() for name in (text or "").split(",") if name.strip())
    return names or DEFAULT_ALLOWED_COMMANDS


def parse_command(command: str, allowed: Iterable[str]) -> ParsedCommand:
    """Split `command` into env assignments and argv; raise `CommandRejected` if not allowed."""
    if len(command) > MAX_COMMAND_LENGTH:
        raise CommandRejected(
            f"command rejected: exceeds max length of {MAX_COMMAND_LENGTH} characters", "length"
        )
    try:
        words = shlex.split(command)
    except ValueError:
        # shlex says "No closing quotation" or "No escaped character": both are bad quoting.
        raise CommandRejected("command rejected: unbalanced quotes", "quoting") from None
    env, argv = _split_assignments(words)
    if not argv or not argv[0]:
        raise CommandRejected("command rejected: empty command", "empty")
    binary = basename(argv[0])
    if binary not in {name.strip() for name in allowed}:
        raise CommandRejected(f"command rejected: '{binary}' is not in the allowed commands list")
    try:
        checked = check_arguments(binary, argv, env)
    except ArgumentRefused as exc:
        raise CommandRejected(str(exc), exc.rule) from None
    return ParsedCommand(argv=checked, env=env)


def _split_assignments(words: list[str]) -> tuple[dict[str, str], list[str]]:
    """Leading `KEY=VALUE` words become env; the first other word starts argv."""
    env: dict[str, str] = {}
    for i, word in enumerate(words):
        key, sep, value = word.partition("=")
        if not sep or not _ENV_NAME.fullmatch(key):
            return env, words[i:]
        if key in BLOCKED_ENV_KEYS:
            raise CommandRejected(f"command rejected: cannot override env var '{key}'", "env")
        env[key] = value
    return env, []


def effective_timeout(job_timeout: float | None) -> float:
    """The command limit: 30 s, or the job's own timeout when that is shorter."""
    if job_timeout is None or job_timeout <= 0:
        return DEFAULT_COMMAND_TIMEOUT
    return min(DEFAULT_COMMAND_TIMEOUT, job_timeout)


def child_env(base: Mapping[str, str], overrides: Mapping[str, str]) -> dict[str, str]:
    """The child's env: the safe base with the job's assignments on top (blocked keys kept)."""
    return {**base, **{k: v for k, v in overrides.items() if k not in BLOCKED_ENV_KEYS}}


def strip_ansi(text: str) -> str:
    """Remove terminal escape sequences (colours, cursor moves, titles)."""
    return _ANSI.sub("", text)


def truncation_marker(omitted: int | None) -> str:
    """What is appended to output that was cut; `None` when the rest's size is unknown."""
    if omitted is None:
        return "\n…[truncated: remaining bytes omitted]"
    return f"\n…[truncated: {omitted} bytes omitted]"


def cap_output(data: bytes, limit: int, *, total: int | None = None) -> tuple[str, bool]:
    """Decode at most `limit` bytes (UTF-8, bad bytes replaced); mark the text if it was cut.

    `total` is the original size when `data` was already cut while it was read.
    """
    size = len(data) if total is None else max(total, len(data))
    if size <= limit:
        return data.decode("utf-8", errors="replace"), False
    # An incremental decoder drops a multi-byte character split by the cut instead of
    # turning its first half into a replacement character.
    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
    text = decoder.decode(data[:limit], final=False)
    return text + truncation_marker(size - limit), True
