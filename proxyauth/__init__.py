"""The proxyAuth login wall: a reverse proxy by Host with Cloudron's wall rules, the /login and
/logout pages, server-side sessions, and a forward-auth endpoint for nginx, Traefik and Caddy.

``proxyauth.server.build(ctx)`` is what the runtime calls; ``proxyauth.app.make_app`` is the
aiohttp application. Every credential goes through the gateway's one ``Portal``.
"""
