//! The call screen: remote video full size, own video as picture-in-picture, the status line,
//! and the controls for the current phase. Renders [`State`]; every button dispatches an
//! [`Event`].

use super::text::{self, Ui};
use super::{lang, t, typed_before_hydration, LangToggle};
use crate::call::{Av, Event, Link, Notice, Phase, Session, State};
use crate::chat::Chat;
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
    // The call's chat (the browser shell fills it from the data channels).
    let chat = RwSignal::new(Chat::default());
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
        Effect::new(move |_| crate::client::start(&me, state, now, quality, chat, lang));
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

    let extras = Extras {
        state,
        dispatch,
        quality,
        is_connected,
        flags,
        shown_notice,
        ringing,
        chat,
    };
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
                {lazy_host(Region::Quality, extras)}
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
                    // A shared screen is shown whole (contain), not cropped like a face.
                    let screens = state.with(|s| match &s.phase {
                        Phase::Live(s) => (s.local.screen, s.remote.screen),
                        _ => (false, false),
                    });
                    let sharing = if screens.0 { " sharing" } else { "" };
                    let peer_screen = if screens.1 { " peer-screen" } else { "" };
                    format!(
                        "stage pip-{}{swapped}{preview}{sharing}{peer_screen}",
                        view.corner.get().class()
                    )
                }
                aria-label=t(Ui::Video)
            >
                {stage_video(view, false, || false)}
                {stage_video(view, true, move || session_flag(state, |s| !s.local.video))}
                {pip_handle(view)}
                {lazy_host(Region::Flags, extras)}
            </section>
            <div class="panel">
                <p class="status">
                    <span role="status" aria-live="polite">{move || words.get()}</span>
                    <span class="timer">{move || status.with(text::call_timer)}</span>
                </p>
                {move || refused_by.get().map(refused)}
                {lazy_host(Region::Notice, extras)}
                {move || controls(mode.get(), extras, friend, share.clone())}
            </div>
            {lazy_host(Region::Sheet, extras)}
            {lazy_host(Region::Chat, extras)}
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

/// What the lazily loaded parts of the screen ([`super::extras`]) render from: handles only.
#[derive(Clone, Copy)]
#[cfg_attr(not(feature = "hydrate"), allow(dead_code))]
pub(super) struct Extras {
    pub state: RwSignal<State>,
    pub dispatch: Callback<Event>,
    pub quality: RwSignal<Option<Quality>>,
    pub is_connected: Memo<bool>,
    pub flags: Memo<Option<(String, Av)>>,
    pub shown_notice: Memo<Option<Notice>>,
    pub ringing: Memo<Option<String>>,
    pub chat: RwSignal<Chat>,
}

/// The parts of the screen that are loaded lazily, each into its own host element.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Region {
    /// Quality bars and their figures, in the top bar while connected.
    Quality,
    /// What the peer turned off, over the video.
    Flags,
    /// A notice (declined, busy, …) with its dismiss button.
    Notice,
    /// Mute, camera, switch and full screen, in a call.
    Media,
    /// The incoming-call sheet.
    Sheet,
    /// The chat panel, in a call with a Duet peer.
    Chat,
}

/// An empty element (the server renders nothing more) into which `region` is mounted once the
/// page has hydrated and the lazily loaded chunk has arrived. The call screen creates the hosts
/// of the sheet, the quality bars, the flags and the notices at hydration, which fetches the
/// chunk right away: a call that rings later finds it loaded, and the sheet appears in the same
/// tick as the state that shows it. `display: contents`: the host adds nothing to the layout.
fn lazy_host(region: Region, extras: Extras) -> impl IntoView {
    let host = NodeRef::<leptos::html::Div>::new();
    #[cfg(feature = "hydrate")]
    Effect::new(move |_| {
        let Some(el) = host.get() else { return };
        leptos::task::spawn_local_scoped(async move {
            #[cfg(feature = "split")]
            let mounted = super::extras::mount(region, el.into(), extras).await;
            #[cfg(not(feature = "split"))]
            let mounted = super::extras::mount(region, el.into(), extras);
            // Kept as long as this effect's owner (the host's part of the screen) lives.
            StoredValue::new_local(mounted);
        });
    });
    #[cfg(not(feature = "hydrate"))]
    let _ = (region, extras);
    view! { <div class="lazy-host" node_ref=host></div> }
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

fn controls(mode: Controls, extras: Extras, friend: RwSignal<String>, share: String) -> impl IntoView {
    use leptos::either::EitherOf4;
    let Extras { state, dispatch, .. } = extras;
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
                {lazy_host(Region::Media, extras)}
                {hang_up(Ui::HangUp)}
            </div>
        }),
        Controls::HangUp => EitherOf4::B(hang_up(Ui::HangUp)),
        Controls::None => EitherOf4::D(()),
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
        <form class="dial" accept-charset="utf-8" on:submit=submit>
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

/// Reads a flag of the current call; false outside one.
pub(super) fn session_flag(state: RwSignal<State>, f: impl Fn(&Session) -> bool) -> bool {
    state.with(|s| match &s.phase {
        Phase::Live(session) => f(session),
        _ => false,
    })
}

/// The first letter (CSS shows it in capitals: no Unicode case tables in the WASM).
pub(super) fn initial(name: &str) -> String {
    name.chars().next().map(String::from).unwrap_or_default()
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
