//! App installation: keeps the browser's `beforeinstallprompt` event to show it on a click, and
//! tells iOS Safari users (no such event there) how to add Duet to the home screen.

use js_sys::Reflect;
use leptos::prelude::*;
use std::cell::{Cell, RefCell};

thread_local! {
    /// The deferred `beforeinstallprompt` event, until used.
    static DEFERRED: RefCell<Option<web_sys::Event>> = const { RefCell::new(None) };
    static WATCHING: Cell<bool> = const { Cell::new(false) };
}

/// Shows the install button (`offered`) while the browser offers installation.
pub fn watch(offered: RwSignal<bool>) {
    offered.set(DEFERRED.with(|d| d.borrow().is_some()));
    if WATCHING.replace(true) {
        return;
    }
    // Page-long listeners; `offered` belongs to the join page, so only set it while it lives.
    std::mem::forget(window_event_listener_untyped("beforeinstallprompt", move |ev| {
        ev.prevent_default(); // we show our own button instead of the browser's mini-infobar
        DEFERRED.with(|d| *d.borrow_mut() = Some(ev));
        let _ = offered.try_set(true);
    }));
    std::mem::forget(window_event_listener_untyped("appinstalled", move |_| {
        DEFERRED.with(|d| d.borrow_mut().take());
        let _ = offered.try_set(false);
    }));
}

/// Shows the browser's install dialog (it can be shown once per event).
pub fn prompt(offered: RwSignal<bool>) {
    offered.set(false);
    if let Some(event) = DEFERRED.with(|d| d.borrow_mut().take()) {
        super::call_method(&event, "prompt", &[]);
    }
}

/// iPhone/iPad Safari, not already running as an installed app.
pub fn ios_needs_hint() -> bool {
    let navigator = window().navigator();
    let agent = navigator.user_agent().unwrap_or_default();
    let ios = ["iPhone", "iPad", "iPod"].iter().any(|d| agent.contains(d));
    let standalone = Reflect::get(&navigator, &"standalone".into())
        .ok()
        .and_then(|v| v.as_bool())
        .unwrap_or(false)
        || window()
            .match_media("(display-mode: standalone)")
            .ok()
            .flatten()
            .is_some_and(|m| m.matches());
    ios && !standalone
}
