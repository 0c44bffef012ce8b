-- Consent attestations: the tenant's record that a data subject agreed to biometric processing for some
-- purposes. Templates and FaceSet entries name the consent they were made under; revoking it deletes them.
CREATE TABLE consents (
    id TEXT PRIMARY KEY NOT NULL,
    tenant_id TEXT NOT NULL,
    subject_ref TEXT NOT NULL,
    purposes TEXT NOT NULL,
    legal_basis TEXT NOT NULL,
    jurisdiction TEXT NOT NULL,
    collected_at BIGINT NOT NULL,
    expires_at BIGINT,
    evidence_sha256 TEXT NOT NULL,
    collected_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    revoked_at BIGINT,
    receipt TEXT
);
CREATE INDEX consents_subject ON consents (tenant_id, subject_ref);

-- Data subjects whose processing the tenant has restricted (GDPR Art. 18): their consents cannot be used and
-- their templates are left out of search results until resumed.
CREATE TABLE restricted_subjects (
    tenant_id TEXT NOT NULL,
    subject_ref TEXT NOT NULL,
    restricted_at BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, subject_ref)
);

ALTER TABLE faces ADD COLUMN consent_id TEXT;
CREATE INDEX faces_consent ON faces (tenant_id, consent_id);
ALTER TABLE faceset_faces ADD COLUMN consent_id TEXT;
ALTER TABLE faceset_tasks ADD COLUMN consent_id TEXT;
CREATE INDEX faceset_faces_consent ON faceset_faces (tenant_id, consent_id);
