-- Legal and government requests for data, recorded by the operator. Only aggregates are ever published
-- (GET /transparency/report); the authority and notes stay private.
CREATE TABLE legal_requests (
    id                TEXT PRIMARY KEY NOT NULL,
    received_on       BIGINT NOT NULL,
    kind              TEXT NOT NULL,
    jurisdiction      TEXT NOT NULL,
    authority         TEXT NOT NULL,
    accounts_affected BIGINT NOT NULL,
    outcome           TEXT NOT NULL,
    notes             TEXT,
    created_at        BIGINT NOT NULL,
    updated_at        BIGINT NOT NULL
);
CREATE INDEX legal_requests_received ON legal_requests (received_on);
