"""The embedded server's role passwords and configuration on disk (DESIGN §12).

The passwords are generated once into `<data dir>/nats-users.json` and reused on every start
(a `baker worker` started later on the same data dir connects with them); the file and the
rendered server configuration are written with mode 0600 from the start (never readable by
others, not even for a moment), atomically. A file found with a wider mode is narrowed.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import secrets
import stat
from collections.abc import Iterable
from pathlib import Path

log = logging.getLogger("baker.nats")
PRIVATE = 0o600
PASSWORD_BYTES = 24  # 192 bits, URL-safe text


class UsersFileError(RuntimeError):
    """The passwords file exists but is not what we wrote."""


def write_private(path: Path, text: str) -> None:
    """Write `text` to `path` with mode 0600, replacing it atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, PRIVATE)
    try:
        with os.fdopen(fd, "w") as out:
            out.write(text)
        os.chmod(tmp, PRIVATE)  # whatever the umask did
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def read_passwords(path: Path) -> dict[str, str] | None:
    """The passwords in `path`, or None when there is no such file."""
    try:
        doc = json.loads(path.read_text())
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as exc:
        raise UsersFileError(f"cannot read the NATS passwords in {path}: {exc}") from None
    if not isinstance(doc, dict) or not all(
        isinstance(k, str) and isinstance(v, str) and v for k, v in doc.items()
    ):
        raise UsersFileError(f"{path} is not a JSON object of role names to passwords")
    _narrow(path)
    return doc


def ensure_passwords(path: Path, roles: Iterable[str]) -> dict[str, str]:
    """Every role's password: the ones in `path`, and new ones for the roles it lacks
    (written back). The same passwords on every start."""
    found = read_passwords(path) or {}
    missing = [role for role in roles if role not in found]
    if missing:
        found |= {role: secrets.token_urlsafe(PASSWORD_BYTES) for role in missing}
        write_private(path, json.dumps(found, indent=1, sort_keys=True) + "\n")
        log.info("generated NATS passwords for %s in %s", ", ".join(missing), path)
    return found


def _narrow(path: Path) -> None:
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        log.warning("%s was readable by others (mode %o): set to 0600", path, mode)
        os.chmod(path, PRIVATE)
