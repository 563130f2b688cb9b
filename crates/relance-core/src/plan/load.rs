//! What the backend loaded, handed to the planner before the events: contacts, runs,
//! events stored earlier under a dedupe key, paused rules, reserved row ids; and what the
//! plan holds of them as planning goes on.

use std::sync::Arc;

use super::{LoadedContact, LoadedRun, PlannedContact, PlannedRun, Planner, Seen, Slot, StoredEvent};
use crate::contact::Contact;
use crate::sync_fields::SyncFields;

impl Planner<'_> {
    /// Row ids for the events to come, taken in order by each stored (non-duplicate)
    /// event; an event's public id is its row id in decimal. The backend reserves them
    /// from what never hands an id out twice (SQLite's `AUTOINCREMENT` high-water mark
    /// in its single writer, PostgreSQL's sequence), at least one per event it will give;
    /// unused ones are simply never stored.
    pub fn reserve_event_ids(&mut self, ids: impl IntoIterator<Item = i64>) {
        self.event_ids.extend(ids);
    }

    /// The fields mapped to Brevo attributes (`[brevo.sync]`); set before loading
    /// contacts, so that their values as loaded are known.
    pub fn set_sync(&mut self, sync: Arc<SyncFields>) {
        self.sync = sync;
    }

    /// A contact the batch may name (loading one twice keeps the first).
    pub fn load_contact(&mut self, loaded: LoadedContact) {
        if self.by_id.contains_key(&loaded.id) {
            return;
        }
        let slot = Slot(self.plan.contacts.len());
        self.index(slot, &loaded.contact);
        self.by_id.insert(loaded.id, slot);
        if !self.sync.is_empty() {
            self.synced_before.insert(slot, self.sync.values(&loaded.contact));
        }
        self.plan.contacts.push(PlannedContact {
            brevo_sync: None,
            id: Some(loaded.id),
            loaded_version: loaded.version,
            version: loaded.version,
            identities_changed: false,
            loaded_segment: loaded.contact.segment.clone(),
            created_at: loaded.created_at,
            updated_at: loaded.updated_at,
            contact: loaded.contact,
        });
    }

    /// The rules paused by an operator (the kill switch), as the backend read them.
    pub fn set_paused(&mut self, rules: Vec<String>) {
        self.paused = rules;
    }

    /// A run of a loaded contact: its active runs and its latest run of each rule (for
    /// re-entry). Runs of a contact not loaded are ignored.
    pub fn load_run(&mut self, run: LoadedRun) {
        if let Some(&slot) = self.by_id.get(&run.contact_id) {
            self.plan.runs.push(PlannedRun { run, contact: slot, is_new: false, changed: false });
        }
    }

    /// An event stored earlier under `dedupe_key`.
    pub fn load_stored_event(&mut self, dedupe_key: String, stored: StoredEvent) {
        self.seen.insert(
            dedupe_key,
            Seen { public_id: stored.public_id, trigger: stored.trigger, contact_id: stored.contact_id, slot: None },
        );
    }

    pub(super) fn index(&mut self, slot: Slot, c: &Contact) {
        if let Some(e) = &c.email {
            self.by_email.entry(e.clone()).or_insert(slot);
        }
        if let Some(k) = &c.client_code {
            self.by_code.entry(k.clone()).or_insert(slot);
        }
    }

    /// The ids of the contacts loaded so far, ascending (whose runs to load).
    pub fn loaded_contact_ids(&self) -> Vec<i64> {
        let mut ids: Vec<i64> = self.by_id.keys().copied().collect();
        ids.sort_unstable();
        ids
    }

    /// A contact loaded by id, as the plan has it now.
    pub fn contact(&self, id: i64) -> Option<&Contact> {
        self.by_id.get(&id).map(|s| &self.plan.contacts[s.0].contact)
    }

    /// A run the plan read or started, as it is now.
    pub fn run(&self, run_id: &str) -> Option<&LoadedRun> {
        self.plan.runs.iter().rev().find(|r| r.run.id == run_id).map(|r| &r.run)
    }
}
