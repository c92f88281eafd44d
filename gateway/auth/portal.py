"""The one credential check every door calls (after twisted.cred's Portal).

``login(creds)``: ask the rate-limit policy, pick the checker by the credentials' type,
verify, tell the policy the outcome, audit, and answer an identity or a typed failure.
Not meant to be subclassed: variation lives in checkers and in the policy.
"""

from __future__ import annotations

import hmac
import logging
import time
from typing import Any, final

from gateway.audit import AuditLog
from gateway.auth.checkers import (
    AppPasswordChecker,
    AppSecretChecker,
    PasswordTOTPChecker,
    UserPasswordChecker,
    UserVerifier,
)
from gateway.auth.credentials import (
    AppPassword,
    AppSecret,
    Credentials,
    PasswordTOTP,
    UserPassword,
    account_of,
    secret_of,
)
from gateway.auth.errors import (
    AuthUnavailable,
    Locked,
    LoginFailed,
    RateLimited,
    TwoFactorRequired,
    UnhandledCredentials,
)
from gateway.auth.identity import AppIdentity, Identity, UserIdentity
from gateway.metrics import Metrics
from gateway.store import Change, StoreError
from ratelimit import Allow, Attempt, AttemptPolicy, Banned, Decision, Outcome

log = logging.getLogger(__name__)

MAX_REMEMBERED_ACCOUNTS = 100_000
# Failures that were guesses (count towards lockout) versus right secrets refused.
_GUESSES = frozenset({"unknown", "wrong_secret"})


@final
class Portal:
    def __init__(
        self,
        verifier: UserVerifier,
        policy: AttemptPolicy,
        audit: AuditLog,
        metrics: Metrics,
        secret_key: bytes,
    ) -> None:
        self._policy = policy
        self._audit = audit
        self._metrics = metrics
        self._key = secret_key
        self.verifier = verifier
        self._checkers: dict[type, Any] = {
            UserPassword: UserPasswordChecker(verifier),
            PasswordTOTP: PasswordTOTPChecker(verifier),
            AppPassword: AppPasswordChecker(verifier),
            AppSecret: AppSecretChecker(verifier.store),
        }
        # Metric children per label set: prometheus_client's labels() validates and joins
        # the labels on every call, which a cached login would otherwise pay each time.
        self._login_counters: dict[tuple[str, str], Any] = {}
        # Email or user id → username, for the lockout policy's account key.
        self._accounts: dict[str, str] = {}
        self._login_timers: dict[str, Any] = {}

    @property
    def policy(self) -> AttemptPolicy:
        return self._policy

    def secret_digest(self, secret: str) -> str:
        """A keyed hash of a secret: lets the policy count distinct guesses without it."""
        # hmac.digest is OpenSSL's one-shot HMAC: the same value as hmac.new(...), at a
        # fraction of the cost of building an HMAC object per login.
        return hmac.digest(self._key, secret.encode(), "sha256")[:16].hex()

    async def login(self, creds: Credentials) -> Identity:
        checker = self._checkers.get(type(creds))
        if checker is None:
            raise UnhandledCredentials(type(creds).__name__)
        ctx = creds.context
        try:
            account = await self._account_key(creds)
        except (StoreError, OSError) as exc:
            log.exception("credential check failed: the store could not answer")
            raise AuthUnavailable(str(exc)) from exc
        attempt = Attempt(
            door=ctx.door, source=ctx.source, account=account,
            secret_digest=self.secret_digest(secret_of(creds)),
        )
        started = time.perf_counter()
        try:
            decision = await self._policy.check(attempt)
            if not isinstance(decision, Allow):
                self._refuse(decision, creds, account)
            identity: Identity = await checker.check(creds)
        except TwoFactorRequired:
            # Right password, second step pending: not a failure and not a login yet.
            self._count(ctx.door, "2fa_required", started)
            raise
        except RateLimited as exc:
            self._count(ctx.door, exc.reason, started)
            raise
        except LoginFailed as exc:
            outcome = Outcome.FAILURE if exc.reason in _GUESSES else Outcome.REFUSED
            new_ban = await self._policy.record(attempt, outcome)
            self._audit.record(
                "user.login.failed" if not isinstance(creds, AppSecret) else "app.login.failed",
                door=ctx.door, source=ctx.source, app_id=ctx.app_id, login=account,
                reason=exc.detail or exc.reason,
            )
            if new_ban is not None:
                # This failure started a ban: one event for it (refusals while it lasts
                # are audited as user.lockout by _refuse).
                self._audit.record(
                    "user.ban", door=ctx.door, source=ctx.source, app_id=ctx.app_id,
                    login=account, reason=f"{new_ban.scope}: {new_ban.reason}",
                )
            self._count(ctx.door, exc.reason, started)
            raise
        except StoreError as exc:
            log.exception("credential check failed: the store could not answer")
            raise AuthUnavailable(str(exc)) from exc
        except OSError as exc:
            log.exception("credential check failed: the store could not answer")
            raise AuthUnavailable(str(exc)) from exc
        await self._policy.record(attempt, Outcome.SUCCESS)
        self._audit_success(identity, creds)
        self._count(ctx.door, "success", started)
        return identity

    async def _account_key(self, creds: Credentials) -> str:
        """The account an attempt counts against: one key per user, however it is named.

        ``alice``, ``Alice@Example.com`` and her user id are one account to the lockout
        policy, so naming her three ways does not give an attacker three times the guesses.
        Usernames are already the key; emails and ids are resolved once and remembered
        until the store says a user changed. An unknown login stays as typed.
        """
        account = account_of(creds)
        if isinstance(creds, AppSecret) or ("@" not in account and not account.startswith("uid-")):
            return account
        known = self._accounts.get(account)
        if known is not None:
            return known
        user = await self.verifier.store.users.find(account)
        if user is None or user.username is None:
            return account
        if len(self._accounts) >= MAX_REMEMBERED_ACCOUNTS:
            self._accounts.clear()
        self._accounts[account] = user.username
        return user.username

    def on_change(self, change: Change) -> None:
        """Subscriber for the store's change feed: a user may have a new email or name."""
        if change.kind in ("user", "reset"):
            self._accounts.clear()

    def _refuse(self, decision: Decision, creds: Credentials, account: str) -> None:
        ctx = creds.context
        assert not isinstance(decision, Allow)
        error: RateLimited
        if isinstance(decision, Banned):
            error = Locked(decision.retry_after, decision.scope)
            action = "user.lockout"
        else:
            error = RateLimited(decision.retry_after, decision.scope)
            action = "user.login.delayed"
        self._audit.record(
            action, door=ctx.door, source=ctx.source, app_id=ctx.app_id, login=account,
            reason=f"{error.reason}:{decision.scope}",
        )
        raise error

    def _audit_success(self, identity: Identity, creds: Credentials) -> None:
        ctx = creds.context
        if isinstance(identity, UserIdentity):
            self._audit.record(
                "user.login", door=ctx.door, source=ctx.source, app_id=ctx.app_id,
                user_id=identity.user_id, login=identity.username, reason=identity.method,
            )
        elif isinstance(identity, AppIdentity):
            self._audit.record(
                "app.login", door=ctx.door, source=ctx.source, app_id=identity.app_id,
                login=identity.principal, reason=identity.addon,
            )

    def _count(self, door: str, result: str, started: float) -> None:
        counter = self._login_counters.get((door, result))
        if counter is None:
            counter = self._login_counters[(door, result)] = self._metrics.logins.labels(
                door, result)
        timer = self._login_timers.get(door)
        if timer is None:
            timer = self._login_timers[door] = self._metrics.login_seconds.labels(door)
        counter.inc()
        timer.observe(time.perf_counter() - started)
