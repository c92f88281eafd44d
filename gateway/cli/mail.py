"""``gateway mail``: domains, mailboxes, aliases, lists, DKIM records and the outbound queue.

Domain and address commands write the store (the running relay hears the change at once);
``queue`` commands read and change the spool directly, which the running queue looks at
every few seconds. The mail modules are imported inside the handlers, so other commands
never load them.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from gateway.cli.output import (
    CommandFailed,
    Refused,
    UsageError,
    add_json_flag,
    print_fields,
    print_json,
    print_table,
    report_failure,
    timestamp,
)
from gateway.cli.session import CommandSession, store_command
from gateway.config import Config
from gateway.store.models import Mailbox, MailDomain

RELAY_PROVIDERS = (
    "cloudron-smtp", "external-smtp", "ses-smtp", "google-smtp", "mailgun-smtp",
    "postmark-smtp", "sendgrid-smtp", "noop",
)
SECRET_PLACEHOLDER = "\u25cf" * 8  # Cloudron shows relay secrets as eight U+25CF


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("mail", help="mail domains, addresses, DKIM and the outbound queue")
    groups = parser.add_subparsers(dest="mail_command", metavar="GROUP")
    groups.required = True
    commands: list[argparse.ArgumentParser] = []

    domain = groups.add_parser("domain", help="hosted mail domains").add_subparsers(
        dest="domain_command", metavar="ACTION")
    domain.required = True
    add = domain.add_parser("add", help="host a mail domain (a DKIM key is generated)")
    add.add_argument("domain")
    add.add_argument("--receives", action="store_true", help="incoming mail is enabled")
    add.add_argument("--masquerade", action="store_true",
                     help="any login may send as any address of this domain")
    add.add_argument("--selector", default=None, help="DKIM selector (default: gateway)")
    add.set_defaults(handler=_domain_add)
    listing = domain.add_parser("list", help="list hosted domains")
    listing.set_defaults(handler=_domain_list)
    change = domain.add_parser("set", help="change a domain's switches and relay")
    change.add_argument("domain")
    change.add_argument("--masquerade", choices=("on", "off"))
    change.add_argument("--receives", choices=("on", "off"))
    change.add_argument("--relay", choices=RELAY_PROVIDERS, help="how mail of this domain leaves")
    change.add_argument("--relay-host")
    change.add_argument("--relay-port", type=int)
    change.add_argument("--relay-username")
    change.add_argument("--relay-password-stdin", action="store_true",
                        help="read the smarthost password from standard input")
    change.add_argument("--accept-self-signed", choices=("on", "off"))
    change.set_defaults(handler=_domain_set)
    remove = domain.add_parser("remove", help="stop hosting a domain (its addresses go too)")
    remove.add_argument("domain")
    remove.set_defaults(handler=_domain_remove)
    commands += [add, listing, change, remove]

    for kind, help_text in (("mailbox", "mailboxes of users"), ("alias", "aliases of mailboxes"),
                            ("list", "mailing lists")):
        inner = groups.add_parser(kind, help=help_text).add_subparsers(
            dest=f"{kind}_command", metavar="ACTION")
        inner.required = True
        add = inner.add_parser("add", help=f"add a {kind}")
        add.add_argument("address", help="name@domain")
        if kind == "mailbox":
            add.add_argument("--owner", required=True, help="a user id, username or email")
        elif kind == "alias":
            add.add_argument("--to", required=True, dest="target", help="the mailbox it points to")
        else:
            add.add_argument("--member", action="append", required=True, dest="members",
                             help="a member address (repeat)")
        add.set_defaults(handler=_address_add, kind=kind)
        listing = inner.add_parser("list", help=f"list {kind}es" if kind == "mailbox"
                                   else f"list {kind}s")
        listing.add_argument("--domain")
        listing.set_defaults(handler=_address_list, kind=kind)
        remove = inner.add_parser("remove", help=f"remove a {kind}")
        remove.add_argument("address")
        remove.set_defaults(handler=_address_remove, kind=kind)
        commands += [add, listing, remove]

    dkim = groups.add_parser("dkim", help="print the DKIM DNS record of a domain")
    dkim.add_argument("domain")
    dkim.add_argument("--rotate", action="store_true", help="generate a new key first")
    dkim.set_defaults(handler=_dkim)
    commands.append(dkim)

    queue = groups.add_parser("queue", help="the outbound queue").add_subparsers(
        dest="queue_command", metavar="ACTION")
    queue.required = True
    qlist = queue.add_parser("list", help="messages waiting, with each recipient's state")
    qlist.set_defaults(handler=_queue_list)
    retry = queue.add_parser("retry", help="try messages again now")
    retry.add_argument("ids", nargs="*", metavar="ID")
    retry.add_argument("--all", action="store_true", help="every queued message")
    retry.set_defaults(handler=_queue_retry)
    delete = queue.add_parser("delete", help="drop messages from the queue (no bounce)")
    delete.add_argument("ids", nargs="+", metavar="ID")
    delete.set_defaults(handler=_queue_delete)
    commands += [qlist, retry, delete]
    for command in commands:
        add_json_flag(command)


# -- domains -------------------------------------------------------------------------------

def domain_record(domain: MailDomain) -> dict[str, Any]:
    relay = dict(domain.relay)
    if relay.get("password"):
        relay["password"] = SECRET_PLACEHOLDER
    return {
        "domain": domain.domain,
        "receives": domain.receives,
        "masquerade": domain.masquerade,
        "dkim_selector": domain.dkim_selector,
        "dkim_key": bool(domain.dkim_private_key),
        "relay": relay or {"provider": "cloudron-smtp"},
        "created_at": timestamp(domain.created_at),
    }


@store_command
async def _domain_add(args: argparse.Namespace, session: CommandSession) -> int:
    from smtp.dkim import generate_key

    store = session.store
    created = await store.mail.add_domain(args.domain, receives=args.receives)
    fields: dict[str, Any] = {"dkim_private_key": generate_key(), "masquerade": args.masquerade}
    if args.selector:
        fields["dkim_selector"] = args.selector
    domain = await store.mail.update_domain(created.domain, **fields)
    if args.json:
        print_json(domain_record(domain))
    else:
        print(f"added mail domain {domain.domain}; publish its DKIM record "
              f"(gateway mail dkim {domain.domain})")
    return 0


@store_command
async def _domain_list(args: argparse.Namespace, session: CommandSession) -> int:
    records = [domain_record(d) for d in await session.store.mail.domains()]
    if args.json:
        print_json(records)
    else:
        print_table(
            ["domain", "receives", "masquerade", "dkim", "relay"],
            [[r["domain"], r["receives"], r["masquerade"], r["dkim_key"],
              r["relay"].get("provider")] for r in records],
        )
    return 0


@store_command
async def _domain_set(args: argparse.Namespace, session: CommandSession) -> int:
    store = session.store
    domain = await store.mail.domain(args.domain)
    fields: dict[str, Any] = {}
    if args.masquerade:
        fields["masquerade"] = args.masquerade == "on"
    if args.receives:
        fields["receives"] = args.receives == "on"
    relay = dict(domain.relay)
    if args.relay:
        relay = {"provider": args.relay} if args.relay != relay.get("provider") else relay
    for key, value in (("host", args.relay_host), ("port", args.relay_port),
                       ("username", args.relay_username)):
        if value is not None:
            relay[key] = value
    if args.accept_self_signed:
        relay["acceptSelfSignedCerts"] = args.accept_self_signed == "on"
    if args.relay_password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise UsageError("no password on standard input")
        relay["password"] = password
    if relay.get("provider") == "external-smtp" and not relay.get("host"):
        raise UsageError("--relay external-smtp needs --relay-host")
    if relay != domain.relay:
        fields["relay"] = relay
    if not fields:
        raise UsageError("nothing to change: give at least one option")
    domain = await store.mail.update_domain(domain.domain, **fields)
    if args.json:
        print_json(domain_record(domain))
    else:
        print_fields({k: v for k, v in domain_record(domain).items() if k != "relay"}
                     | {"relay": domain_record(domain)["relay"].get("provider")})
    return 0


@store_command
async def _domain_remove(args: argparse.Namespace, session: CommandSession) -> int:
    await session.store.mail.remove_domain(args.domain)
    if args.json:
        print_json({"domain": args.domain.lower(), "removed": True})
    else:
        print(f"removed mail domain {args.domain.lower()}")
    return 0


# -- mailboxes, aliases, lists -------------------------------------------------------------

def address_record(box: Mailbox) -> dict[str, Any]:
    return {
        "address": box.address,
        "kind": box.kind,
        "owner_id": box.owner_id,
        "owner_type": box.owner_type,
        "target": box.alias_target,
        "members": list(box.members),
        "active": box.active,
        "created_at": timestamp(box.created_at),
    }


def _split(address: str) -> tuple[str, str]:
    local, at, domain = address.strip().lower().rpartition("@")
    if not at or not local or not domain:
        raise UsageError(f"{address!r} is not name@domain")
    return local, domain


@store_command
async def _address_add(args: argparse.Namespace, session: CommandSession) -> int:
    store = session.store
    local, domain = _split(args.address)
    if args.kind == "mailbox":
        owner = await store.users.resolve(args.owner)
        box = await store.mail.add_mailbox(local, domain, owner_id=owner.id)
    elif args.kind == "alias":
        target = await store.mail.mailbox(args.target)
        if target.kind != "mailbox":
            raise Refused(f"{target.address} is a {target.kind}, not a mailbox", "invalid")
        box = await store.mail.add_mailbox(
            local, domain, kind="alias", alias_target=target.address,
            owner_id=target.owner_id, owner_type=target.owner_type,
        )
    else:
        members = tuple(_split(m)[0] + "@" + _split(m)[1] for m in args.members)
        box = await store.mail.add_mailbox(local, domain, kind="list", members=members)
    if args.json:
        print_json(address_record(box))
    else:
        print(f"added {args.kind} {box.address}")
    return 0


@store_command
async def _address_list(args: argparse.Namespace, session: CommandSession) -> int:
    boxes = [b for b in await session.store.mail.mailboxes(args.domain) if b.kind == args.kind]
    records = [address_record(b) for b in boxes]
    if args.json:
        print_json(records)
        return 0
    if args.kind == "mailbox":
        owners: dict[str, str] = {}
        for box in boxes:
            if box.owner_id and box.owner_type == "user" and box.owner_id not in owners:
                user = await session.store.users.find(box.owner_id)
                owners[box.owner_id] = (user.username or user.email) if user else box.owner_id
        print_table(["address", "owner", "active"],
                    [[b.address, owners.get(b.owner_id or "", b.owner_id), b.active]
                     for b in boxes])
    elif args.kind == "alias":
        print_table(["address", "target"], [[b.address, b.alias_target] for b in boxes])
    else:
        print_table(["address", "members"], [[b.address, list(b.members)] for b in boxes])
    return 0


@store_command
async def _address_remove(args: argparse.Namespace, session: CommandSession) -> int:
    store = session.store
    box = await store.mail.mailbox(args.address)
    if box.kind != args.kind:
        raise Refused(f"{box.address} is a {box.kind}, not a {args.kind}", "invalid")
    await store.mail.remove_mailbox(box.address)
    if args.json:
        print_json({"address": box.address, "kind": box.kind, "removed": True})
    else:
        print(f"removed {box.kind} {box.address}")
    return 0


# -- DKIM ----------------------------------------------------------------------------------

@store_command
async def _dkim(args: argparse.Namespace, session: CommandSession) -> int:
    from smtp.dkim import dns_record, generate_key

    store = session.store
    domain = await store.mail.domain(args.domain)
    if args.rotate or not domain.dkim_private_key:
        domain = await store.mail.update_domain(domain.domain, dkim_private_key=generate_key())
    assert domain.dkim_private_key is not None
    record = dns_record(domain.domain, domain.dkim_selector, domain.dkim_private_key)
    if args.json:
        print_json({"domain": domain.domain, "selector": domain.dkim_selector,
                    "name": record.name, "type": "TXT", "value": record.value})
    else:
        print(record.zone_line())
    return 0


# -- the queue -----------------------------------------------------------------------------

def _spool(config: Config) -> Any:
    from smtp.spool import Spool

    path: Path = config.mail.queue.spool_dir
    root = path if path.is_absolute() else config.runtime.data_dir / path
    if not (root / "queue").is_dir():
        raise Refused(f"no mail spool at {root}", "not_found")
    return Spool(root)


def _queue_command(body: Any) -> Any:
    def handler(args: argparse.Namespace, config: Config) -> int:
        try:
            spool = _spool(config)
            try:
                return int(body(args, spool))
            finally:
                spool.close()
        except CommandFailed as exc:
            return report_failure(exc, as_json=bool(args.json))

    return handler


def _checked_ids(ids: list[str]) -> list[str]:
    from smtp.spool import valid_id

    bad = [i for i in ids if not valid_id(i)]
    if bad:
        raise UsageError(f"not a queue id: {', '.join(bad)}")
    return ids


@_queue_command
def _queue_list(args: argparse.Namespace, spool: Any) -> int:
    records = []
    for message_id in spool.ids():
        message = spool.load(message_id)
        if message is None:
            continue
        env = message.envelope
        records.append({
            "id": env.id,
            "sender": env.sender,
            "arrived_at": timestamp(env.arrived_at),
            "size": env.size,
            "submitted_by": env.submitted_by,
            "recipients": [
                {"address": r.address, "status": r.status, "attempts": r.attempts,
                 "next_attempt": timestamp(r.next_attempt) if r.status == "pending" else None,
                 "last_reply": r.last_reply}
                for r in message.recipients.values()
            ],
        })
    if args.json:
        print_json(records)
        return 0
    rows = []
    for rec in records:
        for r in rec["recipients"]:
            rows.append([rec["id"], rec["sender"] or "<>", r["address"], r["status"],
                         r["attempts"], r["next_attempt"], r["last_reply"]])
    print_table(["id", "sender", "recipient", "status", "tries", "next", "last reply"], rows)
    return 0


@_queue_command
def _queue_retry(args: argparse.Namespace, spool: Any) -> int:
    if args.all == bool(args.ids):
        raise UsageError("give queue ids or --all")
    ids = spool.ids() if args.all else _checked_ids(args.ids)
    now = time.time()
    missing = [i for i in ids if not spool.record_now(i, [{"event": "retry", "at": now}])]
    done = [i for i in ids if i not in missing]
    if args.json:
        print_json({"retried": done, "missing": missing})
    else:
        for message_id in done:
            print(f"{message_id}: will be tried again within seconds")
    if missing:
        if not args.json:
            print(f"gateway: not in the queue: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0


@_queue_command
def _queue_delete(args: argparse.Namespace, spool: Any) -> int:
    ids = _checked_ids(args.ids)
    missing = [i for i in ids if not spool.remove_now(i)]
    done = [i for i in ids if i not in missing]
    if args.json:
        print_json({"deleted": done, "missing": missing})
    else:
        for message_id in done:
            print(f"{message_id}: deleted")
    if missing:
        if not args.json:
            print(f"gateway: not in the queue: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0
