"""The sendmail, recvmail and email addons (C.1, C.2).

An app's mail address is ``<mailbox>@<app domain>``, the mailbox defaulting to
``<location>.app``. The SMTP and IMAP passwords are 48 hex characters (Cloudron shortened
them for apps with length limits, #565), independent of each other, and kept across
restarts: only a new install mints new ones.
"""

from __future__ import annotations

import logging
import re
import secrets

from gateway.containers.addons.base import AddonSetup, EnvFacts, replace_credentials
from gateway.containers.addons.ldap import MAILBOXES_BASE_DN
from gateway.containers.errors import InstallError
from gateway.containers.manifest import Manifest
from gateway.store import NotFound
from gateway.store.models import App

log = logging.getLogger(__name__)

PASSWORD_BYTES = 24
# What Cloudron lets an admin name an app mailbox (mail.validateName), lowercased.
_MAILBOX = re.compile(r"^[a-z0-9.-]{1,199}$")
APP_MAILBOX_SUFFIX = ".app"


def default_mailbox(app: App, manifest: Manifest) -> str:
    """``<location>.app``; at the bare domain, the title reduced to a-z0-9 (C.2)."""
    if app.location:
        return f"{app.location}{APP_MAILBOX_SUFFIX}"
    title = re.sub(r"[^a-z0-9]", "", (manifest.title or "").lower()) or "app"
    return f"{title}{APP_MAILBOX_SUFFIX}"


def mailbox_name(value: str) -> str:
    name = value.strip().lower()
    if not _MAILBOX.match(name):
        raise InstallError(f"mailbox {value!r}: 1 to 199 of a-z, 0-9, '.' and '-'")
    return name


async def app_address(ctx: AddonSetup) -> str:
    """The app's mail address: the one already given to it, else the default."""
    for addon in ("sendmail", "recvmail"):
        username = (await ctx.store.apps.credentials(ctx.app.id, addon)).get("username")
        if username:
            return username
    return f"{default_mailbox(ctx.app, ctx.manifest)}@{ctx.app.domain}".lower()


class SendmailAddon:
    name = "sendmail"

    async def setup(self, ctx: AddonSetup) -> None:
        if ctx.manifest.options(self.name).get("optional"):
            # The app brings its own mail settings: no env, so no credentials either.
            await self.teardown(ctx)
            return
        current = await ctx.store.apps.credentials(ctx.app.id, self.name)
        wanted = {
            "username": await app_address(ctx),
            "password": current.get("password") or secrets.token_hex(PASSWORD_BYTES),
        }
        if current.get("display_name"):
            wanted["display_name"] = current["display_name"]
        await replace_credentials(ctx, self.name, wanted)

    async def teardown(self, ctx: AddonSetup) -> None:
        if await ctx.store.apps.credentials(ctx.app.id, self.name):
            await ctx.store.apps.set_credentials(ctx.app.id, self.name, {})

    def env(self, facts: EnvFacts) -> dict[str, str]:
        options = facts.manifest.options(self.name)
        creds = facts.credentials.get(self.name)
        if options.get("optional") or not creds:
            return {}
        config = facts.config
        # requiresValidCertificate: the app checks the certificate, which names the FQDN.
        server = (
            config.mail_server_host if options.get("requiresValidCertificate")
            else config.mail_server
        )
        address = creds["username"]
        env = {
            "MAIL_SMTP_SERVER": server,
            "MAIL_SMTP_PORT": str(config.smtp_port),
            "MAIL_SMTPS_PORT": str(config.smtps_port),
            "MAIL_SMTP_USERNAME": address,
            "MAIL_SMTP_PASSWORD": creds["password"],
            "MAIL_FROM": address,
            "MAIL_DOMAIN": address.rpartition("@")[2],
        }
        if options.get("supportsDisplayName"):
            env["MAIL_FROM_DISPLAY_NAME"] = (
                creds.get("display_name") or facts.manifest.title or facts.app.fqdn
            )
        return env


class RecvmailAddon:
    name = "recvmail"

    async def setup(self, ctx: AddonSetup) -> None:
        current = await ctx.store.apps.credentials(ctx.app.id, self.name)
        address = await app_address(ctx)
        wanted = {
            "username": address,
            "password": current.get("password") or secrets.token_hex(PASSWORD_BYTES),
        }
        await replace_credentials(ctx, self.name, wanted)
        await _ensure_inbox(ctx, address)

    async def teardown(self, ctx: AddonSetup) -> None:
        if await ctx.store.apps.credentials(ctx.app.id, self.name):
            await ctx.store.apps.set_credentials(ctx.app.id, self.name, {})
        for mailbox in await ctx.store.mail.owned_by(ctx.app.id):
            if mailbox.owner_type == "app":
                await ctx.store.mail.remove_mailbox(mailbox.address)

    def env(self, facts: EnvFacts) -> dict[str, str]:
        creds = facts.credentials.get(self.name)
        if not creds:
            return {}
        address = creds["username"]
        domain = address.rpartition("@")[2]
        if domain not in facts.receiving_domains:
            # The seed: absent when the server does not receive mail for the domain.
            return {}
        config = facts.config
        return {
            "MAIL_IMAP_SERVER": config.mail_server,
            "MAIL_IMAP_PORT": str(config.imap_port),
            "MAIL_IMAPS_PORT": str(config.imaps_port),
            "MAIL_POP3_PORT": str(config.pop3_port),
            "MAIL_POP3S_PORT": str(config.pop3s_port),
            "MAIL_IMAP_USERNAME": address,
            "MAIL_IMAP_PASSWORD": creds["password"],
            "MAIL_TO": address,
            "MAIL_TO_DOMAIN": domain,
            # Cloudron 2019 set it for recvmail too; the same value sendmail gives.
            "MAIL_DOMAIN": domain,
        }


async def _ensure_inbox(ctx: AddonSetup, address: str) -> None:
    """Give the app a mailbox to receive into, once its domain receives mail."""
    local, _, domain = address.rpartition("@")
    try:
        if not (await ctx.store.mail.domain(domain)).receives:
            return
    except NotFound:
        return
    try:
        existing = await ctx.store.mail.mailbox(address)
    except NotFound:
        await ctx.store.mail.add_mailbox(local, domain, owner_id=ctx.app.id, owner_type="app")
        return
    if existing.owner_id != ctx.app.id:
        # Someone else's mailbox: delivering the app's mail there would leak it.
        raise InstallError(
            f"{address} is already a mailbox of {existing.owner_type} {existing.owner_id}; "
            "choose another mailbox for the app (app configure --mailbox)"
        )


class EmailAddon:
    """For webmail apps: where the mail servers are. No credentials: users log in as
    themselves (C.1)."""

    name = "email"

    async def setup(self, ctx: AddonSetup) -> None:
        return None

    async def teardown(self, ctx: AddonSetup) -> None:
        return None

    def env(self, facts: EnvFacts) -> dict[str, str]:
        config = facts.config
        return {
            "EMAIL_SMTP_SERVER": config.mail_server,
            "EMAIL_SMTP_PORT": str(config.smtp_port),
            "EMAIL_SMTPS_PORT": str(config.smtps_port),
            "EMAIL_STARTTLS_PORT": str(config.starttls_port),
            "EMAIL_IMAP_SERVER": config.mail_server,
            "EMAIL_IMAP_PORT": str(config.imap_port),
            "EMAIL_IMAPS_PORT": str(config.imaps_port),
            "EMAIL_SIEVE_SERVER": config.mail_server,
            "EMAIL_SIEVE_PORT": str(config.sieve_port),
            "EMAIL_DOMAIN": facts.app.domain,
            "EMAIL_DOMAINS": ",".join(facts.receiving_domains),
            "EMAIL_SERVER_HOST": config.mail_server_host,
            # Cloudron 2019's email addon: where a webmail app looks mailboxes up.
            "LDAP_MAILBOXES_BASE_DN": MAILBOXES_BASE_DN,
        }
