//! Billing: what a tenant owes for a month, from its plan and its metered usage.
//!
//! Without Stripe this is the ledger: the statement for any month is computed from the usage aggregates, which
//! are written with every billable answer, so it is exact as soon as the month ends.

pub mod statement;

pub use statement::{Statement, StatementLine, statement};
