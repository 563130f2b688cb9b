//! Every integration test in one binary (linking the whole crate once instead of once
//! per file: 13 binaries took 14 GB of target/ and most of the build time). Each module
//! drives the real server; `common` starts it on port 0 with a fresh database.
//!
//! The long runs are `#[ignore]`d and run by scripts/test.sh by name:
//! `cargo test --workspace --test api -- --ignored crash::` (and `disk::`, `pg_outage::`).

#![allow(dead_code)]

mod common;

mod access;
mod backup;
mod brevo_corpus;
mod brevo_outgoing;
mod brevo_sync;
mod check;
mod cli;
mod contact_cache;
mod contacts_list;
mod crash;
mod dashboard;
mod disk;
mod dispatch;
mod explain;
mod finishes;
mod first_run;
mod front_door;
mod hostile;
mod instances;
mod integrations;
mod kill_switch;
mod openapi;
mod pg_outage;
mod planner_equivalence;
mod pressure;
mod pressure_priority;
mod pressure_seed;
mod proxy;
mod retention;
mod rules;
mod schedule;
mod scheduling;
mod score_decay;
mod sequences;
mod upgrade;
mod webhooks;
