//! "Does my phone take an eSIM?": a device list shipped with the service (devices.json),
//! plus models operators add, matched ignoring case, spacing and the brand name.

use crate::i18n::Lang;
use std::collections::HashMap;
use std::sync::LazyLock;

use actix_web::{get, post, web, HttpResponse};
use diesel::prelude::*;
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use utoipa_actix_web::service_config::ServiceConfig;

use crate::auth::principal::{require, Authorized};
use crate::db::schema::devices;
use crate::db::Db;
use crate::db::DbConnection;
use crate::domain::time;
use crate::error::{ApiError, FieldError, Problem};

/// Longest note an operator may set.
const MAX_NOTE_CHARS: usize = 500;
const FM_NOTE: &str = "FM cards need only a SIM slot: any phone takes them.";
const FM_NOTE_ZH: &str = "FM 卡只需 SIM 卡槽：任何手机都能用。";

/// The shipped list's notes in Chinese (the list itself is English).
fn shipped_note_zh(note: &str) -> Option<&'static str> {
    Some(match note {
        "Models sold in mainland China, Hong Kong and Macao usually have two physical SIM slots and no eSIM." => {
            "在中国大陆、香港和澳门销售的机型通常为双实体 SIM 卡槽，不支持 eSIM。"
        }
        "Only the US Google Fi variant has an eSIM." => "仅美国 Google Fi 版本支持 eSIM。",
        "Some regional variants (e.g. mainland China) lack eSIM." => {
            "部分地区版本（例如中国大陆版）不支持 eSIM。"
        }
        "Only some regional variants support eSIM." => "仅部分地区版本支持 eSIM。",
        "Not in mainland China variants." => "中国大陆版本不支持。",
        _ => return None,
    })
}
const BRANDS: [&str; 12] = [
    "apple",
    "google",
    "samsung",
    "huawei",
    "motorola",
    "sony",
    "oneplus",
    "xiaomi",
    "oppo",
    "fairphone",
    "nothing",
    "moto",
];
const MAX_MODEL_CHARS: usize = 100;

pub fn configure(cfg: &mut ServiceConfig) {
    cfg.service(compatibility).service(add_device);
}

#[derive(Debug, Clone, Deserialize)]
struct ShippedDevice {
    brand: String,
    model: String,
    esim_supported: bool,
    note: Option<String>,
}

#[derive(Debug, Deserialize)]
struct ShippedList {
    devices: Vec<ShippedDevice>,
}

/// `iPhone 15 Pro`, `apple iphone15pro` and `IPHONE-15-PRO` all become `iphone15pro`.
pub fn model_key(model: &str) -> String {
    let mut key: String = model
        .chars()
        .filter(|c| c.is_alphanumeric() || *c == '+')
        .flat_map(char::to_lowercase)
        .collect();
    for brand in BRANDS {
        if key.len() > brand.len() && key.starts_with(brand) {
            key.drain(..brand.len());
            break;
        }
    }
    key
}

static SHIPPED: LazyLock<HashMap<String, ShippedDevice>> = LazyLock::new(|| {
    let list: ShippedList =
        serde_json::from_str(include_str!("devices.json")).unwrap_or(ShippedList {
            devices: Vec::new(),
        });
    list.devices
        .into_iter()
        .map(|device| (model_key(&device.model), device))
        .collect()
});

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct CompatibilityQuery {
    /// The device model as the phone reports it, e.g. `iPhone 15 Pro` or `Pixel 8`.
    #[param(
        example = "iPhone 15 Pro",
        min_length = 1,
        max_length = 100,
        pattern = r"\S"
    )]
    pub model: String,
}

/// Whether a device can hold an eSIM.
#[derive(Debug, Serialize, ToSchema)]
pub struct Compatibility {
    /// The model as asked.
    pub model: String,
    /// Whether the model is on the list.
    pub known: bool,
    /// `null` when the model is not known.
    pub esim_supported: Option<bool>,
    /// The listed model that matched.
    pub matched_model: Option<String>,
    pub note: String,
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewDevice {
    #[schema(
        example = "Galaxy S26",
        min_length = 1,
        max_length = 100,
        pattern = r"\S"
    )]
    pub model: String,
    pub esim_supported: bool,
    #[schema(max_length = 500)]
    pub note: Option<String>,
    /// The note in Simplified Chinese (shown to `Accept-Language: zh-CN`).
    #[schema(max_length = 500)]
    pub note_zh: Option<String>,
}

/// A device model an operator added.
#[derive(Debug, Serialize, ToSchema)]
pub struct Device {
    pub model: String,
    pub esim_supported: bool,
    pub note: Option<String>,
    pub note_zh: Option<String>,
}

/// A listed model: its name, whether it takes an eSIM, and its notes.
type Listed = (String, bool, Option<String>, Option<String>);

fn lookup_added(conn: &mut DbConnection, key: &str) -> QueryResult<Option<Listed>> {
    devices::table
        .find(key)
        .select((
            devices::model,
            devices::esim_supported,
            devices::note,
            devices::note_zh,
        ))
        .first(conn)
        .optional()
}

/// The answer for `model`: operator-added models first, then the shipped list.
pub fn check(model: &str, added: Option<Listed>, lang: Lang) -> Compatibility {
    let found = added.or_else(|| {
        SHIPPED.get(&model_key(model)).map(|device| {
            (
                format!("{} {}", device.brand, device.model),
                device.esim_supported,
                device.note.clone(),
                device
                    .note
                    .as_deref()
                    .and_then(shipped_note_zh)
                    .map(str::to_owned),
            )
        })
    });
    let fm_note = lang.pick(FM_NOTE, FM_NOTE_ZH);
    match found {
        Some((matched, esim, note, note_zh)) => {
            let verdict = match (esim, lang) {
                (true, Lang::En) => "This model supports eSIM.",
                (false, Lang::En) => "This model has no eSIM.",
                (true, Lang::ZhCn) => "该机型支持 eSIM。",
                (false, Lang::ZhCn) => "该机型不支持 eSIM。",
            };
            let note = match lang {
                Lang::ZhCn => note_zh.or(note),
                Lang::En => note,
            };
            let separator = lang.pick(" ", "");
            let text = match note {
                Some(note) => format!("{verdict}{separator}{note}{separator}{fm_note}"),
                None => format!("{verdict}{separator}{fm_note}"),
            };
            Compatibility {
                model: model.to_owned(),
                known: true,
                esim_supported: Some(esim),
                matched_model: Some(matched),
                note: text,
            }
        }
        None => Compatibility {
            model: model.to_owned(),
            known: false,
            esim_supported: None,
            matched_model: None,
            note: match lang {
                Lang::En => format!("This model is not on our list; check the phone's settings for \"Add eSIM\". {FM_NOTE}"),
                Lang::ZhCn => format!("该机型不在我们的列表中；请在手机设置中查看是否有“添加 eSIM”。{FM_NOTE_ZH}"),
            },
        },
    }
}

/// Can this device use an eSIM?
#[utoipa::path(
    operation_id = "check_device_compatibility",
    tag = "catalog",
    params(CompatibilityQuery),
    responses(
        (status = 200, body = Compatibility),
        (status = 400, description = "`model` missing.", body = Problem, content_type = "application/problem+json"),
        (status = 422, description = "`model` empty or too long.", body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["catalog:read"]), ("bearer" = ["catalog:read"]))
)]
#[get("/v1/devices/compatibility")]
async fn compatibility(
    _auth: Authorized<require::CatalogRead>,
    db: web::Data<Db>,
    query: web::Query<CompatibilityQuery>,
) -> Result<web::Json<Compatibility>, ApiError> {
    let asked = query.into_inner().model;
    let model = asked.trim().to_owned();
    // A model with no letter or digit names no device: it is simply not known.
    let key = model_key(&model);
    if model.is_empty() || asked.chars().count() > MAX_MODEL_CHARS {
        return Err(ApiError::validation(vec![FieldError::new(
            "model",
            format!("must name a model in 1 to {MAX_MODEL_CHARS} characters"),
        )]));
    }
    let added = db
        .run(move |conn| lookup_added(conn, &key).map_err(ApiError::from))
        .await?;
    Ok(web::Json(check(
        &model,
        added,
        crate::request_scope::current_lang(),
    )))
}

/// Add or correct a device model.
#[utoipa::path(
    operation_id = "add_device",
    tag = "admin",
    request_body = NewDevice,
    responses(
        (status = 201, description = "Added (or replaced an earlier entry for the same model).", body = Device),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 422, body = Problem, content_type = "application/problem+json"),
    ),
    security(("oauth2" = ["admin"]), ("bearer" = ["admin"]))
)]
#[post("/v1/admin/devices")]
async fn add_device(
    _auth: Authorized<require::Admin>,
    db: web::Data<Db>,
    body: web::Json<NewDevice>,
) -> Result<HttpResponse, ApiError> {
    let device = body.into_inner();
    let model = device.model.trim().to_owned();
    let key = model_key(&model);
    if key.is_empty() || device.model.chars().count() > MAX_MODEL_CHARS {
        return Err(ApiError::validation(vec![FieldError::new(
            "model",
            format!("must name a model in 1 to {MAX_MODEL_CHARS} characters"),
        )]));
    }
    let clean = |note: Option<String>| note.map(|n| n.trim().to_owned()).filter(|n| !n.is_empty());
    let too_long = [&device.note, &device.note_zh].iter().any(|n| {
        n.as_deref()
            .is_some_and(|n| n.chars().count() > MAX_NOTE_CHARS)
    });
    if too_long {
        return Err(ApiError::validation(vec![FieldError::new(
            "note",
            format!("notes must be at most {MAX_NOTE_CHARS} characters"),
        )]));
    }
    let note = clean(device.note);
    let note_zh = clean(device.note_zh);
    let esim = device.esim_supported;
    let now = time::to_db(time::now());
    let stored = Device {
        model: model.clone(),
        esim_supported: esim,
        note: note.clone(),
        note_zh: note_zh.clone(),
    };
    db.transaction(move |conn| {
        diesel::delete(devices::table.find(&key)).execute(conn)?;
        diesel::insert_into(devices::table)
            .values((
                devices::model_key.eq(&key),
                devices::model.eq(&model),
                devices::esim_supported.eq(esim),
                devices::note.eq(&note),
                devices::note_zh.eq(&note_zh),
                devices::created_at.eq(now),
            ))
            .execute(conn)
            .map_err(ApiError::from)
    })
    .await?;
    Ok(HttpResponse::Created().json(stored))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_ignore_case_spacing_punctuation_and_brand() {
        assert_eq!(model_key("iPhone 15 Pro"), "iphone15pro");
        assert_eq!(model_key("Apple iPhone-15-PRO"), "iphone15pro");
        assert_eq!(model_key("Samsung Galaxy S20+"), "galaxys20+");
        assert_eq!(model_key("google  pixel 8a"), "pixel8a");
    }

    #[test]
    fn the_shipped_list_covers_the_promised_ranges() {
        for (model, esim) in [
            ("iPhone XS", true),
            ("iphone xr", true),
            ("iPhone 16 Pro Max", true),
            ("iPhone X", false),
            ("Pixel 3", true),
            ("Pixel 2", false),
            ("Galaxy S20", true),
            ("Samsung Galaxy Z Fold5", true),
            ("Galaxy Z Flip", true),
        ] {
            let answer = check(model, None, Lang::En);
            assert!(answer.known, "{model}");
            assert_eq!(answer.esim_supported, Some(esim), "{model}");
            assert!(answer.note.contains("FM cards need only a SIM slot"));
        }
        let unknown = check("Nokia 3310", None, Lang::En);
        assert!(!unknown.known && unknown.esim_supported.is_none());
    }

    #[test]
    fn notes_are_in_chinese_when_asked_and_every_shipped_note_has_a_translation() {
        let answer = check("iPhone 15 Pro", None, Lang::ZhCn);
        assert!(
            answer.note.starts_with("该机型支持 eSIM。"),
            "{}",
            answer.note
        );
        assert!(answer.note.contains("在中国大陆"), "{}", answer.note);
        for device in SHIPPED.values() {
            if let Some(note) = &device.note {
                assert!(shipped_note_zh(note).is_some(), "no Chinese for {note:?}");
            }
        }
        let operator = check(
            "Phone",
            Some((
                "Phone".into(),
                true,
                Some("EU only".into()),
                Some("仅欧盟版".into()),
            )),
            Lang::ZhCn,
        );
        assert!(operator.note.contains("仅欧盟版"));
        let fallback = check(
            "Phone",
            Some(("Phone".into(), true, Some("EU only".into()), None)),
            Lang::ZhCn,
        );
        assert!(fallback.note.contains("EU only"), "English when no Chinese");
    }

    #[test]
    fn an_operator_entry_wins_over_the_shipped_list() {
        let answer = check(
            "iPhone X",
            Some(("iPhone X (JP)".into(), true, None, None)),
            Lang::En,
        );
        assert_eq!(answer.esim_supported, Some(true));
        assert_eq!(answer.matched_model.as_deref(), Some("iPhone X (JP)"));
    }
}
