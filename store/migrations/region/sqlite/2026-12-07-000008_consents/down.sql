DROP INDEX faceset_faces_consent;
ALTER TABLE faceset_tasks DROP COLUMN consent_id;
ALTER TABLE faceset_faces DROP COLUMN consent_id;
DROP INDEX faces_consent;
ALTER TABLE faces DROP COLUMN consent_id;
DROP TABLE restricted_subjects;
DROP INDEX consents_subject;
DROP TABLE consents;
