//! The pure core, no database and no server: the engine's worked cases and
//! properties, holidays against an independent reference, hostile rule files
//! and requests, the rules diff and the week picture's HTML, the source
//! tree's architecture checks, and the harness's own promises.

#[path = "../support/mod.rs"]
mod support;

mod debtor;
mod decide;
mod diff;
mod engine;
mod harness;
mod holidays;
mod hostile;
mod picture;
mod properties;
mod tidy;
