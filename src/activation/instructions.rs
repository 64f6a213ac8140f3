//! Install guides: how the subscriber puts a renewal on the device, per platform and in
//! the request's language. An eSIM with a new profile: scan the QR, enter the details
//! by hand, or (iOS) open Apple's direct link; an FM card or an installed eSIM renewed
//! in place: nothing to install, and what to do if the new term has not appeared.

use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Activation, ActivationMode, ActivationRow};
use crate::error::{ApiError, FieldError};
use crate::i18n::Lang;

/// The device's system.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Platform {
    Ios,
    Android,
}

/// `GET …/activation/instructions` query.
#[derive(Debug, Clone, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct InstructionsQuery {
    /// `ios` or `android`.
    #[param(value_type = Platform)]
    pub platform: String,
}

impl InstructionsQuery {
    pub fn platform(&self) -> Result<Platform, ApiError> {
        match self.platform.as_str() {
            "ios" => Ok(Platform::Ios),
            "android" => Ok(Platform::Android),
            _ => Err(ApiError::validation(vec![FieldError::new(
                "platform",
                "must be ios or android",
            )])),
        }
    }
}

/// One way to install.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum MethodKind {
    /// Scan the QR code.
    Qr,
    /// Type the SM-DP+ address and activation code.
    Manual,
    /// iOS 17.4+: open Apple's link on the device.
    DirectLink,
    /// Nothing to install: the network delivers the renewal.
    OverTheAir,
}

#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct InstallMethod {
    pub kind: MethodKind,
    pub title: String,
    /// In order.
    pub steps: Vec<String>,
    /// `direct_link`: the link to open; `qr`: the QR image.
    pub link: Option<String>,
}

/// How to install the renewal, in the language asked for.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Instructions {
    pub order_id: uuid::Uuid,
    pub platform: Platform,
    /// `zh-CN` or `en` (also the `Content-Language`).
    #[schema(example = "zh-CN")]
    pub language: String,
    pub mode: ActivationMode,
    /// Preferred first.
    pub methods: Vec<InstallMethod>,
    /// What to do when it does not work.
    pub troubleshooting: Vec<String>,
}

fn texts(lang: Lang, items: &[(&str, &str)]) -> Vec<String> {
    items
        .iter()
        .map(|(en, zh)| lang.pick(en, zh).to_owned())
        .collect()
}

fn method(
    kind: MethodKind,
    lang: Lang,
    title: (&str, &str),
    steps: &[(&str, &str)],
    link: Option<String>,
) -> InstallMethod {
    InstallMethod {
        kind,
        title: lang.pick(title.0, title.1).to_owned(),
        steps: texts(lang, steps),
        link,
    }
}

/// The guide for `row` (shown as `shown`, whose code is released) on `platform`.
pub fn guide(
    row: &ActivationRow,
    shown: &Activation,
    platform: Platform,
    lang: Lang,
) -> Result<Instructions, ApiError> {
    if row.awaits_verification() {
        return Err(super::awaiting_verification());
    }
    let over_the_air = || {
        let intro = match row.mode {
            ActivationMode::InPlace => (
                "Your installed eSIM is renewed where it is: there is nothing to scan or download.",
                "已安装的 eSIM 将直接续期：无需扫码或下载。",
            ),
            _ => (
                "Your SIM card receives the new plan over the air: there is nothing to install.",
                "您的 SIM 卡将通过空中下载（OTA）接收新套餐：无需安装。",
            ),
        };
        vec![method(
            MethodKind::OverTheAir,
            lang,
            ("Over the air", "空中下载"),
            &[
                intro,
                (
                    "Keep the phone on, with signal, for a few minutes.",
                    "请保持手机开机并有信号，等待几分钟。",
                ),
                (
                    "The new validity shows in the balance once the network confirms it.",
                    "网络确认后，余额中将显示新的有效期。",
                ),
            ],
            None,
        )]
    };
    let methods = match (row.mode, platform) {
        (ActivationMode::Ota | ActivationMode::InPlace, _) => over_the_air(),
        (ActivationMode::EsimProfile, Platform::Ios) => {
            let mut methods = vec![
                method(
                    MethodKind::Qr,
                    lang,
                    ("Scan the QR code", "扫描二维码"),
                    &[
                        ("Connect the iPhone to Wi-Fi.", "将 iPhone 连接到 Wi-Fi。"),
                        (
                            "Open Settings → Cellular → Add eSIM.",
                            "打开 设置 → 蜂窝网络 → 添加 eSIM。",
                        ),
                        (
                            "Choose “Use QR Code” and scan the QR code.",
                            "选择“使用二维码”，扫描二维码。",
                        ),
                        (
                            "Follow the prompts, then choose the new line for cellular data.",
                            "按提示完成，然后将新线路设为蜂窝数据线路。",
                        ),
                    ],
                    shown.qr_code_png_url.clone(),
                ),
                method(
                    MethodKind::Manual,
                    lang,
                    ("Enter the details by hand", "手动输入"),
                    &[
                        (
                            "Open Settings → Cellular → Add eSIM → Use QR Code.",
                            "打开 设置 → 蜂窝网络 → 添加 eSIM → 使用二维码。",
                        ),
                        ("Tap “Enter Details Manually”.", "轻点“手动输入详细信息”。"),
                        (
                            "Enter the SM-DP+ address and the activation code (matching id) shown with this guide.",
                            "输入本指南所附的 SM-DP+ 地址和激活码（匹配 ID）。",
                        ),
                    ],
                    None,
                ),
            ];
            if let Some(link) = &shown.apple_install_url {
                methods.insert(
                    0,
                    method(
                        MethodKind::DirectLink,
                        lang,
                        ("Open the install link (iOS 17.4 or later)", "打开安装链接（iOS 17.4 及以上）"),
                        &[
                            ("Open the link on the iPhone itself.", "在 iPhone 本机上打开此链接。"),
                            (
                                "Confirm “Add eSIM” and follow the prompts.",
                                "确认“添加 eSIM”并按提示完成。",
                            ),
                        ],
                        Some(link.clone()),
                    ),
                );
            }
            methods
        }
        (ActivationMode::EsimProfile, Platform::Android) => vec![
            method(
                MethodKind::Qr,
                lang,
                ("Scan the QR code", "扫描二维码"),
                &[
                    ("Connect the phone to Wi-Fi.", "将手机连接到 Wi-Fi。"),
                    (
                        "Open Settings → Network & internet → SIMs → Add SIM (“Download a SIM instead?” on some phones).",
                        "打开 设置 → 网络和互联网 → SIM 卡 → 添加 SIM 卡（部分机型为“改为下载 SIM 卡？”）。",
                    ),
                    ("Scan the QR code.", "扫描二维码。"),
                    (
                        "Follow the prompts and turn the new eSIM on.",
                        "按提示完成并启用新的 eSIM。",
                    ),
                ],
                shown.qr_code_png_url.clone(),
            ),
            method(
                MethodKind::Manual,
                lang,
                ("Enter the code by hand", "手动输入"),
                &[
                    (
                        "On the QR scanner, tap “Need help?” or “Enter it manually”.",
                        "在扫码界面轻点“需要帮助？”或“手动输入”。",
                    ),
                    (
                        "Enter the whole activation code (LPA:1$…), or the SM-DP+ address and matching id where asked separately.",
                        "输入完整激活码（LPA:1$…），或按提示分别输入 SM-DP+ 地址和匹配 ID。",
                    ),
                ],
                None,
            ),
        ],
    };
    let troubleshooting = match row.mode {
        ActivationMode::EsimProfile => texts(
            lang,
            &[
                (
                    "The code installs once: do not delete the eSIM after installing it.",
                    "激活码只能安装一次：安装后请勿删除该 eSIM。",
                ),
                (
                    "“Cannot add eSIM”: check Wi-Fi, that the phone is not carrier-locked, and try again.",
                    "提示“无法添加 eSIM”：请检查 Wi-Fi、确认手机未被运营商锁定，然后重试。",
                ),
                (
                    "Still failing: contact support with the order's receipt number.",
                    "仍然失败：请携带订单的交易凭证号联系客服。",
                ),
            ],
        ),
        ActivationMode::Ota | ActivationMode::InPlace => texts(
            lang,
            &[
                (
                    "Not there after 10 minutes: turn airplane mode on and off, or restart the phone.",
                    "10 分钟后仍未生效：请开关一次飞行模式，或重启手机。",
                ),
                (
                    "Check that the SIM has signal and is the line used for data.",
                    "请确认 SIM 卡有信号，且为数据线路。",
                ),
                (
                    "Still missing after an hour: contact support with the order's receipt number.",
                    "一小时后仍未生效：请携带订单的交易凭证号联系客服。",
                ),
            ],
        ),
    };
    Ok(Instructions {
        order_id: shown.order_id,
        platform,
        language: lang.tag().to_owned(),
        mode: row.mode,
        methods,
        troubleshooting,
    })
}
