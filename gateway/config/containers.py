"""The [containers] section: how apps run (Docker or local processes) and what they are told.

The addresses and ports below are what an *app* is told to use (its ``CLOUDRON_*``
environment), not where the gateway's own servers listen: a container on a bridge reaches
the host through the bridge's gateway address, a local process through loopback. Their
defaults match the suite's own defaults on loopback.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

from gateway.config.fields import doc


@dataclass(frozen=True)
class ContainersConfig:
    enabled: bool = field(default=True, metadata=doc("Run and watch installed apps."))
    backend: Literal["local", "docker"] = field(
        default="local",
        metadata=doc(
            "local: apps are child processes of the gateway (installed with --command); "
            "docker: apps are containers run through the Docker Engine API (--image)."
        ),
    )
    docker_host: str = field(
        default="unix:///var/run/docker.sock",
        metadata=doc("Docker Engine API address: unix:///path/docker.sock or tcp://HOST:PORT."),
    )
    docker_network: str = field(
        default="host",
        metadata=doc(
            "Network app containers join. host: they share the host's network and each gets "
            "a loopback address of its own for LDAP (so the directory can tell them apart); "
            "any other name: a bridge network, where the container's address identifies it."
        ),
    )
    restart_policy: Literal["always", "unless-stopped", "on-failure", "no"] = field(
        default="always",
        metadata=doc("Docker restart policy of app containers (Cloudron uses always)."),
    )
    apps_dir: Path = field(
        default=Path("apps"),
        metadata=doc(
            "Per-app data (mounted at /app/data; a local process's working directory) and "
            "logs, one directory per app id. Relative: to runtime.data_dir."
        ),
    )
    health_interval: float = field(
        default=10.0,
        metadata=doc("Seconds between polls of each app's healthCheckPath.", min=0.1, max=3600.0),
    )
    health_timeout: float = field(
        default=5.0,
        metadata=doc("Seconds a health poll may take before the app counts as unhealthy.",
                     min=0.1, max=600.0),
    )
    stop_timeout: float = field(
        default=10.0,
        metadata=doc("Seconds an app gets between SIGTERM and SIGKILL.", min=0.0, max=600.0),
    )
    app_scheme: Literal["https", "http"] = field(
        default="https",
        metadata=doc("Scheme of the apps' origins (CLOUDRON_APP_ORIGIN). http only for demos."),
    )
    dashboard_domain: str = field(
        default="my.localhost",
        metadata=doc("Host of the platform dashboard (CLOUDRON_WEBADMIN_ORIGIN, API_ORIGIN)."),
    )
    admin_email: str = field(
        default="admin@localhost", metadata=doc("Told to apps as CLOUDRON_ADMIN_EMAIL.")
    )
    proxy_ip: str = field(
        default="127.0.0.1",
        metadata=doc(
            "Address the reverse proxy connects to apps from; apps trust X-Forwarded-* "
            "headers from it (CLOUDRON_PROXY_IP)."
        ),
    )
    ldap_server: str = field(
        default="127.0.0.1",
        metadata=doc(
            "LDAP server address given to apps on a bridge network (the bridge's gateway "
            "address). Host-network containers and local processes get their own loopback "
            "address from ldap_loopback_network instead."
        ),
    )
    ldap_port: int = field(
        default=3002, metadata=doc("LDAP port given to apps.", min=1, max=65535)
    )
    ldap_loopback_network: str = field(
        default="127.0.1.0/24",
        metadata=doc(
            "Loopback addresses handed out, one per host-network or local app, as its "
            "CLOUDRON_LDAP_SERVER; the LDAP server tells apps apart by the one dialled."
        ),
    )
    mail_server: str = field(
        default="127.0.0.1",
        metadata=doc("Mail server address given to apps (SMTP, IMAP, POP3, Sieve)."),
    )
    mail_server_host: str = field(
        default="mail.localhost",
        metadata=doc(
            "Mail server FQDN, for apps that need a valid certificate "
            "(sendmail requiresValidCertificate) and CLOUDRON_EMAIL_SERVER_HOST."
        ),
    )
    smtp_port: int = field(
        default=2525,
        metadata=doc("App SMTP port, plain (no STARTTLS, as Cloudron).", min=1, max=65535),
    )
    smtps_port: int = field(
        default=2465, metadata=doc("App SMTP port, implicit TLS.", min=1, max=65535)
    )
    starttls_port: int = field(
        default=2587,
        metadata=doc("SMTP submission port with STARTTLS (email addon).", min=1, max=65535),
    )
    imap_port: int = field(default=9143, metadata=doc("IMAP port, plain.", min=1, max=65535))
    imaps_port: int = field(
        default=9993, metadata=doc("IMAP port, implicit TLS.", min=1, max=65535)
    )
    pop3_port: int = field(default=9110, metadata=doc("POP3 port, plain.", min=1, max=65535))
    pop3s_port: int = field(
        default=9995, metadata=doc("POP3 port, implicit TLS.", min=1, max=65535)
    )
    sieve_port: int = field(
        default=4190, metadata=doc("ManageSieve port (email addon).", min=1, max=65535)
    )

    def reserved_ports(self) -> frozenset[int]:
        """Ports an app may not claim in tcpPorts/udpPorts: the ones we tell apps about."""
        return frozenset({
            self.ldap_port, self.smtp_port, self.smtps_port, self.starttls_port,
            self.imap_port, self.imaps_port, self.pop3_port, self.pop3s_port, self.sieve_port,
        })
