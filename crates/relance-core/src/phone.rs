//! Phone numbers to E.164 (`+33612345678`), as Brevo's SMS API wants them. A number
//! written with its country code (`+33 6 12 34 56 78`, `0033 6…`) needs nothing more; a
//! national one (`06 12 34 56 78`) needs the estate's default country, whose calling code
//! replaces the national trunk prefix. This is formatting, not a numbering-plan check:
//! a number is refused only when it cannot be an E.164 number.

/// Calling code and national trunk prefix of the countries an estate's customers most
/// often live in (ISO 3166 alpha-2).
const COUNTRIES: &[(&str, &str, &str)] = &[
    ("FR", "33", "0"),
    ("BE", "32", "0"),
    ("CH", "41", "0"),
    ("LU", "352", ""),
    ("MC", "377", ""),
    ("DE", "49", "0"),
    ("AT", "43", "0"),
    ("NL", "31", "0"),
    ("GB", "44", "0"),
    ("IE", "353", "0"),
    ("ES", "34", ""),
    ("PT", "351", ""),
    // Italy keeps its leading 0 in international form.
    ("IT", "39", ""),
    ("DK", "45", ""),
    ("SE", "46", "0"),
    ("NO", "47", ""),
    ("FI", "358", "0"),
    ("PL", "48", ""),
    ("US", "1", "1"),
    ("CA", "1", "1"),
];

/// The countries [`normalise`] knows, for error messages and settings checks.
pub fn known_countries() -> Vec<&'static str> {
    COUNTRIES.iter().map(|c| c.0).collect()
}

/// Whether `code` names a country [`normalise`] knows.
pub fn is_known_country(code: &str) -> bool {
    COUNTRIES.iter().any(|c| c.0.eq_ignore_ascii_case(code))
}

/// `raw` in E.164, or why not.
pub fn normalise(raw: &str, default_country: Option<&str>) -> Result<String, String> {
    // "+33 (0)6 …": the bracketed trunk prefix is for national callers; drop it.
    let cleaned = raw.replace("(0)", "");
    let trimmed = cleaned.trim();
    if trimmed.chars().any(|c| !(c.is_ascii_digit() || " .-/()+\u{a0}".contains(c))) {
        return Err(format!("phone {:?} holds characters other than digits, spaces, + . - / ( )", raw.trim()));
    }
    let digits: String = trimmed.chars().filter(char::is_ascii_digit).collect();
    let international = if let Some(rest) = trimmed.strip_prefix('+') {
        if rest.contains('+') {
            return Err(format!("phone {trimmed:?}: a + only at the start"));
        }
        digits
    } else if let Some(rest) = digits.strip_prefix("00") {
        rest.to_owned()
    } else {
        let Some(country) = default_country else {
            return Err(format!(
                "phone {trimmed:?} has no country code: write it as +33…, or set [import] default_country"
            ));
        };
        let Some((_, calling, trunk)) = COUNTRIES.iter().find(|c| c.0.eq_ignore_ascii_case(country)) else {
            return Err(format!("unknown default_country {country:?}; known: {}", known_countries().join(", ")));
        };
        let national = digits.strip_prefix(trunk).filter(|_| !trunk.is_empty()).unwrap_or(&digits);
        format!("{calling}{national}")
    };
    // E.164: at most 15 digits; Brevo wants at least 6.
    if !(8..=15).contains(&international.len()) {
        return Err(format!(
            "phone {trimmed:?} is {} digits with its country code; expected 8 to 15",
            international.len()
        ));
    }
    Ok(format!("+{international}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_become_e164() {
        assert_eq!(normalise("06 12 34 56 78", Some("FR")).unwrap(), "+33612345678");
        assert_eq!(normalise("06.12.34.56.78", Some("fr")).unwrap(), "+33612345678");
        assert_eq!(normalise("+33 6 12 34 56 78", None).unwrap(), "+33612345678");
        assert_eq!(normalise("0033 6 12 34 56 78", None).unwrap(), "+33612345678");
        assert_eq!(normalise("+33 (0)6 12 34 56 78", None).unwrap(), "+33612345678");
        assert_eq!(normalise("0471 12 34 56", Some("BE")).unwrap(), "+32471123456");
        assert_eq!(normalise("06 1234 5678", Some("IT")).unwrap(), "+390612345678");
    }

    #[test]
    fn impossible_numbers_are_refused_with_a_reason() {
        assert!(normalise("06 12 34 56 78", None).unwrap_err().contains("default_country"));
        assert!(normalise("06 12", Some("FR")).unwrap_err().contains("8 to 15"));
        assert!(normalise("tel: 06", Some("FR")).unwrap_err().contains("characters"));
        assert!(normalise("06 12 34 56 78", Some("XX")).unwrap_err().contains("unknown default_country"));
        assert!(normalise("+33 6 12 34 56 78 90 12 34", None).unwrap_err().contains("8 to 15"));
    }
}
