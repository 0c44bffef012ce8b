ALTER TABLE tenants DROP COLUMN template_retention_days;
ALTER TABLE tenants DROP COLUMN face_token_ttl_hours;
