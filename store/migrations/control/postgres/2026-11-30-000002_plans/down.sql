ALTER TABLE tenants DROP COLUMN plan_id;
DROP TABLE plans;
