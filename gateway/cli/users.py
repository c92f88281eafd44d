"""``gateway user``: add, list, show, change the password of, disable, enable and remove users.

The second factor and app passwords are their own modules (``two_factor``,
``app_passwords``) registered under the same group. A USER argument is a user id, a
username or an email address, resolved as the doors resolve logins.
"""

from __future__ import annotations

import argparse
from typing import Any

from gateway.cli import app_passwords, two_factor
from gateway.cli.output import (
    add_json_flag,
    print_fields,
    print_json,
    print_table,
    short_time,
    timestamp,
)
from gateway.cli.secrets_input import add_password_stdin_flag, confirm, read_new_password
from gateway.cli.session import CommandSession, store_command
from gateway.store.models import ROLES, User

USER_HELP = "a user id, username or email address"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("user", help="manage users")
    inner = parser.add_subparsers(dest="user_command", metavar="ACTION")
    inner.required = True

    add = inner.add_parser("add", help="add a user (the password is prompted, or read from stdin)")
    add.add_argument("username")
    add.add_argument("--email", required=True, help="primary email address (unique)")
    add.add_argument("--display-name", default="", help="full name shown to apps")
    add.add_argument("--role", choices=ROLES, default="user")
    add_password_stdin_flag(add)
    add.set_defaults(handler=_add)

    listing = inner.add_parser("list", help="list users")
    listing.set_defaults(handler=_list)

    show = inner.add_parser("show", help="show one user")
    show.add_argument("user", metavar="USER", help=USER_HELP)
    show.set_defaults(handler=_show)

    passwd = inner.add_parser("passwd", help="set a new password; ends the user's web sessions")
    passwd.add_argument("user", metavar="USER", help=USER_HELP)
    add_password_stdin_flag(passwd)
    passwd.set_defaults(handler=_passwd)

    disable = inner.add_parser("disable", help="refuse the user's logins; ends web sessions")
    disable.add_argument("user", metavar="USER", help=USER_HELP)
    disable.set_defaults(handler=_disable)

    enable = inner.add_parser("enable", help="let a disabled user log in again")
    enable.add_argument("user", metavar="USER", help=USER_HELP)
    enable.set_defaults(handler=_enable)

    remove = inner.add_parser("remove", help="remove a user with their app passwords")
    remove.add_argument("user", metavar="USER", help=USER_HELP)
    remove.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    remove.set_defaults(handler=_remove)

    for action in (add, listing, show, passwd, disable, enable, remove):
        add_json_flag(action)

    two_factor.register(inner)
    app_passwords.register(inner)


def user_record(user: User, groups: list[str]) -> dict[str, Any]:
    """The JSON form of a user: these keys are what scripts rely on. No hash, no secret."""
    return {
        "id": user.id,
        "username": user.username,
        "email": user.email,
        "fallback_email": user.fallback_email,
        "display_name": user.display_name,
        "role": user.role,
        "active": user.active,
        "totp_enabled": user.totp_enabled,
        "ldap_totp": user.ldap_totp,
        "groups": groups,
        "created_at": timestamp(user.created_at),
        "modified_at": timestamp(user.modified_at),
    }


@store_command
async def _add(args: argparse.Namespace, session: CommandSession) -> int:
    password = read_new_password(from_stdin=args.password_stdin)
    user = await session.accounts.create(
        username=args.username, email=args.email, password=password,
        display_name=args.display_name, role=args.role,
    )
    if args.json:
        print_json(user_record(user, []))
    else:
        print(f"added {user.username} ({user.id})")
    return 0


@store_command
async def _list(args: argparse.Namespace, session: CommandSession) -> int:
    store = session.store
    users = await store.users.list()
    names = {g.id: g.name for g in await store.groups.list()}
    groups_of: dict[str, list[str]] = {}
    for group_id, user_id in await store.groups.memberships():
        groups_of.setdefault(user_id, []).append(names[group_id])
    records = [user_record(u, sorted(groups_of.get(u.id, []))) for u in users]
    if args.json:
        print_json(records)
        return 0
    print_table(
        ["username", "email", "role", "active", "2fa", "groups", "id"],
        [
            [r["username"], r["email"], r["role"], r["active"], r["totp_enabled"], r["groups"],
             r["id"]]
            for r in records
        ],
    )
    return 0


@store_command
async def _show(args: argparse.Namespace, session: CommandSession) -> int:
    store = session.store
    user = await store.users.resolve(args.user)
    groups = [g.name for g in await store.groups.of_user(user.id)]
    app_password_count = len(await store.app_passwords.of_user(user.id))
    if args.json:
        print_json({**user_record(user, groups), "app_passwords": app_password_count})
        return 0
    print_fields(
        {
            "id": user.id,
            "username": user.username,
            "email": user.email,
            "fallback email": user.fallback_email,
            "display name": user.display_name,
            "role": user.role,
            "active": user.active,
            "2fa": "on" if user.totp_enabled else "off",
            "ldap 2fa": "on" if user.ldap_totp else "off",
            "groups": groups,
            "app passwords": app_password_count,
            "created": short_time(user.created_at),
            "modified": short_time(user.modified_at),
        }
    )
    return 0


@store_command
async def _passwd(args: argparse.Namespace, session: CommandSession) -> int:
    # Resolve first: nobody should type a new password for a user who does not exist.
    user = await session.store.users.resolve(args.user)
    password = read_new_password(from_stdin=args.password_stdin)
    ended = await session.accounts.set_password(user, password)
    if args.json:
        print_json({"id": user.id, "username": user.username, "sessions_ended": ended})
    else:
        print(f"{_label(user)}: password changed; {_sessions(ended)} ended")
    return 0


@store_command
async def _disable(args: argparse.Namespace, session: CommandSession) -> int:
    user = await session.store.users.resolve(args.user)
    ended = await session.accounts.disable(user)
    if args.json:
        print_json(
            {"id": user.id, "username": user.username, "active": False, "sessions_ended": ended}
        )
    else:
        print(f"{_label(user)}: disabled; {_sessions(ended)} ended")
    return 0


@store_command
async def _enable(args: argparse.Namespace, session: CommandSession) -> int:
    user = await session.store.users.resolve(args.user)
    await session.accounts.enable(user)
    if args.json:
        print_json({"id": user.id, "username": user.username, "active": True})
    else:
        print(f"{_label(user)}: enabled")
    return 0


@store_command
async def _remove(args: argparse.Namespace, session: CommandSession) -> int:
    user = await session.store.users.resolve(args.user)
    if not confirm(f"Remove {_label(user)} <{user.email}>?", assume_yes=args.yes):
        print("not removed")
        return 1
    await session.accounts.remove(user)
    if args.json:
        print_json({"id": user.id, "username": user.username, "removed": True})
    else:
        print(f"{_label(user)}: removed")
    return 0


def _label(user: User) -> str:
    return user.username or user.email


def _sessions(count: int) -> str:
    return f"{count} login-wall session{'' if count == 1 else 's'}"
