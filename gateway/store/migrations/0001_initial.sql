-- One schema for SQLite and PostgreSQL: only types and statements both understand.
-- Times are seconds since the epoch (DOUBLE PRECISION); JSON is TEXT; {serial_pk} is the
-- dialect's auto-increment primary key.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    username TEXT UNIQUE,
    email TEXT NOT NULL UNIQUE,
    fallback_email TEXT NOT NULL DEFAULT '',
    display_name TEXT NOT NULL DEFAULT '',
    active BOOLEAN NOT NULL DEFAULT TRUE,
    role TEXT NOT NULL DEFAULT 'user',
    password_hash TEXT NOT NULL,
    totp_secret TEXT,
    totp_enabled BOOLEAN NOT NULL DEFAULT FALSE,
    totp_last_step BIGINT,
    ldap_totp BOOLEAN NOT NULL DEFAULT FALSE,
    created_at DOUBLE PRECISION NOT NULL,
    modified_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE groups_ (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE group_members (
    group_id TEXT NOT NULL REFERENCES groups_(id) ON DELETE CASCADE,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    PRIMARY KEY (group_id, user_id)
);
CREATE INDEX group_members_user ON group_members(user_id);

CREATE TABLE apps (
    id TEXT PRIMARY KEY,
    location TEXT NOT NULL,
    domain TEXT NOT NULL,
    manifest_json TEXT NOT NULL,
    upstream TEXT,
    access_json TEXT,
    sso BOOLEAN NOT NULL DEFAULT TRUE,
    -- The source address the app's requests come from (its container's address on the
    -- bridge), so the LDAP server can tell which app is asking. NULL: not known.
    address TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    UNIQUE (location, domain)
);

CREATE TABLE addon_credentials (
    app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE,
    addon TEXT NOT NULL,
    name TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (app_id, addon, name)
);
CREATE INDEX addon_credentials_value ON addon_credentials(addon, name, value);

CREATE TABLE app_passwords (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    identifier TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE INDEX app_passwords_user ON app_passwords(user_id, identifier);

CREATE TABLE mail_domains (
    domain TEXT PRIMARY KEY,
    receives BOOLEAN NOT NULL DEFAULT FALSE,
    masquerade BOOLEAN NOT NULL DEFAULT FALSE,
    dkim_selector TEXT NOT NULL DEFAULT 'gateway',
    dkim_private_key TEXT,
    relay_json TEXT NOT NULL DEFAULT '{}',
    catch_all_json TEXT NOT NULL DEFAULT '[]',
    created_at DOUBLE PRECISION NOT NULL
);

CREATE TABLE mailboxes (
    name TEXT NOT NULL,
    domain TEXT NOT NULL REFERENCES mail_domains(domain) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    owner_id TEXT,
    owner_type TEXT NOT NULL DEFAULT 'user',
    alias_target TEXT,
    members_json TEXT NOT NULL DEFAULT '[]',
    active BOOLEAN NOT NULL DEFAULT TRUE,
    quota_bytes BIGINT NOT NULL DEFAULT 0,
    created_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (name, domain)
);
CREATE INDEX mailboxes_owner ON mailboxes(owner_id);

CREATE TABLE audit_events (
    id TEXT PRIMARY KEY,
    at DOUBLE PRECISION NOT NULL,
    action TEXT NOT NULL,
    door TEXT NOT NULL,
    source TEXT,
    app_id TEXT,
    user_id TEXT,
    login TEXT,
    reason TEXT,
    data_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX audit_events_at ON audit_events(at);
CREATE INDEX audit_events_user ON audit_events(user_id, at);

CREATE TABLE web_sessions (
    id TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    app_id TEXT,
    created_at DOUBLE PRECISION NOT NULL,
    last_seen DOUBLE PRECISION NOT NULL,
    expires_at DOUBLE PRECISION NOT NULL,
    data_json TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX web_sessions_user ON web_sessions(user_id);
CREATE INDEX web_sessions_app ON web_sessions(app_id);

CREATE TABLE settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

-- Changes written by any process, read in order by SQLite servers (PostgreSQL nodes are told
-- with NOTIFY instead and never read this table).
CREATE TABLE change_log (
    seq {serial_pk},
    kind TEXT NOT NULL,
    key TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
