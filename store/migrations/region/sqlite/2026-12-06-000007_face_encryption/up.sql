-- Face embeddings are encrypted (AES-256-GCM) under a data key of their tenant; `key_version` names the key
-- (see the control store's tenant_keys). NULL: written before encryption, encrypted on the next start.
ALTER TABLE faces ADD COLUMN key_version INTEGER;
CREATE INDEX faces_key_version ON faces (tenant_id, key_version);
