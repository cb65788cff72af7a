//! Untyped access to browser objects, for the in-call chunks' less common APIs (data channels,
//! files, blobs, screen capture). Every typed web-sys method is one more import in the *main*
//! WASM module and its JS glue, which a phone downloads before a tap on Call works, even when
//! only a lazily loaded chunk calls it (~50 bytes each, measured: see docs/perf.md). These go
//! through the few `Reflect` imports the main module has anyway.

use js_sys::{Function, Reflect};
use wasm_bindgen::{JsCast, JsValue};

/// `target[key]` (undefined if absent).
pub fn get(target: &JsValue, key: &str) -> JsValue {
    Reflect::get(target, &key.into()).unwrap_or(JsValue::UNDEFINED)
}

/// `target[index]`.
pub fn at(target: &JsValue, index: u32) -> JsValue {
    Reflect::get(target, &index.into()).unwrap_or(JsValue::UNDEFINED)
}

/// `target[key] = value`.
pub fn set(target: &JsValue, key: &str, value: &JsValue) {
    let _ = Reflect::set(target, &key.into(), value);
}

/// `target[key]` as a number (0 if it is not one).
pub fn number(target: &JsValue, key: &str) -> f64 {
    get(target, key).as_f64().unwrap_or(0.0)
}

/// `target.method(...args)`; `None` if there is no such method or it threw.
pub fn call(target: &JsValue, method: &str, args: &[&JsValue]) -> Option<JsValue> {
    super::call_method(target, method, args)
}

/// `new window[class](...args)`; `None` if the class is missing or the constructor threw.
pub fn new(class: &str, args: &[&JsValue]) -> Option<JsValue> {
    let class: Function = get(&global(), class).dyn_into().ok()?;
    let args: js_sys::Array = args.iter().copied().collect();
    Reflect::construct(&class, &args).ok()
}

/// "Name: message" of a thrown DOMException or Error.
pub fn describe(e: JsValue) -> String {
    let field = |k: &str| get(&e, k).as_string();
    match (field("name"), field("message")) {
        (Some(n), Some(m)) => format!("{n}: {m}"),
        (Some(n), None) => n,
        _ => format!("{e:?}"),
    }
}

/// A plain object from key/value pairs.
pub fn object(fields: &[(&str, &JsValue)]) -> JsValue {
    let o: JsValue = js_sys::Object::new().into();
    for (k, v) in fields {
        set(&o, k, v);
    }
    o
}

pub fn global() -> JsValue {
    js_sys::global().into()
}
