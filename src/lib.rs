//! Ventana: compliance-aware contact scheduling.
//!
//! `rules` loads jurisdiction files, `engine` decides (pure), `intent_json`
//! reads intents as the CLI and files write them, `cli` drives the commands.

pub mod adapters;
pub mod api;
pub mod app;
pub mod audit;
pub mod cli;
pub mod clock;
pub mod config;
pub mod console;
pub mod domain;
pub mod engine;
pub mod intent_json;
pub mod officer;
pub mod preferences;
pub mod rate_limit;
pub mod rules;
pub mod scheduler;
pub mod server;
pub mod store;
pub mod telemetry;
pub mod tls;
