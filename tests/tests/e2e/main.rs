//! End-to-end tests: one binary (faster to link), one module per area.

mod alerts;
mod audit_chain;
mod billing;
mod cli;
mod consent;
mod encryption;
mod errors;
mod export;
mod facepp_client;
mod faces;
mod facesets;
mod isolation;
mod keys;
mod limits;
mod metering;
mod migrations;
mod ocr;
mod openapi;
mod ops;
mod regions;
mod tenants;
mod transparency;
