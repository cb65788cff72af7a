//! The HTML shell and the pages.
//!
//! Pages: `/` join (choose a name), `/u/{name}` the app as that name, `/call/{peer}` a link that
//! opens the app ready to call `peer`. `/webrtc/{name}` is the signaling WebSocket (server).
//! No client-side router: every page is a full load (the service worker and the HTTP cache make
//! a second one cheap), and [`Page::of`] reads the URL the same way on the server and in the
//! hydrating browser. leptos_router was a fifth of the WASM (179 of 875 KiB).

use crate::components::call_screen::CallScreen;
use crate::components::join::JoinPage;
use crate::components::text::{self, Ui};
use crate::components::{lang, t};
use crate::i18n::Lang;
use crate::signal::{decode_segment, validate_name};
use leptos::either::EitherOf4;
use leptos::prelude::*;
#[cfg(feature = "ssr")]
use leptos_meta::MetaTags;
use leptos_meta::{provide_meta_context, Title};

/// Inline so the app is installable and works offline even where the WASM never loads.
#[cfg(feature = "ssr")]
const REGISTER_SERVICE_WORKER: &str = "if ('serviceWorker' in navigator) { \
    addEventListener('load', function () { navigator.serviceWorker.register('/sw.js') \
    .catch(function (e) { console.warn('service worker not registered', e); }); }); }";

/// On `/u/{name}`, opens the signaling socket while the page is still being parsed, keeping the
/// frames that arrive until the WASM adopts it (`client::socket::connect`): the relay's handshake
/// overlaps the WASM download instead of following it. The secret is made here on a first visit,
/// the same way the WASM would (16 random bytes, hex) and under the same key, and sent as the
/// WASM sends it (`signal::SUBPROTOCOL`: in a header, not the URL). A Call tapped
/// before the WASM has loaded is kept too (`duetEarlyDial`) and placed once it has.
pub const EARLY_SOCKET: &str = "(function () { \
    var m = location.pathname.match(/^\\/u\\/([^\\/]+)\\/?$/); \
    if (!m || !window.WebSocket) return; \
    try { \
      var s = localStorage, k = s.getItem('duet.key'); \
      if (!k) { var b = new Uint8Array(16); crypto.getRandomValues(b); \
        k = Array.prototype.map.call(b, function (x) { return (x < 16 ? '0' : '') + x.toString(16); }).join(''); \
        s.setItem('duet.key', k); } \
      var ws = new WebSocket((location.protocol == 'https:' ? 'wss://' : 'ws://') + location.host + '/webrtc/' + m[1] + '?early=1', ['duet', 'duet-key.' + k]); \
      var q = []; ws.onmessage = function (e) { q.push(e.data); }; \
      window.duetEarly = { ws: ws, name: decodeURIComponent(m[1]), key: k, queue: q }; \
    } catch (e) { console.warn('early signaling socket not opened', e); } \
    document.addEventListener('submit', function (e) { \
      var f = e.target, i = f.querySelector && f.querySelector('input[name=friend]'); \
      if (document.documentElement.hasAttribute('data-hydrated') || !i || !f.classList.contains('dial')) return; \
      e.preventDefault(); window.duetEarlyDial = i.value; \
    }, true); })();";

/// The page around the app (server only). The build's files are linked by content-addressed
/// names (cached for good, see `assets`), and every inline script carries the page's nonce, the
/// only way the Content-Security-Policy lets an inline script run.
/// The largest file people may send in a call (`--max-file-mib`), for the pages to carry.
#[cfg(feature = "ssr")]
static MAX_FILE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();

#[cfg(feature = "ssr")]
pub fn set_max_file(bytes: u64) {
    let _ = MAX_FILE.set(bytes);
}

#[cfg(feature = "ssr")]
pub fn shell(options: LeptosOptions) -> impl IntoView {
    let lang = page_lang();
    let nonce = leptos::nonce::use_nonce();
    let build = crate::assets::Build::of(&options);
    let (js, wasm, css) = (build.url("js"), build.url("wasm"), build.url("css"));
    let loader = build.split_loader_url();
    // What Leptos' HydrationScripts does, with the fingerprinted names (and the module compiled
    // from the page itself when a first visit's page carries it, see `inline`).
    let hydrate = format!(
        "import({js:?}).then(function (m) {{ \
         return m.default({{ {} }}).then(function () {{ m.hydrate(); }}); }});",
        crate::inline::module_or_path(&wasm)
    );
    // The early socket only where the app will take it: a valid name's page.
    let early = matches!(Page::current(), Page::Call { name, .. } if validate_name(&name).is_ok());
    // A private server's door loads no WASM: a stranger downloads nothing of the app (see `Door`).
    let app = !matches!(Page::current(), Page::Door { .. });
    view! {
        <!DOCTYPE html>
        // data-max-file: the chat reads its size cap here (see client/chat.rs).
        <html lang=lang.tag() data-max-file=MAX_FILE.get().copied().unwrap_or(crate::chat::DEFAULT_MAX_FILE).to_string()>
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1, viewport-fit=cover"/>
                <meta name="description" content=text::ui(lang, Ui::Tagline)/>
                <meta name="theme-color" content="#0f172a"/>
                <link rel="icon" href="/favicon.ico"/>
                <link rel="manifest" href="/manifest.webmanifest"/>
                <link rel="apple-touch-icon" href="/icons/icon-192.png"/>
                <meta name="apple-mobile-web-app-capable" content="yes"/>
                // Before the stylesheet: a script after it would wait for the CSS to arrive.
                {early.then(|| view! { <script nonce=nonce.clone() inner_html=EARLY_SOCKET></script> })}
                // Registered from the shell, not the WASM: it works before (and without) hydration.
                <script nonce=nonce.clone() inner_html=REGISTER_SERVICE_WORKER></script>
                {app.then(|| view! {
                    <link rel="modulepreload" href=js/>
                    {loader.map(|href| view! { <link rel="modulepreload" href=href/> })}
                    <link rel="preload" href=wasm r#as="fetch" r#type="application/wasm" crossorigin=""/>
                })}
                <link rel="stylesheet" href=css/>
                <AutoReload options=options.clone()/>
                {app.then(|| view! { <script type="module" nonce=nonce inner_html=hydrate></script> })}
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

/// Which page a URL shows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Page {
    /// `/` and `/call/{peer}` (`peer` only if it is a valid name).
    Join {
        peer: Option<String>,
    },
    /// `/u/{name}?call={friend}` (the name is checked by the page, which explains what is wrong).
    Call {
        name: String,
        friend: String,
    },
    /// `/door?next={path}`: a private server's door (see `access`), `note` after a failed try.
    Door {
        next: String,
        note: Option<DoorNote>,
    },
    NotFound,
}

/// Why the door is shown again.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DoorNote {
    Wrong,
    TooMany,
    /// An invite link that is forged, expired or used up.
    BadInvite,
}

impl Page {
    /// From the URL's path and query (without the `?`), percent-decoded.
    pub fn of(path: &str, query: &str) -> Page {
        let segments: Vec<&str> = path
            .trim_start_matches('/')
            .trim_end_matches('/')
            .split('/')
            .collect();
        match segments[..] {
            [""] => Page::Join { peer: None },
            ["call", peer] => Page::Join {
                peer: Some(decode_segment(peer)).filter(|p| validate_name(p).is_ok()),
            },
            ["u", name] => Page::Call {
                name: decode_segment(name),
                friend: query_value(query, "call").unwrap_or_default(),
            },
            ["door"] => Page::Door {
                next: query_value(query, "next")
                    .filter(|n| n.starts_with('/') && !n.starts_with("//"))
                    .unwrap_or_else(|| "/".to_owned()),
                note: [
                    ("slow", DoorNote::TooMany),
                    ("invite", DoorNote::BadInvite),
                    ("wrong", DoorNote::Wrong),
                ]
                .into_iter()
                .find_map(|(key, note)| query_value(query, key).map(|_| note)),
            },
            _ => Page::NotFound,
        }
    }

    /// The page of the request being rendered (server) or of the page being hydrated (browser).
    fn current() -> Page {
        let (path, query) = crate::components::page_url();
        Page::of(&path, &query)
    }
}

fn query_value(query: &str, key: &str) -> Option<String> {
    query
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| decode_segment(&v.replace('+', " ")))
}

#[component]
pub fn App() -> impl IntoView {
    provide_meta_context();
    provide_context(RwSignal::new(page_lang()));
    let page = match Page::current() {
        Page::Join { peer } => EitherOf4::A(view! { <JoinPage peer/> }),
        Page::Call { name, friend } => EitherOf4::B(view! { <CallPage name friend/> }),
        Page::Door { next, note } => EitherOf4::C(view! { <Door next note/> }),
        Page::NotFound => EitherOf4::D(view! { <NotFound/> }),
    };
    view! {
        <Title text="Duet"/>
        <OfflineBanner/>
        {page}
    }
}

/// `/u/{name}`: the app as `name`; `?call=peer` pre-fills the friend field.
#[component]
fn CallPage(name: String, friend: String) -> impl IntoView {
    let lang = lang();
    match validate_name(&name) {
        Ok(()) => leptos::either::Either::Left(view! { <CallScreen me=name friend/> }),
        Err(e) => leptos::either::Either::Right(view! {
            <main class="page message">
                <h1>{t(Ui::BadNameTitle)}</h1>
                <p>{move || text::bad_name(lang.get(), &name, &e)}</p>
                <a class="btn primary" href="/">{t(Ui::ChooseName)}</a>
            </main>
        }),
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

/// A private server's door: the access code, once per device. A plain form: `POST /door` checks
/// it, sets the session cookie and goes on to `next`. Rendered by the server only (the page
/// loads no WASM), so the browser build does not carry it.
#[component]
fn Door(next: String, note: Option<DoorNote>) -> impl IntoView {
    #[cfg(not(feature = "ssr"))]
    let _ = (next, note);
    #[cfg(feature = "ssr")]
    door_form(next, note)
}

#[cfg(feature = "ssr")]
fn door_form(next: String, note: Option<DoorNote>) -> impl IntoView {
    use crate::components::text::{door, Door};
    let lang = page_lang();
    let note = note.map(|n| match n {
        DoorNote::Wrong => door(lang, Door::Wrong),
        DoorNote::TooMany => door(lang, Door::TooMany),
        DoorNote::BadInvite => door(lang, Door::BadInvite),
    });
    view! {
        <main class="page join door">
            <crate::components::LangToggle/>
            <div class="logo" aria-hidden="true"></div>
            <h1>{door(lang, Door::Title)}</h1>
            <p class="tagline">{door(lang, Door::Text)}</p>
            <form class="join-form" method="post" action="/door">
                <input type="hidden" name="next" value=next/>
                <label for="code">{door(lang, Door::Code)}</label>
                <input id="code" name="code" type="password" autocomplete="current-password" required
                    aria-describedby="door-note" autofocus/>
                <p id="door-note" class="error" role="alert">{note}</p>
                <button class="btn primary" type="submit">{door(lang, Door::Enter)}</button>
            </form>
        </main>
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

#[cfg(test)]
mod tests {
    #[test]
    fn the_early_socket_sends_the_secret_the_way_the_app_does() {
        use crate::signal::{KEY_PROTOCOL, SUBPROTOCOL};
        let offered = format!("['{SUBPROTOCOL}', '{KEY_PROTOCOL}' + k]");
        assert!(super::EARLY_SOCKET.contains(&offered), "{}", super::EARLY_SOCKET);
        assert!(!super::EARLY_SOCKET.contains("key="), "no secret in the URL");
    }

    use super::*;

    #[test]
    fn urls_map_to_pages_on_both_sides_alike() {
        assert_eq!(Page::of("/", ""), Page::Join { peer: None });
        assert_eq!(
            Page::of("/call/bob", ""),
            Page::Join {
                peer: Some("bob".into())
            }
        );
        assert_eq!(Page::of("/call/bad%20name", ""), Page::Join { peer: None });
        assert_eq!(
            Page::of("/u/%E5%BC%A0%E4%BC%9F", "call=bob&x=1"),
            Page::Call {
                name: "张伟".into(),
                friend: "bob".into()
            }
        );
        assert_eq!(
            Page::of("/u/alice/", ""),
            Page::Call {
                name: "alice".into(),
                friend: String::new()
            }
        );
        // Invalid names reach the page, which says what is wrong with them.
        assert_eq!(
            Page::of("/u/a%20b", ""),
            Page::Call {
                name: "a b".into(),
                friend: String::new()
            }
        );
        assert_eq!(
            Page::of("/u/%FF", "").clone(),
            Page::Call {
                name: "\u{fffd}".into(),
                friend: String::new()
            }
        );
        for other in ["/u", "/u/a/b", "/nope", "/call/"] {
            assert_eq!(Page::of(other, ""), Page::NotFound, "{other}");
        }
    }

    #[test]
    fn a_query_value_is_decoded_with_plus_as_space() {
        assert_eq!(query_value("call=a+b", "call").as_deref(), Some("a b"));
        assert_eq!(query_value("x=1&call=%E5%BC%A0", "call").as_deref(), Some("张"));
        assert_eq!(query_value("x=1", "call"), None);
    }
}
