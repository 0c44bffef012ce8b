-- The audit log becomes a chain per tenant: entry `seq` carries the seal of entry `seq - 1` (`prev_hash`) and
-- its own seal (`hash`), an HMAC-SHA256 under a key derived from the server secret of the entry's fields and
-- `prev_hash`. Editing, removing or inserting an entry breaks the chain (`faceplate audit verify`), and nobody
-- without the server secret can re-seal it. Entries written before this migration are chained on first start.
ALTER TABLE audit_events ADD COLUMN seq BIGINT;
ALTER TABLE audit_events ADD COLUMN prev_hash TEXT;
ALTER TABLE audit_events ADD COLUMN hash TEXT;
CREATE UNIQUE INDEX audit_events_seq ON audit_events (tenant_id, seq);
