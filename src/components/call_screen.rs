//! The call screen: remote video full size, own video as picture-in-picture, the status line,
//! and the controls for the current phase. Renders [`State`]; every button dispatches an
//! [`Event`].

use super::{encode_segment, text};
use crate::call::{Event, Link, Phase, Session, State};
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn CallScreen(me: String, friend: String) -> impl IntoView {
    let state = RwSignal::new(State::new(&me));
    // Wall clock in ms, ticking during a call for the timer (the browser shell drives it).
    let now = RwSignal::new(0.0_f64);
    let dispatch = Callback::new(move |ev: Event| {
        #[cfg(feature = "hydrate")]
        crate::client::dispatch(ev);
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    });

    #[cfg(feature = "hydrate")]
    {
        let me = me.clone();
        Effect::new(move |_| crate::client::start(&me, state, now));
        on_cleanup(crate::client::stop);
    }

    let friend = RwSignal::new(friend);
    let view = StageView::new();
    let live = move || state.with(|s| matches!(s.phase, Phase::Live(_)));
    let share = format!("/call/{}", encode_segment(&me));

    view! {
        <Title text=format!("Duet · {me}")/>
        <div class="call" class:live=live>
            <header class="topbar">
                <a class="brand" href="/">"Duet"</a>
                <span class="me" title="Your name">{me.clone()}</span>
                <span
                    class=move || state.with(|s| format!("link link-{}", link_class(&s.link)))
                    title=move || state.with(|s| text::link(&s.link).to_owned())
                ></span>
            </header>
            <section
                class=move || format!("stage pip-{}", view.corner.get().class())
                class:swapped=move || view.swapped.get()
                aria-label="Video"
            >
                <video
                    id="remote-video"
                    class="remote"
                    autoplay
                    playsinline
                    on:click=move |_| view.swap_if_small(false)
                ></video>
                <video
                    id="local-video"
                    class="local"
                    class:camera-off=move || session_flag(state, |s| !s.local.video)
                    autoplay
                    playsinline
                    muted
                    prop:muted=true
                    on:click=move |_| view.swap_if_small(true)
                    on:pointerdown=move |ev| view.drag_start(&ev)
                    on:pointermove=move |ev| view.drag_move(&ev)
                    on:pointerup=move |ev| view.drag_end(&ev)
                    on:pointercancel=move |ev| view.drag_end(&ev)
                    style:translate=move || view.drag_offset.get().map(|(x, y)| format!("{x}px {y}px"))
                ></video>
                {move || peer_flags(state)}
            </section>
            <div class="panel">
                <p class="status" role="status" aria-live="polite">
                    {move || state.with(|s| text::status(&s.status(now.get())))}
                </p>
                {move || refused(state)}
                {move || notice(state, dispatch)}
                {move || controls(state, dispatch, friend, share.clone())}
            </div>
            {move || incoming(state, dispatch)}
        </div>
    }
}

/// Corner of the stage that holds the picture-in-picture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Corner {
    TopLeft,
    TopRight,
    BottomLeft,
    BottomRight,
}

impl Corner {
    fn class(self) -> &'static str {
        match self {
            Corner::TopLeft => "tl",
            Corner::TopRight => "tr",
            Corner::BottomLeft => "bl",
            Corner::BottomRight => "br",
        }
    }

    /// The corner nearest to a point, as fractions (0..1) of the stage's width and height.
    fn nearest(x: f64, y: f64) -> Corner {
        match (x < 0.5, y < 0.5) {
            (true, true) => Corner::TopLeft,
            (false, true) => Corner::TopRight,
            (true, false) => Corner::BottomLeft,
            (false, false) => Corner::BottomRight,
        }
    }
}

/// How the videos are laid out: which one is small (tap the small one to swap) and where the
/// small one sits (drag it; it snaps to the nearest corner). View state only, not call state.
#[derive(Clone, Copy)]
struct StageView {
    swapped: RwSignal<bool>,
    corner: RwSignal<Corner>,
    /// While dragging: the pointer's start and the current offset in px.
    drag_from: RwSignal<Option<(f64, f64)>>,
    drag_offset: RwSignal<Option<(f64, f64)>>,
    /// A drag that moved must not also count as a tap.
    dragged: RwSignal<bool>,
}

/// Pointer travel (px) below which a press counts as a tap.
const TAP_SLOP: f64 = 8.0;

impl StageView {
    fn new() -> StageView {
        StageView {
            swapped: RwSignal::new(false),
            corner: RwSignal::new(Corner::TopRight),
            drag_from: RwSignal::new(None),
            drag_offset: RwSignal::new(None),
            dragged: RwSignal::new(false),
        }
    }

    /// A tap on a video swaps the two if it is the small one (`local` says which was tapped).
    fn swap_if_small(self, local: bool) {
        if self.dragged.get_untracked() {
            return;
        }
        if local != self.swapped.get_untracked() {
            self.swapped.update(|s| *s = !*s);
        }
    }

    fn drag_start(self, ev: &leptos::ev::PointerEvent) {
        self.dragged.set(false);
        self.drag_from
            .set(Some((ev.client_x() as f64, ev.client_y() as f64)));
        #[cfg(feature = "hydrate")]
        if let Some(target) = ev
            .target()
            .and_then(|t| wasm_bindgen::JsCast::dyn_into::<web_sys::Element>(t).ok())
        {
            let _ = target.set_pointer_capture(ev.pointer_id());
        }
    }

    fn drag_move(self, ev: &leptos::ev::PointerEvent) {
        let Some((x0, y0)) = self.drag_from.get_untracked() else {
            return;
        };
        let (dx, dy) = (ev.client_x() as f64 - x0, ev.client_y() as f64 - y0);
        if self.dragged.get_untracked() || dx.hypot(dy) > TAP_SLOP {
            self.dragged.set(true);
            self.drag_offset.set(Some((dx, dy)));
        }
    }

    fn drag_end(self, ev: &leptos::ev::PointerEvent) {
        self.drag_from.set(None);
        self.drag_offset.set(None);
        if !self.dragged.get_untracked() {
            return;
        }
        // Snap to the corner nearest to where the pointer was let go.
        #[cfg(feature = "hydrate")]
        {
            let window = window();
            let width = window.inner_width().ok().and_then(|w| w.as_f64()).unwrap_or(1.0);
            let height = window.inner_height().ok().and_then(|h| h.as_f64()).unwrap_or(1.0);
            self.corner.set(Corner::nearest(
                ev.client_x() as f64 / width,
                ev.client_y() as f64 / height,
            ));
        }
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    }
}

fn link_class(link: &Link) -> &'static str {
    match link {
        Link::Connecting => "connecting",
        Link::Online => "online",
        Link::Reconnecting => "reconnecting",
        Link::Refused(_) => "refused",
    }
}

fn refused(state: RwSignal<State>) -> Option<impl IntoView> {
    let Link::Refused(why) = state.with(|s| s.link.clone()) else {
        return None;
    };
    Some(view! {
        <div class="banner" role="alert">
            <p>{why}</p>
            <a class="btn primary" href="/">"Choose another name"</a>
        </div>
    })
}

fn notice(state: RwSignal<State>, dispatch: Callback<Event>) -> Option<impl IntoView> {
    let text = state.with(|s| s.notice.clone())?;
    Some(view! {
        <div class="toast" role="alert">
            <span>{text}</span>
            <button class="icon" aria-label="Dismiss" on:click=move |_| dispatch.run(Event::DismissNotice)>"×"</button>
        </div>
    })
}

fn controls(
    state: RwSignal<State>,
    dispatch: Callback<Event>,
    friend: RwSignal<String>,
    share: String,
) -> AnyView {
    let hang_up = move |label: &'static str| {
        view! {
            <button class="btn hangup" on:click=move |_| dispatch.run(Event::HangUp)>{label}</button>
        }
    };
    match state.with(|s| s.phase.clone()) {
        Phase::Idle | Phase::Ended { .. } => dialer(state, dispatch, friend, share).into_any(),
        Phase::Calling { .. } => hang_up("Cancel").into_any(),
        Phase::Live(s) if s.media_ready => view! {
            <div class="incall" role="group" aria-label="Call controls">
                {media_controls(state, dispatch)}
                {hang_up("Hang up")}
            </div>
        }
        .into_any(),
        Phase::Live(_) => hang_up("Hang up").into_any(),
        Phase::Ringing { .. } => ().into_any(),
    }
}

/// Reads a flag of the current call; false outside one.
fn session_flag(state: RwSignal<State>, f: impl Fn(&Session) -> bool) -> bool {
    state.with(|s| match &s.phase {
        Phase::Live(session) => f(session),
        _ => false,
    })
}

/// Mute, camera on/off, switch camera: toggle buttons that show their state.
fn media_controls(state: RwSignal<State>, dispatch: Callback<Event>) -> impl IntoView {
    let mic_off = move || session_flag(state, |s| !s.local.audio);
    let cam_off = move || session_flag(state, |s| !s.local.video);
    view! {
        <button
            class="round"
            class:off=mic_off
            aria-pressed=move || mic_off().to_string()
            aria-label=move || if mic_off() { "Unmute microphone" } else { "Mute microphone" }
            title=move || if mic_off() { "Unmute microphone" } else { "Mute microphone" }
            on:click=move |_| dispatch.run(Event::ToggleMic)
        >
            <Icon path=move || if mic_off() { MIC_OFF } else { MIC }/>
        </button>
        <button
            class="round"
            class:off=cam_off
            aria-pressed=move || cam_off().to_string()
            aria-label=move || if cam_off() { "Turn camera on" } else { "Turn camera off" }
            title=move || if cam_off() { "Turn camera on" } else { "Turn camera off" }
            on:click=move |_| dispatch.run(Event::ToggleCamera)
        >
            <Icon path=move || if cam_off() { CAMERA_OFF } else { CAMERA }/>
        </button>
        <button
            class="round"
            aria-label="Switch camera"
            title="Switch camera"
            on:click=move |_| dispatch.run(Event::SwitchCamera)
        >
            <Icon path=|| SWITCH_CAMERA/>
        </button>
        <button class="round" aria-label="Full screen" title="Full screen" on:click=move |_| toggle_fullscreen()>
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
fn peer_flags(state: RwSignal<State>) -> Option<impl IntoView> {
    let (peer, remote) = state.with(|s| match &s.phase {
        Phase::Live(session) if session.connected_at.is_some() => {
            Some((session.peer.clone(), session.remote))
        }
        _ => None,
    })?;
    let muted = (!remote.audio).then(|| view! { <span class="flag">{format!("{peer} is muted")}</span> });
    let no_video =
        (!remote.video).then(|| view! { <span class="flag">{format!("{peer}'s camera is off")}</span> });
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

fn dialer(
    state: RwSignal<State>,
    dispatch: Callback<Event>,
    friend: RwSignal<String>,
    share: String,
) -> impl IntoView {
    let submit = move |ev: SubmitEvent| {
        ev.prevent_default();
        dispatch.run(Event::Dial(friend.get_untracked()));
    };
    let online = move || state.with(|s| s.online.clone());
    view! {
        <form class="dial" on:submit=submit>
            <label for="friend">"Friend's name"</label>
            <div class="dial-row">
                <input
                    id="friend"
                    name="friend"
                    type="text"
                    autocomplete="off"
                    autocapitalize="off"
                    spellcheck="false"
                    placeholder="e.g. bob"
                    // The attribute for the server-rendered page, the property once hydrated.
                    value=friend.get_untracked()
                    prop:value=move || friend.get()
                    on:input=move |ev| friend.set(event_target_value(&ev))
                />
                <button class="btn call-btn" type="submit">"Call"</button>
            </div>
        </form>
        <section class="online" aria-label="Online now">
            <h2>"Online now"</h2>
            <Show
                when=move || !online().is_empty()
                fallback=|| view! { <p class="empty">"Nobody else is online yet. Share your link:"</p> }
            >
                <ul>
                    <For
                        each=online
                        key=|name| name.clone()
                        children=move |name: String| {
                            let callee = name.clone();
                            view! {
                                <li>
                                    <button
                                        class="person"
                                        aria-label=format!("Call {name}")
                                        on:click=move |_| dispatch.run(Event::Dial(callee.clone()))
                                    >
                                        <span class="avatar" aria-hidden="true">{initial(&name)}</span>
                                        <span class="who">{name.clone()}</span>
                                        <PhoneIcon/>
                                    </button>
                                </li>
                            }
                        }
                    />
                </ul>
            </Show>
            <a class="share" href=share>"Your call link"</a>
        </section>
    }
}

/// A handset glyph as inline SVG: emoji fonts are missing on many systems.
#[component]
fn PhoneIcon() -> impl IntoView {
    view! {
        <svg class="call-icon" viewBox="0 0 24 24" width="22" height="22" aria-hidden="true">
            <path
                fill="currentColor"
                d="M6.62 10.79a15.05 15.05 0 0 0 6.59 6.59l2.2-2.2a1 1 0 0 1 1.01-.24c1.12.37 2.33.57 3.58.57a1 1 0 0 1 1 1V20a1 1 0 0 1-1 1C10.61 21 3 13.39 3 4a1 1 0 0 1 1-1h3.5a1 1 0 0 1 1 1c0 1.25.2 2.46.57 3.58a1 1 0 0 1-.25 1.01l-2.2 2.2z"
            ></path>
        </svg>
    }
}

fn initial(name: &str) -> String {
    name.chars()
        .next()
        .map(|c| c.to_uppercase().collect())
        .unwrap_or_default()
}

fn incoming(state: RwSignal<State>, dispatch: Callback<Event>) -> Option<impl IntoView> {
    let Phase::Ringing { peer } = state.with(|s| s.phase.clone()) else {
        return None;
    };
    Some(view! {
        <div class="sheet-backdrop">
            <div class="sheet" role="alertdialog" aria-modal="true" aria-labelledby="incoming-name">
                <p class="kicker">"Incoming video call"</p>
                <span class="avatar big" aria-hidden="true">{initial(&peer)}</span>
                <h2 id="incoming-name">{peer}</h2>
                <div class="sheet-actions">
                    <button class="btn decline" on:click=move |_| dispatch.run(Event::Decline)>"Decline"</button>
                    <button class="btn accept" on:click=move |_| dispatch.run(Event::Accept)>"Accept"</button>
                </div>
            </div>
        </div>
    })
}
