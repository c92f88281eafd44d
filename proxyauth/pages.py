"""The wall's own HTML pages: Jinja2 templates, autoescaped, self-contained.

Every page carries its stylesheet inline and loads nothing from anywhere, so the Content
Security Policy can forbid everything else: no scripts at all, the one stylesheet allowed by
its hash, forms posting only to the page's own origin, no framing (clickjacking). Pages are
never cached and send a Referer only to their own site (the login URL carries where the
user was going); not "no-referrer", which would make browsers send ``Origin: null`` on the
form's POST and defeat the origin check.
"""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path
from typing import Any, final

import jinja2
from aiohttp import web

TEMPLATES = Path(__file__).with_name("templates")


@final
class Pages:
    def __init__(
        self, *, title: str, secure_cookies: bool, template_dir: Path | None = None
    ) -> None:
        loaders: list[jinja2.BaseLoader] = []
        if template_dir is not None:
            loaders.append(jinja2.FileSystemLoader(str(template_dir)))
        loaders.append(jinja2.FileSystemLoader(str(TEMPLATES)))
        self._env = jinja2.Environment(
            loader=jinja2.ChoiceLoader(loaders),
            autoescape=True,
            undefined=jinja2.StrictUndefined,
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self._css = self._env.get_template("styles.css").render()
        digest = base64.b64encode(hashlib.sha256(self._css.encode()).digest()).decode()
        self.csp = (
            "default-src 'none'; "
            f"style-src 'sha256-{digest}'; "
            "img-src data:; "
            "form-action 'self'; "
            "frame-ancestors 'none'; "
            "base-uri 'none'"
        )
        self._globals = {"title": title, "development": not secure_cookies}

    def render(
        self,
        template: str,
        *,
        status: int = 200,
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> web.Response:
        values = {"host": "", "app_title": "", **self._globals, **context}
        html = self._env.get_template(template).render(css=self._css, **values)
        response = web.Response(
            text=html, status=status, content_type="text/html", charset="utf-8"
        )
        self.secure(response)
        if headers:
            response.headers.update(headers)
        return response

    def secure(self, response: web.StreamResponse) -> None:
        response.headers["Content-Security-Policy"] = self.csp
        response.headers["Cache-Control"] = "no-store"
        response.headers["Referrer-Policy"] = "same-origin"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["X-Frame-Options"] = "DENY"
