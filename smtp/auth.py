"""AUTH PLAIN and LOGIN through the one credential check, and its one table of answers.

aiosmtpd's ``authenticator=`` callback is synchronous and cannot await the portal, so the
handler overrides the mechanisms (``auth_PLAIN``/``auth_LOGIN``), reads the client's answers
with ``server.challenge_auth`` and calls ``SmtpLogin.login``. No password is verified here:
an app's SMTP password goes to the portal as ``AppSecret`` (bound to that app's own address),
anyone else's as ``UserPassword`` with ``mail`` app passwords allowed (STYLE.md §1, §3).
"""

from __future__ import annotations

import binascii
import logging
from base64 import b64decode
from typing import Any

from aiosmtpd.smtp import MISSING, SMTP, AuthResult

from gateway.auth import (
    AppSecret,
    AuthUnavailable,
    BadCredentials,
    Identity,
    Inactive,
    LoginContext,
    LoginFailed,
    NoAccess,
    Portal,
    RateLimited,
    TwoFactorRequired,
    UnknownAccount,
    UserPassword,
)
from gateway.store import NotFound, Store

log = logging.getLogger(__name__)

INVALID = "535 5.7.8 Authentication credentials invalid"
TRY_LATER = "454 4.7.0 Temporary authentication failure, try again later"
LOCAL_ERROR = "451 4.3.0 Local error in processing, try again later"

# The one table (RFC 4954 §6): a refused secret is 535 5.7.8 whatever the reason (the reason
# goes to the audit log, not to the client); "try later" is 454 4.7.0.
ANSWERS: dict[type[Exception], str] = {
    BadCredentials: INVALID,
    UnknownAccount: INVALID,
    NoAccess: INVALID,
    Inactive: INVALID,
    TwoFactorRequired: INVALID,
    RateLimited: TRY_LATER,  # Locked is a RateLimited
    LoginFailed: INVALID,
    AuthUnavailable: TRY_LATER,
}

SENDMAIL = "sendmail"
# A SASL PLAIN response is authzid NUL authcid NUL passwd (RFC 4616 §2), each at most 255
# octets; a longer one is not a login.
MAX_SASL_FIELD = 255


class AuthRefused(Exception):
    """The login did not succeed; ``reply`` is the whole SMTP reply line."""

    def __init__(self, reply: str) -> None:
        super().__init__(reply)
        self.reply = reply


def answer_for(error: Exception) -> str | None:
    for kind in type(error).__mro__:
        if kind in ANSWERS:
            return ANSWERS[kind]
    return None


class SmtpLogin:
    """Turn a login and password from the wire into credentials and ask the portal."""

    def __init__(self, portal: Portal, store: Store) -> None:
        self._portal = portal
        self._store = store

    async def login(self, login: str, password: str, source: str | None) -> Identity:
        try:
            creds = await self._credentials(login.strip(), password, source)
            return await self._portal.login(creds)
        except Exception as exc:
            reply = answer_for(exc)
            if reply is None:
                log.exception("SMTP authentication failed on an unexpected error")
                raise AuthRefused(LOCAL_ERROR) from exc
            if isinstance(exc, AuthUnavailable):
                log.warning("SMTP authentication unavailable: %s", exc)
            raise AuthRefused(reply) from exc

    async def _credentials(
        self, login: str, password: str, source: str | None
    ) -> AppSecret | UserPassword:
        context = LoginContext(door="smtp", source=source, second_factor="skip")
        address = login.lower()
        if "@" in address:
            if await self._store.apps.find_by_credential(SENDMAIL, "username", address):
                # The app's SMTP username is its own address; the portal compares the
                # password with that app's only, so it cannot be used for another address.
                return AppSecret(SENDMAIL, address, password, context)
            owner = await self._mailbox_owner(address)
            if owner is not None:
                # People log in with their full mailbox address (Cloudron's mail docs).
                return UserPassword(owner, password, context, app_passwords_for="mail")
        return UserPassword(login, password, context, app_passwords_for="mail")

    async def _mailbox_owner(self, address: str) -> str | None:
        try:
            mailbox = await self._store.mail.mailbox(address)
        except NotFound:
            return None
        if mailbox.kind != "mailbox" or mailbox.owner_type != "user" or not mailbox.owner_id:
            return None
        return mailbox.owner_id


def _decode(blob: bytes) -> str | None:
    if len(blob) > MAX_SASL_FIELD:
        return None
    try:
        return blob.decode("utf-8")
    except UnicodeDecodeError:
        return None


async def read_plain(server: SMTP, args: list[str]) -> tuple[str, str] | str:
    """The login and password of AUTH PLAIN, or the reply line refusing the exchange."""
    if len(args) == 1:
        blob: Any = await server.challenge_auth("")
        if blob is MISSING:
            return ""  # challenge_auth already answered 501
    else:
        try:
            blob = b64decode(args[1].encode(), validate=True)
        except binascii.Error:
            return "501 5.5.2 Cannot decode base64"
    parts = bytes(blob).split(b"\x00")
    if len(parts) != 3:
        return "501 5.5.2 Cannot split the PLAIN response"
    login, password = _decode(parts[1]), _decode(parts[2])
    if not login or password is None:
        return "501 5.5.2 Malformed PLAIN response"
    return login, password


async def read_login(server: SMTP, args: list[str]) -> tuple[str, str] | str:
    """The login and password of AUTH LOGIN (draft-murchison-sasl-login), or a refusal."""
    if len(args) == 1:
        user: Any = await server.challenge_auth("Username:")
        if user is MISSING:
            return ""
    else:
        try:
            user = b64decode(args[1].encode(), validate=True)
        except binascii.Error:
            return "501 5.5.2 Cannot decode base64"
    secret: Any = await server.challenge_auth("Password:")
    if secret is MISSING:
        return ""
    login, password = _decode(bytes(user)), _decode(bytes(secret))
    if not login or password is None:
        return "501 5.5.2 Malformed LOGIN response"
    return login, password


async def authenticate(
    server: SMTP, read: tuple[str, str] | str, smtp_login: SmtpLogin, source: str | None
) -> AuthResult:
    """Finish an AUTH exchange: push the refusal, or answer the identity to aiosmtpd."""
    if isinstance(read, str):
        if read:
            await server.push(read)
        return AuthResult(success=False, handled=True)
    login, password = read
    try:
        identity = await smtp_login.login(login, password, source)
    except AuthRefused as refused:
        await server.push(refused.reply)
        return AuthResult(success=False, handled=True)
    return AuthResult(
        success=True, auth_data=identity, message="235 2.7.0 Authentication successful"
    )
