//! Relance as a library: the server, storage and CLI commands, so that integration tests
//! drive the real thing.
#![forbid(unsafe_code)]

pub mod access;
pub mod api;
pub mod cli;
pub mod config;
pub mod dispatch;
pub mod http;
pub mod import;
pub mod live_rules;
pub mod metrics;
pub mod ops;
pub mod sched;
pub mod server;
pub mod store;
pub mod ui;
pub mod web;
