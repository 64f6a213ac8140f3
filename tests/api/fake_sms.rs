//! Local Alibaba Cloud SMS and Twilio, checking what the real ones check:
//!
//! - Alibaba Cloud `SendSms` (RPC API, https://help.aliyun.com/document_detail/419273.html):
//!   `Action=SendSms`, `Version=2017-05-25`, a known `AccessKeyId`, `SignatureMethod=
//!   HMAC-SHA1`, `SignatureVersion=1.0`, a `Timestamp` in `YYYY-MM-DDThh:mm:ssZ`, a
//!   `SignatureNonce` never used before (`SignatureNonceUsed` otherwise), and a
//!   `Signature` recomputed here from the sorted, RFC 3986-encoded parameters
//!   (`SignatureDoesNotMatch` otherwise, HTTP 400); the answer is `{"Code": "OK",
//!   "BizId": …}`, or a business error code with HTTP 200.
//! - Twilio `POST /2010-04-01/Accounts/{AccountSid}/Messages.json`
//!   (https://www.twilio.com/docs/messaging/api/message-resource): HTTP Basic with the
//!   Account SID and Auth Token (`401`, code 20003, otherwise), `To` in E.164, `From` or
//!   `MessagingServiceSid`, `Body`; `201` with a `sid` starting `SM`, or an error body
//!   `{code, message, status}`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use actix_web::{web, App, HttpRequest, HttpResponse, HttpServer};
use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{json, Value};

pub const ALIYUN_KEY_ID: &str = "LTAI-test-key";
pub const ALIYUN_SECRET: &str = "aliyun-test-secret";
pub const TWILIO_SID: &str = "AC00000000000000000000000000000001";
pub const TWILIO_TOKEN: &str = "twilio-test-token";

#[derive(Default)]
struct State {
    aliyun: Vec<HashMap<String, String>>,
    twilio: Vec<HashMap<String, String>>,
    nonces: HashSet<String>,
    /// The next Alibaba Cloud answers' `Code` (then `OK`).
    aliyun_codes: Vec<&'static str>,
    /// The next Twilio answers' HTTP status (then 201).
    twilio_statuses: Vec<u16>,
}

pub struct FakeSms {
    pub url: String,
    state: Arc<Mutex<State>>,
}

fn encode(text: &str) -> String {
    const KEEP: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
        .remove(b'-')
        .remove(b'_')
        .remove(b'.')
        .remove(b'~');
    percent_encoding::utf8_percent_encode(text, KEEP).to_string()
}

fn expected_signature(params: &HashMap<String, String>) -> String {
    let mut pairs: Vec<(&String, &String)> =
        params.iter().filter(|(k, _)| *k != "Signature").collect();
    pairs.sort();
    let query = pairs
        .iter()
        .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let text = format!("POST&%2F&{}", encode(&query));
    let mut mac =
        Hmac::<sha1::Sha1>::new_from_slice(format!("{ALIYUN_SECRET}&").as_bytes()).unwrap();
    mac.update(text.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

async fn aliyun(body: web::Bytes, state: web::Data<Arc<Mutex<State>>>) -> HttpResponse {
    let params: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let mut state = state.lock().unwrap();
    let refuse = |code: &str, message: &str| {
        HttpResponse::BadRequest()
            .json(json!({"Code": code, "Message": message, "RequestId": "fake"}))
    };
    let field = |name: &str| params.get(name).map(String::as_str).unwrap_or("");
    if field("Action") != "SendSms" || field("Version") != "2017-05-25" {
        return refuse("InvalidAction.NotFound", "Specified api is not found");
    }
    if field("AccessKeyId") != ALIYUN_KEY_ID {
        return refuse(
            "InvalidAccessKeyId.NotFound",
            "Specified access key is not found.",
        );
    }
    if field("SignatureMethod") != "HMAC-SHA1" || field("SignatureVersion") != "1.0" {
        return refuse("InvalidParameter", "signature method or version");
    }
    if chrono::NaiveDateTime::parse_from_str(field("Timestamp"), "%Y-%m-%dT%H:%M:%SZ").is_err() {
        return refuse(
            "InvalidTimeStamp.Format",
            "Specified time stamp is not valid.",
        );
    }
    if field("Signature") != expected_signature(&params) {
        return refuse(
            "SignatureDoesNotMatch",
            "Specified signature is not matched with our calculation.",
        );
    }
    if !state.nonces.insert(field("SignatureNonce").to_owned()) {
        return refuse(
            "SignatureNonceUsed",
            "Specified signature nonce was used already.",
        );
    }
    let template: Value = serde_json::from_str(field("TemplateParam")).unwrap_or(Value::Null);
    if field("SignName").is_empty()
        || field("TemplateCode").is_empty()
        || !template["code"].is_string()
    {
        return refuse("isv.INVALID_PARAMETERS", "parameters are missing");
    }
    state.aliyun.push(params.clone());
    let code = if state.aliyun_codes.is_empty() {
        "OK"
    } else {
        state.aliyun_codes.remove(0)
    };
    if code == "OK" {
        HttpResponse::Ok().json(json!({"Code": "OK", "Message": "OK", "BizId": "900619746936498440^0", "RequestId": "fake"}))
    } else {
        HttpResponse::Ok()
            .json(json!({"Code": code, "Message": "refused by the fake", "RequestId": "fake"}))
    }
}

async fn twilio(
    req: HttpRequest,
    path: web::Path<String>,
    body: web::Bytes,
    state: web::Data<Arc<Mutex<State>>>,
) -> HttpResponse {
    let expected = format!(
        "Basic {}",
        base64::engine::general_purpose::STANDARD.encode(format!("{TWILIO_SID}:{TWILIO_TOKEN}"))
    );
    let authorized = req
        .headers()
        .get("authorization")
        .and_then(|v| v.to_str().ok())
        == Some(expected.as_str());
    if !authorized || path.as_str() != TWILIO_SID {
        return HttpResponse::Unauthorized()
            .json(json!({"code": 20003, "message": "Authenticate", "status": 401}));
    }
    let params: HashMap<String, String> = serde_urlencoded::from_bytes(&body).unwrap_or_default();
    let to = params.get("To").cloned().unwrap_or_default();
    let e164 = to.starts_with('+') && to.len() > 8 && to[1..].bytes().all(|b| b.is_ascii_digit());
    let sender = params.contains_key("From") || params.contains_key("MessagingServiceSid");
    if !e164 || !sender || params.get("Body").is_none_or(String::is_empty) {
        return HttpResponse::BadRequest().json(
            json!({"code": 21211, "message": format!("The 'To' number {to} is not a valid phone number."), "status": 400}),
        );
    }
    let mut state = state.lock().unwrap();
    state.twilio.push(params);
    let status = if state.twilio_statuses.is_empty() {
        201
    } else {
        state.twilio_statuses.remove(0)
    };
    match status {
        201 => HttpResponse::Created()
            .json(json!({"sid": "SM0123456789abcdef0123456789abcdef", "status": "queued"})),
        other => HttpResponse::build(actix_web::http::StatusCode::from_u16(other).unwrap())
            .json(json!({"code": 20500, "message": "refused by the fake", "status": other})),
    }
}

impl FakeSms {
    pub async fn start() -> Self {
        let state = Arc::new(Mutex::new(State::default()));
        let data = web::Data::new(state.clone());
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let server = HttpServer::new(move || {
            App::new()
                .app_data(data.clone())
                .route("/aliyun/", web::post().to(aliyun))
                .route(
                    "/twilio/2010-04-01/Accounts/{sid}/Messages.json",
                    web::post().to(twilio),
                )
        })
        .workers(1)
        .listen(listener)
        .unwrap()
        .run();
        tokio::spawn(server);
        Self { url, state }
    }

    /// Parameters of every accepted Alibaba Cloud request.
    pub fn aliyun_requests(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().unwrap().aliyun.clone()
    }

    /// Fields of every accepted Twilio request.
    pub fn twilio_requests(&self) -> Vec<HashMap<String, String>> {
        self.state.lock().unwrap().twilio.clone()
    }

    pub fn aliyun_answers(&self, codes: &[&'static str]) {
        self.state.lock().unwrap().aliyun_codes = codes.to_vec();
    }

    pub fn twilio_answers(&self, statuses: &[u16]) {
        self.state.lock().unwrap().twilio_statuses = statuses.to_vec();
    }
}
