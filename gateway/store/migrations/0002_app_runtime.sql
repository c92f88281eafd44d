-- How each app runs and how it is doing. What to run (backend, image, command, generation)
-- is decided by the operator and announced as an `app` change; what was seen (state,
-- health, container) is written by the container manager without an announcement, since
-- nobody's index depends on it and a health flip must not wake every server.

CREATE TABLE app_runtime (
    app_id TEXT PRIMARY KEY REFERENCES apps(id) ON DELETE CASCADE,
    -- docker (an image), local (a command run as a child process) or external (an upstream
    -- URL the platform only routes to and health-checks).
    backend TEXT NOT NULL,
    image TEXT,
    command_json TEXT NOT NULL DEFAULT '[]',
    -- Bumped by a restart request, so every node's container manager recreates the app.
    generation INTEGER NOT NULL DEFAULT 0,
    state TEXT NOT NULL DEFAULT 'installing',
    health TEXT NOT NULL DEFAULT 'unknown',
    -- Why the app is not running (state) and why it is unhealthy (health), for the operator.
    detail TEXT,
    health_detail TEXT,
    container_id TEXT,
    updated_at DOUBLE PRECISION NOT NULL
);

-- Apps installed before this migration run elsewhere as far as the platform knows: it routes
-- to their upstream and health-checks it, nothing more.
INSERT INTO app_runtime (app_id, backend, image, command_json, generation, state, health,
                         detail, health_detail, container_id, updated_at)
    SELECT id, 'external', NULL, '[]', 0, 'external', 'unknown', NULL, NULL, NULL, created_at
    FROM apps;

-- Host-network and local apps each get a loopback address of their own for LDAP (the
-- directory tells them apart by the address dialled): two installs racing for the same free
-- address must not both get it.
CREATE UNIQUE INDEX addon_credentials_ldap_server ON addon_credentials(value)
    WHERE addon = 'ldap' AND name = 'server';
