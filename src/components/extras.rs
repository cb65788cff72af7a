//! The parts of the call screen that only exist in a call, or while one rings in: the incoming
//! sheet, the in-call controls, the quality bars and their figures, the peer's flags and the
//! notices. The server renders none of them, so they need not be in the WASM a phone downloads
//! before a tap on Call works: [`mount`] renders each part into the empty host element the call
//! screen left for it (`call_screen::lazy_host`). With the `split` feature it is loaded lazily
//! (`#[lazy]`: its own WASM chunk, made by `cargo leptos build --split --lib-features split`, as
//! the release build is); without it (`cargo leptos serve`) it is an ordinary function. The call
//! screen asks for every part as soon as it has hydrated, so the chunk is there long before a
//! call rings.

use super::call_screen::{initial, session_flag, Extras, Region};
use super::text::{self, Ui};
use super::{lang, t};
use crate::call::{Av, Event, Notice, State};
use crate::quality::Quality;
use leptos::prelude::*;

/// Renders `region` into `host`; the returned handle keeps it there (dropping it removes it).
/// Called inside the call screen's owner, so the views see its context (the language) and go
/// when it goes.
#[cfg_attr(feature = "split", leptos::lazy)]
pub fn mount(region: Region, host: web_sys::HtmlElement, extras: Extras) -> Box<dyn std::any::Any> {
    use leptos::mount::mount_to;
    let Extras {
        state,
        dispatch,
        quality,
        is_connected,
        flags,
        shown_notice,
        ringing,
    } = extras;
    // Mounting reads nothing reactively: whatever runs this must not start tracking.
    untrack(move || -> Box<dyn std::any::Any> {
        match region {
            Region::Quality => Box::new(mount_to(host, move || {
                move || is_connected.get().then(|| view! { <QualityBars quality/> })
            })),
            Region::Flags => Box::new(mount_to(host, move || move || peer_flags(flags.get()))),
            Region::Notice => Box::new(mount_to(host, move || {
                move || shown_notice.get().map(|n| notice(n, dispatch))
            })),
            Region::Media => Box::new(mount_to(host, move || media_controls(state, dispatch))),
            Region::Sheet => Box::new(mount_to(host, move || {
                move || ringing.get().map(|peer| incoming(peer, dispatch))
            })),
        }
    })
}

fn notice(notice: Notice, dispatch: Callback<Event>) -> impl IntoView {
    let lang = lang();
    view! {
        <div class="toast" role="alert">
            <span>{move || text::notice(lang.get(), &notice)}</span>
            <button class="icon" aria-label=t(Ui::Dismiss) title=t(Ui::Dismiss) on:click=move |_| dispatch.run(Event::DismissNotice)>"×"</button>
        </div>
    }
}

/// Signal-strength bars from the connection figures; a tap opens the figures themselves.
#[component]
fn QualityBars(quality: RwSignal<Option<Quality>>) -> impl IntoView {
    let lang = lang();
    let open = RwSignal::new(false);
    let bars = move || quality.with(|q| q.map_or(0, |q| q.grade().bars()));
    let label = move || quality.with(|q| text::quality_label(lang.get(), q.as_ref()));
    // A dialog for the keyboard too: focus moves into it, Escape or Close ends it and focus goes
    // back to the bars.
    let toggle = NodeRef::<leptos::html::Button>::new();
    let close_button = NodeRef::<leptos::html::Button>::new();
    let close = move || {
        open.set(false);
        if let Some(b) = toggle.get_untracked() {
            let _ = b.focus();
        }
    };
    Effect::new(move |_| {
        if let Some(b) = close_button.get() {
            let _ = b.focus();
        }
    });
    let escape = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() == "Escape" && open.get_untracked() {
            close();
        }
    });
    on_cleanup(move || escape.remove());
    view! {
        <button
            class="quality"
            node_ref=toggle
            data-bars=move || bars().to_string()
            aria-label=label
            title=label
            aria-expanded=move || open.get().to_string()
            aria-controls="quality-details"
            on:click=move |_| open.update(|o| *o = !*o)
        >
            <svg viewBox="0 0 20 16" width="22" height="18" aria-hidden="true">
                {(1..=4u8)
                    .map(move |i| {
                        let h = 4 * i;
                        view! {
                            <rect
                                x=(i - 1) * 5
                                y=16 - h
                                width="3.5"
                                height=h
                                rx="1"
                                class=move || { if bars() >= i { "lit" } else { "" } }
                            ></rect>
                        }
                    })
                    .collect_view()}
            </svg>
        </button>
        <Show when=move || open.get()>
            <div class="quality-details" id="quality-details" role="dialog" aria-labelledby="quality-title">
                <h2 id="quality-title">{label}</h2>
                <dl>
                    {move || {
                        let q = quality.get().unwrap_or_default();
                        text::quality_rows(lang.get(), &q)
                            .into_iter()
                            .map(|(k, v)| view! { <dt>{k}</dt><dd>{v}</dd> })
                            .collect_view()
                    }}
                </dl>
                <button class="btn small" node_ref=close_button on:click=move |_| close()>
                    {t(Ui::Close)}
                </button>
            </div>
        </Show>
    }
}

/// Mute, camera on/off, switch camera: toggle buttons that show their state.
fn media_controls(state: RwSignal<State>, dispatch: Callback<Event>) -> impl IntoView {
    let mic_off = move || session_flag(state, |s| !s.local.audio);
    let cam_off = move || session_flag(state, |s| !s.local.video);
    let lang = lang();
    let mic_label = move || text::ui(lang.get(), if mic_off() { Ui::UnmuteMic } else { Ui::MuteMic });
    let cam_label = move || text::ui(lang.get(), if cam_off() { Ui::CameraOn } else { Ui::CameraOff });
    view! {
        <button
            class="round"
            class:off=mic_off
            aria-pressed=move || mic_off().to_string()
            aria-label=mic_label
            title=mic_label
            on:click=move |_| dispatch.run(Event::ToggleMic)
        >
            <Icon path=move || if mic_off() { MIC_OFF } else { MIC }/>
        </button>
        <button
            class="round"
            class:off=cam_off
            aria-pressed=move || cam_off().to_string()
            aria-label=cam_label
            title=cam_label
            on:click=move |_| dispatch.run(Event::ToggleCamera)
        >
            <Icon path=move || if cam_off() { CAMERA_OFF } else { CAMERA }/>
        </button>
        <button
            class="round"
            aria-label=t(Ui::SwitchCamera)
            title=t(Ui::SwitchCamera)
            on:click=move |_| dispatch.run(Event::SwitchCamera)
        >
            <Icon path=|| SWITCH_CAMERA/>
        </button>
        <button class="round" aria-label=t(Ui::FullScreen) title=t(Ui::FullScreen) on:click=move |_| toggle_fullscreen()>
            <Icon path=|| FULLSCREEN/>
        </button>
    }
}

fn toggle_fullscreen() {
    #[cfg(feature = "hydrate")]
    {
        let doc = document();
        if doc.fullscreen_element().is_some() {
            doc.exit_fullscreen();
        } else if let Some(root) = doc.document_element() {
            // Refused on some phones (iOS allows it for videos only): the call goes on as it is.
            let _ = root.request_fullscreen();
        }
    }
}

/// What the peer has turned off, over their video.
fn peer_flags(flags: Option<(String, Av)>) -> Option<impl IntoView> {
    let (peer, remote) = flags?;
    let lang = lang();
    let muted = (!remote.audio).then(|| {
        let peer = peer.clone();
        view! { <span class="flag">{move || text::peer_muted(lang.get(), &peer)}</span> }
    });
    let no_video = (!remote.video)
        .then(|| view! { <span class="flag">{move || text::peer_camera_off(lang.get(), &peer)}</span> });
    Some(view! { <div class="peer-flags" role="status">{muted}{no_video}</div> })
}

// Material-style 24×24 glyphs as inline SVG paths: emoji fonts are missing on many systems.
const MIC: &str = "M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11h-2z";
const MIC_OFF: &str = "M19 11h-1.7c0 .74-.16 1.43-.43 2.05l1.23 1.23c.56-.98.9-2.09.9-3.28zm-4.02.17c0-.06.02-.11.02-.17V5a3 3 0 0 0-6 0v.18l5.98 5.99zM4.27 3 3 4.27l6.01 6.01V11a3 3 0 0 0 3 3c.22 0 .44-.03.65-.08l1.66 1.66c-.71.33-1.5.52-2.31.52A5.2 5.2 0 0 1 6.7 11H5c0 3.41 2.72 6.23 6 6.72V21h2v-3.28a7.1 7.1 0 0 0 2.54-.9L19.73 21 21 19.73 4.27 3z";
const CAMERA: &str =
    "M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11l-4 4z";
const CAMERA_OFF: &str = "M21 6.5l-4 4V7a1 1 0 0 0-1-1H9.82L21 17.18V6.5zM3.27 2 2 3.27 4.73 6H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12c.21 0 .39-.08.54-.18L19.73 21 21 19.73 3.27 2z";
const FULLSCREEN: &str = "M7 14H5v5h5v-2H7v-3zm-2-4h2V7h3V5H5v5zm12 7h-3v2h5v-5h-2v3zM14 5v2h3v3h2V5h-5z";
const SWITCH_CAMERA: &str = "M20 5h-3.17L15 3H9L7.17 5H4a2 2 0 0 0-2 2v12a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2V7a2 2 0 0 0-2-2zm-5 11.5V14H9v2.5L5.5 13 9 9.5V12h6V9.5l3.5 3.5-3.5 3.5z";

#[component]
fn Icon(#[prop(into)] path: Signal<&'static str>) -> impl IntoView {
    view! {
        <svg viewBox="0 0 24 24" width="24" height="24" aria-hidden="true">
            <path fill="currentColor" d=path></path>
        </svg>
    }
}

fn incoming(peer: String, dispatch: Callback<Event>) -> impl IntoView {
    // Focus goes to the sheet itself, not to a button: a screen reader announces the call, and a
    // key pressed for something else (Enter in the friend field) answers nothing.
    let sheet = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        if let Some(el) = sheet.get() {
            let _ = el.focus();
        }
    });
    view! {
        <div class="sheet-backdrop">
            <div
                class="sheet"
                role="alertdialog"
                aria-modal="true"
                // Read on arrival as "Incoming video call, bob".
                aria-labelledby="incoming-kicker incoming-name"
                tabindex="-1"
                node_ref=sheet
            >
                <p class="kicker" id="incoming-kicker">{t(Ui::IncomingCall)}</p>
                <span class="avatar big" aria-hidden="true">{initial(&peer)}</span>
                <h2 id="incoming-name">{peer}</h2>
                <div class="sheet-actions">
                    <button class="btn decline" on:click=move |_| dispatch.run(Event::Decline)>{t(Ui::Decline)}</button>
                    <button class="btn accept" on:click=move |_| dispatch.run(Event::Accept)>{t(Ui::Accept)}</button>
                </div>
            </div>
        </div>
    }
}
