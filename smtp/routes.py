"""Which way a message leaves: straight to the recipient's MX, or through a smarthost.

As on Cloudron the relay is chosen by the envelope sender's domain (its ``relay`` setting,
``domain_selector=mail_from``, C.6): ``cloudron-smtp`` (the default) delivers to each
recipient domain's MX; ``external-smtp`` and the provider presets hand everything to one
smarthost over STARTTLS with AUTH; ``noop`` sends nothing (refused at MAIL FROM). A bounce
(null sender) follows the relay of the domain it returns to, else goes direct.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from smtp import addresses
from smtp.domains import DomainIndex

log = logging.getLogger(__name__)

# Cloudron's provider presets (C.6); the form's default port for a smarthost is 587.
PRESETS: dict[str, tuple[str, int]] = {
    "ses-smtp": ("email-smtp.us-east-1.amazonaws.com", 587),
    "google-smtp": ("smtp.gmail.com", 587),
    "mailgun-smtp": ("smtp.mailgun.org", 587),
    "postmark-smtp": ("smtp.postmarkapp.com", 587),
    "sendgrid-smtp": ("smtp.sendgrid.net", 587),
}
DIRECT = "cloudron-smtp"
SMARTHOST_PROVIDERS = frozenset({"external-smtp", *PRESETS})
PROVIDERS = frozenset({DIRECT, "noop", *SMARTHOST_PROVIDERS})


@dataclass(frozen=True)
class MxRoute:
    domain: str

    def describe(self) -> str:
        return f"MX of {self.domain}"


@dataclass(frozen=True)
class SmarthostRoute:
    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    accept_self_signed: bool = False

    def describe(self) -> str:
        return f"smarthost {self.host}:{self.port}"


@dataclass(frozen=True)
class LocalRoute:
    """This gateway's own inbound listener: mail for a domain it receives is delivered
    there, through the same recipient checks, quota and Maildir delivery as mail from
    outside, with the queue's retries if the listener is busy."""

    host: str
    port: int

    def describe(self) -> str:
        return f"local delivery {self.host}:{self.port}"


Route = MxRoute | SmarthostRoute | LocalRoute


def smarthost_of(relay: dict[str, Any]) -> SmarthostRoute | None:
    """The smarthost a domain's ``relay`` names, or None for direct delivery."""
    provider = relay.get("provider") or DIRECT
    if provider not in SMARTHOST_PROVIDERS:
        return None
    host, port = PRESETS.get(provider, ("", 587))
    host = str(relay.get("host") or host)
    if not host:
        return None
    return SmarthostRoute(
        host=host,
        port=int(relay.get("port") or port),
        username=relay.get("username") or None,
        password=relay.get("password") or None,
        accept_self_signed=bool(relay.get("acceptSelfSignedCerts", False)),
    )


class Router:
    def __init__(
        self, domains: DomainIndex, *, local: Callable[[], LocalRoute | None] | None = None
    ) -> None:
        self._domains = domains
        # Asked per message: the inbound listener's address is known only once it started.
        self._local = local or (lambda: None)

    async def routes(self, sender: str, recipients: list[str]) -> dict[Route, list[str]]:
        """Recipients grouped by the way their copy leaves."""
        selector = addresses.domain_of(sender) if sender else None
        grouped: dict[Route, list[str]] = {}
        local = self._local()
        for rcpt in recipients:
            if local is not None:
                own = await self._domains.get(addresses.domain_of(rcpt))
                if own is not None and own.receives:
                    grouped.setdefault(local, []).append(rcpt)
                    continue
            hosted = await self._domains.get(selector or addresses.domain_of(rcpt))
            route: Route | None = smarthost_of(hosted.relay) if hosted is not None else None
            if route is None:
                route = MxRoute(addresses.domain_of(rcpt))
            grouped.setdefault(route, []).append(rcpt)
        return grouped
