//! Explain for named scores: each score as the sum of its causes (its initial value, each
//! rule's points, decay), from the stored history plus the decay not yet materialised.

use chrono::{DateTime, Utc};
use relance_core::named_score::ScoreSpec;
use serde::Serialize;

use crate::store::{HistoryRow, StoredContact};

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NamedScoreExplanation {
    pub name: String,
    /// The value now, decay included.
    pub value: i64,
    /// `sum(points) = value`, in order of first appearance: `initial`, `rule <id>`,
    /// `decay`, `other` (an edit through the API or an import).
    pub causes: Vec<NamedScoreCause>,
    /// Each recorded change, oldest first (`cause` as above).
    pub changes: Vec<NamedScoreChange>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NamedScoreCause {
    pub cause: String,
    pub points: i64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct NamedScoreChange {
    pub at: DateTime<Utc>,
    pub cause: String,
    pub event_id: Option<String>,
    pub before: i64,
    pub after: i64,
}

fn cause_of(h: &HistoryRow) -> String {
    match (&h.rule_id, h.action_type.as_deref()) {
        (Some(rule), _) => format!("rule {rule}"),
        (None, Some(relance_core::engine::DECAY)) => relance_core::engine::DECAY.to_owned(),
        _ => "other".to_owned(),
    }
}

/// Every score the contact holds or the rule set declares. `specs` and `now` add the decay
/// since the last materialisation (none when the rule set is not at hand).
pub fn explain_scores(
    stored: &StoredContact,
    history: &[HistoryRow],
    specs: &[ScoreSpec],
    now: DateTime<Utc>,
) -> Vec<NamedScoreExplanation> {
    let mut names: Vec<&str> = stored.contact.scores.keys().map(String::as_str).collect();
    for s in specs {
        if !names.contains(&s.name.as_str()) {
            names.push(&s.name);
        }
    }
    names
        .into_iter()
        .map(|name| {
            let field = format!("scores.{name}");
            let spec = specs.iter().find(|s| s.name == name);
            let changes: Vec<NamedScoreChange> = history
                .iter()
                .filter(|h| h.field == field)
                .filter_map(|h| {
                    Some(NamedScoreChange {
                        at: h.at,
                        cause: cause_of(h),
                        event_id: h.event_id.clone(),
                        before: h.before.as_i64()?,
                        after: h.after.as_i64()?,
                    })
                })
                .collect();
            let stored_value = stored.contact.scores.get(name).map(|v| v.value);
            let initial = changes.first().map(|c| c.before).or(stored_value).or(spec.map(|s| s.initial)).unwrap_or(0);
            let mut causes = vec![NamedScoreCause { cause: "initial".into(), points: initial }];
            let mut add = |cause: &str, points: i64| match causes.iter_mut().find(|c| c.cause == cause) {
                Some(c) => c.points += points,
                None => causes.push(NamedScoreCause { cause: cause.to_owned(), points }),
            };
            for c in &changes {
                add(&c.cause, c.after - c.before);
            }
            let recorded = stored_value.unwrap_or(initial);
            let value = match (spec, stored.contact.scores.get(name)) {
                (Some(spec), Some(v)) => spec.decayed(v.base, v.since, now),
                _ => recorded,
            };
            if value != recorded {
                add(relance_core::engine::DECAY, value - recorded);
            }
            NamedScoreExplanation { name: name.to_owned(), value, causes, changes }
        })
        .collect()
}
