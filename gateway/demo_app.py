"""The demo app the embedded default installs behind the login wall.

A page that shows what the platform gives an app: who the wall says the visitor is (the
``X-Remote-*`` headers) and which ``CLOUDRON_*`` variables the app was started with (every
secret masked). Standard library only, so it runs wherever the gateway runs:
``python -m gateway.demo_app --port 8001``.
"""

from __future__ import annotations

import argparse
import html
import os
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

IDENTITY_HEADERS = ("X-Remote-User", "X-Remote-Email", "X-Remote-Name", "X-Remote-Groups")
SECRET_WORDS = ("PASSWORD", "SECRET", "TOKEN")


def shown(name: str, value: str) -> str:
    return "••••••••" if any(word in name for word in SECRET_WORDS) else value


def render(headers: dict[str, str], env: dict[str, str]) -> bytes:
    who = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(headers.get(name, '—'))}</td></tr>"
        for name in IDENTITY_HEADERS
    )
    platform = "".join(
        f"<tr><th>{html.escape(name)}</th><td>{html.escape(shown(name, value))}</td></tr>"
        for name, value in sorted(env.items())
        if name.startswith("CLOUDRON")
    )
    page = f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Demo app</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body {{ font: 16px/1.5 system-ui, sans-serif; margin: 2rem auto; max-width: 48rem;
       padding: 0 1rem; color: #1f2933; }}
table {{ border-collapse: collapse; width: 100%; margin-bottom: 2rem; }}
th, td {{ text-align: left; padding: .35rem .6rem; border-bottom: 1px solid #e4e7eb; }}
th {{ font-weight: 600; width: 40%; }}
td {{ font-family: ui-monospace, monospace; word-break: break-all; }}
</style></head><body>
<h1>Demo app</h1>
<p>You reached this page through the login wall. <a href="/logout">Sign out</a></p>
<h2>Who the wall says you are</h2><table>{who}</table>
<h2>What the platform gave this app</h2><table>{platform}</table>
</body></html>"""
    return page.encode()


class DemoHandler(BaseHTTPRequestHandler):
    server_version = "gateway-demo-app"

    def do_GET(self) -> None:
        body = render(dict(self.headers.items()), dict(os.environ))
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        # The request line is enough; the platform keeps the app's output in its log file.
        print(f"{self.address_string()} {format % args}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8001)
    args = parser.parse_args()
    with ThreadingHTTPServer((args.host, args.port), DemoHandler) as server:
        server.serve_forever()


if __name__ == "__main__":
    main()
