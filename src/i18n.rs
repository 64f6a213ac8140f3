//! The languages answers come in: Simplified Chinese (`zh-CN`) and English (`en`, the
//! fallback), chosen from `Accept-Language` (RFC 9110 §12.5.4: quality values, the
//! first of equal ones, `*` and unknown tags ignored in favour of the fallback).

/// A language the API answers in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Lang {
    #[default]
    En,
    ZhCn,
}

impl Lang {
    /// The `Content-Language` tag.
    pub fn tag(self) -> &'static str {
        match self {
            Self::En => "en",
            Self::ZhCn => "zh-CN",
        }
    }

    fn of_range(range: &str) -> Option<Self> {
        let range = range.to_ascii_lowercase();
        let primary = range.split('-').next().unwrap_or("");
        match primary {
            "en" => Some(Self::En),
            // Simplified Chinese: zh, zh-CN, zh-Hans(-…), zh-SG; not zh-TW/zh-HK/zh-Hant.
            "zh" if !(range.contains("hant")
                || range.ends_with("-tw")
                || range.ends_with("-hk")
                || range.ends_with("-mo")) =>
            {
                Some(Self::ZhCn)
            }
            _ => None,
        }
    }

    /// The best supported language for an `Accept-Language` value (`en` if none fits).
    pub fn negotiate(header: Option<&str>) -> Self {
        let Some(header) = header else {
            return Self::default();
        };
        let mut best: Option<(u16, Self)> = None;
        for item in header.split(',') {
            let mut parts = item.split(';');
            let range = parts.next().unwrap_or("").trim();
            let quality = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1000), parse_quality);
            let (Some(lang), Some(quality)) = (Self::of_range(range), quality) else {
                continue;
            };
            if quality > 0 && best.is_none_or(|(q, _)| quality > q) {
                best = Some((quality, lang));
            }
        }
        best.map_or_else(Self::default, |(_, lang)| lang)
    }

    /// Picks the text of this language.
    pub fn pick<'a>(self, en: &'a str, zh: &'a str) -> &'a str {
        match self {
            Self::En => en,
            Self::ZhCn => zh,
        }
    }
}

/// A quality value in thousandths (`q=0.8` → 800); `None` if malformed.
fn parse_quality(text: &str) -> Option<u16> {
    let value: f32 = text.trim().parse().ok()?;
    (0.0..=1.0)
        .contains(&value)
        .then(|| (value * 1000.0).round() as u16)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_best_supported_language_wins() {
        assert_eq!(Lang::negotiate(None), Lang::En);
        assert_eq!(Lang::negotiate(Some("zh-CN")), Lang::ZhCn);
        assert_eq!(Lang::negotiate(Some("zh-Hans-CN,zh;q=0.9")), Lang::ZhCn);
        assert_eq!(
            Lang::negotiate(Some("en-US,en;q=0.9,zh-CN;q=0.8")),
            Lang::En
        );
        assert_eq!(
            Lang::negotiate(Some("fr-FR, zh-CN;q=0.7, en;q=0.5")),
            Lang::ZhCn
        );
        assert_eq!(
            Lang::negotiate(Some("zh-TW")),
            Lang::En,
            "traditional: fallback"
        );
        assert_eq!(Lang::negotiate(Some("de, *")), Lang::En);
        assert_eq!(Lang::negotiate(Some("zh-CN;q=0, en;q=0.1")), Lang::En);
        assert_eq!(Lang::negotiate(Some("zh-CN;q=abc")), Lang::En);
    }
}
