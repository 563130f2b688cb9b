//! The contact fields pushed to Brevo contact attributes (`[brevo.sync] attributes`),
//! read the same way by the planner (did a mapped value change?) and by the sync worker
//! (what to send).

use serde_json::Value;

use crate::contact::Contact;

/// A Relance field a Brevo attribute can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SyncField {
    /// The lead score (`score`).
    Score,
    /// `scores.<name>`.
    Named(String),
    Tags,
    Segment,
    Purchases,
    TotalSpent,
    LastPurchaseAt,
    LastActivityAt,
    Unsubscribed,
    /// `attributes.<key>`: a free attribute, as it is.
    Attribute(String),
}

/// The paths `[brevo.sync] attributes` accepts.
pub const SYNC_FIELD_NAMES: &[&str] = &[
    "score",
    "scores.<name>",
    "tags",
    "segment",
    "purchases",
    "total_spent",
    "last_purchase_at",
    "last_activity_at",
    "unsubscribed",
    "attributes.<key>",
];

impl SyncField {
    pub fn parse(path: &str) -> Result<SyncField, String> {
        let field = match path {
            "score" | "scores.lead" => SyncField::Score,
            "tags" => SyncField::Tags,
            "segment" => SyncField::Segment,
            "purchases" => SyncField::Purchases,
            "total_spent" => SyncField::TotalSpent,
            "last_purchase_at" => SyncField::LastPurchaseAt,
            "last_activity_at" => SyncField::LastActivityAt,
            "unsubscribed" => SyncField::Unsubscribed,
            p => match p.split_once('.') {
                Some(("scores", n)) if !n.is_empty() => SyncField::Named(n.to_owned()),
                Some(("attributes", k)) if !k.is_empty() => SyncField::Attribute(k.to_owned()),
                _ => return Err(format!("unknown field {p:?}; accepted: {}", SYNC_FIELD_NAMES.join(", "))),
            },
        };
        Ok(field)
    }

    /// The value Brevo receives: numbers for scores and counters, text for tags (comma
    /// separated) and segment, `YYYY-MM-DD` for dates (Brevo's date attributes), and
    /// `null` for what the contact lacks.
    pub fn value(&self, c: &Contact) -> Value {
        let date = |t: Option<chrono::DateTime<chrono::Utc>>| {
            t.map_or(Value::Null, |t| Value::String(t.format("%Y-%m-%d").to_string()))
        };
        match self {
            SyncField::Score => c.score.value().into(),
            SyncField::Named(n) => c.scores.get(n).map_or(Value::Null, |v| v.value.into()),
            SyncField::Tags => Value::String(c.tags.iter().map(String::as_str).collect::<Vec<_>>().join(", ")),
            SyncField::Segment => Value::String(c.segment.clone()),
            SyncField::Purchases => c.purchases.into(),
            SyncField::TotalSpent => c.total_spent.into(),
            SyncField::LastPurchaseAt => date(c.last_purchase_at),
            SyncField::LastActivityAt => date(c.last_activity_at),
            SyncField::Unsubscribed => c.unsubscribed.into(),
            SyncField::Attribute(k) => c.attributes.get(k).cloned().unwrap_or(Value::Null),
        }
    }

    /// The path as written in the mapping (`scores.engagement`).
    pub fn path(&self) -> String {
        match self {
            SyncField::Score => "score".into(),
            SyncField::Named(n) => format!("scores.{n}"),
            SyncField::Tags => "tags".into(),
            SyncField::Segment => "segment".into(),
            SyncField::Purchases => "purchases".into(),
            SyncField::TotalSpent => "total_spent".into(),
            SyncField::LastPurchaseAt => "last_purchase_at".into(),
            SyncField::LastActivityAt => "last_activity_at".into(),
            SyncField::Unsubscribed => "unsubscribed".into(),
            SyncField::Attribute(k) => format!("attributes.{k}"),
        }
    }

    /// The type of the Brevo attribute to create for it (`normal` category).
    pub fn brevo_type(&self) -> &'static str {
        match self {
            SyncField::Score | SyncField::Named(_) | SyncField::Purchases | SyncField::TotalSpent => "float",
            SyncField::LastPurchaseAt | SyncField::LastActivityAt => "date",
            SyncField::Unsubscribed => "boolean",
            SyncField::Tags | SyncField::Segment | SyncField::Attribute(_) => "text",
        }
    }
}

/// The mapping, Brevo attribute name → Relance field, in attribute order. Empty: no sync.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SyncFields {
    pub attributes: Vec<(String, SyncField)>,
    /// How long after a change the push waits, so that a burst of changes goes as one.
    pub delay: chrono::Duration,
}

impl SyncFields {
    pub fn is_empty(&self) -> bool {
        self.attributes.is_empty()
    }

    /// The mapped values of a contact, in mapping order (what the planner compares).
    pub fn values(&self, c: &Contact) -> Vec<Value> {
        self.attributes.iter().map(|(_, f)| f.value(c)).collect()
    }

    /// Brevo's `attributes` object for a contact.
    pub fn attributes(&self, c: &Contact) -> serde_json::Map<String, Value> {
        self.attributes.iter().map(|(name, f)| (name.clone(), f.value(c))).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fields_parse_and_read_the_contact() {
        let mut c = Contact::default();
        c.tags.insert("vip".into());
        c.tags.insert("engaged".into());
        let f = |p: &str| SyncField::parse(p).unwrap();
        assert_eq!(f("score").value(&c), 50);
        assert_eq!(f("tags").value(&c), "engaged, vip");
        assert_eq!(f("scores.engagement").value(&c), Value::Null);
        assert_eq!(f("last_purchase_at").value(&c), Value::Null);
        assert_eq!(f("scores.engagement").brevo_type(), "float");
        let err = SyncField::parse("colour").unwrap_err();
        assert!(err.contains("accepted: score, scores.<name>"), "{err}");
    }
}
