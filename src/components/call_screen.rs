//! The call screen: remote video full size, own video as picture-in-picture, the status line,
//! and the controls for the current phase. Renders [`State`]; every button dispatches an
//! [`Event`].

use super::text::{self, Ui};
use super::{lang, t, typed_before_hydration, LangToggle};
use crate::call::{Av, Event, Link, Notice, Phase, Session, State};
use crate::quality::Quality;
use crate::signal::encode_segment;
use crate::signal::Code;
use leptos::ev::SubmitEvent;
use leptos::prelude::*;
use leptos_meta::Title;

#[component]
pub fn CallScreen(me: String, friend: String) -> impl IntoView {
    let state = RwSignal::new(State::new(&me));
    // Wall clock in ms, ticking during a call for the timer (the browser shell drives it).
    let now = RwSignal::new(0.0_f64);
    // The latest connection figures while a call is connected (the browser shell measures).
    let quality = RwSignal::new(None::<Quality>);
    let lang = lang();
    let dispatch = Callback::new(move |ev: Event| {
        #[cfg(feature = "hydrate")]
        crate::client::dispatch(ev);
        #[cfg(not(feature = "hydrate"))]
        let _ = ev;
    });

    #[cfg(feature = "hydrate")]
    {
        let me = me.clone();
        Effect::new(move |_| crate::client::start(&me, state, now, quality, lang));
        on_cleanup(crate::client::stop);
    }

    let friend = RwSignal::new(typed_before_hydration("friend").unwrap_or(friend));
    let live = move || state.with(|s| matches!(s.phase, Phase::Live(_)));
    // Own camera full screen while dialing or behind the incoming sheet (warmed media).
    let preview = Memo::new(move |_| state.with(State::previewing));
    let view = StageView::new(preview.into());
    let full_screen = move || live() || preview.get();
    // Every call starts with the own video small; the corner the user chose is kept.
    Effect::new(move |_| {
        if !live() {
            view.swapped.set(false);
        }
    });
    let share = format!("/call/{}", encode_segment(&me));
    // Each part re-renders only when what it shows changes, not on every state update: that
    // keeps keyboard focus, typed text and open panels across presence and ICE traffic.
    let mode = Memo::new(move |_| state.with(|s| Controls::of(&s.phase)));
    let is_connected = Memo::new(move |_| state.with(|s| s.connected_call().is_some()));
    let flags = Memo::new(move |_| state.with(|s| s.connected_call().map(|c| (c.peer.clone(), c.remote))));
    let refused_by = Memo::new(move |_| {
        state.with(|s| match s.link {
            Link::Refused(code) => Some(code),
            _ => None,
        })
    });
    let shown_notice = Memo::new(move |_| state.with(|s| s.notice.clone()));
    let status = Memo::new(move |_| state.with(|s| s.status(now.get())));
    // Changes with the phase, not with the clock: the live region speaks only when it means it.
    let words = Memo::new(move |_| status.with(|s| text::status(lang.get(), s)));
    let ringing = Memo::new(move |_| {
        state.with(|s| match &s.phase {
            Phase::Ringing { peer } => Some(peer.clone()),
            _ => None,
        })
    });

    let me_title = me.clone();
    view! {
        <Title text=format!("Duet · {me}")/>
        // One landmark for the whole screen: the call is one task, header and sheet included.
        <main class="call" class:live=full_screen>
            // The screen's title for screen readers; sighted people see their name in the bar.
            <h1 class="sr-only">{move || text::screen_title(lang.get(), &me_title)}</h1>
            <header class="topbar">
                <a class="brand" href="/">"Duet"</a>
                <span class="me" title=t(Ui::YourName)>{me.clone()}</span>
                {move || is_connected.get().then(|| view! { <QualityBars quality/> })}
                <span
                    class=move || state.with(|s| format!("link link-{}", link_class(&s.link)))
                    role="img"
                    aria-label=move || state.with(|s| text::link(lang.get(), &s.link))
                    title=move || state.with(|s| text::link(lang.get(), &s.link))
                ></span>
                <LangToggle/>
            </header>
            <section
                // One class string: a reactive `class` would wipe a separate `class:swapped`.
                class=move || {
                    let swapped = if view.swapped.get() { " swapped" } else { "" };
                    let preview = if preview.get() { " preview" } else { "" };
                    format!("stage pip-{}{swapped}{preview}", view.corner.get().class())
                }
                aria-label=t(Ui::Video)
            >
                {stage_video(view, false, || false)}
                {stage_video(view, true, move || session_flag(state, |s| !s.local.video))}
                {pip_handle(view)}
                {move || peer_flags(flags.get())}
            </section>
            <div class="panel">
                <p class="status">
                    <span role="status" aria-live="polite">{move || words.get()}</span>
                    <span class="timer">{move || status.with(text::call_timer)}</span>
                </p>
                {move || refused_by.get().map(refused)}
                {move || shown_notice.get().map(|n| notice(n, dispatch))}
                {move || controls(mode.get(), state, dispatch, friend, share.clone())}
            </div>
            {move || ringing.get().map(|peer| incoming(peer, dispatch))}
        </main>
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

    /// The corner an arrow key moves to (keyboard alternative to dragging).
    fn moved(self, key: &str) -> Corner {
        let (left, top) = (
            matches!(self, Corner::TopLeft | Corner::BottomLeft),
            matches!(self, Corner::TopLeft | Corner::TopRight),
        );
        let (left, top) = match key {
            "ArrowLeft" => (true, top),
            "ArrowRight" => (false, top),
            "ArrowUp" => (left, true),
            "ArrowDown" => (left, false),
            _ => (left, top),
        };
        Corner::nearest(if left { 0.0 } else { 1.0 }, if top { 0.0 } else { 1.0 })
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
    /// Only the own preview is shown (before the call is live): nothing is small.
    preview: Signal<bool>,
}

/// Pointer travel (px) below which a press counts as a tap.
const TAP_SLOP: f64 = 8.0;

impl StageView {
    fn new(preview: Signal<bool>) -> StageView {
        StageView {
            swapped: RwSignal::new(false),
            corner: RwSignal::new(Corner::TopRight),
            drag_from: RwSignal::new(None),
            drag_offset: RwSignal::new(None),
            dragged: RwSignal::new(false),
            preview,
        }
    }

    /// Whether this video (`local` or remote) is the picture-in-picture.
    fn small(self, local: bool) -> bool {
        !self.preview.get() && local != self.swapped.get()
    }

    /// A click on the handle swaps the two videos, unless it ends a drag. A click from the
    /// keyboard (Enter or Space on the handle: `detail` 0) always swaps.
    fn swap(self, ev: &leptos::ev::MouseEvent) {
        if self.preview.get_untracked() || (ev.detail() != 0 && self.dragged.get_untracked()) {
            return;
        }
        self.swapped.update(|s| *s = !*s);
    }

    /// Arrow keys on the handle move the small video to another corner.
    fn key(self, ev: &leptos::ev::KeyboardEvent) {
        if let key @ ("ArrowLeft" | "ArrowRight" | "ArrowUp" | "ArrowDown") = ev.key().as_str() {
            ev.prevent_default();
            self.corner.update(|c| *c = c.moved(key));
        }
    }

    /// The drag offset for the handle and, if it is the small one (`local` says which), a video.
    fn offset(self, local: Option<bool>) -> Option<String> {
        let (x, y) = self.drag_offset.get()?;
        // Whole pixels: formatting an f64 would bring float printing into the WASM.
        local
            .is_none_or(|local| self.small(local))
            .then(|| format!("{}px {}px", x as i32, y as i32))
    }

    fn drag_start(self, ev: &leptos::ev::PointerEvent) {
        if self.preview.get_untracked() {
            return;
        }
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

/// One of the two videos (`local`: our camera, muted and mirrored). Whichever is small sits under
/// the [`pip_handle`]; the other fills the stage.
fn stage_video(
    view: StageView,
    local: bool,
    camera_off: impl Fn() -> bool + Send + Sync + 'static,
) -> impl IntoView {
    view! {
        <video
            id=if local { "local-video" } else { "remote-video" }
            class=if local { "local" } else { "remote" }
            class:camera-off=camera_off
            autoplay
            playsinline
            // Our own sound must never play back to us.
            muted=local
            prop:muted=local
            style:translate=move || view.offset(Some(local))
        ></video>
    }
}

/// A transparent button over the picture-in-picture, whichever video it shows: tap or Enter to
/// swap the two, drag or arrow keys to move it to another corner. A real button, so keyboards
/// and screen readers get it without an ARIA role a `<video>` may not have.
fn pip_handle(view: StageView) -> impl IntoView {
    view! {
        <button
            class="pip-handle"
            type="button"
            aria-label=t(Ui::SwapVideos)
            title=t(Ui::SwapVideos)
            on:click=move |ev| view.swap(&ev)
            on:keydown=move |ev| view.key(&ev)
            on:pointerdown=move |ev| view.drag_start(&ev)
            on:pointermove=move |ev| view.drag_move(&ev)
            on:pointerup=move |ev| view.drag_end(&ev)
            on:pointercancel=move |ev| view.drag_end(&ev)
            style:translate=move || view.offset(None)
        ></button>
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

fn refused(code: Code) -> impl IntoView {
    let lang = lang();
    view! {
        <div class="banner" role="alert">
            <p>{move || text::refused(lang.get(), code)}</p>
            <a class="btn primary" href="/">{t(Ui::ChooseAnotherName)}</a>
        </div>
    }
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

/// Which controls the panel shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Controls {
    Dialer,
    Cancel,
    /// Mute, camera, switch, full screen and hang up, once the camera is open.
    InCall,
    HangUp,
    None,
}

impl Controls {
    fn of(phase: &Phase) -> Controls {
        match phase {
            Phase::Idle | Phase::Ended { .. } => Controls::Dialer,
            Phase::Calling { .. } => Controls::Cancel,
            Phase::Live(s) if s.media_ready => Controls::InCall,
            Phase::Live(_) => Controls::HangUp,
            Phase::Ringing { .. } => Controls::None,
        }
    }
}

fn controls(
    mode: Controls,
    state: RwSignal<State>,
    dispatch: Callback<Event>,
    friend: RwSignal<String>,
    share: String,
) -> impl IntoView {
    use leptos::either::EitherOf4;
    let hang_up = move |label: Ui| {
        view! {
            <button class="btn hangup" on:click=move |_| dispatch.run(Event::HangUp)>{t(label)}</button>
        }
    };
    // Not `into_any()`: an AnyView drags in code for async hydration, which Duet never uses.
    match mode {
        Controls::Dialer => EitherOf4::A(dialer(state, dispatch, friend, share)),
        Controls::Cancel => EitherOf4::B(hang_up(Ui::Cancel)),
        Controls::InCall => EitherOf4::C(view! {
            <div class="incall" role="group" aria-label=t(Ui::CallControls)>
                {media_controls(state, dispatch)}
                {hang_up(Ui::HangUp)}
            </div>
        }),
        Controls::HangUp => EitherOf4::B(hang_up(Ui::HangUp)),
        Controls::None => EitherOf4::D(()),
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
            <label for="friend">{t(Ui::FriendsName)}</label>
            <div class="dial-row">
                <input
                    id="friend"
                    name="friend"
                    type="text"
                    autocomplete="off"
                    autocapitalize="off"
                    spellcheck="false"
                    placeholder=t(Ui::FriendPlaceholder)
                    // The attribute for the server-rendered page, the property once hydrated.
                    value=friend.get_untracked()
                    prop:value=move || friend.get()
                    on:input=move |ev| friend.set(event_target_value(&ev))
                />
                <button class="btn call-btn" type="submit">{t(Ui::Call)}</button>
            </div>
        </form>
        <section class="online" aria-labelledby="online-heading">
            <h2 id="online-heading">{t(Ui::OnlineNow)}</h2>
            <Show
                when=move || !online().is_empty()
                fallback=|| view! { <p class="empty">{t(Ui::NobodyOnline)}</p> }
            >
                <ul>
                    <For
                        each=online
                        key=|name| name.clone()
                        children=move |name: String| {
                            let callee = name.clone();
                            view! {
                                <li>
                                    // Named by its content, "Call bob": the name people see
                                    // is the name voice control hears.
                                    <button
                                        class="person"
                                        on:click=move |_| dispatch.run(Event::Dial(callee.clone()))
                                    >
                                        <span class="sr-only">{t(Ui::Call)}" "</span>
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
            <a class="share" href=share>{t(Ui::YourCallLink)}</a>
        </section>
        <NotifyOffer/>
    }
}

/// Offers call notifications while the browser has not been asked yet: the permission prompt
/// comes only from this tap, never by itself.
#[component]
fn NotifyOffer() -> impl IntoView {
    // Unknown on the server and at hydration; the browser tells afterwards.
    let permission = RwSignal::new(None::<String>);
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| permission.set(crate::client::notify::permission()));
    let ask = move |_| {
        #[cfg(feature = "hydrate")]
        leptos::task::spawn_local(async move {
            permission.set(crate::client::notify::request().await);
        });
    };
    view! {
        <Show when=move || permission.with(|p| p.as_deref() == Some("default"))>
            <button class="btn subtle notify-offer" on:click=ask>{t(Ui::NotifyMe)}</button>
        </Show>
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

/// The first letter (CSS shows it in capitals: no Unicode case tables in the WASM).
fn initial(name: &str) -> String {
    name.chars().next().map(String::from).unwrap_or_default()
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrow_keys_move_the_picture_in_picture_between_corners() {
        let c = Corner::TopRight;
        assert_eq!(c.moved("ArrowLeft"), Corner::TopLeft);
        assert_eq!(c.moved("ArrowDown"), Corner::BottomRight);
        assert_eq!(c.moved("ArrowRight"), Corner::TopRight, "already there");
        assert_eq!(Corner::BottomLeft.moved("ArrowUp"), Corner::TopLeft);
        assert_eq!(Corner::BottomLeft.moved("x"), Corner::BottomLeft);
    }

    #[test]
    fn controls_follow_the_phase() {
        let (s, _) = State::new("alice").step(Event::Dial("bob".into()));
        assert_eq!(Controls::of(&s.phase), Controls::Cancel);
        assert_eq!(Controls::of(&Phase::Idle), Controls::Dialer);
        let ringing = Phase::Ringing { peer: "bob".into() };
        assert_eq!(Controls::of(&ringing), Controls::None);
    }
}
