//! The UI language: which one, how it is chosen and remembered. The words themselves are in
//! [`crate::components::text`].
//!
//! The server picks the language from the `duet_lang` cookie (set by the toggle), else from
//! `Accept-Language`, and writes it into `<html lang>`; the hydrating client reads it back from
//! there, so both render the same page.

/// A UI language.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Lang {
    #[default]
    En,
    Zh,
}

/// Cookie that remembers the user's choice (a year; the server reads it on every page).
pub const COOKIE: &str = "duet_lang";

impl Lang {
    pub const ALL: [Lang; 2] = [Lang::En, Lang::Zh];

    /// The BCP 47 tag, for `<html lang>` and the cookie.
    pub fn tag(self) -> &'static str {
        match self {
            Lang::En => "en",
            Lang::Zh => "zh-CN",
        }
    }

    /// The language's own name, as the toggle shows it.
    pub fn native_name(self) -> &'static str {
        match self {
            Lang::En => "English",
            Lang::Zh => "中文",
        }
    }

    /// The other language (there are two).
    pub fn other(self) -> Lang {
        match self {
            Lang::En => Lang::Zh,
            Lang::Zh => Lang::En,
        }
    }

    /// A language tag (`zh`, `zh-CN`, `zh-Hans-SG`, `en-GB`, any case) if we have it.
    pub fn from_tag(tag: &str) -> Option<Lang> {
        let primary = tag.trim().split(['-', '_']).next()?.to_ascii_lowercase();
        match primary.as_str() {
            "en" => Some(Lang::En),
            "zh" => Some(Lang::Zh),
            _ => None,
        }
    }

    /// The best of our languages for an `Accept-Language` header: the supported tag with the
    /// highest quality, the earlier one on a tie; English if none is acceptable.
    pub fn negotiate(accept_language: &str) -> Lang {
        let mut best: Option<(f32, Lang)> = None;
        // Bounded: a header is at most a few KiB, and only the first entries matter.
        for entry in accept_language.split(',').take(32) {
            let mut parts = entry.split(';');
            let Some(lang) = parts.next().and_then(Lang::from_tag) else {
                continue;
            };
            let q = parts
                .find_map(|p| p.trim().strip_prefix("q="))
                .map_or(Some(1.0), |q| q.trim().parse::<f32>().ok())
                .filter(|q| (0.0..=1.0).contains(q))
                .unwrap_or(0.0);
            if q > 0.0 && best.is_none_or(|(b, _)| q > b) {
                best = Some((q, lang));
            }
        }
        best.map_or(Lang::En, |(_, lang)| lang)
    }

    /// The remembered choice in a `Cookie` header, if any.
    pub fn from_cookie_header(cookies: &str) -> Option<Lang> {
        cookies.split(';').find_map(|c| {
            let (k, v) = c.trim().split_once('=')?;
            (k == COOKIE).then(|| Lang::from_tag(v)).flatten()
        })
    }

    /// The `Set-Cookie` / `document.cookie` value that remembers this choice for a year.
    pub fn cookie(self) -> String {
        format!("{COOKIE}={}; Path=/; Max-Age=31536000; SameSite=Lax", self.tag())
    }

    /// The language for a request's headers (see [`Lang::for_request`]).
    #[cfg(feature = "ssr")]
    pub fn from_headers(headers: &axum::http::HeaderMap) -> Lang {
        use axum::http::header::{ACCEPT_LANGUAGE, COOKIE as COOKIE_HEADER};
        let header = |name| headers.get(name).and_then(|v| v.to_str().ok());
        Lang::for_request(header(COOKIE_HEADER), header(ACCEPT_LANGUAGE))
    }

    /// The language for a request: the remembered choice, else the browser's preference.
    pub fn for_request(cookie: Option<&str>, accept_language: Option<&str>) -> Lang {
        cookie
            .and_then(Lang::from_cookie_header)
            .unwrap_or_else(|| Lang::negotiate(accept_language.unwrap_or_default()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiates_by_quality_then_order() {
        assert_eq!(Lang::negotiate("zh-CN,zh;q=0.9,en;q=0.8"), Lang::Zh);
        assert_eq!(Lang::negotiate("en-US,en;q=0.9,zh-CN;q=0.8"), Lang::En);
        assert_eq!(Lang::negotiate("fr-FR,fr;q=0.9,zh-TW;q=0.7,en;q=0.5"), Lang::Zh);
        assert_eq!(Lang::negotiate("en;q=0.5, zh-Hans;q=0.6"), Lang::Zh);
        assert_eq!(Lang::negotiate("zh;q=0.5, en;q=0.5"), Lang::Zh, "tie: the first");
        assert_eq!(Lang::negotiate("ZH_cn"), Lang::Zh);
    }

    #[test]
    fn falls_back_to_english() {
        for header in [
            "",
            "fr",
            "de-DE;q=1",
            "zh;q=0",
            "zh;q=abc",
            "zh;q=2",
            ",;;=,",
            "*",
        ] {
            assert_eq!(Lang::negotiate(header), Lang::En, "{header:?}");
        }
    }

    #[test]
    fn a_remembered_choice_beats_the_header() {
        let zh = Some("theme=x; duet_lang=zh-CN; other=1");
        assert_eq!(Lang::for_request(zh, Some("en")), Lang::Zh);
        assert_eq!(Lang::for_request(Some("duet_lang=en"), Some("zh")), Lang::En);
        assert_eq!(Lang::for_request(Some("duet_lang=klingon"), Some("zh")), Lang::Zh);
        assert_eq!(Lang::for_request(None, None), Lang::En);
    }

    #[test]
    fn tags_round_trip() {
        for lang in Lang::ALL {
            assert_eq!(Lang::from_tag(lang.tag()), Some(lang));
            assert_eq!(lang.other().other(), lang);
            // What the toggle stores, the server reads back.
            let stored = lang.cookie();
            let pair = stored.split(';').next().unwrap();
            assert_eq!(Lang::from_cookie_header(&format!("x=1; {pair}")), Some(lang));
        }
    }
}
