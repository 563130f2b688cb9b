//! What the API, the dashboard and a CSV import may change on a contact.

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use crate::contact::{ClientCode, Contact, Email};

/// A field an update may not hold, and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct InvalidField {
    pub field: &'static str,
    pub message: &'static str,
}

/// Fields the API may set on a contact; `None` leaves a field as it is.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ContactUpdate {
    pub email: Option<Email>,
    pub client_code: Option<ClientCode>,
    pub first_name: Option<String>,
    pub last_name: Option<String>,
    pub phone: Option<String>,
    pub segment: Option<String>,
    pub rfm_score: Option<f64>,
    pub purchases: Option<u32>,
    pub total_spent: Option<f64>,
    pub last_purchase_at: Option<DateTime<Utc>>,
    pub attributes: Option<serde_json::Map<String, Value>>,
}

impl ContactUpdate {
    /// Writes the given fields onto `c`; `true` when a formula input changed.
    pub fn apply_to(self, c: &mut Contact) -> bool {
        let formula_inputs_changed =
            self.rfm_score.is_some() || self.purchases.is_some() || self.last_purchase_at.is_some();
        if let Some(v) = self.email {
            c.email = Some(v);
        }
        if let Some(v) = self.client_code {
            c.client_code = Some(v);
        }
        if let Some(v) = self.first_name {
            c.first_name = Some(v);
        }
        if let Some(v) = self.last_name {
            c.last_name = Some(v);
        }
        if let Some(v) = self.phone {
            c.phone = Some(v);
        }
        if let Some(v) = self.segment {
            c.segment = v;
        }
        if let Some(v) = self.rfm_score {
            c.rfm_score = Some(v);
        }
        if let Some(v) = self.purchases {
            c.purchases = v;
        }
        if let Some(v) = self.total_spent {
            c.total_spent = v;
        }
        if let Some(v) = self.last_purchase_at {
            c.last_purchase_at = Some(v);
        }
        if let Some(v) = self.attributes {
            c.attributes.extend(v);
        }
        formula_inputs_changed
    }

    pub fn validate(&self) -> Result<(), InvalidField> {
        if let Some(r) = self.rfm_score
            && !(0.0..=4.0).contains(&r)
        {
            return Err(InvalidField { field: "rfm_score", message: "must be between 0 and 4" });
        }
        if let Some(s) = &self.segment
            && (s.trim().is_empty() || s.len() > 64)
        {
            return Err(InvalidField { field: "segment", message: "must be 1 to 64 characters" });
        }
        if let Some(t) = self.total_spent
            && !(t.is_finite() && t >= 0.0)
        {
            return Err(InvalidField { field: "total_spent", message: "must be a number ≥ 0" });
        }
        Ok(())
    }
}
