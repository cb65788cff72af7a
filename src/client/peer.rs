//! Camera, microphone and the RTCPeerConnection, through web-sys.
//!
//! Each effect runs asynchronously and reports back with an [`Event`]. A generation counter,
//! bumped by every teardown, keeps late results of an ended call (a camera that opens after the
//! user hung up, say) from leaking into the next one.

use super::dispatch;
use crate::call::Event;
use crate::signal::{IceCandidate, IceServer};
use js_sys::Reflect;
use std::cell::RefCell;
use std::future::Future;
use wasm_bindgen::prelude::*;
use wasm_bindgen::JsCast;
use wasm_bindgen_futures::{spawn_local, JsFuture};
use web_sys::{
    HtmlMediaElement, MediaStream, MediaStreamConstraints, MediaStreamTrack, RtcConfiguration,
    RtcIceCandidateInit, RtcOfferOptions, RtcPeerConnection, RtcPeerConnectionIceEvent,
    RtcPeerConnectionState, RtcRtpSender, RtcSdpType, RtcSessionDescriptionInit, RtcTrackEvent,
};

const LOCAL_VIDEO: &str = "local-video";
const REMOTE_VIDEO: &str = "remote-video";

/// Event handlers installed on the peer connection; kept alive as long as it is.
struct Handlers {
    _ice: Closure<dyn FnMut(RtcPeerConnectionIceEvent)>,
    _track: Closure<dyn FnMut(RtcTrackEvent)>,
    _state: Closure<dyn FnMut()>,
}

#[derive(Default)]
struct Peer {
    pc: Option<RtcPeerConnection>,
    local: Option<MediaStream>,
    /// What we receive: one stream of the peer's tracks, however the peer grouped them in
    /// streams (one for both, one each, or none: `a=msid:-`).
    remote: Option<MediaStream>,
    /// Sends our video; its track is replaced to switch or stop the camera.
    video_sender: Option<RtcRtpSender>,
    handlers: Option<Handlers>,
    generation: u32,
}

thread_local! {
    static PEER: RefCell<Peer> = RefCell::new(Peer::default());
    /// From the relay's `config` message (sent after every join); empty until then (host
    /// candidates still work).
    static ICE_SERVERS: RefCell<Vec<IceServer>> = const { RefCell::new(Vec::new()) };
}

/// New STUN/TURN servers (fresh TURN credentials): used by the next peer connection, and by the
/// current one from its next gathering (an ICE restart).
pub fn set_ice_servers(servers: Vec<IceServer>) {
    ICE_SERVERS.with(|s| *s.borrow_mut() = servers);
    if let Some(pc) = connection() {
        if let Err(e) = pc.set_configuration_with_configuration(&rtc_configuration()) {
            leptos::logging::warn!("cannot update the ICE servers: {}", describe(e));
        }
    }
}

/// `RTCConfiguration` with the configured ICE servers.
fn rtc_configuration() -> RtcConfiguration {
    let config = RtcConfiguration::new();
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
    let _ = Reflect::set(&config, &"iceServers".into(), &servers);
    config
}

fn generation() -> u32 {
    PEER.with(|p| p.borrow().generation)
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

/// "Name: message" of a thrown DOMException or Error.
fn describe(e: JsValue) -> String {
    let field = |k: &str| {
        Reflect::get(&e, &JsValue::from_str(k))
            .ok()
            .and_then(|v| v.as_string())
    };
    match (field("name"), field("message")) {
        (Some(n), Some(m)) => format!("{n}: {m}"),
        (Some(n), None) => n,
        _ => format!("{e:?}"),
    }
}

/// Opens camera and microphone for the next call. `ask: false` (warming up while a call rings
/// in) opens them only if the browser already has the permission: no prompt over the incoming
/// call; `MediaSkipped` otherwise.
pub fn start_media(ask: bool) {
    let at_start = generation();
    spawn_local(async move {
        let allowed = ask || (permitted("camera").await && permitted("microphone").await);
        if !allowed {
            return report(at_start, Event::MediaSkipped);
        }
        let result = match open_media().await {
            Ok(stream) if generation() != at_start => {
                stop_tracks(&stream); // hung up while the camera was opening
                return;
            }
            Ok(stream) => install(&stream).inspect_err(|_| stop_tracks(&stream)),
            Err(e) => Err(e),
        };
        report(
            at_start,
            match result {
                Ok(()) => Event::MediaReady,
                Err(e) => Event::MediaFailed(e),
            },
        );
    });
}

/// `navigator.permissions.query({name})` says `granted`. Browsers that cannot tell (Firefox
/// knows no `camera` permission name) count as not granted.
async fn permitted(name: &str) -> bool {
    let Some(permissions) =
        web_sys::window().and_then(|w| Reflect::get(&w.navigator(), &"permissions".into()).ok())
    else {
        return false;
    };
    let query = js_sys::Object::new();
    let _ = Reflect::set(&query, &"name".into(), &JsValue::from_str(name));
    let Some(promise) = super::call_method(&permissions, "query", &[&query]) else {
        return false;
    };
    let Ok(status) = JsFuture::from(promise.unchecked_into::<js_sys::Promise>()).await else {
        return false;
    };
    Reflect::get(&status, &"state".into())
        .ok()
        .and_then(|s| s.as_string())
        .as_deref()
        == Some("granted")
}

async fn open_media() -> Result<MediaStream, String> {
    let window = web_sys::window().ok_or("Error: no window")?;
    // Browsers hide navigator.mediaDevices on plain-http origins other than localhost.
    if !window.is_secure_context() {
        return Err("Insecure: camera access needs https".into());
    }
    let constraints = MediaStreamConstraints::new();
    constraints.set_video(&JsValue::TRUE);
    constraints.set_audio(&JsValue::TRUE);
    user_media(&constraints).await
}

/// getUserMedia; failures as "Name: message".
async fn user_media(constraints: &MediaStreamConstraints) -> Result<MediaStream, String> {
    let devices = web_sys::window()
        .ok_or("Error: no window")?
        .navigator()
        .media_devices()
        .map_err(describe)?;
    let promise = devices
        .get_user_media_with_constraints(constraints)
        .map_err(describe)?;
    Ok(JsFuture::from(promise).await.map_err(describe)?.unchecked_into())
}

/// Creates the peer connection for `stream`, adds its tracks and wires the handlers.
fn install(stream: &MediaStream) -> Result<(), String> {
    let pc = RtcPeerConnection::new_with_configuration(&rtc_configuration()).map_err(describe)?;
    let mut video_sender = None;
    for track in stream.get_tracks().iter() {
        let track: MediaStreamTrack = track.unchecked_into();
        let sender = pc.add_track_0(&track, stream);
        if track.kind() == "video" {
            video_sender = Some(sender);
        }
    }
    let ice = Closure::<dyn FnMut(RtcPeerConnectionIceEvent)>::new(|ev: RtcPeerConnectionIceEvent| {
        // `None` (or an empty candidate) marks the end of gathering: nothing to send.
        if let Some(c) = ev.candidate().filter(|c| !c.candidate().is_empty()) {
            dispatch(Event::LocalIce(IceCandidate {
                candidate: c.candidate(),
                sdp_mid: c.sdp_mid(),
                sdp_m_line_index: c.sdp_m_line_index(),
                // Not in stable web-sys; read it the way JSON.stringify would.
                username_fragment: Reflect::get(&c, &JsValue::from_str("usernameFragment"))
                    .ok()
                    .and_then(|v| v.as_string()),
            }));
        }
    });
    let track = Closure::<dyn FnMut(RtcTrackEvent)>::new(|ev: RtcTrackEvent| receive_track(&ev.track()));
    let watched = pc.clone();
    let state = Closure::<dyn FnMut()>::new(move || match watched.connection_state() {
        RtcPeerConnectionState::Connected => dispatch(Event::PeerConnected {
            at_ms: js_sys::Date::now(),
        }),
        RtcPeerConnectionState::Disconnected => dispatch(Event::PeerDisconnected),
        RtcPeerConnectionState::Failed => dispatch(Event::PeerFailed),
        _ => {}
    });
    pc.set_onicecandidate(Some(ice.as_ref().unchecked_ref()));
    pc.set_ontrack(Some(track.as_ref().unchecked_ref()));
    pc.set_onconnectionstatechange(Some(state.as_ref().unchecked_ref()));
    show(LOCAL_VIDEO, Some(stream));
    // For diagnostics from the console, and the e2e suite reads the call's statistics from it.
    if let Some(window) = web_sys::window() {
        let _ = Reflect::set(&window, &JsValue::from_str("duetPeerConnection"), &pc);
    }
    PEER.with(|p| {
        let mut p = p.borrow_mut();
        p.pc = Some(pc);
        p.video_sender = video_sender;
        // Not `stream.clone()`: web-sys binds JS `MediaStream.clone()` under that name, which would
        // copy the tracks, and teardown would then stop the copies while the camera stays on.
        p.local = Some(Clone::clone(stream));
        p.handlers = Some(Handlers {
            _ice: ice,
            _track: track,
            _state: state,
        });
    });
    Ok(())
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

fn description(kind: RtcSdpType, sdp: &str) -> RtcSessionDescriptionInit {
    let d = RtcSessionDescriptionInit::new(kind);
    d.set_sdp(sdp);
    d
}

/// Sets a freshly created offer/answer as the local description and returns its SDP.
async fn set_local(pc: &RtcPeerConnection, created: JsValue, kind: RtcSdpType) -> Result<String, String> {
    let sdp = Reflect::get(&created, &JsValue::from_str("sdp"))
        .ok()
        .and_then(|v| v.as_string())
        .ok_or("created description has no SDP")?;
    JsFuture::from(pc.set_local_description(&description(kind, &sdp)))
        .await
        .map_err(describe)?;
    Ok(sdp)
}

pub fn create_offer() {
    offer(false);
}

/// A new offer with new ICE credentials: the two browsers look for a path again (a changed
/// network), with the current ICE servers.
pub fn restart_ice() {
    offer(true);
}

fn offer(ice_restart: bool) {
    spawn_step(move |pc, at_start| async move {
        let options = RtcOfferOptions::new();
        options.set_ice_restart(ice_restart);
        let offer = JsFuture::from(pc.create_offer_with_rtc_offer_options(&options))
            .await
            .map_err(describe)?;
        let sdp = set_local(&pc, offer, RtcSdpType::Offer).await?;
        report(at_start, Event::LocalOffer(sdp));
        Ok(())
    });
}

/// Applies the peer's description.
async fn set_remote(pc: &RtcPeerConnection, kind: RtcSdpType, sdp: &str) -> Result<(), String> {
    JsFuture::from(pc.set_remote_description(&description(kind, sdp)))
        .await
        .map_err(describe)
        .map(drop)
}

pub fn answer_offer(offer: String) {
    spawn_step(|pc, at_start| async move {
        set_remote(&pc, RtcSdpType::Offer, &offer).await?;
        let answer = JsFuture::from(pc.create_answer()).await.map_err(describe)?;
        let sdp = set_local(&pc, answer, RtcSdpType::Answer).await?;
        report(at_start, Event::LocalAnswer(sdp));
        // The caller waits for the answer, not for us: the queued candidates go in after it.
        report(at_start, Event::RemoteDescriptionSet);
        Ok(())
    });
}

pub fn accept_answer(answer: String) {
    spawn_step(|pc, at_start| async move {
        set_remote(&pc, RtcSdpType::Answer, &answer).await?;
        report(at_start, Event::RemoteDescriptionSet);
        Ok(())
    });
}

pub fn add_ice(c: IceCandidate) {
    let Some(pc) = connection() else { return };
    let init = RtcIceCandidateInit::new(&c.candidate);
    init.set_sdp_mid(c.sdp_mid.as_deref());
    init.set_sdp_m_line_index(c.sdp_m_line_index);
    if let Some(frag) = c.username_fragment.as_deref() {
        let _ = Reflect::set(
            &init,
            &JsValue::from_str("usernameFragment"),
            &JsValue::from_str(frag),
        );
    }
    let promise = pc.add_ice_candidate_with_opt_rtc_ice_candidate_init(Some(&init));
    spawn_local(async move {
        // One bad candidate is not fatal: others may still connect.
        if let Err(e) = JsFuture::from(promise).await {
            leptos::logging::warn!("ignoring an ICE candidate: {}", describe(e));
        }
    });
}

/// Stops every local track (camera light off), closes the connection, clears the videos.
pub fn teardown() {
    let (pc, local, handlers) = PEER.with(|p| {
        let mut p = p.borrow_mut();
        p.generation = p.generation.wrapping_add(1);
        p.video_sender = None;
        p.remote = None;
        (p.pc.take(), p.local.take(), p.handlers.take())
    });
    if let Some(window) = web_sys::window() {
        let _ = Reflect::delete_property(&window, &JsValue::from_str("duetPeerConnection"));
    }
    if let Some(stream) = local {
        stop_tracks(&stream);
    }
    if let Some(pc) = pc {
        pc.set_onicecandidate(None);
        pc.set_ontrack(None);
        pc.set_onconnectionstatechange(None);
        pc.close();
    }
    // A handler may be what called us: drop the closures only after it has returned.
    spawn_local(async move { drop(handlers) });
    show(LOCAL_VIDEO, None);
    show(REMOTE_VIDEO, None);
}

/// Silences or restores the microphone; the track keeps flowing (as silence), so nothing is
/// renegotiated.
pub fn set_mic(on: bool) {
    let Some(local) = PEER.with(|p| p.borrow().local.clone()) else {
        return;
    };
    for track in local.get_audio_tracks().iter() {
        track.unchecked_into::<MediaStreamTrack>().set_enabled(on);
    }
}

/// Camera off: stop the video track (the camera light goes off) and send nothing. On, or a
/// switch: open the front/back camera and put its track in place of the old one, without
/// renegotiating.
pub fn set_camera(on: bool, back: bool) {
    let Some((local, sender)) = PEER.with(|p| {
        let p = p.borrow();
        p.local.clone().zip(p.video_sender.clone())
    }) else {
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
        if let Err(e) = JsFuture::from(sender.replace_track(fresh.as_ref())).await {
            leptos::logging::warn!("replacing the video track failed: {}", describe(e));
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

async fn open_camera(back: bool) -> Result<MediaStreamTrack, String> {
    let video = js_sys::Object::new();
    let facing = if back { "environment" } else { "user" };
    let _ = Reflect::set(&video, &"facingMode".into(), &JsValue::from_str(facing));
    let constraints = MediaStreamConstraints::new();
    constraints.set_video(&video);
    user_media(&constraints)
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
