-- Per-tenant retention: how long a face token lives unless a FaceSet keeps it (NULL: the server's default), and
-- how long any template is kept at all, FaceSet members included (NULL: until deleted).
ALTER TABLE tenants ADD COLUMN face_token_ttl_hours INTEGER;
ALTER TABLE tenants ADD COLUMN template_retention_days INTEGER;
