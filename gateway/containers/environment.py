"""The environment an app gets: standard variables, then each addon's, then its ports.

One function composes it for the CLI's ``app env`` and for the service starting the app, so
what the operator is shown is what the app gets. Names follow the manifest version (C.1):
version 1 gets bare names (``MAIL_SMTP_SERVER``), version 2 ``CLOUDRON_MAIL_SMTP_SERVER``;
``CLOUDRON``, ``CLOUDRON_PROXY_IP``, ``CLOUDRON_APP_HOSTNAME`` and ``CLOUDRON_ADMIN_EMAIL``
carry the prefix in both (F.2). Values are secrets in part: never log them.
"""

from __future__ import annotations

from gateway.config import Config
from gateway.containers.addons import ADDONS, EnvFacts
from gateway.containers.manifest import Manifest, manifest_of
from gateway.store import Store
from gateway.store.models import App


def compose_environment(facts: EnvFacts) -> dict[str, str]:
    app, manifest, config = facts.app, facts.manifest, facts.config
    prefix = manifest.env_prefix
    dashboard = f"{config.app_scheme}://{config.dashboard_domain}"
    env = {
        "CLOUDRON": "1",
        "CLOUDRON_PROXY_IP": config.proxy_ip,
        "CLOUDRON_APP_HOSTNAME": app.id,
        "CLOUDRON_ADMIN_EMAIL": config.admin_email,
        f"{prefix}WEBADMIN_ORIGIN": dashboard,
        f"{prefix}API_ORIGIN": dashboard,
        f"{prefix}APP_ORIGIN": f"{config.app_scheme}://{app.fqdn}",
        f"{prefix}APP_DOMAIN": app.fqdn,
    }
    for name in manifest.addons:
        for key, value in ADDONS[name].env(facts).items():
            env[prefix + key] = value
    for port in manifest.ports:
        env[port.env_name] = str(port.host_port)
    return env


async def gather_facts(store: Store, config: Config, app: App, manifest: Manifest) -> EnvFacts:
    receiving = tuple(d.domain for d in await store.mail.domains() if d.receives)
    return EnvFacts(
        app=app,
        manifest=manifest,
        config=config.containers,
        credentials=await store.apps.all_credentials(app.id),
        receiving_domains=receiving,
    )


async def app_environment(store: Store, config: Config, app: App) -> dict[str, str]:
    manifest = manifest_of(app, config.containers)
    return compose_environment(await gather_facts(store, config, app, manifest))
