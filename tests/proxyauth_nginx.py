"""Real nginx (Debian's) in front of the wall's forward-auth endpoint, for tests and the bench.

The server block is the one docs/forward-auth.md documents, with the test's addresses filled
in: ``auth_request`` to ``<path>/nginx``, identity headers copied with ``auth_request_set``,
``error_page 401`` turned into the redirect the endpoint names, ``/login`` and ``/logout``
sent to the wall. ``plain=True`` renders nginx proxying to the app with no check at all (the
bench's baseline).
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import signal
import socket
import time
from collections.abc import AsyncIterator
from pathlib import Path

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
READY_TIMEOUT = 20.0


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def forward_auth_server(*, listen: int, wall: int, app: int, auth_path: str) -> str:
    """The documented nginx server block (docs/forward-auth.md), for these ports."""
    return f"""
    upstream gateway_wall {{ server 127.0.0.1:{wall}; keepalive 32; }}
    upstream protected_app {{ server 127.0.0.1:{app}; keepalive 32; }}

    server {{
        listen 127.0.0.1:{listen};
        server_name _;
        absolute_redirect off;

        # The wall's own pages, on every protected host.
        location ~ ^/(login|logout)$ {{
            proxy_pass http://gateway_wall;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}

        # The check: nginx sends the request's headers, never its body.
        location = {auth_path}/nginx {{
            internal;
            proxy_pass http://gateway_wall;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_pass_request_body off;
            proxy_set_header Content-Length "";
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Uri $request_uri;
            proxy_set_header X-Forwarded-Method $request_method;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}

        location / {{
            auth_request {auth_path}/nginx;
            auth_request_set $gateway_user $upstream_http_x_remote_user;
            auth_request_set $gateway_email $upstream_http_x_remote_email;
            auth_request_set $gateway_name $upstream_http_x_remote_name;
            auth_request_set $gateway_groups $upstream_http_x_remote_groups;
            auth_request_set $gateway_login $upstream_http_x_gateway_login;
            error_page 401 = @gateway_login;

            # Set from the check (empty: not sent), so a client's copies never pass.
            proxy_set_header X-Remote-User $gateway_user;
            proxy_set_header X-Remote-Email $gateway_email;
            proxy_set_header X-Remote-Name $gateway_name;
            proxy_set_header X-Remote-Groups $gateway_groups;
            # Other walls' spellings an app might trust.
            proxy_set_header Remote-User "";
            proxy_set_header Remote-Email "";
            proxy_set_header Remote-Name "";
            proxy_set_header Remote-Groups "";
            proxy_set_header X-Forwarded-User "";
            proxy_set_header X-Forwarded-Email "";
            proxy_set_header X-Forwarded-Groups "";

            proxy_pass http://protected_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
        }}

        location @gateway_login {{
            # Browsers: the login URL the check named. API clients: its 401 (nginx copied the
            # check's WWW-Authenticate already).
            if ($gateway_login) {{
                return 302 $gateway_login;
            }}
            return 401;
        }}
    }}
"""


def plain_server(*, listen: int, app: int) -> str:
    return f"""
    upstream plain_app {{ server 127.0.0.1:{app}; keepalive 32; }}
    server {{
        listen 127.0.0.1:{listen};
        server_name _;
        location / {{
            proxy_pass http://plain_app;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $http_host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
"""


def nginx_conf(prefix: Path, servers: str, *, workers: int = 1) -> str:
    return f"""
worker_processes {workers};
daemon off;
pid {prefix}/nginx.pid;
error_log {prefix}/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {prefix}/body;
    proxy_temp_path {prefix}/proxy;
    fastcgi_temp_path {prefix}/fastcgi;
    uwsgi_temp_path {prefix}/uwsgi;
    scgi_temp_path {prefix}/scgi;
    keepalive_requests 100000;
{servers}
}}
"""


async def _accepting(port: int) -> bool:
    try:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
    except OSError:
        return False
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()
    return True


@contextlib.asynccontextmanager
async def running_nginx(
    prefix: Path, servers: str, ports: list[int], *, workers: int = 1
) -> AsyncIterator[asyncio.subprocess.Process]:
    """nginx in the foreground with ``servers``; stopped (by its own PID) on exit."""
    prefix.mkdir(parents=True, exist_ok=True)
    conf = prefix / "nginx.conf"
    conf.write_text(nginx_conf(prefix, servers, workers=workers))
    check = await asyncio.create_subprocess_exec(
        NGINX, "-t", "-q", "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )
    out, err = await check.communicate()
    if check.returncode != 0:
        raise RuntimeError(f"nginx -t failed: {out.decode()}{err.decode()}")
    process = await asyncio.create_subprocess_exec(
        NGINX, "-p", str(prefix), "-c", str(conf), "-e", str(prefix / "error.log"),
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + READY_TIMEOUT
        for port in ports:
            while not await _accepting(port):
                if process.returncode is not None or time.monotonic() > deadline:
                    log = (prefix / "error.log").read_text(errors="replace")
                    raise RuntimeError(f"nginx did not start:\n{log}")
                await asyncio.sleep(0.02)
        yield process
    finally:
        if process.returncode is None:
            process.send_signal(signal.SIGQUIT)
            try:
                await asyncio.wait_for(process.wait(), 10)
            except TimeoutError:
                process.kill()
                await process.wait()
