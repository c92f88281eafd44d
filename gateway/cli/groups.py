"""``gateway group``: add, list and remove groups, and list or change their members."""

from __future__ import annotations

import argparse
from collections import Counter
from typing import Any

from gateway.cli.output import add_json_flag, print_json, print_table, timestamp
from gateway.cli.session import CommandSession, store_command
from gateway.store.models import Group

USER_HELP = "a user id, username or email address"


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("group", help="manage groups and their members")
    inner = parser.add_subparsers(dest="group_command", metavar="ACTION")
    inner.required = True

    add = inner.add_parser("add", help="add a group")
    add.add_argument("name")
    add.set_defaults(handler=_add)

    listing = inner.add_parser("list", help="list groups with member counts")
    listing.set_defaults(handler=_list)

    remove = inner.add_parser("remove", help="remove a group (its members stay)")
    remove.add_argument("name", help="group name or id")
    remove.set_defaults(handler=_remove)

    members = inner.add_parser("members", help="list a group's members, or add/remove some")
    members.add_argument("name", help="group name or id")
    change = members.add_mutually_exclusive_group()
    change.add_argument("--add", action="append", default=[], metavar="USER", help=USER_HELP)
    change.add_argument("--remove", action="append", default=[], metavar="USER", help=USER_HELP)
    members.set_defaults(handler=_members)

    for action in (add, listing, remove, members):
        add_json_flag(action)


def group_record(group: Group, member_count: int) -> dict[str, Any]:
    return {
        "id": group.id,
        "name": group.name,
        "members": member_count,
        "created_at": timestamp(group.created_at),
    }


@store_command
async def _add(args: argparse.Namespace, session: CommandSession) -> int:
    group = await session.accounts.add_group(args.name)
    if args.json:
        print_json(group_record(group, 0))
    else:
        print(f"added group {group.name} ({group.id})")
    return 0


@store_command
async def _list(args: argparse.Namespace, session: CommandSession) -> int:
    store = session.store
    counts = Counter(group_id for group_id, _ in await store.groups.memberships())
    records = [group_record(g, counts[g.id]) for g in await store.groups.list()]
    if args.json:
        print_json(records)
    else:
        print_table(
            ["name", "members", "id"], [[r["name"], r["members"], r["id"]] for r in records]
        )
    return 0


@store_command
async def _remove(args: argparse.Namespace, session: CommandSession) -> int:
    group = await session.store.groups.resolve(args.name)
    await session.accounts.remove_group(group)
    if args.json:
        print_json({"id": group.id, "name": group.name, "removed": True})
    else:
        print(f"removed group {group.name}")
    return 0


@store_command
async def _members(args: argparse.Namespace, session: CommandSession) -> int:
    store = session.store
    group = await store.groups.resolve(args.name)
    # Resolve every name before changing anything, so a typo changes nothing.
    to_add = [await store.users.resolve(u) for u in args.add]
    to_remove = [await store.users.resolve(u) for u in args.remove]
    for user in to_add:
        await session.accounts.add_member(group, user)
    for user in to_remove:
        await session.accounts.remove_member(group, user)
    members = [await store.users.get(user_id) for user_id in await store.groups.members(group.id)]
    members.sort(key=lambda u: (u.username is None, u.username or "", u.email))
    records = [{"id": u.id, "username": u.username, "email": u.email} for u in members]
    if args.json:
        print_json({"id": group.id, "name": group.name, "members": records})
    else:
        print_table(
            ["username", "email", "id"], [[r["username"], r["email"], r["id"]] for r in records]
        )
    return 0
