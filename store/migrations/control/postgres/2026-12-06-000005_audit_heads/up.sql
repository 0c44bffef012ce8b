-- The last sealed audit entry of each tenant, kept away from the region store that holds the chain: removing
-- entries from the end of a chain leaves it shorter than its head here, which `faceplate audit verify` reports.
CREATE TABLE audit_heads (
    tenant_id  TEXT PRIMARY KEY NOT NULL,
    seq        BIGINT NOT NULL,
    hash       TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);
