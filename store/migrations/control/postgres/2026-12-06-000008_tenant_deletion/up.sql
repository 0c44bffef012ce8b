-- Deleting a tenant account: it waits `delete_after` (a grace period in which the deletion can be cancelled and
-- the tenant's keys are refused), then everything is purged. The certificate row is written before anything is
-- deleted (with the counts of what will be) and completed when the purge ends, so an interrupted purge resumes
-- and the certificate stays exact. It outlives the tenant.
ALTER TABLE tenants ADD COLUMN delete_after BIGINT;

CREATE TABLE deletion_certificates (
    tenant_id    TEXT PRIMARY KEY NOT NULL,
    tenant_name  TEXT NOT NULL,
    home_region  TEXT NOT NULL,
    requested_at BIGINT NOT NULL,
    started_at   BIGINT NOT NULL,
    rows         TEXT NOT NULL,
    purged_at    BIGINT,
    keys_destroyed BIGINT,
    sha256       TEXT,
    seal         TEXT
);
