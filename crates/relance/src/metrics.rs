//! `/metrics` in Prometheus text format. One registry per server (not a global), so
//! that several servers in one process (tests) keep their own counts.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

type Labels = Vec<(&'static str, String)>;

// The families counted for every event carry their labels as `&'static str`: no label
// string is allocated per event (the others count rarer things and keep `Labels`).

/// `relance_events_total`'s labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    pub source: &'static str,
    pub trigger: &'static str,
}

/// `relance_duplicate_deliveries_total`'s labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SourceLabels {
    pub source: &'static str,
}

/// `relance_actions_total`'s labels.
#[derive(Debug, Clone, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ActionLabels {
    pub action_type: &'static str,
    pub status: &'static str,
}

pub struct Metrics {
    registry: Registry,
    pub events: Family<EventLabels, Counter>,
    pub duplicates: Family<SourceLabels, Counter>,
    pub actions: Family<ActionLabels, Counter>,
    pub refused: Family<Labels, Counter>,
    pub unrecognised: Family<Labels, Counter>,
    pub rejected: Family<Labels, Counter>,
    pub auth_refused: Family<Labels, Counter>,
    pub ingest_seconds: Histogram,
    pub delivery_events: Histogram,
    pub job_lateness_seconds: Histogram,
    pub jobs: Family<Labels, Gauge>,
    pub runs: Family<Labels, Gauge>,
    pub run_changes: Family<Labels, Counter>,
    pub pressure_held: Family<Labels, Gauge>,
    pub pruned: Family<Labels, Counter>,
    pub brevo_sync: Family<Labels, Counter>,
    pub queue_depth: Gauge,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("relance");
        let events = Family::<EventLabels, Counter>::default();
        let duplicates = Family::<SourceLabels, Counter>::default();
        let actions = Family::<ActionLabels, Counter>::default();
        let refused = Family::<Labels, Counter>::default();
        let unrecognised = Family::<Labels, Counter>::default();
        let rejected = Family::<Labels, Counter>::default();
        let auth_refused = Family::<Labels, Counter>::default();
        let ingest_seconds =
            Histogram::new([0.0005, 0.001, 0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0]);
        let delivery_events = Histogram::new([1.0, 2.0, 5.0, 10.0, 50.0, 100.0, 500.0, 1000.0]);
        let job_lateness_seconds = Histogram::new([0.01, 0.05, 0.1, 0.5, 1.0, 5.0, 30.0, 60.0, 300.0, 3600.0]);
        let jobs = Family::<Labels, Gauge>::default();
        let runs = Family::<Labels, Gauge>::default();
        let run_changes = Family::<Labels, Counter>::default();
        let queue_depth = Gauge::default();
        let pressure_held = Family::<Labels, Gauge>::default();
        let pruned = Family::<Labels, Counter>::default();
        let brevo_sync = Family::<Labels, Counter>::default();
        registry.register("events", "Events stored, by source and trigger", events.clone());
        registry.register("duplicate_deliveries", "Redeliveries recognised and ignored, by source", duplicates.clone());
        registry.register("actions", "Actions fired by rules, by type and status", actions.clone());
        registry.register("refused_deliveries", "Deliveries answered 429, by reason", refused.clone());
        registry.register(
            "events_unrecognised",
            "Events stored under a name Relance does not recognise, by source and name",
            unrecognised.clone(),
        );
        registry.register(
            "deliveries_rejected",
            "Delivery items that could never be stored (kept in /api/deliveries/rejected), by source and field",
            rejected.clone(),
        );
        registry.register(
            "auth_refused",
            "Requests refused for their credentials, by route and reason",
            auth_refused.clone(),
        );
        registry.register(
            "ingest_duration_seconds",
            "Time to store a delivery and apply the rules",
            ingest_seconds.clone(),
        );
        registry.register("delivery_events", "Events per delivery (arrays count many)", delivery_events.clone());
        registry.register(
            "job_lateness_seconds",
            "Time between a job's due time and its run",
            job_lateness_seconds.clone(),
        );
        registry.register("jobs", "Jobs by state, action type and executor", jobs.clone());
        registry.register("runs", "Follow-up runs by rule and state (all time)", runs.clone());
        registry.register(
            "run_changes",
            "What events did to follow-up runs, by rule and change (started, not_entered, goal_reached, cancelled)",
            run_changes.clone(),
        );
        registry.register(
            "pressure_held",
            "Messages contact pressure deferred or skipped in the last 7 days, by outcome and reason",
            pressure_held.clone(),
        );
        registry.register(
            "retention_pruned",
            "Rows pruned by retention, by kind (raw_payloads, events, finished_jobs, rejected_deliveries)",
            pruned.clone(),
        );
        registry.register(
            "brevo_sync_contacts",
            "Contacts pushed to Brevo's contact attributes, by outcome (done, not_in_brevo, no_email, retrying, failed)",
            brevo_sync.clone(),
        );
        registry.register("ingest_queue_depth", "Deliveries waiting for the writer", queue_depth.clone());
        Metrics {
            registry,
            events,
            duplicates,
            actions,
            refused,
            unrecognised,
            rejected,
            auth_refused,
            ingest_seconds,
            delivery_events,
            job_lateness_seconds,
            jobs,
            runs,
            run_changes,
            pressure_held,
            pruned,
            brevo_sync,
            queue_depth,
        }
    }
}

/// A label value from something a sender chose: kept when it is a plain identifier of at
/// most 64 characters, otherwise `other` (so that no sender can grow the label set with
/// arbitrary text).
pub fn label_value(text: &str) -> String {
    let plain = !text.is_empty()
        && text.len() <= 64
        && text
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.' || b == b'[' || b == b']');
    if plain { text.to_owned() } else { "other".to_owned() }
}

impl Metrics {
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_prometheus_text() {
        let m = Metrics::default();
        m.events.get_or_create(&EventLabels { source: "brevo", trigger: "email_opened" }).inc();
        m.actions.get_or_create(&ActionLabels { action_type: "send_email", status: "scheduled" }).inc();
        m.ingest_seconds.observe(0.003);
        let text = m.render();
        assert!(text.contains("relance_events_total{source=\"brevo\",trigger=\"email_opened\"} 1"), "{text}");
        assert!(text.contains("relance_actions_total{action_type=\"send_email\",status=\"scheduled\"} 1"), "{text}");
        assert!(text.contains("relance_ingest_duration_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.ends_with("# EOF\n"));
    }
}
