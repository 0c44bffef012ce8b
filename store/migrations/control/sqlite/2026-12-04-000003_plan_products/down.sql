DROP TABLE plan_products;
ALTER TABLE plans DROP COLUMN base_fee_cents;
ALTER TABLE plans DROP COLUMN currency;
