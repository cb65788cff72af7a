//! Duet: self-hosted one-to-one video calls.
//!
//! Shared by both builds: [`signal`] (the wire protocol), [`call`] (the pure call state machine),
//! [`quality`] (connection quality from WebRTC stats), [`i18n`] (the UI language)
//! and [`app`]/[`components`] (the Leptos UI, rendered on the server and hydrated in the browser).
//! Server-only code lives behind the `ssr` feature, browser-only code behind `hydrate`.

// Leptos view types nest deeply (the call screen); the default limit is too small for them.
#![recursion_limit = "256"]

pub mod app;
pub mod background;
pub mod call;
pub mod chat;
pub mod components;
pub mod i18n;
#[cfg(feature = "ssr")]
pub mod inline;
pub mod quality;
pub mod signal;

#[cfg(feature = "ssr")]
pub mod access;
#[cfg(feature = "ssr")]
pub mod assets;
#[cfg(feature = "hydrate")]
pub mod client;
#[cfg(feature = "ssr")]
pub mod config;
#[cfg(feature = "ssr")]
pub mod relay;
#[cfg(feature = "ssr")]
pub mod server;
#[cfg(feature = "ssr")]
pub mod stun;
#[cfg(feature = "ssr")]
pub mod tls;

/// Browser entry point, called by the JS glue cargo-leptos generates.
#[cfg(feature = "hydrate")]
#[wasm_bindgen::prelude::wasm_bindgen]
pub fn hydrate() {
    console_error_panic_hook::set_once();
    leptos::mount::hydrate_body(app::App);
    // For tests and the console: the page is interactive from here on.
    if let Some(root) = leptos::prelude::document().document_element() {
        let _ = root.set_attribute("data-hydrated", "");
    }
}
