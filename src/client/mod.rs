//! The browser shell (feature `hydrate`): runs the [`Effect`]s of the call state machine through
//! web-sys and feeds what happens back as [`Event`]s. All logic lives in [`crate::call`].

mod chat;
pub mod install;
pub mod js;
pub mod notify;
mod peer;
mod shell;
mod socket;
mod stats;
mod tone;
mod wake;

use crate::call::{Effect, Event, Phase, State};
use crate::chat::Chat;
use crate::i18n::Lang;
use crate::quality::Quality;
use leptos::prelude::*;
use shell::Op;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::Duration;
use wasm_bindgen::{JsCast, JsValue};

thread_local! {
    static STATE: Cell<Option<RwSignal<State>>> = const { Cell::new(None) };
    static LANG: Cell<Option<RwSignal<Lang>>> = const { Cell::new(None) };
    static CHAT: Cell<Option<RwSignal<Chat>>> = const { Cell::new(None) };
    static QUEUE: RefCell<VecDeque<Event>> = const { RefCell::new(VecDeque::new()) };
    static DISPATCHING: Cell<bool> = const { Cell::new(false) };
    static CLOCK: Cell<Option<IntervalHandle>> = const { Cell::new(None) };
}

const NAME_KEY: &str = "duet.name";
const SECRET_KEY: &str = "duet.key";

/// Starts the shell for `me`: remembers the name, opens the signaling socket, runs the clock
/// (the call timer and, during a connected call, the connection-quality readings).
pub fn start(
    me: &str,
    state: RwSignal<State>,
    now: RwSignal<f64>,
    quality: RwSignal<Option<Quality>>,
    chat: RwSignal<Chat>,
    lang: RwSignal<Lang>,
) {
    save(NAME_KEY, me);
    STATE.set(Some(state));
    LANG.set(Some(lang));
    CHAT.set(Some(chat));
    now.set(js_sys::Date::now());
    let tick = move || {
        now.set(js_sys::Date::now());
        let connected = state.with_untracked(|s| s.connected_call().is_some());
        shell(Op::Stats(quality, connected));
    };
    // Twice a second: a broken path (no packets at all) is noticed within half a second.
    if let Ok(h) = set_interval_with_handle(tick, Duration::from_millis(stats::INTERVAL_MS)) {
        CLOCK.set(Some(h));
    }
    socket::connect(me, &secret());
    watch_visibility();
    // A Call tapped before the WASM had loaded (see `app::EARLY_SOCKET`): placed now; it goes
    // out once the relay has greeted us.
    if let Some(friend) = take_early("duetEarlyDial").and_then(|v| v.as_string()) {
        dispatch(Event::Dial(friend));
    }
}

/// What the page's inline script (`app::EARLY_SOCKET`) left on `window` under `name` for the
/// WASM, taken once.
fn take_early(name: &str) -> Option<JsValue> {
    let window = web_sys::window()?;
    let key = JsValue::from_str(name);
    let value = js_sys::Reflect::get(&window, &key)
        .ok()
        .filter(|v| !v.is_undefined())?;
    let _ = js_sys::Reflect::delete_property(&window, &key);
    Some(value)
}

/// The page was hidden or shown: the wake lock comes back, and a call's notification appears
/// or goes (see [`notify::follow`]). One listener for the page's life, however often
/// the call screen is opened.
fn watch_visibility() {
    thread_local!(static WATCHING: Cell<bool> = const { Cell::new(false) });
    if WATCHING.replace(true) {
        return;
    }
    std::mem::forget(window_event_listener_untyped("visibilitychange", |_| {
        shell(Op::Visibility);
        if let Some(state) = STATE.get().and_then(|s| s.try_get_untracked()) {
            follow_alert(&state);
        }
    }));
}

/// Leaves the call screen: ends any call, closes the socket, stops the clock.
pub fn stop() {
    dispatch(Event::HangUp);
    socket::close();
    shell(Op::Stop);
    STATE.set(None);
    LANG.set(None);
    CHAT.set(None);
    if let Some(h) = CLOCK.take() {
        h.clear();
    }
}

/// The chat of the call screen, while one is mounted.
fn chat_signal() -> Option<RwSignal<Chat>> {
    CHAT.get()
}

/// Something the person did in the chat panel (see [`crate::chat::In`]).
pub fn chat(input: crate::chat::In) {
    shell(Op::Chat(input));
}

/// Offers a file (a `File`) the person picked to the peer.
pub fn send_file(file: JsValue) {
    shell(Op::SendFile(file));
}

/// Whether this browser can share a screen (desktop browsers; phones have no
/// `getDisplayMedia`).
pub fn can_share_screen() -> bool {
    web_sys::window()
        .and_then(|w| w.navigator().media_devices().ok())
        .is_some_and(|d| !js::get(&d, "getDisplayMedia").is_undefined())
}

/// Puts `text` on the clipboard; false if the browser refused.
pub async fn copy_text(text: &str) -> bool {
    let Some(clipboard) = web_sys::window()
        .and_then(|w| js_sys::Reflect::get(&w.navigator(), &"clipboard".into()).ok())
        .filter(|c| !c.is_undefined())
    else {
        return false;
    };
    let Some(promise) = call_method(&clipboard, "writeText", &[&text.into()]) else {
        return false;
    };
    wasm_bindgen_futures::JsFuture::from(js_sys::Promise::from(promise))
        .await
        .is_ok()
}

/// True while a call screen is mounted.
fn active() -> bool {
    STATE.get().is_some()
}

/// Feeds one event to the state machine and runs the resulting effects. Events raised while
/// effects run are queued, so transitions never nest.
pub fn dispatch(event: Event) {
    QUEUE.with(|q| q.borrow_mut().push_back(event));
    if DISPATCHING.replace(true) {
        return;
    }
    while let Some(event) = QUEUE.with(|q| q.borrow_mut().pop_front()) {
        let Some(state) = STATE.get() else { continue };
        let Some(current) = state.try_get_untracked() else {
            continue;
        };
        let settled = matches!(event, Event::RemoteDescriptionSet | Event::NegotiationFailed(_));
        let (next, effects) = current.step(event);
        if effects.iter().any(|e| matches!(e, Effect::AcceptAnswer(_))) {
            draw_when_settled();
        }
        // Messages first, then the rest of the effects (the browser's WebRTC work starts while
        // the page renders), then the screen, then sound: a call_start is on the wire before the
        // page re-renders, and the incoming sheet is drawn before the ringtone starts.
        let (sends, others): (Vec<_>, Vec<_>) =
            effects.into_iter().partition(|e| matches!(e, Effect::Send(_)));
        sends.into_iter().chain(others).for_each(run);
        follow_alert(&next);
        // (The signal still holds the state before this event.) The first event after a quiet
        // spell draws, whatever it changed.
        let held = HELD.get();
        let quiet = held && matches!(next.phase, Phase::Live(_)) && !settled;
        if quiet {
            state.update_untracked(|s| *s = next);
            continue;
        }
        if !held && state.with_untracked(|shown| next.looks_like(shown)) {
            state.update_untracked(|s| *s = next);
        } else {
            HELD.set(false);
            state.set(next);
        }
        drawn(state);
    }
    DISPATCHING.set(false);
}

/// After the screen shows `state`: the sound it wants, and the wake lock while in a call.
fn drawn(state: RwSignal<State>) {
    let (tone, live) = state.with_untracked(|s| (s.tone(), matches!(s.phase, Phase::Live(_))));
    shell(Op::Tone(tone));
    shell(Op::Wake(live));
}

thread_local! {
    /// The screen waits, while the call goes on (see [`draw_when_settled`]).
    static HELD: Cell<bool> = const { Cell::new(false) };
}

/// At most this long the screen waits (see [`draw_when_settled`]).
const QUIET: Duration = Duration::from_millis(15);

/// The peer's description just came (the answer inside an accept) and the browser is setting
/// it: the page draws once that is done (or [`QUIET`] later), not before. Drawn first, the call
/// screen's render ran ahead of `setRemoteDescription` on the page's thread (14-19 ms for it
/// then, 6.6 without; docs/perf.md), and the connection came up later.
fn draw_when_settled() {
    // A hidden page draws nothing anyway, and its timers may run a second late.
    let hidden = document().visibility_state() == web_sys::VisibilityState::Hidden;
    if hidden || HELD.replace(true) {
        return;
    }
    set_timeout(
        || {
            if HELD.replace(false) {
                if let Some(state) = STATE.get() {
                    state.update(|_| {});
                    drawn(state);
                }
            }
        },
        QUIET,
    );
}

/// Keeps the call notification in step with the state (see [`notify::follow`]).
fn follow_alert(state: &State) {
    let lang = LANG.get().and_then(|l| l.try_get_untracked()).unwrap_or_default();
    shell(Op::Alert(state.alert(), lang));
}

/// Hands `op` to the media side ([`shell::run`]). In the `split` build that is a lazily loaded
/// chunk: ops wait, in order, until it is there (it is asked for when the call screen starts).
#[cfg(not(feature = "split"))]
fn shell(op: Op) {
    shell::run(op);
}

#[cfg(feature = "split")]
fn shell(op: Op) {
    thread_local! {
        static OPS: RefCell<VecDeque<Op>> = const { RefCell::new(VecDeque::new()) };
        static PUMPING: Cell<bool> = const { Cell::new(false) };
    }
    /// Runs the queued ops in order. Each is polled once: with the chunk loaded that runs it to
    /// the end; otherwise the rest wait until this one has run.
    fn pump() {
        use std::future::Future;
        use std::task::{Context, Waker};
        while let Some(op) = OPS.with(|q| q.borrow_mut().pop_front()) {
            let mut running = Box::pin(shell::run(op));
            let mut cx = Context::from_waker(Waker::noop());
            if running.as_mut().poll(&mut cx).is_pending() {
                wasm_bindgen_futures::spawn_local(async move {
                    running.await;
                    pump();
                });
                return;
            }
        }
        PUMPING.set(false);
    }
    OPS.with(|q| q.borrow_mut().push_back(op));
    if !PUMPING.replace(true) {
        pump();
    }
}

/// Sets (or with `None` removes) an attribute on <html>: shell state such as the ringtone
/// or the wake lock, visible to CSS, to the console and to the e2e suite.
fn mark_page(attribute: &str, value: Option<&str>) {
    let Some(root) = document().document_element() else {
        return;
    };
    let _ = match value {
        Some(v) => root.set_attribute(attribute, v),
        None => root.remove_attribute(attribute),
    };
}

/// Calls `target.method(...args)` on a JS object known only at run time (APIs web-sys lacks or
/// marks unstable); `None` if there is no such method or it threw.
fn call_method(target: &JsValue, method: &str, args: &[&JsValue]) -> Option<JsValue> {
    let f: js_sys::Function = js_sys::Reflect::get(target, &method.into())
        .ok()?
        .dyn_into()
        .ok()?;
    let args: js_sys::Array = args.iter().copied().collect();
    f.apply(target, &args).ok()
}

/// Keeps the toggle's choice: `<html lang>` for this page (screen readers, fonts), a cookie for
/// the server's next pages.
pub fn remember_lang(lang: Lang) {
    mark_page("lang", Some(lang.tag()));
    let _ = js_sys::Reflect::set(&document(), &"cookie".into(), &lang.cookie().into());
}

fn run(effect: Effect) {
    match effect {
        Effect::Send(m) => socket::send(m.to_wire()),
        Effect::Reconnect => socket::reconnect_later(),
        Effect::CheckSignaling => socket::check(),
        Effect::After { ms, timer, id } => {
            set_timeout(
                move || dispatch(Event::Timeout(timer, id)),
                Duration::from_millis(ms.into()),
            );
        }
        media => shell(Op::Effect(media)),
    }
}

/// The server answers `/healthz` (the network may be up without a route to us).
pub async fn server_reachable() -> bool {
    let Some(window) = web_sys::window() else {
        return false;
    };
    match wasm_bindgen_futures::JsFuture::from(window.fetch_with_str("/healthz")).await {
        Ok(r) => r.dyn_into::<web_sys::Response>().is_ok_and(|r| r.ok()),
        Err(_) => false,
    }
}

fn storage() -> Option<web_sys::Storage> {
    web_sys::window()?.local_storage().ok()?
}

fn save(key: &str, value: &str) {
    if let Some(s) = storage() {
        let _ = s.set_item(key, value);
    }
}

/// The name last used in this browser.
pub fn saved_name() -> Option<String> {
    storage()?.get_item(NAME_KEY).ok()?.filter(|n| !n.is_empty())
}

/// This browser's random secret: proves to the relay that a reconnect is the same person.
fn secret() -> String {
    if let Some(k) = storage().and_then(|s| s.get_item(SECRET_KEY).ok().flatten()) {
        if !k.is_empty() {
            return k;
        }
    }
    let mut bytes = [0u8; 16];
    let filled = web_sys::window()
        .and_then(|w| w.crypto().ok())
        .is_some_and(|c| c.get_random_values_with_u8_array(&mut bytes).is_ok());
    if !filled {
        // No Web Crypto: still unguessable enough to stop casual takeovers.
        for b in &mut bytes {
            *b = (js_sys::Math::random() * 256.0) as u8;
        }
    }
    let key: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    save(SECRET_KEY, &key);
    key
}
