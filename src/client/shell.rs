//! The shell's media side: camera, microphone and the peer connection ([`super::peer`]),
//! connection-quality readings, tones, the wake lock and system notifications. Everything here
//! runs through [`run`], which the `split` build (the release build) loads lazily as its own
//! WASM chunk: none of it is needed before a tap on Call works, and the main module a phone
//! downloads first is smaller for it. The signaling socket, timers and the state machine stay in
//! the main module. [`super::shell`] keeps the [`Op`]s in order while the chunk loads.

use super::{chat, notify, peer, stats, tone, wake};
use crate::call::{Alert, Effect, Tone};
use crate::i18n::Lang;
use crate::quality::Quality;
use leptos::prelude::*;

/// One thing for the media side to do.
pub enum Op {
    /// A media or WebRTC effect of the state machine (not `Send`, `Reconnect`,
    /// `CheckSignaling`, `After`: the main module runs those).
    Effect(Effect),
    Tone(Tone),
    /// Hold the screen's wake lock (in a call) or let it go.
    Wake(bool),
    /// Keep the call's system notification in step (see [`notify::follow`]).
    Alert(Option<Alert>, Lang),
    /// Take a connection-quality reading if a call is connected (twice a second).
    Stats(RwSignal<Option<Quality>>, bool),
    /// The page was hidden or shown.
    Visibility,
    /// The person did something in the chat panel.
    Chat(crate::chat::In),
    /// The person picked a file (a `File`) to send.
    SendFile(wasm_bindgen::JsValue),
    /// The call screen is gone: everything off.
    Stop,
}

#[cfg_attr(feature = "split", leptos::lazy)]
pub fn run(op: Op) {
    // From the first op on (the clock's, within half a second of the page working).
    peer::watch_permissions();
    match op {
        Op::Effect(effect) => match effect {
            Effect::OpenPeer { offer } => peer::open_peer(offer),
            Effect::StartMedia { ask } => peer::start_media(ask),
            Effect::CreateOffer => peer::create_offer(),
            Effect::AnswerOffer(sdp) => peer::answer_offer(sdp),
            Effect::AcceptAnswer(sdp) => peer::accept_answer(sdp),
            Effect::AddIce(c) => peer::add_ice(c),
            Effect::Teardown => {
                peer::teardown();
                // At once (the next task): calling back straight away (a dropped call, a wrong
                // number) is common; the browser makes the offer off the page's thread.
                peer::spare_later(0);
            }
            Effect::Mic(on) => peer::set_mic(on),
            Effect::OpenMicrophone => peer::open_microphone(),
            Effect::Camera { on, back } => peer::set_camera(on, back),
            Effect::IceServers(servers) => peer::set_ice_servers(servers),
            Effect::RestartIce => peer::restart_ice(),
            Effect::Screen(on) => peer::share_screen(on),
            Effect::Send(_) | Effect::Reconnect | Effect::CheckSignaling | Effect::After { .. } => {
                leptos::logging::warn!("not a media effect: {effect:?}")
            }
        },
        Op::Tone(t) => tone::play(t),
        Op::Wake(on) => wake::hold(on),
        Op::Alert(alert, lang) => notify::follow(alert, lang),
        Op::Stats(quality, connected) => stats::tick(quality, connected),
        Op::Visibility => wake::visibility_changed(),
        Op::Chat(input) => chat::act(input),
        Op::SendFile(file) => chat::send_file(file),
        Op::Stop => {
            peer::teardown();
            peer::stop_sparing();
            tone::play(Tone::Silent);
            wake::hold(false);
            notify::follow(None, Lang::default());
        }
    }
}
