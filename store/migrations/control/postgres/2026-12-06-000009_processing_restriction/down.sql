ALTER TABLE tenants DROP COLUMN processing_restricted_at;
