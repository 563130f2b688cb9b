//! The offline CLI, run as a user would.

use std::process::{Command, Output};

fn relance(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_relance")).args(args).output().expect("relance runs")
}

fn fixture(path: &str) -> String {
    format!("{}/../../fixtures/{path}", env!("CARGO_MANIFEST_DIR"))
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn score_prints_the_formula_and_refuses_bad_input() {
    let o = relance(&["score", "--rfm", "3.5", "--engagement", "5", "--purchases", "3", "--days-since-purchase", "10"]);
    assert!(o.status.success());
    assert_eq!(stdout(&o).trim(), "100");
    let o = relance(&["score", "--rfm", "2", "--purchases", "1", "--days-since-purchase", "100", "--json"]);
    let b: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!((b["rfm"].as_i64(), b["recency_penalty"].as_i64(), b["score"].as_i64()), (Some(20), Some(15), Some(60)));
    // The seed's calculator's names.
    let o = relance(&[
        "score",
        "--rfm-score",
        "3.5",
        "--engagement-events",
        "5",
        "--purchases",
        "3",
        "--days-since-purchase",
        "10",
    ]);
    assert_eq!(stdout(&o).trim(), "100");
    let o = relance(&["score", "--rfm", "5"]);
    assert!(!o.status.success());
    assert!(String::from_utf8_lossy(&o.stderr).contains("rfm must be a number between 0 and 4"));
    let o = relance(&["score", "--rfm", "1", "--purchases", "-2"]);
    assert!(String::from_utf8_lossy(&o.stderr).contains("purchases must be a whole number ≥ 0"));
}

#[test]
fn rules_export_and_validate() {
    let dir = tempfile::tempdir().unwrap();
    let json = relance(&["rules", "export"]);
    assert!(json.status.success());
    let rules: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    assert_eq!(rules.as_array().unwrap().len(), 6);
    let toml_out = relance(&["rules", "export", "--format", "toml"]);
    let toml_path = dir.path().join("rules.toml");
    std::fs::write(&toml_path, &toml_out.stdout).unwrap();
    let ok = relance(&["rules", "validate", toml_path.to_str().unwrap()]);
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stderr));
    assert!(stdout(&ok).contains("6 rule(s), valid"));

    // The rules reference's example file stays valid.
    let example =
        relance(&["rules", "validate", &format!("{}/../../docs/examples/rules.toml", env!("CARGO_MANIFEST_DIR"))]);
    assert!(example.status.success(), "{}", String::from_utf8_lossy(&example.stderr));

    let bad = dir.path().join("bad.json");
    std::fs::write(
        &bad,
        r#"[{"rule_id": "x", "trigger": "opened", "priority": 500, "actions": [{"action_type": "update_score"}]}]"#,
    )
    .unwrap();
    let o = relance(&["rules", "validate", bad.to_str().unwrap()]);
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(err.contains("trigger: unknown trigger \"opened\""), "{err}");
    assert!(err.contains("priority: 500 is outside 1..100"), "{err}");
}

#[test]
fn simulate_runs_the_seed_scenario_in_memory() {
    let o = relance(&[
        "simulate",
        "--events",
        &fixture("simulate/events.ndjson"),
        "--contacts",
        &fixture("simulate/contacts.ndjson"),
        "--json",
    ]);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let r: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let scores: Vec<i64> = r["events"].as_array().unwrap().iter().map(|e| e["score"].as_i64().unwrap()).collect();
    assert_eq!(scores, [55, 70, 100, 0]);
    let purchase = &r["events"][2]["actions"];
    assert!(purchase.as_array().unwrap().iter().any(|a| a["rule_id"] == "rule_high_score"));
    assert_eq!(r["contacts"].as_array().unwrap().len(), 2, "the given VIP contact and the scenario's");
    let text = relance(&["simulate", "--events", &fixture("simulate/events.ndjson")]);
    let out = stdout(&text);
    assert!(out.contains("rule_purchase send_email scheduled"), "{out}");
    assert!(
        out.contains("client@example.com: segment Standard, score 0, tags [engaged, unsubscribed], unsubscribed"),
        "{out}"
    );
}

#[test]
fn events_export_writes_the_seed_log_fields() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}", dir.path().join("x.db").display());
    assert!(relance(&["migrate", "--database", &db]).status.success());
    let o = relance(&["events", "export", "--database", &db, "--format", "ndjson"]);
    assert!(o.status.success());
    assert!(o.stdout.is_empty());
    let missing = relance(&["events", "export", "--database", "sqlite:///nonexistent/dir/x.db"]);
    assert!(!missing.status.success());
}
