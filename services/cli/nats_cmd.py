"""`baker nats-config` and `baker nats-url ROLE`: the NATS roles of DESIGN §12 for operators.

`nats-config` prints the `authorization` block for an external server, each password a
`$BAKER_NATS_PASSWORD_<ROLE>` variable the server reads from its environment (nothing secret
on the terminal or in a pasted file); `--secrets` puts in the data dir's own passwords (the
ones `baker up` uses, generated there with mode 0600 if there are none yet) instead.
`nats-url ROLE` prints the URL, with that role's credentials, of the embedded server of the
`baker up` running on this data dir.
"""

from __future__ import annotations

import argparse
from typing import Any

from adapters.nats.users import UsersFileError, ensure_passwords
from domain import nats_config
from domain.nats_roles import ROLES
from services import embedded
from services.cli.output import fail
from services.config import Settings


def register(commands: Any) -> None:
    conf = commands.add_parser(
        "nats-config",
        help="print the NATS server configuration of the roles (users and permissions)",
    )
    conf.add_argument(
        "--secrets",
        action="store_true",
        help="the data dir's passwords instead of $BAKER_NATS_PASSWORD_<ROLE> placeholders",
    )
    conf.set_defaults(handler=cmd_nats_config)

    url = commands.add_parser(
        "nats-url", help="the embedded server's URL with a role's credentials (baker up running)"
    )
    url.add_argument("role", choices=ROLES, help="the role to connect as")
    url.set_defaults(handler=cmd_nats_url)


def cmd_nats_config(args: argparse.Namespace, settings: Settings) -> int:
    passwords = None
    if args.secrets:
        try:
            passwords = ensure_passwords(settings.data_dir / embedded.USERS, ROLES)
        except UsersFileError as exc:
            return fail(str(exc))
    print(nats_config.render_authorization(passwords), end="")
    return 0


def cmd_nats_url(args: argparse.Namespace, settings: Settings) -> int:
    try:
        url = embedded.role_url(settings.data_dir, args.role)
    except UsersFileError as exc:
        return fail(str(exc))
    if url is None:
        where = settings.data_dir.resolve()
        return fail(f"no `baker up` with an embedded server is running on the data dir {where}")
    print(url)
    return 0
