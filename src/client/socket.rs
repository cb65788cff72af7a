//! The signaling WebSocket (gloo-net): one task owns the socket, forwarding outgoing frames from
//! a channel and incoming frames to [`dispatch`]. Reconnects with capped exponential backoff;
//! the backoff starts over only once the relay has accepted us (its `presence` greeting), so a
//! full or refusing server is not hammered. What is sent while the socket is down (or not yet
//! accepted) waits, in order and bounded, and goes out once it is.

use super::dispatch;
use crate::call::Event;
use crate::signal::{encode_segment, Kind, Message};
use futures::channel::mpsc;
use futures::{FutureExt, SinkExt, StreamExt};
use gloo_net::websocket::{futures::WebSocket, Message as WsMessage};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use wasm_bindgen_futures::spawn_local;

thread_local! {
    static OUTBOX: RefCell<Option<mpsc::UnboundedSender<String>>> = const { RefCell::new(None) };
    static URL: RefCell<String> = const { RefCell::new(String::new()) };
    static FAILURES: Cell<u32> = const { Cell::new(0) };
    /// The relay accepted the current socket: sends go straight out.
    static GREETED: Cell<bool> = const { Cell::new(false) };
    /// Sent while not greeted; flushed on the next greeting.
    static PENDING: RefCell<VecDeque<String>> = const { RefCell::new(VecDeque::new()) };
    /// When the relay was last heard from (ms).
    static LAST_HEARD: Cell<f64> = const { Cell::new(0.0) };
    /// `check` found the socket dead and dropped it: reconnect rather than leave.
    static DEAD: Cell<bool> = const { Cell::new(false) };
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
    URL.with(|u| *u.borrow_mut() = format!("{scheme}://{host}/webrtc/{}?key={secret}", encode_segment(me)));
    open();
}

fn open() {
    if !super::active() {
        return; // the call screen was left while a reconnect was pending
    }
    let url = URL.with(|u| u.borrow().clone());
    let ws = match WebSocket::open(&url) {
        Ok(ws) => ws,
        Err(e) => {
            leptos::logging::warn!("cannot open the signaling socket: {e}");
            dispatch(Event::SocketClosed);
            return;
        }
    };
    let (tx, rx) = mpsc::unbounded();
    OUTBOX.with(|o| *o.borrow_mut() = Some(tx));
    spawn_local(pump(ws, rx));
}

async fn pump(ws: WebSocket, mut outgoing: mpsc::UnboundedReceiver<String>) {
    let (mut sink, stream) = ws.split();
    let mut incoming = stream.fuse();
    loop {
        futures::select! {
            out = outgoing.next() => match out {
                Some(text) => {
                    if sink.send(WsMessage::Text(text)).await.is_err() {
                        break;
                    }
                }
                // `check` found the socket dead: reconnect.
                None if DEAD.replace(false) => break,
                // `close()` dropped the sender: leave quietly, without reconnecting.
                None => return,
            },
            frame = incoming.next() => match frame {
                Some(Ok(WsMessage::Text(text))) => {
                    LAST_HEARD.set(js_sys::Date::now());
                    match Message::parse(&text) {
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
                Some(Ok(WsMessage::Bytes(_))) | Some(Err(_)) => {}
                None => break,
            },
        }
    }
    OUTBOX.with(|o| o.borrow_mut().take());
    GREETED.set(false);
    dispatch(Event::SocketClosed);
}

/// Sends now if the relay has accepted the socket, else as soon as it does.
pub fn send(text: String) {
    let text = if GREETED.get() {
        match forward(text) {
            Ok(()) => return,
            Err(text) => text,
        }
    } else {
        text
    };
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

/// Into the current socket's queue; the text comes back if there is no socket.
fn forward(text: String) -> Result<(), String> {
    OUTBOX.with(|o| match o.borrow().as_ref() {
        Some(tx) => tx.unbounded_send(text).map_err(|e| e.into_inner()),
        None => Err(text),
    })
}

fn flush_pending() {
    let mut pending = PENDING.with(|p| std::mem::take(&mut *p.borrow_mut()));
    while let Some(text) = pending.pop_front() {
        if let Err(text) = forward(text) {
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
    send(Message::config_request().to_json());
    leptos::prelude::set_timeout(
        move || {
            if GREETED.get() && LAST_HEARD.get() < asked {
                leptos::logging::warn!("the signaling socket does not answer: reconnecting");
                DEAD.set(true);
                OUTBOX.with(|o| o.borrow_mut().take());
            }
        },
        std::time::Duration::from_millis(CHECK_MS),
    );
}

pub fn close() {
    OUTBOX.with(|o| o.borrow_mut().take());
    GREETED.set(false);
    PENDING.with(|p| p.borrow_mut().clear());
}

/// Opens the socket again: at once after a socket the relay had accepted, then after 0.5 s,
/// 1 s, 2 s … up to 10 s while attempts keep failing.
pub fn reconnect_later() {
    let failures = FAILURES.get();
    FAILURES.set(failures.saturating_add(1));
    let delay_ms = match failures {
        0 => 0,
        n => (250u32 << n.min(6)).min(10_000),
    };
    spawn_local(async move {
        sleep(delay_ms).await;
        open();
    });
}

async fn sleep(ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        if let Some(w) = web_sys::window() {
            let _ = w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms as i32);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).map(|_| ()).await;
}
