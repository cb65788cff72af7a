//! A system notification of an incoming (then missed) call while the page is in the background
//! (another tab, the phone's home screen). Through the service worker's `showNotification` where there is
//! one (Android Chrome allows nothing else), else `new Notification`. Permission is asked only
//! when the user taps the offer on the call screen: browsers block prompts without a gesture,
//! and people refuse prompts they did not ask for.

use super::call_method;
use crate::background::{Change, Notifier};
use crate::call::Alert;
use crate::components::text;
use crate::i18n::Lang;
use js_sys::{Object, Reflect};
use leptos::prelude::*;
use std::cell::{Cell, RefCell};
use wasm_bindgen::{JsCast, JsValue};
use wasm_bindgen_futures::JsFuture;

/// Prefix of our notifications' tags. Each notification gets a tag of its own: Chrome reuses
/// the id of a same-tag notification, so a close still on its way for the old one would close
/// the new one too.
const TAG: &str = "duet-call";

thread_local! {
    static NOTIFIER: RefCell<Notifier> = RefCell::new(Notifier::default());
    /// The tag of the notification that should be up, if any, and a counter for new tags.
    static CURRENT: RefCell<Option<String>> = const { RefCell::new(None) };
    static SERIAL: Cell<u32> = const { Cell::new(0) };
    /// The fallback `Notification` object, to close it (service-worker ones are found by tag).
    static FALLBACK: RefCell<Option<JsValue>> = const { RefCell::new(None) };
    /// The last of the queued service-worker calls (see [`queued`]).
    static LAST: RefCell<Option<js_sys::Promise>> = const { RefCell::new(None) };
}

/// Runs `op` after every earlier one has ended. Chromium drops a notification from
/// `getNotifications()` for good when the list is read while `showNotification` is still under
/// way (it takes it for one that is no longer displayed): one such read, and the ringing
/// notification could never be closed again.
fn queued(op: impl std::future::Future<Output = ()> + 'static) {
    let before = LAST.with(|l| l.borrow_mut().take());
    let next = wasm_bindgen_futures::future_to_promise(async move {
        if let Some(before) = before {
            let _ = JsFuture::from(before).await;
        }
        op.await;
        Ok(JsValue::UNDEFINED)
    });
    LAST.with(|l| *l.borrow_mut() = Some(next));
}

fn api() -> Option<JsValue> {
    Reflect::get(&js_sys::global(), &"Notification".into())
        .ok()
        .filter(|n| n.is_function())
}

/// `"default"`, `"granted"` or `"denied"`; `None` where there are no notifications (iOS Safari
/// outside an installed app, insecure pages).
pub fn permission() -> Option<String> {
    Reflect::get(&api()?, &"permission".into()).ok()?.as_string()
}

/// Asks for permission (call it from a tap) and returns the answer.
pub async fn request() -> Option<String> {
    let promise = call_method(&api()?, "requestPermission", &[])?;
    JsFuture::from(js_sys::Promise::from(promise))
        .await
        .ok()?
        .as_string()
}

/// Follows the call's [`Alert`] and the page's visibility (the policy is
/// [`Notifier::update`]).
pub fn follow(alert: Option<Alert>, lang: Lang) {
    let hidden = document().visibility_state() == web_sys::VisibilityState::Hidden;
    match NOTIFIER.with(|n| n.borrow_mut().update(alert, hidden)) {
        Change::Keep => {}
        Change::Close => {
            CURRENT.with(|c| c.borrow_mut().take());
            close_others();
        }
        Change::Show(alert) => {
            let serial = SERIAL.get().wrapping_add(1);
            SERIAL.set(serial);
            let tag = format!("{TAG}-{serial}");
            CURRENT.with(|c| *c.borrow_mut() = Some(tag.clone()));
            close_others();
            show(&alert, &tag, lang);
        }
    }
}

fn show(alert: &Alert, tag: &str, lang: Lang) {
    if permission().as_deref() != Some("granted") {
        return;
    }
    let (title, body) = text::notification(lang, alert);
    let ringing = matches!(alert, Alert::Incoming(_));
    let options = Object::new();
    let url = window().location().href().unwrap_or_default();
    for (k, v) in [
        ("body", body.as_str()),
        ("tag", tag),
        ("icon", "/icons/icon-192.png"),
        ("lang", lang.tag()),
    ] {
        let _ = Reflect::set(&options, &k.into(), &v.into());
    }
    // A ringing call stays up and sounds again; a missed one is a quiet note.
    let _ = Reflect::set(&options, &"requireInteraction".into(), &ringing.into());
    let _ = Reflect::set(&options, &"renotify".into(), &ringing.into());
    let data = Object::new();
    let _ = Reflect::set(&data, &"url".into(), &url.into());
    let _ = Reflect::set(&options, &"data".into(), &data);
    let tag = tag.to_owned();
    queued(async move {
        let title = JsValue::from_str(&title);
        if let Some(reg) = registration().await {
            if let Some(shown) = call_method(&reg, "showNotification", &[&title, &options]) {
                // Refused (the system's notifications unavailable, say): said in the console,
                // and the page's own `Notification` tried instead.
                match JsFuture::from(js_sys::Promise::from(shown)).await {
                    Ok(_) => return,
                    Err(e) => leptos::logging::warn!(
                        "notification {tag} not shown by the service worker: {}",
                        super::js::describe(e)
                    ),
                }
            }
        }
        let Some(ctor) = api().and_then(|a| a.dyn_into::<js_sys::Function>().ok()) else {
            return;
        };
        let args = js_sys::Array::of2(&title, &options);
        if let Ok(n) = Reflect::construct(&ctor, &args) {
            FALLBACK.with(|f| *f.borrow_mut() = Some(n));
        }
    });
}

/// The active service worker registration, if a worker controls this page.
async fn registration() -> Option<JsValue> {
    let container = Reflect::get(&window().navigator(), &"serviceWorker".into()).ok()?;
    if container.is_undefined() || Reflect::get(&container, &"controller".into()).ok()?.is_null() {
        return None;
    }
    let ready = Reflect::get(&container, &"ready".into()).ok()?;
    JsFuture::from(js_sys::Promise::from(ready)).await.ok()
}

/// Closes our notifications other than the current one (see [`TAG`]).
fn close_others() {
    queued(async {
        // In the queue too: a fallback made by a show queued earlier is closed, not missed.
        if let Some(n) = FALLBACK.with(|f| f.borrow_mut().take()) {
            call_method(&n, "close", &[]);
        }
        let Some(reg) = registration().await else { return };
        let Some(list) = call_method(&reg, "getNotifications", &[]) else {
            return;
        };
        let Ok(list) = JsFuture::from(js_sys::Promise::from(list)).await else {
            return;
        };
        // Read after the waits: a notification shown meanwhile is the current one.
        let current = CURRENT.with(|c| c.borrow().clone());
        for n in js_sys::Array::from(&list).iter() {
            let tag = Reflect::get(&n, &"tag".into()).ok().and_then(|t| t.as_string());
            if tag.is_some_and(|t| t.starts_with(TAG) && Some(&t) != current.as_ref()) {
                call_method(&n, "close", &[]);
            }
        }
    });
}
