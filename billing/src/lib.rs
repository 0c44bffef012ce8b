//! Billing: what a tenant owes for a month, from its plan and its metered usage, and, when Stripe is
//! configured, the same usage reported to Stripe.
//!
//! Without Stripe this is the ledger: the statement for any month is computed from the usage aggregates, which
//! are written with every billable answer, so it is exact as soon as the month ends. With Stripe, every usage
//! event also goes through an outbox to Stripe's Billing Meters ([`outbox`]), and Stripe's webhooks keep each
//! tenant's subscription and invoice status ([`webhook`]).

pub mod outbox;
pub mod statement;
pub mod stripe;
pub mod webhook;

pub use statement::{Statement, StatementLine, statement};
