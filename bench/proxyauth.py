"""The login wall's cost, measured with wrk (Debian) against named baselines, in one run.

    .venv/bin/python bench/proxyauth.py            # 3 rounds of 5 s per target (~2 min)
    .venv/bin/python bench/proxyauth.py --quick    # 1 round of 3 s, to try it out

Six targets, each loaded by ``wrk`` with a valid session cookie, in turn, for several rounds:

  upstream      the app alone (an aiohttp app answering 19 bytes, uvloop, its own process)
  nginx         nginx (1 worker) proxying to the app: the baseline a wall is compared with
  wall          ``gateway serve`` with [proxyauth]: the wall as the reverse proxy
  nginx+fa      nginx (1 worker) asking the wall's forward-auth endpoint (auth_request),
                then proxying to the app: the documented nginx setup (docs/forward-auth.md)
  fa-decision   the forward-auth endpoint alone, asked as nginx asks it: checks/s under load
  fa-latency    the same with one connection: what one decision costs (p50)

and prints requests/s, p50 and p99 latency (the median of the rounds), with ratios. Targets
from the issue: the wall at least 0.3x nginx's requests/s; the decision at most 1 ms p50 and
at least 5 000 checks/s on one core (the gateway is one Python process: one core). Client,
servers and nginx share the machine's cores, so compare ratios, not absolute figures; run on
an idle machine.

Every process is started here and stopped by its own PID; the store is a temporary SQLite
file holding one user, one walled app and the session wrk presents.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.proxyauth_nginx import (  # noqa: E402
    NGINX,
    forward_auth_server,
    nginx_conf,
    plain_server,
)

APP_HOST = "app.bench.test"
AUTH_PATH = "/_gateway/auth"
COOKIE = "__Host-gateway_session"
READY_TIMEOUT = 30.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_for_port(port: int, process: subprocess.Popen[bytes], what: str) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise SystemExit(f"{what} exited at start (code {process.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.05)
    raise SystemExit(f"{what} is not listening on {port} after {READY_TIMEOUT:.0f}s")


# -- the app behind the wall (run as a child: `proxyauth.py upstream PORT`) ------------------


def serve_upstream(port: int) -> None:
    from aiohttp import web

    async def hello(request: web.Request) -> web.Response:
        return web.Response(text="hello from the app\n")

    async def run() -> None:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port).start()
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        await stop.wait()
        await runner.cleanup()

    try:
        import uvloop

        uvloop.run(run())
    except ImportError:
        asyncio.run(run())


# -- the store the gateway serves from ---------------------------------------------------


async def prepare_store(data_dir: Path, upstream: str) -> str:
    """One user, one app walled everywhere, one live session; answer the session token."""
    from gateway.auth import hasher_for
    from gateway.config import AuthConfig
    from gateway.store import open_store

    store = await open_store("sqlite:///gateway.db", data_dir=data_dir)
    hasher = hasher_for(AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1))
    try:
        user = await store.users.add(
            username="bench", email="bench@bench.test",
            password_hash=await hasher.hash(secrets.token_urlsafe(16)),
        )
        app = await store.apps.add(
            location="app", domain="bench.test",
            manifest={"title": "Bench", "addons": {"proxyAuth": {}}}, upstream=upstream,
        )
        token = secrets.token_urlsafe(32)
        await store.sessions.put(
            token, user_id=user.id, app_id=app.id, expires_at=time.time() + 86_400,
            data={"method": "password"},
        )
        return token
    finally:
        hasher.close()
        await store.close()


def gateway_config(path: Path, data_dir: Path, port: int) -> None:
    path.write_text(f"""
[runtime]
data_dir = "{data_dir}"
[admin]
enabled = false
[demo]
enabled = false
[log]
level = "warning"
[proxyauth]
enabled = true
listen = "127.0.0.1:{port}"
trusted_proxies = ["127.0.0.1/32"]
# Only the wall: the other servers would take their fixed ports, and with the container
# manager on, the wall routes the apps it runs, not the one app this bench put in the store.
[ldap]
enabled = false
[mail]
enabled = false
[containers]
enabled = false
""")


# -- wrk ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    bad: int


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    found = re.match(r"([\d.]+)(us|ms|s)", text)
    if not found:
        raise ValueError(f"not a latency: {text!r}")
    return float(found.group(1)) * _UNITS[found.group(2)]


def run_wrk(
    name: str, url: str, headers: dict[str, str], *, duration: int, connections: int,
    threads: int,
) -> Result:
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{duration}s", "--latency"]
    for key, value in headers.items():
        args += ["-H", f"{key}: {value}"]
    done = subprocess.run(
        [*args, url], capture_output=True, text=True, timeout=duration + 60, check=False
    )
    out = done.stdout
    if done.returncode != 0:
        raise SystemExit(f"wrk failed on {name}: {done.stderr or out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    p50 = _ms(re.search(r"\s50%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    p99 = _ms(re.search(r"\s99%\s+(\S+)", out).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    bad_match = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    bad = int(bad_match.group(1)) if bad_match else 0
    if errors:
        print(f"  {name}: {errors.group(0)}")
    return Result(name, rps, p50, p99, total, bad)


# -- the run ------------------------------------------------------------------------------


def stop(process: subprocess.Popen[bytes], sig: int = signal.SIGTERM) -> None:
    if process.poll() is None:
        process.send_signal(sig)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=5)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else "")
    parser.add_argument("--quick", action="store_true", help="one round of 3 s per target")
    parser.add_argument("--duration", type=int, default=5, help="seconds per target and round")
    parser.add_argument("--rounds", type=int, default=3, help="rounds over all targets")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="wrk threads")
    args = parser.parse_args()
    duration = 3 if args.quick else args.duration
    rounds = 1 if args.quick else args.rounds
    for tool in ("wrk", NGINX):
        if shutil.which(tool) is None and not Path(tool).exists():
            raise SystemExit(f"{tool} not found: apt-get install wrk nginx-light")

    scratch = Path(tempfile.mkdtemp(prefix="bench-proxyauth-"))
    processes: list[subprocess.Popen[bytes]] = []
    try:
        up_port, wall_port, nginx_port, fa_port = (free_port() for _ in range(4))
        data_dir = scratch / "data"
        data_dir.mkdir()
        token = asyncio.run(prepare_store(data_dir, f"http://127.0.0.1:{up_port}"))
        logs = open(scratch / "children.log", "wb")  # noqa: SIM115

        upstream = subprocess.Popen(
            [sys.executable, __file__, "upstream", str(up_port)], stdout=logs, stderr=logs
        )
        processes.append(upstream)
        wait_for_port(up_port, upstream, "the upstream app")

        config = scratch / "gateway.toml"
        gateway_config(config, data_dir, wall_port)
        wall = subprocess.Popen(
            [sys.executable, "-m", "gateway", "-c", str(config), "serve"],
            cwd=ROOT, stdout=logs, stderr=logs,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        processes.append(wall)
        wait_for_port(wall_port, wall, "gateway serve")

        servers = plain_server(listen=nginx_port, app=up_port) + forward_auth_server(
            listen=fa_port, wall=wall_port, app=up_port, auth_path=AUTH_PATH
        )
        prefix = scratch / "nginx"
        prefix.mkdir()
        (prefix / "nginx.conf").write_text(nginx_conf(prefix, servers, workers=1))
        nginx = subprocess.Popen(
            [NGINX, "-p", str(prefix), "-c", str(prefix / "nginx.conf"),
             "-e", str(prefix / "error.log")],
            stdout=logs, stderr=logs,
        )
        processes.append(nginx)
        wait_for_port(nginx_port, nginx, "nginx")
        wait_for_port(fa_port, nginx, "nginx")

        cookie = {"Cookie": f"{COOKIE}={token}"}
        host = {"Host": APP_HOST}
        targets = [
            ("upstream", f"http://127.0.0.1:{up_port}/", host),
            ("nginx", f"http://127.0.0.1:{nginx_port}/", host),
            ("wall", f"http://127.0.0.1:{wall_port}/", {**host, **cookie}),
            ("nginx+fa", f"http://127.0.0.1:{fa_port}/", {**host, **cookie}),
        ]
        check = {
            **cookie, "X-Forwarded-Host": APP_HOST, "X-Forwarded-Uri": "/",
            "X-Forwarded-Method": "GET", "X-Forwarded-Proto": "https",
        }
        check_url = f"http://127.0.0.1:{wall_port}{AUTH_PATH}/nginx"
        targets += [("fa-decision", check_url, check), ("fa-latency", check_url, check)]
        print(f"wrk -t{args.threads} -c{args.connections} -d{duration}s per target, "
              f"{rounds} round(s); {os.cpu_count()} CPUs, load {os.getloadavg()[0]:.2f}")
        runs: dict[str, list[Result]] = {name: [] for name, _, _ in targets}
        for name, url, headers in targets:
            # A short warm-up: connection pools, caches, the session read once.
            run_wrk(name, url, headers, duration=1, connections=args.connections, threads=1)
        # Rounds over every target, not one long run each: a shared machine's load shifts
        # over a minute, and each ratio should compare runs made under the same load.
        for _ in range(rounds):
            for name, url, headers in targets:
                connections = 1 if name == "fa-latency" else args.connections
                runs[name].append(run_wrk(
                    name, url, headers, duration=duration, connections=connections,
                    threads=min(args.threads, connections),
                ))
        results = {name: median_run(found) for name, found in runs.items()}
        report(results, rounds)
    finally:
        for process in reversed(processes):
            stop(process, signal.SIGQUIT if process.args[0] == NGINX else signal.SIGTERM)
        shutil.rmtree(scratch, ignore_errors=True)
    # Figures over refusals or errors measure the wrong thing: the run failed.
    return 0 if all(r.bad == 0 for r in results.values()) else 1


def median_run(runs: list[Result]) -> Result:
    """The run with the median requests/s (its latencies come with it)."""
    return sorted(runs, key=lambda r: r.rps)[len(runs) // 2]


def report(results: dict[str, Result], rounds: int) -> None:
    base, nginx = results["upstream"], results["nginx"]
    print(f"\nmedian of {rounds} round(s) per target")
    print(f"{'target':<12} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'x upstream':>11} "
          f"{'x nginx':>8} {'non-2xx':>8}")
    for r in results.values():
        print(f"{r.name:<12} {r.rps:>9.0f} {r.p50_ms:>8.2f} {r.p99_ms:>8.2f} "
              f"{r.rps / base.rps:>11.2f} {r.rps / nginx.rps:>8.2f} {r.bad:>8}")
    wall, decision, one = results["wall"], results["fa-decision"], results["fa-latency"]
    print()
    verdicts = [
        (f"wall >= 0.3x nginx req/s ({wall.rps / nginx.rps:.2f}x)", wall.rps >= 0.3 * nginx.rps),
        (f"forward-auth decision p50 <= 1 ms ({one.p50_ms:.2f} ms, one connection)",
         one.p50_ms <= 1.0),
        (f"forward-auth >= 5000 checks/s ({decision.rps:.0f})", decision.rps >= 5000),
        ("every answer 2xx", all(r.bad == 0 for r in results.values())),
    ]
    for text, ok in verdicts:
        print(f"  [{'met' if ok else 'MISSED'}] {text}")


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "upstream":
        serve_upstream(int(sys.argv[2]))
    else:
        sys.exit(main())
