-- Each tenant's data keys, wrapped (encrypted) by the key provider's master key; never stored in the clear.
-- A new version is made by rotation; an old version is deleted once no row uses it. Deleting a tenant deletes
-- its keys, and with them every copy of its templates, backups of the region store included.
CREATE TABLE tenant_keys (
    tenant_id   TEXT NOT NULL,
    version     INTEGER NOT NULL,
    provider    TEXT NOT NULL,
    wrapped_key TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    PRIMARY KEY (tenant_id, version)
);
