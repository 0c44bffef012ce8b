-- Security alerts waiting to be delivered to the tenant's endpoint. Written in the transaction that appends
-- the audit entry they report (whose id they carry), so none is lost; removed once delivered.
CREATE TABLE alert_outbox (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT
);
CREATE INDEX alert_outbox_due ON alert_outbox (next_attempt_at);
