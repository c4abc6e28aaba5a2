//! The service over real gRPC: an in-process server on a loopback port with
//! a manual clock, every case on a SQLite file and on a fresh PostgreSQL
//! database; and the store's conformance suite on both backends.

#[path = "../support/mod.rs"]
mod support;

mod access;
mod audit;
mod console;
mod debtor;
mod flows;
mod harness;
mod integrator;
mod keys;
mod store_conformance;
mod stream;
mod tls;
