//! Relance's pure engine: no I/O, no async, no clock (time is passed in).
//!
//! - [`contact`]: contacts and their validated identities;
//! - [`event`]: events, triggers and action types;
//! - [`rules`]: rule files (the seed's JSON export and TOML), validation, compilation;
//! - [`engine`]: [`Engine::apply`], one event against one contact;
//! - [`score`]: the seed's lead-score formula;
//! - [`inbound`]: Brevo and behaviour payload parsers.
#![forbid(unsafe_code)]

pub mod backtest;
pub mod contact;
pub mod contact_update;
pub mod engine;
pub mod event;
pub mod inbound;
pub mod named_score;
pub mod phone;
pub mod plan;
pub mod pressure;
pub mod rules;
pub mod score;
pub mod sync_fields;
pub mod time_text;

pub use contact::{ClientCode, Contact, Email, Score, SuppressionReason};
pub use engine::{ActionStatus, CancelScope, Change, Engine, FiredAction, Outcome};
pub use event::{ActionType, BounceType, Event, Source, Trigger};
pub use inbound::{InboundError, InboundEvent};
pub use rules::{RuleError, RuleFormat, RuleSet, RuleSpec};
pub use score::ScoreInputs;
