"""Where a running `baker up` keeps its embedded nats-server, so that the CLI and a
`baker worker` started later on the same data dir find it without `BAKER_NATS_URL`.

`baker up` records the server's URL and pid in `<data dir>/nats.url` and removes the record
when it stops. A record whose pid is no longer a nats-server (a `baker up` killed with -9,
whose server died with it) is ignored, and the usual default applies.

The server runs with one user per role (DESIGN §12): `prepare_roles` keeps their passwords in
`<data dir>/nats-users.json` and the server's configuration in `<data dir>/nats/
nats-server.conf` (both mode 0600); `role_url` is the recorded URL with a role's credentials.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from pathlib import Path

from adapters.nats.users import ensure_passwords, read_passwords, write_private
from domain import nats_config
from domain.nats_roles import ROLES, permissions

log = logging.getLogger("baker.config")
RECORD = "nats.url"
USERS = "nats-users.json"
SERVER_CONFIG = Path("nats") / "nats-server.conf"


def prepare_roles(data_dir: Path) -> Path:
    """Every role's password (generated once, reused) and the server configuration that
    admits them with their permissions; the configuration's path."""
    passwords = ensure_passwords(data_dir / USERS, ROLES)
    path = data_dir / SERVER_CONFIG
    write_private(path, nats_config.render_authorization(passwords))
    return path


def passwords(data_dir: Path) -> dict[str, str] | None:
    """The roles' passwords of this data dir, if `baker up` made them."""
    return read_passwords(data_dir / USERS)


def role_url(data_dir: Path, role: str) -> str | None:
    """The URL of the embedded server of a `baker up` running on this data dir, with the
    credentials of `role` (a server started without roles: the URL alone), else None."""
    permissions(role)  # an unknown role is refused by name
    url = find(data_dir)
    if url is None:
        return None
    known = passwords(data_dir)
    if not known or role not in known:
        return url
    return nats_config.role_url(url, role, known[role])


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
