//! The seed's `ScoreCalculator`, exactly:
//! `50 + trunc(rfm × 10) + min(2 × engagement, 20) + min(5 × purchases, 25) − recency`,
//! recency being 30 past 180 days, 15 past 90, 5 past 30, else 0; clamped to 0..=100.

use crate::contact::Score;

/// Validated inputs of the formula.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScoreInputs {
    /// RFM score, 0..=4.
    pub rfm: f64,
    pub engagement_events: u32,
    pub purchases: u32,
    /// `None` when the contact never purchased: no recency penalty.
    pub days_since_purchase: Option<u32>,
}

#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ScoreInputError {
    #[error("rfm must be a number between 0 and 4 (got {0})")]
    Rfm(f64),
    #[error("{field} must be a whole number ≥ 0 (got {value})")]
    Negative { field: &'static str, value: i64 },
}

impl ScoreInputs {
    /// Builds inputs from untrusted values (CLI, API), naming the first bad one.
    pub fn parse(
        rfm: f64,
        engagement_events: i64,
        purchases: i64,
        days_since_purchase: Option<i64>,
    ) -> Result<ScoreInputs, ScoreInputError> {
        if !(0.0..=4.0).contains(&rfm) {
            return Err(ScoreInputError::Rfm(rfm));
        }
        let count = |field: &'static str, value: i64| {
            u32::try_from(value).map_err(|_| ScoreInputError::Negative { field, value })
        };
        Ok(ScoreInputs {
            rfm,
            engagement_events: count("engagement", engagement_events)?,
            purchases: count("purchases", purchases)?,
            days_since_purchase: days_since_purchase.map(|d| count("days_since_purchase", d)).transpose()?,
        })
    }

    pub fn breakdown(&self) -> ScoreBreakdown {
        let base = 50;
        // The seed truncates (`int(rfm * 10)`); the epsilon keeps 0.3 × 10 from
        // truncating to 2 through binary rounding.
        let rfm = ((self.rfm.clamp(0.0, 4.0) * 10.0) + 1e-9).trunc() as i64;
        let engagement = (2 * i64::from(self.engagement_events)).min(20);
        let purchases = (5 * i64::from(self.purchases)).min(25);
        let recency_penalty = match self.days_since_purchase {
            Some(d) if d > 180 => 30,
            Some(d) if d > 90 => 15,
            Some(d) if d > 30 => 5,
            _ => 0,
        };
        let raw = base + rfm + engagement + purchases - recency_penalty;
        ScoreBreakdown { base, rfm, engagement, purchases, recency_penalty, raw, score: Score::clamped(raw) }
    }

    pub fn score(&self) -> Score {
        self.breakdown().score
    }
}

/// Each term of the formula, so that a score can be explained.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ScoreBreakdown {
    pub base: i64,
    pub rfm: i64,
    pub engagement: i64,
    pub purchases: i64,
    pub recency_penalty: i64,
    /// Before clamping.
    pub raw: i64,
    pub score: Score,
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn score(rfm: f64, eng: u32, purchases: u32, days: Option<u32>) -> u8 {
        ScoreInputs { rfm, engagement_events: eng, purchases, days_since_purchase: days }.score().value()
    }

    #[test]
    fn seed_examples() {
        // relance score --rfm 3.5 --engagement 5 --purchases 3 --days-since-purchase 10
        assert_eq!(score(3.5, 5, 3, Some(10)), 100);
        // The guide's worked example: 50 + 35 + 10 + 10 - 0 = 105, capped at 100.
        let b = ScoreInputs { rfm: 3.5, engagement_events: 5, purchases: 2, days_since_purchase: Some(10) }.breakdown();
        assert_eq!((b.base, b.rfm, b.engagement, b.purchases, b.recency_penalty), (50, 35, 10, 10, 0));
        assert_eq!(b.raw, 105);
        assert_eq!(b.score.value(), 100);
    }

    #[test]
    fn caps_and_penalties() {
        assert_eq!(score(0.0, 0, 0, None), 50);
        assert_eq!(score(4.0, 0, 0, None), 90);
        assert_eq!(score(0.0, 10, 0, None), 70);
        assert_eq!(score(0.0, 100, 0, None), 70, "engagement caps at +20");
        assert_eq!(score(0.0, 0, 9, None), 75, "purchases cap at +25");
        assert_eq!(score(0.0, 0, 1, Some(30)), 55, "30 days is not past 30");
        assert_eq!(score(0.0, 0, 1, Some(31)), 50);
        assert_eq!(score(0.0, 0, 1, Some(91)), 40);
        assert_eq!(score(0.0, 0, 1, Some(181)), 25);
        assert_eq!(score(0.3, 0, 0, None), 53, "0.3 × 10 truncates to 3, not 2");
    }

    #[test]
    fn bad_inputs_are_named() {
        assert_eq!(ScoreInputs::parse(5.0, 0, 0, None), Err(ScoreInputError::Rfm(5.0)));
        assert!(matches!(
            ScoreInputs::parse(1.0, 0, -1, None),
            Err(ScoreInputError::Negative { field: "purchases", .. })
        ));
        assert!(ScoreInputs::parse(f64::NAN, 0, 0, None).is_err());
    }

    proptest! {
        #[test]
        fn always_in_range(rfm in 0.0f64..=4.0, eng in any::<u32>(), p in any::<u32>(), d in proptest::option::of(any::<u32>())) {
            let s = score(rfm, eng, p, d);
            prop_assert!(s <= 100);
        }
    }
}
