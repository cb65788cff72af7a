//! Keeps the screen on during a call (Screen Wake Lock API). Browsers drop the lock whenever the
//! page is hidden, so it is asked for again when the page comes back. Unsupported browsers: no-op.

use super::call_method;
use js_sys::Reflect;
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use wasm_bindgen::JsValue;
use wasm_bindgen_futures::JsFuture;

thread_local! {
    static WANTED: Cell<bool> = const { Cell::new(false) };
    /// The WakeLockSentinel while held.
    static SENTINEL: RefCell<Option<JsValue>> = const { RefCell::new(None) };
}

/// Holds the lock while `wanted` (in a call), releases it otherwise. Cheap when nothing changes.
pub fn hold(wanted: bool) {
    if WANTED.replace(wanted) == wanted {
        return;
    }
    if wanted {
        acquire();
    } else {
        release();
    }
}

/// Called when the page's visibility changed: a lock we want but lost (pages lose it when
/// hidden) comes back once the page is visible again.
pub fn visibility_changed() {
    let visible = document().visibility_state() == web_sys::VisibilityState::Visible;
    if visible && WANTED.get() && SENTINEL.with(|s| s.borrow().is_none()) {
        acquire();
    }
}

fn acquire() {
    let lock = Reflect::get(&window().navigator(), &"wakeLock".into()).unwrap_or(JsValue::UNDEFINED);
    if lock.is_undefined() {
        return;
    }
    let Some(promise) = call_method(&lock, "request", &[&"screen".into()]) else {
        return;
    };
    leptos::task::spawn_local(async move {
        match JsFuture::from(js_sys::Promise::from(promise)).await {
            // The call may have ended while we waited.
            Ok(sentinel) if !WANTED.get() => {
                let _ = call_method(&sentinel, "release", &[]);
            }
            Ok(sentinel) => {
                super::mark_page("data-wake-lock", Some("held"));
                // The browser releases it by itself when the page is hidden.
                let on_release = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(|| {
                    SENTINEL.with(|s| s.borrow_mut().take());
                    super::mark_page("data-wake-lock", None);
                });
                let _ = Reflect::set(&sentinel, &"onrelease".into(), on_release.as_ref());
                on_release.forget(); // one small closure per acquisition, for the page's life
                SENTINEL.with(|s| *s.borrow_mut() = Some(sentinel));
            }
            Err(e) => leptos::logging::warn!("screen wake lock refused: {}", super::js::describe(e)),
        }
    });
}

fn release() {
    if let Some(sentinel) = SENTINEL.with(|s| s.borrow_mut().take()) {
        let _ = call_method(&sentinel, "release", &[]);
    }
    super::mark_page("data-wake-lock", None);
}
