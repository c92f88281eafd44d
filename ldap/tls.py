"""TLS for StartTLS and LDAPS: the configured certificate, and a self-signed one for
development (``gateway ldap cert``).
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import ssl
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID


class TlsConfigError(Exception):
    """The certificate or key cannot be used; the message names the file."""


def server_context(cert_path: Path, key_path: Path) -> ssl.SSLContext:
    """A TLS server context from PEM files (the certificate file may hold a chain).

    The stdlib context, not Twisted's: the server runs on asyncio transports, whose
    ``start_tls`` and ``create_server(ssl=...)`` take it. TLS 1.2 is the floor, as in
    Twisted's ``CertificateOptions``.
    """
    try:
        cert_pem = cert_path.read_bytes()
        key_pem = key_path.read_bytes()
    except OSError as exc:
        raise TlsConfigError(f"cannot read {exc.filename}: {exc.strerror}") from None
    try:
        # Parsed here so a bad file is named before OpenSSL sees it (and an encrypted key
        # fails instead of prompting for a passphrase).
        x509.load_pem_x509_certificates(cert_pem)
        serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise TlsConfigError(f"{cert_path} / {key_path}: {exc}") from None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    try:
        context.load_cert_chain(cert_path, key_path)
    except (ssl.SSLError, ValueError) as exc:
        raise TlsConfigError(f"{cert_path} does not go with {key_path}: {exc}") from None
    return context


def generate_self_signed(
    cert_path: Path,
    key_path: Path,
    *,
    hostnames: Sequence[str] = ("localhost",),
    addresses: Sequence[str] = ("127.0.0.1", "::1"),
    days: int = 365,
) -> None:
    """Write a self-signed certificate and its key (mode 0600) for development."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames
                                         else "gateway ldap")])
    now = datetime.datetime.now(datetime.UTC)
    alt: list[x509.GeneralName] = [x509.DNSName(h) for h in hostnames]
    alt.extend(x509.IPAddress(ipaddress.ip_address(a)) for a in addresses)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path.parent.mkdir(parents=True, exist_ok=True)
    key_path.parent.mkdir(parents=True, exist_ok=True)
    key_bytes = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    fd = os.open(key_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(key_bytes)
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
