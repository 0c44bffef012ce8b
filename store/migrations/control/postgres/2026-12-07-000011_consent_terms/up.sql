-- The data processing terms the tenant accepted (version and time; each acceptance is also in the sealed audit
-- log), and whether Face++-compatible biometric calls without a `consent_id` are refused ('refuse') or allowed
-- under the tenant's own attestation ('allow').
ALTER TABLE tenants ADD COLUMN dpa_version TEXT;
ALTER TABLE tenants ADD COLUMN dpa_accepted_at BIGINT;
ALTER TABLE tenants ADD COLUMN facepp_without_consent TEXT NOT NULL DEFAULT 'refuse';
