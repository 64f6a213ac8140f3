//! Sending a verification code by SMS: Alibaba Cloud SMS (`SendSms`, RPC signature 1.0)
//! for the prefixes routed to it, Twilio Programmable Messaging for others, and a
//! sandbox that keeps the last message per number for development. A call has a
//! timeout and is never repeated by itself: a send whose outcome is unknown stays
//! counted against the limits, and the subscriber asks for a new code instead (a double
//! send is worse than none).
//!
//! The code is in the message body only: it is never logged, and a provider's refusal
//! is reported by its error code and message, not by the request.

use std::collections::HashMap;
use std::sync::Mutex;

use base64::engine::general_purpose::STANDARD;
use base64::Engine;
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use serde::Serialize;
use utoipa::ToSchema;

use crate::config::{AliyunSmsConfig, SmsProviderKind, SmsSettings, TwilioConfig};

/// How the send went, when it did not.
#[derive(Debug, thiserror::Error)]
pub enum SmsError {
    /// Down, slow, or not configured: the subscriber may ask again later.
    #[error("{0}")]
    Unavailable(String),
    /// The provider refused this message (e.g. a number that cannot receive it).
    #[error("{0}")]
    Rejected(String),
}

/// The last message the sandbox "sent" to a number.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SandboxMessage {
    #[schema(value_type = crate::domain::Msisdn)]
    pub msisdn: String,
    pub text: String,
    /// The verification code in it.
    pub code: String,
    pub sent_at: DateTime<Utc>,
}

pub struct Sms {
    settings: SmsSettings,
    http: reqwest::Client,
    sandbox: Mutex<HashMap<String, SandboxMessage>>,
}

/// RFC 3986 unreserved characters stay; everything else is encoded, as Alibaba Cloud's
/// signature wants (a space is `%20`, `*` is `%2A`, `~` stays).
const ALIYUN_ENCODE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

fn aliyun_encode(text: &str) -> String {
    utf8_percent_encode(text, ALIYUN_ENCODE).to_string()
}

/// The signature of an Alibaba Cloud RPC request (version 1.0, HMAC-SHA1): the sorted,
/// encoded parameters, signed with the secret followed by `&`.
pub fn aliyun_signature(method: &str, params: &[(String, String)], secret: &str) -> String {
    let mut sorted: Vec<&(String, String)> = params.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(&b.0));
    let canonical = sorted
        .iter()
        .map(|(k, v)| format!("{}={}", aliyun_encode(k), aliyun_encode(v)))
        .collect::<Vec<_>>()
        .join("&");
    let to_sign = format!(
        "{method}&{}&{}",
        aliyun_encode("/"),
        aliyun_encode(&canonical)
    );
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(format!("{secret}&").as_bytes())
        .expect("HMAC takes keys of any length");
    mac.update(to_sign.as_bytes());
    STANDARD.encode(mac.finalize().into_bytes())
}

/// The message, in Chinese for Chinese numbers and in English otherwise.
fn text_for(msisdn: &str, code: &str) -> String {
    if msisdn.starts_with("+86") {
        format!("【simrenew】您的验证码为{code}，10分钟内有效，请勿告诉他人。")
    } else {
        format!("simrenew: your verification code is {code}. It expires in 10 minutes; do not share it.")
    }
}

impl Sms {
    pub fn new(settings: SmsSettings) -> Result<Self, String> {
        let http = crate::http::outbound::client_builder()
            .timeout(settings.timeout)
            .connect_timeout(settings.timeout)
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build the SMS client: {e}"))?;
        Ok(Self {
            settings,
            http,
            sandbox: Mutex::new(HashMap::new()),
        })
    }

    /// The provider for a number: the longest routed prefix, else the default.
    pub fn provider_for(&self, msisdn: &str) -> Option<SmsProviderKind> {
        self.settings
            .routes
            .iter()
            .find(|(prefix, _)| msisdn.starts_with(prefix.as_str()))
            .map(|(_, kind)| *kind)
    }

    pub fn sandbox_enabled(&self) -> bool {
        self.settings
            .routes
            .iter()
            .any(|(_, kind)| *kind == SmsProviderKind::Sandbox)
    }

    /// The sandbox's last message to `msisdn`.
    pub fn sandbox_message(&self, msisdn: &str) -> Option<SandboxMessage> {
        self.sandbox
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(msisdn)
            .cloned()
    }

    /// Sends `code` to `msisdn` through `provider`; the provider's message id.
    /// `reference` (the code row's id) goes with it where the provider keeps one.
    pub async fn send(
        &self,
        provider: SmsProviderKind,
        msisdn: &str,
        code: &str,
        reference: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, SmsError> {
        match provider {
            SmsProviderKind::Sandbox => {
                let message = SandboxMessage {
                    msisdn: msisdn.to_owned(),
                    text: text_for(msisdn, code),
                    code: code.to_owned(),
                    sent_at: now,
                };
                self.sandbox
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(msisdn.to_owned(), message);
                Ok(Some(format!("sandbox-{reference}")))
            }
            SmsProviderKind::Aliyun => {
                let config = self.settings.aliyun.as_ref().ok_or_else(|| {
                    SmsError::Unavailable("Alibaba Cloud SMS is not configured".into())
                })?;
                self.send_aliyun(config, msisdn, code, reference, now).await
            }
            SmsProviderKind::Twilio => {
                let config = self
                    .settings
                    .twilio
                    .as_ref()
                    .ok_or_else(|| SmsError::Unavailable("Twilio is not configured".into()))?;
                self.send_twilio(config, msisdn, code).await
            }
        }
    }

    async fn send_aliyun(
        &self,
        config: &AliyunSmsConfig,
        msisdn: &str,
        code: &str,
        reference: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<String>, SmsError> {
        // Mainland numbers go without their country code; others with it, no `+`.
        let number = msisdn
            .strip_prefix("+86")
            .map(str::to_owned)
            .unwrap_or_else(|| msisdn.trim_start_matches('+').to_owned());
        let template_param = serde_json::json!({ "code": code }).to_string();
        let mut params: Vec<(String, String)> = [
            ("AccessKeyId", config.access_key_id.as_str()),
            ("Action", "SendSms"),
            ("Format", "JSON"),
            ("OutId", reference),
            ("PhoneNumbers", number.as_str()),
            ("RegionId", "cn-hangzhou"),
            ("SignName", config.sign_name.as_str()),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureVersion", "1.0"),
            ("TemplateCode", config.template_code.as_str()),
            ("TemplateParam", template_param.as_str()),
            ("Version", "2017-05-25"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        params.push(("SignatureNonce".into(), uuid::Uuid::new_v4().to_string()));
        params.push((
            "Timestamp".into(),
            now.format("%Y-%m-%dT%H:%M:%SZ").to_string(),
        ));
        let signature = aliyun_signature("POST", &params, &config.access_key_secret);
        params.push(("Signature".into(), signature));
        let response = self
            .http
            .post(format!("{}/", config.base_url))
            .form(&params)
            .send()
            .await
            .map_err(|e| {
                SmsError::Unavailable(format!("Alibaba Cloud SMS: {}", e.without_url()))
            })?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.map_err(|e| {
            SmsError::Unavailable(format!(
                "Alibaba Cloud SMS answered {status} unreadably: {e}"
            ))
        })?;
        let answer = body["Code"].as_str().unwrap_or("");
        let message = body["Message"].as_str().unwrap_or("");
        match answer {
            "OK" => Ok(body["BizId"].as_str().map(str::to_owned)),
            // Flow control and throttling pass; anything else is about this message.
            "isv.BUSINESS_LIMIT_CONTROL" | "Throttling.User" | "isp.SYSTEM_ERROR" | "" => Err(
                SmsError::Unavailable(format!("Alibaba Cloud SMS: {answer} {message}")),
            ),
            _ if status.is_server_error() => Err(SmsError::Unavailable(format!(
                "Alibaba Cloud SMS: {answer} {message}"
            ))),
            _ => Err(SmsError::Rejected(format!(
                "Alibaba Cloud SMS: {answer} {message}"
            ))),
        }
    }

    async fn send_twilio(
        &self,
        config: &TwilioConfig,
        msisdn: &str,
        code: &str,
    ) -> Result<Option<String>, SmsError> {
        let sender = if config.from.starts_with("MG") {
            "MessagingServiceSid"
        } else {
            "From"
        };
        let body = text_for(msisdn, code);
        let form = [
            ("To", msisdn),
            (sender, config.from.as_str()),
            ("Body", body.as_str()),
        ];
        let response = self
            .http
            .post(format!(
                "{}/2010-04-01/Accounts/{}/Messages.json",
                config.base_url, config.account_sid
            ))
            .basic_auth(&config.account_sid, Some(&config.auth_token))
            .form(&form)
            .send()
            .await
            .map_err(|e| SmsError::Unavailable(format!("Twilio: {}", e.without_url())))?;
        let status = response.status();
        let answer: serde_json::Value = response.json().await.unwrap_or_default();
        if status.is_success() {
            return Ok(answer["sid"].as_str().map(str::to_owned));
        }
        let detail = format!(
            "Twilio {}: {} {}",
            status.as_u16(),
            answer["code"],
            answer["message"].as_str().unwrap_or("")
        );
        if status.is_server_error() || status.as_u16() == 429 || status.as_u16() == 401 {
            Err(SmsError::Unavailable(detail))
        } else {
            Err(SmsError::Rejected(detail))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The worked example of Alibaba Cloud's RPC signature documentation (ECS
    /// `DescribeRegions` signed with the secret `testsecret`) and the signature it
    /// publishes for it.
    #[test]
    fn aliyun_signature_matches_the_documented_example() {
        let params: Vec<(String, String)> = [
            ("AccessKeyId", "testid"),
            ("Action", "DescribeRegions"),
            ("Format", "XML"),
            ("SignatureMethod", "HMAC-SHA1"),
            ("SignatureNonce", "3ee8c1b8-83d3-44af-a94f-4e0ad82fd6cf"),
            ("SignatureVersion", "1.0"),
            ("Timestamp", "2016-02-23T12:46:24Z"),
            ("Version", "2014-05-26"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        assert_eq!(
            aliyun_signature("GET", &params, "testsecret"),
            "OLeaidS1JvxuMvnyHOwuJ+uX5qY="
        );
    }

    #[test]
    fn encoding_follows_rfc_3986_as_aliyun_wants() {
        assert_eq!(aliyun_encode("a b*c~d"), "a%20b%2Ac~d");
        assert_eq!(
            aliyun_encode("{\"code\":\"1\"}"),
            "%7B%22code%22%3A%221%22%7D"
        );
    }
}
