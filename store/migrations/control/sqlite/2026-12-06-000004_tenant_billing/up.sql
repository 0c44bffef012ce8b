-- A tenant's account at the payment provider (Stripe), when billing through it is configured. The customer and
-- subscription are created on the first usage sent; the statuses follow Stripe's webhooks. `status_at` is the
-- creation time of the event that set them: an older event arriving late does not undo a newer one.
CREATE TABLE tenant_billing (
    tenant_id           TEXT PRIMARY KEY NOT NULL,
    customer_id         TEXT NOT NULL UNIQUE,
    subscription_id     TEXT,
    subscription_status TEXT,
    invoice_status      TEXT,
    status_at           BIGINT NOT NULL DEFAULT 0,
    created_at          BIGINT NOT NULL,
    updated_at          BIGINT NOT NULL
);

-- Stripe webhook events already applied: Stripe delivers at least once.
CREATE TABLE stripe_webhook_events (
    id          TEXT PRIMARY KEY NOT NULL,
    type        TEXT NOT NULL,
    received_at BIGINT NOT NULL
);
