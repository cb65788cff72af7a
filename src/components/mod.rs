//! Leptos components: they render [`crate::call::State`] and dispatch [`crate::call::Event`]s;
//! no protocol or WebRTC logic lives here.

pub mod call_screen;
#[cfg(feature = "hydrate")]
mod extras;
pub mod join;
pub mod text;

use crate::i18n::Lang;
use leptos::prelude::*;
use text::Ui;

/// What the user typed into the input `id` of the server-rendered page before the WASM took
/// over: hydration sets the input's value from its signal and would wipe it (slow phones).
pub fn typed_before_hydration(id: &str) -> Option<String> {
    #[cfg(feature = "hydrate")]
    {
        use wasm_bindgen::JsCast;
        let input = document()
            .get_element_by_id(id)?
            .dyn_into::<web_sys::HtmlInputElement>()
            .ok()?;
        Some(input.value()).filter(|v| !v.is_empty())
    }
    #[cfg(not(feature = "hydrate"))]
    {
        let _ = id;
        None
    }
}

/// The path and query of the page being rendered (server) or hydrated (browser): both sides
/// read the same URL, so what is made from it hydrates cleanly.
pub fn page_url() -> (String, String) {
    #[cfg(feature = "ssr")]
    if let Some(req) = use_context::<axum::http::request::Parts>() {
        return (
            req.uri.path().to_owned(),
            req.uri.query().unwrap_or_default().to_owned(),
        );
    }
    #[cfg(feature = "hydrate")]
    {
        let location = window().location();
        let search = location.search().unwrap_or_default();
        return (
            location.pathname().unwrap_or_default(),
            search.trim_start_matches('?').to_owned(),
        );
    }
    #[allow(unreachable_code)]
    (String::from("/"), String::new())
}

/// The UI language, provided by [`crate::app::App`]; the toggle changes it in place.
pub fn lang() -> RwSignal<Lang> {
    use_context().unwrap_or_else(|| RwSignal::new(Lang::default()))
}

/// A fixed string that follows the language.
pub fn t(key: Ui) -> impl Fn() -> &'static str + Copy + Send + Sync + 'static {
    let lang = lang();
    move || text::ui(lang.get(), key)
}

/// Switches between English and 中文. A link, so it works before hydration too (the server sets
/// the cookie and sends the page back); once hydrated it switches in place, without a reload,
/// so a call goes on.
#[component]
pub fn LangToggle() -> impl IntoView {
    let lang = lang();
    // Without JavaScript the server sets the cookie and sends the browser back to `back` (no
    // Referer: every response says `Referrer-Policy: no-referrer`).
    let back = match page_url() {
        (path, query) if query.is_empty() => path,
        (path, query) => format!("{path}?{query}"),
    };
    let back = crate::signal::encode_segment(&back);
    let href = move || format!("/lang/{}?back={back}", lang.get().other().tag());
    view! {
        <a
            class="lang-toggle"
            href=href
            hreflang=move || lang.get().other().tag()
            // Named by what it shows ("中文", in its own language), so voice control finds it by
            // that; the title (in the page's language) says what it does.
            title=t(Ui::SwitchLanguage)
            on:click=move |ev| {
                ev.prevent_default();
                let next = lang.get_untracked().other();
                lang.set(next);
                #[cfg(feature = "hydrate")]
                crate::client::remember_lang(next);
            }
        >
            <span lang=move || lang.get().other().tag()>{move || lang.get().other().native_name()}</span>
        </a>
    }
}
