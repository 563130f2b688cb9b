use super::*;

fn paris() -> Pressure {
    Pressure::parse(&PressureSpec {
        timezone: Some("Europe/Paris".into()),
        quiet_hours: Some(QuietHoursSpec { start: "20:30".into(), end: "09:00".into() }),
        quiet_days: vec!["sunday".into()],
        cap: vec![
            CapSpec { channel: Channel::Email, max: 2, per_days: 7 },
            CapSpec { channel: Channel::Sms, max: 1, per_days: 7 },
        ],
    })
    .unwrap()
}

fn utc(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

fn email<'a>(sent: &'a [DateTime<Utc>], timezone: Option<&'a str>) -> Message<'a> {
    Message {
        action: ActionType::SendEmail,
        transactional: false,
        on_cap: OnCap::Defer,
        timezone,
        sent,
        ahead: 0,
        budget: None,
    }
}

#[test]
fn quiet_hours_move_a_message_to_their_end_in_the_contacts_time() {
    let p = paris();
    // 21:00 in Paris (winter, UTC+1): the next morning at 09:00 Paris.
    let v = p.check(&email(&[], None), utc("2026-01-14T20:00:00Z"));
    assert_eq!(v, Verdict::Defer { until: utc("2026-01-15T08:00:00Z"), reason: "deferred: quiet hours".into() });
    // 07:00 in Paris: the same morning.
    let v = p.check(&email(&[], None), utc("2026-01-14T06:00:00Z"));
    assert!(matches!(v, Verdict::Defer { until, .. } if until == utc("2026-01-14T08:00:00Z")));
    // Noon: goes.
    assert_eq!(p.check(&email(&[], None), utc("2026-01-14T11:00:00Z")), Verdict::Send);
    // In Montreal (UTC−5), 12:00 UTC is 07:00: deferred to 09:00 there, 14:00 UTC.
    let v = p.check(&email(&[], Some("America/Montreal")), utc("2026-01-14T12:00:00Z"));
    assert!(matches!(v, Verdict::Defer { until, .. } if until == utc("2026-01-14T14:00:00Z")), "{v:?}");
    assert_eq!(p.check(&email(&[], Some("America/Montreal")), utc("2026-01-14T14:00:00Z")), Verdict::Send);
}

#[test]
fn daylight_saving_changes_are_handled() {
    let p = paris();
    // Saturday 28 March 2026, 21:00 CET; Paris moves to CEST that night: 09:00 CEST is 07:00 UTC.
    let v = p.check(&email(&[], None), utc("2026-03-28T20:00:00Z"));
    assert!(matches!(v, Verdict::Defer { until, .. } if until == utc("2026-03-29T07:00:00Z")), "{v:?}");
    // A quiet window ending at a time the change skips (02:30 on 29 March) ends an hour later.
    let odd = Pressure::parse(&PressureSpec {
        quiet_hours: Some(QuietHoursSpec { start: "01:00".into(), end: "02:30".into() }),
        ..PressureSpec::default()
    })
    .unwrap();
    let v = odd.check(&email(&[], None), utc("2026-03-29T00:30:00Z"));
    assert!(matches!(v, Verdict::Defer { until, .. } if until == utc("2026-03-29T01:30:00Z")), "03:30 CEST: {v:?}");
    // Montreal changed on 8 March 2026: 07:00 EDT is 11:00 UTC, deferred to 09:00 EDT = 13:00 UTC.
    let v = p.check(&email(&[], Some("America/Montreal")), utc("2026-03-10T11:00:00Z"));
    assert!(matches!(v, Verdict::Defer { until, .. } if until == utc("2026-03-10T13:00:00Z")), "{v:?}");
}

#[test]
fn quiet_days_hold_sms_and_calls_not_emails() {
    let p = paris();
    let sunday_noon = utc("2026-01-18T11:00:00Z");
    assert_eq!(p.check(&email(&[], None), sunday_noon), Verdict::Send);
    let sms = Message { action: ActionType::SendSms, ..email(&[], None) };
    let v = p.check(&sms, sunday_noon);
    assert_eq!(v, Verdict::Defer { until: utc("2026-01-19T08:00:00Z"), reason: "deferred: quiet day".into() });
    let call = Message { action: ActionType::ScheduleCall, ..email(&[], None) };
    assert!(matches!(p.check(&call, sunday_noon), Verdict::Defer { .. }));
    // Webhooks and internal actions are not messages.
    let hook = Message { action: ActionType::TriggerWebhook, ..email(&[], None) };
    assert_eq!(p.check(&hook, sunday_noon), Verdict::Send);
}

#[test]
fn a_third_email_in_seven_days_waits_or_is_skipped() {
    let p = paris();
    let now = utc("2026-01-14T11:00:00Z");
    let sent = [now - Duration::days(6), now - Duration::days(1)];
    let v = p.check(&email(&sent, None), now);
    let reason = "deferred: cap: email 2/7d".to_owned();
    assert_eq!(v, Verdict::Defer { until: now + Duration::days(1), reason }, "when the oldest leaves the window");
    let skip = Message { on_cap: OnCap::Skip, ..email(&sent, None) };
    assert_eq!(p.check(&skip, now), Verdict::Skip { reason: "cap: email 2/7d".into() });
    // One send in the window: the second goes.
    assert_eq!(p.check(&email(&sent[1..], None), now), Verdict::Send);
    // Transactional: through caps and quiet hours alike.
    let thank_you = Message { transactional: true, ..email(&sent, None) };
    assert_eq!(p.check(&thank_you, now), Verdict::Send);
    assert_eq!(p.check(&thank_you, utc("2026-01-14T22:00:00Z")), Verdict::Send);
}

#[test]
fn an_invalid_contact_timezone_uses_the_default_and_says_so() {
    let v = paris().check(&email(&[], Some("Mars/Olympus")), utc("2026-01-14T20:00:00Z"));
    let Verdict::Defer { until, reason } = v else { panic!("{v:?}") };
    assert_eq!(until, utc("2026-01-15T08:00:00Z"));
    assert_eq!(reason, "deferred: quiet hours (invalid timezone \"Mars/Olympus\"; used Europe/Paris)");
}

#[test]
fn settings_are_checked() {
    let bad = |spec: PressureSpec| Pressure::parse(&spec).unwrap_err();
    assert!(bad(PressureSpec { timezone: Some("Paris".into()), ..PressureSpec::default() }).starts_with("timezone"));
    let q = |s: &str, e: &str| Some(QuietHoursSpec { start: s.into(), end: e.into() });
    assert!(bad(PressureSpec { quiet_hours: q("25:00", "09:00"), ..PressureSpec::default() }).contains("start"));
    assert!(
        bad(PressureSpec { quiet_days: vec!["dimanche".into()], ..PressureSpec::default() }).contains("quiet_days")
    );
    let zero = vec![CapSpec { channel: Channel::Email, max: 0, per_days: 7 }];
    assert!(bad(PressureSpec { cap: zero, ..PressureSpec::default() }).contains("cap[0]"));
    assert!(Pressure::parse(&PressureSpec::default()).unwrap().is_off());
}

#[test]
fn the_last_slot_goes_to_the_message_ahead() {
    let p = paris();
    let now = utc("2026-01-14T11:00:00Z");
    let sent = [utc("2026-01-12T10:00:00Z")];
    // One slot left and one message ahead: this one waits a minute, then is checked again.
    let v = p.check(&Message { ahead: 1, ..email(&sent, None) }, now);
    assert_eq!(
        v,
        Verdict::Defer {
            until: now + YIELD,
            reason: "deferred: cap: email 2/7d, the last slot goes to a higher-priority message".into()
        }
    );
    // Two slots left: both go.
    assert_eq!(p.check(&Message { ahead: 1, ..email(&[], None) }, now), Verdict::Send);
    // A transactional message does not compete.
    assert_eq!(p.check(&Message { ahead: 5, transactional: true, ..email(&sent, None) }, now), Verdict::Send);
}

#[test]
fn a_rule_over_its_daily_budget_waits_for_the_next_morning() {
    let p = paris();
    // Wednesday 14:00 Paris; 200 sent today: Thursday 09:00 Paris (08:00 UTC).
    let now = utc("2026-01-14T13:00:00Z");
    let v = p.check(&Message { budget: Some((200, 200)), ..email(&[], None) }, now);
    assert_eq!(
        v,
        Verdict::Defer { until: utc("2026-01-15T08:00:00Z"), reason: "deferred: budget: 200/day for the rule".into() }
    );
    assert_eq!(p.check(&Message { budget: Some((200, 199)), ..email(&[], None) }, now), Verdict::Send);
    // The budget binds transactional messages too.
    let v = p.check(&Message { budget: Some((1, 1)), transactional: true, ..email(&[], None) }, now);
    assert!(matches!(v, Verdict::Defer { .. }), "{v:?}");
    // The day starts at midnight in Paris: 23:30 UTC on the 13th is already the 14th there.
    assert_eq!(p.day_start(now), utc("2026-01-13T23:00:00Z"));
    // Without quiet hours, the next morning is 09:00.
    let plain = Pressure::parse(&PressureSpec::default()).unwrap();
    let v = plain.check(&Message { budget: Some((1, 1)), ..email(&[], None) }, now);
    assert!(matches!(v, Verdict::Defer { until, .. } if until == utc("2026-01-15T08:00:00Z")), "{v:?}");
}

#[test]
fn usage_shows_how_full_each_cap_is() {
    let p = paris();
    let now = utc("2026-01-14T11:00:00Z");
    let sent = [
        (Channel::Email, utc("2026-01-06T10:00:00Z")), // left the window
        (Channel::Email, utc("2026-01-10T10:00:00Z")),
        (Channel::Email, utc("2026-01-12T10:00:00Z")),
        (Channel::Sms, utc("2026-01-13T10:00:00Z")),
    ];
    let u = p.usage(&sent, now);
    assert_eq!(u.len(), 2);
    assert_eq!((u[0].channel, u[0].used, u[0].max), (Channel::Email, 2, 2));
    assert_eq!(u[0].frees_at, Some(utc("2026-01-17T10:00:00Z")), "when the older of the two leaves");
    assert_eq!((u[1].channel, u[1].used, u[1].frees_at), (Channel::Sms, 1, Some(utc("2026-01-20T10:00:00Z"))));
    assert!(p.usage(&[], now).iter().all(|c| c.used == 0 && c.frees_at.is_none()));
}
