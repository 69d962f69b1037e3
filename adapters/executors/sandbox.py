"""Confining command children (DESIGN §12): another user, no new privileges, rlimits.

A root worker's children are started by `_sandbox_spawn.so` (`sandbox_spawn.c`, built by
`make sandbox`): vfork, then in the child its own session, the limits, no groups, the
sandbox user's gid and uid, no capabilities, no new privileges, exec, with no extra exec and
no fork of the worker's memory (see the C file for the costs measured). Without that library
the same is done by `prlimit` and `setpriv` execed before the command (util-linux; correct,
but two more execs per job). A worker that is not root has no privilege to drop: its children
start as before (`posix_spawn`) and get their limits from the worker right after the spawn
(`prlimit(2)`, a few microseconds; the child may run its first instructions before).
"""

from __future__ import annotations

import contextlib
import ctypes
import errno
import functools
import os
import resource
import shutil
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from domain.command_sandbox import CommandSandbox

LIBRARY = Path(__file__).with_name("_sandbox_spawn.so")
_RESOURCES = {
    "cpu": resource.RLIMIT_CPU,
    "as": resource.RLIMIT_AS,
    "fsize": resource.RLIMIT_FSIZE,
    "nofile": resource.RLIMIT_NOFILE,
    "core": resource.RLIMIT_CORE,
}
# The steps of `baker_spawn`, as it reports which one failed.
_STEPS = ("vfork", "setsid", "redirecting stdio", "setting limits", "switching user",
          "no_new_privs", "exec")  # fmt: skip


@dataclass(frozen=True)
class Confinement:
    """What one child gets: (RLIMIT_*, value) pairs and the (uid, gid) to switch to."""

    rlimits: tuple[tuple[int, int], ...]
    user: tuple[int, int] | None


@functools.lru_cache(maxsize=256)
def confinement(sandbox: CommandSandbox, timeout: float | None) -> Confinement:
    rlimits = tuple(
        (_RESOURCES[name], value if sandbox.user else _within_own(_RESOURCES[name], value))
        for name, value in sandbox.limits.rlimits(timeout)
    )
    return Confinement(rlimits, sandbox.user)


def _within_own(res: int, value: int) -> int:
    """A worker that is not root cannot raise a limit past its own hard limit."""
    hard = resource.getrlimit(res)[1]
    return value if hard == resource.RLIM_INFINITY else min(value, hard)


class _Native:
    """`baker_spawn` from the built library, through ctypes (which lets go of the GIL)."""

    def __init__(self, lib: ctypes.CDLL) -> None:
        fn = lib.baker_spawn
        fn.restype = ctypes.c_int
        fn.argtypes = [
            ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p), ctypes.POINTER(ctypes.c_char_p),
            ctypes.c_int, ctypes.c_int, ctypes.POINTER(ctypes.c_int64), ctypes.c_int,
            ctypes.c_int, ctypes.c_uint, ctypes.c_uint,
        ]  # fmt: skip
        self._fn = fn

    def spawn(
        self, path: str, argv: Sequence[str], env: Mapping[str, str], out_fd: int, err_fd: int,
        conf: Confinement,
    ) -> int:  # fmt: skip
        # The same few commands and one env come again and again: their C arrays are kept.
        c_argv = _strings(tuple(argv))
        c_env = _strings(tuple(f"{key}={value}" for key, value in env.items()))
        uid, gid = conf.user if conf.user is not None else (0, 0)
        result = self._fn(
            os.fsencode(path), c_argv, c_env, out_fd, err_fd, _limits(conf.rlimits),
            len(conf.rlimits), int(conf.user is not None), uid, gid,
        )  # fmt: skip
        if result >= 0:
            return int(result)
        step, err = divmod(-result, 4096)
        if step == len(_STEPS) - 1:  # the exec: FileNotFoundError, PermissionError, ...
            raise OSError(err, os.strerror(err), path)
        raise OSError(err, f"{os.strerror(err)} ({_STEPS[step]} for the sandboxed child)")


@functools.lru_cache(maxsize=1024)
def _strings(items: tuple[str, ...]) -> ctypes.Array[ctypes.c_char_p]:
    """A NULL-terminated C array of the items (kept alive by the array, never changed)."""
    return (ctypes.c_char_p * (len(items) + 1))(*map(os.fsencode, items), None)


@functools.lru_cache(maxsize=256)
def _limits(rlimits: tuple[tuple[int, int], ...]) -> ctypes.Array[ctypes.c_int64]:
    flat = [number for pair in rlimits for number in pair]
    return (ctypes.c_int64 * len(flat))(*flat)


@functools.cache
def native() -> _Native | None:
    """The built spawner, or None when `make sandbox` has not built it (or cannot load)."""
    try:
        return _Native(ctypes.CDLL(str(LIBRARY)))
    except (OSError, AttributeError):
        return None


def wrapped(path: str, argv: Sequence[str], conf: Confinement) -> list[str]:
    """The argv that confines `argv` through `prlimit` and `setpriv` (without the library)."""
    assert conf.user is not None
    if "/" not in path:  # not found on PATH: fail as the exec would, not inside the wrapper
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT), path)
    uid, gid = conf.user
    names = {number: name for name, number in _RESOURCES.items()}
    limits = [f"--{names[res]}={value}" for res, value in conf.rlimits]
    return [
        _tool("prlimit"), *limits, "--",
        _tool("setpriv"), f"--reuid={uid}", f"--regid={gid}", "--clear-groups",
        "--no-new-privs", "--inh-caps=-all", "--bounding-set=-all", "--",
        path, *argv[1:],
    ]  # fmt: skip


@functools.cache
def _tool(name: str) -> str:
    return shutil.which(name) or name


def limit(pid: int, conf: Confinement) -> None:
    """Set the limits of a child already started (the path of a worker that is not root)."""
    for res, value in conf.rlimits:
        with contextlib.suppress(ProcessLookupError, PermissionError, ValueError):
            resource.prlimit(pid, res, (value, value))


def mechanism(sandbox: CommandSandbox) -> str:
    """How children are confined here, for the worker's log line."""
    if sandbox.user is None:
        return "as this worker's user, limits set right after posix_spawn"
    if native() is not None:
        return f"as uid {sandbox.user[0]} gid {sandbox.user[1]}, by {LIBRARY.name}"
    return (
        f"as uid {sandbox.user[0]} gid {sandbox.user[1]}, by prlimit + setpriv "
        f"({LIBRARY.name} is not built: `make sandbox` saves two execs per command)"
    )


def cannot_confine(sandbox: CommandSandbox) -> str | None:
    """Why this worker could not confine its children as `sandbox` says (None: it can)."""
    if sandbox.user is None or native() is not None:
        return None
    missing = [name for name in ("prlimit", "setpriv") if shutil.which(name) is None]
    if missing:
        return (
            f"running commands as uid {sandbox.user[0]} needs {LIBRARY.name} "
            f"(`make sandbox`, a C compiler) or {' and '.join(missing)} (util-linux)"
        )
    return None
