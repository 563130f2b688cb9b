//! Job results recorded at once, as the dispatcher's workers do: on PostgreSQL they are
//! written together in one transaction, and one that cannot be recorded (a job that does
//! not exist) must fail alone, without taking the others with it. Runs on the backend
//! `RELANCE_TEST_DATABASE_URL` names (SQLite otherwise).

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures_util::future::join_all;
use relance::live_rules::LiveRules;
use relance::store::StoreError;
use relance::store::jobs::{Attempt, ClaimRequest, Finish, JobFinish, JobState};
use relance_core::inbound::Identity;
use relance_core::{ActionType, Email, Event, InboundEvent, RuleSet, Source, Trigger};
use serde_json::json;

use crate::common::{TestDb, open_store_on, t0};

fn done(at: DateTime<Utc>, note: &str) -> JobFinish {
    let attempt = Attempt {
        started_at: at,
        duration_ms: 3,
        status: "done".into(),
        http_status: Some(201),
        response: Some(note.into()),
    };
    JobFinish { finish: Finish::Done, error: None, attempt, outbox: None }
}

fn purchase(n: usize, at: DateTime<Utc>) -> InboundEvent {
    let mut event = Event::new(Source::Tracking, Trigger::Purchase, at);
    event.name = "purchase".into();
    event.amount = Some(120.0);
    InboundEvent {
        identity: Identity { email: Some(Email::parse(&format!("buyer{n}@example.fr")).unwrap()), client_code: None },
        event,
        dedupe_key: Some(format!("purchase-{n}")),
        sender_event_id: None,
        recognised: true,
        raw: json!({"n": n}),
    }
}

#[tokio::test]
async fn results_recorded_at_once_are_each_recorded_and_an_unknown_job_fails_alone() {
    let db = TestDb::fresh();
    // Five minutes after the purchases, their thank-you emails are due.
    let clock: relance::store::Clock = Arc::new(|| t0() + chrono::Duration::minutes(6));
    let store = open_store_on(&db, LiveRules::new(RuleSet::defaults()), clock.clone()).await;
    store.ingest((0..12).map(|n| purchase(n, t0())).collect()).await.unwrap();
    let claim = ClaimRequest {
        limit: 50,
        lease: Duration::from_secs(60),
        action_types: vec![ActionType::SendEmail],
        pressure: None,
    };
    let claimed = store.claim_jobs(claim).await.unwrap();
    assert_eq!(claimed.len(), 12, "one thank-you email per purchase is due");

    let now = clock();
    let mut finishing: Vec<_> = claimed
        .iter()
        .map(|j| {
            let store = store.clone();
            let (id, note) = (j.id.clone(), format!("sent {}", j.id));
            tokio::spawn(async move { store.finish_job(id, done(now, &note)).await })
        })
        .collect();
    let stranger = store.clone();
    finishing.push(tokio::spawn(async move { stranger.finish_job("no-such-job".into(), done(now, "x")).await }));
    let mut results: Vec<Result<bool, StoreError>> =
        join_all(finishing).await.into_iter().map(|r| r.unwrap()).collect();

    assert!(matches!(results.pop(), Some(Err(StoreError::NotFound(_)))), "the unknown job is not found");
    assert!(results.iter().all(|r| matches!(r, Ok(true))), "every claimed job moved to done: {results:?}");
    for job in &claimed {
        let (row, attempts) = store.job(job.id.clone()).await.unwrap().unwrap();
        assert_eq!(row.state, JobState::Done, "{}", job.id);
        assert_eq!(attempts.len(), 1, "one attempt recorded for {}", job.id);
        assert_eq!(attempts[0].response.as_deref(), Some(format!("sent {}", job.id).as_str()));
        assert_eq!(attempts[0].http_status, Some(201));
    }

    // Recorded again (a worker that lost its lease): nothing moves, the attempt is kept.
    let again = store.finish_job(claimed[0].id.clone(), done(now, "late")).await.unwrap();
    assert!(!again, "a finished job does not move again");
    let (row, attempts) = store.job(claimed[0].id.clone()).await.unwrap().unwrap();
    assert_eq!(row.state, JobState::Done);
    assert_eq!(attempts.len(), 2, "the late attempt is recorded beside the first");
}

#[tokio::test]
async fn mixed_results_recorded_at_once_keep_each_state_retry_time_error_and_outbox_record() {
    let db = TestDb::fresh();
    let clock: relance::store::Clock = Arc::new(|| t0() + chrono::Duration::minutes(6));
    let store = open_store_on(&db, LiveRules::new(RuleSet::defaults()), clock.clone()).await;
    store.ingest((0..8).map(|n| purchase(n, t0())).collect()).await.unwrap();
    let claim = ClaimRequest {
        limit: 50,
        lease: Duration::from_secs(60),
        action_types: vec![ActionType::SendEmail],
        pressure: None,
    };
    let claimed = store.claim_jobs(claim).await.unwrap();
    assert_eq!(claimed.len(), 8);

    let now = clock();
    let retry_at = now + chrono::Duration::minutes(17);
    // Job n ends as n mod 4 says: sent with an outbox record, to retry, dead, suppressed.
    let finish_of = |n: usize| {
        let mut f = done(now, &format!("attempt {n}"));
        match n % 4 {
            0 => f.outbox = Some(("brevo".to_owned(), json!({"job": n}))),
            1 => {
                f.finish = Finish::Retry { at: retry_at };
                f.error = Some(format!("timeout {n}"));
            }
            2 => {
                f.finish = Finish::Dead;
                f.error = Some(format!("refused {n}"));
            }
            _ => f.finish = Finish::Suppressed,
        }
        f
    };
    let finishing: Vec<_> = claimed
        .iter()
        .enumerate()
        .map(|(n, j)| {
            let (store, id, finish) = (store.clone(), j.id.clone(), finish_of(n));
            tokio::spawn(async move { store.finish_job(id, finish).await })
        })
        .collect();
    for r in join_all(finishing).await {
        assert!(matches!(r.unwrap(), Ok(true)), "every claimed job moved");
    }

    let outbox = store.outbox(50).await.unwrap();
    for (n, job) in claimed.iter().enumerate() {
        let (row, attempts) = store.job(job.id.clone()).await.unwrap().unwrap();
        let expected = [JobState::Done, JobState::Failed, JobState::Dead, JobState::Suppressed][n % 4];
        assert_eq!(row.state, expected, "job {n}");
        assert_eq!(attempts.len(), 1, "job {n}");
        assert_eq!(attempts[0].response.as_deref(), Some(format!("attempt {n}").as_str()));
        match n % 4 {
            1 => {
                assert_eq!(row.due_at, retry_at, "a retry is due when its finish said");
                assert_eq!(row.last_error.as_deref(), Some(format!("timeout {n}").as_str()));
            }
            2 => assert_eq!(row.last_error.as_deref(), Some(format!("refused {n}").as_str())),
            _ => assert_eq!(row.due_at, job.due_at, "only a retry moves the due time"),
        }
        let recorded: Vec<_> = outbox.iter().filter(|o| o.job_id == job.id).collect();
        if n % 4 == 0 {
            assert_eq!(recorded.len(), 1, "job {n}'s outbox record");
            assert_eq!((recorded[0].channel.as_str(), &recorded[0].payload), ("brevo", &json!({"job": n})));
        } else {
            assert!(recorded.is_empty(), "job {n} has no outbox record");
        }
    }
}
