ALTER TABLE faces DROP COLUMN user_id;
DROP TABLE faceset_tasks;
DROP TABLE faceset_removals;
DROP TABLE faceset_faces;
DROP TABLE facesets;
