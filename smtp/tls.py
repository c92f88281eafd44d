"""The submission ports' TLS: the configured certificate, or a self-signed one for development.

As on Cloudron, apps reach the relay by an internal name and must accept a self-signed
certificate; production sets ``mail.submission.tls_cert``/``tls_key`` to the mail FQDN's.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import logging
import os
import ssl
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

log = logging.getLogger(__name__)

SELF_SIGNED_DAYS = 825  # the longest validity clients still accept (CA/B forum, Apple)


def server_context(cert: Path, key: Path) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2  # RFC 8996: no TLS 1.0/1.1
    context.load_cert_chain(cert, key)
    return context


def ensure_self_signed(directory: Path, hostname: str) -> tuple[Path, Path]:
    """A self-signed certificate for ``hostname`` in ``directory``, made once and kept."""
    cert, key = directory / "tls_cert.pem", directory / "tls_key.pem"
    if cert.exists() and key.exists():
        return cert, key
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    private = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname)])
    alt: list[x509.GeneralName] = [x509.DNSName(hostname)]
    with contextlib.suppress(ValueError):
        alt = [x509.IPAddress(ipaddress.ip_address(hostname))]
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(private.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alt), critical=False)
        .sign(private, hashes.SHA256())
    )
    key_tmp, cert_tmp = key.with_suffix(".tmp"), cert.with_suffix(".tmp")
    fd = os.open(key_tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(private.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ))
    cert_tmp.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    os.replace(key_tmp, key)
    os.replace(cert_tmp, cert)
    log.warning("mail: using a self-signed certificate for %s (%s); set "
                "mail.submission.tls_cert for production", hostname, cert)
    return cert, key
