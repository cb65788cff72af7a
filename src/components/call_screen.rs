//! The call screen: remote video full size, own video as picture-in-picture, the status line,
//! and the controls for the current phase. Renders [`State`]; every button dispatches an
//! [`Event`].

use super::{encode_segment, text};
use crate::call::{Event, Link, Phase, State};
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
            <section class="stage" aria-label="Video">
                <video id="remote-video" class="remote" autoplay playsinline></video>
                <video id="local-video" class="local" autoplay playsinline muted prop:muted=true></video>
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
        Phase::Live(_) => hang_up("Hang up").into_any(),
        Phase::Ringing { .. } => ().into_any(),
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
