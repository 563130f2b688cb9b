//! Who is looking, in which language and time zone: chosen once per request (the
//! `relance_lang` cookie, then `[ui] language`, then `Accept-Language`), then used by
//! every page to write times, amounts and words. Exports and the API stay ISO-8601 UTC
//! and English: they are read by programs.

use axum::http::HeaderMap;
use chrono::{DateTime, Datelike, Timelike, Utc};
use chrono_tz::Tz;

use super::text::T;
use crate::config::ui::UiSettings;

/// The cookie that remembers the language picked in the header.
pub const LANG_COOKIE: &str = "relance_lang";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Lang {
    Fr,
    En,
}

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::Fr, Lang::En];

    pub fn parse(s: &str) -> Option<Lang> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fr" => Some(Lang::Fr),
            "en" => Some(Lang::En),
            _ => None,
        }
    }

    pub fn code(self) -> &'static str {
        match self {
            Lang::Fr => "fr",
            Lang::En => "en",
        }
    }

    /// The language's own name, for the switcher.
    pub fn own_name(self) -> &'static str {
        match self {
            Lang::Fr => "Français",
            Lang::En => "English",
        }
    }

    /// The first of the browser's languages we have, by its `q` order; English when none
    /// (a `fr-CA` or `fr` reader gets French).
    pub fn from_accept_language(header: &str) -> Lang {
        let mut ranked: Vec<(f32, usize, Lang)> = header
            .split(',')
            .enumerate()
            .filter_map(|(i, part)| {
                let mut bits = part.split(';');
                let tag = bits.next()?.trim().to_ascii_lowercase();
                let q =
                    bits.find_map(|b| b.trim().strip_prefix("q=").and_then(|q| q.parse::<f32>().ok())).unwrap_or(1.0);
                let lang = match tag.split('-').next()? {
                    "fr" => Lang::Fr,
                    "en" => Lang::En,
                    _ => return None,
                };
                (q > 0.0).then_some((q, i, lang))
            })
            .collect();
        ranked.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        ranked.first().map_or(Lang::En, |r| r.2)
    }
}

/// The language, zone and currency of one page, and the instant it is rendered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Locale {
    pub lang: Lang,
    pub tz: Tz,
    pub currency: String,
    pub now: DateTime<Utc>,
}

impl Default for Locale {
    fn default() -> Self {
        Locale { lang: Lang::En, tz: chrono_tz::Europe::Paris, currency: "EUR".into(), now: DateTime::UNIX_EPOCH }
    }
}

fn cookie_lang(headers: &HeaderMap) -> Option<Lang> {
    crate::web::session::cookies_named(headers, LANG_COOKIE).find_map(Lang::parse)
}

impl Locale {
    /// The reader's choice in the header wins, then the operator's setting, then the browser.
    pub fn negotiate(headers: &HeaderMap, ui: &UiSettings, now: DateTime<Utc>) -> Locale {
        let lang = cookie_lang(headers).or(ui.language).unwrap_or_else(|| {
            let accept = headers.get(axum::http::header::ACCEPT_LANGUAGE).and_then(|v| v.to_str().ok());
            accept.map_or(Lang::En, Lang::from_accept_language)
        });
        Locale { lang, tz: ui.timezone, currency: ui.currency.clone(), now }
    }

    /// A word or sentence of the catalogue.
    pub fn t(&self, key: T) -> &'static str {
        key.text(self.lang)
    }

    /// A catalogue sentence with its `{}` filled in order.
    pub fn f(&self, key: T, args: &[&dyn std::fmt::Display]) -> String {
        super::text::fill(key.text(self.lang), args)
    }

    /// `26 nov. 2026, 10:58` / `26 Nov 2026, 10:58`, in the estate's zone.
    pub fn datetime(&self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&self.tz);
        format!("{}, {:02}:{:02}", self.date_of(local), local.hour(), local.minute())
    }

    /// The same with seconds, where events close together must stay apart.
    pub fn datetime_seconds(&self, at: DateTime<Utc>) -> String {
        let local = at.with_timezone(&self.tz);
        format!("{}, {:02}:{:02}:{:02}", self.date_of(local), local.hour(), local.minute(), local.second())
    }

    /// `26 nov. 2026`.
    pub fn date(&self, at: DateTime<Utc>) -> String {
        self.date_of(at.with_timezone(&self.tz))
    }

    fn date_of(&self, local: DateTime<Tz>) -> String {
        let month = self.month(local.month0() as usize);
        format!("{} {} {}", local.day(), month, local.year())
    }

    fn month(&self, month0: usize) -> &'static str {
        const FR: [&str; 12] =
            ["janv.", "févr.", "mars", "avr.", "mai", "juin", "juil.", "août", "sept.", "oct.", "nov.", "déc."];
        const EN: [&str; 12] = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
        match self.lang {
            Lang::Fr => FR[month0 % 12],
            Lang::En => EN[month0 % 12],
        }
    }

    /// `il y a 5 min` for the last day, else the date and time; `None` for the future.
    pub fn relative(&self, at: DateTime<Utc>) -> Option<String> {
        let ago = self.now.signed_duration_since(at);
        if ago < chrono::Duration::zero() || ago >= chrono::Duration::hours(24) {
            return None;
        }
        Some(if ago < chrono::Duration::minutes(1) {
            self.t(T::JustNow).to_owned()
        } else if ago < chrono::Duration::hours(1) {
            self.f(T::MinutesAgo, &[&ago.num_minutes()])
        } else {
            self.f(T::HoursAgo, &[&ago.num_hours()])
        })
    }

    /// `80,00 €` / `€80.00` (the code itself for other currencies).
    pub fn amount(&self, value: f64) -> String {
        let symbol = match self.currency.as_str() {
            "EUR" => "€",
            "USD" => "$",
            "GBP" => "£",
            other => other,
        };
        let fixed = format!("{value:.2}");
        match self.lang {
            Lang::Fr => format!("{}\u{a0}{symbol}", fixed.replace('.', ",")),
            Lang::En if matches!(symbol, "€" | "$" | "£") => format!("{symbol}{fixed}"),
            Lang::En => format!("{fixed} {symbol}"),
        }
    }

    /// A count with the locale's thousands separator (`12 345` / `12,345`).
    pub fn count(&self, n: i64) -> String {
        let digits = n.unsigned_abs().to_string();
        let sep = match self.lang {
            Lang::Fr => '\u{202f}',
            Lang::En => ',',
        };
        let mut out = String::new();
        for (i, c) in digits.chars().enumerate() {
            if i > 0 && (digits.len() - i).is_multiple_of(3) {
                out.push(sep);
            }
            out.push(c);
        }
        if n < 0 { format!("-{out}") } else { out }
    }

    /// The zone's name as written once per page (`Europe/Paris`).
    pub fn zone_name(&self) -> &'static str {
        self.tz.name()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(h: u32, m: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, h, m, 39).unwrap()
    }

    fn locale(lang: Lang) -> Locale {
        Locale { lang, now: at(10, 3), ..Locale::default() }
    }

    #[test]
    fn times_are_written_in_the_estates_zone_and_the_readers_language() {
        assert_eq!(locale(Lang::Fr).datetime(at(9, 58)), "26 nov. 2026, 10:58");
        assert_eq!(locale(Lang::En).datetime(at(9, 58)), "26 Nov 2026, 10:58");
        assert_eq!(locale(Lang::Fr).datetime_seconds(at(9, 58)), "26 nov. 2026, 10:58:39");
        // Summer time: two hours ahead of UTC.
        let july = Utc.with_ymd_and_hms(2026, 7, 1, 22, 30, 0).unwrap();
        assert_eq!(locale(Lang::Fr).datetime(july), "2 juil. 2026, 00:30");
    }

    #[test]
    fn recent_times_are_relative() {
        let fr = locale(Lang::Fr);
        assert_eq!(fr.relative(at(9, 58)).as_deref(), Some("il y a 5 min"));
        assert_eq!(fr.relative(at(10, 3)).as_deref(), Some("à l’instant"));
        assert_eq!(locale(Lang::En).relative(at(7, 0)).as_deref(), Some("3 h ago"));
        assert_eq!(fr.relative(at(11, 0)), None, "the future is written in full");
    }

    #[test]
    fn amounts_and_counts_follow_the_language() {
        assert_eq!(locale(Lang::Fr).amount(80.0), "80,00\u{a0}€");
        assert_eq!(locale(Lang::En).amount(80.0), "€80.00");
        let chf = Locale { currency: "CHF".into(), ..locale(Lang::En) };
        assert_eq!(chf.amount(12.5), "12.50 CHF");
        assert_eq!(locale(Lang::En).count(1_234_567), "1,234,567");
        assert_eq!(locale(Lang::Fr).count(999), "999");
    }

    #[test]
    fn the_language_comes_from_the_cookie_the_setting_then_the_browser() {
        let ui = UiSettings::default();
        let mut h = HeaderMap::new();
        assert_eq!(Locale::negotiate(&h, &ui, at(0, 0)).lang, Lang::En);
        h.insert("accept-language", "de-DE,fr-CA;q=0.8,en;q=0.5".parse().unwrap());
        assert_eq!(Locale::negotiate(&h, &ui, at(0, 0)).lang, Lang::Fr);
        let english = UiSettings { language: Some(Lang::En), ..UiSettings::default() };
        assert_eq!(Locale::negotiate(&h, &english, at(0, 0)).lang, Lang::En);
        h.insert("cookie", "relance_session=x; relance_lang=fr".parse().unwrap());
        assert_eq!(Locale::negotiate(&h, &english, at(0, 0)).lang, Lang::Fr);
        assert_eq!(Lang::from_accept_language("en-GB, fr;q=0.9"), Lang::En);
        assert_eq!(Lang::from_accept_language("fr;q=0, en;q=0.1"), Lang::En);
    }
}
