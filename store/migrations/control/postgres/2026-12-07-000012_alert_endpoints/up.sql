-- Where a tenant receives security alerts (a key created or rotated): an https URL and the secret its
-- deliveries are signed with (HMAC-SHA256), shown to the tenant once.
CREATE TABLE alert_endpoints (
    tenant_id TEXT PRIMARY KEY NOT NULL,
    url TEXT NOT NULL,
    secret TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
