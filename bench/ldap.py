"""Benchmark: this LDAP server against OpenLDAP slapd, same 10 000 users, same load tool.

    .venv/bin/python -m bench.ldap [--users 10000] [--samples 2] [--threads 4]

Loads the users into a fresh SQLite store and into a slapd (back_mdb) with the same DNs
(``cn=userNNNN,ou=users,dc=cloudron``), then runs ldclt (389-ds' C load generator; extracted
from Debian's 389-ds-base into build/ if it is not on PATH) against both in the same run:

- searches: one bound connection per thread, random equality lookups of one user
  (ours: ``(username=userXXXX)``, slapd: ``(uid=userXXXX)``; both indexed);
- binds: connect + simple bind as a random user + unbind, per operation ("warm": one bind
  per user just before, so ours answers from the verified-login cache, as it does in
  production; the cache keeps a login for 60 s, so the warm-up must come last).

Prints searches/s and binds/s for both, their ratios against the targets (searches >= 0.25x
slapd, warm binds >= 0.5x slapd) and the resident memory of our server with the users loaded.
Client and servers share this machine's cores: the numbers are relative, not absolute.
Everything runs on 127.0.0.0/8 and stops by itself.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import hashlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Run as a file, this folder comes first on sys.path, and its ratelimit.py and smtp.py would
# shadow the packages of the same names: the repository goes first instead.
sys.path.insert(0, str(ROOT))
WORK = ROOT / "build" / "bench-ldap"
LDCLT_CACHE = ROOT / "build" / "ldclt"
PASSWORD = "bench-password"
BASE = "dc=cloudron"
USERS = f"ou=users,{BASE}"
FIRST, LAST = 1000, 9999  # ldclt zero-pads XXXX: keep names four digits wide
OUR_ADDRESS = "127.0.0.2"  # the bench app's own endpoint: identifies it by local address
SLAPD_ADDRESS = "127.0.0.1"
READY_TIMEOUT = 120.0
TARGETS = {"search": 0.25, "bind": 0.5}
RSS_TARGET_MB = 150.0


# -- tools ---------------------------------------------------------------------------------

def free_port(host: str) -> int:
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def ldclt_path() -> str:
    found = shutil.which("ldclt")
    if found:
        return found
    cached = LDCLT_CACHE / "usr" / "bin" / "ldclt"
    if cached.exists():
        return str(cached)
    LDCLT_CACHE.mkdir(parents=True, exist_ok=True)
    print("extracting ldclt from Debian's 389-ds-base into build/ldclt …", flush=True)
    subprocess.run(["apt-get", "download", "389-ds-base"], cwd=LDCLT_CACHE, check=True,
                   stdout=subprocess.DEVNULL)
    deb = next(LDCLT_CACHE.glob("389-ds-base_*.deb"))
    subprocess.run(["dpkg", "-x", str(deb), str(LDCLT_CACHE)], check=True)
    return str(cached)


def need(program: str, package: str) -> str:
    path = shutil.which(program) or (f"/usr/sbin/{program}"
                                     if Path(f"/usr/sbin/{program}").exists() else None)
    if path is None:
        sys.exit(f"bench: {program} is missing; apt-get install {package} "
                 "(preseed slapd/no_configuration=true for slapd)")
    return path


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


@dataclass
class Rate:
    per_second: float
    errors: int


def ldclt(args: list[str], samples: int, threads: int) -> Rate:
    command = [ldclt_path(), *args, "-n", str(threads), "-N", str(samples), "-q"]
    done = subprocess.run(command, capture_output=True, text=True,
                          timeout=samples * 10 + 60)
    text = done.stdout + done.stderr
    match = re.search(r"Global average rate:\s+([\d.]+)/thr\s+\(([\d.]+)/sec\)", text)
    if match is None:
        sys.exit(f"bench: could not read ldclt's rate:\n{text[-2000:]}")
    # ldclt counts failed operations per LDAP result code, one line each; an operation that
    # failed still ends its loop fast, so a rate read without these would flatter a broken run.
    failures = re.findall(r"Global (?:error\s+\d+|illegal errors) .*?occurs\s+(\d+) times", text)
    return Rate(float(match.group(2)), sum(int(f) for f in failures))


# -- slapd ---------------------------------------------------------------------------------

def ssha(password: str) -> str:
    salt = os.urandom(8)
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


SLAPD_CONF = """\
include /etc/ldap/schema/core.schema
include /etc/ldap/schema/cosine.schema
include /etc/ldap/schema/inetorgperson.schema
include /etc/ldap/schema/nis.schema
modulepath /usr/lib/ldap
moduleload back_mdb
pidfile {dir}/slapd.pid
argsfile {dir}/slapd.args
threads 4
loglevel 0
database mdb
maxsize 1073741824
suffix "{base}"
rootdn "cn=admin,{base}"
rootpw {rootpw}
directory {dir}/data
index objectClass eq
index uid,mail,cn eq
access to * by * read
"""


class Slapd:
    def __init__(self, users: int) -> None:
        self.dir = WORK / "slapd"
        self.port = free_port(SLAPD_ADDRESS)
        self.users = users

    def start(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        (self.dir / "data").mkdir(parents=True)
        conf = self.dir / "slapd.conf"
        conf.write_text(SLAPD_CONF.format(dir=self.dir, base=BASE, rootpw=ssha(PASSWORD)))
        entries = [f"dn: {BASE}\nobjectClass: top\nobjectClass: dcObject\n"
                   f"objectClass: organization\ndc: cloudron\no: cloudron\n",
                   f"dn: {USERS}\nobjectClass: organizationalUnit\nou: users\n"]
        hashed = ssha(PASSWORD)
        for n in range(self.users):
            name = f"user{n:04d}"
            entries.append(
                f"dn: cn={name},{USERS}\nobjectClass: inetOrgPerson\ncn: {name}\n"
                f"sn: {name}\nuid: {name}\nmail: {name}@example.com\n"
                f"displayName: User {n}\nuserPassword: {hashed}\n"
            )
        ldif = self.dir / "users.ldif"
        ldif.write_text("\n".join(entries))
        subprocess.run([need("slapadd", "slapd"), "-q", "-f", str(conf), "-l", str(ldif)],
                       check=True, capture_output=True)
        subprocess.run([need("slapd", "slapd"), "-f", str(conf), "-h",
                        f"ldap://{SLAPD_ADDRESS}:{self.port}/"], check=True)
        wait_port(SLAPD_ADDRESS, self.port)

    def stop(self) -> None:
        pid_file = self.dir / "slapd.pid"
        if pid_file.exists():
            pid = int(pid_file.read_text().strip())
            os.kill(pid, signal.SIGTERM)
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline and Path(f"/proc/{pid}").exists():
                time.sleep(0.05)


def wait_port(host: str, port: int) -> None:
    deadline = time.monotonic() + READY_TIMEOUT
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1):
                return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench: nothing listening on {host}:{port}")


# -- our server ----------------------------------------------------------------------------

async def populate(store_path: Path, users: int) -> tuple[str, str]:
    """10 000 users in a fresh store, plus the app ldclt acts as; answers its bind DN and
    password. One precomputed hash for every user keeps loading fast."""
    from gateway.auth import hasher_for
    from gateway.config import AuthConfig
    from gateway.store import open_store

    store = await open_store(f"sqlite:///{store_path}", data_dir=store_path.parent)
    try:
        hashed = await hasher_for(AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1)).hash(
            PASSWORD)
        now = time.time()
        rows = [
            (f"uid-{uuid.uuid4()}", f"user{n:04d}", f"user{n:04d}@example.com",
             f"user{n:04d}@example.org", f"User {n}", True, "user", hashed, now, now)
            for n in range(users)
        ]
        async with store.db.transaction() as tx:
            await tx.executemany(
                "INSERT INTO users (id, username, email, fallback_email, display_name, active, "
                "role, password_hash, totp_secret, totp_enabled, totp_last_step, ldap_totp, "
                "created_at, modified_at) VALUES "
                "($1, $2, $3, $4, $5, $6, $7, $8, NULL, FALSE, NULL, FALSE, $9, $10)", rows)
        app = await store.apps.add(location="bench", domain="example.com",
                                   manifest={"addons": {"ldap": {}}})
        secret = uuid.uuid4().hex * 4
        await store.apps.set_credentials(app.id, "ldap", {
            "bind_dn": f"cn={app.id},ou=apps,{BASE}", "password": secret,
            "server": OUR_ADDRESS, "port": "0"})
        return f"cn={app.id},ou=apps,{BASE}", secret
    finally:
        await store.close()


async def serve(store_path: Path, port: int) -> None:
    """The server process: what `gateway serve` runs for [ldap], on its own."""
    import logging

    from gateway.audit import AuditLog
    from gateway.auth import build_portal
    from gateway.config import AuthConfig, ListenAddress
    from gateway.config.ldap import LdapConfig
    from gateway.metrics import Metrics
    from gateway.store import open_store
    from ldap.server import LdapServer

    logging.basicConfig(level=logging.WARNING)
    store = await open_store(f"sqlite:///{store_path}", data_dir=store_path.parent)
    audit = AuditLog(store.audit)
    metrics = Metrics()
    portal = await build_portal(AuthConfig(argon2_memory_kib=1024, argon2_time_cost=1), store,
                                audit=audit, metrics=metrics)
    server = LdapServer(LdapConfig(enabled=True, listen=[ListenAddress("127.0.0.1", port)],
                                   max_connections_per_app=0), store, portal, audit, metrics)
    await server.start()
    print("READY", flush=True)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await server.stop(2.0)
    await audit.close()
    await store.close()


def serve_main(store_path: Path, port: int) -> None:
    from gateway.runtime.reactor import new_loop

    loop = new_loop(prefer_uvloop=True)
    loop.run_until_complete(serve(store_path, port))


class Ours:
    def __init__(self, users: int) -> None:
        self.dir = WORK / "ours"
        self.port = free_port("127.0.0.1")
        self.users = users
        self.process: subprocess.Popen[str] | None = None
        self.bind_dn = ""
        self.secret = ""

    def start(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)
        self.dir.mkdir(parents=True)
        store = self.dir / "store.db"
        self.bind_dn, self.secret = asyncio.run(populate(store, self.users))
        self.process = subprocess.Popen(
            [sys.executable, "-m", "bench.ldap", "serve", str(store), str(self.port)],
            cwd=ROOT, stdout=subprocess.PIPE, text=True,
        )
        assert self.process.stdout is not None
        line = self.process.stdout.readline()
        if line.strip() != "READY":
            sys.exit("bench: our server did not start")
        wait_port(OUR_ADDRESS, self.port)

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


# -- the run -------------------------------------------------------------------------------

async def warm(host: str, port: int, workers: int = 8) -> int:
    """One bind per user ldclt can draw (user{FIRST}..{LAST}), so the measured run answers
    from the verified cache as production does; ldclt's random draws would leave a third of
    the users cold after a 10-second warm-up. Answers how many binds failed."""
    from ldaptor.protocols import pureldap

    names = iter(range(FIRST, LAST + 1))
    failed = 0

    async def worker() -> None:
        nonlocal failed
        reader, writer = await asyncio.open_connection(host, port)
        try:
            for message_id, n in enumerate(names, start=1):
                dn = f"cn=user{n:04d},{USERS}"
                request = pureldap.LDAPBindRequest(dn=dn, auth=PASSWORD)
                writer.write(bytes(pureldap.LDAPMessage(request, id=message_id).toWire()))
                head = await reader.readexactly(2)
                size = head[1]
                if size & 0x80:
                    size = int.from_bytes(await reader.readexactly(size & 0x7F), "big")
                body = await reader.readexactly(size)
                # messageID (INTEGER), then BindResponse [APPLICATION 1]: resultCode first.
                op = 2 + body[1]
                code_at = op + 2 if body[op + 1] < 0x80 else op + 2 + (body[op + 1] & 0x7F)
                if body[op] != 0x61 or body[code_at:code_at + 3] != b"\x0a\x01\x00":
                    failed += 1
        finally:
            writer.close()

    await asyncio.gather(*(worker() for _ in range(workers)))
    return failed


def search_args(host: str, port: int, dn: str, password: str, flt: str) -> list[str]:
    return ["-h", host, "-p", str(port), "-b", USERS, "-D", dn, "-w", password,
            "-f", flt, "-e", "esearch,random", f"-r{FIRST}", f"-R{LAST}"]


def bind_args(host: str, port: int) -> list[str]:
    return ["-h", host, "-p", str(port), "-b", USERS, "-D", f"cn=userXXXX,{USERS}",
            "-w", PASSWORD, "-e",
            f"bindeach,bindonly,randombinddn,randombinddnlow={FIRST},randombinddnhigh={LAST}"]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench.ldap", description=__doc__.split("\n")[0])
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--samples", type=int, default=2, help="ldclt 10-second samples per run")
    parser.add_argument("--threads", type=int, default=4)
    args = parser.parse_args(argv)
    if args.users < LAST + 1:
        sys.exit(f"bench: --users must be at least {LAST + 1} (ldclt draws user{FIRST}..{LAST})")
    ldclt_path()
    slapd, ours = Slapd(args.users), Ours(args.users)
    results: dict[tuple[str, str], Rate] = {}
    try:
        print(f"loading {args.users} users into slapd and into our store …", flush=True)
        slapd.start()
        ours.start()
        assert ours.process is not None
        rss_loaded = rss_mb(ours.process.pid)
        print(f"our server: {rss_loaded:.0f} MB resident with {args.users} users loaded",
              flush=True)
        first_dn = f"cn=user{FIRST},{USERS}"
        runs = {
            ("slapd", "search"): search_args(SLAPD_ADDRESS, slapd.port, first_dn, PASSWORD,
                                             "uid=userXXXX"),
            ("ours", "search"): search_args(OUR_ADDRESS, ours.port, ours.bind_dn, ours.secret,
                                            "username=userXXXX"),
            ("slapd", "bind"): bind_args(SLAPD_ADDRESS, slapd.port),
            ("ours", "bind"): bind_args(OUR_ADDRESS, ours.port),
        }
        for key, ldclt_args in runs.items():
            if key == ("ours", "bind"):
                # Right before the measured run: the verified cache keeps a login for
                # auth.cache_ttl (60 s), and the runs before this one take longer than that.
                print("warming up (one bind per user, unmeasured) …", flush=True)
                failed = asyncio.run(warm(OUR_ADDRESS, ours.port))
                if failed:
                    sys.exit(f"bench: {failed} warm-up binds failed")
            print(f"running {key[1]}s against {key[0]} …", flush=True)
            results[key] = ldclt(ldclt_args, args.samples, args.threads)
        rss_after = rss_mb(ours.process.pid)
    finally:
        ours.stop()
        slapd.stop()
    print()
    print(f"{'':10}{'slapd':>14}{'ours':>14}{'ratio':>10}{'target':>10}")
    for kind in ("search", "bind"):
        theirs, mine = results[("slapd", kind)], results[("ours", kind)]
        ratio = mine.per_second / theirs.per_second if theirs.per_second else float("nan")
        verdict = "ok" if ratio >= TARGETS[kind] else "below"
        label = {"search": "searches/s", "bind": "binds/s"}[kind]
        print(f"{label:10}{theirs.per_second:14.0f}{mine.per_second:14.0f}"
              f"{ratio:9.2f}x{TARGETS[kind]:8.2f}x  {verdict}")
    print(f"RSS (ours, {args.users} users): {rss_loaded:.0f} MB loaded, {rss_after:.0f} MB after "
          f"the runs (target <= {RSS_TARGET_MB:.0f} MB)")
    errors = {f"{server} {kind}s": r.errors for (server, kind), r in results.items() if r.errors}
    if errors:
        print(f"ldclt reported failed operations: {errors}")
        return 1
    print("ldclt reported no failed operations")
    return 0


if __name__ == "__main__":
    if len(sys.argv) >= 2 and sys.argv[1] == "serve":
        serve_main(Path(sys.argv[2]), int(sys.argv[3]))
    else:
        sys.exit(main())
