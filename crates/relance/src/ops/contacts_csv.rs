//! Every contact as CSV (one column per named score, valued at `now`, decay included),
//! read from the store a page at a time into any writer.

use chrono::{DateTime, SecondsFormat, Utc};
use relance_core::named_score::ScoreSpec;

use crate::store::{ContactFilter, Store, StoreError};

const FIXED: &[&str] = &["email", "client_code", "first_name", "last_name", "phone", "segment", "score"];
const TAIL: &[&str] = &[
    "tags",
    "purchases",
    "total_spent",
    "last_purchase_at",
    "last_activity_at",
    "unsubscribed",
    "complained",
    "email_invalid",
];

/// Writes the header and every contact in id order; returns how many contacts.
pub async fn write_contacts_csv<S: Store + ?Sized, W: std::io::Write>(
    store: &S,
    specs: &[ScoreSpec],
    now: DateTime<Utc>,
    out: W,
) -> Result<u64, StoreError> {
    let mut w = csv::Writer::from_writer(out);
    let failed = |e: csv::Error| StoreError::Unavailable(anyhow::anyhow!("writing CSV: {e}"));
    let mut header: Vec<String> = FIXED.iter().map(|s| (*s).to_owned()).collect();
    header.extend(specs.iter().map(|s| format!("score_{}", s.name)));
    header.extend(TAIL.iter().map(|s| (*s).to_owned()));
    w.write_record(&header).map_err(failed)?;
    let time = |t: Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, true)).unwrap_or_default();
    let (mut after, mut n) = (0, 0u64);
    loop {
        let page =
            store.list_contacts(ContactFilter { after_id: after, limit: 1000, ..ContactFilter::default() }).await?;
        let Some(last) = page.last() else { break };
        after = last.id;
        for s in &page {
            let c = &s.contact;
            let mut row = vec![
                c.email.as_ref().map(|e| e.to_string()).unwrap_or_default(),
                c.client_code.as_ref().map(|k| k.to_string()).unwrap_or_default(),
                c.first_name.clone().unwrap_or_default(),
                c.last_name.clone().unwrap_or_default(),
                c.phone.clone().unwrap_or_default(),
                c.segment.clone(),
                c.score.to_string(),
            ];
            row.extend(specs.iter().map(|spec| spec.value_at(&c.scores, now).to_string()));
            row.extend([
                c.tags.iter().map(String::as_str).collect::<Vec<_>>().join(";"),
                c.purchases.to_string(),
                format!("{:.2}", c.total_spent),
                time(c.last_purchase_at),
                time(c.last_activity_at),
                c.unsubscribed.to_string(),
                c.complained.to_string(),
                c.email_invalid.to_string(),
            ]);
            w.write_record(&row).map_err(failed)?;
            n += 1;
        }
    }
    w.flush().map_err(|e| StoreError::Unavailable(anyhow::anyhow!("writing CSV: {e}")))?;
    Ok(n)
}
