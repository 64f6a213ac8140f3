//! `simrenew serve --demo` and the README's curl walk, step by step, as a newcomer runs it.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::fetch_token;

struct Demo {
    child: std::process::Child,
    base: String,
    client_id: String,
    client_secret: String,
    esim_card: String,
    fm_card: String,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn field<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split_whitespace()
        .find_map(|part| part.strip_prefix(&format!("{name}=")))
}

async fn start_demo(database_url: &str, log: &std::path::Path) -> Demo {
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut child = Command::new(env!("CARGO_BIN_EXE_simrenew"))
        .args(["serve", "--demo", "--bind", &format!("127.0.0.1:{port}")])
        .env("DATABASE_URL", database_url)
        // Everything the service logs, to show that no verification code is in it.
        .env("SIMRENEW_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let lines: Vec<String> = tokio::task::spawn_blocking(move || {
        BufReader::new(stdout)
            .lines()
            .map_while(Result::ok)
            .take_while(|line| !line.starts_with("The secrets are shown only now"))
            .collect()
    })
    .await
    .unwrap();
    let partner = lines
        .iter()
        .find(|l| l.trim_start().starts_with("partner"))
        .expect("partner line");
    let card = |label: &str| {
        lines
            .iter()
            .find(|l| l.trim_start().starts_with(label))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .to_owned()
    };
    let demo = Demo {
        base: format!("http://127.0.0.1:{port}"),
        client_id: field(partner, "client_id").unwrap().to_owned(),
        client_secret: field(partner, "client_secret").unwrap().to_owned(),
        esim_card: card("esim_card"),
        fm_card: card("fm_card"),
        child,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while !reqwest::get(format!("{}/readyz", demo.base))
        .await
        .is_ok_and(|r| r.status() == StatusCode::OK)
    {
        assert!(Instant::now() < deadline, "demo server not ready");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    demo
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_readme_walk_works_on_a_fresh_demo() {
    let dir = tempfile::tempdir().unwrap();
    let database_url = format!("sqlite://{}", dir.path().join("demo.db").display());
    let log = dir.path().join("demo.log");
    let demo = start_demo(&database_url, &log).await;
    let http = crate::helpers::http_client();
    let url = |path: &str| format!("{}{path}", demo.base);

    // 1. token
    let token = fetch_token(&http, &demo.base, &demo.client_id, &demo.client_secret).await;
    let get = |path: String| http.get(url(&path)).bearer_auth(&token).send();

    // 2. device check
    let device: Value = get("/v1/devices/compatibility?model=iPhone%2015%20Pro".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(device["esim_supported"], true);
    // 3. balance, and which cards expire soon
    let before: Value = get(format!("/v1/cards/{}/balance", demo.esim_card))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(before["status"], "active");
    assert_eq!(before["current"]["days_left"], 20);
    let expiring: Value = get("/v1/cards?expiring_within_days=7".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(expiring["data"][0]["iccid"], demo.fm_card.as_str());
    // ...and the FM card's subscription renews it minutes from now.
    let subscription: Value = get(format!("/v1/cards/{}/subscription", demo.fm_card))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(subscription["status"], "active");
    let due: chrono::DateTime<chrono::Utc> = subscription["next_renewal_at"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    let wait = due - chrono::Utc::now();
    assert!(
        wait > chrono::TimeDelta::minutes(1) && wait <= chrono::TimeDelta::minutes(3),
        "{wait}"
    );
    // 4. plans
    let plans: Value = get("/v1/plans?card_type=esim&country=JP&currency=CNY".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let plan_id = plans["data"][0]["id"].as_str().unwrap().to_owned();
    // 5. order
    let order = http
        .post(url("/v1/orders"))
        .bearer_auth(&token)
        .header("Idempotency-Key", uuid::Uuid::new_v4().to_string())
        .json(&json!({"iccid": demo.esim_card, "plan_id": plan_id, "currency": "CNY", "payment_method": "wallet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(order.status(), StatusCode::CREATED);
    let order: Value = order.json().await.unwrap();
    assert_eq!(order["status"], "paid");
    assert!(order["receipt_number"].as_str().unwrap().starts_with("R-"));
    let order_id = order["id"].as_str().unwrap().to_owned();
    // 6. the subscriber confirms the SMS code first; then the activation code and its QR
    let withheld: Value = get(format!("/v1/orders/{order_id}/activation"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(withheld["status"], "verification_required");
    assert_eq!(withheld["lpa_activation_code"], Value::Null);
    let msisdn = "+8613800138000";
    let sent = http
        .post(url(&format!(
            "/v1/orders/{order_id}/activation/verification"
        )))
        .bearer_auth(&token)
        .json(&json!({ "msisdn": msisdn }))
        .send()
        .await
        .unwrap();
    assert_eq!(sent.status(), StatusCode::ACCEPTED);
    let sms: Value = get("/v1/sandbox/sms?msisdn=%2B8613800138000".to_owned())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let code = sms["code"].as_str().unwrap().to_owned();
    assert!(sms["text"].as_str().unwrap().contains(&code));
    let activation: Value = http
        .post(url(&format!(
            "/v1/orders/{order_id}/activation/verification/check"
        )))
        .bearer_auth(&token)
        .json(&json!({ "code": code }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(activation["status"], "pending");
    assert!(activation["lpa_activation_code"]
        .as_str()
        .unwrap()
        .starts_with("LPA:1$"));
    let qr = get(format!("/v1/orders/{order_id}/activation/qr.png"))
        .await
        .unwrap();
    assert_eq!(qr.status(), StatusCode::OK);
    // 7. confirm, and check the new validity
    let confirmed: Value = http
        .post(url(&format!("/v1/orders/{order_id}/activation/confirm")))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(confirmed["status"], "confirmed");
    assert_eq!(
        confirmed["previous_valid_until"],
        before["current"]["valid_until"]
    );
    let after: Value = get(format!("/v1/cards/{}/balance", demo.esim_card))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(after["current"]["valid_until"], confirmed["valid_until"]);
    assert_eq!(after["current"]["days_left"], 30);
    let wallet: Value = get("/v1/wallet".into())
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        wallet["balances"][0]["available"],
        100_000 - order["amount"].as_i64().unwrap()
    );
    drop(demo);
    let logged = std::fs::read_to_string(&log).unwrap();
    assert!(
        logged.contains("verification code sent"),
        "the send is logged (without its code)"
    );
    assert!(
        !logged.contains(&code),
        "the verification code reached the log"
    );

    // A second start on the same database seeds nothing and prints no secret. (Its port is
    // taken, so it stops right after the seeding step.)
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let taken_port = taken.local_addr().unwrap().port();
    let output = Command::new(env!("CARGO_BIN_EXE_simrenew"))
        .args([
            "serve",
            "--demo",
            "--bind",
            &format!("127.0.0.1:{taken_port}"),
        ])
        .env("DATABASE_URL", &database_url)
        .env("SIMRENEW_LOG", "warn")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("already has partners"), "{stdout}");
    assert!(!stdout.contains("client_secret="));
    assert!(!output.status.success(), "the taken port stops it");
    drop(taken);
}
