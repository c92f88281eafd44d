"""``gateway user app-password add|list|revoke``: per-client passwords for one app or mail.

The password is generated here, printed once and stored only as a hash; it opens only the
app (or ``mail``) it was made for, and never the login form.
"""

from __future__ import annotations

import argparse

from gateway.cli.output import add_json_flag, print_json, print_table, short_time, timestamp
from gateway.cli.session import CommandSession, store_command

USER_HELP = "a user id, username or email address"


def register(inner: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = inner.add_parser("app-password", help="passwords for one app or for mail")
    actions = parser.add_subparsers(dest="app_password_command", metavar="ACTION")
    actions.required = True

    add = actions.add_parser("add", help="generate one; it is printed once")
    add.add_argument("user", metavar="USER", help=USER_HELP)
    add.add_argument("--name", required=True, help="what it is for, e.g. 'phone mail'")
    add.add_argument(
        "--for", dest="identifier", required=True, metavar="IDENTIFIER",
        help="an app id, or 'mail' for SMTP/IMAP/POP3",
    )
    add.set_defaults(handler=_add)

    listing = actions.add_parser("list", help="list a user's app passwords (never the secret)")
    listing.add_argument("user", metavar="USER", help=USER_HELP)
    listing.set_defaults(handler=_list)

    revoke = actions.add_parser("revoke", help="revoke one at once, on every node")
    revoke.add_argument("user", metavar="USER", help=USER_HELP)
    revoke.add_argument("password_id", metavar="ID")
    revoke.set_defaults(handler=_revoke)

    for action in (add, listing, revoke):
        add_json_flag(action)


@store_command
async def _add(args: argparse.Namespace, session: CommandSession) -> int:
    user = await session.store.users.resolve(args.user)
    issued = await session.accounts.add_app_password(
        user, name=args.name, identifier=args.identifier
    )
    record = issued.record
    if args.json:
        print_json(
            {
                "id": record.id,
                "user_id": user.id,
                "name": record.name,
                "identifier": record.identifier,
                "created_at": timestamp(record.created_at),
                "password": issued.password,
            }
        )
        return 0
    print(f"App password {record.name!r} for {user.username or user.email}, "
          f"valid for {record.identifier} only ({record.id}):")
    print()
    print(f"    {issued.password}")
    print()
    print("It is shown this once; only its hash is kept.")
    return 0


@store_command
async def _list(args: argparse.Namespace, session: CommandSession) -> int:
    user = await session.store.users.resolve(args.user)
    records = await session.store.app_passwords.of_user(user.id)
    if args.json:
        print_json(
            [
                {
                    "id": r.id,
                    "name": r.name,
                    "identifier": r.identifier,
                    "created_at": timestamp(r.created_at),
                }
                for r in records
            ]
        )
        return 0
    print_table(
        ["id", "name", "for", "created"],
        [[r.id, r.name, r.identifier, short_time(r.created_at)] for r in records],
    )
    return 0


@store_command
async def _revoke(args: argparse.Namespace, session: CommandSession) -> int:
    user = await session.store.users.resolve(args.user)
    record = await session.accounts.revoke_app_password(user, args.password_id)
    if args.json:
        print_json({"id": record.id, "user_id": user.id, "revoked": True})
    else:
        print(f"revoked {record.name!r} ({record.id}) of {user.username or user.email}")
    return 0
