//! People and keys: every route against every role (the walker), keys revoked at once
//! on every instance, disabled users signed out, sign-in throttling, and the audit log
//! with the right actor for each kind of change. On SQLite and on PostgreSQL (where the
//! "other instance" is a second server on the same database).

use std::collections::BTreeSet;

use crate::common::*;
use chrono::Duration;
use relance::access::{Need, Role};
use reqwest::StatusCode;
use reqwest::header::{COOKIE, LOCATION, SET_COOKIE};
use serde_json::{Value, json};

fn no_redirects() -> reqwest::Client {
    reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
}

/// A second server on the same database (PostgreSQL), or the same one (SQLite: one
/// server per file).
async fn other_instance(app: &TestApp, tweak: fn(&mut relance::config::Settings)) -> Option<TestApp> {
    if !on_postgres() {
        return None;
    }
    Some(spawn_on(app.db().shared(), app.now(), tweak).await)
}

/// Creates an API key through the API with the admin token; answers the key.
async fn create_key(app: &TestApp, name: &str, role: &str) -> String {
    let resp = call(app, "POST", "/api/keys", Some(ADMIN_TOKEN), Some(&json!({"name": name, "role": role}))).await;
    assert_eq!(resp.status(), StatusCode::CREATED);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["role"], role);
    assert!(body["key"].as_str().unwrap().starts_with(body["prefix"].as_str().unwrap()));
    body["key"].as_str().unwrap().to_owned()
}

async fn add_user(app: &TestApp, name: &str, role: &str, password: &str) {
    let body = json!({"name": name, "role": role, "password": password});
    let resp = call(app, "POST", "/api/users", Some(ADMIN_TOKEN), Some(&body)).await;
    assert_eq!(resp.status(), StatusCode::CREATED, "{}", resp.text().await.unwrap());
}

/// Signs in by name and password; the `Cookie` value, or the refusal's status.
async fn sign_in(app: &TestApp, name: &str, password: &str) -> Result<String, StatusCode> {
    let resp = no_redirects()
        .post(format!("{}/ui/login", app.base))
        .form(&[("name", name), ("password", password), ("next", "/")])
        .send()
        .await
        .unwrap();
    if resp.status() != StatusCode::SEE_OTHER {
        return Err(resp.status());
    }
    let set = resp.headers()[SET_COOKIE].to_str().unwrap().to_owned();
    assert!(set.contains("HttpOnly") && set.contains("SameSite=Strict"), "{set}");
    Ok(set.split(';').next().unwrap().to_owned())
}

async fn page(app: &TestApp, cookie: &str, path: &str) -> reqwest::Response {
    no_redirects().get(format!("{}{path}", app.base)).header(COOKIE, cookie).send().await.unwrap()
}

async fn csrf_of(app: &TestApp, cookie: &str) -> String {
    let html = page(app, cookie, "/").await.text().await.unwrap();
    html.split("data-csrf=\"").nth(1).and_then(|s| s.split('"').next()).unwrap().to_owned()
}

async fn audit(app: &TestApp, query: &str) -> Vec<Value> {
    let resp = call(app, "GET", &format!("/api/audit?{query}"), Some(ADMIN_TOKEN), None).await;
    assert_eq!(resp.status(), 200);
    resp.json::<Vec<Value>>().await.unwrap()
}

/// A template path with values that touch nothing (no such contact, job, rule, user).
fn fill(path: &str) -> String {
    path.replace("{key}", "nobody@exemple.fr")
        .replace("{id}", "no-such-job")
        .replace("{version}", "999")
        .replace("{rule_id}", "no_such_rule")
        .replace("{name}", "nobody")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_route_answers_each_role_as_its_table_says() {
    let app = spawn_with(with_tokens).await;

    // The table and the router agree: every documented operation has its row, every row
    // its operation, and the role is in the description (so in the connector too).
    let doc = app.get_json("/openapi.json").await;
    let mut documented = BTreeSet::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            documented.insert((method.to_uppercase(), path.clone()));
            let d = op["description"].as_str().unwrap_or("");
            assert!(d.contains("Role: "), "{method} {path}: no role in {d:?}");
        }
    }
    let table: BTreeSet<_> =
        relance::api::ROUTE_ROLES.iter().map(|r| (r.method.to_owned(), r.path.to_owned())).collect();
    assert_eq!(documented, table, "ROUTE_ROLES and the router differ");
    let connector = app.get_json("/connector/swagger.json").await;
    let put_rules = connector["paths"]["/api/rules"]["put"]["description"].as_str().unwrap();
    assert!(put_rules.contains("Role: `editor`"), "{put_rules}");

    let keys = [
        (Role::Viewer, create_key(&app, "reporting", "viewer").await),
        (Role::Editor, create_key(&app, "power-automate", "editor").await),
        (Role::Admin, create_key(&app, "ops", "admin").await),
        (Role::Ingest, create_key(&app, "website", "ingest").await),
    ];
    for route in relance::api::ROUTE_ROLES {
        let path = fill(route.path);
        let body = (route.method != "GET").then(|| json!({}));
        for (role, key) in &keys {
            let resp = call(&app, route.method, &path, Some(key), body.as_ref()).await;
            let status = resp.status();
            let text = resp.text().await.unwrap();
            if role.satisfies(route.need) {
                assert!(status != 401 && status != 403, "{role} on {} {}: {status} {text}", route.method, route.path);
            } else {
                assert_eq!(status, 403, "{role} on {} {}: {text}", route.method, route.path);
                assert!(text.contains("role_too_low") && text.contains(route.need.describe()), "{text}");
            }
        }
        let anonymous = call(&app, route.method, &path, None, body.as_ref()).await.status();
        let admin = call(&app, route.method, &path, Some(ADMIN_TOKEN), body.as_ref()).await.status();
        if route.need == Need::Public {
            assert!(anonymous.is_success(), "{} {}: {anonymous}", route.method, route.path);
        } else {
            assert_eq!(anonymous, 401, "{} {} without credentials", route.method, route.path);
            assert!(admin != 401 && admin != 403, "the admin token on {} {}: {admin}", route.method, route.path);
        }
    }
    // The webhook token still opens only the webhooks (as before keys existed).
    let wrong = call(&app, "GET", "/api/contacts", Some(WEBHOOK_TOKEN), None).await;
    assert_eq!(wrong.status(), 401);
    assert!(wrong.text().await.unwrap().contains("webhook token"));
    // A refused change by a known key is in the audit log; a refused read is not.
    let refused = audit(&app, "actor=reporting").await;
    assert!(!refused.is_empty() && refused.iter().all(|r| r["outcome"].as_str().unwrap().starts_with("refused")));
    assert!(refused.iter().all(|r| r["route"].as_str().unwrap().split(' ').next() != Some("GET")));

    // The dashboard's routes, with a viewer's and an editor's session.
    add_user(&app, "vera", "viewer", "vera-password-1").await;
    add_user(&app, "eddy", "editor", "eddy-password-1").await;
    for (name, password, role) in [("vera", "vera-password-1", Role::Viewer), ("eddy", "eddy-password-1", Role::Editor)]
    {
        let cookie = sign_in(&app, name, password).await.unwrap();
        let csrf = csrf_of(&app, &cookie).await;
        for route in relance::ui::UI_ROUTE_ROLES.iter().filter(|r| r.path != "/ui/logout") {
            let url = format!("{}{}", app.base, fill(route.path));
            let req = match route.method {
                "GET" => no_redirects().get(url),
                _ => no_redirects().post(url).form(&[("csrf", csrf.as_str()), ("name", "x"), ("role", "viewer")]),
            };
            let status = req.header(COOKIE, &cookie).send().await.unwrap().status();
            if role.satisfies(route.need) {
                assert!(status != 401 && status != 403, "{role} on {} {}: {status}", route.method, route.path);
            } else {
                assert_eq!(status, 403, "{role} on {} {}", route.method, route.path);
            }
        }
    }
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revoked_key_is_refused_at_once_on_every_instance() {
    let a = spawn_with(with_tokens).await;
    let b = other_instance(&a, with_tokens).await;
    let other = b.as_ref().unwrap_or(&a);
    let key = create_key(&a, "power-automate", "editor").await;
    assert_eq!(call(other, "GET", "/api/contacts", Some(&key), None).await.status(), 200);
    let listed = call(&a, "GET", "/api/keys", Some(ADMIN_TOKEN), None).await.json::<Value>().await.unwrap();
    let row = listed.as_array().unwrap().iter().find(|k| k["name"] == "power-automate").unwrap().clone();
    assert!(row["last_used_at"].is_string(), "the use is recorded: {row}");
    assert!(!listed.to_string().contains(&key[12..]), "a listing never shows the key");

    let revoked = call(&a, "DELETE", "/api/keys/power-automate", Some(ADMIN_TOKEN), None).await;
    assert_eq!(revoked.status(), 200);
    let refused = call(other, "GET", "/api/contacts", Some(&key), None).await;
    assert_eq!(refused.status(), 401, "revoked: refused on the next request");
    assert_eq!(call(&a, "DELETE", "/api/keys/power-automate", Some(ADMIN_TOKEN), None).await.status(), 404);
    // The name is not reused: the audit log keeps meaning one key.
    let body = json!({"name": "power-automate", "role": "viewer"});
    let again = call(&a, "POST", "/api/keys", Some(ADMIN_TOKEN), Some(&body)).await;
    assert_eq!(again.status(), 409);
    let bad_role = call(&a, "POST", "/api/keys", Some(ADMIN_TOKEN), Some(&json!({"name": "x", "role": "owner"}))).await;
    assert_eq!(bad_role.status(), 400);
    assert!(bad_role.text().await.unwrap().contains("viewer, editor, admin or ingest"));

    let entries = audit(&a, "kind=keys").await;
    let actions: Vec<(&str, &str, &str)> = entries
        .iter()
        .map(|e| (e["action"].as_str().unwrap(), e["actor"].as_str().unwrap(), e["outcome"].as_str().unwrap()))
        .collect();
    assert!(actions.contains(&("create", "admin-token", "ok")), "{actions:?}");
    assert!(actions.contains(&("revoke", "admin-token", "ok")), "{actions:?}");
    assert!(actions.iter().any(|(a, _, o)| *a == "revoke" && o.starts_with("refused")), "{actions:?}");
    assert!(!serde_json::to_string(&entries).unwrap().contains(&key), "no key in the audit log");
    if let Some(b) = b {
        b.stop().await;
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabling_a_user_or_signing_out_ends_their_sessions_everywhere() {
    let a = spawn_with(with_tokens).await;
    let b = other_instance(&a, with_tokens).await;
    let other = b.as_ref().unwrap_or(&a);
    add_user(&a, "marie", "editor", "marie-password-1").await;
    let cookie = sign_in(other, "marie", "marie-password-1").await.unwrap();
    assert_eq!(page(&a, &cookie, "/").await.status(), 200, "a session opened on one instance holds on the other");
    let html = page(&a, &cookie, "/ui/rules").await.text().await.unwrap();
    assert!(html.contains("marie · editor"), "the page says who is signed in");

    let off = call(&a, "POST", "/api/users/marie/disable", Some(ADMIN_TOKEN), None).await;
    assert_eq!(off.json::<Value>().await.unwrap()["sessions_ended"], 1);
    let gone = page(other, &cookie, "/").await;
    assert_eq!(gone.status(), StatusCode::SEE_OTHER);
    assert!(gone.headers()[LOCATION].to_str().unwrap().starts_with("/ui/login"));
    assert_eq!(sign_in(&a, "marie", "marie-password-1").await, Err(StatusCode::UNAUTHORIZED));

    call(&a, "POST", "/api/users/marie/enable", Some(ADMIN_TOKEN), None).await;
    let cookie = sign_in(&a, "marie", "marie-password-1").await.unwrap();
    let csrf = csrf_of(&a, &cookie).await;
    let out = no_redirects()
        .post(format!("{}/ui/logout", a.base))
        .header(COOKIE, &cookie)
        .form(&[("csrf", csrf.as_str())])
        .send()
        .await
        .unwrap();
    assert_eq!(out.status(), StatusCode::SEE_OTHER);
    assert_eq!(page(other, &cookie, "/").await.status(), StatusCode::SEE_OTHER, "signed out everywhere");

    let sessions = audit(&a, "kind=sessions&actor=marie").await;
    let actions: Vec<&str> = sessions.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(actions, ["sign_out", "sign_in", "sign_in", "sign_in"], "{sessions:#?}");
    assert!(sessions[2]["outcome"].as_str().unwrap().starts_with("refused"), "the disabled attempt");
    if let Some(b) = b {
        b.stop().await;
    }
    a.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_sign_ins_lock_the_name_then_the_address() {
    let app = spawn_with(with_tokens).await;
    add_user(&app, "paul", "viewer", "paul-password-1").await;
    for _ in 0..4 {
        assert_eq!(sign_in(&app, "paul", "guess").await, Err(StatusCode::UNAUTHORIZED));
    }
    // The fifth failure locks: the answer says so (429 with Retry-After).
    assert_eq!(sign_in(&app, "paul", "guess").await, Err(StatusCode::TOO_MANY_REQUESTS));
    // Locked now, even with the right password: on every instance (stored), for 30 s.
    assert_eq!(sign_in(&app, "paul", "paul-password-1").await, Err(StatusCode::TOO_MANY_REQUESTS));
    let users = call(&app, "GET", "/api/users", Some(ADMIN_TOKEN), None).await.json::<Value>().await.unwrap();
    assert_eq!(users[0]["failed_sign_ins"], 5);
    assert!(users[0]["locked_until"].is_string());
    assert!(users[0].get("password_hash").is_none(), "never answered");
    app.advance(Duration::seconds(31));
    assert!(sign_in(&app, "paul", "paul-password-1").await.is_ok(), "the lock ends; success clears the count");

    // Guessing names from one address locks the address, whatever the name.
    for n in 0..4 {
        assert_eq!(sign_in(&app, &format!("nobody{n}"), "guess").await, Err(StatusCode::UNAUTHORIZED));
    }
    assert_eq!(sign_in(&app, "nobody4", "guess").await, Err(StatusCode::TOO_MANY_REQUESTS));
    assert_eq!(sign_in(&app, "paul", "paul-password-1").await, Err(StatusCode::TOO_MANY_REQUESTS));
    app.advance(Duration::seconds(31));
    assert!(sign_in(&app, "paul", "paul-password-1").await.is_ok());

    let entries = audit(&app, "kind=sessions").await;
    let refused = entries.iter().filter(|e| e["outcome"].as_str().unwrap().starts_with("refused")).count();
    assert_eq!(refused, 10, "each failure is recorded");
    let text = serde_json::to_string(&entries).unwrap();
    assert!(!text.contains("guess") && !text.contains("paul-password-1"), "no password in the audit log");
    app.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_kind_of_change_is_audited_with_its_actor() {
    use relance::config::ExecutorKind;
    use relance_core::ActionType;
    let app = spawn_with(|s| {
        with_tokens(s);
        s.dispatch.routes.insert(ActionType::ScheduleCall, ExecutorKind::External);
    })
    .await;
    let pa = create_key(&app, "power-automate", "editor").await;
    let site = create_key(&app, "website", "ingest").await;

    // An event from the website's key, a purchase that schedules a call for Power Automate.
    let event = json!({"client_code": "CL9", "email": "jeanne@exemple.fr", "action": "purchase",
                       "event_id": "e1", "metadata": {"amount": 120}});
    assert_eq!(call(&app, "POST", "/webhook/behavior", Some(&site), Some(&event)).await.status(), 200);
    app.advance(Duration::hours(3));
    let claimed = call(&app, "POST", "/api/actions/claim", Some(&pa), Some(&json!({"executor": "external"}))).await;
    let claimed: Value = claimed.json().await.unwrap();
    let job = claimed["actions"][0]["job_id"].as_str().expect("a call to schedule").to_owned();
    let done = call(&app, "POST", &format!("/api/actions/{job}/complete"), Some(&pa), Some(&json!({}))).await;
    assert_eq!(done.status(), 200);

    // Rules: a new version (one rule removed), a pause and a resume, a rollback.
    let rules: Value = call(&app, "GET", "/api/rules/export", Some(&pa), None).await.json().await.unwrap();
    let mut fewer = rules.as_array().unwrap().clone();
    let removed = fewer.pop().unwrap()["rule_id"].as_str().unwrap().to_owned();
    let put = app.client.put(format!("{}/api/rules", app.base)).bearer_auth(&pa).json(&fewer).send().await.unwrap();
    assert_eq!(put.status(), 200, "{}", put.text().await.unwrap());
    let first = fewer[0]["rule_id"].as_str().unwrap().to_owned();
    call(&app, "POST", &format!("/api/rules/{first}/pause"), Some(&pa), None).await;
    call(&app, "POST", &format!("/api/rules/{first}/resume"), Some(&pa), None).await;
    assert_eq!(call(&app, "POST", "/api/rules/versions/1/activate", Some(&pa), None).await.status(), 200);

    // Contacts: an edit by the editor key, an erasure by the admin token.
    let body = json!({"segment": "vip", "phone": "0612345678"});
    let edit = call(&app, "PUT", "/api/contacts/CL9", Some(&pa), Some(&body)).await;
    assert_eq!(edit.status(), 200);
    assert_eq!(call(&app, "DELETE", "/api/contacts/CL9", Some(ADMIN_TOKEN), None).await.status(), 200);

    let entries = audit(&app, "").await;
    let find = |kind: &str, action: &str| {
        entries
            .iter()
            .find(|e| e["kind"] == kind && e["action"] == action && e["outcome"] == "ok")
            .unwrap_or_else(|| panic!("no {kind}/{action} in {entries:#?}"))
            .clone()
    };
    let complete = find("actions", "complete");
    assert_eq!((complete["actor"].clone(), complete["actor_kind"].clone()), (json!("power-automate"), json!("key")));
    assert_eq!(complete["subject"], format!("job:{job}"));
    assert_eq!(complete["route"], "POST /api/actions/{id}/complete");
    assert_eq!(complete["ip"], "127.0.0.1");
    let put = find("rules", "put");
    assert_eq!(put["actor"], "power-automate");
    assert_eq!(put["subject"], "rule_set:v2");
    assert_eq!(put["detail"]["removed"], json!([removed]));
    assert_eq!(put["detail"]["from_version"], 1);
    assert_eq!(find("rules", "pause")["subject"], format!("rule:{first}"));
    assert_eq!(find("rules", "resume")["actor"], "power-automate");
    assert_eq!(find("rules", "activate")["subject"], "rule_set:v1");
    let edit = find("contacts", "put");
    assert_eq!(edit["summary"], "fields: phone, segment");
    let erase = find("contacts", "erase");
    assert_eq!(erase["actor"], "admin-token");
    assert_eq!(erase["subject"], edit["subject"], "named by internal id: {erase}");
    assert_eq!(find("keys", "create")["actor"], "admin-token");
    // Nothing personal, nothing secret: the erased contact's email, phone, the keys.
    let text = serde_json::to_string(&entries).unwrap();
    for secret in ["jeanne@exemple.fr", "0612345678", "CL9", pa.as_str(), site.as_str(), ADMIN_TOKEN] {
        assert!(!text.contains(secret), "{secret} in the audit log");
    }
    // Filters.
    assert!(audit(&app, "actor=power-automate").await.iter().all(|e| e["actor"] == "power-automate"));
    assert!(audit(&app, "kind=contacts").await.iter().all(|e| e["kind"] == "contacts"));
    let bad = call(&app, "GET", "/api/audit?kind=everything", Some(ADMIN_TOKEN), None).await;
    assert_eq!(bad.status(), 400);
    app.stop().await;
}

#[tokio::test]
async fn the_cli_manages_users_and_keys_and_is_audited() {
    let app = spawn_with(with_tokens).await;
    let url = app.db().url();
    let relance = env!("CARGO_BIN_EXE_relance");
    let run = |args: &[&str]| {
        let out = std::process::Command::new(relance)
            .args(args)
            .env("RELANCE_DATABASE_URL", &url)
            .stdin(std::process::Stdio::null())
            .output()
            .unwrap();
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    };
    // On SQLite the CLI writes beside the live server (WAL), as it is meant to be used.
    let (ok, out, err) = run(&["users", "add", "claire", "--role", "admin"]);
    assert!(ok, "{out}{err}");
    let password = out.lines().find_map(|l| l.strip_prefix("password (shown once): ")).unwrap().to_owned();
    assert!(sign_in(&app, "claire", &password).await.is_ok(), "a generated password works on the dashboard");
    let (ok, out, _) = run(&["keys", "create", "--name", "power-automate", "--role", "editor"]);
    assert!(ok);
    let key = out.lines().find_map(|l| l.strip_prefix("key (shown once): ")).unwrap().to_owned();
    assert_eq!(call(&app, "GET", "/api/rules", Some(&key), None).await.status(), 200);
    let (_, listed, _) = run(&["keys", "list"]);
    assert!(listed.contains("power-automate") && listed.contains("editor") && !listed.contains(&key));
    let (ok, _, err) = run(&["users", "add", "bob", "--role", "ingest"]);
    assert!(!ok && err.contains("ingest is for API keys"), "{err}");
    assert!(run(&["keys", "revoke", "power-automate"]).0);
    assert_eq!(call(&app, "GET", "/api/rules", Some(&key), None).await.status(), 401);
    assert!(run(&["users", "disable", "claire"]).0);
    assert_eq!(sign_in(&app, "claire", &password).await, Err(StatusCode::UNAUTHORIZED));
    let (_, users, _) = run(&["users", "list"]);
    assert!(users.contains("claire") && users.contains("disabled"), "{users}");

    let entries = audit(&app, "").await;
    let cli: Vec<&Value> = entries.iter().filter(|e| e["actor_kind"] == "cli").collect();
    assert!(cli.len() >= 4, "{entries:#?}");
    assert!(cli.iter().all(|e| e["actor"].as_str().unwrap().starts_with("cli:")));
    assert!(!serde_json::to_string(&entries).unwrap().contains(&password));
    app.stop().await;
}

/// The real binary at `debug`, through sign-ins (wrong and right), key creation, use and
/// revocation: no password, key or token ever reaches its log.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_secret_reaches_the_log() {
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let db = format!("sqlite://{}/r.db", dir.path().display());
    let port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let log = dir.path().join("server.log");
    let relance = env!("CARGO_BIN_EXE_relance");
    let added = Command::new(relance)
        .args(["users", "add", "lea", "--role", "admin", "--password-stdin", "--database", &db])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .and_then(|mut c| {
            use std::io::Write;
            c.stdin.take().unwrap().write_all(b"lea-secret-password\n")?;
            c.wait_with_output()
        })
        .unwrap();
    assert!(added.status.success(), "{}", String::from_utf8_lossy(&added.stdout));
    let mut child = Command::new(relance)
        .args(["serve", "--bind", &format!("127.0.0.1:{port}"), "--database", &db])
        .env("RELANCE_ADMIN_TOKEN", "admin-secret-token-123")
        .env("RELANCE_WEBHOOK_TOKEN", "webhook-secret-token-456")
        .env("RELANCE_LOG", "debug")
        .stdout(Stdio::from(std::fs::File::create(&log).unwrap()))
        .stderr(Stdio::from(std::fs::File::options().append(true).open(&log).unwrap()))
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(15);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(std::time::Instant::now() < deadline, "the server did not come up");
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let client = no_redirects();
    let login = |name: &'static str, password: &'static str| {
        client.post(format!("{base}/ui/login")).form(&[("name", name), ("password", password)]).send()
    };
    assert_eq!(login("lea", "wrong-secret-guess").await.unwrap().status(), 401);
    assert_eq!(login("", "admin-secret-wrong").await.unwrap().status(), 401);
    let ok = login("lea", "lea-secret-password").await.unwrap();
    assert_eq!(ok.status(), 303);
    let cookie = ok.headers()[SET_COOKIE].to_str().unwrap().split(';').next().unwrap().to_owned();
    let session_id = cookie.split_once('=').unwrap().1.to_owned();
    let created: Value = client
        .post(format!("{base}/api/keys"))
        .bearer_auth("admin-secret-token-123")
        .json(&json!({"name": "pa", "role": "editor"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = created["key"].as_str().unwrap().to_owned();
    assert_eq!(client.get(format!("{base}/api/rules")).bearer_auth(&key).send().await.unwrap().status(), 200);
    let hook = client.post(format!("{base}/webhook/behavior")).basic_auth("brevo", Some("webhook-secret-token-456"));
    let hook = hook.json(&json!({"client_code": "C1", "action": "click"})).send().await.unwrap();
    assert_eq!(hook.status(), 200);
    client.delete(format!("{base}/api/keys/pa")).bearer_auth("admin-secret-token-123").send().await.unwrap();
    assert_eq!(client.get(format!("{base}/api/rules")).bearer_auth(&key).send().await.unwrap().status(), 401);
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(text.contains("dashboard sign-in refused"), "the failures are logged: {text}");
    for secret in [
        "lea-secret-password",
        "wrong-secret-guess",
        "admin-secret-wrong",
        "admin-secret-token-123",
        "webhook-secret-token-456",
        key.as_str(),
        &key[4..],
        session_id.as_str(),
    ] {
        assert!(!text.contains(secret), "{secret} is in the log");
    }
}
