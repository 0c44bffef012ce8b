-- Plans: what a tenant may do per second and at once. Every tenant is on one plan; a key may lower or raise its
-- own limits (api_keys.rate_limit_qps, api_keys.max_concurrency) but the tenant's limits hold over all its keys.
CREATE TABLE plans (
    id                 TEXT PRIMARY KEY NOT NULL,
    name               TEXT NOT NULL,
    tenant_qps         INTEGER NOT NULL CHECK (tenant_qps > 0),
    tenant_concurrency INTEGER NOT NULL CHECK (tenant_concurrency > 0),
    key_qps            INTEGER NOT NULL CHECK (key_qps > 0),
    key_concurrency    INTEGER NOT NULL CHECK (key_concurrency > 0),
    created_at         BIGINT NOT NULL,
    updated_at         BIGINT NOT NULL
);

INSERT INTO plans (id, name, tenant_qps, tenant_concurrency, key_qps, key_concurrency, created_at, updated_at) VALUES
    ('free', 'Free', 10, 4, 5, 2, 0, 0),
    ('pay_as_you_go', 'Pay as you go', 50, 16, 20, 8, 0, 0),
    ('enterprise', 'Enterprise', 200, 64, 100, 32, 0, 0);

-- SQLite cannot add a REFERENCES column with a default while foreign keys are enforced; the store checks the plan.
ALTER TABLE tenants ADD COLUMN plan_id TEXT NOT NULL DEFAULT 'free';
