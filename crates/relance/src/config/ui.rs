//! `[ui]`: the dashboard's language, time zone and currency, declared and checked.

use std::str::FromStr;

use anyhow::bail;
use chrono_tz::Tz;
use serde::{Deserialize, Serialize};

use crate::ui::locale::Lang;

#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct UiConfig {
    /// `fr`, `en` or `auto` (the browser's `Accept-Language`, French for `fr*`).
    pub language: String,
    /// IANA zone the dashboard shows times in; default `[pressure] timezone`, else Europe/Paris.
    pub timezone: Option<String>,
    /// ISO 4217 code shown beside amounts.
    pub currency: String,
}

impl Default for UiConfig {
    fn default() -> Self {
        UiConfig { language: "auto".into(), timezone: None, currency: "EUR".into() }
    }
}

/// `[ui]` checked.
#[derive(Debug, Clone, PartialEq)]
pub struct UiSettings {
    /// `None`: chosen per request from the cookie, then `Accept-Language`.
    pub language: Option<Lang>,
    pub timezone: Tz,
    pub currency: String,
}

impl Default for UiSettings {
    fn default() -> Self {
        UiSettings { language: None, timezone: chrono_tz::Europe::Paris, currency: "EUR".into() }
    }
}

impl UiSettings {
    /// `pressure_timezone`: `[pressure] timezone`, the estate's zone when `[ui]` names none.
    pub fn from_config(c: &UiConfig, pressure_timezone: Option<&str>) -> anyhow::Result<UiSettings> {
        let language = match c.language.trim() {
            "auto" | "" => None,
            other => match Lang::parse(other) {
                Some(l) => Some(l),
                None => bail!("[ui] language = {other:?}: accepted: fr, en, auto"),
            },
        };
        let zone = c.timezone.as_deref().or(pressure_timezone).unwrap_or(relance_core::rules::DEFAULT_TIMEZONE);
        let Ok(timezone) = Tz::from_str(zone.trim()) else {
            bail!("[ui] timezone = {zone:?}: unknown time zone (an IANA name, e.g. Europe/Paris)");
        };
        let currency = c.currency.trim().to_ascii_uppercase();
        if currency.len() != 3 || !currency.bytes().all(|b| b.is_ascii_uppercase()) {
            bail!("[ui] currency = {:?}: expected an ISO 4217 code of three letters (EUR, CHF, USD)", c.currency);
        }
        Ok(UiSettings { language, timezone, currency })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_zone_falls_back_to_the_estates_then_paris() {
        let c = UiConfig::default();
        assert_eq!(UiSettings::from_config(&c, None).unwrap().timezone, chrono_tz::Europe::Paris);
        let s = UiSettings::from_config(&c, Some("America/Montreal")).unwrap();
        assert_eq!(s.timezone, chrono_tz::America::Montreal);
        let own = UiConfig { timezone: Some("Europe/Zurich".into()), ..UiConfig::default() };
        assert_eq!(
            UiSettings::from_config(&own, Some("America/Montreal")).unwrap().timezone,
            chrono_tz::Europe::Zurich
        );
    }

    #[test]
    fn bad_values_name_the_key_and_what_is_accepted() {
        let lang = UiConfig { language: "de".into(), ..UiConfig::default() };
        let e = UiSettings::from_config(&lang, None).unwrap_err().to_string();
        assert!(e.contains("[ui] language") && e.contains("fr, en, auto"), "{e}");
        let zone = UiConfig { timezone: Some("Paris".into()), ..UiConfig::default() };
        assert!(UiSettings::from_config(&zone, None).unwrap_err().to_string().contains("[ui] timezone"));
        let cur = UiConfig { currency: "euro".into(), ..UiConfig::default() };
        assert!(UiSettings::from_config(&cur, None).unwrap_err().to_string().contains("ISO 4217"));
        let ok = UiConfig { language: "FR".into(), currency: "chf".into(), ..UiConfig::default() };
        let s = UiSettings::from_config(&ok, None).unwrap();
        assert_eq!((s.language, s.currency.as_str()), (Some(Lang::Fr), "CHF"));
    }
}
