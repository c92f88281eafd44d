"""What a door received, turned into typed credentials for the portal.

Every type carries a ``LoginContext`` (door, source address, calling app). Secrets never
print: ``repr`` hides them, so a logged credential leaks nothing.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Door = Literal["ldap", "proxyauth", "smtp", "imap", "pop3", "cli", "forwardauth"]

SecondFactor = Literal["enforce", "ldap_opt_in", "skip"]
"""How a door treats users with TOTP enabled.

enforce: the login form; a right password alone answers ``TwoFactorRequired``.
ldap_opt_in: users who opted in append the 6-digit code to the password (Cloudron's way).
skip: protocols with no second step (SMTP, IMAP, HTTP Basic): a documented trade-off.
"""


@dataclass(frozen=True)
class LoginContext:
    door: Door
    source: str | None = None
    app_id: str | None = None
    second_factor: SecondFactor = "skip"


@dataclass(frozen=True)
class UserPassword:
    """A username or email and the user's password.

    ``app_passwords_for`` names the identifier (an app id or ``mail``) whose app passwords
    are accepted too; ``None`` on interactive forms, where app passwords never work.
    """

    login: str
    password: str = field(repr=False)
    context: LoginContext
    app_passwords_for: str | None = None


@dataclass(frozen=True)
class PasswordTOTP:
    """The login form's second step: password and a 6-digit code together."""

    login: str
    password: str = field(repr=False)
    code: str = field(repr=False)
    context: LoginContext


@dataclass(frozen=True)
class AppPassword:
    """Only an app password of the user, valid for ``identifier``."""

    login: str
    password: str = field(repr=False)
    identifier: str
    context: LoginContext


@dataclass(frozen=True)
class AppSecret:
    """An app's own credential for an addon.

    ``addon`` ldap: ``principal`` is the app id (``cn=<app id>,ou=apps``).
    Other addons (sendmail, recvmail): ``principal`` is the addon's username, e.g. the
    app's mail address.
    """

    addon: str
    principal: str
    secret: str = field(repr=False)
    context: LoginContext


Credentials = UserPassword | PasswordTOTP | AppPassword | AppSecret


def account_of(creds: Credentials) -> str:
    """The account an attempt is aimed at, normalised, for rate limits and audit."""
    if isinstance(creds, AppSecret):
        return f"{creds.addon}:{creds.principal.strip().lower()}"
    return creds.login.strip().lower()


def secret_of(creds: Credentials) -> str:
    if isinstance(creds, AppSecret):
        return creds.secret
    if isinstance(creds, PasswordTOTP):
        # The guess is the pair: with the password known, each new code is a new guess and
        # must count towards lockout (repeats of one pair still count once).
        return f"{creds.password}\0{creds.code}"
    return creds.password
