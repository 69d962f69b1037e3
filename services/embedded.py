"""Where a running `baker up` keeps its embedded nats-server, so that the CLI and a
`baker worker` started later on the same data dir find it without `BAKER_NATS_URL`.

`baker up` records the server's URL and pid in `<data dir>/nats.url` and removes the record
when it stops. A record whose pid is no longer a nats-server (a `baker up` killed with -9,
whose server died with it) is ignored, and the usual default applies.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

log = logging.getLogger("baker.config")
RECORD = "nats.url"


def record(data_dir: Path, url: str, pid: int) -> None:
    """Say that the nats-server `pid` at `url` serves this data dir (written atomically)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    path = data_dir / RECORD
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"url": url, "pid": pid}) + "\n")
    tmp.replace(path)


def forget(data_dir: Path, pid: int) -> None:
    """Remove the record if it is still the one for `pid`."""
    path = data_dir / RECORD
    found = _read(path)
    if found is not None and found[1] == pid:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def find(data_dir: Path) -> str | None:
    """The URL of the embedded server of a `baker up` running on this data dir, if any."""
    found = _read(data_dir / RECORD)
    if found is None:
        return None
    url, pid = found
    if not _is_nats_server(pid):
        log.debug("ignoring %s: pid %d is not a running nats-server", RECORD, pid)
        return None
    return url


def _read(path: Path) -> tuple[str, int] | None:
    try:
        doc = json.loads(path.read_text())
        url, pid = doc["url"], doc["pid"]
    except FileNotFoundError:
        return None
    except (OSError, ValueError, KeyError, TypeError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return None
    if not isinstance(url, str) or not url.startswith("nats://") or not isinstance(pid, int):
        log.warning("ignoring %s: not a nats:// URL and a pid", path)
        return None
    return url, pid


def _is_nats_server(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    cmdline = Path(f"/proc/{pid}/cmdline")
    try:
        return b"nats-server" in cmdline.read_bytes()
    except FileNotFoundError:
        return not Path("/proc/self").exists()  # no procfs: trust the pid
    except OSError:
        return False
