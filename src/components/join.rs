//! `/` and `/call/{peer}`: choose your name (remembered in this browser), then continue to the
//! call screen.

use super::text::{self, Ui};
use super::{lang, t, typed_before_hydration, LangToggle};
use crate::signal::encode_segment;
use crate::signal::{validate_name, NameError};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;

/// `peer`: from `/call/{peer}`, a valid name.
#[component]
pub fn JoinPage(peer: Option<String>) -> impl IntoView {
    let name = RwSignal::new(typed_before_hydration("name").unwrap_or_default());
    let error = RwSignal::new(None::<NameError>);
    let lang = lang();

    // The remembered name is only known in the browser, after hydration; never overwrite what
    // the user typed meanwhile.
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        if let Some(saved) = crate::client::saved_name() {
            if name.get_untracked().is_empty() {
                name.set(saved);
            }
        }
    });

    let target = peer.clone();
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        let me = name.get_untracked().trim().to_owned();
        if let Err(e) = validate_name(&me) {
            error.set(Some(e));
            return;
        }
        let url = match &target {
            Some(p) => format!("/u/{}?call={}", encode_segment(&me), encode_segment(p)),
            None => format!("/u/{}", encode_segment(&me)),
        };
        // A full load: the page's inline script opens the signaling socket at once.
        #[cfg(feature = "hydrate")]
        let _ = window().location().assign(&url);
        #[cfg(not(feature = "hydrate"))]
        let _ = url;
    };

    let heading = {
        let peer = peer.clone();
        move || text::join_heading(lang.get(), peer.as_deref())
    };
    view! {
        <main class="page join">
            <LangToggle/>
            <div class="logo" aria-hidden="true"></div>
            <h1>{heading}</h1>
            <p class="tagline">{t(Ui::Tagline)}</p>
            // Without JavaScript (or before the WASM has loaded) the form still works: the server
            // answers GET /go with a redirect to the call screen.
            // UTF-8 even from a first visit's windows-1252 page (see `inline`).
            <form class="join-form" method="get" action="/go" accept-charset="utf-8" on:submit=submit>
                {peer.clone().map(|p| view! { <input type="hidden" name="call" value=p/> })}
                <label for="name">{t(Ui::YourName)}</label>
                <input
                    id="name"
                    name="name"
                    type="text"
                    autocomplete="nickname"
                    autocapitalize="off"
                    spellcheck="false"
                    required
                    placeholder=t(Ui::NamePlaceholder)
                    aria-describedby="name-hint name-error"
                    prop:value=move || name.get()
                    on:input=move |ev| {
                        name.set(event_target_value(&ev));
                        error.set(None);
                    }
                />
                <p class="hint" id="name-hint">{t(Ui::NameHint)}</p>
                <p class="error" id="name-error" role="alert">
                    {move || error.get().map(|e| text::name_error_sentence(lang.get(), &e))}
                </p>
                <button class="btn primary" type="submit">{t(Ui::Continue)}</button>
            </form>
            <InstallHint/>
        </main>
    }
}

/// "Install Duet" when the browser offers installation (it fires `beforeinstallprompt`), and on
/// iPhone/iPad Safari, which never does, how to add it to the home screen.
#[component]
fn InstallHint() -> impl IntoView {
    // Nothing on the server or at hydration; the browser decides afterwards.
    let can_install = RwSignal::new(false);
    let ios = RwSignal::new(false);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        ios.set(crate::client::install::ios_needs_hint());
        crate::client::install::watch(can_install);
    });
    let install = move |_| {
        #[cfg(feature = "hydrate")]
        crate::client::install::prompt(can_install);
    };
    view! {
        <Show when=move || can_install.get()>
            <button class="btn install" on:click=install>{t(Ui::Install)}</button>
        </Show>
        <Show when=move || ios.get()>
            <p class="hint install-hint" role="note">
                {t(Ui::IosInstallHint)}
            </p>
        </Show>
    }
}
