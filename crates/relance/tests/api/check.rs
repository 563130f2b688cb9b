//! `relance check`: the configuration read as `serve` reads it, every problem reported
//! with what to do, exit 1 on any (the package's unit runs it before `serve`).

use std::path::Path;
use std::process::Command;

fn check(dir: &Path, env: &[(&str, &str)]) -> (bool, String) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_relance"));
    cmd.arg("check").current_dir(dir).env("RELANCE_LOG", "warn");
    for (k, _) in std::env::vars().filter(|(k, _)| k.starts_with("RELANCE_")) {
        cmd.env_remove(k);
    }
    cmd.envs(env.iter().copied());
    let out = cmd.output().unwrap();
    (out.status.success(), format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr)))
}

fn problems(text: &str) -> Vec<&str> {
    text.lines().filter(|l| l.starts_with("PROBLEM")).collect()
}

#[test]
fn a_sound_configuration_passes_and_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/data/relance.db", dir.path().display());
    let (ok, text) = check(dir.path(), &[("RELANCE_DATABASE_URL", &db), ("RELANCE_BIND", "127.0.0.1:0")]);
    assert!(ok, "{text}");
    assert!(problems(&text).is_empty(), "{text}");
    assert!(text.contains("will be created"), "{text}");
    assert!(!dir.path().join("data").exists(), "check writes nothing");
}

#[test]
fn every_problem_is_reported_with_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("relance.toml"), "bind = \"0.0.0.0:0\"\nrules = \"rules.toml\"\n").unwrap();
    std::fs::write(
        dir.path().join("rules.toml"),
        "[[rule]]\nrule_id = \"promo\"\ntrigger = \"purchase\"\npriority = 10\n[[rule.actions]]\n\
         action_type = \"send_email\"\nconfig = { template = \"autumn_promo\" }\n",
    )
    .unwrap();
    std::fs::write(dir.path().join("not-a-folder"), "").unwrap();
    let db = format!("sqlite://{}/not-a-folder/relance.db", dir.path().display());
    let (ok, text) = check(
        dir.path(),
        &[
            ("RELANCE_DATABASE_URL", &db),
            ("RELANCE_WEBHOOK_SIGNING_SECRET", "not-a-secret"),
            ("RELANCE_DISPATCH__CONCURENCY", "4"),
        ],
    );
    assert!(!ok, "{text}");
    let p = problems(&text);
    assert_eq!(p.len(), 5, "{text}");
    assert!(p[0].contains("RELANCE_DISPATCH__CONCURENCY names no setting"), "{text}");
    assert!(p[1].contains("set RELANCE_WEBHOOK_TOKEN and RELANCE_ADMIN_TOKEN"), "{text}");
    assert!(p[2].contains("whsec_"), "{text}");
    assert!(p[3].contains("not-a-folder is not a folder"), "{text}");
    assert!(p[4].contains("\"autumn_promo\" (promo)") && p[4].contains("[brevo.templates]"), "{text}");
    assert!(text.contains("5 problem(s)"), "{text}");
}

#[test]
fn unknown_keys_unreachable_and_newer_databases_are_problems() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("relance.toml"), "[retention]\nraw_payloads_days = 30\n").unwrap();
    let (ok, text) = check(dir.path(), &[]);
    assert!(!ok && text.contains("raw_payloads_days"), "{text}");
    std::fs::remove_file(dir.path().join("relance.toml")).unwrap();

    let (ok, text) = check(dir.path(), &[("RELANCE_DATABASE_URL", "postgres://relance@127.0.0.1:1/relance")]);
    assert!(!ok && text.contains("cannot reach PostgreSQL at 127.0.0.1:1"), "{text}");

    let file = dir.path().join("newer.db");
    let conn = rusqlite::Connection::open(&file).unwrap();
    conn.pragma_update(None, "user_version", 999).unwrap();
    drop(conn);
    let url = format!("sqlite://{}", file.display());
    let (ok, text) = check(dir.path(), &[("RELANCE_DATABASE_URL", &url), ("RELANCE_BIND", "127.0.0.1:0")]);
    assert!(!ok && text.contains("schema 999") && text.contains("newer relance"), "{text}");
}

#[test]
fn a_brevo_mapping_must_read_declared_scores() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("relance.toml"),
        "rules = \"rules.toml\"\n[brevo]\napi_key = \"xkeysib-1\"\n[brevo.sync]\n\
         attributes = { LEAD_SCORE = \"score\", ENGAGEMENT = \"scores.engagment\" }\n",
    )
    .unwrap();
    std::fs::write(
        dir.path().join("rules.toml"),
        "[[score]]\nname = \"engagement\"\n\n[[rule]]\nrule_id = \"o\"\ntrigger = \"email_opened\"\npriority = 10\n\
         [[rule.actions]]\naction_type = \"update_score\"\nconfig = { score = \"engagement\", score_delta = 1 }\n",
    )
    .unwrap();
    let db = format!("sqlite://{}/relance.db", dir.path().display());
    let (ok, text) = check(dir.path(), &[("RELANCE_DATABASE_URL", &db)]);
    assert!(!ok, "{text}");
    let found = problems(&text);
    assert_eq!(found.len(), 1, "{text}");
    assert!(found[0].contains("ENGAGEMENT = \"scores.engagment\""), "{text}");
}
