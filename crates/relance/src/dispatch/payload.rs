//! The action as Power Automate flows, signed webhooks, the external executor's claims
//! and the outbox receive it. Every field is always present (null when unknown), so that
//! a Power Automate "Parse JSON" step can rely on the shape.

use chrono::{DateTime, Utc};
use relance_core::{ActionType, Score, Trigger};
use serde::Serialize;
use serde_json::Value;

use crate::store::jobs::ClaimedJob;

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ActionPayload {
    /// The same on every attempt of this action: use it to ignore a redelivery.
    pub idempotency_key: String,
    pub job_id: String,
    pub action_type: ActionType,
    /// The rule that fired the action.
    pub rule_id: String,
    /// The trigger that fired the rule.
    pub trigger: String,
    /// The action's settings from the rule (`template`, `message`, `title`, …).
    #[schema(value_type = Object)]
    pub config: Value,
    pub due_at: DateTime<Utc>,
    /// 1 on the first attempt.
    pub attempt: u32,
    pub contact: PayloadContact,
    /// The event that fired the rule, or null for actions that have none.
    pub event: Option<PayloadEvent>,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayloadContact {
    pub email: Option<String>,
    pub client_code: Option<String>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub segment: String,
    pub score: Score,
    pub tags: Vec<String>,
    pub purchases: u32,
    pub total_spent: f64,
}

#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PayloadEvent {
    /// Relance's id of the event.
    pub id: Option<String>,
    /// The name the sender used (`click`, `purchase`, …).
    pub name: String,
    /// `brevo`, `tracking`, `api` or `scheduler`.
    pub source: String,
    pub trigger: Option<Trigger>,
    pub occurred_at: DateTime<Utc>,
    pub amount: Option<f64>,
    pub link: Option<String>,
    pub page: Option<String>,
    pub product_id: Option<String>,
    pub message_id: Option<String>,
    pub campaign_id: Option<i64>,
}

impl ActionPayload {
    pub fn of(job: &ClaimedJob) -> ActionPayload {
        let c = &job.contact;
        ActionPayload {
            idempotency_key: job.idempotency_key.clone(),
            job_id: job.id.clone(),
            action_type: job.action_type,
            rule_id: job.rule_id.clone(),
            trigger: job.trigger.clone(),
            config: job.config.clone(),
            due_at: job.due_at,
            attempt: job.attempts,
            contact: PayloadContact {
                email: c.email.as_ref().map(ToString::to_string),
                client_code: c.client_code.as_ref().map(ToString::to_string),
                first_name: c.first_name.clone(),
                last_name: c.last_name.clone(),
                phone: c.phone.clone(),
                segment: c.segment.clone(),
                score: c.score,
                tags: c.tags.iter().cloned().collect(),
                purchases: c.purchases,
                total_spent: c.total_spent,
            },
            event: job.event.as_ref().map(|e| PayloadEvent {
                id: job.event_id.clone(),
                name: e.name.clone(),
                source: e.source.as_str().to_owned(),
                trigger: e.trigger,
                occurred_at: e.occurred_at,
                amount: e.amount,
                link: e.link.clone(),
                page: e.page.clone(),
                product_id: e.product_id.clone(),
                message_id: e.message_id.clone(),
                campaign_id: e.campaign_id,
            }),
        }
    }
}
