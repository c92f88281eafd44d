"""``gateway ldap cert``: write a self-signed certificate for StartTLS/LDAPS in development."""

from __future__ import annotations

import argparse
from pathlib import Path

from gateway.config import Config


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("ldap", help="LDAP directory tools")
    inner = parser.add_subparsers(dest="ldap_command", metavar="ACTION")
    inner.required = True
    cert = inner.add_parser(
        "cert", help="write a self-signed certificate and key for [ldap] tls_cert/tls_key"
    )
    cert.add_argument("--cert", type=Path, help="certificate file (default: [ldap] tls_cert, "
                      "else DATA_DIR/ldap.crt)")
    cert.add_argument("--key", type=Path, help="key file (default: [ldap] tls_key, else "
                      "DATA_DIR/ldap.key)")
    cert.add_argument("--hostname", action="append", default=[],
                      help="DNS name to certify (repeatable; default: localhost)")
    cert.add_argument("--address", action="append", default=[],
                      help="IP address to certify (repeatable; default: 127.0.0.1 and ::1)")
    cert.add_argument("--days", type=int, default=365)
    cert.set_defaults(handler=_cert)


def _cert(args: argparse.Namespace, config: Config) -> int:
    # Imported here: the ldap package is loaded only by what uses it.
    from ldap.tls import generate_self_signed

    cert = args.cert or config.ldap.tls_cert or config.data_path("ldap.crt")
    key = args.key or config.ldap.tls_key or config.data_path("ldap.key")
    generate_self_signed(
        cert, key,
        hostnames=args.hostname or ["localhost"],
        addresses=args.address or ["127.0.0.1", "::1"],
        days=args.days,
    )
    print(f"wrote {cert} and {key} (self-signed: for development only)")
    if config.ldap.tls_cert is None:
        print(f'set [ldap] tls_cert = "{cert}" and tls_key = "{key}" to use them')
    return 0
