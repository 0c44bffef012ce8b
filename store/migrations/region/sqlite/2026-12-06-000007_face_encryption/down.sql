DROP INDEX faces_key_version;
ALTER TABLE faces DROP COLUMN key_version;
