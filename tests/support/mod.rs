//! The harness all three test binaries share; each includes it with
//! `#[path = "../support/mod.rs"] mod support;`. One job per file: fresh
//! databases on either backend, dropped when the test ends (`database`),
//! on a throwaway PostgreSQL cluster unless told of a server (`postgres`);
//! one test configuration for in-process servers and `ventana` processes
//! alike (`config`); the rule sets tests run on (`rules`); the in-process
//! server and its gRPC clients (`server`); `ventana` child processes
//! (`processes`).

// Each binary uses its own part of the harness (and of `server`'s re-exports).
#![allow(dead_code, unused_imports)]

pub mod config;
pub mod console;
pub mod database;
pub mod postgres;
pub mod processes;
pub mod rules;
pub mod server;

use chrono::{DateTime, Utc};

/// An RFC 3339 instant.
pub fn at(text: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(text).expect("an RFC 3339 instant").with_timezone(&Utc)
}

/// A protobuf timestamp for the RFC 3339 instant `text`.
pub fn ts(text: &str) -> prost_types::Timestamp {
    let t = at(text);
    prost_types::Timestamp { seconds: t.timestamp(), nanos: 0 }
}
