//! The signaling WebSocket (web-sys, callbacks: a send goes out synchronously, a frame is
//! dispatched in the event that brought it). Reconnects with capped exponential backoff; the
//! backoff starts over only once the relay has accepted us (its `presence` greeting), so a full
//! or refusing server is not hammered. What is sent while the socket is down (or not yet
//! accepted) waits, in order and bounded, and goes out once it is.
//!
//! The first socket is usually opened before the WASM has even loaded, by the page's inline
//! script ([`crate::app::EARLY_SOCKET`]): it keeps the frames that arrive meanwhile, and
//! [`connect`] adopts it, so the relay's handshake overlaps the download.

use super::dispatch;
use crate::call::Event;
use crate::signal::{encode_segment, Kind, Message, KEY_PROTOCOL, SUBPROTOCOL};
use js_sys::Reflect;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::time::Duration;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use web_sys::{MessageEvent, WebSocket};

/// The open socket and the handlers it calls (kept alive as long as it is).
struct Live {
    ws: WebSocket,
    _message: Closure<dyn FnMut(MessageEvent)>,
    _close: Closure<dyn FnMut(JsValue)>,
}

thread_local! {
    static SOCKET: RefCell<Option<Live>> = const { RefCell::new(None) };
    static URL: RefCell<String> = const { RefCell::new(String::new()) };
    /// The subprotocol carrying our secret.
    static PROTOCOLS: RefCell<String> = const { RefCell::new(String::new()) };
    static FAILURES: Cell<u32> = const { Cell::new(0) };
    /// The relay accepted the current socket: sends go straight out.
    static GREETED: Cell<bool> = const { Cell::new(false) };
    /// Sent while not greeted; flushed on the next greeting.
    static PENDING: RefCell<VecDeque<String>> = const { RefCell::new(VecDeque::new()) };
    /// When the relay was last heard from (ms).
    static LAST_HEARD: Cell<f64> = const { Cell::new(0.0) };
}

/// How long the relay has to answer `check` before the socket counts as dead. A socket whose
/// network went away (Wi-Fi left for mobile data) stays "open" until TCP gives up, minutes later.
const CHECK_MS: u64 = 1_000;

/// Messages kept while the socket is down: a call's worth of ICE candidates and more, but not
/// an unbounded pile if the server stays away.
const MAX_PENDING: usize = 200;

pub fn connect(me: &str, secret: &str) {
    let Some(location) = web_sys::window().map(|w| w.location()) else {
        return;
    };
    let scheme = match location.protocol().as_deref() {
        Ok("https:") => "wss",
        _ => "ws",
    };
    let host = location.host().unwrap_or_default();
    // `early=1`: this page takes a caller's offer while it rings (see `call`'s module docs). The
    // secret goes in the subprotocols, not the URL (see `signal::SUBPROTOCOL`).
    let url = format!("{scheme}://{host}/webrtc/{}?early=1", encode_segment(me));
    URL.with(|u| *u.borrow_mut() = url);
    PROTOCOLS.with(|p| *p.borrow_mut() = format!("{KEY_PROTOCOL}{secret}"));
    match adopt_early(me, secret) {
        Some((ws, queued)) => {
            install(ws.clone());
            queued.iter().for_each(|text| receive(text));
            if ws.ready_state() == WebSocket::CLOSED {
                closed(&ws);
            }
        }
        None => open(),
    }
}

/// The socket the inline script opened for this name and secret, with the frames it kept.
fn adopt_early(me: &str, secret: &str) -> Option<(WebSocket, Vec<String>)> {
    let early = super::take_early("duetEarly").filter(|e| e.is_object())?;
    let field = |k: &str| Reflect::get(&early, &k.into()).ok();
    let ws: WebSocket = field("ws")?.dyn_into().ok()?;
    let text = |k: &str| field(k).and_then(|v| v.as_string());
    if text("name").as_deref() != Some(me) || text("key").as_deref() != Some(secret) {
        ws.set_onmessage(None);
        let _ = ws.close();
        return None;
    }
    let queued = field("queue")
        .and_then(|q| q.dyn_into::<js_sys::Array>().ok())
        .map(|q| q.iter().filter_map(|v| v.as_string()).collect())
        .unwrap_or_default();
    Some((ws, queued))
}

fn open() {
    if !super::active() {
        return; // the call screen was left while a reconnect was pending
    }
    let url = URL.with(|u| u.borrow().clone());
    let key = PROTOCOLS.with(|p| p.borrow().clone());
    let protocols = js_sys::Array::of2(&SUBPROTOCOL.into(), &key.into());
    match WebSocket::new_with_str_sequence(&url, &protocols) {
        Ok(ws) => install(ws),
        Err(e) => {
            leptos::logging::warn!("cannot open the signaling socket: {e:?}");
            dispatch(Event::SocketClosed);
        }
    }
}

/// Makes `ws` the current socket.
fn install(ws: WebSocket) {
    let message = Closure::<dyn FnMut(MessageEvent)>::new(|ev: MessageEvent| {
        if let Some(text) = ev.data().as_string() {
            receive(&text);
        }
    });
    let this = ws.clone();
    let close = Closure::<dyn FnMut(JsValue)>::new(move |_| closed(&this));
    ws.set_onmessage(Some(message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(close.as_ref().unchecked_ref()));
    let old = SOCKET.replace(Some(Live {
        ws,
        _message: message,
        _close: close,
    }));
    if let Some(old) = old {
        detach(old);
    }
}

/// Closes a socket that is no longer ours, without it reporting anything.
fn detach(live: Live) {
    live.ws.set_onmessage(None);
    live.ws.set_onclose(None);
    let _ = live.ws.close();
    // One of its handlers may be what called us: drop the closures once it has returned.
    wasm_bindgen_futures::spawn_local(async move { drop(live) });
}

fn receive(text: &str) {
    LAST_HEARD.set(js_sys::Date::now());
    match Message::from_relay(text) {
        Ok(m) => {
            // The relay greets every accepted connection with the presence list.
            if m.kind == Kind::Presence && !GREETED.replace(true) {
                FAILURES.set(0);
                flush_pending();
                dispatch(Event::SocketOpen);
            }
            dispatch(Event::Received(m));
        }
        Err(e) => leptos::logging::warn!("ignoring a malformed frame from the relay: {e}"),
    }
}

/// A socket closed (the server, the network): if it is the current one, reconnect.
fn closed(ws: &WebSocket) {
    let current = SOCKET.with(|s| s.borrow().as_ref().is_some_and(|live| &live.ws == ws));
    if current {
        lost();
    }
}

/// The current socket is gone: drop it and let the state machine reconnect.
fn lost() {
    drop_current();
    dispatch(Event::SocketClosed);
}

fn drop_current() {
    GREETED.set(false);
    if let Some(live) = SOCKET.take() {
        detach(live);
    }
}

/// Sends now if the relay has accepted the socket, else as soon as it does.
pub fn send(text: String) {
    let Err(text) = send_now(text) else { return };
    PENDING.with(|p| {
        let mut pending = p.borrow_mut();
        if pending.len() < MAX_PENDING {
            pending.push_back(text);
        } else {
            leptos::logging::warn!(
                "signaling socket is down and {MAX_PENDING} messages wait; one was dropped"
            );
        }
    });
}

/// Onto the greeted socket; the text comes back if there is none (or it refused).
fn send_now(text: String) -> Result<(), String> {
    if !GREETED.get() {
        return Err(text);
    }
    SOCKET.with(|s| match s.borrow().as_ref() {
        Some(live) if live.ws.send_with_str(&text).is_ok() => Ok(()),
        _ => Err(text),
    })
}

fn flush_pending() {
    let mut pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    while let Some(text) = pending.pop_front() {
        if let Err(text) = send_now(text) {
            // No socket after all: everything waits for the next one, in order.
            pending.push_front(text);
            PENDING.with(|p| *p.borrow_mut() = pending);
            return;
        }
    }
}

/// Asks the relay for something it always answers (fresh ICE servers); without an answer within
/// [`CHECK_MS`] the socket is dropped and a new one opened.
pub fn check() {
    if !GREETED.get() {
        return; // already reconnecting
    }
    let asked = js_sys::Date::now();
    send(Message::config_request().to_wire());
    leptos::prelude::set_timeout(
        move || {
            if GREETED.get() && LAST_HEARD.get() < asked {
                leptos::logging::warn!("the signaling socket does not answer: reconnecting");
                lost();
            }
        },
        Duration::from_millis(CHECK_MS),
    );
}

pub fn close() {
    drop_current();
    PENDING.with(|p| p.borrow_mut().clear());
}

/// Opens the socket again: at once after a socket the relay had accepted, then after 0.5 s,
/// 1 s, 2 s … up to 10 s while attempts keep failing.
pub fn reconnect_later() {
    let failures = FAILURES.get();
    FAILURES.set(failures.saturating_add(1));
    let delay_ms = match failures {
        0 => 0,
        n => (250u64 << n.min(6)).min(10_000),
    };
    leptos::prelude::set_timeout(open, Duration::from_millis(delay_ms));
}
