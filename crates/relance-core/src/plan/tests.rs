use super::memory::{MemoryRules, MemoryStore};
use super::*;
use crate::inbound::Identity;
use crate::rules::RuleSet;
use chrono::TimeZone;
use serde_json::json;

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 1, 10, 9, 0, 0).unwrap()
}

fn inbound(email: Option<&str>, code: Option<&str>, trigger: Trigger, key: Option<&str>) -> InboundEvent {
    let mut event = Event::new(Source::Tracking, trigger, t0());
    if trigger == Trigger::Purchase {
        event.amount = Some(120.0);
    }
    InboundEvent {
        identity: Identity {
            email: email.map(|e| Email::parse(e).unwrap()),
            client_code: code.map(|c| ClientCode::parse(c).unwrap()),
        },
        event,
        dedupe_key: key.map(str::to_owned),
        sender_event_id: None,
        recognised: true,
        raw: json!({}),
    }
}

fn plan(events: &[InboundEvent], loaded: Vec<LoadedContact>) -> WritePlan {
    let engine = Engine::new(RuleSet::defaults());
    let mut n = 0;
    let mut ids = || {
        n += 1;
        format!("id{n}")
    };
    let mut p = Planner::new(&engine, 1, "Standard", &mut ids);
    p.reserve_event_ids(1..=events.len() as i64);
    for c in loaded {
        p.load_contact(c);
    }
    for e in events {
        p.ingest(e, t0()).unwrap();
    }
    p.finish()
}

#[test]
fn a_new_contact_is_version_one_and_each_event_adds_one() {
    let e = inbound(Some("a@x.fr"), None, Trigger::EmailOpened, None);
    let p = plan(&[e.clone(), e.clone(), e], vec![]);
    assert_eq!(p.contacts.len(), 1, "one contact, created once");
    assert_eq!((p.contacts[0].id, p.contacts[0].version), (None, 3));
    assert_eq!(p.events.len(), 3);
}

#[test]
fn linking_an_identity_is_part_of_the_event_not_a_write_of_its_own() {
    let loaded = LoadedContact {
        id: 7,
        contact: Contact { email: Some(Email::parse("a@x.fr").unwrap()), ..Contact::default() },
        version: 4,
        created_at: t0(),
        updated_at: t0(),
    };
    let p = plan(&[inbound(Some("a@x.fr"), Some("CL1"), Trigger::PageVisit, None)], vec![loaded]);
    let c = &p.contacts[0];
    assert_eq!((c.id, c.version, c.identities_changed), (Some(7), 5, true));
    assert_eq!(c.contact.client_code.as_ref().map(ClientCode::as_str), Some("CL1"));
}

#[test]
fn a_code_owned_by_another_contact_is_not_linked() {
    let a = LoadedContact {
        id: 1,
        contact: Contact { email: Some(Email::parse("a@x.fr").unwrap()), ..Contact::default() },
        version: 1,
        created_at: t0(),
        updated_at: t0(),
    };
    let b = LoadedContact {
        id: 2,
        contact: Contact { client_code: Some(ClientCode::parse("CL1").unwrap()), ..Contact::default() },
        version: 1,
        created_at: t0(),
        updated_at: t0(),
    };
    let p = plan(&[inbound(Some("a@x.fr"), Some("CL1"), Trigger::PageVisit, None)], vec![a, b]);
    assert_eq!(p.events[0].contact, Slot(1), "the client code's contact");
    assert!(p.contacts[0].contact.client_code.is_none() && p.contacts[1].contact.email.is_none());
    assert_eq!(p.warnings.len(), 1);
}

#[test]
fn a_redelivery_inside_one_batch_is_a_duplicate_of_the_first() {
    let e = inbound(Some("a@x.fr"), None, Trigger::EmailClicked, Some("k1"));
    let p = plan(&[e.clone(), e], vec![]);
    assert_eq!(p.events.len(), 1);
    assert!(p.answers[1].duplicate && p.answers[1].event_id == p.answers[0].event_id);
    assert_eq!(p.contacts[0].version, 1);
}

#[test]
fn an_unsubscribe_cancels_what_the_batch_planned_before_it_and_what_is_stored() {
    let buy = inbound(Some("a@x.fr"), None, Trigger::Purchase, None);
    let unsub = inbound(Some("a@x.fr"), None, Trigger::Unsubscribe, None);
    let p = plan(&[buy, unsub], vec![]);
    let reaching: Vec<_> = p.jobs.iter().filter(|j| j.fired.action_type.reaches_person()).collect();
    assert!(!reaching.is_empty());
    assert!(reaching.iter().all(|j| j.state == JobState::Cancelled));
    assert_eq!(reaching[0].last_error.as_deref(), Some("cancelled: unsubscribed"));
    assert_eq!(p.cancellations.len(), 1);
}

#[test]
fn an_event_with_no_identity_is_refused_by_position() {
    let engine = Engine::new(RuleSet::defaults());
    let mut ids = || "x".to_owned();
    let mut p = Planner::new(&engine, 1, "Standard", &mut ids);
    p.reserve_event_ids([7, 8]);
    p.ingest(&inbound(Some("a@x.fr"), None, Trigger::PageVisit, None), t0()).unwrap();
    assert_eq!(p.ingest(&inbound(None, None, Trigger::PageVisit, None), t0()), Err(PlanError::NoIdentity(1)));
    // The refused event took no id; the next one stored takes the next reserved, and one
    // beyond what was reserved is a backend defect, not a refused event.
    p.ingest(&inbound(Some("b@x.fr"), None, Trigger::PageVisit, None), t0()).unwrap();
    assert_eq!(p.ingest(&inbound(Some("c@x.fr"), None, Trigger::PageVisit, None), t0()), Err(PlanError::NoEventId(3)));
    let plan = p.finish();
    assert_eq!(plan.events.iter().map(|e| (e.id, e.public_id.as_str())).collect::<Vec<_>>(), [(7, "7"), (8, "8")]);
}

#[test]
fn the_memory_store_keeps_redeliveries_across_batches_and_runs_delayed_actions() {
    let engine = Engine::new(RuleSet::defaults());
    let rules = MemoryRules { engine: &engine, rule_version: 1, default_segment: "Standard" };
    let mut store = MemoryStore::default();
    let e = inbound(Some("a@x.fr"), None, Trigger::Purchase, Some("order-1"));
    let first = store.ingest(&rules, std::slice::from_ref(&e), t0()).unwrap().answers;
    let again = store.ingest(&rules, &[e], t0()).unwrap().answers;
    assert!(!first[0].duplicate && again[0].duplicate);
    assert_eq!(again[0].event_id, first[0].event_id);
    assert_eq!(store.contacts[&1].version, 1);
    assert!(!store.jobs.is_empty());
    // Nothing internal is delayed in the default rules: running due work changes nothing.
    assert_eq!(store.run_due_internal(&rules, t0() + chrono::Duration::days(30)).unwrap(), 0);
}

#[test]
fn an_edit_is_one_write_and_may_not_take_another_contacts_identity() {
    use crate::contact_update::ContactUpdate;
    let engine = Engine::new(RuleSet::defaults());
    let rules = MemoryRules { engine: &engine, rule_version: 1, default_segment: "Standard" };
    let mut store = MemoryStore::default();
    let anne = Identity { email: Some(Email::parse("anne@x.fr").unwrap()), client_code: None };
    let bob = Identity { email: Some(Email::parse("bob@x.fr").unwrap()), client_code: None };
    let crm = ContactUpdate { rfm_score: Some(4.0), purchases: Some(3), ..ContactUpdate::default() };
    assert!(store.upsert(&rules, &anne, crm, t0()).unwrap(), "created");
    let created = store.contacts[&1].clone();
    assert_eq!(created.version, 1);
    assert!(created.contact.score.value() > 0, "a contact created from CRM data starts at the formula's score");
    let segment = ContactUpdate { segment: Some("VIP".into()), ..ContactUpdate::default() };
    assert!(!store.upsert(&rules, &anne, segment, t0()).unwrap());
    assert_eq!((store.contacts[&1].version, store.contacts[&1].contact.segment.as_str()), (2, "VIP"));
    store.upsert(&rules, &bob, ContactUpdate::default(), t0()).unwrap();
    let steal = ContactUpdate { email: Some(Email::parse("anne@x.fr").unwrap()), ..ContactUpdate::default() };
    assert_eq!(
        store.upsert(&rules, &bob, steal, t0()),
        Err(PlanError::Conflict("email anne@x.fr already belongs to another contact".into()))
    );
    assert_eq!(store.contacts[&2].version, 1, "nothing written");
}

#[test]
fn a_stored_contact_changes_segment_only_when_the_plan_moves_it() {
    use crate::contact_update::ContactUpdate;
    let loaded = || LoadedContact {
        id: 3,
        contact: Contact {
            email: Some(Email::parse("a@x.fr").unwrap()),
            segment: "Standard".into(),
            ..Contact::default()
        },
        version: 2,
        created_at: t0(),
        updated_at: t0(),
    };
    let visit = plan(&[inbound(Some("a@x.fr"), None, Trigger::PageVisit, None)], vec![loaded()]);
    assert!(visit.contacts[0].is_written());
    assert!(!visit.contacts[0].segment_changed(), "a visit leaves the segment as loaded");

    let engine = Engine::new(RuleSet::defaults());
    let mut ids = || "job".to_owned();
    let mut p = Planner::new(&engine, 1, "Standard", &mut ids);
    p.load_contact(loaded());
    let key = Identity { email: Some(Email::parse("a@x.fr").unwrap()), client_code: None };
    let vip = ContactUpdate { segment: Some("VIP".into()), ..ContactUpdate::default() };
    p.upsert(&key, vip, t0()).unwrap();
    let edit = p.finish();
    assert!(edit.contacts[0].segment_changed(), "Standard → VIP");
    assert_eq!(edit.contacts[0].loaded_segment, "Standard");
}
