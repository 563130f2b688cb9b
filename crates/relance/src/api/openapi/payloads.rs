//! Schemas of what Brevo and the website send. The parsers in `relance_core::inbound`
//! walk the JSON by hand, so these schemas are written out here, with the accepted names
//! taken from the parsers' own lists so that the two cannot drift apart.

use relance_core::inbound::{BEHAVIOR_ACTIONS, BREVO_EVENTS};
use serde_json::json;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::{RefOr, Required, Schema};
use utoipa::{IntoParams, PartialSchema, ToSchema};

fn schema(value: serde_json::Value) -> RefOr<Schema> {
    // The literals below are fixed at compile time and covered by `schemas_are_valid`.
    RefOr::T(serde_json::from_value(value).expect("a static schema literal"))
}

/// One Brevo webhook event (transactional or marketing).
pub struct BrevoEvent;

impl PartialSchema for BrevoEvent {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "description": "A Brevo webhook event. Fields other than these are kept with the event.",
            "required": ["event", "email"],
            "properties": {
                "event": {"type": "string", "minLength": 1, "examples": BREVO_EVENTS, "description": "The event name. The examples are the names Relance recognises (every spelling Brevo uses, camelCase too); any other name is stored with `recognised: false` and fires no rule."},
                "email": {"type": "string", "description": "The recipient.", "examples": ["marie.dupont@example.fr"]},
                "id": {"type": "integer", "description": "Brevo's webhook id."},
                "date": {"type": "string", "description": "Brevo's local date (`2026-03-01 10:00:00`)."},
                "ts": {"type": "integer", "description": "Unix seconds."},
                "ts_event": {"type": "integer", "description": "Unix seconds of the event."},
                "ts_epoch": {"type": "integer", "description": "Unix time of the event, in milliseconds (live deliveries) or seconds (Brevo's examples), read by magnitude; preferred when present."},
                "message-id": {"type": "string", "description": "The message's id; part of the dedupe key."},
                "subject": {"type": "string"},
                "tag": {"type": "string", "description": "A tag, or a JSON array of tags as text."},
                "tags": {"type": "array", "items": {"type": "string"}},
                "link": {"type": "string", "description": "For clicks: the link clicked."},
                "reason": {"type": "string", "description": "For bounces and errors."},
                "template_id": {"type": "integer"},
                "camp_id": {"type": "integer", "description": "Marketing campaign id (marketing events only)."},
                "campaign name": {"type": "string"},
                "sending_ip": {"type": "string"},
                "X-Mailin-custom": {"type": "string", "description": "Custom header set when sending (JSON text is parsed)."}
            },
            "additionalProperties": true
        }))
    }
}

impl ToSchema for BrevoEvent {}

/// One website behaviour event.
pub struct BehaviorEvent;

impl PartialSchema for BehaviorEvent {
    fn schema() -> RefOr<Schema> {
        schema(json!({
            "type": "object",
            "description": "A website behaviour event. `client_code` or `email` (or both, which links them) names the contact.",
            "required": ["action"],
            "properties": {
                "action": {"type": "string", "enum": BEHAVIOR_ACTIONS},
                "client_code": {"type": "string", "description": "The CRM's client code.", "examples": ["CLI-00042"]},
                "email": {"type": "string", "examples": ["marie.dupont@example.fr"]},
                "event_id": {"type": "string", "description": "The sender's id; a second delivery with the same id is a no-op."},
                "timestamp": {"type": "string", "format": "date-time", "description": "When it happened (RFC 3339); default: now."},
                "metadata": {
                    "type": "object",
                    "properties": {
                        "amount": {"type": "number", "minimum": 0, "description": "For purchases, in euros."},
                        "page": {"type": "string"},
                        "product_id": {"type": "string"},
                        "link": {"type": "string"}
                    },
                    "additionalProperties": true
                }
            },
            "additionalProperties": true
        }))
    }
}

impl ToSchema for BehaviorEvent {}

/// A webhook body: one event, or an array of them (a concrete type per event kind, as
/// utoipa's path macro needs).
macro_rules! delivery {
    ($name:ident, $event:ty) => {
        pub struct $name;

        impl PartialSchema for $name {
            fn schema() -> RefOr<Schema> {
                let item = format!("#/components/schemas/{}", <$event>::name());
                schema(json!({
                    "oneOf": [
                        {"$ref": item},
                        {"type": "array", "items": {"$ref": item}, "minItems": 1}
                    ]
                }))
            }
        }

        impl ToSchema for $name {
            fn schemas(schemas: &mut Vec<(String, RefOr<Schema>)>) {
                schemas.push((<$event>::name().into_owned(), <$event>::schema()));
            }
        }
    };
}

delivery!(BrevoDelivery, BrevoEvent);
delivery!(BehaviorDelivery, BehaviorEvent);

/// The optional `Idempotency-Key` header of the webhooks.
pub struct IdempotencyKey;

impl IntoParams for IdempotencyKey {
    fn into_params(_: impl Fn() -> Option<ParameterIn>) -> Vec<Parameter> {
        let description = "Makes a redelivery of the same body a no-op, for events without an id of their own \
                           (1 to 200 visible ASCII characters).";
        vec![
            ParameterBuilder::new()
                .name("Idempotency-Key")
                .parameter_in(ParameterIn::Header)
                .required(Required::False)
                .description(Some(description))
                .schema(Some(schema(
                    json!({"type": "string", "minLength": 1, "maxLength": 200, "pattern": "^[\\x21-\\x7e]+$"}),
                )))
                .build(),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemas_are_valid() {
        for s in [BrevoEvent::schema(), BehaviorEvent::schema(), BrevoDelivery::schema(), BehaviorDelivery::schema()] {
            assert!(matches!(s, RefOr::T(_)));
        }
        assert_eq!(BehaviorDelivery::name(), "BehaviorDelivery");
        assert_eq!(IdempotencyKey::into_params(|| None).len(), 1);
    }
}
