-- One row per billable answer (a 2xx from a billable operation), written before the answer is sent.
-- `dedup_key` makes recording idempotent: `req:<request id>`, or `idem:<Idempotency-Key>` when the caller sent
-- one, so a retried request is counted once. `id` (time-ordered) is what Stripe dedupes meter events on.
CREATE TABLE usage_events (
    id              TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL,
    dedup_key       TEXT NOT NULL,
    request_id      TEXT NOT NULL,
    idempotency_key TEXT,
    key_id          TEXT NOT NULL,
    product         TEXT NOT NULL,
    operation       TEXT NOT NULL,
    units           BIGINT NOT NULL CHECK (units > 0),
    status          INTEGER NOT NULL,
    -- SHA-256 of the method, path and body when an Idempotency-Key was sent: a key reused for another request
    -- is refused rather than served free.
    fingerprint     TEXT,
    occurred_at     BIGINT NOT NULL
);
CREATE UNIQUE INDEX usage_events_dedup ON usage_events (tenant_id, dedup_key);
CREATE INDEX usage_events_time ON usage_events (tenant_id, occurred_at);

-- Units and calls per tenant, product and UTC hour, updated in the same transaction as the events. Days and
-- months are sums of hours; quotas read the month so far from here.
CREATE TABLE usage_hourly (
    tenant_id TEXT NOT NULL,
    product   TEXT NOT NULL,
    hour      BIGINT NOT NULL,
    units     BIGINT NOT NULL,
    calls     BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, product, hour)
);
