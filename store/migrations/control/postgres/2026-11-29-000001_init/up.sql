-- Control plane: who the tenants are, where they live, and how they authenticate.
-- Times are Unix epoch milliseconds (BIGINT) so both backends compare them the same way.
CREATE TABLE tenants (
    id          TEXT PRIMARY KEY,
    name        TEXT NOT NULL UNIQUE,
    home_region TEXT NOT NULL,
    status      TEXT NOT NULL CHECK (status IN ('active', 'suspended')),
    created_at  BIGINT NOT NULL,
    updated_at  BIGINT NOT NULL
);

CREATE TABLE api_keys (
    id                         TEXT PRIMARY KEY,
    tenant_id                  TEXT NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
    name                       TEXT NOT NULL,
    scopes                     TEXT NOT NULL,
    secret_hash                TEXT NOT NULL,
    previous_secret_hash       TEXT,
    previous_secret_expires_at BIGINT,
    rate_limit_qps             INTEGER,
    max_concurrency            INTEGER,
    expires_at                 BIGINT,
    revoked_at                 BIGINT,
    last_used_at               BIGINT,
    created_at                 BIGINT NOT NULL,
    rotated_at                 BIGINT
);

CREATE INDEX api_keys_by_tenant ON api_keys (tenant_id, created_at);
