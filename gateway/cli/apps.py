"""``gateway app``: install, list, show, env, configure, restart and uninstall apps.

These commands write the store; a ``gateway serve`` with ``[containers] enabled`` hears
the change and starts, replaces or stops the app, and re-routes the proxy, without a
restart. ``app env`` prints exactly the environment the app gets (secrets included: it is
for the operator's terminal, and nothing here logs it). An APP argument is an app id or its
FQDN.
"""

from __future__ import annotations

import argparse
import functools
import shlex
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from gateway.cli.output import (
    Refused,
    UsageError,
    add_json_flag,
    print_fields,
    print_json,
    print_table,
    short_time,
    timestamp,
)
from gateway.cli.secrets_input import confirm
from gateway.cli.session import CommandSession, store_command
from gateway.containers.addons import wall_rule
from gateway.containers.backends import docker_backend
from gateway.containers.environment import app_environment
from gateway.containers.errors import BackendError, ContainerError, ManifestError
from gateway.containers.installer import KEEP, AppInstaller, InstallRequest, Keep, Reconfiguration
from gateway.containers.manifest import Manifest, load_manifest, manifest_of
from gateway.store import Store
from gateway.store.models import AccessRestriction, App, AppLaunch, AppRuntime

APP_HELP = "an app id or its FQDN"
ACCESS_HELP = (
    "who may use the app besides admins: everyone, admins, or users:NAME,…;groups:NAME,… "
    "(either part may be left out)"
)

Body = Callable[[argparse.Namespace, CommandSession], Awaitable[int]]


def register(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = sub.add_parser("app", help="manage apps")
    inner = parser.add_subparsers(dest="app_command", metavar="ACTION")
    inner.required = True

    install = inner.add_parser("install", help="install an app from its CloudronManifest.json")
    install.add_argument("--manifest", type=Path, required=True, metavar="FILE")
    install.add_argument("--location", required=True, help="subdomain ('' for the bare domain)")
    install.add_argument("--domain", required=True)
    _add_launch_flags(install)
    install.add_argument("--access", metavar="SPEC", help=ACCESS_HELP)
    install.add_argument(
        "--no-sso", action="store_true",
        help="install without the platform's users (only if the manifest has optionalSso)",
    )
    install.add_argument("--mailbox", metavar="NAME", help="mail name (default <location>.app)")
    install.set_defaults(handler=_install)

    listing = inner.add_parser("list", help="list apps with their state and health")
    listing.set_defaults(handler=_list)

    show = inner.add_parser("show", help="show one app (no secrets)")
    show.add_argument("app", metavar="APP", help=APP_HELP)
    show.set_defaults(handler=_show)

    env = inner.add_parser(
        "env", help="print exactly the environment the platform gives the app (secrets too)"
    )
    env.add_argument("app", metavar="APP", help=APP_HELP)
    env.set_defaults(handler=_env)

    configure = inner.add_parser("configure", help="change an installed app")
    configure.add_argument("app", metavar="APP", help=APP_HELP)
    configure.add_argument("--manifest", type=Path, metavar="FILE", help="a new manifest")
    configure.add_argument("--location")
    configure.add_argument("--domain")
    _add_launch_flags(configure)
    configure.add_argument("--access", metavar="SPEC", help=ACCESS_HELP)
    configure.add_argument("--mailbox", metavar="NAME", help="the app's mail name")
    configure.add_argument(
        "--mail-display-name", metavar="NAME",
        help="sender display name (apps with sendmail supportsDisplayName)",
    )
    configure.set_defaults(handler=_configure)

    restart = inner.add_parser("restart", help="recreate the app's container or process")
    restart.add_argument("app", metavar="APP", help=APP_HELP)
    restart.set_defaults(handler=_restart)

    uninstall = inner.add_parser(
        "uninstall", help="remove the app, its credentials, sessions, app passwords and data"
    )
    uninstall.add_argument("app", metavar="APP", help=APP_HELP)
    uninstall.add_argument("--yes", action="store_true", help="do not ask for confirmation")
    uninstall.set_defaults(handler=_uninstall)

    for action in (install, listing, show, env, configure, restart, uninstall):
        add_json_flag(action)


def _add_launch_flags(parser: argparse.ArgumentParser) -> None:
    how = parser.add_mutually_exclusive_group()
    how.add_argument("--image", help="Docker image to run (docker backend)")
    how.add_argument("--command", metavar="CMD", help="command to run (local backend)")
    how.add_argument("--upstream", metavar="URL", help="an app that runs elsewhere, at URL")


def container_command(body: Body) -> Callable[[argparse.Namespace, Any], Awaitable[int]]:
    """``store_command`` that also turns the container manager's refusals into exit 1."""

    @functools.wraps(body)
    async def wrapped(args: argparse.Namespace, session: CommandSession) -> int:
        try:
            return await body(args, session)
        except ManifestError as exc:
            raise Refused(str(exc), "invalid_manifest") from None
        except ContainerError as exc:
            raise Refused(str(exc), "refused") from None

    return store_command(wrapped)


# -- records ---------------------------------------------------------------------------------


async def app_record(store: Store, app: App, runtime: AppRuntime | None) -> dict[str, Any]:
    """The JSON form of an app: these keys are what scripts rely on. No secret."""
    credentials = await store.apps.all_credentials(app.id)
    mail = credentials.get("sendmail") or credentials.get("recvmail") or {}
    manifest = app.manifest
    return {
        "id": app.id,
        "fqdn": app.fqdn,
        "location": app.location,
        "domain": app.domain,
        "manifest_id": manifest.get("id"),
        "title": manifest.get("title"),
        "version": manifest.get("version"),
        "addons": sorted(manifest.get("addons") or {}),
        "sso": app.sso,
        "access": _access_json(app.access),
        "backend": runtime.launch.backend if runtime else None,
        "image": runtime.launch.image if runtime else None,
        "command": list(runtime.launch.command) if runtime else [],
        "upstream": app.upstream,
        "address": app.address,
        "ldap_server": credentials.get("ldap", {}).get("server"),
        "mail_address": mail.get("username"),
        "state": runtime.state if runtime else None,
        "detail": runtime.detail if runtime else None,
        "health": runtime.health if runtime else None,
        "health_detail": runtime.health_detail if runtime else None,
        "container_id": runtime.container_id if runtime else None,
        "created_at": timestamp(app.created_at),
    }


def _access_json(access: AccessRestriction | None) -> dict[str, list[str]] | None:
    if access is None:
        return None
    return {"users": list(access.users), "groups": list(access.groups)}


async def parse_access(store: Store, spec: str) -> AccessRestriction | None:
    """``everyone`` → no restriction; ``admins`` → nobody else; else users/groups by name."""
    text = spec.strip()
    if text == "everyone":
        return None
    if text == "admins":
        return AccessRestriction()
    users: list[str] = []
    groups: list[str] = []
    for part in filter(None, (p.strip() for p in text.split(";"))):
        kind, sep, names = part.partition(":")
        if not sep or kind.strip() not in ("users", "groups"):
            raise UsageError(f"--access {spec!r}: expected users:A,B;groups:C ({part!r})")
        for name in filter(None, (n.strip() for n in names.split(","))):
            if kind.strip() == "users":
                users.append((await store.users.resolve(name)).id)
            else:
                groups.append((await store.groups.resolve(name)).id)
    return AccessRestriction(users=tuple(users), groups=tuple(groups))


def _launch(args: argparse.Namespace) -> AppLaunch | None:
    if args.image:
        return AppLaunch("docker", image=args.image)
    if args.command:
        try:
            command = tuple(shlex.split(args.command))
        except ValueError as exc:
            raise UsageError(f"--command: {exc}") from None
        if not command:
            raise UsageError("--command is empty")
        return AppLaunch("local", command=command)
    if args.upstream:
        return AppLaunch("external")
    return None


def _manifest(path: Path, session: CommandSession) -> Manifest:
    return load_manifest(path, reserved_ports=session.config.containers.reserved_ports())


def _upstream(args: argparse.Namespace) -> str | None:
    return args.upstream.rstrip("/") if args.upstream else None


# -- commands --------------------------------------------------------------------------------


@container_command
async def _install(args: argparse.Namespace, session: CommandSession) -> int:
    manifest = _manifest(args.manifest, session)
    launch = _launch(args)
    if launch is None:
        if manifest.docker_image and session.config.containers.backend == "docker":
            launch = AppLaunch("docker", image=manifest.docker_image)
        else:
            raise UsageError("say how the app runs: --image, --command or --upstream")
    access = await parse_access(session.store, args.access) if args.access else None
    installer = AppInstaller(session.store, session.config)
    app = await installer.install(
        InstallRequest(
            manifest=manifest, location=args.location, domain=args.domain, launch=launch,
            upstream=_upstream(args), access=access, sso=False if args.no_sso else None,
            mailbox=args.mailbox,
        )
    )
    record = await app_record(session.store, app, await session.store.apps.runtime(app.id))
    if args.json:
        print_json(record)
    else:
        print(f"installed {app.fqdn} ({app.id}); a gateway serving [containers] runs it")
    return 0


@container_command
async def _list(args: argparse.Namespace, session: CommandSession) -> int:
    store = session.store
    runtimes = await store.apps.runtimes()
    apps = await store.apps.list()
    records = [await app_record(store, app, runtimes.get(app.id)) for app in apps]
    if args.json:
        print_json(records)
        return 0
    print_table(
        ["fqdn", "backend", "state", "health", "upstream", "id"],
        [[r["fqdn"], r["backend"], r["state"], r["health"], r["upstream"], r["id"]]
         for r in records],
    )
    return 0


@container_command
async def _show(args: argparse.Namespace, session: CommandSession) -> int:
    store = session.store
    app = await AppInstaller(store, session.config).resolve(args.app)
    runtime = await store.apps.runtime(app.id)
    record = await app_record(store, app, runtime)
    wall = wall_rule(app, manifest_of(app, session.config.containers))
    record["wall"] = wall.as_json() if wall else None
    if args.json:
        print_json(record)
        return 0
    launch = record["image"] or shlex.join(record["command"]) or "-"
    print_fields({
        "id": record["id"],
        "fqdn": record["fqdn"],
        "title": record["title"],
        "version": record["version"],
        "addons": record["addons"],
        "sso": record["sso"],
        "access": _access_text(app.access),
        "login wall": _wall_text(record["wall"]),
        "backend": record["backend"],
        "runs": launch,
        "upstream": record["upstream"],
        "address": record["address"],
        "ldap server": record["ldap_server"],
        "mail address": record["mail_address"],
        "state": _with_detail(record["state"], record["detail"]),
        "health": _with_detail(record["health"], record["health_detail"]),
        "container": record["container_id"],
        "created": short_time(app.created_at),
    })
    return 0


def _access_text(access: AccessRestriction | None) -> str:
    if access is None:
        return "everyone"
    if not access.users and not access.groups:
        return "admins only"
    return f"users: {', '.join(access.users) or '-'}; groups: {', '.join(access.groups) or '-'}"


def _wall_text(wall: dict[str, Any] | None) -> str:
    if wall is None:
        return "none"
    flags = [name for name in ("basicAuth", "supportsBearerAuth") if wall[name]]
    return " ".join([wall["path"] or "everything", *flags])


def _with_detail(value: str | None, detail: str | None) -> str | None:
    return f"{value} ({detail})" if value and detail else value


@container_command
async def _env(args: argparse.Namespace, session: CommandSession) -> int:
    app = await AppInstaller(session.store, session.config).resolve(args.app)
    env = await app_environment(session.store, session.config, app)
    if args.json:
        print_json(env)
    else:
        for name, value in env.items():
            print(f"{name}={value}")
    return 0


@container_command
async def _configure(args: argparse.Namespace, session: CommandSession) -> int:
    installer = AppInstaller(session.store, session.config)
    app = await installer.resolve(args.app)
    access: AccessRestriction | Keep | None = KEEP
    if args.access is not None:
        access = await parse_access(session.store, args.access)
    change = Reconfiguration(
        location=args.location,
        domain=args.domain,
        manifest=_manifest(args.manifest, session) if args.manifest else None,
        access=access,
        launch=_launch(args),
        upstream=_upstream(args),
        mailbox=args.mailbox,
        mail_display_name=args.mail_display_name,
    )
    if change == Reconfiguration():
        raise UsageError("nothing to change: give at least one option")
    app = await installer.configure(app, change)
    if args.json:
        print_json(await app_record(session.store, app, await session.store.apps.runtime(app.id)))
    else:
        print(f"{app.fqdn}: configured")
    return 0


@container_command
async def _restart(args: argparse.Namespace, session: CommandSession) -> int:
    installer = AppInstaller(session.store, session.config)
    app = await installer.resolve(args.app)
    generation = await installer.restart(app)
    if args.json:
        print_json({"id": app.id, "fqdn": app.fqdn, "generation": generation})
    else:
        print(f"{app.fqdn}: restart requested")
    return 0


@container_command
async def _uninstall(args: argparse.Namespace, session: CommandSession) -> int:
    installer = AppInstaller(session.store, session.config)
    app = await installer.resolve(args.app)
    if not confirm(f"Uninstall {app.fqdn} and delete its data?", assume_yes=args.yes):
        print("not uninstalled")
        return 1
    runtime = await session.store.apps.runtime(app.id)
    container_removed = None
    if runtime is not None and runtime.launch.backend == "docker":
        container_removed = await _remove_container(session, app)
    await installer.uninstall(app)
    if args.json:
        print_json({"id": app.id, "fqdn": app.fqdn, "removed": True,
                    "container_removed": container_removed})
    else:
        print(f"{app.fqdn}: uninstalled")
    return 0


async def _remove_container(session: CommandSession, app: App) -> bool:
    """Stop the container now, rather than leave it to a serving gateway that may be down
    (dockerd would keep restarting it). A Docker that does not answer is not a reason to
    keep the app: the next gateway start removes containers of apps no longer installed."""
    try:
        backend = await docker_backend(session.config, session.store)
    except BackendError as exc:
        print(f"gateway: warning: container left for the gateway to remove: {exc}",
              file=sys.stderr)
        return False
    try:
        await backend.remove(app.id)
        return True
    except BackendError as exc:
        print(f"gateway: warning: {exc}", file=sys.stderr)
        return False
    finally:
        await backend.close(0)


__all__ = ["app_record", "parse_access", "register"]
