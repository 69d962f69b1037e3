"""Children of command jobs, started with `posix_spawn` and watched from the event loop.

asyncio's subprocess support builds a transport, a protocol, two stream readers and a child
watcher callback per child and reads them in several tasks; for an `echo hi` job that was
half of the worker's CPU. A command job needs less: two pipes read into capped sinks and the
exit status. The child is started with `os.posix_spawn` (glibc's vfork path, no Python code
between fork and exec) in its own session, stdin from /dev/null. Its pipes and a pidfd go into
one epoll set per event loop (`_Watcher`), which the loop watches as a single reader: adding
and removing a child's three descriptors is then three plain syscalls each way, not six
`add_reader`/`remove_reader` calls with their handles and selector bookkeeping. Where the
platform lacks pidfd, epoll or posix_spawn, `supported()` is False and `command.py` uses
asyncio's subprocess instead, with the same behaviour. The time limits of a loop's children
share one timer (`_Deadlines`), set for the earliest, instead of a timer per child.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import os
import select
import shutil
import signal
import weakref
from collections.abc import Callable, Mapping, Sequence

from adapters.executors import sandbox
from adapters.executors.sandbox import Confinement

Feed = Callable[[bytes], None]
_READ = 64 * 1024
_resolved: dict[tuple[str, str], str] = {}


def supported() -> bool:
    """Whether this Python and kernel can spawn and watch children this way."""
    if not (hasattr(os, "posix_spawn") and hasattr(os, "pidfd_open") and hasattr(select, "epoll")):
        return False
    try:
        os.close(os.pidfd_open(os.getpid()))
    except OSError:
        return False
    return True


def resolve(name: str, path: str) -> str:
    """The executable `name` stands for on `path`, as exec would find it (cached when found);
    a name that cannot be found is returned as is, so that spawning it fails like exec."""
    if "/" in name:
        return name
    key = (name, path)
    found = _resolved.get(key)
    if found is None:
        found = shutil.which(name, path=path)
        if found is None:
            return name
        _resolved[key] = found
    return found


class _Deadlines:
    """When each waiting child's time is up, behind one timer set for the earliest. Children
    mostly share one limit, so a new one seldom moves the timer; one that ends in time is
    only forgotten (the timer, if it was its, then finds nothing due and moves on)."""

    _SLACK = 0.001  # the loop may run a timer a hair before its time

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: dict[Child, float] = {}
        self._timer: asyncio.TimerHandle | None = None

    def add(self, child: Child, limit: float) -> None:
        when = self._loop.time() + limit
        self._due[child] = when
        if self._timer is None or when < self._timer.when():
            if self._timer is not None:
                self._timer.cancel()
            self._timer = self._loop.call_at(when, self._fire)

    def discard(self, child: Child) -> None:
        self._due.pop(child, None)

    def _fire(self) -> None:
        self._timer = None
        now = self._loop.time() + self._SLACK
        for child, when in list(self._due.items()):
            if when <= now:
                del self._due[child]
                child.expire()
        if self._due:
            self._timer = self._loop.call_at(min(self._due.values()), self._fire)


class _Watcher:
    """One epoll set of child descriptors, read by the event loop as one reader."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.deadlines = _Deadlines(loop)
        self._epoll = select.epoll()
        self._ready: dict[int, Callable[[], None]] = {}
        loop.add_reader(self._epoll.fileno(), self._dispatch)
        weakref.finalize(loop, self._epoll.close)

    def add(self, fd: int, ready: Callable[[], None]) -> None:
        self._ready[fd] = ready
        self._epoll.register(fd, select.EPOLLIN)

    def remove(self, fd: int) -> None:
        if self._ready.pop(fd, None) is not None:
            self._epoll.unregister(fd)

    def _dispatch(self) -> None:
        for fd, _ in self._epoll.poll(0):
            ready = self._ready.get(fd)
            if ready is not None:  # removed by an earlier callback of this same poll
                ready()


_watchers: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Watcher] = (
    weakref.WeakKeyDictionary()
)


def _watcher(loop: asyncio.AbstractEventLoop) -> _Watcher:
    watcher = _watchers.get(loop)
    if watcher is None:
        watcher = _watchers[loop] = _Watcher(loop)
    return watcher


def _start(
    path: str, argv: Sequence[str], env: Mapping[str, str], out_w: int, err_w: int,
    conf: Confinement | None,
) -> int:  # fmt: skip
    """posix_spawn; for a child that changes user, the sandbox's spawner (or its wrapper)."""
    if conf is None or conf.user is None:
        pid = _posix_spawn(path, argv, env, out_w, err_w)
        if conf is not None:
            sandbox.limit(pid, conf)
        return pid
    native = sandbox.native()
    if native is not None:
        return native.spawn(path, argv, env, out_w, err_w, conf)
    wrapped = sandbox.wrapped(path, argv, conf)
    return _posix_spawn(wrapped[0], wrapped, env, out_w, err_w)


def _posix_spawn(
    path: str, argv: Sequence[str], env: Mapping[str, str], out_w: int, err_w: int
) -> int:
    return os.posix_spawn(
        path,
        list(argv),
        dict(env),
        file_actions=[
            (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
            (os.POSIX_SPAWN_DUP2, out_w, 1),
            (os.POSIX_SPAWN_DUP2, err_w, 2),
        ],
        setsid=True,
    )


class Child:
    """A running child: its pid, its output fed to two sinks, its exit code when reaped."""

    def __init__(self, pid: int, out_fd: int, err_fd: int, out: Feed, err: Feed) -> None:
        self.pid = pid
        self.returncode: int | None = None
        self.timed_out = False
        self._loop = asyncio.get_running_loop()
        self._open = 3  # stdout, stderr and the exit still to see
        self._done = self._loop.create_future()
        self._exited = self._loop.create_future()
        self._fds = {out_fd: out, err_fd: err}
        self._pidfd = os.pidfd_open(pid)
        self._watcher = _watcher(self._loop)
        for fd, feed in self._fds.items():
            os.set_blocking(fd, False)
            self._watcher.add(fd, functools.partial(self._readable, fd, feed))
        self._watcher.add(self._pidfd, self._reap)

    @classmethod
    def spawn(
        cls, argv: Sequence[str], env: Mapping[str, str], out: Feed, err: Feed,
        conf: Confinement | None = None,
    ) -> Child:  # fmt: skip
        """Start `argv` (its first word looked up on `env`'s PATH), confined as `conf` says
        (`adapters.executors.sandbox`); `OSError` if it cannot."""
        path = resolve(argv[0], env.get("PATH", os.defpath))
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        try:
            pid = _start(path, argv, env, out_w, err_w, conf)
        except BaseException:
            for fd in (out_r, err_r):
                os.close(fd)
            raise
        finally:
            os.close(out_w)
            os.close(err_w)
        return cls(pid, out_r, err_r, out, err)

    def _readable(self, fd: int, feed: Feed) -> None:
        try:
            chunk = os.read(fd, _READ)
        except BlockingIOError:
            return
        except OSError:
            chunk = b""
        if chunk:
            feed(chunk)
            return
        self._close_fd(fd)
        self._one_done()

    def _reap(self) -> None:
        self._watcher.remove(self._pidfd)
        os.close(self._pidfd)
        self._pidfd = -1
        _, status = os.waitpid(self.pid, 0)
        self.returncode = os.waitstatus_to_exitcode(status)
        if not self._exited.done():
            self._exited.set_result(None)
        self._one_done()

    def _one_done(self) -> None:
        self._open -= 1  # `_done` may be cancelled with a cancelled `wait`: then nobody waits
        if self._open == 0 and not self._done.done():
            self._done.set_result(None)

    def _close_fd(self, fd: int) -> None:
        if self._fds.pop(fd, None) is not None:
            self._watcher.remove(fd)
            os.close(fd)

    async def wait(self) -> int:
        """Wait until the child has exited and both pipes are at end of file (cancelling
        the wait cancels only this wait: `reaped` still sees the exit)."""
        await self._done
        assert self.returncode is not None
        return self.returncode

    async def wait_for(self, limit: float) -> bool:
        """`wait`, for at most `limit` seconds: False when the time was up first (the child
        is then still there, for the caller to kill)."""
        self._watcher.deadlines.add(self, limit)
        try:
            await self._done
        finally:
            self._watcher.deadlines.discard(self)
        return not self.timed_out

    def expire(self) -> None:
        """The child's time is up: its `wait_for` returns False."""
        if not self._done.done():
            self.timed_out = True
            self._done.set_result(None)

    def kill_group(self) -> None:
        """SIGKILL the child's whole process group (it is a session leader). The group id
        stays taken while any member lives, even once the leader is reaped."""
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)
        if self.returncode is None:  # once reaped, its pid may be someone else's
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)  # a child that left its group

    async def reaped(self) -> None:
        """Wait for the exit only (after `kill_group`), then stop reading the pipes."""
        await asyncio.shield(self._exited)
        for fd in list(self._fds):
            self._close_fd(fd)
