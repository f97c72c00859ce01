-- The gateway's schema, created once, when the database's data volume is new.
-- PostgreSQL runs every file of /docker-entrypoint-initdb.d in name order, as POSTGRES_USER.
CREATE TABLE IF NOT EXISTS api_keys (
    id          BIGSERIAL PRIMARY KEY,
    name        VARCHAR(100) NOT NULL,
    prefix      VARCHAR(16)  NOT NULL UNIQUE,
    key_hash    VARCHAR(64)  NOT NULL,
    created_at  TIMESTAMPTZ  NOT NULL DEFAULT now(),
    revoked_at  TIMESTAMPTZ
);
CREATE INDEX IF NOT EXISTS api_keys_active ON api_keys (revoked_at) WHERE revoked_at IS NULL;
