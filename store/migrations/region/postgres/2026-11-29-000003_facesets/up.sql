-- FaceSets: named collections of a tenant's faces, searched 1:N. Membership keeps a face (expires_at NULL).
-- `version` is bumped by every membership change and `next_key` numbers members in commit order (the row is
-- locked by each change), so a node's in-memory index catches up with: members whose key is above the highest
-- it holds, and faceset_removals newer than its version.
CREATE TABLE facesets (
    token        TEXT PRIMARY KEY NOT NULL,
    tenant_id    TEXT NOT NULL,
    outer_id     TEXT,
    display_name TEXT NOT NULL,
    tags         TEXT NOT NULL,
    user_data    TEXT NOT NULL,
    face_count   BIGINT NOT NULL,
    version      BIGINT NOT NULL,
    next_key     BIGINT NOT NULL,
    created_at   BIGINT NOT NULL,
    updated_at   BIGINT NOT NULL
);
CREATE UNIQUE INDEX facesets_by_outer_id ON facesets (tenant_id, outer_id);
CREATE INDEX facesets_by_tenant ON facesets (tenant_id, token);

CREATE TABLE faceset_faces (
    faceset_token     TEXT NOT NULL,
    face_token        TEXT NOT NULL,
    tenant_id         TEXT NOT NULL,
    member_key        BIGINT NOT NULL,
    external_image_id TEXT,
    added_at          BIGINT NOT NULL,
    PRIMARY KEY (faceset_token, face_token)
);
CREATE UNIQUE INDEX faceset_faces_by_key ON faceset_faces (faceset_token, member_key);
CREATE UNIQUE INDEX faceset_faces_by_external_id ON faceset_faces (faceset_token, external_image_id);
-- By face alone: with tenant_id first, SQLite would pick it for set queries and scan the tenant's members.
CREATE INDEX faceset_faces_by_face ON faceset_faces (face_token);

-- Keys removed from a set, for index catch-up. Keys are never reused, so this holds no face data.
CREATE TABLE faceset_removals (
    faceset_token TEXT NOT NULL,
    member_key    BIGINT NOT NULL,
    tenant_id     TEXT NOT NULL,
    version       BIGINT NOT NULL,
    PRIMARY KEY (faceset_token, member_key)
);
CREATE INDEX faceset_removals_by_version ON faceset_removals (faceset_token, version);

-- Face++ asynchronous addface/removeface. Pending tasks are resumed after a restart (both are idempotent).
CREATE TABLE faceset_tasks (
    id            TEXT PRIMARY KEY NOT NULL,
    tenant_id     TEXT NOT NULL,
    faceset_token TEXT NOT NULL,
    kind          TEXT NOT NULL,
    face_tokens   TEXT NOT NULL,
    status        TEXT NOT NULL,
    result        TEXT,
    created_at    BIGINT NOT NULL,
    finished_at   BIGINT
);
CREATE INDEX faceset_tasks_by_tenant ON faceset_tasks (tenant_id, id);
CREATE INDEX faceset_tasks_by_status ON faceset_tasks (status);

-- Face++ face/setuserid: the tenant's own identifier for the person.
ALTER TABLE faces ADD COLUMN user_id TEXT;
