//! Operations shared by the API, the dashboard and the CLI: why a contact is where it is,
//! what is held about a contact (GDPR access), a backtest against stored history, and
//! putting a rule-set version back in force. Each reads and writes through the store and
//! answers in domain types; the HTTP and terminal surfaces only present them.

pub mod access;
pub mod backtest;
pub mod backup;
pub mod check;
pub mod contacts_csv;
pub mod explain;
pub mod explain_scores;
pub mod export;
pub mod retention;
pub mod rules;

use chrono::{DateTime, Utc};

use crate::store::StoreError;

/// `since` as RFC 3339 (`2026-01-31T08:00:00Z`) or a date (`2026-01-31`, midnight UTC).
pub fn parse_since(raw: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(raw)
        .map(|d| d.with_timezone(&Utc))
        .or_else(|_| {
            chrono::NaiveDate::parse_from_str(raw, "%Y-%m-%d").map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
        })
        .map_err(|_| StoreError::invalid("since", "expected RFC 3339 (2026-01-31T08:00:00Z) or a date (2026-01-31)"))
}

#[cfg(test)]
mod tests {
    #[test]
    fn since_takes_a_timestamp_or_a_date() {
        assert_eq!(super::parse_since("2026-01-31").unwrap().to_rfc3339(), "2026-01-31T00:00:00+00:00");
        assert!(super::parse_since("2026-01-31T08:00:00Z").is_ok());
        assert!(super::parse_since("yesterday").unwrap_err().to_string().starts_with("since:"));
    }
}
