//! Contact pressure at ingest: a message the rules want sent now is checked by the same
//! governor as in the dispatcher's claim, so that the answer tells the sender (Power
//! Automate) whether it goes, waits or is skipped. The claim checks it again when it is
//! due: this check decides the answer and the first `due_at`, the claim decides the send.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Duration, Utc};

use crate::contact::Contact;
use crate::engine::FiredAction;
use crate::event::ActionType;
use crate::pressure::{Channel, Message, Pressure, Verdict};

use super::Slot;

/// What the planner knows of sends: loaded by the backend, plus the messages this plan
/// lets go now (they count for the messages planned after them).
#[derive(Default)]
pub(super) struct Governor {
    pressure: Option<Arc<Pressure>>,
    /// Send times per contact (by stored id until the slot is known) and channel.
    loaded: HashMap<(i64, Channel), Vec<DateTime<Utc>>>,
    planned: HashMap<(Slot, Channel), Vec<DateTime<Utc>>>,
    /// Messages each budgeted rule sent since the start of the estate's day.
    rule_sends: HashMap<String, usize>,
}

/// The governor's word on a message planned now.
pub(super) enum Held {
    Deferred { until: DateTime<Utc>, reason: String },
    Skipped { reason: String },
}

impl Governor {
    pub fn set(&mut self, pressure: Arc<Pressure>) {
        self.pressure = Some(pressure);
    }

    pub fn pressure(&self) -> Option<&Pressure> {
        self.pressure.as_deref()
    }

    pub fn load_send(&mut self, contact_id: i64, channel: Channel, at: DateTime<Utc>) {
        self.loaded.entry((contact_id, channel)).or_default().push(at);
    }

    pub fn load_rule_sends(&mut self, rule_id: String, count: usize) {
        self.rule_sends.insert(rule_id, count);
    }

    /// Checks a message the rules send now (no delay); `None`: it goes as planned.
    pub fn check(
        &mut self,
        slot: Slot,
        contact_id: Option<i64>,
        contact: &Contact,
        fired: &FiredAction,
        now: DateTime<Utc>,
    ) -> Option<Held> {
        let pressure = self.pressure.as_deref()?;
        let channel = Channel::of(fired.action_type)?;
        if fired.delay_minutes > 0 {
            return None; // checked when it comes due
        }
        let mut sent: Vec<DateTime<Utc>> = self.planned.get(&(slot, channel)).cloned().unwrap_or_default();
        if let Some(id) = contact_id {
            sent.extend(self.loaded.get(&(id, channel)).into_iter().flatten());
        }
        let budget = fired.max_per_day.map(|max| (max, self.rule_sends.get(&*fired.rule_id).copied().unwrap_or(0)));
        let message = Message {
            action: fired.action_type,
            transactional: fired.transactional,
            on_cap: fired.on_cap.unwrap_or_default(),
            timezone: contact.attributes.get("timezone").and_then(serde_json::Value::as_str),
            sent: &sent,
            // Actions are planned in priority order: the ones before took their slots.
            ahead: 0,
            budget,
        };
        match pressure.check(&message, now) {
            Verdict::Send => {
                self.planned.entry((slot, channel)).or_default().push(now);
                if fired.max_per_day.is_some() {
                    *self.rule_sends.entry(fired.rule_id.to_string()).or_default() += 1;
                }
                None
            }
            Verdict::Defer { until, reason } => Some(Held::Deferred { until, reason }),
            Verdict::Skip { reason } => Some(Held::Skipped { reason }),
        }
    }
}

impl super::Planner<'_> {
    /// Contact pressure: messages planned to go now are checked (see [`pressure`]). The
    /// backend then loads what the governor counts: [`Planner::load_send`] for the
    /// loaded contacts over [`sends_window`], [`Planner::load_rule_sends`] for
    /// [`Planner::budgeted_rules`] since the estate's day start.
    pub fn set_pressure(&mut self, pressure: Arc<Pressure>) {
        self.governor.set(pressure);
    }

    pub fn pressure(&self) -> Option<&Pressure> {
        self.governor.pressure()
    }

    /// A message of `action` sent (or being sent) to a loaded contact at `at`.
    pub fn load_send(&mut self, contact_id: i64, action: ActionType, at: DateTime<Utc>) {
        if let Some(channel) = Channel::of(action) {
            self.governor.load_send(contact_id, channel, at);
        }
    }

    /// How many messages a budgeted rule sent today.
    pub fn load_rule_sends(&mut self, rule_id: String, count: usize) {
        self.governor.load_rule_sends(rule_id, count);
    }

    /// The rules with a `max_per_day` (whose sends today the backend loads).
    pub fn budgeted_rules(&self) -> Vec<String> {
        self.engine.rules().rules().iter().filter(|r| r.max_per_day.is_some()).map(|r| r.rule_id.to_string()).collect()
    }
}

/// How far back the backend loads a contact's sends, if at all.
pub fn sends_window(pressure: &Pressure) -> Option<Duration> {
    Channel::ALL.iter().filter_map(|c| pressure.window(*c)).max()
}
