DROP TABLE deletion_certificates;
ALTER TABLE tenants DROP COLUMN delete_after;
