//! Keeps the screen on during a call (Screen Wake Lock API). Browsers drop the lock whenever the
//! page is hidden, so it is asked for again when the page comes back. Unsupported browsers: no-op.

use js_sys::{Function, Reflect};
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

thread_local! {
    static WANTED: Cell<bool> = const { Cell::new(false) };
    static WATCHING: Cell<bool> = const { Cell::new(false) };
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

/// When the page becomes visible again, a lock we want but lost (pages lose it when hidden)
/// comes back. Installs one listener for the page's life, however often it is called.
pub fn watch_visibility() {
    if WATCHING.replace(true) {
        return;
    }
    std::mem::forget(window_event_listener_untyped("visibilitychange", |_| {
        let visible = document().visibility_state() == web_sys::VisibilityState::Visible;
        if visible && WANTED.get() && SENTINEL.with(|s| s.borrow().is_none()) {
            acquire();
        }
    }));
}

fn call(target: &JsValue, method: &str, arg: Option<&JsValue>) -> Option<JsValue> {
    let f: Function = Reflect::get(target, &method.into()).ok()?.dyn_into().ok()?;
    match arg {
        Some(a) => f.call1(target, a),
        None => f.call0(target),
    }
    .ok()
}

fn acquire() {
    let lock = Reflect::get(&window().navigator(), &"wakeLock".into()).unwrap_or(JsValue::UNDEFINED);
    if lock.is_undefined() {
        return;
    }
    let Some(promise) = call(&lock, "request", Some(&"screen".into())) else {
        return;
    };
    leptos::task::spawn_local(async move {
        match JsFuture::from(js_sys::Promise::from(promise)).await {
            // The call may have ended while we waited.
            Ok(sentinel) if !WANTED.get() => {
                let _ = call(&sentinel, "release", None);
            }
            Ok(sentinel) => {
                mark(true);
                // The browser releases it by itself when the page is hidden.
                let on_release = wasm_bindgen::closure::Closure::<dyn FnMut()>::new(|| {
                    SENTINEL.with(|s| s.borrow_mut().take());
                    mark(false);
                });
                let _ = Reflect::set(&sentinel, &"onrelease".into(), on_release.as_ref());
                on_release.forget(); // one small closure per acquisition, for the page's life
                SENTINEL.with(|s| *s.borrow_mut() = Some(sentinel));
            }
            Err(e) => leptos::logging::warn!("screen wake lock refused: {e:?}"),
        }
    });
}

fn release() {
    if let Some(sentinel) = SENTINEL.with(|s| s.borrow_mut().take()) {
        let _ = call(&sentinel, "release", None);
    }
    mark(false);
}

/// `data-wake-lock` on <html> while held, so the state is visible (and testable).
fn mark(held: bool) {
    let Some(root) = document().document_element() else {
        return;
    };
    let _ = if held {
        root.set_attribute("data-wake-lock", "held")
    } else {
        root.remove_attribute("data-wake-lock")
    };
}
