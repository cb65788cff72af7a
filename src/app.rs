//! The HTML shell, the router and the pages.
//!
//! Routes: `/` join (choose a name), `/u/{name}` the app as that name, `/call/{peer}` a link that
//! opens the app ready to call `peer`. `/webrtc/{name}` is the signaling WebSocket (server).

use crate::components::call_screen::CallScreen;
use crate::components::join::JoinPage;
use crate::components::text::{self, Ui};
use crate::components::{lang, t};
use crate::i18n::Lang;
use crate::signal::validate_name;
use leptos::prelude::*;
use leptos_meta::{provide_meta_context, MetaTags, Stylesheet, Title};
use leptos_router::components::{Route, Router, Routes};
use leptos_router::hooks::{use_params_map, use_query_map};
use leptos_router::path;

/// Inline so the app is installable and works offline even where the WASM never loads.
const REGISTER_SERVICE_WORKER: &str = "if ('serviceWorker' in navigator) { \
    addEventListener('load', function () { navigator.serviceWorker.register('/sw.js') \
    .catch(function (e) { console.warn('service worker not registered', e); }); }); }";

/// On `/u/{name}`, opens the signaling socket while the page is still being parsed, keeping the
/// frames that arrive until the WASM adopts it (`client::socket::connect`): the relay's handshake
/// overlaps the WASM download instead of following it. The secret is made here on a first visit,
/// the same way the WASM would (16 random bytes, hex) and under the same key. A Call tapped
/// before the WASM has loaded is kept too (`duetEarlyDial`) and placed once it has.
pub const EARLY_SOCKET: &str = "(function () { \
    var m = location.pathname.match(/^\\/u\\/([^\\/]+)\\/?$/); \
    if (!m || !window.WebSocket) return; \
    try { \
      var s = localStorage, k = s.getItem('duet.key'); \
      if (!k) { var b = new Uint8Array(16); crypto.getRandomValues(b); \
        k = Array.prototype.map.call(b, function (x) { return (x < 16 ? '0' : '') + x.toString(16); }).join(''); \
        s.setItem('duet.key', k); } \
      var ws = new WebSocket((location.protocol == 'https:' ? 'wss://' : 'ws://') + location.host + '/webrtc/' + m[1] + '?key=' + k); \
      var q = []; ws.onmessage = function (e) { q.push(e.data); }; \
      window.duetEarly = { ws: ws, name: decodeURIComponent(m[1]), key: k, queue: q }; \
    } catch (e) { console.warn('early signaling socket not opened', e); } \
    document.addEventListener('submit', function (e) { \
      var f = e.target, i = f.querySelector && f.querySelector('input[name=friend]'); \
      if (document.documentElement.hasAttribute('data-hydrated') || !i || !f.classList.contains('dial')) return; \
      e.preventDefault(); window.duetEarlyDial = i.value; \
    }, true); })();";

pub fn shell(options: LeptosOptions) -> impl IntoView {
    let lang = page_lang();
    view! {
        <!DOCTYPE html>
        <html lang=lang.tag()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover"/>
                <meta name="description" content=text::ui(lang, Ui::Tagline)/>
                <meta name="theme-color" content="#0f172a"/>
                <link rel="icon" href="/favicon.ico"/>
                <link rel="manifest" href="/manifest.webmanifest"/>
                <link rel="apple-touch-icon" href="/icons/icon-192.png"/>
                <meta name="apple-mobile-web-app-capable" content="yes"/>
                // Registered from the shell, not the WASM: it works before (and without) hydration.
                <script inner_html=EARLY_SOCKET></script>
                <script inner_html=REGISTER_SERVICE_WORKER></script>
                <AutoReload options=options.clone()/>
                <HydrationScripts options/>
                <MetaTags/>
            </head>
            <body>
                <App/>
            </body>
        </html>
    }
}

/// The page's language. The server decides (cookie, else Accept-Language) and writes it into
/// `<html lang>`; the browser reads it back from there, so hydration renders the same words.
fn page_lang() -> Lang {
    #[cfg(feature = "ssr")]
    if let Some(req) = use_context::<axum::http::request::Parts>() {
        return Lang::from_headers(&req.headers);
    }
    #[cfg(feature = "hydrate")]
    if let Some(tag) = document()
        .document_element()
        .and_then(|e| e.get_attribute("lang"))
    {
        return Lang::from_tag(&tag).unwrap_or_default();
    }
    Lang::default()
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_context(RwSignal::new(page_lang()));
    view! {
        <Stylesheet id="leptos" href="/pkg/duet.css"/>
        <Title text="Duet"/>
        <OfflineBanner/>
        <Router>
            <Routes fallback=NotFound>
                <Route path=path!("/") view=JoinPage/>
                <Route path=path!("/call/:peer") view=JoinPage/>
                <Route path=path!("/u/:name") view=CallPage/>
            </Routes>
        </Router>
    }
}

/// `/u/{name}`: the app as `name`; `?call=peer` pre-fills the friend field.
#[component]
fn CallPage() -> impl IntoView {
    let name = use_params_map().with_untracked(|p| p.get("name").unwrap_or_default());
    let friend = use_query_map().with_untracked(|q| q.get("call").unwrap_or_default());
    let lang = lang();
    match validate_name(&name) {
        Ok(()) => view! { <CallScreen me=name friend/> }.into_any(),
        Err(e) => view! {
            <main class="page message">
                <h1>{t(Ui::BadNameTitle)}</h1>
                <p>{move || text::bad_name(lang.get(), &name, &e)}</p>
                <a class="btn primary" href="/">{t(Ui::ChooseName)}</a>
            </main>
        }
        .into_any(),
    }
}

/// Says so while the server cannot be reached (the service worker may be showing a cached page).
#[component]
fn OfflineBanner() -> impl IntoView {
    // Online on the server and at hydration, so both render the same; the browser corrects it.
    let online = RwSignal::new(true);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        // navigator.onLine alone is not enough: it stays true on a network without a route to
        // us (and under some emulations), so ask the server too.
        let check = move || {
            leptos::task::spawn_local(async move {
                let reachable = window().navigator().on_line() && crate::client::server_reachable().await;
                online.set(reachable);
            })
        };
        check();
        let on = window_event_listener(leptos::ev::online, move |_| check());
        let off = window_event_listener(leptos::ev::offline, move |_| online.set(false));
        // While offline, look again now and then: not every platform fires `online`.
        let poll = set_interval_with_handle(
            move || {
                if !online.get_untracked() {
                    check();
                }
            },
            std::time::Duration::from_secs(5),
        )
        .ok();
        on_cleanup(move || {
            on.remove();
            off.remove();
            if let Some(poll) = poll {
                poll.clear();
            }
        });
    });
    view! {
        <Show when=move || !online.get()>
            <div class="offline-banner" role="status">
                {t(Ui::Offline)}
            </div>
        </Show>
    }
}

#[component]
fn NotFound() -> impl IntoView {
    #[cfg(feature = "ssr")]
    if let Some(resp) = use_context::<leptos_axum::ResponseOptions>() {
        resp.set_status(axum::http::StatusCode::NOT_FOUND);
    }
    view! {
        <main class="page message">
            <h1>{t(Ui::NotFound)}</h1>
            <a class="btn primary" href="/">{t(Ui::OpenDuet)}</a>
        </main>
    }
}
