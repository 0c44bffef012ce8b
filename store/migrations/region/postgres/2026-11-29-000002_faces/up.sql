-- Detected faces ("face tokens"). Raw images are never stored: only what is needed to compare and search.
-- `embedding` is the model's vector as little-endian f32 bytes; encryption at rest will wrap this column.
-- A face expires (expires_at) unless it is kept by a FaceSet, which clears expires_at.
CREATE TABLE faces (
    token       TEXT PRIMARY KEY,
    tenant_id   TEXT NOT NULL,
    image_id    TEXT NOT NULL,
    model       TEXT NOT NULL,
    embedding   BYTEA NOT NULL,
    rect_left   INTEGER NOT NULL,
    rect_top    INTEGER NOT NULL,
    rect_width  INTEGER NOT NULL,
    rect_height INTEGER NOT NULL,
    score       DOUBLE PRECISION NOT NULL,
    landmarks   TEXT NOT NULL,
    quality     TEXT NOT NULL,
    created_at  BIGINT NOT NULL,
    expires_at  BIGINT
);

CREATE INDEX faces_by_tenant ON faces (tenant_id, token);
CREATE INDEX faces_by_expiry ON faces (expires_at);
