//! `relance simulate`: events from a file through the rules (on the planner's store in
//! memory), or the stored history through a candidate rule set (a backtest).

use super::*;

pub(super) async fn backtest(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let candidate = load_rules(args.rules.as_deref())?;
    let since = args.since.as_deref().map(since_flag).transpose()?;
    if !args.database_url.starts_with("postgres") {
        let path = crate::store::sqlite::path_from_url(&args.database_url)?;
        anyhow::ensure!(path.exists(), "no database at {}", path.display());
    }
    let settings = Settings { database_url: args.database_url.clone(), ..Settings::default() };
    let live = crate::live_rules::LiveRules::new(RuleSet::defaults());
    let store = open_store(&settings, live.clone(), system_clock()).await?;
    if let Some(active) = store.active_rule_set().await.map_err(|e| anyhow::anyhow!("{e}"))? {
        let rules =
            RuleSet::parse(&active.body, RuleFormat::Json).map_err(|e| anyhow::anyhow!("stored rules: {}", e[0]))?;
        live.swap(rules, active.version, active.activated_seq);
    }
    let started = std::time::Instant::now();
    let report = crate::ops::backtest::against_history(
        &*store,
        &live.current().engine,
        candidate,
        crate::ops::backtest::Replay {
            since,
            max_examples: 10,
            now: Utc::now(),
            pressure: &settings.dispatch.pressure,
            sync: Default::default(),
        },
    )
    .await;
    store.shutdown().await;
    let report = report.map_err(|e| anyhow::anyhow!("{e}"))?;
    if args.json {
        out!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(ExitCode::SUCCESS);
    }
    out!(
        "{} events, {} contacts, in {:.1} s (live = rule-set version {})",
        report.events,
        report.contacts,
        started.elapsed().as_secs_f64(),
        live.version()
    );
    out!(
        "contacts ending differently: {} (score {}, segment {}, tags {})",
        report.contacts_ending_differently,
        report.score_differs,
        report.segment_differs,
        report.tags_differ
    );
    out!(
        "emails: live {}, candidate {} ({} no longer sent, {} newly sent)",
        report.live.emails,
        report.candidate.emails,
        report.emails_no_longer_sent,
        report.emails_newly_sent
    );
    if let (Some(live), Some(cand)) = (&report.live.pressure, &report.candidate.pressure)
        && (live.deferred + live.skipped + cand.deferred + cand.skipped) > 0
    {
        out!(
            "contact pressure: live {} deferred, {} skipped; candidate {} deferred, {} skipped",
            live.deferred,
            live.skipped,
            cand.deferred,
            cand.skipped
        );
        for (reason, n) in &cand.by_reason {
            out!("  candidate {reason}: {n}");
        }
    }
    for d in &report.score_distributions {
        let row = |counts: &[u64]| counts.iter().map(u64::to_string).collect::<Vec<_>>().join(" ");
        out!(
            "score {} (buckets from {}): live [{}] candidate [{}]",
            d.name,
            d.bucket_starts.iter().map(i64::to_string).collect::<Vec<_>>().join(", "),
            row(&d.live),
            row(&d.candidate)
        );
    }
    let rules: std::collections::BTreeSet<&String> =
        report.live.actions.keys().chain(report.candidate.actions.keys()).collect();
    for rule in rules {
        let count =
            |s: &relance_core::backtest::ReplayStats| s.actions.get(rule).map(|m| m.values().sum::<u64>()).unwrap_or(0);
        out!("  {rule}: {} → {} actions", count(&report.live), count(&report.candidate));
    }
    for e in &report.examples {
        out!(
            "  contact {}: score {} → {}, tags {:?} → {:?}",
            e.contact_id,
            e.live.score,
            e.candidate.score,
            e.live.tags,
            e.candidate.tags
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub(super) fn simulate(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let Some(events_path) = args.events.clone() else {
        bail!("--events FILE.ndjson is needed (or --against-history)");
    };
    let engine = Engine::new(load_rules(args.rules.as_deref())?);
    // The same planner as the server, on a store in memory.
    let mut store = MemoryStore::default();
    let rules =
        MemoryRules { engine: &engine, rule_version: 0, default_segment: relance_core::contact::DEFAULT_SEGMENT };
    let received_at = Utc::now();
    if let Some(path) = &args.contacts {
        for (n, line) in read_lines(path)? {
            let c: Contact =
                serde_json::from_str(&line).with_context(|| format!("{}:{n}: not a contact", path.display()))?;
            store.add_contact(c, received_at);
        }
    }
    let mut report = Vec::new();
    for (n, line) in read_lines(&events_path)? {
        let value: Value =
            serde_json::from_str(&line).with_context(|| format!("{}:{n}: invalid JSON", events_path.display()))?;
        let inbound = match value.get("source").and_then(Value::as_str) {
            Some("brevo") => parse_brevo(&value, received_at, BrevoOptions::default()),
            Some("tracking") => parse_behavior(&value, received_at),
            _ => bail!("{}:{n}: \"source\" must be \"brevo\" or \"tracking\"", events_path.display()),
        }
        .map_err(|e| {
            let accepted =
                if e.accepted.is_empty() { String::new() } else { format!(" (accepted: {})", e.accepted.join(", ")) };
            anyhow::anyhow!("{}:{n}: {e}{accepted}", events_path.display())
        })?;
        // The event's own time is "now": a simulation gives the same answer every run.
        let plan = store
            .ingest(&rules, std::slice::from_ref(&inbound), inbound.event.occurred_at)
            .map_err(|e| anyhow::anyhow!("{}:{n}: {e}", events_path.display()))?;
        let answer = plan.answers.into_iter().next().unwrap_or_default();
        let changes: Vec<_> = plan.history.into_iter().map(|h| h.change).collect();
        let warnings: Vec<_> = plan.warnings.into_iter().map(|(_, w)| w).collect();
        let actions: Vec<_> = answer.actions.into_iter().map(|a| a.fired).collect();
        report.push(json!({
            "line": n,
            "event": inbound.event.name,
            "trigger": inbound.event.trigger,
            "contact": inbound.identity,
            "score": answer.contact.score,
            "actions": actions,
            "changes": changes,
            "warnings": warnings,
        }));
    }
    let mut out = std::io::stdout().lock();
    if args.json {
        serde_json::to_writer_pretty(&mut out, &json!({"events": report, "contacts": store.all_contacts()}))?;
        writeln!(out)?;
        return Ok(ExitCode::SUCCESS);
    }
    for r in &report {
        let who = r["contact"]["email"].as_str().or(r["contact"]["client_code"].as_str()).unwrap_or("?");
        writeln!(
            out,
            "line {} {} ({}) → {}: score {}",
            r["line"],
            r["event"].as_str().unwrap_or(""),
            r["trigger"].as_str().unwrap_or("no trigger"),
            who,
            r["score"]
        )?;
        for a in r["actions"].as_array().into_iter().flatten() {
            let due = a["due_at"].as_str().map(|d| format!(" due {d}")).unwrap_or_default();
            writeln!(
                out,
                "    {} {} {} {}{}",
                a["rule_id"].as_str().unwrap_or(""),
                a["action_type"].as_str().unwrap_or(""),
                a["status"].as_str().unwrap_or(""),
                a["config"],
                due
            )?;
        }
        for w in r["warnings"].as_array().into_iter().flatten() {
            writeln!(out, "    warning: {}", w.as_str().unwrap_or(""))?;
        }
    }
    writeln!(out, "\ncontacts:")?;
    for c in store.all_contacts() {
        let who = c
            .email
            .as_ref()
            .map(ToString::to_string)
            .or(c.client_code.as_ref().map(ToString::to_string))
            .unwrap_or_default();
        let tags: Vec<&str> = c.tags.iter().map(String::as_str).collect();
        writeln!(
            out,
            "  {who}: segment {}, score {}, tags [{}]{}",
            c.segment,
            c.score,
            tags.join(", "),
            if c.unsubscribed { ", unsubscribed" } else { "" }
        )?;
    }
    Ok(ExitCode::SUCCESS)
}
