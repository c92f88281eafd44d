"""A submitted message's header section: read within limits, addresses found, fixed up.

The parser is deliberately small and strict (it is fuzzed in the tests): it splits the
header section from the body, unfolds fields (RFC 5322 §2.2.3), and refuses what it cannot
read instead of guessing, so the sender check can never be walked around through a field
the checker and a receiving MUA would read differently.

Every address-looking token in From and Sender (``local@domain``, also inside a quoted
display name or a comment) must be one the login may use: a parser differential (say
CVE-2023-27043 in ``email.utils``) cannot smuggle a foreign address past the check, and a
display name cannot pretend to be somebody else's address either.
"""

from __future__ import annotations

import re
import secrets
import time
from dataclasses import dataclass
from email.utils import formatdate, getaddresses

from smtp.errors import HeaderTooBig, MalformedMessage

# RFC 5322 §3.6.x: field names are printable ASCII but ':'; values may be folded.
_FIELD_NAME = re.compile(rb"^[!-9;-~]+$")
_ADDRESS_TOKEN = re.compile(r"[^\s<>()\[\],;:\"@]+@[^\s<>()\[\],;:\"@]+")
_BARE_NEWLINES = re.compile(rb"\r\n|\r|\n")

SENDER_FIELDS = ("from", "sender")
# Never passed on: Bcc would tell every recipient who else got the message (Postfix's
# message_drop_headers default is the same list).
DROPPED_FIELDS = frozenset({"bcc", "resent-bcc", "content-length", "resent-content-length"})


@dataclass(frozen=True)
class Field:
    name: str  # as written
    raw: bytes  # the whole field, folded as received, without the final CRLF

    @property
    def key(self) -> str:
        return self.name.lower()

    @property
    def value(self) -> str:
        """Unfolded value (RFC 5322 §2.2.3); 8-bit octets kept (RFC 6532)."""
        text = self.raw.split(b":", 1)[1].decode("utf-8", errors="replace")
        return re.sub(r"\r\n(?=[ \t])", "", text).strip()


@dataclass(frozen=True)
class ParsedMessage:
    fields: tuple[Field, ...]
    body: bytes  # after the blank line; empty when the message has no body

    def values(self, key: str) -> list[str]:
        return [f.value for f in self.fields if f.key == key]

    def has(self, key: str) -> bool:
        return any(f.key == key for f in self.fields)

    def to_bytes(self) -> bytes:
        head = b"".join(f.raw + b"\r\n" for f in self.fields)
        return head + b"\r\n" + self.body


def normalize_newlines(data: bytes) -> bytes:
    """Every line ending as CRLF: a bare LF or CR can never end DATA at a receiver that reads
    them as line ends (SMTP smuggling, CVE-2023-51764/51765/51766)."""
    return _BARE_NEWLINES.sub(b"\r\n", data)


def parse(data: bytes, *, max_header_bytes: int, max_fields: int) -> ParsedMessage:
    """Split ``data`` (CRLF line ends) into header fields and body, within the limits."""
    end = data.find(b"\r\n\r\n")
    if data.startswith(b"\r\n"):
        head, body = b"", data[2:]
    elif end < 0:
        head, body = data.removesuffix(b"\r\n"), b""
    else:
        head, body = data[:end], data[end + 4 :]
    if len(head) > max_header_bytes:
        raise HeaderTooBig(f"header section larger than {max_header_bytes} bytes")
    fields: list[Field] = []
    current: list[bytes] = []
    for line in head.split(b"\r\n") if head else []:
        if line[:1] in (b" ", b"\t"):
            if not current:
                raise MalformedMessage("the header section starts with a continuation line")
            current.append(line)
            continue
        if current:
            fields.append(_field(current))
            if len(fields) >= max_fields:
                raise HeaderTooBig(f"more than {max_fields} header fields")
        current = [line]
    if current:
        fields.append(_field(current))
    if len(fields) > max_fields:
        raise HeaderTooBig(f"more than {max_fields} header fields")
    return ParsedMessage(tuple(fields), body)


def _field(lines: list[bytes]) -> Field:
    first = lines[0]
    name, colon, _ = first.partition(b":")
    if not colon or not _FIELD_NAME.match(name.rstrip(b" \t")):
        shown = first[:40].decode("ascii", errors="replace")
        raise MalformedMessage(f"header line is not a field: {shown!r}")
    return Field(name.rstrip(b" \t").decode("ascii"), b"\r\n".join(lines))


def sender_addresses(message: ParsedMessage, key: str) -> list[str]:
    """Every address-looking token in the ``key`` fields (see the module docstring).

    Raises MalformedMessage when a From field names no mailbox at all.
    """
    found: list[str] = []
    for value in message.values(key):
        tokens = [t.lower() for t in _ADDRESS_TOKEN.findall(value)]
        parsed = [addr.lower() for _, addr in getaddresses([value]) if "@" in addr]
        if not tokens and not parsed:
            raise MalformedMessage(f"the {key.capitalize()} header names no address")
        found.extend(dict.fromkeys([*parsed, *tokens]))
    return found


def fix_up(
    message: ParsedMessage, *, envelope_sender: str, hostname: str, received: str
) -> ParsedMessage:
    """What RFC 6409 §8 lets a submission server add: Received, and missing From, Date,
    Message-ID (From from the envelope sender, which is already checked); Bcc removed."""
    added = [Field("Received", received.encode())]
    fields = [f for f in message.fields if f.key not in DROPPED_FIELDS]
    if not message.has("from"):
        fields.append(Field("From", f"From: <{envelope_sender}>".encode()))
    if not message.has("date"):
        fields.append(Field("Date", f"Date: {formatdate(localtime=False)}".encode()))
    if not message.has("message-id"):
        token = f"{time.time_ns():x}.{secrets.token_hex(8)}"
        fields.append(Field("Message-ID", f"Message-ID: <{token}@{hostname}>".encode()))
    return ParsedMessage(tuple(added + fields), message.body)
