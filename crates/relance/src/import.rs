//! CRM contact import from CSV: columns `client_code, email, first_name, last_name, phone,
//! segment, rfm_score, purchases, total_spent, last_purchase_date` (any order, any
//! subset, at least one of `client_code` and `email` per row).
//!
//! Files come from spreadsheets: UTF-8 (with or without a BOM) or, from a French Excel,
//! Windows-1252; the separator (`,`, `;` or tab) is read from the header line. Both are
//! reported. Phone numbers become E.164 (`[import] default_country` for national ones).

use chrono::{DateTime, NaiveDate, Utc};
use relance_core::{ClientCode, Email};
use serde::Serialize;

use crate::store::{ContactKey, ContactUpdate, ImportOutcome, ImportRow, Store, StoreError};

pub const COLUMNS: &[&str] = &[
    "client_code",
    "email",
    "first_name",
    "last_name",
    "phone",
    "segment",
    "rfm_score",
    "purchases",
    "total_spent",
    "last_purchase_date",
];

#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct Rejected {
    pub line: usize,
    pub reason: String,
}

#[derive(Debug, Clone, Default, Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    /// Whether anything was written.
    pub imported: bool,
    /// The separator found in the header line: `,`, `;` or `\t`.
    pub separator: String,
    /// `utf-8` or `windows-1252` (a file that is not UTF-8 is read as Excel writes it).
    pub encoding: String,
    pub created: usize,
    pub updated: usize,
    pub rejected: Vec<Rejected>,
}

/// How to read a file.
#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// ISO country of national phone numbers (`FR`: `06 12 34 56 78` → `+33612345678`).
    pub default_country: Option<String>,
}

/// The file as text, and the encoding it was in.
fn decode(data: &[u8]) -> (std::borrow::Cow<'_, str>, &'static str) {
    let data = data.strip_prefix(b"\xef\xbb\xbf").unwrap_or(data);
    match std::str::from_utf8(data) {
        Ok(text) => (text.into(), "utf-8"),
        Err(_) => (encoding_rs::WINDOWS_1252.decode_without_bom_handling(data).0, "windows-1252"),
    }
}

/// The separator of the header line: the most frequent of `,` `;` tab outside quotes.
fn separator(text: &str) -> u8 {
    let header = text.lines().next().unwrap_or("");
    let mut quoted = false;
    let mut counts = [(b',', 0usize), (b';', 0), (b'\t', 0)];
    for b in header.bytes() {
        match b {
            b'"' => quoted = !quoted,
            _ if quoted => {}
            _ => counts.iter_mut().filter(|(c, _)| *c == b).for_each(|(_, n)| *n += 1),
        }
    }
    counts.iter().max_by_key(|(_, n)| *n).filter(|(_, n)| *n > 0).map_or(b',', |(c, _)| *c)
}

/// Parses and validates every row; a bad header rejects the file (line 1). Also answers
/// the separator and encoding it read.
pub fn parse_with(data: &[u8], options: &ImportOptions) -> (Vec<ImportRow>, Vec<Rejected>, u8, &'static str) {
    let (text, encoding) = decode(data);
    let sep = separator(&text);
    let (rows, rejected) = parse_text(&text, sep, options);
    (rows, rejected, sep, encoding)
}

/// [`parse_with`] with the defaults (tests, fuzzing).
pub fn parse(data: &[u8]) -> (Vec<ImportRow>, Vec<Rejected>) {
    let (rows, rejected, _, _) = parse_with(data, &ImportOptions::default());
    (rows, rejected)
}

fn parse_text(text: &str, sep: u8, options: &ImportOptions) -> (Vec<ImportRow>, Vec<Rejected>) {
    let mut reader =
        csv::ReaderBuilder::new().delimiter(sep).trim(csv::Trim::All).flexible(false).from_reader(text.as_bytes());
    let headers = match reader.headers() {
        Ok(h) => h.iter().map(|h| h.trim_start_matches('\u{feff}').to_ascii_lowercase()).collect::<Vec<_>>(),
        Err(e) => return (Vec::new(), vec![Rejected { line: 1, reason: format!("unreadable header: {e}") }]),
    };
    if let Some(bad) = headers.iter().find(|h| !COLUMNS.contains(&h.as_str())) {
        return (
            Vec::new(),
            vec![Rejected { line: 1, reason: format!("unknown column {bad:?}; accepted: {}", COLUMNS.join(", ")) }],
        );
    }
    if !headers.iter().any(|h| h == "client_code" || h == "email") {
        return (Vec::new(), vec![Rejected { line: 1, reason: "a client_code or an email column is needed".into() }]);
    }
    let mut rows = Vec::new();
    let mut rejected = Vec::new();
    let mut last_line = 1;
    for record in reader.records() {
        // The physical line where the record starts (quoted fields may span lines); kept
        // increasing so that every outcome names its own line even in malformed files.
        let position = match &record {
            Ok(r) => r.position(),
            Err(e) => e.position(),
        };
        let line = position.map_or(last_line + 1, |p| p.line() as usize).max(last_line + 1);
        last_line = line;
        let record = match record {
            Ok(r) => r,
            Err(e) => {
                rejected.push(Rejected { line, reason: format!("unreadable row: {e}") });
                continue;
            }
        };
        let fields: std::collections::HashMap<&str, &str> = headers
            .iter()
            .map(String::as_str)
            .zip(record.iter().map(str::trim))
            .filter(|(_, v)| !v.is_empty())
            .collect();
        match row(line, &fields, options) {
            Ok(r) => rows.push(r),
            Err(reason) => rejected.push(Rejected { line, reason }),
        }
    }
    (rows, rejected)
}

fn row(
    line: usize,
    fields: &std::collections::HashMap<&str, &str>,
    options: &ImportOptions,
) -> Result<ImportRow, String> {
    let get = |name: &str| fields.get(name).copied();
    let email = get("email").map(|e| Email::parse(e).map_err(|err| format!("email {e:?} {err}"))).transpose()?;
    let client_code = get("client_code")
        .map(|c| ClientCode::parse(c).map_err(|err| format!("client_code {c:?} {err}")))
        .transpose()?;
    let number = |name: &str| {
        get(name)
            .map(|v| v.replace(',', ".").parse::<f64>().map_err(|_| format!("{name} {v:?} is not a number")))
            .transpose()
    };
    let count = |name: &str| {
        get(name).map(|v| v.parse::<u32>().map_err(|_| format!("{name} {v:?} is not a whole number ≥ 0"))).transpose()
    };
    let last_purchase_at = get("last_purchase_date")
        .map(|v| {
            NaiveDate::parse_from_str(v, "%Y-%m-%d")
                .map(|d| d.and_time(chrono::NaiveTime::MIN).and_utc())
                .or_else(|_| DateTime::parse_from_rfc3339(v).map(|d| d.with_timezone(&Utc)))
                .map_err(|_| format!("last_purchase_date {v:?}: expected YYYY-MM-DD"))
        })
        .transpose()?;
    let key = match (&client_code, &email) {
        (Some(c), _) => ContactKey::ClientCode(c.clone()),
        (None, Some(e)) => ContactKey::Email(e.clone()),
        (None, None) => return Err("needs a client_code or an email".into()),
    };
    let update = ContactUpdate {
        email,
        client_code,
        first_name: get("first_name").map(str::to_owned),
        last_name: get("last_name").map(str::to_owned),
        phone: get("phone")
            .map(|p| relance_core::phone::normalise(p, options.default_country.as_deref()))
            .transpose()?,
        segment: get("segment").map(str::to_owned),
        rfm_score: number("rfm_score")?,
        purchases: count("purchases")?,
        total_spent: number("total_spent")?,
        last_purchase_at,
        attributes: None,
    };
    update.validate().map_err(|e| e.to_string())?;
    Ok(ImportRow { line, key, update })
}

/// Validates, then imports: nothing is written when a row is bad, unless `skip_invalid`.
pub async fn import<S: Store + ?Sized>(
    store: &S,
    data: &[u8],
    skip_invalid: bool,
    options: &ImportOptions,
    audit: crate::store::audit::Audit,
) -> Result<ImportReport, StoreError> {
    let (rows, mut rejected, sep, encoding) = parse_with(data, options);
    let separator = if sep == b'\t' { "\\t".to_owned() } else { (sep as char).to_string() };
    let refused = |rejected| ImportReport {
        imported: false,
        separator: separator.clone(),
        encoding: encoding.to_owned(),
        created: 0,
        updated: 0,
        rejected,
    };
    // A refused import changed nothing; its entry says how many rows were at fault.
    let record_refusal = |rejected: usize| {
        let entry = audit.clone().refused(format!("{rejected} row(s) rejected, nothing imported"));
        async move {
            if let Err(e) = store.record_audit(entry).await {
                tracing::warn!(error = %e, "recording a refused import in the audit log");
            }
        }
    };
    if !rejected.is_empty() && !skip_invalid || rejected.iter().any(|r| r.line == 1) {
        record_refusal(rejected.len()).await;
        return Ok(refused(rejected));
    }
    let outcomes: Vec<ImportOutcome> = match store.import_contacts(rows, skip_invalid, audit.clone()).await {
        Ok(o) => o,
        Err(StoreError::Conflict(reason)) => {
            let line = reason
                .strip_prefix("line ")
                .and_then(|r| r.split(':').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or(0);
            rejected.push(Rejected { line, reason });
            record_refusal(rejected.len()).await;
            return Ok(refused(rejected));
        }
        Err(e) => return Err(e),
    };
    let mut report = ImportReport { imported: true, ..refused(Vec::new()) };
    for o in outcomes {
        match (o.rejected, o.created) {
            (Some(reason), _) => rejected.push(Rejected { line: o.line, reason }),
            (None, true) => report.created += 1,
            (None, false) => report.updated += 1,
        }
    }
    rejected.sort_by_key(|r| r.line);
    report.rejected = rejected;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_outcome_names_its_own_line_even_in_malformed_files() {
        // Found by the csv fuzz target: lone CRs and ragged rows once gave two outcomes
        // the same line number.
        let csv = b"client_code,email\r\0\0,x,y\nCL1,marie@\nCL2,b@c.fr,extra\nCL3,c@d.fr\n";
        let (rows, rejected) = parse(csv);
        let mut lines: Vec<usize> = rows.iter().map(|r| r.line).chain(rejected.iter().map(|r| r.line)).collect();
        let n = lines.len();
        lines.sort_unstable();
        lines.dedup();
        assert_eq!(lines.len(), n, "{rejected:?}");
        assert!(rows.iter().any(|r| r.line > 1));
    }

    #[test]
    fn rows_are_validated_with_line_numbers() {
        let csv = "client_code,email,segment,rfm_score,purchases,total_spent,last_purchase_date\n\
                   CL1,a@b.fr,VIP,3.5,3,\"120,50\",2026-01-15\n\
                   CL2,not-an-email,Standard,1,1,10,2026-01-01\n\
                   ,,Standard,1,1,10,\n\
                   CL4,,Standard,7,1,10,\n\
                   CL5,,Standard,1,-2,10,\n\
                   CL6,,Standard,1,1,10,15/01/2026\n";
        let (rows, rejected) = parse(csv.as_bytes());
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].update.total_spent, Some(120.5));
        let lines: Vec<usize> = rejected.iter().map(|r| r.line).collect();
        assert_eq!(lines, [3, 4, 5, 6, 7]);
        assert!(rejected[0].reason.contains("email"));
        assert!(rejected[2].reason.contains("rfm_score"));
        let (_, bad) = parse(b"client_code,colour\nCL1,red\n");
        assert!(bad[0].reason.contains("unknown column \"colour\""));
    }

    #[test]
    fn a_french_excel_file_imports() {
        // Excel in French: `;` separator, decimal commas, Windows-1252 ("é" is 0xE9), a BOM
        // when saved as "CSV UTF-8".
        let mut cp1252 = b"client_code;email;first_name;phone;total_spent\r\n".to_vec();
        cp1252.extend_from_slice(b"CL1;marie@exemple.fr;Ren\xe9e;06 12 34 56 78;120,50\r\n");
        cp1252.extend_from_slice(b"CL2;jean@exemple;Jean;06 12;10\r\n");
        let fr = ImportOptions { default_country: Some("FR".into()) };
        let (rows, rejected, sep, encoding) = parse_with(&cp1252, &fr);
        assert_eq!((sep, encoding), (b';', "windows-1252"));
        assert_eq!(rows.len(), 1);
        assert_eq!(rows[0].update.first_name.as_deref(), Some("Renée"));
        assert_eq!(rows[0].update.phone.as_deref(), Some("+33612345678"));
        assert_eq!(rows[0].update.total_spent, Some(120.5));
        assert_eq!(rejected[0].line, 3);
        assert!(rejected[0].reason.contains("email"), "{rejected:?}");
        let utf8 = "\u{feff}client_code;phone\nCL3;+33 6 12 34 56 78\nCL4;06 12 34 56 78\n";
        let (rows, rejected, sep, encoding) = parse_with(utf8.as_bytes(), &ImportOptions::default());
        assert_eq!((sep, encoding, rows.len()), (b';', "utf-8", 1));
        assert!(rejected[0].reason.contains("default_country"), "{rejected:?}");
        assert_eq!(separator("a\tb\tc"), b'\t');
        assert_eq!(separator("\"a;b\",c"), b',');
    }
}
