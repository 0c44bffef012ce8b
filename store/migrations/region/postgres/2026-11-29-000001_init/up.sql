-- Region data store: everything a tenant owns lives here, in the tenant's home region only.
-- Every table carries tenant_id and every index starts with it: all access is per tenant.
CREATE TABLE audit_events (
    id          TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    occurred_at BIGINT NOT NULL,
    actor       TEXT NOT NULL,
    action      TEXT NOT NULL,
    target      TEXT,
    request_id  TEXT,
    detail      TEXT NOT NULL
);

CREATE INDEX audit_events_by_tenant ON audit_events (tenant_id, id);
