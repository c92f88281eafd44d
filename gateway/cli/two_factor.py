"""``gateway user 2fa enable|disable`` and ``gateway user ldap-2fa on|off``.

Enrolment prints the otpauth URI and a QR code for the user's authenticator app; the
secret is shown this once (it is needed to log in, so it is stored, but never printed again).
"""

from __future__ import annotations

import argparse
import io
import sys

import segno

from gateway.cli.output import add_json_flag, print_json
from gateway.cli.session import CommandSession, store_command

# What authenticator apps show above the code; overridable per command.
DEFAULT_ISSUER = "Gateway"


def register(inner: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    totp = inner.add_parser("2fa", help="turn TOTP two-factor login on or off")
    actions = totp.add_subparsers(dest="totp_command", metavar="ACTION")
    actions.required = True
    enable = actions.add_parser("enable", help="enrol: print the secret as URI and QR code")
    enable.add_argument("user", metavar="USER", help="a user id, username or email address")
    enable.add_argument(
        "--issuer", default=DEFAULT_ISSUER, help="name the authenticator app shows"
    )
    enable.set_defaults(handler=_enable)
    disable = actions.add_parser("disable", help="turn 2FA off (a lost device)")
    disable.add_argument("user", metavar="USER", help="a user id, username or email address")
    disable.set_defaults(handler=_disable)

    ldap = inner.add_parser(
        "ldap-2fa", help="LDAP binds must append the TOTP code to the password (opt-in)"
    )
    ldap.add_argument("state", choices=("on", "off"))
    ldap.add_argument("user", metavar="USER", help="a user id, username or email address")
    ldap.set_defaults(handler=_ldap)

    for parser in (enable, disable, ldap):
        add_json_flag(parser)


def terminal_qr(uri: str) -> str:
    """The QR code as text: half blocks where the terminal takes Unicode, else ANSI colours."""
    qr = segno.make(uri)
    out = io.StringIO()
    qr.terminal(out=out, compact=True)
    text = out.getvalue()
    encoding = getattr(sys.stdout, "encoding", None) or "ascii"
    try:
        text.encode(encoding)
    except UnicodeEncodeError:
        out = io.StringIO()
        qr.terminal(out=out)
        text = out.getvalue()
    return text


@store_command
async def _enable(args: argparse.Namespace, session: CommandSession) -> int:
    user = await session.store.users.resolve(args.user)
    enrolment = await session.accounts.enable_totp(user, issuer=args.issuer)
    if args.json:
        print_json({"id": user.id, "uri": enrolment.uri, "secret": enrolment.secret})
        return 0
    print(f"2FA is on for {user.username or user.email}. Scan this with an authenticator app:")
    print(terminal_qr(enrolment.uri), end="")
    print(f"URI:    {enrolment.uri}")
    print(f"Secret: {enrolment.secret}")
    print("This is shown once. Existing login-wall sessions have ended.")
    return 0


@store_command
async def _disable(args: argparse.Namespace, session: CommandSession) -> int:
    user = await session.store.users.resolve(args.user)
    ended = await session.accounts.disable_totp(user)
    if args.json:
        print_json({"id": user.id, "totp_enabled": False, "sessions_ended": ended})
    else:
        print(f"2FA is off for {user.username or user.email}")
    return 0


@store_command
async def _ldap(args: argparse.Namespace, session: CommandSession) -> int:
    user = await session.store.users.resolve(args.user)
    updated = await session.accounts.set_ldap_totp(user, args.state == "on")
    if args.json:
        print_json({"id": user.id, "ldap_totp": updated.ldap_totp})
        return 0
    print(f"LDAP 2FA is {args.state} for {user.username or user.email}")
    if updated.ldap_totp and not updated.totp_enabled:
        print("(it applies once 2FA is enabled: gateway user 2fa enable)")
    return 0
