//! What the API and the dashboard share: the state every handler reaches, the one map
//! from errors to HTTP answers, authentication (tokens and dashboard sessions), and the
//! limits every request runs under. It imports neither `api` nor `ui`; the server
//! assembles both over it.

pub mod actor;
pub mod auth;
pub mod client;
pub mod error;
pub mod guard;
pub mod limits;
pub mod session;

use std::sync::Arc;

use axum::extract::Request;
use tokio::sync::watch;

use crate::config::Settings;
use crate::store::{Clock, SharedStore};

/// Bodies larger than this are refused (413), whatever the route.
pub const MAX_BODY_BYTES: usize = 1024 * 1024;

/// What every handler can reach. Every extractor and middleware of every request clones
/// it, so it is one shared reference rather than a reference count per field (measured:
/// its clones and drops were 0.9 % of the server's core under load).
#[derive(Clone)]
pub struct AppState(Arc<AppStateFields>);

impl std::ops::Deref for AppState {
    type Target = AppStateFields;
    fn deref(&self) -> &AppStateFields {
        &self.0
    }
}

impl From<AppStateFields> for AppState {
    fn from(fields: AppStateFields) -> AppState {
        AppState(Arc::new(fields))
    }
}

pub struct AppStateFields {
    pub store: SharedStore,
    pub metrics: Arc<crate::metrics::Metrics>,
    pub rules: Arc<crate::live_rules::LiveRules>,
    pub settings: Arc<Settings>,
    pub clock: Clock,
    /// Failed dashboard sign-ins per client address on this instance (the per-user
    /// count is stored, shared by every instance).
    pub sign_in_throttle: Arc<crate::access::throttle::AddressThrottle>,
    /// Set when the server stops, so that live feeds end and the drain can finish.
    pub closing: Arc<watch::Sender<bool>>,
    /// Recent authentication refusals on this instance (for the dashboard).
    pub refusals: Arc<auth::Refusals>,
    /// When this instance started (its uptime on the Integrations page).
    pub started: std::time::Instant,
}

impl AppState {
    /// Ends every live feed (called when the server begins to stop).
    pub fn close(&self) {
        self.closing.send_replace(true);
    }
}

/// The client's address as the HTTP layer resolved it (a trusted proxy's forward, or the peer).
pub fn client_ip(req: &Request) -> Option<String> {
    req.extensions().get::<client::Client>().map(|c| c.ip.to_string())
}
