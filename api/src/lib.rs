//! Faceplate's HTTP API (actix-web) and the `faceplate` command line. Thin adapters over the store: handlers
//! authenticate, parse, call the store and render; they hold no business rules of their own.

pub mod alerts;
pub mod auth;
pub mod billing;
pub mod cli;
pub mod config;
pub mod consent;
pub mod context;
pub mod error;
pub mod forms;
pub mod image_url;
pub mod import;
pub mod limits;
pub mod metering;
pub mod metrics;
pub mod observe;
pub mod routes;
pub mod search_index;
pub mod server;
pub mod state;
pub mod telemetry;
