//! Camera, microphone and the RTCPeerConnection, through web-sys.
//!
//! The connection is made first, with no media ([`open_peer`]): the caller's offer declares an
//! audio and a video transceiver, the callee sends back on the offer's, and the camera's tracks
//! go onto them when it opens ([`bind_tracks`], `replaceTrack`: no renegotiation). Each effect
//! runs asynchronously and reports back with an [`Event`]. Generation counters keep late
//! results from leaking into what came next: one bumped by every new connection and teardown
//! (an offer made on a connection since replaced), one by every teardown (a camera that opens
//! after the user hung up).

use super::dispatch;
use super::js::{self, describe};
use crate::call::Event;
use crate::signal::{IceCandidate, IceServer};
use js_sys::Reflect;
use std::cell::{Cell, RefCell};
use std::future::Future;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    HtmlMediaElement, MediaStream, MediaStreamTrack, RtcConfiguration, RtcPeerConnection, RtcRtpSender,
    RtcRtpTransceiver, RtcSessionDescriptionInit,
};

const LOCAL_VIDEO: &str = "local-video";
const REMOTE_VIDEO: &str = "remote-video";

/// Event handlers installed on the peer connection; kept alive as long as it is.
struct Handlers {
    _ice: Closure<dyn FnMut(JsValue)>,
    _track: Closure<dyn FnMut(JsValue)>,
    _state: Closure<dyn FnMut()>,
}

#[derive(Default)]
struct Peer {
    pc: Option<RtcPeerConnection>,
    /// Names our tracks in the SDP (`a=msid`, so the peer gets them as one stream): made with the
    /// connection, before there is any track.
    own: Option<MediaStream>,
    /// Camera and microphone as opened (the own preview).
    local: Option<MediaStream>,
    /// What we receive: one stream of the peer's tracks, however the peer grouped them in
    /// streams (one for both, one each, or none: `a=msid:-`).
    remote: Option<MediaStream>,
    handlers: Option<Handlers>,
    /// Bumped by every new connection and every teardown.
    generation: u32,
    /// Bumped by every teardown.
    media_generation: u32,
    /// The shared screen's track while it is sent instead of the camera's.
    screen: Option<MediaStreamTrack>,
    /// The offer a [`Spare`] came with, until the call's first offer is made.
    ready_offer: Option<String>,
    /// The microphone is to be silenced (the user muted before it opened, or meanwhile).
    mic_off: bool,
    /// The microphone was asked for while the camera was still opening: it follows the camera.
    mic_due: bool,
    /// The microphone failed to open: unmuting tries again.
    mic_failed: bool,
}

/// A connection made ahead of the next call we place, its offer created but not set: setting it
/// is what takes ports and TURN allocations, so a spare holds none. A tap on Call sends this
/// offer at once instead of after the browser's ~20–50 ms of making one (docs/perf.md).
struct Spare {
    /// Which one (see `SPARES`).
    id: u32,
    pc: RtcPeerConnection,
    own: Option<MediaStream>,
    channels: Option<[JsValue; 2]>,
    /// `None` while the browser is still making it.
    offer: Option<String>,
}

thread_local! {
    static PEER: RefCell<Peer> = RefCell::new(Peer::default());
    /// From the relay's `config` message (sent after every join); empty until then (host
    /// candidates still work).
    static ICE_SERVERS: RefCell<Vec<IceServer>> = const { RefCell::new(Vec::new()) };
    static SPARE: RefCell<Option<Spare>> = const { RefCell::new(None) };
    /// A connection made ahead for the next call that rings in (see [`fresh`]): an incoming
    /// call's offer is set a few milliseconds sooner, while the page draws the call.
    static ANSWERING: RefCell<Option<Fresh>> = const { RefCell::new(None) };
    /// Spares made so far: the id of the latest.
    static SPARES: Cell<u32> = const { Cell::new(0) };
    /// Online with the call screen up: a spare is worth having (see [`spare_later`]).
    static SPARE_WANTED: Cell<bool> = const { Cell::new(false) };
}

/// New STUN/TURN servers (fresh TURN credentials): used by the next peer connection, and by the
/// current one from its next gathering (an ICE restart). Sent after every join: the spare is
/// made again with them.
pub fn set_ice_servers(servers: Vec<IceServer>) {
    ICE_SERVERS.with(|s| *s.borrow_mut() = servers);
    if let Some(pc) = connection() {
        // The connection's own configuration with the new servers: the rest of it (a caller's
        // bundle policy) cannot change, and a default one in its place was refused.
        let config = js::call(&pc, "getConfiguration", &[]).unwrap_or_else(|| js_sys::Object::new().into());
        js::set(&config, "iceServers", &ice_servers());
        if let Err(e) = pc.set_configuration_with_configuration(config.unchecked_ref()) {
            leptos::logging::warn!("cannot update the ICE servers: {}", describe(e));
        }
    }
    drop_spare();
    // Out of the way of the page's start (its chunks load, the list draws).
    spare_later(1000);
}

/// Makes a [`Spare`] `ms` from now if there is still no call then.
pub fn spare_later(ms: i32) {
    SPARE_WANTED.set(true);
    spawn_local(async move {
        super::chat::wait(ms, None).await;
        if !SPARE_WANTED.get() || connection().is_some() {
            return;
        }
        if ANSWERING.with(|a| a.borrow().is_none()) {
            let made = fresh(false).ok();
            ANSWERING.with(|a| *a.borrow_mut() = made);
        }
        if SPARE.with(|s| s.borrow().is_none()) {
            make_spare();
        }
    });
}

fn drop_spare() {
    if let Some((pc, _)) = ANSWERING.with(|a| a.borrow_mut().take()) {
        pc.close();
    }
    if let Some(spare) = SPARE.with(|s| s.borrow_mut().take()) {
        spare.pc.close();
    }
}

/// The page leaves the call screen: no spare, now or later.
pub fn stop_sparing() {
    SPARE_WANTED.set(false);
    drop_spare();
}

/// A connection and its two data channels (see `chat`), for a call we place (`offer`) or answer.
type Fresh = (RtcPeerConnection, Option<[JsValue; 2]>);

fn fresh(offer: bool) -> Result<Fresh, JsValue> {
    let config = if offer {
        caller_configuration()
    } else {
        rtc_configuration()
    };
    let pc = RtcPeerConnection::new_with_configuration(&config)?;
    // Before any offer: the channels' m-line is in the caller's first offer.
    let channels = super::chat::make_channels(&pc);
    Ok((pc, channels))
}

fn make_spare() {
    let Ok((pc, channels)) = fresh(true) else {
        return;
    };
    let own = MediaStream::new().ok();
    add_transceivers(&pc, own.as_ref());
    // (The call with options: each web-sys method used costs the main module an import.)
    let options = js::object(&[]);
    let created = JsFuture::from(pc.create_offer_with_rtc_offer_options(options.unchecked_ref()));
    let id = SPARES.get().wrapping_add(1);
    SPARES.set(id);
    SPARE.with(|s| {
        *s.borrow_mut() = Some(Spare {
            id,
            pc,
            own,
            channels,
            offer: None,
        })
    });
    spawn_local(async move {
        let sdp = sdp_of(created.await).ok();
        let failed = SPARE.with(|s| match s.borrow_mut().as_mut() {
            Some(spare) if spare.id == id => {
                spare.offer = sdp;
                spare.offer.is_none()
            }
            _ => false, // dropped (and closed) meanwhile
        });
        if failed {
            drop_spare();
        }
    });
}

/// The spare, if its offer is ready (one still being made stays for the next call).
fn take_spare() -> Option<Spare> {
    SPARE.with(|s| {
        let mut s = s.borrow_mut();
        s.as_ref()
            .is_some_and(|spare| spare.offer.is_some())
            .then(|| s.take())
            .flatten()
    })
}

/// The configuration of a connection whose first offer is ours: we know the call is bundled (see
/// `Effect::OpenPeer`). Set once: a connection's bundle policy cannot change.
fn caller_configuration() -> RtcConfiguration {
    let config = rtc_configuration();
    js::set(&config, "bundlePolicy", &"max-bundle".into());
    config
}

/// `RTCConfiguration` with the configured ICE servers.
fn rtc_configuration() -> RtcConfiguration {
    let config = RtcConfiguration::new();
    js::set(&config, "iceServers", &ice_servers());
    config
}

/// The configured ICE servers as `RTCConfiguration.iceServers`.
fn ice_servers() -> js_sys::Array {
    let servers = js_sys::Array::new();
    ICE_SERVERS.with(|list| {
        for server in list.borrow().iter() {
            let entry = js_sys::Object::new();
            let urls: js_sys::Array = server.urls.iter().map(|u| JsValue::from_str(u)).collect();
            let _ = Reflect::set(&entry, &"urls".into(), &urls);
            for (key, value) in [("username", &server.username), ("credential", &server.credential)] {
                if let Some(v) = value {
                    let _ = Reflect::set(&entry, &key.into(), &JsValue::from_str(v));
                }
            }
            servers.push(&entry);
        }
    });
    servers
}

fn generation() -> u32 {
    PEER.with(|p| p.borrow().generation)
}

fn media_generation() -> u32 {
    PEER.with(|p| p.borrow().media_generation)
}

pub(super) fn connection() -> Option<RtcPeerConnection> {
    PEER.with(|p| p.borrow().pc.clone())
}

/// Reports `event` only if the call it belongs to is still the current one.
fn report(generation_at_start: u32, event: Event) {
    if generation() == generation_at_start {
        dispatch(event);
    }
}

/// Runs a WebRTC step for the current call; a failure (say, the peer's SDP refused) ends the call
/// as a failed negotiation.
fn spawn_step<F>(step: impl FnOnce(RtcPeerConnection, u32) -> F)
where
    F: Future<Output = Result<(), String>> + 'static,
{
    let Some(pc) = connection() else { return };
    let at_start = generation();
    let fut = step(pc, at_start);
    spawn_local(async move {
        if let Err(e) = fut.await {
            leptos::logging::warn!("WebRTC step failed: {e}");
            report(at_start, Event::NegotiationFailed(e));
        }
    });
}

/// Opens the camera for the next call (and the microphone with it when the browser must ask:
/// one prompt; else the microphone waits for [`open_microphone`]). `ask: false` (warming up
/// while a call rings in) opens it only if the browser already has the permission: no prompt
/// over the incoming call; `MediaSkipped` otherwise.
pub fn start_media(ask: bool) {
    let at_start = media_generation();
    let still = move |event| {
        if media_generation() == at_start {
            dispatch(event);
        }
    };
    // Known already (see `watch_permissions`): no round trip to the browser process first, and
    // the camera starts opening now, before the page draws the call.
    let allowed = PERMITTED.with(|p| p.get() == [Some(true); 2]);
    let opening = (ask || allowed).then(|| open_media(true, !allowed));
    spawn_local(async move {
        let camera = match opening {
            Some(opening) => opening,
            None => {
                // Both at once: each query is a round trip to the browser process.
                let (camera, microphone) = (permitted("camera"), permitted("microphone"));
                if !(camera.await && microphone.await) {
                    return still(Event::MediaSkipped);
                }
                open_media(true, false)
            }
        };
        let stream = match camera.await {
            Ok(stream) if media_generation() == at_start => stream,
            opened => {
                // Hung up meanwhile, or no camera: nothing stays open.
                if let Ok(stream) = &opened {
                    stop_tracks(stream);
                }
                if let Err(e) = opened {
                    still(Event::MediaFailed(e));
                }
                return;
            }
        };
        attach(&stream);
        still(Event::MediaReady);
        let due = PEER.with(|p| std::mem::take(&mut p.borrow_mut().mic_due));
        if due && stream.get_audio_tracks().length() == 0 {
            add_microphone(stream);
        }
    });
}

/// The call's connection is up: the microphone joins it (silenced if [`set_mic`] said so
/// meanwhile), unless it came with the camera; after the camera if that is still opening.
pub fn open_microphone() {
    let local = PEER.with(|p| {
        let mut p = p.borrow_mut();
        p.mic_due = p.local.is_none();
        p.local.clone()
    });
    if let Some(stream) = local.filter(|s| s.get_audio_tracks().length() == 0) {
        add_microphone(stream);
    }
}

/// Asks for the microphone alone (its permission is known to be granted, see [`start_media`])
/// and puts its track with the camera's; `MicFailed` if the browser refuses it (busy, gone):
/// the call goes on muted.
fn add_microphone(stream: MediaStream) {
    let at_start = media_generation();
    PEER.with(|p| p.borrow_mut().mic_failed = false);
    let microphone = open_media(false, true);
    spawn_local(async move {
        match microphone.await {
            Ok(mic) if media_generation() == at_start => {
                let on = PEER.with(|p| !p.borrow().mic_off);
                for track in mic.get_tracks().iter() {
                    js::set(&track, "enabled", &on.into());
                    stream.add_track(track.unchecked_ref());
                }
                bind_tracks();
            }
            Ok(mic) => stop_tracks(&mic), // hung up meanwhile (the camera stopped too)
            Err(e) if media_generation() == at_start => {
                PEER.with(|p| p.borrow_mut().mic_failed = true);
                dispatch(Event::MicFailed(e));
            }
            Err(_) => {}
        }
    });
}

/// Stops camera and microphone (the light goes off), takes their tracks off the connection if
/// there still is one (a next try must not find them there), clears the own preview.
fn release_local() {
    let (local, pc) = PEER.with(|p| {
        let mut p = p.borrow_mut();
        (p.local.take(), p.pc.clone())
    });
    if let Some(stream) = local {
        stop_tracks(&stream);
    }
    for (_, t) in pc.as_ref().map(sending).unwrap_or_default() {
        replace_track(&t.sender(), None);
    }
    show(LOCAL_VIDEO, None);
}

thread_local! {
    /// Camera and microphone permission, as last reported by the browser (see
    /// [`watch_permissions`]); `None` until then.
    static PERMITTED: Cell<[Option<bool>; 2]> = const { Cell::new([None; 2]) };
}

/// Asks once whether camera and microphone are allowed and follows the answers' changes, so a
/// call that rings in opens the camera at once instead of asking first (a round trip to the
/// browser process, 10–40 ms on a busy phone, before the camera even starts to open).
pub fn watch_permissions() {
    thread_local!(static WATCHING: Cell<bool> = const { Cell::new(false) });
    if WATCHING.replace(true) {
        return;
    }
    for (i, name) in ["camera", "microphone"].into_iter().enumerate() {
        let query = permission(name);
        spawn_local(async move {
            let Some(status) = query.await else { return };
            let record = move |status: &JsValue| {
                PERMITTED.with(|p| {
                    let mut known = p.get();
                    known[i] = Some(granted(status));
                    p.set(known);
                });
            };
            record(&status);
            let watched = status.clone();
            let changed = Closure::<dyn FnMut()>::new(move || record(&watched));
            js::set(&status, "onchange", changed.as_ref());
            changed.forget(); // one per permission for the page's life
        });
    }
}

/// `navigator.permissions.query({name})` says `granted`. Browsers that cannot tell (Firefox
/// knows no `camera` permission name) count as not granted.
fn permitted(name: &str) -> impl Future<Output = bool> {
    let status = permission(name);
    async move { status.await.is_some_and(|s| granted(&s)) }
}

fn granted(status: &JsValue) -> bool {
    js::get(status, "state").as_string().as_deref() == Some("granted")
}

/// The browser's `PermissionStatus` for `name`, if it knows that permission. The query is made
/// at once (not when the future is first polled), so several can be under way together.
fn permission(name: &str) -> impl Future<Output = Option<JsValue>> {
    let query = js::object(&[("name", &name.into())]);
    let promise =
        web_sys::window().and_then(|w| js::call(&js::get(&w.navigator(), "permissions"), "query", &[&query]));
    async move {
        JsFuture::from(promise?.unchecked_into::<js_sys::Promise>())
            .await
            .ok()
    }
}

/// A stream getUserMedia gave, or why not ("Name: message").
type Opened = Result<MediaStream, String>;

/// getUserMedia for camera and/or microphone, asked for at once (see [`user_media`]). Both are
/// asked in one request only when the browser must ask (one permission prompt); with both
/// allowed the camera comes alone and the microphone when the connection is up (its audio
/// processing took 30–120 ms of a busy machine, docs/perf.md).
fn open_media(video: bool, audio: bool) -> impl Future<Output = Opened> {
    // Browsers hide navigator.mediaDevices on plain-http origins other than localhost.
    let secure = web_sys::window().is_some_and(|w| w.is_secure_context());
    let opening =
        secure.then(|| user_media(js::object(&[("video", &video.into()), ("audio", &audio.into())])));
    async move {
        match opening {
            Some(opening) => opening.await,
            None => Err("Insecure: camera access needs https".into()),
        }
    }
}

/// getUserMedia, asked at once (not when the future is first polled); failures as "Name:
/// message". (Dictionaries such as these constraints are plain objects made with [`js`]: each
/// typed web-sys setter would be one more import in the main module, see `js`.)
fn user_media(constraints: JsValue) -> impl Future<Output = Opened> {
    let asked = web_sys::window()
        .ok_or_else(|| "Error: no window".to_owned())
        .and_then(|w| w.navigator().media_devices().map_err(describe))
        .and_then(|d| {
            d.get_user_media_with_constraints(constraints.unchecked_ref())
                .map_err(describe)
        });
    async move { Ok(JsFuture::from(asked?).await.map_err(describe)?.unchecked_into()) }
}

/// Makes the connection for a new call, with no media yet, replacing one left from a call
/// that turned into another (glare) but keeping the camera. A connection the browser refuses
/// to make (a malformed ICE server, say) fails the call.
pub fn open_peer(offer: bool) {
    close_connection();
    let spare = if offer { take_spare() } else { None };
    let (pc, own, channels, ready_offer) = match spare {
        Some(s) => (s.pc, s.own, s.channels, s.offer),
        None => {
            let ready = if offer {
                None
            } else {
                ANSWERING.with(|a| a.borrow_mut().take())
            };
            let (pc, channels) = match ready.map_or_else(|| fresh(offer), Ok) {
                Ok(made) => made,
                Err(e) => return dispatch(Event::NegotiationFailed(describe(e))),
            };
            (pc, MediaStream::new().ok(), channels, None)
        }
    };
    // Events read untyped, like the dictionaries (see `user_media`).
    let ice = Closure::<dyn FnMut(JsValue)>::new(|ev: JsValue| {
        let c = js::get(&ev, "candidate");
        let text = |key| js::get(&c, key).as_string();
        // `null` (or an empty candidate) marks the end of gathering: nothing to send.
        if let Some(candidate) = text("candidate").filter(|c| !c.is_empty()) {
            dispatch(Event::LocalIce(IceCandidate {
                candidate,
                sdp_mid: text("sdpMid"),
                sdp_m_line_index: js::get(&c, "sdpMLineIndex").as_f64().map(|i| i as u16),
                username_fragment: text("usernameFragment"),
            }));
        }
    });
    let track = Closure::<dyn FnMut(JsValue)>::new(|ev: JsValue| {
        receive_track(js::get(&ev, "track").unchecked_ref())
    });
    let watched = pc.clone();
    let state = Closure::<dyn FnMut()>::new(move || {
        match js::get(&watched, "connectionState").as_string().as_deref() {
            Some("connected") => dispatch(Event::PeerConnected {
                at_ms: js_sys::Date::now(),
            }),
            Some("disconnected") => dispatch(Event::PeerDisconnected),
            Some("failed") => dispatch(Event::PeerFailed),
            _ => {}
        }
    });
    js::set(&pc, "onicecandidate", ice.as_ref());
    js::set(&pc, "ontrack", track.as_ref());
    js::set(&pc, "onconnectionstatechange", state.as_ref());
    // For diagnostics from the console, and the e2e suite reads the call's statistics from it.
    if let Some(window) = web_sys::window() {
        let _ = Reflect::set(&window, &JsValue::from_str("duetPeerConnection"), &pc);
    }
    super::chat::open_channels(channels);
    PEER.with(|p| {
        let mut p = p.borrow_mut();
        p.pc = Some(pc);
        p.own = own;
        p.ready_offer = ready_offer;
        p.handlers = Some(Handlers {
            _ice: ice,
            _track: track,
            _state: state,
        });
    });
}

/// Camera and microphone opened: shown as the own preview and sent on the connection.
fn attach(stream: &MediaStream) {
    show(LOCAL_VIDEO, Some(stream));
    // Not `stream.clone()`: web-sys binds JS `MediaStream.clone()` under that name, which would
    // copy the tracks, and teardown would then stop the copies while the camera stays on.
    PEER.with(|p| p.borrow_mut().local = Some(Clone::clone(stream)));
    bind_tracks();
}

/// Our transceivers: the first audio and the first video one we send on.
fn sending(pc: &RtcPeerConnection) -> Vec<(String, RtcRtpTransceiver)> {
    first_of_each_kind(pc, true)
}

/// The first live transceiver of each kind (`sendrecv` ones only, if `sendrecv`), by kind.
fn first_of_each_kind(pc: &RtcPeerConnection, sendrecv: bool) -> Vec<(String, RtcRtpTransceiver)> {
    let mut found: Vec<(String, RtcRtpTransceiver)> = Vec::new();
    for t in pc
        .get_transceivers()
        .iter()
        .map(JsCast::unchecked_into::<RtcRtpTransceiver>)
    {
        let kind = t.receiver().track().kind();
        let usable = !sendrecv || both_ways(&t);
        if !t.stopped() && usable && !found.iter().any(|(k, _)| *k == kind) {
            found.push((kind, t));
        }
    }
    found
}

fn both_ways(t: &RtcRtpTransceiver) -> bool {
    js::get(t, "direction").as_string().as_deref() == Some("sendrecv")
}

/// Puts the camera's and microphone's tracks on the transceivers that have none yet: when the
/// camera opens, and when transceivers appear (our offer, the peer's offer). A camera the user
/// turned off has no track to put.
fn bind_tracks() {
    let Some((pc, local)) = PEER.with(|p| {
        let p = p.borrow();
        p.pc.clone().zip(p.local.clone())
    }) else {
        return;
    };
    for (kind, transceiver) in sending(&pc) {
        let sender = transceiver.sender();
        if sender.track().is_some() {
            continue;
        }
        let tracks = if kind == "video" {
            local.get_video_tracks()
        } else {
            local.get_audio_tracks()
        };
        let Ok(track) = tracks.get(0).dyn_into::<MediaStreamTrack>() else {
            continue;
        };
        replace_track(&sender, Some(&track));
    }
}

/// `sender.replaceTrack(track)`, a failure logged (the call goes on without that track).
fn replace_track(sender: &RtcRtpSender, track: Option<&MediaStreamTrack>) {
    let promise = sender.replace_track(track);
    spawn_local(async move {
        if let Err(e) = JsFuture::from(promise).await {
            leptos::logging::warn!("replacing a track failed: {}", describe(e));
        }
    });
}

/// A track arrived: into the call's remote stream, which the remote video plays (picture and
/// sound). The element gets its stream once per call: setting it again would restart playback.
fn receive_track(track: &MediaStreamTrack) {
    // `Option::clone` clones the handle (the trait), not the JS `MediaStream.clone()`.
    let stream = match PEER.with(|p| p.borrow().remote.clone()) {
        Some(stream) => stream,
        None => {
            let Ok(stream) = MediaStream::new() else { return };
            PEER.with(|p| p.borrow_mut().remote = Some(Clone::clone(&stream)));
            show(REMOTE_VIDEO, Some(&stream));
            stream
        }
    };
    if stream.get_track_by_id(&track.id()).is_none() {
        stream.add_track(track);
    }
}

/// `kind`: "offer" or "answer".
fn description(kind: &str, sdp: &str) -> RtcSessionDescriptionInit {
    js::object(&[("type", &kind.into()), ("sdp", &sdp.into())]).unchecked_into()
}

/// The SDP of a description the browser created.
fn sdp_of(created: Result<JsValue, JsValue>) -> Result<String, String> {
    js::get(&created.map_err(describe)?, "sdp")
        .as_string()
        .ok_or_else(|| "created description has no SDP".into())
}

/// Sets our own offer/answer.
async fn set_local(pc: &RtcPeerConnection, kind: &str, sdp: &str) -> Result<(), String> {
    JsFuture::from(pc.set_local_description(&description(kind, sdp)))
        .await
        .map(drop)
        .map_err(describe)
}

pub fn create_offer() {
    offer(false);
}

/// A new offer with new ICE credentials: the two browsers look for a path again (a changed
/// network), with the current ICE servers.
pub fn restart_ice() {
    offer(true);
}

/// An audio and a video transceiver, both ways, our tracks named by `own`.
fn add_transceivers(pc: &RtcPeerConnection, own: Option<&MediaStream>) {
    for kind in ["audio", "video"] {
        let init = js::object(&[("direction", &"sendrecv".into())]);
        if let Some(own) = own {
            js::set(&init, "streams", &js_sys::Array::of1(own));
        }
        let t = pc.add_transceiver_with_str_and_init(kind, init.unchecked_ref());
        prefer_codecs(&t, kind);
    }
}

/// Our offers' codecs ([`crate::call::offered_codec`]) on `t`. A browser without
/// `setCodecPreferences` offers all of its own.
fn prefer_codecs(t: &RtcRtpTransceiver, kind: &str) {
    let receiver = js::get(&js::global(), "RTCRtpReceiver");
    let codecs = js::call(&receiver, "getCapabilities", &[&kind.into()])
        .map(|caps| js::get(&caps, "codecs"))
        .unwrap_or_default();
    let kept: js_sys::Array = (0..js::number(&codecs, "length") as u32)
        .map(|i| js::at(&codecs, i))
        .filter(|c| {
            let text = |key| js::get(c, key).as_string().unwrap_or_default();
            crate::call::offered_codec(&text("mimeType"), &text("sdpFmtpLine"))
        })
        .collect();
    if kept.length() > 0 {
        js::call(t, "setCodecPreferences", &[&kept]);
    }
}

/// (The browser's work starts at once, not when the step's future is first polled: after the
/// page has re-rendered.) Our description goes to the peer as soon as it exists, while the
/// browser sets it here: the browser keeps a connection's operations in order, so the peer's
/// answer waits for it, and a failure to set it still fails the call.
fn offer(ice_restart: bool) {
    let ready = PEER
        .with(|p| p.borrow_mut().ready_offer.take())
        .filter(|_| !ice_restart);
    spawn_step(move |pc, at_start| {
        if pc.get_transceivers().length() == 0 {
            let own = PEER.with(|p| p.borrow().own.clone());
            add_transceivers(&pc, own.as_ref());
        }
        bind_tracks();
        let options = js::object(&[("iceRestart", &ice_restart.into())]);
        let making = ready
            .is_none()
            .then(|| JsFuture::from(pc.create_offer_with_rtc_offer_options(options.unchecked_ref())));
        async move {
            let sdp = match making {
                Some(making) => sdp_of(making.await)?,
                None => ready.unwrap_or_default(), // none is made when one was ready
            };
            report(at_start, Event::LocalOffer(sdp.clone()));
            set_local(&pc, "offer", &sdp).await
        }
    });
}

/// Applies the peer's description (started at once, see [`offer`]), asking for our video to
/// start at [`crate::call::START_KBPS`].
fn set_remote(pc: &RtcPeerConnection, kind: &str, sdp: &str) -> impl Future<Output = Result<(), String>> {
    let sdp = crate::call::with_start_bitrate(sdp);
    let set = JsFuture::from(pc.set_remote_description(&description(kind, &sdp)));
    async move { set.await.map_err(describe).map(drop) }
}

pub fn answer_offer(offer: String) {
    spawn_step(|pc, at_start| {
        let set = set_remote(&pc, "offer", &offer);
        async move {
            set.await?;
            send_back(&pc);
            let sdp = sdp_of(JsFuture::from(pc.create_answer()).await)?;
            // To the peer while it is set here, as an offer (see `offer`).
            report(at_start, Event::LocalAnswer(sdp.clone()));
            set_local(&pc, "answer", &sdp).await?;
            // The caller waits for the answer, not for us: the queued candidates go in after it.
            report(at_start, Event::RemoteDescriptionSet);
            Ok(())
        }
    });
}

/// The offer's first audio and first video transceiver carry our tracks too, named by our
/// stream (`setStreams`: a classic page plays `event.streams[0]`).
fn send_back(pc: &RtcPeerConnection) {
    let own = PEER.with(|p| p.borrow().own.clone());
    for (_, t) in first_of_each_kind(pc, false) {
        if !both_ways(&t) {
            js::set(&t, "direction", &"sendrecv".into());
            if let Some(own) = &own {
                super::call_method(&t.sender(), "setStreams", &[own]);
            }
        }
    }
    bind_tracks();
}

pub fn accept_answer(answer: String) {
    spawn_step(|pc, at_start| {
        let set = set_remote(&pc, "answer", &answer);
        async move {
            set.await?;
            report(at_start, Event::RemoteDescriptionSet);
            Ok(())
        }
    });
}

pub fn add_ice(c: IceCandidate) {
    let Some(pc) = connection() else { return };
    let init = js::object(&[
        ("candidate", &c.candidate.as_str().into()),
        (
            "sdpMid",
            &c.sdp_mid.as_deref().map_or(JsValue::NULL, JsValue::from),
        ),
        (
            "sdpMLineIndex",
            &c.sdp_m_line_index.map_or(JsValue::NULL, JsValue::from),
        ),
    ]);
    if let Some(frag) = c.username_fragment.as_deref() {
        js::set(&init, "usernameFragment", &frag.into());
    }
    let promise = pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(init.unchecked_ref()));
    spawn_local(async move {
        // One bad candidate is not fatal: others may still connect.
        if let Err(e) = JsFuture::from(promise).await {
            leptos::logging::warn!("ignoring an ICE candidate: {}", describe(e));
        }
    });
}

/// Closes the connection (if any) and stops showing what it received.
fn close_connection() {
    let (pc, handlers) = PEER.with(|p| {
        let mut p = p.borrow_mut();
        p.generation = p.generation.wrapping_add(1);
        p.remote = None;
        p.own = None;
        p.ready_offer = None;
        (p.pc.take(), p.handlers.take())
    });
    if let Some(window) = web_sys::window() {
        let _ = Reflect::delete_property(&window, &JsValue::from_str("duetPeerConnection"));
    }
    super::chat::close_channels();
    if let Some(pc) = pc {
        for handler in ["onicecandidate", "ontrack", "onconnectionstatechange"] {
            js::set(&pc, handler, &JsValue::NULL);
        }
        pc.close();
    }
    // A handler may be what called us: drop the closures only after it has returned.
    spawn_local(async move { drop(handlers) });
    show(REMOTE_VIDEO, None);
}

/// Stops every local track (camera light off), closes the connection, clears the videos.
pub fn teardown() {
    close_connection();
    stop_screen();
    PEER.with(|p| {
        let mut p = p.borrow_mut();
        p.media_generation = p.media_generation.wrapping_add(1);
        p.mic_off = false;
        p.mic_due = false;
        p.mic_failed = false;
    });
    release_local();
}

/// Silences or restores the microphone; the track keeps flowing (as silence), so nothing is
/// renegotiated.
pub fn set_mic(on: bool) {
    let Some((local, failed)) = PEER.with(|p| {
        let mut p = p.borrow_mut();
        p.mic_off = !on; // for a microphone still opening
        p.local.clone().map(|l| (l, p.mic_failed))
    }) else {
        return;
    };
    if on && failed {
        return add_microphone(local); // it failed to open: try again
    }
    for track in local.get_audio_tracks().iter() {
        js::set(&track, "enabled", &on.into());
    }
}

/// Camera off: stop the video track (the camera light goes off) and send nothing. On, or a
/// switch: open the front/back camera and put its track in place of the old one, without
/// renegotiating.
pub fn set_camera(on: bool, back: bool) {
    let Some((local, pc)) = PEER.with(|p| {
        let p = p.borrow();
        p.local.clone().zip(p.pc.clone())
    }) else {
        return;
    };
    let Some(sender) = video_sender(&pc) else {
        return;
    };
    let at_start = generation();
    spawn_local(async move {
        let fresh = if on {
            match open_camera(back).await {
                Ok(track) if generation() != at_start => return track.stop(), // hung up meanwhile
                Ok(track) => Some(track),
                Err(e) => {
                    report(at_start, Event::CameraFailed(e));
                    None
                }
            }
        } else {
            None
        };
        // While the screen is shared the camera waits in the wings: it goes back on the
        // sender when sharing stops.
        let sharing = PEER.with(|p| p.borrow().screen.is_some());
        if !sharing {
            if let Err(e) = JsFuture::from(sender.replace_track(fresh.as_ref())).await {
                leptos::logging::warn!("replacing the video track failed: {}", describe(e));
            }
        }
        for old in local.get_video_tracks().iter() {
            let old: MediaStreamTrack = old.unchecked_into();
            old.stop();
            local.remove_track(&old);
        }
        if let Some(track) = &fresh {
            local.add_track(track);
        }
    });
}

/// The sender our video goes out on.
fn video_sender(pc: &RtcPeerConnection) -> Option<RtcRtpSender> {
    sending(pc)
        .into_iter()
        .find(|(kind, _)| kind == "video")
        .map(|(_, t)| t.sender())
}

/// Shares the screen in place of the camera (the browser asks what to share), or stops and
/// puts the camera back. Reports `ScreenShared`, `ScreenFailed` and, when the browser's own
/// "Stop sharing" ends it, `ScreenEnded`.
pub fn share_screen(on: bool) {
    if !on {
        stop_screen();
        let local = PEER.with(|p| p.borrow().local.clone());
        let camera = local
            .as_ref()
            .and_then(|l| l.get_video_tracks().get(0).dyn_into::<MediaStreamTrack>().ok());
        if let Some(sender) = connection().as_ref().and_then(video_sender) {
            replace_track(&sender, camera.as_ref());
        }
        show(LOCAL_VIDEO, local.as_ref());
        return;
    }
    let at_start = generation();
    spawn_local(async move {
        let track = match display_track().await {
            Ok(track) if generation() != at_start => return track.stop(), // hung up meanwhile
            Ok(track) => track,
            Err(e) => return report(at_start, Event::ScreenFailed(e)),
        };
        let ended = Closure::once_into_js(move || report(at_start, Event::ScreenEnded));
        super::js::set(&track, "onended", &ended);
        if let Some(sender) = connection().as_ref().and_then(video_sender) {
            replace_track(&sender, Some(&track));
        }
        if let Ok(preview) = MediaStream::new() {
            preview.add_track(&track);
            show(LOCAL_VIDEO, Some(&preview));
        }
        if let Some(old) = PEER.with(|p| p.borrow_mut().screen.replace(track)) {
            old.stop();
        }
        report(at_start, Event::ScreenShared);
    });
}

/// Stops the shared screen's track, if any (the browser's sharing bar goes).
fn stop_screen() {
    if let Some(track) = PEER.with(|p| p.borrow_mut().screen.take()) {
        super::js::set(&track, "onended", &JsValue::NULL);
        track.stop();
    }
}

async fn display_track() -> Result<MediaStreamTrack, String> {
    let devices = web_sys::window()
        .ok_or("Error: no window")?
        .navigator()
        .media_devices()
        .map_err(describe)?;
    let constraints = super::js::object(&[("video", &JsValue::TRUE)]);
    // Untyped (see `client::js`); throws synchronously only where it does not exist at all.
    let promise = super::js::call(&devices, "getDisplayMedia", &[&constraints])
        .ok_or("NotSupportedError: no screen sharing in this browser")?;
    let stream: MediaStream = JsFuture::from(promise.unchecked_into::<js_sys::Promise>())
        .await
        .map_err(describe)?
        .unchecked_into();
    stream
        .get_video_tracks()
        .get(0)
        .dyn_into::<MediaStreamTrack>()
        .map_err(|_| "NotFoundError: no video track".to_owned())
}

async fn open_camera(back: bool) -> Result<MediaStreamTrack, String> {
    let facing = if back { "environment" } else { "user" };
    let video = js::object(&[("facingMode", &facing.into())]);
    user_media(js::object(&[("video", &video)]))
        .await?
        .get_video_tracks()
        .get(0)
        .dyn_into::<MediaStreamTrack>()
        .map_err(|_| "NotFoundError: no video track".to_owned())
}

fn stop_tracks(stream: &MediaStream) {
    for track in stream.get_tracks().iter() {
        track.unchecked_into::<MediaStreamTrack>().stop();
    }
}

fn show(id: &str, stream: Option<&MediaStream>) {
    let Some(video) = web_sys::window()
        .and_then(|w| w.document())
        .and_then(|d| d.get_element_by_id(id))
        .and_then(|e| e.dyn_into::<HtmlMediaElement>().ok())
    else {
        return;
    };
    video.set_src_object(stream);
    if stream.is_some() {
        if let Ok(playing) = video.play() {
            // Autoplay refusals surface as a rejected promise; the element retries on its own.
            spawn_local(async move {
                let _ = JsFuture::from(playing).await;
            });
        }
    }
}
