"""``gateway bans``: list the lockout policy's bans and lift one.

The bans are asked of the running ``gateway serve`` through its admin endpoint
(``admin.listen``, loopback by default), authenticated with the token it keeps in
``<data_dir>/admin-token``: with ``memory://`` storage the bans exist only inside that
process, and going through it with ``redis://`` too keeps one path (see
``gateway/runtime/admin_bans.py`` for how the endpoint is protected).
"""

from __future__ import annotations

import argparse
from typing import Any

import aiohttp

from gateway.cli.output import (
    Refused,
    UsageError,
    add_json_flag,
    print_json,
    print_table,
    report_failure,
    short_time,
    timestamp,
)
from gateway.config import Config
from gateway.runtime.admin_bans import client_base_url, read_admin_token, token_path

# The endpoint answers from memory or one Redis round trip; anything slower is a dead server.
REQUEST_TIMEOUT = 10.0


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("bans", help="list and lift rate-limit bans")
    inner = parser.add_subparsers(dest="bans_command", metavar="ACTION")
    inner.required = True

    listing = inner.add_parser("list", help="list active bans: who, scope, why, until")
    listing.add_argument(
        "--delays", action="store_true", help="also list the short delays before a ban"
    )
    listing.set_defaults(handler=_list)

    lift = inner.add_parser(
        "lift", help="lift the ban on an account or address and clear its failure count"
    )
    lift.add_argument(
        "subject",
        help="an account (as typed at login), an IP address (its IPv6 /64 is lifted), or "
        "source:<network> / account:<name> when it could be read either way",
    )
    lift.set_defaults(handler=_lift)

    for action in (listing, lift):
        add_json_flag(action)


async def _list(args: argparse.Namespace, config: Config) -> int:
    try:
        answer = await _call(config, "GET", "/bans", params={"delays": "1"} if args.delays else {})
    except (Refused, UsageError) as exc:
        return report_failure(exc, as_json=args.json)
    records = [_record(b) for b in answer.get("bans", [])]
    if args.json:
        public = [{k: v for k, v in r.items() if not k.startswith("_")} for r in records]
        print_json({"enabled": answer.get("enabled", True), "bans": public})
        return 0
    if not answer.get("enabled", True):
        print("the lockout policy is off ([ratelimit] enabled = false): nothing is banned")
        return 0
    rows = [
        [r["who"], r["scope"], r["kind"], r["reason"], short_time(r["_until"]),
         f"{r['retry_after']:.0f}s"]
        for r in records
    ]
    if not rows:
        print("no active bans")
        return 0
    print_table(["who", "scope", "kind", "why", "until (utc)", "left"], rows)
    return 0


async def _lift(args: argparse.Namespace, config: Config) -> int:
    try:
        answer = await _call(config, "POST", "/bans/lift", json={"subject": args.subject})
    except (Refused, UsageError) as exc:
        return report_failure(exc, as_json=args.json)
    if args.json:
        print_json({"subject": answer["subject"], "lifted": answer["lifted"]})
    elif answer["lifted"]:
        print(f"lifted the block on {answer['subject']}; its failure count is cleared")
    else:
        print(f"{answer['subject']} was not blocked; its failure count is cleared")
    return 0


def _record(ban: dict[str, Any]) -> dict[str, Any]:
    record = {
        key: ban[key]
        for key in ("subject", "scope", "who", "kind", "door", "failures", "reason")
    }
    record["window"] = ban["window"]
    record["since"] = timestamp(ban["since"])
    record["until"] = timestamp(ban["until"])
    record["retry_after"] = round(float(ban["retry_after"]), 1)
    record["_until"] = ban["until"]
    return record


async def _call(config: Config, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    token = read_admin_token(config.runtime.data_dir)
    if token is None:
        raise UsageError(
            f"no admin token at {token_path(config.runtime.data_dir)}: run this with the "
            "config of a running `gateway serve` (its runtime.data_dir)"
        )
    if not config.admin.enabled:
        raise UsageError("admin.enabled is false: there is no endpoint to ask for bans")
    listen = config.admin.listen
    url = client_base_url((listen.host, listen.port)) + path
    timeout = aiohttp.ClientTimeout(total=REQUEST_TIMEOUT)
    headers = {"Authorization": f"Bearer {token}"}
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.request(method, url, headers=headers, **kwargs) as response,
        ):
            body = await response.json(content_type=None)
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise Refused(
            f"cannot reach the admin endpoint at {listen} ({exc or type(exc).__name__}): "
            "is `gateway serve` running?",
            "unavailable",
        ) from None
    except ValueError:
        raise Refused(
            f"the admin endpoint at {listen} did not answer JSON", "unavailable"
        ) from None
    if status != 200 or not isinstance(body, dict):
        error = body.get("error") if isinstance(body, dict) else None
        raise Refused(f"the admin endpoint refused ({status}): {error or body}", "refused")
    return body
