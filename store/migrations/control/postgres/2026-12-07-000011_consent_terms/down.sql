ALTER TABLE tenants DROP COLUMN facepp_without_consent;
ALTER TABLE tenants DROP COLUMN dpa_accepted_at;
ALTER TABLE tenants DROP COLUMN dpa_version;
