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
use super::text::{self, Talk, Ui};
use super::{lang, t};
use crate::call::{Av, Event, Notice, State};
use crate::chat::{self, Chat, In, Line, Piece, Stage};
use crate::client::js;
use crate::quality::Quality;
use leptos::either::{Either, EitherOf3};
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
        chat,
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
            Region::Media => Box::new(mount_to(host, move || media_controls(state, dispatch, chat))),
            Region::Chat => {
                load_stylesheet("/in-call.css");
                Box::new(mount_to(host, move || chat_panel(state, chat)))
            }
            Region::Sheet => Box::new(mount_to(host, move || {
                move || ringing.get().map(|peer| incoming(peer, dispatch))
            })),
        }
    })
}

/// Adds a stylesheet to the page once: the in-call parts' own styles come with their code.
fn load_stylesheet(href: &str) {
    let document = document();
    if document.get_element_by_id(href).is_some() {
        return;
    }
    if let (Some(head), Ok(link)) = (document.head(), document.create_element("link")) {
        for (name, value) in [("id", href), ("rel", "stylesheet"), ("href", href)] {
            let _ = link.set_attribute(name, value);
        }
        let _ = head.append_child(&link);
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

/// Mute, camera on/off, switch camera, share screen, chat: toggle buttons that show their state.
fn media_controls(state: RwSignal<State>, dispatch: Callback<Event>, chat: RwSignal<Chat>) -> impl IntoView {
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
        {crate::client::can_share_screen().then(|| share_button(state, dispatch))}
        {move || chat.with(|c| c.ready).then(|| chat_button(chat))}
        <button class="round" aria-label=t(Ui::FullScreen) title=t(Ui::FullScreen) on:click=move |_| toggle_fullscreen()>
            <Icon path=|| FULLSCREEN/>
        </button>
    }
}

/// Share the screen instead of the camera, or stop (desktop browsers only).
fn share_button(state: RwSignal<State>, dispatch: Callback<Event>) -> impl IntoView {
    let lang = lang();
    let sharing = move || session_flag(state, |s| s.local.screen);
    let label = move || {
        text::talk(
            lang.get(),
            if sharing() {
                Talk::StopSharing
            } else {
                Talk::ShareScreen
            },
        )
    };
    view! {
        <button
            class="round share-screen"
            class:off=sharing
            aria-pressed=move || sharing().to_string()
            aria-label=label
            title=label
            on:click=move |_| dispatch.run(Event::ToggleScreen)
        >
            <Icon path=|| SCREEN/>
        </button>
    }
}

/// Opens or closes the chat panel; a badge counts what arrived while it was closed.
fn chat_button(chat: RwSignal<Chat>) -> impl IntoView {
    let lang = lang();
    let unread = Memo::new(move |_| chat.with(|c| c.unread));
    let open = Memo::new(move |_| chat.with(|c| c.open));
    let label = move || text::chat_button(lang.get(), unread.get());
    view! {
        <button
            id="chat-button"
            class="round chat-btn"
            aria-label=label
            title=label
            aria-expanded=move || open.get().to_string()
            aria-controls="chat-panel"
            on:click=move |_| crate::client::chat(In::Show(!open.get_untracked()))
        >
            <Icon path=|| CHAT/>
            {move || (unread.get() > 0).then(|| view! { <span class="badge" aria-hidden="true">{unread.get()}</span> })}
        </button>
    }
}

/// The chat: a sheet over the video on phones, a side panel on wider screens.
fn chat_panel(state: RwSignal<State>, chat: RwSignal<Chat>) -> impl IntoView {
    let shown = Memo::new(move |_| chat.with(|c| c.open && c.ready));
    move || shown.get().then(|| chat_body(state, chat))
}

fn chat_body(state: RwSignal<State>, chat: RwSignal<Chat>) -> impl IntoView {
    let lang = lang();
    let peer = Memo::new(move |_| state.with(|s| s.peer().unwrap_or_default().to_owned()));
    let keys = Memo::new(move |_| chat.with(|c| c.keyed().map(|(k, _)| k).collect::<Vec<_>>()));
    // Read out as it arrives: only what the peer says (the person knows what they typed).
    let last_heard = Memo::new(move |_| {
        chat.with(|c| {
            c.lines.iter().rev().find_map(|l| match l {
                Line::Said {
                    mine: false, text, ..
                } => Some(text.clone()),
                _ => None,
            })
        })
    });
    let draft = RwSignal::new(String::new());
    let input = NodeRef::<leptos::html::Textarea>::new();
    let list = NodeRef::<leptos::html::Ol>::new();
    let copied = RwSignal::new(false);
    Effect::new(move |_| {
        if let Some(i) = input.get() {
            let _ = i.focus();
        }
    });
    // The newest line in view.
    Effect::new(move |_| {
        keys.track();
        if let Some(l) = list.get() {
            js::set(&l, "scrollTop", &js::get(&l, "scrollHeight"));
        }
    });
    let close = move || {
        crate::client::chat(In::Show(false));
        if let Some(b) = document().get_element_by_id("chat-button") {
            let _ = wasm_bindgen::JsCast::unchecked_into::<web_sys::HtmlElement>(b).focus();
        }
    };
    let escape = window_event_listener(leptos::ev::keydown, move |ev| {
        if ev.key() == "Escape" {
            close();
        }
    });
    on_cleanup(move || escape.remove());
    let send = move || {
        let text = draft.get_untracked();
        if !text.trim().is_empty() {
            crate::client::chat(In::Say(text));
            draft.set(String::new());
        }
    };
    let copy = move |_| {
        let me = state.with_untracked(|s| s.me.clone());
        let transcript = chat.with_untracked(|c| c.transcript(&me, &peer.get_untracked(), clock));
        leptos::task::spawn_local(async move {
            copied.set(crate::client::copy_text(&transcript).await);
        });
    };
    let pick = move |ev: leptos::ev::Event| {
        let Some(field) = ev.target() else { return };
        let files = js::get(&field, "files");
        for i in 0..js::number(&files, "length") as u32 {
            crate::client::send_file(js::at(&files, i));
        }
        js::set(&field, "value", &"".into()); // the same file can be picked again
    };
    view! {
        <aside id="chat-panel" class="chat" aria-labelledby="chat-title">
            <header class="chat-head">
                <h2 id="chat-title">{move || text::talk(lang.get(), Talk::Chat)}</h2>
                <button class="btn subtle small copy" on:click=copy>
                    {move || text::talk(lang.get(), if copied.get() { Talk::Copied } else { Talk::CopyConversation })}
                </button>
                <button
                    class="icon"
                    aria-label=move || text::talk(lang.get(), Talk::CloseChat)
                    title=move || text::talk(lang.get(), Talk::CloseChat)
                    on:click=move |_| close()
                >
                    "×"
                </button>
            </header>
            <p class="sr-only" aria-live="polite">
                {move || last_heard.get().map(|text| format!("{}: {text}", peer.get()))}
            </p>
            <ol class="lines" node_ref=list>
                {move || keys.with(Vec::is_empty).then(|| view! {
                    <li class="note">{move || text::chat_intro(lang.get(), &peer.get())}</li>
                })}
                <For each=move || keys.get() key=|k| *k children=move |k| line(chat, peer, k)/>
            </ol>
            <form class="say" on:submit=move |ev| {
                ev.prevent_default();
                send();
            }>
                <label class="attach" title=move || text::talk(lang.get(), Talk::SendFile)>
                    <input
                        type="file"
                        class="sr-only"
                        multiple
                        aria-label=move || text::talk(lang.get(), Talk::SendFile)
                        on:change=pick
                    />
                    <Icon path=|| ATTACH/>
                </label>
                <label for="chat-input" class="sr-only">{move || text::talk(lang.get(), Talk::Message)}</label>
                <textarea
                    id="chat-input"
                    rows="1"
                    maxlength=chat::MAX_TEXT_CHARS.to_string()
                    enterkeyhint="send"
                    placeholder=move || text::talk(lang.get(), Talk::MessagePlaceholder)
                    node_ref=input
                    prop:value=move || draft.get()
                    on:input=move |ev| draft.set(event_target_value(&ev))
                    // Enter sends, Shift+Enter makes a new line (and an IME's Enter composes).
                    on:keydown=move |ev| {
                        let held = |key| js::get(&ev, key).is_truthy();
                        if ev.key() == "Enter" && !held("shiftKey") && !held("isComposing") {
                            ev.prevent_default();
                            send();
                        }
                    }
                ></textarea>
                <button class="send" type="submit" aria-label=move || text::talk(lang.get(), Talk::Send)>
                    <Icon path=|| SEND/>
                </button>
            </form>
        </aside>
    }
}

/// One line of the chat, by key.
fn line(chat: RwSignal<Chat>, peer: Memo<String>, key: u64) -> impl IntoView {
    let lang = lang();
    match chat.with_untracked(|c| c.by_key(key).cloned()) {
        Some(Line::Said { mine, text, at_ms }) => EitherOf3::A(view! {
            <li class=if mine { "said mine" } else { "said theirs" }>
                <p>{linked(&text)}</p>
                <time>{clock(at_ms)}</time>
            </li>
        }),
        Some(Line::File(t)) => EitherOf3::B(transfer(chat, t.id, t.mine)),
        Some(Line::Note(note)) => {
            let max_file = chat.with_untracked(|c| c.max_file);
            EitherOf3::C(Some(view! {
                <li class="note" role="status">{move || text::chat_note(lang.get(), &peer.get(), &note, max_file)}</li>
            }))
        }
        None => EitherOf3::C(None),
    }
}

/// A message's text with its web links clickable (new tab, no access back to this page).
fn linked(text: &str) -> Vec<Either<String, impl IntoView>> {
    chat::pieces(text)
        .into_iter()
        .map(|piece| match piece {
            Piece::Text(t) => Either::Left(t.to_owned()),
            Piece::Link(url) => Either::Right(view! {
                <a href=url.to_owned() target="_blank" rel="noopener noreferrer">{url.to_owned()}</a>
            }),
        })
        .collect()
}

/// "14:05" in the person's own time zone.
fn clock(at_ms: f64) -> String {
    let Some(date) = js::new("Date", &[&at_ms.into()]) else {
        return String::new();
    };
    let part = |method| {
        js::call(&date, method, &[])
            .and_then(|v| v.as_f64())
            .unwrap_or(0.0) as u32
    };
    format!("{:02}:{:02}", part("getHours"), part("getMinutes"))
}

/// A file on its way: name, size, progress, and what can be done with it now.
fn transfer(chat: RwSignal<Chat>, id: u32, mine: bool) -> impl IntoView {
    let lang = lang();
    let now = Memo::new(move |_| chat.with(|c| c.transfer(id, mine).cloned()));
    let stage = Memo::new(move |_| now.with(|t| t.as_ref().map(|t| (t.stage.clone(), t.url.clone()))));
    let percent = Memo::new(move |_| now.with(|t| t.as_ref().map_or(0, |t| t.percent())));
    let file = now.get_untracked()?;
    let (name, image) = (file.name.clone(), file.is_image());
    // Name, size and type come first: the receiver decides from them.
    let size = format!("{} · {}", chat::size_text(file.size), file.mime);
    let act = move |input: In| move |_| crate::client::chat(input.clone());
    let label = name.clone();
    let actions = move || {
        let (stage, url) = stage.get()?;
        let name = name.clone();
        Some(match (stage, mine) {
            (Stage::Offered, false) => EitherOf3::A(view! {
                <button class="btn small accept" on:click=act(In::Accept(id))>{move || text::talk(lang.get(), Talk::Receive)}</button>
                <button class="btn small decline" on:click=act(In::Cancel { id, mine })>{t(Ui::Decline)}</button>
            }),
            (open @ (Stage::Offered | Stage::Going), _) => EitherOf3::B(view! {
                <span class="file-state">{move || (mine && open == Stage::Offered).then(|| text::talk(lang.get(), Talk::Waiting))}</span>
                <button class="btn small subtle cancel" on:click=act(In::Cancel { id, mine })>{t(Ui::Cancel)}</button>
            }),
            (done, _) => EitherOf3::C(view! {
                <span class="file-state">{move || text::talk(lang.get(), match (&done, mine) {
                    (Stage::Done, true) => Talk::Sent,
                    (Stage::Done, false) => Talk::Received,
                    (Stage::Failed, _) => Talk::Failed,
                    _ => Talk::Cancelled,
                })}</span>
                {url.clone().map(|url| view! {
                    <a class="btn small primary save" href=url download=name.clone()>{move || text::talk(lang.get(), Talk::Save)}</a>
                })}
            }),
        })
    };
    let preview = move || {
        let (stage, url) = stage.get()?;
        (image && stage == Stage::Done).then_some(())?;
        url.map(|url| view! { <img class="preview" src=url alt=""/> })
    };
    let going = move || stage.with(|s| matches!(s, Some((Stage::Going, _))));
    Some(view! {
        <li
            class=if mine { "file mine" } else { "file theirs" }
            data-transfer=id
            data-stage=move || stage.with(|s| match s.as_ref().map(|s| &s.0) {
                Some(Stage::Offered) => "offered",
                Some(Stage::Going) => "going",
                Some(Stage::Done) => "done",
                Some(Stage::Cancelled { .. }) => "cancelled",
                _ => "failed",
            })
        >
            <div class="file-head">
                <span class="file-name">{file.name.clone()}</span>
                <span class="file-size">{size}</span>
            </div>
            {preview}
            {move || going().then(|| view! {
                <progress max="100" value=move || percent.get() aria-label=label.clone()></progress>
            })}
            <div class="file-actions">{actions}</div>
        </li>
    })
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

/// What the peer has turned off (or is showing), over their video.
fn peer_flags(flags: Option<(String, Av)>) -> Option<impl IntoView> {
    let (peer, remote) = flags?;
    let lang = lang();
    let screen = remote.screen.then(|| {
        let peer = peer.clone();
        view! { <span class="flag">{move || text::peer_sharing(lang.get(), &peer)}</span> }
    });
    let muted = (!remote.audio).then(|| {
        let peer = peer.clone();
        view! { <span class="flag">{move || text::peer_muted(lang.get(), &peer)}</span> }
    });
    let no_video = (!remote.video)
        .then(|| view! { <span class="flag">{move || text::peer_camera_off(lang.get(), &peer)}</span> });
    Some(view! { <div class="peer-flags" role="status">{screen}{muted}{no_video}</div> })
}

// Material-style 24×24 glyphs as inline SVG paths: emoji fonts are missing on many systems.
const MIC: &str = "M12 14a3 3 0 0 0 3-3V5a3 3 0 0 0-6 0v6a3 3 0 0 0 3 3zm5-3a5 5 0 0 1-10 0H5a7 7 0 0 0 6 6.92V21h2v-3.08A7 7 0 0 0 19 11h-2z";
const MIC_OFF: &str = "M19 11h-1.7c0 .74-.16 1.43-.43 2.05l1.23 1.23c.56-.98.9-2.09.9-3.28zm-4.02.17c0-.06.02-.11.02-.17V5a3 3 0 0 0-6 0v.18l5.98 5.99zM4.27 3 3 4.27l6.01 6.01V11a3 3 0 0 0 3 3c.22 0 .44-.03.65-.08l1.66 1.66c-.71.33-1.5.52-2.31.52A5.2 5.2 0 0 1 6.7 11H5c0 3.41 2.72 6.23 6 6.72V21h2v-3.28a7.1 7.1 0 0 0 2.54-.9L19.73 21 21 19.73 4.27 3z";
const CAMERA: &str =
    "M17 10.5V7a1 1 0 0 0-1-1H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12a1 1 0 0 0 1-1v-3.5l4 4v-11l-4 4z";
const CAMERA_OFF: &str = "M21 6.5l-4 4V7a1 1 0 0 0-1-1H9.82L21 17.18V6.5zM3.27 2 2 3.27 4.73 6H4a1 1 0 0 0-1 1v10a1 1 0 0 0 1 1h12c.21 0 .39-.08.54-.18L19.73 21 21 19.73 3.27 2z";
const FULLSCREEN: &str = "M7 14H5v5h5v-2H7v-3zm-2-4h2V7h3V5H5v5zm12 7h-3v2h5v-5h-2v3zM14 5v2h3v3h2V5h-5z";
const SWITCH_CAMERA: &str = "M20 5h-3.17L15 3H9L7.17 5H4a2 2 0 0 0-2 2v12a2 2 0 0 0 2 2h16a2 2 0 0 0 2-2V7a2 2 0 0 0-2-2zm-5 11.5V14H9v2.5L5.5 13 9 9.5V12h6V9.5l3.5 3.5-3.5 3.5z";

const SCREEN: &str = "M20 18a2 2 0 0 0 2-2V6a2 2 0 0 0-2-2H4a2 2 0 0 0-2 2v10a2 2 0 0 0 2 2H0v2h24v-2h-4zm-7-3.5v-2.2c-2.8 0-4.6.9-6 2.7.6-2.6 2.1-5.1 6-5.6V7.3l4 3.6-4 3.6z";
const CHAT: &str = "M20 2H4a2 2 0 0 0-2 2v18l4-4h14a2 2 0 0 0 2-2V4a2 2 0 0 0-2-2zM6 9h12v2H6V9zm8 5H6v-2h8v2zm4-6H6V6h12v2z";
const ATTACH: &str = "M16.5 6v11.5a4 4 0 0 1-8 0V5a2.5 2.5 0 0 1 5 0v10.5a1 1 0 0 1-2 0V6H10v9.5a2.5 2.5 0 0 0 5 0V5a4 4 0 0 0-8 0v12.5a5.5 5.5 0 0 0 11 0V6h-1.5z";
const SEND: &str = "M2 21l21-9L2 3v7l15 2-15 2z";

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
    // key pressed for something else (Enter in the friend field) answers nothing. In the next
    // frame: focusing lays the page out at once, 5-8 ms that the caller's offer, right behind
    // the ring, would wait for (the frame lays it out anyway).
    let sheet = NodeRef::<leptos::html::Div>::new();
    Effect::new(move |_| {
        if let Some(el) = sheet.get() {
            request_animation_frame(move || drop(el.focus()));
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
