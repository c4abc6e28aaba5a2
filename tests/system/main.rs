//! Ventana as processes: the `ventana` binary's commands, `ventana serve`
//! replicas on one database, backups restored whole, SIGKILL under load, the database cut off, a
//! PostgreSQL failover, a full and a read-only disk, spans exported to an
//! OTLP collector, the rules diff as a gate, and the HTML pages rendered by
//! headless Chromium.

#[path = "../support/mod.rs"]
mod support;

mod backup;
mod cli;
mod console;
mod crash;
mod db_faults;
mod failover;
mod otlp;
mod pictures;
mod replicas;
mod rules_diff;
mod sqlite_faults;
