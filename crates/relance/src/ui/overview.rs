//! The overview: activity per hour, actions by state, how contacts spread, the rules that
//! fire most, jobs needing attention, and a live feed of incoming events.

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Extension;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event as SseEvent, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Utc};
use futures_util::Stream;
use maud::{Markup, html};
use serde::{Deserialize, Serialize};

use super::layout::{self, Nav, contact_link, json_data, time, time_ago};
use super::locale::Locale;
use super::text::T;
use super::{OVERVIEW_TTL, OverviewCache, store_problem};
use crate::store::dashboard::{ContactDistribution, CounterKind, HOUR_MS, NO_TRIGGER};
use crate::store::jobs::{JobCount, JobFilter, JobRow, JobState};
use crate::store::rejected::RejectedDelivery;
use crate::store::{EventRow, StoreError};
use crate::web::AppState;
use crate::web::auth::Reason;
use crate::web::session::Session;

/// Hours shown in the activity chart.
const HOURS: i64 = 7 * 24;
/// Rejected delivery items shown on the overview.
const REJECTED_SHOWN: usize = 10;
/// Events shown in the feed when the page opens.
const FEED_START: usize = 15;

/// Everything the overview aggregates (shared for `OVERVIEW_TTL`).
pub struct Aggregates {
    at: DateTime<Utc>,
    activity: Activity,
    /// trigger → (24 h, 7 days)
    trigger_totals: Vec<(String, i64, i64)>,
    /// rule → (24 h, 7 days), most fired first.
    rule_totals: Vec<(String, i64, i64)>,
    jobs: Vec<JobCount>,
    contacts: ContactDistribution,
    attention: Vec<JobRow>,
    /// Event names Relance stored without recognising them, 7 days, most first.
    unrecognised: Vec<(String, i64)>,
    /// Delivery items that could not be stored, received in the last 7 days.
    rejected: Vec<RejectedDelivery>,
    /// Messages contact pressure held back, 7 days: (deferred or skipped, reason, 24 h, 7 days).
    held: Vec<(&'static str, String, i64, i64)>,
}

impl Aggregates {
    /// Contacts per segment, largest first.
    pub fn segments(&self) -> &[(String, i64)] {
        &self.contacts.segments
    }
}

/// The activity chart's data: one series per trigger over the last `HOURS` hours.
#[derive(Serialize)]
struct Activity {
    /// Start of each hour, epoch ms.
    hours: Vec<i64>,
    series: Vec<Series>,
}

#[derive(Serialize)]
struct Series {
    label: String,
    counts: Vec<i64>,
}

impl Activity {
    /// The same, each trigger named in the reader's language (the cache is shared).
    fn in_words(&self, l: &Locale) -> Activity {
        let name = |label: &str| {
            if label == NO_TRIGGER { l.t(T::OvNoTrigger).to_owned() } else { super::describe::trigger_named(l, label) }
        };
        Activity {
            hours: self.hours.clone(),
            series: self.series.iter().map(|s| Series { label: name(&s.label), counts: s.counts.clone() }).collect(),
        }
    }
}

async fn aggregate(app: &AppState) -> Result<Aggregates, StoreError> {
    let now = (app.clock)();
    let this_hour = now.timestamp_millis().div_euclid(HOUR_MS) * HOUR_MS;
    let first_hour = this_hour - (HOURS - 1) * HOUR_MS;
    let day_start = this_hour - 23 * HOUR_MS;
    let since = DateTime::from_timestamp_millis(first_hour).unwrap_or(now);
    let counts = app.store.hourly_counts(since).await?;

    let hours: Vec<i64> = (0..HOURS).map(|i| first_hour + i * HOUR_MS).collect();
    let mut series: BTreeMap<String, Vec<i64>> = BTreeMap::new();
    let mut triggers: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut rules: BTreeMap<String, (i64, i64)> = BTreeMap::new();
    let mut unrecognised: BTreeMap<String, i64> = BTreeMap::new();
    let mut held: BTreeMap<(&'static str, String), (i64, i64)> = BTreeMap::new();
    for c in counts.iter().filter(|c| c.hour >= first_hour && c.hour <= this_hour) {
        let recent = if c.hour >= day_start { c.count } else { 0 };
        match c.kind {
            CounterKind::Trigger => {
                let slot = ((c.hour - first_hour) / HOUR_MS) as usize;
                series.entry(c.name.clone()).or_insert_with(|| vec![0; HOURS as usize])[slot] += c.count;
                let t = triggers.entry(c.name.clone()).or_default();
                *t = (t.0 + recent, t.1 + c.count);
            }
            CounterKind::Rule => {
                let r = rules.entry(c.name.clone()).or_default();
                *r = (r.0 + recent, r.1 + c.count);
            }
            CounterKind::Unrecognised => *unrecognised.entry(c.name.clone()).or_default() += c.count,
            CounterKind::Deferred | CounterKind::Skipped => {
                let h = held.entry((c.kind.as_str(), c.name.clone())).or_default();
                *h = (h.0 + recent, h.1 + c.count);
            }
        }
    }
    let mut rule_totals: Vec<(String, i64, i64)> = rules.into_iter().map(|(k, (d, w))| (k, d, w)).collect();
    rule_totals.sort_by(|a, b| b.2.cmp(&a.2).then(b.1.cmp(&a.1)).then(a.0.cmp(&b.0)));
    let mut trigger_totals: Vec<(String, i64, i64)> = triggers.into_iter().map(|(k, (d, w))| (k, d, w)).collect();
    trigger_totals.sort_by(|a, b| b.2.cmp(&a.2).then(a.0.cmp(&b.0)));

    let mut unrecognised: Vec<(String, i64)> = unrecognised.into_iter().collect();
    unrecognised.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(&b.0)));
    let rejected = app
        .store
        .rejected_deliveries(REJECTED_SHOWN)
        .await?
        .into_iter()
        .filter(|r| r.last_received_at >= since)
        .collect();

    let mut attention = Vec::new();
    for state in [JobState::Dead, JobState::Failed] {
        let filter = JobFilter { state: Some(state), limit: 10, ..JobFilter::default() };
        attention.extend(app.store.jobs(filter, None).await?);
    }
    Ok(Aggregates {
        at: now,
        activity: Activity {
            hours,
            series: series.into_iter().map(|(label, counts)| Series { label, counts }).collect(),
        },
        trigger_totals,
        rule_totals,
        jobs: app.store.job_stats().await?,
        contacts: app.store.contact_distribution().await?,
        attention,
        unrecognised,
        rejected,
        held: held.into_iter().map(|((kind, reason), (day, week))| (kind, reason, day, week)).collect(),
    })
}

pub async fn cached(app: &AppState, cache: &OverviewCache) -> Result<Arc<Aggregates>, StoreError> {
    let mut slot = cache.0.lock().await;
    if let Some((at, agg)) = slot.as_ref()
        && at.elapsed() < OVERVIEW_TTL
    {
        return Ok(agg.clone());
    }
    let agg = Arc::new(aggregate(app).await?);
    *slot = Some((Instant::now(), agg.clone()));
    Ok(agg)
}

pub async fn page(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    Extension(cache): Extension<Arc<OverviewCache>>,
    headers: axum::http::HeaderMap,
) -> Response {
    let l = &session.locale;
    let agg = match cached(&app, &cache).await {
        Ok(a) => a,
        Err(e) => return store_problem(&session, e),
    };
    let recent = match app.store.recent_events(FEED_START).await {
        Ok(r) => r,
        Err(e) => return store_problem(&session, e),
    };
    let first_run = match app.store.has_real_events().await {
        Ok(any) => !any,
        Err(e) => return store_problem(&session, e),
    };
    let refusals = app.refusals.last_hour();
    let rules = super::contact_page::RuleNames::of(&app.rules.current().engine.rules().specs());
    let guide = first_run.then(|| {
        let tests = recent.iter().any(|e| e.source == relance_core::Source::Test.as_str());
        super::first_run::panel(&app, l, &session, &super::first_run::base_url(&app, &headers), tests)
    });
    let page = html! { @if let Some(g) = guide { (g) } (body(l, &agg, &recent, &refusals, &rules)) };
    layout::page(l.t(T::Overview), Nav::Overview, &session, page).into_response()
}

fn count_jobs(jobs: &[JobCount], pred: impl Fn(&JobCount) -> bool) -> i64 {
    jobs.iter().filter(|j| pred(j)).map(|j| j.count).sum()
}

/// A refused route, in words.
fn route_name(l: &Locale, route: &str) -> &'static str {
    l.t(match route {
        "webhook_email" => T::OvRouteBrevo,
        "webhook_behavior" => T::OvRouteBehavior,
        "metrics" => T::OvRouteMetrics,
        _ => T::OvRouteApi,
    })
}

/// Why a request was refused, in words.
fn refusal(l: &Locale, reason: Reason) -> &'static str {
    l.t(match reason {
        Reason::Missing => T::OvWhyMissing,
        Reason::Malformed => T::OvWhyMalformed,
        Reason::WebhookTokenOnAdmin => T::OvWhyWebhookOnAdmin,
        Reason::Wrong => T::OvWhyWrong,
    })
}

fn body(
    l: &Locale,
    agg: &Aggregates,
    recent: &[EventRow],
    refusals: &[(&'static str, Reason, usize)],
    rules: &super::contact_page::RuleNames,
) -> Markup {
    let events_24h: i64 = agg.trigger_totals.iter().map(|t| t.1).sum();
    let pending = count_jobs(&agg.jobs, |j| j.state == "pending" || j.state == "running");
    let trouble = count_jobs(&agg.jobs, |j| j.state == "failed" || j.state == "dead");
    let states = ["pending", "running", "done", "failed", "dead", "cancelled", "suppressed"];
    let mut by_type: BTreeMap<&str, BTreeMap<&str, i64>> = BTreeMap::new();
    for j in &agg.jobs {
        *by_type.entry(j.action_type.as_str()).or_default().entry(j.state.as_str()).or_default() += j.count;
    }
    let labels: Vec<String> =
        (0..10).map(|b| if b == 9 { "90–100".into() } else { format!("{}–{}", b * 10, b * 10 + 9) }).collect();
    html! {
        p.muted { (l.t(T::OvFiguresAsOf)) " " (time(l, agg.at)) (l.t(T::OvFeedIsLive)) }
        section.kpis aria-label=(l.t(T::OvKeyFigures)) {
            div.kpi { span.value { (agg.contacts.total) } span.label { (l.t(T::OvContactsLabel)) } }
            div.kpi { span.value { (events_24h) } span.label { (l.t(T::OvEvents24h)) } }
            div.kpi { span.value { (pending) } span.label { (l.t(T::OvActionsWaiting)) } }
            div.kpi.warn[trouble > 0] { span.value { (trouble) } a.label href="/ui/actions?state=failed" { (l.t(T::OvFailedOrDead)) } }
        }
        div.grid {
            section.card.wide #activity {
                h2 { (l.t(T::OvEventsPerHour)) }
                div.chart { canvas #events-chart role="img" aria-label=(l.t(T::OvEventsChartLabel)) {} }
                (json_data("events-data", &agg.activity.in_words(l)))
                table {
                    caption { (l.t(T::OvEventsByTrigger)) }
                    thead { tr { th scope="col" { (l.t(T::OvTrigger)) } th.num scope="col" { "24 h" } th.num scope="col" { (l.t(T::Ov7Days)) } } }
                    tbody {
                        @for (trigger, day, week) in &agg.trigger_totals {
                            tr {
                                td { @if trigger == NO_TRIGGER { span.muted { (l.t(T::OvNoTrigger)) } } @else { (super::describe::trigger_named(l, trigger)) } }
                                td.num { (day) } td.num { (week) }
                            }
                        }
                        @if agg.trigger_totals.is_empty() { tr { td colspan="3" { (l.t(T::OvNoEvents)) } } }
                    }
                }
            }
            section.card #live {
                h2 { (l.t(T::OvLiveFeed)) }
                p.muted #feed-status aria-live="polite" { (l.t(T::OvConnecting)) }
                ol.feed #feed data-after=(recent.first().map(|e| e.seq).unwrap_or(0)) aria-live="polite" {
                    @for e in recent { (feed_item(l, e)) }
                }
            }
            section.card #rules-fired {
                h2 { (l.t(T::OvRulesFired)) }
                table {
                    thead { tr { th scope="col" { (l.t(T::OvRule)) } th.num scope="col" { "24 h" } th.num scope="col" { (l.t(T::Ov7Days)) } } }
                    tbody {
                        @for (rule, day, week) in agg.rule_totals.iter().take(10) {
                            tr { td { (rules.show(rule)) } td.num { (day) } td.num { (week) } }
                        }
                        @if agg.rule_totals.is_empty() { tr { td colspan="3" { (l.t(T::OvNoRuleFired)) } } }
                    }
                }
            }
            section.card #scores {
                h2 { (l.t(T::OvScoreDistribution)) }
                div.chart.small { canvas #score-chart role="img" aria-label=(l.t(T::OvScoreChartLabel)) {} }
                (json_data("score-data", &serde_json::json!({"labels": labels, "counts": agg.contacts.score_buckets})))
                details {
                    summary { (l.t(T::OvAsTable)) }
                    table {
                        thead { tr { th scope="col" { (l.t(T::OvScore)) } th.num scope="col" { (l.t(T::Contacts)) } } }
                        tbody { @for (label, n) in labels.iter().zip(agg.contacts.score_buckets) { tr { td { (label) } td.num { (n) } } } }
                    }
                }
            }
            section.card #segments {
                h2 { (l.t(T::OvPerSegment)) }
                table {
                    thead { tr { th scope="col" { (l.t(T::OvSegment)) } th.num scope="col" { (l.t(T::Contacts)) } th scope="col" { span.sr-only { (l.t(T::OvShare)) } } } }
                    tbody {
                        @for (segment, n) in &agg.contacts.segments {
                            tr {
                                td { a href={"/ui/contacts?" (layout::query(&[("segment", Some(segment.clone()))]))} { (segment) } }
                                td.num { (n) }
                                td { progress value=(n) max=(agg.contacts.total.max(1)) { (n) } }
                            }
                        }
                        @if agg.contacts.segments.is_empty() { tr { td colspan="3" { (l.t(T::OvNoSegments)) } } }
                    }
                }
            }
            section.card.wide #actions-by-state {
                h2 { (l.t(T::OvActionsByState)) }
                div.scroll {
                    table {
                        thead { tr { th scope="col" { (l.t(T::OvAction)) } @for s in states { th.num scope="col" { (super::text::state(s, l.lang)) } } } }
                        tbody {
                            @for (action, counts) in &by_type {
                                tr {
                                    td { (action) }
                                    @for s in states {
                                        td.num {
                                            @match counts.get(s) {
                                                Some(n) => a href={"/ui/actions?" (layout::query(&[("state", Some(s.to_owned())), ("action_type", Some((*action).to_owned()))]))} { (n) },
                                                None => span.muted { "0" },
                                            }
                                        }
                                    }
                                }
                            }
                            @if by_type.is_empty() { tr { td colspan="8" { (l.t(T::OvNoActions)) } } }
                        }
                    }
                }
            }
            section.card.wide #attention {
                h2 { (l.t(T::OvAttention)) }
                @if !refusals.is_empty() {
                    ul.plain #auth-refusals {
                        @for (route, reason, n) in refusals {
                            li.warn { strong { (route_name(l, route)) } " " (l.f(if *n == 1 { T::OvRefusedOnce } else { T::OvRefusedTimes }, &[n])) " " (refusal(l, *reason)) "." }
                        }
                    }
                    p.muted { (l.t(T::OvRefusalsHint)) }
                }
                @if agg.attention.is_empty() {
                    p { (l.t(T::OvNoTrouble)) }
                } @else {
                    (super::actions::jobs_table(l, &agg.attention, rules))
                }
                @if !agg.held.is_empty() {
                    h3 { (l.t(T::OvHeld)) }
                    p.muted {
                        (l.t(T::OvHeldHint)) " "
                        a href="/ui/actions?state=skipped" { (l.t(T::OvHeldSkipped)) } " · "
                        a href="/ui/actions?state=deferred" { (l.t(T::OvHeldDeferred)) }
                    }
                    table #held {
                        thead { tr { th scope="col" { (l.t(T::OvOutcome)) } th scope="col" { (l.t(T::OvReason)) } th.num scope="col" { "24 h" } th.num scope="col" { (l.t(T::Ov7Days)) } } }
                        tbody { @for (kind, reason, day, week) in &agg.held { tr { td { (super::text::state(kind, l.lang)) } td { (reason) } td.num { (day) } td.num { (week) } } } }
                    }
                }
                @if !agg.unrecognised.is_empty() {
                    h3 { (l.t(T::OvUnrecognised)) }
                    p.muted { (l.t(T::OvUnrecognisedHint)) }
                    table #unrecognised {
                        thead { tr { th scope="col" { (l.t(T::OvEventName)) } th.num scope="col" { (l.t(T::OvEvents)) } } }
                        tbody { @for (name, n) in &agg.unrecognised { tr { td { code { (name) } } td.num { (n) } } } }
                    }
                }
                @if !agg.rejected.is_empty() {
                    h3 { (l.t(T::OvRejected)) }
                    p.muted { "Answered 200 so that Brevo keeps the rest of its batch; the full list is " a href="/api/deliveries/rejected" { "/api/deliveries/rejected" } "." }
                    div.scroll {
                        table #rejected {
                            thead { tr { th scope="col" { (l.t(T::OvLastReceived)) } th scope="col" { (l.t(T::OvSource)) } th scope="col" { (l.t(T::OvProblem)) } th.num scope="col" { (l.t(T::OvTimes)) } th scope="col" { (l.t(T::OvPayload)) } } }
                            tbody {
                                @for r in &agg.rejected {
                                    tr {
                                        td { (time(l, r.last_received_at)) }
                                        td { (r.source) }
                                        td { code { (r.field) } ": " (r.error) }
                                        td.num { (r.times) }
                                        td { code.excerpt { (excerpt(&r.payload, 120)) } }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The first `max` characters of `text`, with an ellipsis when cut.
fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_owned(),
    }
}

fn feed_item(l: &Locale, e: &EventRow) -> Markup {
    html! {
        li {
            (time_ago(l, e.received_at)) " "
            strong { (e.event_type) }
            @if let Some(t) = &e.trigger { " → " (super::describe::trigger_named(l, t)) }
            " · " (contact_link(e.email.as_deref(), e.client_code.as_deref()))
            " " span.muted { "(" (e.source) ")" }
            @if e.source == relance_core::Source::Test.as_str() { " " span.badge.test { (l.t(T::FeedTest)) } }
        }
    }
}

#[derive(Deserialize)]
pub struct FeedQuery {
    after: Option<i64>,
}

/// One feed entry as the page script receives it.
#[derive(Serialize)]
struct FeedEntry {
    seq: i64,
    received_at: DateTime<Utc>,
    event_type: String,
    trigger: Option<String>,
    source: String,
    contact: Option<String>,
}

/// How often the feed looks for new events. Polling the store (not an in-process
/// channel) shows events received by every instance sharing the database.
const FEED_POLL: Duration = Duration::from_secs(1);
/// The most events one feed message carries.
const FEED_BATCH: usize = 30;
/// A feed connection ends after this; the browser reconnects where it stopped.
const FEED_LIFETIME: Duration = Duration::from_secs(600);

/// Server-sent events: batches of new events, each message's id the last one's sequence
/// (so that a reconnecting browser sends it back in `Last-Event-ID`).
pub async fn feed(
    State(app): State<AppState>,
    Extension(session): Extension<Session>,
    headers: HeaderMap,
    Query(q): Query<FeedQuery>,
) -> Sse<impl Stream<Item = Result<SseEvent, Infallible>>> {
    let resume = headers.get("last-event-id").and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<i64>().ok());
    let after = resume.or(q.after).unwrap_or(0);
    let closing = app.closing.subscribe();
    let lang = std::sync::Arc::new(session.locale.clone());
    let state = (app, after, closing, Instant::now());
    let stream = futures_util::stream::unfold(state, move |(app, mut after, mut closing, started)| {
        let lang = lang.clone();
        async move {
            loop {
                if *closing.borrow() || started.elapsed() > FEED_LIFETIME {
                    return None;
                }
                tokio::select! {
                    _ = tokio::time::sleep(FEED_POLL) => {}
                    _ = closing.changed() => return None,
                }
                // The newest events only: under heavy traffic a person cannot read them all,
                // and the feed must not fall behind.
                let rows: Vec<EventRow> = match app.store.recent_events(FEED_BATCH).await {
                    Ok(rows) => rows.into_iter().rev().filter(|r| r.seq > after).collect(),
                    Err(e) => {
                        tracing::debug!(error = %e, "live feed: cannot read events");
                        continue;
                    }
                };
                if rows.is_empty() {
                    continue;
                }
                after = rows.last().map(|r| r.seq).unwrap_or(after);
                let entries: Vec<FeedEntry> = rows
                    .into_iter()
                    .map(|r| FeedEntry {
                        seq: r.seq,
                        received_at: r.received_at,
                        event_type: r.event_type,
                        trigger: r.trigger.map(|t| super::describe::trigger_named(&lang, &t)),
                        source: r.source,
                        contact: r.email.or(r.client_code),
                    })
                    .collect();
                let data = serde_json::to_string(&entries).unwrap_or_else(|_| "[]".into());
                let message = SseEvent::default().event("events").id(after.to_string()).data(data);
                return Some((Ok(message), (app, after, closing, started)));
            }
        }
    });
    Sse::new(stream).keep_alive(KeepAlive::default())
}
