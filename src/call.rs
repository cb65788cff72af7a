//! The call flow as a pure state machine: `(State, Event) -> (State, Vec<Effect>)`.
//!
//! No web-sys, no tokio: events are user actions, signaling messages and reports from the
//! browser shell (`client/`); effects are what the shell must do (send a message, open the
//! camera, create an offer...). Every branch is unit-tested natively with `cargo test`.
//!
//! Order of a call (classic design):
//! caller `Dial` → `call_start` → callee `Ringing` → `Accept` → `call_back "1"` → both start
//! media → caller creates the offer → callee answers → both trickle ICE → `PeerConnected`.
//! Candidates that arrive before the remote description is set are queued, then applied.

use crate::signal::{validate_name, Code, IceCandidate, Kind, Message, NameError, ACCEPT, DECLINE};

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Caller,
    Callee,
}

/// A call that was accepted: media and WebRTC negotiation, then the call itself.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub peer: String,
    pub role: Role,
    /// Local camera/microphone are on and their tracks added to the peer connection.
    pub media_ready: bool,
    /// The remote description is applied, so ICE candidates can be added.
    pub remote_set: bool,
    /// Candidates received before `remote_set`.
    pub pending_ice: Vec<IceCandidate>,
    /// Callee: an offer that arrived before local media was ready.
    pub pending_offer: Option<String>,
    /// When media started flowing (ms, shell clock); `None` while connecting.
    pub connected_at: Option<f64>,
    /// Our microphone and camera, as the user set them.
    pub local: Av,
    /// Which camera we use (phones have two).
    pub back_camera: bool,
    /// The peer's microphone and camera, as its `media` messages said (on until told).
    pub remote: Av,
}

/// Whether a side's microphone and camera are on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Av {
    pub audio: bool,
    pub video: bool,
}

impl Av {
    const ON: Av = Av {
        audio: true,
        video: true,
    };
}

impl Session {
    fn new(peer: &str, role: Role) -> Session {
        Session {
            peer: peer.to_owned(),
            role,
            media_ready: false,
            remote_set: false,
            pending_ice: Vec::new(),
            pending_offer: None,
            connected_at: None,
            local: Av::ON,
            back_camera: false,
            remote: Av::ON,
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub enum Phase {
    Idle,
    /// We sent `call_start` and wait for the answer.
    Calling {
        peer: String,
    },
    /// Someone is calling us; the incoming-call sheet is up.
    Ringing {
        peer: String,
    },
    /// Accepted: connecting, then in call once `connected_at` is set.
    Live(Session),
    /// The last call is over; behaves like `Idle` but shows why.
    Ended {
        peer: String,
        reason: EndReason,
    },
}

/// Why a call ended, for the status line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EndReason {
    /// The callee declined.
    Declined,
    /// We declined an incoming call.
    YouDeclined,
    /// The callee cannot be reached: offline, busy, or a notice text from a classic client.
    Unavailable { code: Option<Code>, text: String },
    /// We cancelled our call before it was answered.
    Cancelled,
    /// The caller gave up before we answered.
    Missed,
    /// We hung up.
    YouHungUp,
    /// The other side hung up.
    PeerHungUp,
    /// The other side's connection to the server went away.
    PeerDisconnected,
    /// Camera or microphone could not be opened.
    MediaFailed(String),
    /// The peer-to-peer connection failed.
    ConnectionFailed,
}

/// The signaling connection as the user should understand it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Link {
    Connecting,
    Online,
    /// Lost; the shell is reconnecting.
    Reconnecting,
    /// The server refused this name (`NameTaken`, or `Replaced` by another window): do not
    /// reconnect.
    Refused(Code),
}

/// A one-off message for the user. Typed, so the UI words it in the user's language.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Notice {
    /// The name typed to call is not a valid name.
    BadName {
        name: String,
        error: NameError,
    },
    CallSelf,
    /// Turning the camera on (or switching it) failed; the browser's error.
    CameraFailed(String),
    /// Free text a classic client sent in a `call_back`.
    FromPeer {
        from: String,
        text: String,
    },
    /// A notice from the server, by code (the text is the server's English fallback).
    Server {
        code: Option<Code>,
        text: String,
    },
}

#[derive(Clone, Debug, PartialEq)]
pub struct State {
    pub me: String,
    pub phase: Phase,
    /// Other people online, sorted.
    pub online: Vec<String>,
    pub link: Link,
    /// A one-off message for the user (server error notices, invalid input).
    pub notice: Option<Notice>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Event {
    // The user.
    Dial(String),
    Accept,
    Decline,
    HangUp,
    DismissNotice,
    ToggleMic,
    ToggleCamera,
    SwitchCamera,
    // The signaling socket.
    SocketOpen,
    SocketClosed,
    Received(Message),
    // The browser shell, reporting on effects it ran.
    MediaReady,
    MediaFailed(String),
    LocalOffer(String),
    LocalAnswer(String),
    LocalIce(IceCandidate),
    RemoteDescriptionSet,
    PeerConnected {
        at_ms: f64,
    },
    PeerFailed,
    /// Turning the camera on (or switching it) failed; the call goes on without video.
    CameraFailed(String),
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Send(Message),
    /// getUserMedia (video + audio), create the peer connection, add the tracks; report
    /// `MediaReady` or `MediaFailed`.
    StartMedia,
    /// Create an offer, set it as local description, report `LocalOffer`.
    CreateOffer,
    /// Set this remote offer, report `RemoteDescriptionSet`, create and set an answer, report
    /// `LocalAnswer`.
    AnswerOffer(String),
    /// Set this remote answer, report `RemoteDescriptionSet`.
    AcceptAnswer(String),
    AddIce(IceCandidate),
    /// Stop every local track (camera light off) and close the peer connection.
    Teardown,
    /// Open the signaling socket again after a backoff delay.
    Reconnect,
    /// Enable or silence the microphone track (no renegotiation).
    Mic(bool),
    /// Camera off: stop the video track (light off) and send no video. On: open the front or
    /// back camera and replace the sent track (no renegotiation); report `CameraFailed` if not.
    Camera {
        on: bool,
        back: bool,
    },
}

/// See [`State::tone`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tone {
    Silent,
    /// Incoming call: ringtone and vibration.
    Ring,
    /// Outgoing call, not yet answered.
    Ringback,
}

/// See [`State::alert`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Alert {
    /// This person is calling now.
    Incoming(String),
    /// This person called and gave up (or rang out) before we answered.
    Missed(String),
}

/// What the status line says, derived from [`State`].
#[derive(Clone, Debug, PartialEq)]
pub enum Status {
    Idle,
    Calling(String),
    Ringing(String),
    Connecting(String),
    InCall { peer: String, seconds: u64 },
    Ended { peer: String, reason: EndReason },
}

impl State {
    pub fn new(me: &str) -> State {
        State {
            me: me.to_owned(),
            phase: Phase::Idle,
            online: Vec::new(),
            link: Link::Connecting,
            notice: None,
        }
    }

    /// The one transition function.
    pub fn step(mut self, event: Event) -> (State, Vec<Effect>) {
        let mut fx = Vec::new();
        self.apply(event, &mut fx);
        (self, fx)
    }

    pub fn status(&self, now_ms: f64) -> Status {
        match &self.phase {
            Phase::Idle => Status::Idle,
            Phase::Calling { peer } => Status::Calling(peer.clone()),
            Phase::Ringing { peer } => Status::Ringing(peer.clone()),
            Phase::Live(s) => match s.connected_at {
                None => Status::Connecting(s.peer.clone()),
                Some(t) => Status::InCall {
                    peer: s.peer.clone(),
                    seconds: ((now_ms - t).max(0.0) / 1000.0) as u64,
                },
            },
            Phase::Ended { peer, reason } => Status::Ended {
                peer: peer.clone(),
                reason: reason.clone(),
            },
        }
    }

    /// What the page should sound like now: the callee's phone rings, the caller hears ringback.
    pub fn tone(&self) -> Tone {
        match self.phase {
            Phase::Ringing { .. } => Tone::Ring,
            Phase::Calling { .. } => Tone::Ringback,
            _ => Tone::Silent,
        }
    }

    /// The current call once its peer-to-peer connection is up.
    pub fn connected_call(&self) -> Option<&Session> {
        match &self.phase {
            Phase::Live(session) if session.connected_at.is_some() => Some(session),
            _ => None,
        }
    }

    /// What a system notification should tell a user who is not looking at the page: an
    /// incoming call while it rings, then a missed one until the next call.
    pub fn alert(&self) -> Option<Alert> {
        match &self.phase {
            Phase::Ringing { peer } => Some(Alert::Incoming(peer.clone())),
            Phase::Ended {
                peer,
                reason: EndReason::Missed,
            } => Some(Alert::Missed(peer.clone())),
            _ => None,
        }
    }

    /// True when a new call may be placed or received.
    pub fn is_free(&self) -> bool {
        matches!(self.phase, Phase::Idle | Phase::Ended { .. })
    }

    /// The other party of the current call attempt, if any.
    pub fn peer(&self) -> Option<&str> {
        match &self.phase {
            Phase::Calling { peer } | Phase::Ringing { peer } => Some(peer),
            Phase::Live(s) => Some(&s.peer),
            Phase::Idle | Phase::Ended { .. } => None,
        }
    }

    fn end(&mut self, reason: EndReason, fx: &mut Vec<Effect>) {
        let Some(peer) = self.peer().map(str::to_owned) else {
            return;
        };
        if matches!(self.phase, Phase::Live(_)) {
            fx.push(Effect::Teardown);
        }
        self.phase = Phase::Ended { peer, reason };
    }

    /// Ends the call from our side, telling the peer.
    fn hang_up(&mut self, reason: EndReason, fx: &mut Vec<Effect>) {
        if let Some(peer) = self.peer() {
            fx.push(Effect::Send(Message::to(Kind::Hangup, peer)));
        }
        self.end(reason, fx);
    }

    fn apply(&mut self, event: Event, fx: &mut Vec<Effect>) {
        match event {
            Event::Dial(peer) => self.dial(peer.trim(), fx),
            Event::Accept => {
                if let Phase::Ringing { peer } = &self.phase {
                    fx.push(Effect::Send(Message::to(Kind::CallBack, peer).with_msg(ACCEPT)));
                    fx.push(Effect::StartMedia);
                    self.phase = Phase::Live(Session::new(peer, Role::Callee));
                }
            }
            Event::Decline => self.decline(fx),
            Event::HangUp => match self.phase {
                Phase::Ringing { .. } => self.decline(fx),
                Phase::Calling { .. } => self.hang_up(EndReason::Cancelled, fx),
                _ => self.hang_up(EndReason::YouHungUp, fx),
            },
            Event::DismissNotice => self.notice = None,
            Event::ToggleMic | Event::ToggleCamera | Event::SwitchCamera | Event::CameraFailed(_) => {
                self.media_control(event, fx)
            }
            Event::SocketOpen => self.link = Link::Online,
            Event::SocketClosed => {
                if !matches!(self.link, Link::Refused(_)) {
                    self.link = Link::Reconnecting;
                    fx.push(Effect::Reconnect);
                }
            }
            Event::Received(m) => self.receive(m, fx),
            Event::MediaReady => {
                if let Phase::Live(s) = &mut self.phase {
                    s.media_ready = true;
                    match s.role {
                        Role::Caller => fx.push(Effect::CreateOffer),
                        Role::Callee => fx.extend(s.pending_offer.take().map(Effect::AnswerOffer)),
                    }
                }
            }
            Event::MediaFailed(why) => {
                if matches!(self.phase, Phase::Live(_)) {
                    self.hang_up(EndReason::MediaFailed(why), fx);
                }
            }
            Event::LocalOffer(sdp) => self.send_in_call(Kind::Offer, |m| m.with_sdp(sdp), fx),
            Event::LocalAnswer(sdp) => self.send_in_call(Kind::Answer, |m| m.with_sdp(sdp), fx),
            Event::LocalIce(c) => self.send_in_call(Kind::Ice, |m| m.with_ice(c), fx),
            Event::RemoteDescriptionSet => {
                if let Phase::Live(s) = &mut self.phase {
                    s.remote_set = true;
                    fx.extend(s.pending_ice.drain(..).map(Effect::AddIce));
                }
            }
            Event::PeerConnected { at_ms } => {
                if let Phase::Live(s) = &mut self.phase {
                    s.connected_at.get_or_insert(at_ms);
                }
            }
            Event::PeerFailed => {
                if matches!(self.phase, Phase::Live(_)) {
                    self.hang_up(EndReason::ConnectionFailed, fx);
                }
            }
        }
    }

    fn dial(&mut self, peer: &str, fx: &mut Vec<Effect>) {
        if !self.is_free() {
            return;
        }
        if let Err(e) = validate_name(peer) {
            self.notice = Some(Notice::BadName {
                name: peer.to_owned(),
                error: e,
            });
            return;
        }
        if peer == self.me {
            self.notice = Some(Notice::CallSelf);
            return;
        }
        self.notice = None;
        fx.push(Effect::Send(Message::to(Kind::CallStart, peer)));
        self.phase = Phase::Calling {
            peer: peer.to_owned(),
        };
    }

    fn decline(&mut self, fx: &mut Vec<Effect>) {
        if let Phase::Ringing { peer } = &self.phase {
            fx.push(Effect::Send(Message::to(Kind::CallBack, peer).with_msg(DECLINE)));
            self.end(EndReason::YouDeclined, fx);
        }
    }

    fn send_in_call(&self, kind: Kind, fill: impl FnOnce(Message) -> Message, fx: &mut Vec<Effect>) {
        if let Phase::Live(s) = &self.phase {
            fx.push(Effect::Send(fill(Message::to(kind, &s.peer))));
        }
    }

    /// The live session with `from`, if that is who we are in a call with.
    fn session_with(&mut self, from: &str) -> Option<&mut Session> {
        match &mut self.phase {
            Phase::Live(s) if s.peer == from => Some(s),
            _ => None,
        }
    }

    fn receive(&mut self, m: Message, fx: &mut Vec<Effect>) {
        if m.kind == Kind::Presence {
            let me = &self.me;
            self.online = m
                .users
                .unwrap_or_default()
                .into_iter()
                .filter(|u| u != me)
                .collect();
            return;
        }
        if m.is_from_system() {
            return self.system_notice(m);
        }
        let Some(from) = m.from_user.clone() else { return };
        match m.kind {
            Kind::CallStart => self.incoming(&from, fx),
            Kind::CallBack => self.call_back(&from, m.msg.unwrap_or_default(), fx),
            Kind::Offer => {
                if let (Some(s), Some(sdp)) = (self.session_with(&from), m.sdp) {
                    if s.role == Role::Callee {
                        if s.media_ready {
                            fx.push(Effect::AnswerOffer(sdp));
                        } else {
                            s.pending_offer = Some(sdp);
                        }
                    }
                }
            }
            Kind::Answer => {
                if let (Some(s), Some(sdp)) = (self.session_with(&from), m.sdp) {
                    if s.role == Role::Caller && !s.remote_set {
                        fx.push(Effect::AcceptAnswer(sdp));
                    }
                }
            }
            Kind::Ice => {
                if let (Some(s), Some(c)) = (self.session_with(&from), m.ice_candidate) {
                    if s.remote_set {
                        fx.push(Effect::AddIce(c));
                    } else {
                        s.pending_ice.push(c);
                    }
                }
            }
            Kind::Hangup => {
                if self.peer() == Some(from.as_str()) {
                    let reason = match (&self.phase, m.code) {
                        (Phase::Ringing { .. }, _) => EndReason::Missed,
                        (_, Some(Code::PeerDisconnected)) => EndReason::PeerDisconnected,
                        _ => EndReason::PeerHungUp,
                    };
                    self.end(reason, fx);
                }
            }
            Kind::Media => {
                if let Some(s) = self.session_with(&from) {
                    s.remote = Av {
                        audio: m.audio.unwrap_or(s.remote.audio),
                        video: m.video.unwrap_or(s.remote.video),
                    };
                }
            }
            Kind::Presence => {}
        }
    }

    /// Microphone and camera during a call: tell the shell, and the peer (for its indicators).
    fn media_control(&mut self, event: Event, fx: &mut Vec<Effect>) {
        let Phase::Live(s) = &mut self.phase else { return };
        if !s.media_ready {
            return; // nothing to switch yet; the buttons only show once media is up
        }
        let before = s.local;
        match event {
            Event::ToggleMic => {
                s.local.audio = !s.local.audio;
                fx.push(Effect::Mic(s.local.audio));
            }
            Event::ToggleCamera => {
                s.local.video = !s.local.video;
                fx.push(Effect::Camera {
                    on: s.local.video,
                    back: s.back_camera,
                });
            }
            Event::SwitchCamera => {
                s.back_camera = !s.back_camera;
                s.local.video = true;
                fx.push(Effect::Camera {
                    on: true,
                    back: s.back_camera,
                });
            }
            Event::CameraFailed(why) => {
                s.local.video = false;
                self.notice = Some(Notice::CameraFailed(why));
            }
            _ => {}
        }
        let Phase::Live(s) = &self.phase else { return };
        if s.local != before {
            fx.push(Effect::Send(Message::media(
                &s.peer,
                s.local.audio,
                s.local.video,
            )));
        }
    }

    fn incoming(&mut self, from: &str, fx: &mut Vec<Effect>) {
        match &self.phase {
            Phase::Idle | Phase::Ended { .. } => {
                self.phase = Phase::Ringing {
                    peer: from.to_owned(),
                };
            }
            // Glare: both called each other. Exactly one call must result, decided the same way
            // on both sides: the name that sorts first stays caller; the other accepts.
            Phase::Calling { peer } if peer == from => {
                if self.me.as_str() > from {
                    fx.push(Effect::Send(Message::to(Kind::CallBack, from).with_msg(ACCEPT)));
                    fx.push(Effect::StartMedia);
                    self.phase = Phase::Live(Session::new(from, Role::Callee));
                }
            }
            Phase::Ringing { peer } if peer == from => {}
            Phase::Live(s) if s.peer == from => {}
            _ => {
                let text = format!("{} is in another call", self.me);
                fx.push(Effect::Send(Message::to(Kind::CallBack, from).with_msg(&text)));
            }
        }
    }

    fn call_back(&mut self, from: &str, msg: String, fx: &mut Vec<Effect>) {
        let calling_them = matches!(&self.phase, Phase::Calling { peer } if peer == from);
        match msg.as_str() {
            ACCEPT if calling_them => {
                fx.push(Effect::StartMedia);
                self.phase = Phase::Live(Session::new(from, Role::Caller));
            }
            DECLINE if calling_them => self.end(EndReason::Declined, fx),
            ACCEPT | DECLINE => {}
            _ if calling_them => self.end(
                EndReason::Unavailable {
                    code: None,
                    text: msg,
                },
                fx,
            ),
            _ => {
                self.notice = Some(Notice::FromPeer {
                    from: from.to_owned(),
                    text: msg,
                })
            }
        }
    }

    fn system_notice(&mut self, m: Message) {
        let text = m.msg.unwrap_or_default();
        match m.code {
            Some(code @ (Code::NameTaken | Code::Replaced)) => self.link = Link::Refused(code),
            // Our client only sends call messages within a call; this arrives after races (both
            // sides hanging up at once) and means nothing to the user.
            Some(Code::NotInCall) => {}
            Some(code @ (Code::Offline | Code::Busy | Code::NotOnline | Code::NoAnswer))
                if matches!(self.phase, Phase::Calling { .. }) =>
            {
                self.end(
                    EndReason::Unavailable {
                        code: Some(code),
                        text,
                    },
                    &mut Vec::new(),
                );
            }
            code => self.notice = Some(Notice::Server { code, text }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::SYSTEM_NAME;

    fn msg(kind: Kind, from: &str) -> Message {
        let mut m = Message::to(kind, "me");
        m.from_user = Some(from.to_owned());
        m
    }

    fn recv(kind: Kind, from: &str) -> Event {
        Event::Received(msg(kind, from))
    }

    fn ice(n: u16) -> IceCandidate {
        IceCandidate {
            candidate: format!("candidate:{n}"),
            sdp_mid: Some("0".into()),
            sdp_m_line_index: Some(0),
            username_fragment: None,
        }
    }

    fn sent(fx: &[Effect]) -> Vec<(Kind, String, Option<String>)> {
        fx.iter()
            .filter_map(|e| match e {
                Effect::Send(m) => Some((m.kind, m.to_user.clone().unwrap(), m.msg.clone())),
                _ => None,
            })
            .collect()
    }

    /// Runs events in order, returning the final state and all effects.
    fn run(mut s: State, events: impl IntoIterator<Item = Event>) -> (State, Vec<Effect>) {
        let mut all = Vec::new();
        for e in events {
            let (next, fx) = s.step(e);
            s = next;
            all.extend(fx);
        }
        (s, all)
    }

    fn caller_in_call() -> State {
        let (s, _) = run(
            State::new("alice"),
            [
                Event::Dial("bob".into()),
                Event::Received(msg(Kind::CallBack, "bob").with_msg(ACCEPT)),
                Event::MediaReady,
                Event::LocalOffer("offer-sdp".into()),
                Event::Received(msg(Kind::Answer, "bob").with_sdp("answer-sdp".into())),
                Event::RemoteDescriptionSet,
                Event::PeerConnected { at_ms: 1000.0 },
            ],
        );
        s
    }

    fn session(s: &State) -> &Session {
        match &s.phase {
            Phase::Live(session) => session,
            other => panic!("not in a call: {other:?}"),
        }
    }

    #[test]
    fn the_callee_rings_the_caller_hears_ringback_and_both_stop_on_answer() {
        let caller = run(State::new("alice"), [Event::Dial("bob".into())]).0;
        assert_eq!(caller.tone(), Tone::Ringback);
        let callee = State::new("bob").step(recv(Kind::CallStart, "alice")).0;
        assert_eq!(callee.tone(), Tone::Ring);
        assert_eq!(callee.clone().step(Event::Accept).0.tone(), Tone::Silent);
        assert_eq!(callee.step(Event::Decline).0.tone(), Tone::Silent);
        assert_eq!(caller_in_call().tone(), Tone::Silent);
        assert_eq!(State::new("alice").tone(), Tone::Silent);
    }

    #[test]
    fn mic_and_camera_toggle_locally_and_tell_the_peer() {
        let s = caller_in_call();
        let (s, fx) = s.step(Event::ToggleMic);
        assert_eq!(fx[0], Effect::Mic(false));
        assert_eq!(fx[1], Effect::Send(Message::media("bob", false, true)));
        let (s, fx) = s.step(Event::ToggleCamera);
        assert_eq!(
            fx[0],
            Effect::Camera {
                on: false,
                back: false
            }
        );
        assert_eq!(fx[1], Effect::Send(Message::media("bob", false, false)));
        let (s, fx) = s.step(Event::ToggleMic);
        assert_eq!(
            fx,
            [
                Effect::Mic(true),
                Effect::Send(Message::media("bob", true, false))
            ]
        );
        // Switching cameras turns the camera on, the other one.
        let (s, fx) = s.step(Event::SwitchCamera);
        assert_eq!(fx[0], Effect::Camera { on: true, back: true });
        assert_eq!(fx[1], Effect::Send(Message::media("bob", true, true)));
        // Switching again while on: no state change for the peer, so nothing sent.
        let (s, fx) = s.step(Event::SwitchCamera);
        assert_eq!(
            fx,
            [Effect::Camera {
                on: true,
                back: false
            }]
        );
        assert_eq!(session(&s).local, Av::ON);
    }

    #[test]
    fn a_camera_that_fails_to_open_leaves_the_call_up_without_video() {
        let (s, _) = run(caller_in_call(), [Event::ToggleCamera, Event::ToggleCamera]);
        let (s, fx) = s.step(Event::CameraFailed("NotReadableError: busy".into()));
        assert_eq!(fx, [Effect::Send(Message::media("bob", true, false))]);
        assert!(!session(&s).local.video);
        assert_eq!(
            s.notice,
            Some(Notice::CameraFailed("NotReadableError: busy".into()))
        );
        assert!(matches!(s.status(2000.0), Status::InCall { .. }));
    }

    #[test]
    fn media_controls_do_nothing_outside_a_call_or_before_media() {
        for s in [
            State::new("alice"),
            run(State::new("alice"), [Event::Dial("bob".into())]).0,
        ] {
            for e in [Event::ToggleMic, Event::ToggleCamera, Event::SwitchCamera] {
                let (_, fx) = s.clone().step(e);
                assert_eq!(fx, []);
            }
        }
        let accepted = run(
            State::new("alice"),
            [
                Event::Dial("bob".into()),
                Event::Received(msg(Kind::CallBack, "bob").with_msg(ACCEPT)),
            ],
        )
        .0;
        assert_eq!(accepted.step(Event::ToggleMic).1, []);
    }

    #[test]
    fn the_peers_media_state_comes_from_its_media_messages_only() {
        let s = caller_in_call();
        assert_eq!(session(&s).remote, Av::ON);
        let mut muted = msg(Kind::Media, "bob");
        muted.audio = Some(false);
        let (s, fx) = s.step(Event::Received(muted));
        assert_eq!(fx, []);
        assert_eq!(
            session(&s).remote,
            Av {
                audio: false,
                video: true
            }
        );
        // From someone else: ignored.
        let (s, _) = s.step(Event::Received(Message {
            from_user: Some("mallory".into()),
            ..Message::media("alice", false, false)
        }));
        assert_eq!(
            session(&s).remote,
            Av {
                audio: false,
                video: true
            }
        );
    }

    #[test]
    fn caller_happy_path_in_classic_order() {
        let s = State::new("alice");
        let (s, fx) = s.step(Event::Dial(" bob ".into()));
        assert_eq!(sent(&fx), [(Kind::CallStart, "bob".into(), None)]);
        assert_eq!(s.status(0.0), Status::Calling("bob".into()));

        let (s, fx) = s.step(Event::Received(msg(Kind::CallBack, "bob").with_msg(ACCEPT)));
        assert_eq!(fx, [Effect::StartMedia]);
        assert_eq!(s.status(0.0), Status::Connecting("bob".into()));

        let (s, fx) = s.step(Event::MediaReady);
        assert_eq!(fx, [Effect::CreateOffer]);
        let (s, fx) = s.step(Event::LocalOffer("o".into()));
        assert!(
            matches!(&fx[..], [Effect::Send(m)] if m.kind == Kind::Offer && m.sdp.as_deref() == Some("o"))
        );
        let (s, fx) = s.step(Event::LocalIce(ice(1)));
        assert!(
            matches!(&fx[..], [Effect::Send(m)] if m.kind == Kind::Ice && m.ice_candidate == Some(ice(1)))
        );

        let (s, fx) = s.step(Event::Received(msg(Kind::Answer, "bob").with_sdp("a".into())));
        assert_eq!(fx, [Effect::AcceptAnswer("a".into())]);
        let (s, fx) = s.step(Event::PeerConnected { at_ms: 5_000.0 });
        assert!(fx.is_empty());
        assert_eq!(
            s.status(65_500.0),
            Status::InCall {
                peer: "bob".into(),
                seconds: 60
            }
        );
    }

    #[test]
    fn callee_happy_path_with_offer_before_media() {
        let (s, fx) = State::new("bob").step(recv(Kind::CallStart, "alice"));
        assert!(fx.is_empty());
        assert_eq!(s.status(0.0), Status::Ringing("alice".into()));

        let (s, fx) = s.step(Event::Accept);
        assert_eq!(sent(&fx), [(Kind::CallBack, "alice".into(), Some("1".into()))]);
        assert!(fx.contains(&Effect::StartMedia));

        // The offer races the camera: it waits for media.
        let (s, fx) = s.step(Event::Received(msg(Kind::Offer, "alice").with_sdp("o".into())));
        assert!(fx.is_empty());
        let (s, fx) = s.step(Event::MediaReady);
        assert_eq!(fx, [Effect::AnswerOffer("o".into())]);
        let (_, fx) = s.step(Event::LocalAnswer("a".into()));
        assert!(
            matches!(&fx[..], [Effect::Send(m)] if m.kind == Kind::Answer && m.to_user.as_deref() == Some("alice"))
        );
    }

    #[test]
    fn callee_answers_at_once_when_media_is_ready() {
        let (s, _) = run(
            State::new("bob"),
            [recv(Kind::CallStart, "alice"), Event::Accept, Event::MediaReady],
        );
        let (_, fx) = s.step(Event::Received(msg(Kind::Offer, "alice").with_sdp("o".into())));
        assert_eq!(fx, [Effect::AnswerOffer("o".into())]);
    }

    #[test]
    fn ice_before_remote_description_is_queued_then_applied_in_order() {
        let (s, fx) = run(
            State::new("bob"),
            [
                recv(Kind::CallStart, "alice"),
                Event::Accept,
                Event::Received(msg(Kind::Ice, "alice").with_ice(ice(1))),
                Event::Received(msg(Kind::Ice, "alice").with_ice(ice(2))),
            ],
        );
        assert!(!fx.iter().any(|e| matches!(e, Effect::AddIce(_))));
        let (s, fx) = s.step(Event::RemoteDescriptionSet);
        assert_eq!(fx, [Effect::AddIce(ice(1)), Effect::AddIce(ice(2))]);
        let (_, fx) = s.step(Event::Received(msg(Kind::Ice, "alice").with_ice(ice(3))));
        assert_eq!(fx, [Effect::AddIce(ice(3))]);
    }

    #[test]
    fn decline_both_sides() {
        let (s, fx) = run(
            State::new("bob"),
            [recv(Kind::CallStart, "alice"), Event::Decline],
        );
        assert_eq!(sent(&fx), [(Kind::CallBack, "alice".into(), Some("0".into()))]);
        assert!(
            !fx.contains(&Effect::StartMedia),
            "declining never opens the camera"
        );
        assert_eq!(
            s.status(0.0),
            Status::Ended {
                peer: "alice".into(),
                reason: EndReason::YouDeclined
            }
        );

        let (s, fx) = run(
            State::new("alice"),
            [
                Event::Dial("bob".into()),
                Event::Received(msg(Kind::CallBack, "bob").with_msg(DECLINE)),
            ],
        );
        assert_eq!(fx.len(), 1, "only the call_start: {fx:?}");
        assert_eq!(
            s.status(0.0),
            Status::Ended {
                peer: "bob".into(),
                reason: EndReason::Declined
            }
        );
        assert!(s.is_free());
    }

    #[test]
    fn hang_up_from_our_side_tears_down_and_tells_the_peer() {
        let (s, fx) = caller_in_call().step(Event::HangUp);
        assert_eq!(sent(&fx), [(Kind::Hangup, "bob".into(), None)]);
        assert!(fx.contains(&Effect::Teardown));
        assert_eq!(
            s.phase,
            Phase::Ended {
                peer: "bob".into(),
                reason: EndReason::YouHungUp
            }
        );
    }

    #[test]
    fn hang_up_from_the_other_side_tears_down_silently() {
        let (s, fx) = caller_in_call().step(recv(Kind::Hangup, "bob"));
        assert_eq!(fx, [Effect::Teardown]);
        assert_eq!(
            s.phase,
            Phase::Ended {
                peer: "bob".into(),
                reason: EndReason::PeerHungUp
            }
        );
        // A stranger's hangup does nothing to our call.
        let (s, fx) = caller_in_call().step(recv(Kind::Hangup, "mallory"));
        assert!(fx.is_empty());
        assert!(matches!(s.phase, Phase::Live(_)));
    }

    #[test]
    fn peer_disconnect_is_reported_as_such() {
        let mut bye = msg(Kind::Hangup, "bob");
        bye.code = Some(Code::PeerDisconnected);
        let (s, fx) = caller_in_call().step(Event::Received(bye));
        assert_eq!(fx, [Effect::Teardown]);
        assert!(matches!(
            s.phase,
            Phase::Ended {
                reason: EndReason::PeerDisconnected,
                ..
            }
        ));
    }

    #[test]
    fn remote_hang_up_while_ringing_dismisses_the_sheet() {
        let (s, fx) = run(
            State::new("bob"),
            [recv(Kind::CallStart, "alice"), recv(Kind::Hangup, "alice")],
        );
        assert!(
            fx.is_empty(),
            "no media was started, nothing to tear down: {fx:?}"
        );
        assert_eq!(
            s.phase,
            Phase::Ended {
                peer: "alice".into(),
                reason: EndReason::Missed
            }
        );
    }

    #[test]
    fn caller_cancels_while_calling() {
        let (s, fx) = run(State::new("alice"), [Event::Dial("bob".into()), Event::HangUp]);
        assert_eq!(sent(&fx)[1], (Kind::Hangup, "bob".into(), None));
        assert!(!fx.contains(&Effect::Teardown));
        assert_eq!(
            s.phase,
            Phase::Ended {
                peer: "bob".into(),
                reason: EndReason::Cancelled
            }
        );
    }

    #[test]
    fn media_failure_ends_the_call_cleanly() {
        let (s, fx) = run(
            State::new("bob"),
            [
                recv(Kind::CallStart, "alice"),
                Event::Accept,
                Event::MediaFailed("NotAllowedError".into()),
            ],
        );
        assert_eq!(sent(&fx).last().unwrap(), &(Kind::Hangup, "alice".into(), None));
        assert!(fx.contains(&Effect::Teardown));
        assert_eq!(
            s.phase,
            Phase::Ended {
                peer: "alice".into(),
                reason: EndReason::MediaFailed("NotAllowedError".into())
            }
        );
        // A late report after the end changes nothing.
        let (s2, fx) = s.clone().step(Event::MediaReady);
        assert!(fx.is_empty());
        assert_eq!(s2, s);
    }

    #[test]
    fn peer_connection_failure_ends_the_call() {
        let (s, fx) = caller_in_call().step(Event::PeerFailed);
        assert!(fx.contains(&Effect::Teardown));
        assert!(matches!(
            s.phase,
            Phase::Ended {
                reason: EndReason::ConnectionFailed,
                ..
            }
        ));
    }

    #[test]
    fn offline_and_busy_notices_end_the_attempt() {
        for code in [Code::Offline, Code::Busy, Code::NoAnswer] {
            let mut n = Message::notice("alice", code, "nope");
            n.from_user = Some(SYSTEM_NAME.into());
            let (s, _) = run(
                State::new("alice"),
                [Event::Dial("zoe".into()), Event::Received(n)],
            );
            assert_eq!(
                s.phase,
                Phase::Ended {
                    peer: "zoe".into(),
                    reason: EndReason::Unavailable {
                        code: Some(code),
                        text: "nope".into()
                    }
                }
            );
        }
    }

    #[test]
    fn not_in_call_notices_are_not_shown() {
        let n = Message::notice("alice", Code::NotInCall, "you are not in a call with bob");
        let (s, fx) = State::new("alice").step(Event::Received(n));
        assert!(fx.is_empty());
        assert_eq!(s.notice, None);
    }

    #[test]
    fn classic_notice_text_while_calling_ends_the_attempt_and_otherwise_is_shown() {
        let (s, _) = run(
            State::new("alice"),
            [
                Event::Dial("bob".into()),
                Event::Received(msg(Kind::CallBack, "bob").with_msg("bob is busy")),
            ],
        );
        assert!(matches!(
            s.phase,
            Phase::Ended {
                reason: EndReason::Unavailable { code: None, .. },
                ..
            }
        ));
        let (s, _) = State::new("alice").step(Event::Received(msg(Kind::CallBack, "bob").with_msg("hi")));
        assert_eq!(
            s.notice,
            Some(Notice::FromPeer {
                from: "bob".into(),
                text: "hi".into()
            })
        );
        assert!(s.is_free());
    }

    #[test]
    fn incoming_call_while_busy_is_answered_with_a_notice() {
        let (_, fx) = caller_in_call().step(recv(Kind::CallStart, "carol"));
        assert_eq!(
            sent(&fx),
            [(
                Kind::CallBack,
                "carol".into(),
                Some("alice is in another call".into())
            )]
        );
    }

    #[test]
    fn glare_resolves_to_exactly_one_call() {
        // Both dial each other; each then receives the other's call_start.
        let (a, fa) = run(
            State::new("alice"),
            [Event::Dial("bob".into()), recv(Kind::CallStart, "bob")],
        );
        let (b, fb) = run(
            State::new("bob"),
            [Event::Dial("alice".into()), recv(Kind::CallStart, "alice")],
        );
        assert_eq!(
            a.phase,
            Phase::Calling { peer: "bob".into() },
            "alice sorts first, stays caller"
        );
        assert!(!fa.contains(&Effect::StartMedia));
        assert!(matches!(&b.phase, Phase::Live(s) if s.role == Role::Callee));
        assert!(sent(&fb).contains(&(Kind::CallBack, "alice".into(), Some("1".into()))));
        // bob's accept reaches alice: she proceeds as caller.
        let (a, fx) = a.step(Event::Received(msg(Kind::CallBack, "bob").with_msg(ACCEPT)));
        assert_eq!(fx, [Effect::StartMedia]);
        assert!(matches!(&a.phase, Phase::Live(s) if s.role == Role::Caller));
    }

    #[test]
    fn dial_validates_the_name() {
        for bad in ["", "a b", "alice"] {
            let (s, fx) = State::new("alice").step(Event::Dial(bad.into()));
            assert!(fx.is_empty(), "{bad}");
            assert!(s.notice.is_some(), "{bad}");
            assert!(s.is_free());
        }
        let (s, fx) = caller_in_call().step(Event::Dial("carol".into()));
        assert!(fx.is_empty(), "no second call while in one");
        assert!(matches!(s.phase, Phase::Live(_)));
    }

    #[test]
    fn presence_excludes_me() {
        let (s, _) = State::new("bob").step(Event::Received(Message::presence(
            "bob",
            vec!["alice".into(), "bob".into(), "张伟".into()],
        )));
        assert_eq!(s.online, ["alice", "张伟"]);
    }

    #[test]
    fn refusal_stops_reconnecting_but_a_blip_reconnects() {
        let (s, fx) = State::new("bob").step(Event::SocketClosed);
        assert_eq!(fx, [Effect::Reconnect]);
        assert_eq!(s.link, Link::Reconnecting);
        let (s, _) = s.step(Event::SocketOpen);
        assert_eq!(s.link, Link::Online);
        let taken = Message::notice("bob", Code::NameTaken, "taken");
        let (s, _) = s.step(Event::Received(taken));
        assert_eq!(s.link, Link::Refused(Code::NameTaken));
        let (_, fx) = s.step(Event::SocketClosed);
        assert!(fx.is_empty());
    }

    #[test]
    fn signaling_blip_keeps_the_call() {
        let (s, fx) = caller_in_call().step(Event::SocketClosed);
        assert_eq!(fx, [Effect::Reconnect]);
        assert!(matches!(s.phase, Phase::Live(_)));
    }

    #[test]
    fn messages_from_strangers_do_not_touch_the_call() {
        let s = caller_in_call();
        for e in [
            Event::Received(msg(Kind::Offer, "mallory").with_sdp("x".into())),
            Event::Received(msg(Kind::Answer, "mallory").with_sdp("x".into())),
            Event::Received(msg(Kind::Ice, "mallory").with_ice(ice(9))),
            Event::Received(msg(Kind::CallBack, "mallory").with_msg(DECLINE)),
        ] {
            let (s2, fx) = s.clone().step(e);
            assert!(fx.is_empty());
            assert_eq!(s2.phase, s.phase);
        }
    }

    #[test]
    fn an_alert_while_ringing_then_a_missed_call_until_the_next_call() {
        let ring = msg(Kind::CallStart, "bob");
        let (s, _) = State::new("me").step(Event::Received(ring.clone()));
        assert_eq!(s.alert(), Some(Alert::Incoming("bob".into())));
        let (s, _) = s.step(Event::Received(msg(Kind::Hangup, "bob")));
        assert_eq!(s.alert(), Some(Alert::Missed("bob".into())));
        let (s, _) = s.step(Event::Received(ring));
        let (s, _) = s.step(Event::Decline);
        assert_eq!(s.alert(), None, "declined is not missed");
        let (s, _) = s.step(Event::Dial("carol".into()));
        assert_eq!(s.alert(), None);
    }
}
