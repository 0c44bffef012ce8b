//! Monthly statements: the plan's base fee plus, per product, the units beyond those included at the plan's
//! unit price. Amounts are kept in millionths of the currency unit and rounded to cents once, on the total.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use faceplate_store::{Plan, Product};
use serde::Serialize;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StatementLine {
    pub product: Product,
    pub units: i64,
    pub included_units: i64,
    /// Units beyond the included ones: what is charged.
    pub billable_units: i64,
    pub unit_price_micros: i64,
    pub amount_micros: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Statement {
    pub month: DateTime<Utc>,
    pub plan_id: String,
    pub currency: String,
    pub base_fee_cents: i64,
    pub lines: Vec<StatementLine>,
    /// Base fee plus every line, rounded half up to whole cents.
    pub total_cents: i64,
}

/// The statement of `month` for a tenant on `plan` that used `units` of each product.
pub fn statement(plan: &Plan, month: DateTime<Utc>, units: &BTreeMap<Product, i64>) -> Statement {
    let lines: Vec<StatementLine> = units
        .iter()
        .filter(|(_, used)| **used > 0)
        .map(|(&product, &used)| {
            let (included, price) = plan.terms(product).map_or((0, 0), |t| (t.included_units, t.unit_price_micros));
            let billable = (used - included).max(0);
            StatementLine {
                product,
                units: used,
                included_units: included,
                billable_units: billable,
                unit_price_micros: price,
                amount_micros: billable.saturating_mul(price),
            }
        })
        .collect();
    let usage_micros: i64 = lines.iter().map(|l| l.amount_micros).fold(0, i64::saturating_add);
    let total_cents = plan.base_fee_cents.saturating_add(usage_micros.saturating_add(5_000) / 10_000);
    Statement {
        month,
        plan_id: plan.id.clone(),
        currency: plan.currency.clone(),
        base_fee_cents: plan.base_fee_cents,
        lines,
        total_cents,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use faceplate_store::ProductTerms;

    fn plan() -> Plan {
        let terms =
            |included, price| ProductTerms { included_units: included, monthly_cap: None, unit_price_micros: price };
        Plan {
            id: "p".into(),
            name: "P".into(),
            tenant_qps: 1,
            tenant_concurrency: 1,
            key_qps: 1,
            key_concurrency: 1,
            currency: "usd".into(),
            base_fee_cents: 1000,
            products: [(Product::FaceDetect, terms(100, 1000)), (Product::OcrIdcard, terms(0, 5000))].into(),
        }
    }

    #[test]
    fn charges_units_beyond_the_included_ones_and_rounds_once() {
        let units = [(Product::FaceDetect, 150), (Product::OcrIdcard, 3), (Product::FaceCompare, 0)].into();
        let s = statement(&plan(), DateTime::UNIX_EPOCH, &units);
        assert_eq!(s.lines.len(), 2, "products without usage are left out");
        assert_eq!(s.lines[0].billable_units, 50);
        assert_eq!(s.lines[0].amount_micros, 50_000);
        assert_eq!(s.lines[1].amount_micros, 15_000);
        // $10 fee + $0.05 + $0.015 = $10.065 → 1007 cents (half up).
        assert_eq!(s.total_cents, 1007);
    }

    #[test]
    fn usage_within_the_included_units_costs_only_the_fee() {
        let s = statement(&plan(), DateTime::UNIX_EPOCH, &[(Product::FaceDetect, 100)].into());
        assert_eq!(s.lines[0].billable_units, 0);
        assert_eq!(s.total_cents, 1000);
    }
}
