-- A tenant may restrict the processing of its data (GDPR Art. 18): while set, no biometric operation runs for
-- it (its data is kept, and can still be read, exported and deleted).
ALTER TABLE tenants ADD COLUMN processing_restricted_at BIGINT;
