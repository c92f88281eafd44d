"""The proxyAuth login wall: a reverse proxy by Host with Cloudron's wall rules, the /login and
/logout pages, server-side sessions, and a forward-auth endpoint for nginx, Traefik and Caddy.

``proxyauth.server.build(ctx)`` is what the runtime calls; ``proxyauth.app.make_wall`` is the
request handler and what it opens. Every credential goes through the gateway's one ``Portal``.
"""
