"""DKIM signing per domain (RFC 6376, with dkimpy) and the DNS record to publish.

A message is signed with the key of its header From domain (the domain DMARC aligns on),
when that domain is hosted here and has a key. Keys are RSA 2048 (RFC 8301 §3.2: at least
1024, 2048 recommended; Cloudron generated 1024). The record is published at
``<selector>._domainkey.<domain>`` as ``v=DKIM1; k=rsa; p=<base64 key>``.
"""

from __future__ import annotations

import base64
import logging
from dataclasses import dataclass

import dkim as dkimpy
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gateway.store.models import MailDomain

log = logging.getLogger(__name__)

KEY_BITS = 2048
# Fields worth protecting (RFC 6376 §5.4.1's list, minus the trace fields that change on
# the way); From is listed twice so that a second From cannot be added after signing
# (RFC 6376 §8.15, "oversigning").
SIGNED_FIELDS = (
    b"from", b"from", b"sender", b"reply-to", b"subject", b"date", b"message-id", b"to",
    b"cc", b"mime-version", b"content-type", b"content-transfer-encoding",
    b"content-id", b"content-description", b"in-reply-to", b"references", b"list-id",
    b"list-unsubscribe",
)


def generate_key(bits: int = KEY_BITS) -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=bits)
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    ).decode()


@dataclass(frozen=True)
class DnsRecord:
    name: str
    value: str

    def zone_line(self) -> str:
        # TXT strings are at most 255 octets each (RFC 1035 §3.3.14): split the value.
        parts = [self.value[i : i + 250] for i in range(0, len(self.value), 250)]
        quoted = " ".join(f'"{p}"' for p in parts)
        return f"{self.name}. IN TXT ( {quoted} )"


def dns_record(domain: str, selector: str, private_pem: str) -> DnsRecord:
    key = serialization.load_pem_private_key(private_pem.encode(), password=None)
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    value = f"v=DKIM1; k=rsa; p={base64.b64encode(public).decode()}"
    return DnsRecord(f"{selector}._domainkey.{domain}", value)


def sign(message: bytes, domain: MailDomain) -> bytes:
    """``message`` with a DKIM-Signature field first; unchanged when the domain has no key."""
    if not domain.dkim_private_key:
        return message
    signature: bytes = dkimpy.sign(
        message,
        domain.dkim_selector.encode(),
        domain.domain.encode(),
        domain.dkim_private_key.encode(),
        canonicalize=(b"relaxed", b"relaxed"),
        include_headers=[h for h in SIGNED_FIELDS],
    )
    return signature + message
