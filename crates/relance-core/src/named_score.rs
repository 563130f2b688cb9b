//! Named scores a rule set declares besides the seed's lead score (`[[score]]`), and
//! their decay.
//!
//! **Decay is a function, not a process.** A contact keeps, per score, the value its last
//! real change left (`base`) and when (`since`); its value at any `now` is
//! `decayed(base, since, now)`, so ingest, dispatch, the backtest and explain agree to
//! the point whatever the order they look in. Materialising (writing the decayed value
//! with a `decay` history row when the contact is next touched, or by the daily sweep)
//! only records what the function says; it never moves `base` or `since`, so rounding
//! cannot accumulate.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The name the seed's lead score goes by where a score is named (`score = "lead"`).
pub const LEAD: &str = "lead";

/// How a score loses value with time since its last change, toward its initial value.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Decay {
    /// The distance to the initial value halves every this many days.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub half_life_days: Option<f64>,
    /// Or: this many points a day, never past the initial value.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub points_per_day: Option<f64>,
}

/// A `[[score]]` table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct ScoreSpec {
    /// A lower-case identifier: `engagement`, `wine_interest`.
    pub name: String,
    /// A contact's value before anything changed it.
    #[serde(default)]
    pub initial: i64,
    /// `[lowest, highest]`; every change clamps into it.
    #[serde(default = "default_range")]
    pub range: [i64; 2],
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decay: Option<Decay>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
}

fn default_range() -> [i64; 2] {
    [0, 100]
}

/// One score of one contact.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoreValue {
    /// The value as last materialised (what lists, exports and Brevo see).
    pub value: i64,
    /// The value the last real change left; decay counts from it.
    pub base: i64,
    /// When that change happened.
    pub since: DateTime<Utc>,
}

/// A contact's named scores, by name.
pub type Scores = BTreeMap<String, ScoreValue>;

impl ScoreSpec {
    pub fn clamp(&self, value: i64) -> i64 {
        value.clamp(self.range[0], self.range[1])
    }

    /// The value at `now` of a score left at `base` at `since`: exact, deterministic,
    /// rounded to the nearest point, and never past the initial value.
    pub fn decayed(&self, base: i64, since: DateTime<Utc>, now: DateTime<Utc>) -> i64 {
        let Some(decay) = self.decay else { return base };
        let elapsed_ms = (now - since).num_milliseconds();
        if elapsed_ms <= 0 || base == self.initial {
            return base;
        }
        let days = elapsed_ms as f64 / 86_400_000.0;
        let distance = (base - self.initial) as f64;
        let left = if let Some(h) = decay.half_life_days {
            distance * 0.5f64.powf(days / h)
        } else if let Some(p) = decay.points_per_day {
            distance.signum() * (distance.abs() - p * days).max(0.0)
        } else {
            distance
        };
        // To the nearest point: a second after a change the score reads what the change
        // left, and whole half-lives give exact halves (80 → 40 → 20).
        self.clamp(self.initial + left.round() as i64)
    }

    /// The contact's value at `now` (its initial value when it has none yet).
    pub fn value_at(&self, scores: &Scores, now: DateTime<Utc>) -> i64 {
        scores.get(&self.name).map_or(self.initial, |v| self.decayed(v.base, v.since, now))
    }

    /// What is wrong with this declaration, as `(field, message)` pairs.
    pub fn problems(&self) -> Vec<(&'static str, String)> {
        let mut out = Vec::new();
        let n = &self.name;
        let identifier = n.len() <= 32
            && n.starts_with(|c: char| c.is_ascii_lowercase())
            && n.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !identifier {
            out.push(("name", format!("{n:?} is not a lower-case identifier (a-z, 0-9, _; 32 at most)")));
        } else if n == LEAD || n == "score" {
            out.push(("name", format!("{n:?} is the seed's lead score; name the new score otherwise")));
        }
        let [lo, hi] = self.range;
        if lo >= hi {
            out.push(("range", format!("[{lo}, {hi}]: the lowest value must be below the highest")));
        } else if !(lo..=hi).contains(&self.initial) {
            out.push(("initial", format!("{} is outside the range [{lo}, {hi}]", self.initial)));
        }
        if let Some(d) = self.decay {
            let positive = |v: Option<f64>| v.is_some_and(|v| v.is_finite() && v > 0.0);
            match (d.half_life_days, d.points_per_day) {
                (Some(_), Some(_)) => out.push(("decay", "give half_life_days or points_per_day, not both".into())),
                (None, None) => out.push(("decay", "expected half_life_days or points_per_day".into())),
                (h, None) if !positive(h) => out.push(("decay.half_life_days", "expected a number of days > 0".into())),
                (None, p) if !positive(p) => out.push(("decay.points_per_day", "expected a number > 0".into())),
                _ => {}
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::{Duration, TimeZone};

    fn engagement(decay: Decay) -> ScoreSpec {
        ScoreSpec {
            name: "engagement".into(),
            initial: 0,
            range: [0, 100],
            decay: Some(decay),
            description: String::new(),
        }
    }

    #[test]
    fn half_life_is_exact_over_whole_half_lives() {
        let s = engagement(Decay { half_life_days: Some(30.0), points_per_day: None });
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 9, 0, 0).unwrap();
        assert_eq!(s.decayed(80, t0, t0), 80);
        assert_eq!(s.decayed(80, t0, t0 + Duration::days(30)), 40);
        assert_eq!(s.decayed(80, t0, t0 + Duration::days(60)), 20);
        assert_eq!(s.decayed(80, t0, t0 + Duration::days(15)), 57, "80 / √2 = 56.57, rounded");
        assert_eq!(s.decayed(80, t0, t0 + Duration::seconds(90)), 80, "a minute later it reads the same");
        assert_eq!(s.decayed(80, t0, t0 - Duration::days(1)), 80, "the past does not decay");
        assert_eq!(s.decayed(1, t0, t0 + Duration::days(3650)), 0, "never below the initial value");
    }

    #[test]
    fn decay_moves_toward_the_initial_value_from_either_side() {
        let mut s = engagement(Decay { half_life_days: None, points_per_day: Some(2.0) });
        s.initial = 50;
        let t0 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 0, 0).unwrap();
        assert_eq!(s.decayed(70, t0, t0 + Duration::days(5)), 60);
        assert_eq!(s.decayed(70, t0, t0 + Duration::days(50)), 50);
        assert_eq!(s.decayed(30, t0, t0 + Duration::days(5)), 40);
        assert_eq!(s.decayed(70, t0, t0 + Duration::hours(12)), 69);
        assert_eq!(s.decayed(70, t0, t0 + Duration::hours(11)), 69, "69.08");
    }

    #[test]
    fn declarations_are_checked() {
        let mut s = engagement(Decay { half_life_days: Some(0.0), points_per_day: None });
        s.name = "Engagement".into();
        s.initial = 200;
        let fields: Vec<&str> = s.problems().iter().map(|p| p.0).collect();
        assert_eq!(fields, ["name", "initial", "decay.half_life_days"]);
        s.name = "lead".into();
        assert_eq!(s.problems()[0].0, "name");
    }
}
