//! Contacts created or changed by the API, the dashboard or a CSV import: the same
//! plan as events (one version more per write), with the identity checks of a person's
//! edit: an email or client code that belongs to another contact is refused.

use chrono::{DateTime, Utc};

use super::{PlanError, PlannedContact, Planner, Slot};
use crate::contact::Contact;
use crate::contact_update::ContactUpdate;
use crate::inbound::Identity;

impl Planner<'_> {
    /// Creates the contact `key` names (an email or a client code) or updates it with
    /// `update`. Refused before anything is planned when the update gives an identity
    /// another contact holds. Returns the contact's slot and whether it is new.
    pub fn upsert(
        &mut self,
        key: &Identity,
        update: ContactUpdate,
        now: DateTime<Utc>,
    ) -> Result<(Slot, bool), PlanError> {
        let found = match (&key.client_code, &key.email) {
            (Some(k), _) => self.by_code.get(k).copied(),
            (None, Some(e)) => self.by_email.get(e).copied(),
            (None, None) => return Err(PlanError::NoIdentity(self.inputs)),
        };
        if let Some(e) = &update.email
            && let Some(other) = self.by_email.get(e)
            && Some(*other) != found
        {
            return Err(PlanError::Conflict(format!("email {e} already belongs to another contact")));
        }
        if let Some(k) = &update.client_code
            && let Some(other) = self.by_code.get(k)
            && Some(*other) != found
        {
            return Err(PlanError::Conflict(format!("client_code {k} already belongs to another contact")));
        }
        let slot = match found {
            Some(slot) => slot,
            None => {
                let contact = Contact {
                    email: key.email.clone(),
                    client_code: key.client_code.clone(),
                    segment: self.default_segment.to_owned(),
                    ..Contact::default()
                };
                let slot = Slot(self.plan.contacts.len());
                self.plan.contacts.push(PlannedContact {
                    brevo_sync: None,
                    id: None,
                    contact,
                    version: 0,
                    loaded_version: 0,
                    identities_changed: true,
                    loaded_segment: String::new(),
                    created_at: now,
                    updated_at: now,
                });
                slot
            }
        };
        let created = found.is_none();
        let planned = &mut self.plan.contacts[slot.0];
        let (old_email, old_code) = (planned.contact.email.clone(), planned.contact.client_code.clone());
        let formula_inputs_changed = update.apply_to(&mut planned.contact);
        // A contact created from CRM data starts at the formula's score for it; an
        // existing one keeps its score (rules have moved it since).
        if created && formula_inputs_changed {
            planned.contact.score = planned.contact.formula_score(now);
        }
        planned.version += 1;
        planned.updated_at = now;
        if planned.contact.email != old_email || planned.contact.client_code != old_code {
            planned.identities_changed = true;
        }
        // The index follows the identities: a later row keyed by the old email no longer
        // finds this contact, as it would not in the database.
        let contact = planned.contact.clone();
        if let Some(e) = old_email.filter(|e| contact.email.as_ref() != Some(e)) {
            self.by_email.remove(&e);
        }
        if let Some(k) = old_code.filter(|k| contact.client_code.as_ref() != Some(k)) {
            self.by_code.remove(&k);
        }
        if let Some(e) = &contact.email {
            self.by_email.insert(e.clone(), slot);
        }
        if let Some(k) = &contact.client_code {
            self.by_code.insert(k.clone(), slot);
        }
        Ok((slot, created))
    }
}
