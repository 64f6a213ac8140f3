//! Answers in Simplified Chinese or English by `Accept-Language` (problems keep their
//! code), install guides per platform and language, and receipts whose amounts are the
//! ledger's, as JSON and as a printable page.

use reqwest::StatusCode;
use serde_json::{json, Value};

use crate::helpers::{iccid, plan_id, TestApp};
use simrenew::auth::scopes::Scope;

on_both_backends!(
    problems_speak_the_language_asked_for_and_keep_their_code,
    the_catalog_and_device_notes_speak_both_languages_with_their_own_etags,
    install_guides_follow_platform_mode_and_language,
    a_receipt_matches_the_ledger_as_json_and_as_a_page,
);

struct Shop {
    token: String,
    fm: String,
    esim: String,
    fm_plan: String,
    esim_plan: String,
}

async fn shop(app: &TestApp, n: u64, name: &str) -> Shop {
    app.import_demo_plans().await;
    let (fm, esim) = (iccid(94, 2 * n), iccid(94, 2 * n + 1));
    let scopes = [
        Scope::CatalogRead,
        Scope::OrdersRead,
        Scope::OrdersWrite,
        Scope::WalletRead,
    ];
    let cards = json!([{"iccid": fm, "card_type": "fm"}, {"iccid": esim, "card_type": "esim"}]);
    let stocked = app.stocked_partner(name, &scopes, cards, 100_000).await;
    Shop {
        token: stocked.token,
        fm,
        esim,
        fm_plan: plan_id(&app.store, "CN-FM-M-10G").await,
        esim_plan: plan_id(&app.store, "JP-ESIM-M-5G").await,
    }
}

async fn get_in(app: &TestApp, path: &str, token: &str, language: &str) -> reqwest::Response {
    app.client
        .get(app.url(path))
        .bearer_auth(token)
        .header("Accept-Language", language)
        .send()
        .await
        .unwrap()
}

fn header<'a>(response: &'a reqwest::Response, name: &str) -> &'a str {
    response.headers()[name].to_str().unwrap()
}

async fn problems_speak_the_language_asked_for_and_keep_their_code(app: TestApp) {
    let shop = shop(&app, 1, "Acme").await;
    let missing = format!("/v1/orders/{}", uuid::Uuid::now_v7());
    let zh = get_in(&app, &missing, &shop.token, "zh-CN,zh;q=0.9,en;q=0.8").await;
    assert_eq!(zh.status(), StatusCode::NOT_FOUND);
    assert_eq!(header(&zh, "content-language"), "zh-CN");
    assert!(header(&zh, "vary").contains("Accept-Language"));
    let zh: Value = zh.json().await.unwrap();
    assert_eq!(zh["code"], "not_found");
    assert_eq!(zh["title"], "未找到");
    assert!(
        zh["detail"].as_str().unwrap().starts_with("资源不存在"),
        "{zh}"
    );

    let en = get_in(&app, &missing, &shop.token, "fr-FR, en;q=0.5").await;
    assert_eq!(header(&en, "content-language"), "en");
    let en: Value = en.json().await.unwrap();
    assert_eq!(en["code"], "not_found");
    assert_eq!(en["title"], "Not found");
    // No header, or only languages not offered: English.
    let plain = app.get_with(&missing, &shop.token).await;
    assert_eq!(header(&plain, "content-language"), "en");
    let traditional = get_in(&app, &missing, &shop.token, "zh-TW").await;
    assert_eq!(header(&traditional, "content-language"), "en");

    // A validation problem keeps its fields, and says in Chinese what is wrong.
    let refused = app
        .client
        .post(app.url("/v1/orders"))
        .bearer_auth(&shop.token)
        .header("Accept-Language", "zh-CN")
        .header("Idempotency-Key", "zh-1")
        .json(&json!({"iccid": "123", "plan_id": shop.fm_plan, "currency": "CNY", "payment_method": "wallet"}))
        .send()
        .await
        .unwrap();
    assert_eq!(refused.status(), StatusCode::UNPROCESSABLE_ENTITY);
    let refused: Value = refused.json().await.unwrap();
    assert_eq!(refused["code"], "validation_failed");
    assert_eq!(refused["title"], "校验失败");
    assert_eq!(refused["errors"][0]["field"], "iccid");
}

async fn the_catalog_and_device_notes_speak_both_languages_with_their_own_etags(app: TestApp) {
    let shop = shop(&app, 4, "Acme").await;
    let path = "/v1/plans?card_type=esim&country=JP&currency=CNY";
    let zh = get_in(&app, path, &shop.token, "zh-CN").await;
    let zh_tag = header(&zh, "etag").to_owned();
    let zh: Value = zh.json().await.unwrap();
    let en = get_in(&app, path, &shop.token, "en").await;
    let en_tag = header(&en, "etag").to_owned();
    let en: Value = en.json().await.unwrap();
    assert_eq!(zh["data"][0]["code"], en["data"][0]["code"]);
    assert_eq!(zh["data"][0]["name"], "日本 eSIM 5 GB · 30 天");
    assert_eq!(en["data"][0]["name"], "Japan eSIM 5 GB · 30 days");
    assert_ne!(zh_tag, en_tag, "the languages are cached apart");
    // An English tag does not validate the Chinese page.
    let other = app
        .client
        .get(app.url(path))
        .bearer_auth(&shop.token)
        .header("Accept-Language", "zh-CN")
        .header("If-None-Match", &en_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::OK);
    let same = app
        .client
        .get(app.url(path))
        .bearer_auth(&shop.token)
        .header("Accept-Language", "zh-CN")
        .header("If-None-Match", &zh_tag)
        .send()
        .await
        .unwrap();
    assert_eq!(same.status(), StatusCode::NOT_MODIFIED);

    // Operators set the Chinese texts; without them the English is shown.
    let admin = app.admin_token().await;
    let created: Value = app
        .post_json(
            "/v1/admin/plans",
            &admin,
            &json!({"code": "KR-ESIM-M-5G", "name": "Korea 5 GB", "card_types": ["esim"],
                "period": "month", "coverage": ["KR"], "prices": [{"currency": "CNY", "amount": 4900}],
                "translations": {"zh-CN": {"name": "韩国 5 GB", "description": "韩国纯流量 eSIM。"}}}),
        )
        .await
        .json()
        .await
        .unwrap();
    let plan_path = format!("/v1/plans/{}", created["id"].as_str().unwrap());
    let shown: Value = get_in(&app, &plan_path, &shop.token, "zh-CN")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["name"], "韩国 5 GB");
    let removed = app
        .client
        .patch(app.url(&format!(
            "/v1/admin/plans/{}",
            created["id"].as_str().unwrap()
        )))
        .bearer_auth(&admin)
        .json(&json!({"translations": {"zh-CN": null}}))
        .send()
        .await
        .unwrap();
    assert_eq!(removed.status(), StatusCode::OK);
    let shown: Value = get_in(&app, &plan_path, &shop.token, "zh-CN")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(shown["name"], "Korea 5 GB");
    for (body, status) in [
        (
            json!({"translations": {"fr": {"name": "Corée"}}}),
            StatusCode::BAD_REQUEST,
        ),
        (
            json!({"translations": {"zh-CN": {"name": " "}}}),
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
    ] {
        let refused = app
            .client
            .patch(app.url(&format!(
                "/v1/admin/plans/{}",
                created["id"].as_str().unwrap()
            )))
            .bearer_auth(&admin)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(refused.status(), status, "{body}");
    }

    let device: Value = get_in(
        &app,
        "/v1/devices/compatibility?model=iPhone%2015%20Pro",
        &shop.token,
        "zh-CN",
    )
    .await
    .json()
    .await
    .unwrap();
    assert!(
        device["note"]
            .as_str()
            .unwrap()
            .starts_with("该机型支持 eSIM。"),
        "{device}"
    );
}

async fn install_guides_follow_platform_mode_and_language(app: TestApp) {
    let shop = shop(&app, 2, "Acme").await;
    let esim = app
        .wallet_order(&shop.token, &shop.esim, &shop.esim_plan)
        .await;
    let path = format!(
        "/v1/orders/{}/activation/instructions",
        esim["id"].as_str().unwrap()
    );
    let ios = get_in(&app, &format!("{path}?platform=ios"), &shop.token, "zh-CN").await;
    assert_eq!(ios.status(), StatusCode::OK);
    let ios: Value = ios.json().await.unwrap();
    assert_eq!(ios["language"], "zh-CN");
    assert_eq!(ios["mode"], "esim_profile");
    let kinds: Vec<&str> = ios["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["direct_link", "qr", "manual"]);
    assert!(ios["methods"][0]["link"]
        .as_str()
        .unwrap()
        .starts_with("https://esimsetup.apple.com/"));
    let qr_steps = ios["methods"][1]["steps"].to_string();
    assert!(
        qr_steps.contains("设置 → 蜂窝网络 → 添加 eSIM"),
        "{qr_steps}"
    );

    let android: Value = get_in(&app, &format!("{path}?platform=android"), &shop.token, "en")
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(android["language"], "en");
    let kinds: Vec<&str> = android["methods"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["qr", "manual"]);
    assert!(android["methods"][0]["steps"]
        .to_string()
        .contains("Network & internet"));

    let fm = app.wallet_order(&shop.token, &shop.fm, &shop.fm_plan).await;
    let ota: Value = get_in(
        &app,
        &format!(
            "/v1/orders/{}/activation/instructions?platform=android",
            fm["id"].as_str().unwrap()
        ),
        &shop.token,
        "zh-CN",
    )
    .await
    .json()
    .await
    .unwrap();
    assert_eq!(ota["methods"][0]["kind"], "over_the_air");
    assert!(ota["troubleshooting"][0]
        .as_str()
        .unwrap()
        .contains("10 分钟"));

    let bad = get_in(&app, &format!("{path}?platform=symbian"), &shop.token, "en").await;
    assert_eq!(bad.status(), StatusCode::UNPROCESSABLE_ENTITY);
}

async fn a_receipt_matches_the_ledger_as_json_and_as_a_page(app: TestApp) {
    let shop = shop(&app, 3, "Acme <Mobile> & Co").await;
    let kept = app.wallet_order(&shop.token, &shop.fm, &shop.fm_plan).await;
    let kept_id = kept["id"].as_str().unwrap();
    app.post_json(
        &format!("/v1/orders/{kept_id}/activation/confirm"),
        &shop.token,
        &json!({}),
    )
    .await;
    let refunded = app.wallet_order(&shop.token, &shop.fm, &shop.fm_plan).await;
    let refunded_id = refunded["id"].as_str().unwrap();
    let cancelled = app
        .post_json(
            &format!("/v1/orders/{refunded_id}/cancel"),
            &shop.token,
            &json!({}),
        )
        .await;
    assert_eq!(cancelled.status(), StatusCode::OK);

    let ledger: Value = app
        .get_with("/v1/wallet/transactions?limit=100", &shop.token)
        .await
        .json()
        .await
        .unwrap();
    let entries = |order_id: &str, kind: &str| -> i64 {
        ledger["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["order_id"] == order_id && e["kind"] == kind)
            .map(|e| e["amount"].as_i64().unwrap())
            .sum()
    };

    let receipt: Value = app
        .get_with(&format!("/v1/orders/{kept_id}/receipt"), &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(receipt["receipt_number"], kept["receipt_number"]);
    assert_eq!(receipt["amount"], -entries(kept_id, "debit"));
    assert_eq!(receipt["currency"], "CNY");
    assert_eq!(receipt["buyer"]["name"], "Acme <Mobile> & Co");
    assert_eq!(receipt["seller"]["name"], "simrenew");
    assert_eq!(receipt["card"]["iccid"], shop.fm);
    assert_eq!(receipt["plan"]["code"], "CN-FM-M-10G");
    assert!(receipt["period"]["from"].is_string());
    assert_eq!(receipt["payment"]["method"], "wallet");
    assert_eq!(receipt["refund"], Value::Null);

    let refund_receipt: Value = app
        .get_with(&format!("/v1/orders/{refunded_id}/receipt"), &shop.token)
        .await
        .json()
        .await
        .unwrap();
    assert_eq!(refund_receipt["status"], "cancelled");
    assert_eq!(refund_receipt["amount"], -entries(refunded_id, "debit"));
    assert_eq!(
        refund_receipt["refund"]["amount"],
        entries(refunded_id, "refund")
    );
    assert_eq!(refund_receipt["period"], Value::Null);

    let page = get_in(
        &app,
        &format!("/v1/orders/{kept_id}/receipt.html"),
        &shop.token,
        "zh-CN",
    )
    .await;
    assert_eq!(page.status(), StatusCode::OK);
    assert_eq!(header(&page, "content-type"), "text/html; charset=utf-8");
    assert_eq!(header(&page, "content-language"), "zh-CN");
    let html = page.text().await.unwrap();
    assert!(html.contains(r#"<html lang="zh-CN">"#));
    assert!(html.contains("交易凭证"));
    assert!(html.contains("CNY 39.00"));
    assert!(
        html.contains("中国大陆 10 GB · 30 天"),
        "the plan in Chinese"
    );
    assert!(html.contains(kept["receipt_number"].as_str().unwrap()));
    assert!(html.contains("Acme &lt;Mobile&gt; &amp; Co"), "escaped");
    assert!(!html.contains("<Mobile>"));
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "no external assets"
    );
    let en = get_in(
        &app,
        &format!("/v1/orders/{kept_id}/receipt.html"),
        &shop.token,
        "en",
    )
    .await
    .text()
    .await
    .unwrap();
    assert!(en.contains("Receipt number") && !en.contains("交易凭证"));

    // No receipt before payment is taken: an order that is still unpaid has none.
    let unknown = app
        .get_with(
            &format!("/v1/orders/{}/receipt", uuid::Uuid::now_v7()),
            &shop.token,
        )
        .await;
    assert_eq!(unknown.status(), StatusCode::NOT_FOUND);
}
