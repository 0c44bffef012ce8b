-- What a plan includes per product each calendar month (UTC), what it caps and what each further unit costs.
-- A product a plan does not list is not available on it. Prices are in millionths of the plan's currency unit
-- per unit (1000 = $0.001), so sub-cent prices stay exact integers.
ALTER TABLE plans ADD COLUMN currency TEXT NOT NULL DEFAULT 'usd';
ALTER TABLE plans ADD COLUMN base_fee_cents BIGINT NOT NULL DEFAULT 0 CHECK (base_fee_cents >= 0);

CREATE TABLE plan_products (
    plan_id           TEXT NOT NULL REFERENCES plans (id) ON DELETE CASCADE,
    product           TEXT NOT NULL,
    included_units    BIGINT NOT NULL CHECK (included_units >= 0),
    -- NULL: no cap. A tenant at its cap is refused (403 QUOTA_EXCEEDED) until the month ends.
    monthly_cap       BIGINT CHECK (monthly_cap >= 0),
    unit_price_micros BIGINT NOT NULL CHECK (unit_price_micros >= 0),
    PRIMARY KEY (plan_id, product)
);

-- Free: 1000 of each a month, then stop. Pay as you go: every unit at list price, no cap. Enterprise: a monthly
-- fee covers a million of each, further units at half price.
INSERT INTO plan_products (plan_id, product, included_units, monthly_cap, unit_price_micros)
SELECT p.id, x.product, CASE p.id WHEN 'free' THEN 1000 WHEN 'enterprise' THEN 1000000 ELSE 0 END,
       CASE p.id WHEN 'free' THEN 1000 ELSE NULL END,
       CASE p.id WHEN 'free' THEN 0 WHEN 'enterprise' THEN x.price / 2 ELSE x.price END
FROM plans p CROSS JOIN (
    SELECT 'face_detect' AS product, 1000 AS price
    UNION ALL SELECT 'face_compare', 1000
    UNION ALL SELECT 'face_search', 2000
    UNION ALL SELECT 'ocr_text', 2000
    UNION ALL SELECT 'ocr_idcard', 5000
    UNION ALL SELECT 'ocr_mrz', 5000
    UNION ALL SELECT 'ocr_bankcard', 5000
    UNION ALL SELECT 'ocr_driverlicense', 5000
    UNION ALL SELECT 'plate_recognize', 3000
) x
WHERE p.id IN ('free', 'pay_as_you_go', 'enterprise');

UPDATE plans SET base_fee_cents = 100000 WHERE id = 'enterprise';
