//! Backtesting: the same events through two rule sets, from the same starting contacts,
//! and what ends differently. Pure, so it runs on a copy with no side effects.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::contact::Contact;
use crate::engine::{ActionStatus, Engine};
use crate::event::{ActionType, Event};
use crate::plan::{LoadedContact, LoadedRun, Planner, RunChange, RunChangeKind};

mod pressure;
mod scores;
pub use pressure::PressureStats;
pub use scores::ScoreDistribution;

/// One stored event to replay, in commit order.
#[derive(Debug, Clone)]
pub struct ReplayEvent {
    pub contact_id: i64,
    pub event: Event,
    pub at: DateTime<Utc>,
}

/// What one rule set did over the replay.
#[derive(Debug, Clone, Default, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayStats {
    /// rule id → action type → count (suppressed ones excluded).
    pub actions: BTreeMap<String, BTreeMap<String, u64>>,
    /// Emails sent: fired, less the delayed ones a goal, an opt-out or a `skip_if` stopped.
    pub emails: u64,
    pub suppressed: u64,
    /// rule id → what its runs did (rules with runs only).
    pub runs: BTreeMap<String, RunStats>,
    /// What contact pressure (`[pressure]`, `max_per_day`) would have done to these
    /// messages; absent when the backtest ran without it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pressure: Option<PressureStats>,
}

/// Runs of one rule over a replay.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunStats {
    pub entered: u64,
    /// Firings the re-entry policy refused.
    pub not_entered: u64,
    pub goals_reached: u64,
    /// Ended by an opt-out or `pause_campaign`.
    pub cancelled: u64,
    pub steps_skipped: u64,
    /// Pending steps a goal or an opt-out cancelled.
    pub steps_cancelled: u64,
}

/// A delayed step of a run, waiting in the replay.
#[derive(Debug, Clone)]
struct Step {
    run_id: String,
    rule_id: String,
    contact_id: i64,
    due_at: DateTime<Utc>,
    email: bool,
    /// The index of the event that fired it, for `emailed`.
    event_index: usize,
    skip_if: Option<std::sync::Arc<crate::rules::Happening>>,
    /// Its message in [`Side::messages`], if it sends one.
    message: Option<usize>,
}

/// One rule set's side of a backtest: contacts, runs and waiting steps carried from page
/// to page.
#[derive(Default)]
struct Side {
    contacts: HashMap<i64, Contact>,
    runs: Vec<LoadedRun>,
    steps: Vec<Step>,
    stats: ReplayStats,
    /// (event index, rule) of each email sent.
    emailed: Vec<(usize, String)>,
    /// Every message sent (emails, SMS, calls), for contact pressure.
    messages: Vec<pressure::Sent>,
}

impl Side {
    /// Replays events through the planner, as ingest would plan them (suppression,
    /// cascades, cancellations, runs), and each run's steps as they come due (skips).
    fn replay(&mut self, engine: &Engine, events: &[ReplayEvent], offset: usize) {
        let mut n = 0u64;
        let mut ids = || {
            n += 1;
            format!("replay-{offset}-{n}")
        };
        let mut planner = Planner::new(engine, 0, crate::contact::DEFAULT_SEGMENT, &mut ids);
        let mut named: Vec<i64> = events.iter().map(|e| e.contact_id).collect();
        named.sort_unstable();
        named.dedup();
        for id in named {
            if let Some(contact) = self.contacts.remove(&id) {
                let at = events[0].at;
                planner.load_contact(LoadedContact { id, contact, version: 0, created_at: at, updated_at: at });
            }
        }
        for run in std::mem::take(&mut self.runs) {
            planner.load_run(run);
        }
        for (i, e) in events.iter().enumerate() {
            self.steps_due(&planner, e.at);
            let (actions, runs) = planner.replay(e.contact_id, &e.event, e.at);
            for change in runs {
                self.run_changed(&change);
            }
            for a in actions {
                let run_id = a.run_id;
                let a = a.fired;
                if a.status == ActionStatus::Suppressed {
                    self.stats.suppressed += 1;
                    continue;
                }
                let rule = a.rule_id.to_string();
                *self.stats.actions.entry(rule.clone()).or_default().entry(a.action_type.to_string()).or_default() += 1;
                let email = a.action_type == ActionType::SendEmail;
                if email {
                    self.stats.emails += 1;
                    self.emailed.push((i + offset, rule.clone()));
                }
                let message = crate::pressure::Channel::of(a.action_type).map(|_| {
                    self.messages.push(pressure::Sent {
                        contact_id: e.contact_id,
                        action: a.action_type,
                        rule_id: rule.clone(),
                        due_at: a.due_at.unwrap_or(e.at),
                        transactional: a.transactional,
                        on_cap: a.on_cap.unwrap_or_default(),
                        max_per_day: a.max_per_day,
                        stopped: false,
                    });
                    self.messages.len() - 1
                });
                if let (Some(run_id), Some(due_at)) = (run_id, a.due_at.filter(|_| a.delay_minutes > 0)) {
                    let skip_if = a.skip_if.clone();
                    let (contact_id, event_index) = (e.contact_id, i + offset);
                    let step = Step { run_id, rule_id: rule, contact_id, due_at, email, event_index, skip_if, message };
                    self.steps.push(step);
                }
            }
        }
        let plan = planner.finish();
        for planned in plan.contacts {
            if let Some(id) = planned.id {
                self.contacts.insert(id, planned.contact);
            }
        }
        self.runs = plan.runs.into_iter().map(|r| r.run).collect();
    }

    /// Steps due by `now`, in due order: skipped if their `skip_if` holds then.
    fn steps_due(&mut self, planner: &Planner<'_>, now: DateTime<Utc>) {
        self.steps.sort_by_key(|s| std::cmp::Reverse(s.due_at));
        while self.steps.last().is_some_and(|s| s.due_at <= now) {
            let Some(step) = self.steps.pop() else { break };
            let (Some(skip), Some(run), Some(contact)) =
                (&step.skip_if, planner.run(&step.run_id), planner.contact(step.contact_id))
            else {
                continue; // it runs
            };
            if matches!(crate::plan::runs::skip_reason(skip, run, contact, step.due_at), Ok(Some(_))) {
                self.stats.runs.entry(step.rule_id.clone()).or_default().steps_skipped += 1;
                self.unsend(&step);
            }
        }
    }

    fn run_changed(&mut self, change: &RunChange) {
        let stats = self.stats.runs.entry(change.rule_id.clone()).or_default();
        match change.change {
            RunChangeKind::Started => stats.entered += 1,
            RunChangeKind::NotEntered => stats.not_entered += 1,
            RunChangeKind::GoalReached => stats.goals_reached += 1,
            RunChangeKind::Cancelled => stats.cancelled += 1,
        }
        if matches!(change.change, RunChangeKind::GoalReached | RunChangeKind::Cancelled) {
            let ended: Vec<Step> = self.steps.extract_if(.., |s| Some(&s.run_id) == change.run_id.as_ref()).collect();
            for step in ended {
                self.stats.runs.entry(step.rule_id.clone()).or_default().steps_cancelled += 1;
                self.unsend(&step);
            }
        }
    }

    /// A delayed email that will not go after all.
    fn unsend(&mut self, step: &Step) {
        if let Some(m) = step.message.and_then(|i| self.messages.get_mut(i)) {
            m.stopped = true;
        }
        if !step.email {
            return;
        }
        self.stats.emails = self.stats.emails.saturating_sub(1);
        if let Some(i) = self.emailed.iter().rposition(|(e, r)| *e == step.event_index && *r == step.rule_id) {
            self.emailed.remove(i);
        }
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactState {
    pub score: u8,
    pub segment: String,
    pub tags: Vec<String>,
}

impl From<&Contact> for ContactState {
    fn from(c: &Contact) -> Self {
        ContactState { score: c.score.value(), segment: c.segment.clone(), tags: c.tags.iter().cloned().collect() }
    }
}

#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ContactDiff {
    pub contact_id: i64,
    pub live: ContactState,
    pub candidate: ContactState,
}

/// The difference between the live rules and a candidate over the same history.
#[derive(Debug, Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BacktestReport {
    pub events: usize,
    pub contacts: usize,
    pub live: ReplayStats,
    pub candidate: ReplayStats,
    pub contacts_ending_differently: usize,
    pub score_differs: usize,
    pub segment_differs: usize,
    pub tags_differ: usize,
    /// Emails the live rules sent that the candidate would not, and the reverse (by
    /// event and rule).
    pub emails_no_longer_sent: usize,
    pub emails_newly_sent: usize,
    /// Up to `max_examples` contacts that end differently.
    pub examples: Vec<ContactDiff>,
    /// Each score's distribution (`lead` and every declared score) under both rule sets.
    pub score_distributions: Vec<ScoreDistribution>,
    /// Contacts that would show different values in Brevo (`[brevo.sync]` mapping) with
    /// the candidate; absent when nothing is synced.
    pub brevo_attribute_changes: Option<usize>,
}

/// A backtest fed page by page, so that a million stored events need not sit in memory.
pub struct Backtest<'a> {
    live: &'a Engine,
    candidate: &'a Engine,
    a: Side,
    b: Side,
    seen: usize,
    pressure: Option<crate::pressure::Pressure>,
    sync: Option<std::sync::Arc<crate::sync_fields::SyncFields>>,
}

impl<'a> Backtest<'a> {
    /// `start` gives the starting state of the contacts it knows; others start blank.
    pub fn new(live: &'a Engine, candidate: &'a Engine, start: HashMap<i64, Contact>) -> Backtest<'a> {
        Backtest {
            live,
            candidate,
            a: Side { contacts: start.clone(), ..Side::default() },
            b: Side { contacts: start, ..Side::default() },
            seen: 0,
            pressure: None,
            sync: None,
        }
    }

    /// Counts the contacts whose Brevo attributes the candidate would change.
    pub fn with_sync(mut self, sync: std::sync::Arc<crate::sync_fields::SyncFields>) -> Backtest<'a> {
        self.sync = (!sync.is_empty()).then_some(sync);
        self
    }

    /// Reports what contact pressure would have done to each side's messages.
    pub fn with_pressure(mut self, pressure: crate::pressure::Pressure) -> Backtest<'a> {
        self.pressure = Some(pressure);
        self
    }

    pub fn feed(&mut self, events: &[ReplayEvent]) {
        if events.is_empty() {
            return;
        }
        self.a.replay(self.live, events, self.seen);
        self.b.replay(self.candidate, events, self.seen);
        self.seen += events.len();
    }

    pub fn finish(mut self, max_examples: usize) -> BacktestReport {
        if let Some(p) = &self.pressure {
            for side in [&mut self.a, &mut self.b] {
                let contacts = &side.contacts;
                let zone = |id: i64| {
                    contacts
                        .get(&id)
                        .and_then(|c| c.attributes.get("timezone"))
                        .and_then(|v| v.as_str())
                        .map(str::to_owned)
                };
                side.stats.pressure = Some(pressure::simulate(p, &side.messages, zone));
            }
        }
        let live_set: std::collections::HashSet<_> = self.a.emailed.iter().map(|(i, _)| *i).collect();
        let cand_set: std::collections::HashSet<_> = self.b.emailed.iter().map(|(i, _)| *i).collect();
        let mut ids: Vec<i64> = self.a.contacts.keys().copied().collect();
        ids.sort_unstable();
        let (mut differ, mut score, mut segment, mut tags) = (0, 0, 0, 0);
        let mut examples = Vec::new();
        for id in &ids {
            let (x, y) = (&self.a.contacts[id], &self.b.contacts[id]);
            let (s, g, t) = (x.score != y.score, x.segment != y.segment, x.tags != y.tags);
            if s || g || t {
                differ += 1;
                score += usize::from(s);
                segment += usize::from(g);
                tags += usize::from(t);
                if examples.len() < max_examples {
                    examples.push(ContactDiff { contact_id: *id, live: x.into(), candidate: y.into() });
                }
            }
        }
        BacktestReport {
            events: self.seen,
            contacts: ids.len(),
            live: self.a.stats,
            candidate: self.b.stats,
            contacts_ending_differently: differ,
            score_differs: score,
            segment_differs: segment,
            tags_differ: tags,
            emails_no_longer_sent: live_set.difference(&cand_set).count(),
            emails_newly_sent: cand_set.difference(&live_set).count(),
            examples,
            score_distributions: scores::distributions(self.live, self.candidate, &self.a.contacts, &self.b.contacts),
            brevo_attribute_changes: self
                .sync
                .as_ref()
                .map(|s| scores::brevo_changes(s, &self.a.contacts, &self.b.contacts)),
        }
    }
}

/// The whole backtest at once (events already in memory).
pub fn backtest(
    live: &Engine,
    candidate: &Engine,
    start: &HashMap<i64, Contact>,
    events: &[ReplayEvent],
    max_examples: usize,
) -> BacktestReport {
    let mut bt = Backtest::new(live, candidate, start.clone());
    bt.feed(events);
    bt.finish(max_examples)
}

/// The state a contact starts a backtest from: its identity and what the CRM gave it
/// (segment, RFM, names, phone, attributes), without what events did (score back to the
/// formula's value for its RFM, no tags, counters, flags). Both rule sets start from the
/// same state, so the differences are the rules'.
pub fn baseline(c: &Contact, now: DateTime<Utc>) -> Contact {
    let mut b = Contact {
        email: c.email.clone(),
        client_code: c.client_code.clone(),
        first_name: c.first_name.clone(),
        last_name: c.last_name.clone(),
        phone: c.phone.clone(),
        segment: c.segment.clone(),
        rfm_score: c.rfm_score,
        attributes: c.attributes.clone(),
        ..Contact::default()
    };
    b.score = b.formula_score(now);
    b
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{Source, Trigger};
    use crate::rules::{RuleFormat, RuleSet};
    use chrono::TimeZone;

    #[test]
    fn a_stricter_purchase_rule_sends_fewer_emails() {
        let at = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        let purchase =
            |amount: f64| Event { amount: Some(amount), ..Event::new(Source::Tracking, Trigger::Purchase, at) };
        let events: Vec<ReplayEvent> = [(1, 60.0), (2, 150.0), (3, 80.0), (1, 70.0)]
            .into_iter()
            .map(|(id, amount)| ReplayEvent { contact_id: id, event: purchase(amount), at })
            .collect();
        let start: HashMap<i64, Contact> = (1..=3).map(|id| (id, Contact::default())).collect();
        let live = Engine::new(RuleSet::defaults());
        let mut specs = RuleSet::defaults().specs();
        specs.iter_mut().find(|r| r.rule_id == "rule_purchase").unwrap().conditions.minimum_amount = Some(100.0);
        let text = serde_json::to_string(&specs).unwrap();
        let candidate = Engine::new(RuleSet::parse(&text, RuleFormat::Json).unwrap());
        let r = backtest(&live, &candidate, &start, &events, 10);
        assert_eq!(r.events, 4);
        assert_eq!(r.live.actions["rule_purchase"]["send_email"], 4);
        assert_eq!(r.candidate.actions["rule_purchase"]["send_email"], 1);
        assert_eq!(r.emails_no_longer_sent, 3, "three thank-yous (and VIP offers) no longer go");
        assert_eq!(r.contacts_ending_differently, 2, "contacts 1 and 3 end with lower scores");
        assert_eq!(r.examples[0].contact_id, 1);
        // Same rules: no difference at all.
        let same = backtest(&live, &live, &start, &events, 10);
        assert_eq!((same.contacts_ending_differently, same.emails_newly_sent, same.emails_no_longer_sent), (0, 0, 0));
    }

    #[test]
    fn runs_goals_and_skips_replay_as_in_production() {
        use chrono::Duration;
        let at = Utc.with_ymd_and_hms(2026, 5, 4, 10, 0, 0).unwrap();
        let ev = |trigger: Trigger, days: i64| {
            let mut event = Event::new(Source::Tracking, trigger, at + Duration::days(days));
            event.amount = (trigger == Trigger::Purchase).then_some(40.0);
            ReplayEvent { contact_id: 1, event, at: at + Duration::days(days) }
        };
        // Contact 1: form, click on day 1 (the reminder is skipped on day 3), purchase on
        // day 5 (the call is cancelled), a form on day 10 (not entered), a visit on day 40.
        let events = [
            ev(Trigger::FormSubmit, 0),
            ev(Trigger::EmailClicked, 1),
            ev(Trigger::PageVisit, 4),
            ev(Trigger::Purchase, 5),
            ev(Trigger::FormSubmit, 10),
        ];
        let start: HashMap<i64, Contact> = [(1, Contact::default())].into_iter().collect();
        let live = Engine::new(RuleSet::defaults());
        let candidate = Engine::new(RuleSet::parse(crate::plan::runs_tests::TASTING, RuleFormat::Toml).unwrap());
        // Pages of two events: runs and their steps carry over from page to page.
        let mut bt = Backtest::new(&live, &candidate, start);
        for page in events.chunks(2) {
            bt.feed(page);
        }
        let r = bt.finish(5);
        let runs = &r.candidate.runs["tasting_follow_up"];
        assert_eq!(
            (runs.entered, runs.not_entered, runs.goals_reached, runs.steps_skipped, runs.steps_cancelled),
            (1, 1, 1, 1, 1),
            "{runs:?}"
        );
        assert_eq!(r.candidate.emails, 1, "the invite only: the reminder was skipped");
        assert!(r.live.runs.is_empty(), "the seed rules have no runs");
    }
}
