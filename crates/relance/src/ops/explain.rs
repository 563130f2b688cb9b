//! Why a contact is where it is: the score as a sum of its causes, tags with the rule
//! that added them, suppression with its cause, pending actions. Built from the stored
//! history, so it works the same on every backend.

use relance_core::SuppressionReason;
use serde::Serialize;
use serde_json::{Value, json};

use crate::store::jobs::{JobFilter, JobRow, JobState};
use crate::store::{ContactKey, HistoryRow, Store, StoredContact};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Explanation {
    /// The contact as stored.
    #[schema(value_type = Object)]
    pub contact: Value,
    pub score: ScoreExplanation,
    /// The rule set's named scores (`[[score]]`), each as the sum of its causes.
    pub scores: Vec<super::explain_scores::NamedScoreExplanation>,
    pub tags: Vec<TagCause>,
    pub suppression: Suppression,
    pub pending_actions: Vec<JobRow>,
    /// Follow-up runs: active ones and those that ended in the last 90 days, each with
    /// its steps and why it ended.
    pub runs: Vec<crate::store::runs::RunView>,
    /// Messages contact pressure skipped (over a cap with `on_cap = "skip"`), newest
    /// first; deferred ones are among `pending_actions`, with their `reason`.
    pub skipped_by_pressure: Vec<JobRow>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScoreExplanation {
    pub current: i64,
    /// The score the contact started with (the lead-score formula at creation, or a value
    /// set before history began; for a contact with more than 10,000 changes, the score
    /// before the oldest change kept).
    pub baseline: i64,
    /// Each change, in order; `baseline + sum(delta) = current`.
    pub changes: Vec<ScoreCause>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ScoreCause {
    pub at: chrono::DateTime<chrono::Utc>,
    pub rule_id: Option<String>,
    pub event_id: Option<String>,
    pub delta: i64,
    pub before: i64,
    pub after: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TagCause {
    pub tag: String,
    pub rule_id: Option<String>,
    pub event_id: Option<String>,
    pub at: Option<chrono::DateTime<chrono::Utc>>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct Suppression {
    /// Why no email may reach the contact, or null.
    pub email: Option<SuppressionReason>,
    /// Why no SMS may reach the contact, or null.
    pub sms: Option<SuppressionReason>,
    /// The history rows that set the flags.
    pub causes: Vec<HistoryRow>,
}

pub fn explain(stored: &StoredContact, history: &[HistoryRow], pending: Vec<JobRow>) -> Explanation {
    let c = &stored.contact;
    let current = i64::from(c.score.value());
    let changes: Vec<ScoreCause> = history
        .iter()
        .filter(|h| h.field == "score")
        .filter_map(|h| {
            let (before, after) = (h.before.as_i64()?, h.after.as_i64()?);
            Some(ScoreCause {
                at: h.at,
                rule_id: h.rule_id.clone(),
                event_id: h.event_id.clone(),
                delta: after - before,
                before,
                after,
            })
        })
        .collect();
    let baseline = changes.first().map(|c| c.before).unwrap_or(current);
    let tags = c
        .tags
        .iter()
        .map(|tag| {
            let added = history.iter().rev().find(|h| h.field == "tag" && h.after.as_str() == Some(tag.as_str()));
            TagCause {
                tag: tag.clone(),
                rule_id: added.and_then(|h| h.rule_id.clone()),
                event_id: added.and_then(|h| h.event_id.clone()),
                at: added.map(|h| h.at),
            }
        })
        .collect();
    let causes = history
        .iter()
        .filter(|h| {
            matches!(h.field.as_str(), "unsubscribed" | "complained" | "email_invalid") && h.after == json!(true)
        })
        .cloned()
        .collect();
    Explanation {
        contact: serde_json::to_value(stored).unwrap_or(Value::Null),
        score: ScoreExplanation { current, baseline, changes },
        // Filled by the callers, which hold the rule set and the clock.
        scores: Vec::new(),
        tags,
        suppression: Suppression { email: c.email_suppression(), sms: c.sms_suppression(), causes },
        pending_actions: pending,
        runs: Vec::new(),
        skipped_by_pressure: Vec::new(),
    }
}

/// Gathers what `explain` needs from any store.
pub async fn explain_contact<S: Store + ?Sized>(
    store: &S,
    key: ContactKey,
    now: chrono::DateTime<chrono::Utc>,
    specs: &[relance_core::named_score::ScoreSpec],
) -> Result<Option<Explanation>, crate::store::StoreError> {
    let Some(stored) = store.contact(key.clone()).await? else { return Ok(None) };
    let history = store.history(key.clone(), 10_000).await?;
    let filter = JobFilter { state: Some(JobState::Pending), limit: 1000, ..JobFilter::default() };
    let mut pending = store.jobs(filter, Some(key.clone())).await?;
    let failed = JobFilter { state: Some(JobState::Failed), limit: 1000, ..JobFilter::default() };
    pending.extend(store.jobs(failed, Some(key.clone())).await?);
    let mut explanation = explain(&stored, &history, pending);
    explanation.scores = super::explain_scores::explain_scores(&stored, &history, specs, now);
    let since = now - chrono::Duration::days(90);
    let runs = crate::store::runs::RunFilter { ended_since: Some(since), limit: 200, ..Default::default() };
    explanation.runs = store.runs(runs, Some(key.clone())).await?;
    explanation.skipped_by_pressure = skipped_by_pressure(
        store
            .jobs(JobFilter { state: Some(JobState::Skipped), limit: 1000, ..JobFilter::default() }, Some(key))
            .await?,
    );
    Ok(Some(explanation))
}

/// The skipped jobs contact pressure skipped (not a sequence's `skip_if`), newest first.
pub fn skipped_by_pressure(mut jobs: Vec<JobRow>) -> Vec<JobRow> {
    jobs.retain(|j| j.last_error.as_deref().is_some_and(|e| e.starts_with("cap: ")));
    jobs.sort_by_key(|j| std::cmp::Reverse(j.updated_at));
    jobs
}
