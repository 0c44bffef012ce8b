-- Usage events still to be reported to Stripe, written in the same transaction as the event itself (so a
-- recorded event is never missed) and deleted once Stripe has accepted it. Sending is retried with backoff;
-- Stripe dedupes meter events on their identifier (the usage event id), so a resend after a crash is harmless.
-- `next_attempt_at` doubles as a lease: a node that takes a row moves it forward while it sends.
CREATE TABLE billing_outbox (
    event_id        TEXT PRIMARY KEY NOT NULL,
    tenant_id       TEXT NOT NULL,
    product         TEXT NOT NULL,
    units           BIGINT NOT NULL,
    occurred_at     BIGINT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    last_error      TEXT
);
CREATE INDEX billing_outbox_due ON billing_outbox (next_attempt_at);
CREATE INDEX billing_outbox_tenant ON billing_outbox (tenant_id);
