"""How a command child is confined (DESIGN §12): the user it runs as and its resource limits.

Pure data: `adapters.executors.sandbox` applies it. The CPU limit follows the job's own time
limit (plus a second, so the timeout, which kills the whole group, is what normally ends a
slow command); the others are per worker (`BAKER_COMMAND_*`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from domain.command_policy import effective_timeout

DEFAULT_RUN_AS = "nobody"
DEFAULT_ADDRESS_SPACE = 4 << 30  # Go binaries (kubectl, helm) reserve much address space
DEFAULT_FILE_SIZE = 64 << 20  # commands write to pipes; no file of theirs needs more
DEFAULT_OPEN_FILES = 256


@dataclass(frozen=True)
class CommandLimits:
    """Limits, in bytes and descriptors, set as both soft and hard limits of each child."""

    address_space: int = DEFAULT_ADDRESS_SPACE
    file_size: int = DEFAULT_FILE_SIZE
    open_files: int = DEFAULT_OPEN_FILES

    def rlimits(self, timeout: float | None) -> tuple[tuple[str, int], ...]:
        """(resource, value) pairs for a job with this time limit; no core dumps either."""
        cpu = math.ceil(effective_timeout(timeout)) + 1
        return (
            ("cpu", cpu),
            ("as", self.address_space),
            ("fsize", self.file_size),
            ("nofile", self.open_files),
            ("core", 0),
        )


@dataclass(frozen=True)
class CommandSandbox:
    """`user`: the (uid, gid) a root worker's children run as (None: the worker's own)."""

    user: tuple[int, int] | None = None
    limits: CommandLimits = field(default_factory=CommandLimits)


DEFAULT_SANDBOX = CommandSandbox()  # no change of user, the default limits
