//! The single writer's copy of the contacts it wrote last (issue 20): finding a contact
//! by its email or client code and reading its stored JSON was a fifth of the writer's
//! instructions per event, for rows the writer itself had written moments before.
//!
//! Invariant: an entry is the contact as committed. It holds because
//! - every row this connection inserts, updates or deletes in `contacts` is reported by
//!   SQLite's update hook, and dropped from the cache before the next look-up — whatever
//!   wrote it (an erasure, an import, a rolled-back batch);
//! - a commit by any other connection (another `relance` process on the same file)
//!   moves `PRAGMA data_version`, read as each transaction begins: the cache is emptied;
//! - what an ingest plan wrote enters the cache only after its transaction committed,
//!   and only if nothing wrote the row again since in that transaction.
//!
//! A look-up moves the contact out of the cache into the planner (no copy); the plan
//! gives it back once committed.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use hashlink::LruCache;
use relance_core::plan::LoadedContact;
use relance_core::{ClientCode, Email};
use rusqlite::Connection;

use crate::store::StoreError;

pub(crate) struct ContactCache {
    entries: LruCache<i64, LoadedContact>,
    by_email: HashMap<Email, i64>,
    by_code: HashMap<ClientCode, i64>,
    /// Row ids of `contacts` written on the writer's connection since the last look.
    written: Arc<Mutex<Vec<i64>>>,
    /// Contacts planned in the open transaction, cached if it commits.
    pending: HashMap<i64, LoadedContact>,
    data_version: Option<i64>,
}

impl ContactCache {
    /// A cache of up to `capacity` contacts for `conn`'s writes (0: none, every
    /// contact is read from the database).
    pub fn attach(conn: &Connection, capacity: usize) -> ContactCache {
        let written = Arc::new(Mutex::new(Vec::new()));
        if capacity > 0 {
            let hooked = written.clone();
            conn.update_hook(Some(move |_, _: &str, table: &str, row: i64| {
                if table == "contacts" {
                    hooked.lock().unwrap_or_else(PoisonError::into_inner).push(row);
                }
            }));
        }
        ContactCache {
            entries: LruCache::new(capacity),
            by_email: HashMap::new(),
            by_code: HashMap::new(),
            written,
            pending: HashMap::new(),
            data_version: None,
        }
    }

    fn enabled(&self) -> bool {
        self.entries.capacity() > 0
    }

    /// As a write transaction begins (before anything is read): forgets what another
    /// connection may have changed, and what a transaction that did not commit planned.
    pub fn begin(&mut self, conn: &Connection) -> Result<(), StoreError> {
        if !self.enabled() {
            return Ok(());
        }
        self.pending.clear();
        let version: i64 = conn.prepare_cached("PRAGMA data_version")?.query_row([], |r| r.get(0))?;
        if self.data_version != Some(version) {
            if self.data_version.is_some() {
                tracing::debug!(
                    cached = self.entries.len(),
                    "another connection wrote to the database; contact cache emptied"
                );
            }
            self.clear();
            self.data_version = Some(version);
        }
        self.forget_written();
        Ok(())
    }

    /// Drops every contact written on this connection since the last call.
    pub fn forget_written(&mut self) {
        let written = std::mem::take(&mut *self.written.lock().unwrap_or_else(PoisonError::into_inner));
        for id in written {
            self.take(id);
            self.pending.remove(&id);
        }
    }

    pub fn id_of_email(&self, email: &Email) -> Option<i64> {
        self.by_email.get(email).copied()
    }

    pub fn id_of_code(&self, code: &ClientCode) -> Option<i64> {
        self.by_code.get(code).copied()
    }

    /// Contacts a plan wrote (or read) in the open transaction, after its writes were
    /// forgotten ([`Self::forget_written`]): cached if the transaction commits.
    pub fn planned(&mut self, contacts: impl IntoIterator<Item = LoadedContact>) {
        if self.enabled() {
            self.pending.extend(contacts.into_iter().map(|c| (c.id, c)));
        }
    }

    /// After the commit.
    pub fn committed(&mut self) {
        if !self.enabled() {
            return;
        }
        self.forget_written();
        for (id, contact) in std::mem::take(&mut self.pending) {
            self.insert(id, contact);
        }
    }

    fn insert(&mut self, id: i64, contact: LoadedContact) {
        self.take(id);
        while self.entries.len() >= self.entries.capacity() {
            match self.entries.remove_lru() {
                Some((_, old)) => self.unindex(&old),
                None => break,
            }
        }
        if let Some(e) = &contact.contact.email {
            self.by_email.insert(e.clone(), id);
        }
        if let Some(c) = &contact.contact.client_code {
            self.by_code.insert(c.clone(), id);
        }
        self.entries.insert(id, contact);
    }

    /// The contact, moved out of the cache (a committed plan gives it back).
    pub fn take(&mut self, id: i64) -> Option<LoadedContact> {
        let old = self.entries.remove(&id)?;
        self.unindex(&old);
        Some(old)
    }

    fn unindex(&mut self, old: &LoadedContact) {
        if let Some(e) = &old.contact.email
            && self.by_email.get(e) == Some(&old.id)
        {
            self.by_email.remove(e);
        }
        if let Some(c) = &old.contact.client_code
            && self.by_code.get(c) == Some(&old.id)
        {
            self.by_code.remove(c);
        }
    }

    fn clear(&mut self) {
        self.entries.clear();
        self.by_email.clear();
        self.by_code.clear();
    }
}

#[cfg(test)]
mod tests {
    use chrono::{TimeZone, Utc};
    use relance_core::Contact;

    use super::*;

    fn contact(id: i64, email: &str, code: &str) -> LoadedContact {
        LoadedContact {
            id,
            contact: Contact {
                email: Some(Email::parse(email).expect("email")),
                client_code: Some(ClientCode::parse(code).expect("code")),
                ..Contact::default()
            },
            version: 1,
            created_at: Utc.timestamp_millis_opt(0).unwrap(),
            updated_at: Utc.timestamp_millis_opt(0).unwrap(),
        }
    }

    fn database() -> (tempfile::TempDir, Connection) {
        let dir = tempfile::tempdir().expect("dir");
        let conn = Connection::open(dir.path().join("c.db")).expect("open");
        conn.execute_batch("PRAGMA journal_mode=WAL; CREATE TABLE contacts (id INTEGER PRIMARY KEY, v TEXT); CREATE TABLE other (id INTEGER PRIMARY KEY);")
            .expect("schema");
        (dir, conn)
    }

    fn email(s: &str) -> Email {
        Email::parse(s).expect("email")
    }

    /// Caches `contacts` as an ingest does: planned in a transaction, then committed.
    fn cache_committed(cache: &mut ContactCache, conn: &Connection, contacts: Vec<LoadedContact>) {
        cache.begin(conn).expect("begin");
        cache.forget_written();
        cache.planned(contacts);
        cache.committed();
    }

    #[test]
    fn a_committed_plan_is_found_by_email_and_code_and_taken_once() {
        let (_dir, conn) = database();
        let mut cache = ContactCache::attach(&conn, 10);
        cache_committed(&mut cache, &conn, vec![contact(1, "a@x.fr", "C1")]);
        assert_eq!(cache.id_of_email(&email("a@x.fr")), Some(1));
        assert_eq!(cache.id_of_code(&ClientCode::parse("C1").expect("code")), Some(1));
        assert_eq!(cache.take(1), Some(contact(1, "a@x.fr", "C1")));
        assert_eq!(cache.take(1), None, "moved out");
        assert_eq!(cache.id_of_email(&email("a@x.fr")), None, "its keys go with it");
    }

    #[test]
    fn a_plan_whose_transaction_did_not_commit_is_not_cached() {
        let (_dir, conn) = database();
        let mut cache = ContactCache::attach(&conn, 10);
        cache.begin(&conn).expect("begin");
        cache.planned(vec![contact(1, "a@x.fr", "C1")]);
        // The batch failed: the next transaction begins without a commit.
        cache.begin(&conn).expect("begin");
        cache.committed();
        assert_eq!(cache.take(1), None);
    }

    #[test]
    fn a_row_written_on_the_connection_is_dropped_before_the_next_look_up() {
        let (_dir, conn) = database();
        let mut cache = ContactCache::attach(&conn, 10);
        cache_committed(&mut cache, &conn, vec![contact(1, "a@x.fr", "C1"), contact(2, "b@x.fr", "C2")]);
        conn.execute("INSERT INTO contacts (id, v) VALUES (1, 'erased')", []).expect("write");
        conn.execute("INSERT INTO other (id) VALUES (2)", []).expect("another table");
        cache.forget_written();
        assert_eq!(cache.take(1), None, "written: read again from the row");
        assert_eq!(cache.id_of_email(&email("a@x.fr")), None);
        assert!(cache.take(2).is_some(), "another table's row 2 is not contact 2");
    }

    #[test]
    fn a_row_written_after_the_plan_in_the_same_transaction_keeps_it_out() {
        let (_dir, conn) = database();
        let mut cache = ContactCache::attach(&conn, 10);
        cache.begin(&conn).expect("begin");
        cache.forget_written();
        cache.planned(vec![contact(1, "a@x.fr", "C1")]);
        // A later command of the batch (an erasure) writes the same row.
        conn.execute("INSERT INTO contacts (id, v) VALUES (1, 'erased')", []).expect("write");
        cache.committed();
        assert_eq!(cache.take(1), None);
    }

    #[test]
    fn a_commit_by_another_connection_empties_the_cache() {
        let (dir, conn) = database();
        let mut cache = ContactCache::attach(&conn, 10);
        cache_committed(&mut cache, &conn, vec![contact(1, "a@x.fr", "C1")]);
        cache.begin(&conn).expect("begin");
        assert!(cache.id_of_email(&email("a@x.fr")).is_some(), "nothing changed");
        let other = Connection::open(dir.path().join("c.db")).expect("open");
        other.execute("INSERT INTO contacts (id, v) VALUES (5, 'import')", []).expect("write");
        cache.begin(&conn).expect("begin");
        assert_eq!(cache.id_of_email(&email("a@x.fr")), None);
        assert_eq!(cache.take(1), None);
    }

    #[test]
    fn the_least_recently_cached_contact_leaves_first_with_its_keys() {
        let (_dir, conn) = database();
        let mut cache = ContactCache::attach(&conn, 2);
        for (id, e, c) in [(1, "a@x.fr", "C1"), (2, "b@x.fr", "C2"), (3, "c@x.fr", "C3")] {
            cache_committed(&mut cache, &conn, vec![contact(id, e, c)]);
        }
        assert_eq!(cache.entries.len(), 2);
        assert_eq!(cache.id_of_email(&email("a@x.fr")), None);
        assert_eq!(cache.by_email.len(), 2);
        assert_eq!(cache.by_code.len(), 2);
        assert!(cache.take(3).is_some() && cache.take(2).is_some());
    }

    #[test]
    fn a_contact_that_changed_its_email_is_found_only_by_the_new_one() {
        let (_dir, conn) = database();
        let mut cache = ContactCache::attach(&conn, 10);
        cache_committed(&mut cache, &conn, vec![contact(1, "a@x.fr", "C1")]);
        let moved = cache.take(1).expect("cached");
        cache_committed(
            &mut cache,
            &conn,
            vec![LoadedContact { contact: contact(1, "new@x.fr", "C1").contact, ..moved }],
        );
        assert_eq!(cache.id_of_email(&email("a@x.fr")), None);
        assert_eq!(cache.id_of_email(&email("new@x.fr")), Some(1));
    }

    #[test]
    fn a_cache_of_zero_keeps_nothing() {
        let (_dir, conn) = database();
        let mut cache = ContactCache::attach(&conn, 0);
        cache_committed(&mut cache, &conn, vec![contact(1, "a@x.fr", "C1")]);
        assert_eq!(cache.take(1), None);
        assert_eq!(cache.id_of_email(&email("a@x.fr")), None);
    }
}
