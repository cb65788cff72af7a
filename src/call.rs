//! The call flow as a pure state machine: `(State, Event) -> (State, Vec<Effect>)`.
//!
//! No web-sys, no tokio: events are user actions, signaling messages and reports from the
//! browser shell (`client/`); effects are what the shell must do (send a message, open the
//! camera, create an offer...). Every branch is unit-tested natively with `cargo test`.
//!
//! Order of a call (classic design):
//! caller `Dial` → `call_start` → callee `Ringing` → `Accept` → `call_back "1"` → caller
//! creates the offer → callee answers → both trickle ICE → `PeerConnected`. Duet does each step
//! as early as it can. The peer connection is made when the call starts (dialing, or ringing)
//! and media is given to it when the camera opens ([`Effect::OpenPeer`], then
//! [`Effect::StartMedia`]): the SDP exchange never waits for a camera. The camera is opened
//! before the answer, as phones' call apps do: the caller's when dialing, the callee's while it
//! rings (only if the browser already has the permission, so no prompt appears before the
//! person chose to answer); both see their own preview. The microphone follows when the
//! connection comes up ([`Effect::OpenMicrophone`]; with the camera when the browser must ask,
//! for one prompt): no microphone is live while a call rings, and its start (audio processing,
//! 30–120 ms of a busy phone's CPU) stays out of the connection's way. Declining, cancelling or
//! ringing out releases the camera at once.
//! The caller's offer is made before the tap (the shell's spare connection) and goes out right
//! after the `call_start` (not inside it: on a slow uplink its ~6 KB would hold up the ring),
//! its ICE candidates at once. The relay passes them on to a callee that asks for them
//! (`?early=1`, this page) and holds them until the accept for classic clients. The callee
//! sets the offer up and makes its answer while it rings, but keeps the answer, its own
//! candidates and the caller's candidates until Accept: with no remote candidate its ICE agent
//! sends nothing to the caller, so a call that is not answered never learns the callee's address
//! (candidates inside an offer's SDP are taken out for that too, [`split_candidates`]). Accept
//! then sends the answer inside the `call_back "1"` (an answer still being made takes the
//! accept along when it is ready), so the caller sets it before it redraws. Candidates that
//! arrive before the remote description is set are queued, then applied.
//!
//! The network may change under a call: when the peer-to-peer path is `disconnected` for
//! [`ICE_GRACE_MS`] or `failed`, the caller (only the caller, so two restarts never cross)
//! restarts ICE with a fresh offer; an offer whose answer does not come back within
//! [`ANSWER_MS`] is sent again the same way, and at once when the callee says it is back on a
//! new signaling socket with nothing to answer ([`RESUMED`]: a socket that died with the old
//! network took the offer along). Deadlines are timers the shell runs ([`Effect::After`]) and
//! reports back ([`Event::Timeout`]); each carries an id, so a timer of an older deadline never
//! acts on a newer one.

use crate::signal::{
    validate_name, Code, IceCandidate, IceServer, Kind, Message, NameError, ACCEPT, DECLINE, HANGUP_NO_PATH,
    RESUMED,
};

/// An unanswered call gives up on the client too (the server's ring timeout is 30 s by
/// default; this is the backstop when the server's notice is lost).
pub const RING_MS: u32 = 60_000;
/// An accepted call that has not connected peer to peer by then has failed (both sides give
/// up within 15 s of the Accept). Also the time a broken call has to come back.
pub const CONNECT_MS: u32 = 12_000;
/// How long the path may be `disconnected` before the caller restarts ICE.
pub const ICE_GRACE_MS: u32 = 2_000;
/// How long the caller waits for the answer to an offer before sending a new one.
pub const ANSWER_MS: u32 = 5_000;
/// How long a callee back on a new socket waits for what the relay held for it (it comes with
/// the greeting) before it says it is back ([`RESUMED`]): a held offer is answered instead.
pub const RESUME_MS: u32 = 200;
/// How long the caller waits, after applying an answer, for the path to come up before it
/// restarts ICE: candidates lost with a dying signaling socket leave the two browsers unable to
/// find each other, and a restart gathers and sends them all again.
pub const CHECKING_MS: u32 = 4_000;
/// ICE restarts within one call before it is given up.
pub const MAX_RESTARTS: u8 = 6;
/// ICE candidates kept while the remote description is not set yet; more are dropped.
pub const MAX_PENDING_ICE: usize = 200;

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
    /// The local camera is on and its track given to the peer connection (the microphone
    /// follows at `connected`, see [`Effect::OpenMicrophone`]).
    pub media_ready: bool,
    /// The remote description is applied, so ICE candidates can be added.
    pub remote_set: bool,
    /// Candidates received before `remote_set`.
    pub pending_ice: Vec<IceCandidate>,
    /// When media started flowing (ms, shell clock); `None` while connecting.
    pub connected_at: Option<f64>,
    /// Caller: an offer is out (or about to be) and its answer not applied yet. Callee: our
    /// accept waits for our answer, still being made, to go inside it.
    pub negotiating: bool,
    /// Caller: a restart waits for fresh ICE servers (TURN credentials) from the relay.
    pub restart_pending: bool,
    /// The peer-to-peer path was up and is now disconnected or failed: recovering.
    pub disrupted: bool,
    /// ICE restarts so far in this call.
    pub restarts: u8,
    /// Ids of the deadlines in force (see [`Timer`]); a timeout with another id is stale.
    pub connect_timer: u32,
    pub ice_timer: u32,
    pub answer_timer: u32,
    pub resume_timer: u32,
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
    /// The video sent is the screen (a window, a tab), not the camera.
    pub screen: bool,
}

impl Av {
    const ON: Av = Av {
        audio: true,
        video: true,
        screen: false,
    };
}

impl Session {
    /// Tells the peer our microphone, camera and screen state (for its indicators).
    fn media_message(&self) -> Message {
        let Av { audio, video, screen } = self.local;
        Message::media(&self.peer, audio, video, screen)
    }

    fn new(peer: &str, role: Role) -> Session {
        Session {
            peer: peer.to_owned(),
            role,
            media_ready: false,
            remote_set: false,
            pending_ice: Vec::new(),
            connected_at: None,
            negotiating: false,
            restart_pending: false,
            disrupted: false,
            restarts: 0,
            connect_timer: 0,
            ice_timer: 0,
            answer_timer: 0,
            resume_timer: 0,
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
    /// The peer-to-peer connection could not be made or was lost for good. `needs_relay`: it
    /// never connected and no TURN server is configured, which is what symmetric NATs (many
    /// mobile networks) need.
    ConnectionFailed { needs_relay: bool },
    /// The server no longer knows of the call (it restarted): the call cannot be signaled.
    CallLost,
    /// The browser refused a session description (the peer's SDP, or making our own): the
    /// browser's error.
    NegotiationFailed(String),
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

/// The camera opened ahead of the answer (see the module docs). Only before a call
/// is live: then [`Session::media_ready`] takes over.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Warm {
    #[default]
    Off,
    Opening,
    /// Open, with the peer connection made: own preview on screen.
    Ready,
}

/// The callee's side of a call set up while it rings (see the module docs), all held until
/// the accept.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Early {
    /// The caller's offer, its candidates taken out (they wait in `their_ice`).
    pub offer: Option<String>,
    /// The caller's candidates (at most [`MAX_PENDING_ICE`]).
    pub their_ice: Vec<IceCandidate>,
    /// The shell is answering `offer`; `answer` is `None` until it has.
    pub answering: bool,
    pub answer: Option<String>,
    /// Our candidates, gathered since the answer was set (at most [`MAX_PENDING_ICE`]).
    pub our_ice: Vec<IceCandidate>,
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
    /// The microphone could not be opened; the browser's error.
    MicFailed(String),
    /// Sharing the screen failed (not cancelled); the browser's error.
    ScreenFailed(String),
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
    /// The relay configured a TURN server for us (see [`EndReason::ConnectionFailed`]).
    pub turn: bool,
    /// Last timer id handed out.
    pub timers: u32,
    /// Id of the ring deadline in force (calling or ringing).
    pub ring_timer: u32,
    /// Media warmed for the call being set up (calling or ringing).
    pub warm: Warm,
    /// Ringing: the call set up ahead of the accept.
    pub early: Early,
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
    /// Share the screen, or stop sharing it.
    ToggleScreen,
    // The signaling socket.
    SocketOpen,
    SocketClosed,
    Received(Message),
    // The browser shell, reporting on effects it ran.
    MediaReady,
    MediaFailed(String),
    /// `StartMedia { ask: false }` found no permission granted yet: nothing was opened.
    MediaSkipped,
    LocalOffer(String),
    LocalAnswer(String),
    LocalIce(IceCandidate),
    RemoteDescriptionSet,
    PeerConnected {
        at_ms: f64,
    },
    /// The peer-to-peer path is `disconnected` (it may come back by itself).
    PeerDisconnected,
    /// The path `failed`, or a WebRTC step failed.
    PeerFailed,
    /// Nothing at all arrived from the peer for half a second in a connected call (see
    /// [`crate::quality::Quality::stalled`]): as good as failed, and known seconds earlier.
    MediaStalled,
    /// Media arrives again after a stall: the path is back (the browser may never have called
    /// it anything but `connected`).
    MediaFlowing,
    /// A deadline set with [`Effect::After`] passed.
    Timeout(Timer, u32),
    /// Setting or making a session description failed (e.g. the peer's SDP was refused).
    NegotiationFailed(String),
    /// Turning the camera on (or switching it) failed; the call goes on without video.
    CameraFailed(String),
    /// The microphone failed to open (at `connected`, or on unmute); the call goes on muted.
    MicFailed(String),
    /// The screen is being sent (the person picked what to share).
    ScreenShared,
    /// Sharing did not start: the picker was cancelled (`NotAllowedError`) or it failed.
    ScreenFailed(String),
    /// Sharing stopped from the browser's own control (or the shared window went away).
    ScreenEnded,
}

/// What the shell must do.
#[derive(Clone, Debug, PartialEq)]
pub enum Effect {
    Send(Message),
    /// Create the peer connection for a new call, without media: the SDP exchange need not
    /// wait for the camera (see the module docs). At once, before the next effect. `offer`: this
    /// side makes the offer, so the connection bundles everything on one transport from the
    /// start (`max-bundle`: a third of the ICE candidates to gather, send and add). The answering
    /// side keeps the default, which still talks to an offerer that does not bundle.
    OpenPeer {
        offer: bool,
    },
    /// getUserMedia for the camera (and the microphone with it when the browser must ask: one
    /// prompt; else [`Effect::OpenMicrophone`] brings it), give the tracks to the peer connection
    /// (they are sent from then on, no renegotiation), show the own preview; report `MediaReady`
    /// or `MediaFailed`.
    /// `ask: false`: only if the browser already has the permission (no prompt), else report
    /// `MediaSkipped`.
    StartMedia {
        ask: bool,
    },
    /// Add an audio and a video transceiver if there are none, create an offer, set it as local
    /// description, report `LocalOffer`.
    CreateOffer,
    /// Set this remote offer, send our audio and video back on its transceivers, create and set
    /// an answer, report `LocalAnswer`, then `RemoteDescriptionSet` (queued candidates wait
    /// until the answer is out).
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
    /// The call's connection is up: open the microphone unless it came with the camera, send it
    /// (silenced if a `Mic(false)` came before it opened); report `MicFailed` if the browser
    /// refuses it (a later `Mic(true)` tries again).
    OpenMicrophone,
    /// Camera off: stop the video track (light off) and send no video. On: open the front or
    /// back camera and replace the sent track (no renegotiation); report `CameraFailed` if not.
    Camera {
        on: bool,
        back: bool,
    },
    /// Share the screen (getDisplayMedia, then `replaceTrack` on the video sender, own preview
    /// shows it; report `ScreenShared`, `ScreenFailed`, and `ScreenEnded` when the browser
    /// stops it), or stop: the camera goes back on the sender if it is on.
    Screen(bool),
    /// Use these STUN/TURN servers from now on (new gathering, e.g. the next ICE restart).
    IceServers(Vec<IceServer>),
    /// Create an offer with `iceRestart`, set it, report `LocalOffer`.
    RestartIce,
    /// The network may have changed under the signaling socket too: make sure it still
    /// carries (a request the relay answers); if not, report `SocketClosed` and reconnect.
    CheckSignaling,
    /// Report `Timeout(timer, id)` after `ms` milliseconds.
    After {
        ms: u32,
        timer: Timer,
        id: u32,
    },
}

/// The deadlines of a call; see [`Effect::After`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Timer {
    /// Calling or ringing for [`RING_MS`].
    Ring,
    /// Not connected (or not reconnected) within [`CONNECT_MS`].
    Connect,
    /// Disconnected for [`ICE_GRACE_MS`], or not connected [`CHECKING_MS`] after the answer.
    Ice,
    /// No answer to our offer within [`ANSWER_MS`].
    Answer,
    /// Callee back on a new socket: no offer within [`RESUME_MS`].
    Resume,
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
    InCall {
        peer: String,
        seconds: u64,
    },
    /// In a call whose path broke; ICE is being restarted.
    Reconnecting(String),
    Ended {
        peer: String,
        reason: EndReason,
    },
}

impl State {
    pub fn new(me: &str) -> State {
        State {
            me: me.to_owned(),
            phase: Phase::Idle,
            online: Vec::new(),
            link: Link::Connecting,
            notice: None,
            turn: false,
            timers: 0,
            ring_timer: 0,
            warm: Warm::Off,
            early: Early::default(),
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
                Some(_) if s.disrupted => Status::Reconnecting(s.peer.clone()),
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

    /// True when `other` differs from `self` only in what no screen shows (queued candidates,
    /// timer ids, negotiation flags, the offer made ahead): the shell then skips re-rendering,
    /// which a burst of ICE candidates would otherwise pay for once per candidate.
    pub fn looks_like(&self, other: &State) -> bool {
        self.on_screen() == other.on_screen()
    }

    fn on_screen(&self) -> State {
        let mut s = State {
            timers: 0,
            ring_timer: 0,
            early: Early::default(),
            ..self.clone()
        };
        if let Phase::Live(x) = &mut s.phase {
            x.pending_ice = Vec::new();
            x.remote_set = false;
            x.negotiating = false;
            x.restart_pending = false;
            x.restarts = 0;
            (x.connect_timer, x.ice_timer, x.answer_timer, x.resume_timer) = (0, 0, 0, 0);
        }
        s
    }

    /// Own camera shown before the call is live: dialing, or behind the incoming-call sheet.
    pub fn previewing(&self) -> bool {
        self.warm == Warm::Ready && matches!(self.phase, Phase::Calling { .. } | Phase::Ringing { .. })
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
        // Connection closed and camera light off at once, whether the call was live or not.
        fx.push(Effect::Teardown);
        self.warm = Warm::Off;
        self.early = Early::default();
        self.phase = Phase::Ended { peer, reason };
    }

    /// No peer-to-peer path: one that never `connected` without a TURN server configured is
    /// what symmetric NATs (many mobile networks) do, and the user is told a relay is needed.
    fn no_path(&self, connected: bool) -> EndReason {
        EndReason::ConnectionFailed {
            needs_relay: !connected && !self.turn,
        }
    }

    /// Ends the call from our side, telling the peer.
    fn hang_up(&mut self, reason: EndReason, fx: &mut Vec<Effect>) {
        if let Some(peer) = self.peer() {
            let mut m = Message::to(Kind::Hangup, peer);
            // Whichever side gives up first, both say why (classic clients ignore `msg` here).
            if matches!(
                reason,
                EndReason::ConnectionFailed { .. } | EndReason::NegotiationFailed(_)
            ) {
                m = m.with_msg(HANGUP_NO_PATH);
            }
            fx.push(Effect::Send(m));
        }
        self.end(reason, fx);
    }

    fn apply(&mut self, event: Event, fx: &mut Vec<Effect>) {
        match event {
            Event::Dial(peer) => self.dial(peer.trim(), fx),
            Event::Accept => {
                if let Phase::Ringing { peer } = &self.phase {
                    let peer = peer.clone();
                    // An answer made while it rang goes inside the accept (see `go_live`).
                    if !self.early.answering {
                        fx.push(Effect::Send(accept(&peer)));
                    }
                    self.go_live(&peer, Role::Callee, fx);
                }
            }
            Event::Decline => self.decline(fx),
            Event::HangUp => match self.phase {
                Phase::Ringing { .. } => self.decline(fx),
                Phase::Calling { .. } => self.hang_up(EndReason::Cancelled, fx),
                _ => self.hang_up(EndReason::YouHungUp, fx),
            },
            Event::DismissNotice => self.notice = None,
            Event::ToggleMic
            | Event::ToggleCamera
            | Event::SwitchCamera
            | Event::CameraFailed(_)
            | Event::MicFailed(_)
            | Event::ToggleScreen
            | Event::ScreenShared
            | Event::ScreenFailed(_)
            | Event::ScreenEnded => self.media_control(event, fx),
            Event::SocketOpen => {
                self.link = Link::Online;
                // Tells the peer our media state again, and asks the relay whether it still knows
                // the call: after a relay restart the answer is `not_in_call`. A callee then says
                // it is back, unless an offer comes first (see `RESUMED`).
                if let Phase::Live(s) = &mut self.phase {
                    fx.push(Effect::Send(s.media_message()));
                    if s.role == Role::Callee {
                        s.resume_timer = arm(&mut self.timers, Timer::Resume, RESUME_MS, fx);
                    }
                }
            }
            Event::SocketClosed => {
                if !matches!(self.link, Link::Refused(_)) {
                    self.link = Link::Reconnecting;
                    fx.push(Effect::Reconnect);
                }
            }
            Event::Received(m) => self.receive(m, fx),
            Event::MediaReady => match &mut self.phase {
                Phase::Live(s) => s.media_ready = true,
                Phase::Calling { .. } | Phase::Ringing { .. } => self.warm = Warm::Ready,
                _ => {}
            },
            // The caller cannot make a video call without them: better said now than after the
            // answer. The callee's warm-up failing is not final: Accept asks again.
            Event::MediaFailed(why) => match self.phase {
                Phase::Live(_) | Phase::Calling { .. } => self.hang_up(EndReason::MediaFailed(why), fx),
                Phase::Ringing { .. } => self.warm = Warm::Off,
                _ => {}
            },
            Event::MediaSkipped => match &self.phase {
                Phase::Ringing { .. } => self.warm = Warm::Off,
                // Accepted while the permission was being looked up: ask now.
                Phase::Live(s) if !s.media_ready => fx.push(Effect::StartMedia { ask: true }),
                _ => {}
            },
            // Ringing: kept for the accept (see the module docs).
            Event::LocalAnswer(sdp) if matches!(self.phase, Phase::Ringing { .. }) => {
                self.early.answer = Some(sdp)
            }
            Event::LocalIce(c) if matches!(self.phase, Phase::Ringing { .. }) => {
                if self.early.our_ice.len() < MAX_PENDING_ICE {
                    self.early.our_ice.push(c);
                }
            }
            Event::LocalOffer(sdp) => self.send_in_call(Kind::Offer, |m| m.with_sdp(sdp), fx),
            Event::LocalAnswer(sdp) => match &mut self.phase {
                Phase::Live(s) if s.role == Role::Callee && s.negotiating => {
                    s.negotiating = false;
                    fx.push(Effect::Send(accept(&s.peer).with_sdp(sdp)));
                }
                _ => self.send_in_call(Kind::Answer, |m| m.with_sdp(sdp), fx),
            },
            Event::LocalIce(c) => self.send_in_call(Kind::Ice, |m| m.with_ice(c), fx),
            Event::RemoteDescriptionSet => {
                if let Phase::Live(s) = &mut self.phase {
                    s.remote_set = true;
                    fx.extend(s.pending_ice.drain(..).map(Effect::AddIce));
                }
            }
            Event::PeerConnected { at_ms } => {
                if let Phase::Live(s) = &mut self.phase {
                    if s.connected_at.is_none() {
                        fx.push(Effect::OpenMicrophone);
                    }
                    s.connected_at.get_or_insert(at_ms);
                    s.disrupted = false;
                }
            }
            Event::MediaFlowing => {
                if let Phase::Live(s) = &mut self.phase {
                    s.disrupted = false;
                }
            }
            Event::PeerDisconnected => self.disrupted(false, fx),
            Event::PeerFailed => self.disrupted(true, fx),
            Event::MediaStalled => {
                // Once per disruption: the readings go on stalling until the path is back.
                if matches!(&self.phase, Phase::Live(s) if s.connected_at.is_some() && !s.disrupted) {
                    self.disrupted(true, fx);
                }
            }
            Event::Timeout(timer, id) => self.timeout(timer, id, fx),
            // The call cannot work (the peer's SDP refused, say), answered or not: both sides
            // are told why at once.
            Event::NegotiationFailed(why) => self.hang_up(EndReason::NegotiationFailed(why), fx),
        }
    }

    /// Accepted: media (opened already, being opened, or asked for now), and [`CONNECT_MS`] for
    /// the connection to come up.
    fn go_live(&mut self, peer: &str, role: Role, fx: &mut Vec<Effect>) {
        let mut s = Session::new(peer, role);
        s.connect_timer = arm(&mut self.timers, Timer::Connect, CONNECT_MS, fx);
        let warm = std::mem::take(&mut self.warm);
        let early = std::mem::take(&mut self.early);
        if role == Role::Callee && matches!(self.phase, Phase::Calling { .. }) {
            // Glare turned us from caller into callee: our own offer is set on the connection
            // and would clash with theirs. A new connection; the camera stays.
            fx.push(Effect::OpenPeer { offer: false });
        }
        if warm == Warm::Off {
            fx.push(Effect::StartMedia { ask: true });
        }
        s.media_ready = warm == Warm::Ready;
        if role == Role::Caller {
            // The offer went out when dialing (or goes with `LocalOffer`).
            s.negotiating = true;
            s.answer_timer = arm(&mut self.timers, Timer::Answer, ANSWER_MS, fx);
        }
        if early.answering {
            // Answered (or being answered) while it rang: the accept carries the answer, so the
            // caller sets it before it redraws; one still being made takes the accept along
            // (`LocalAnswer`). Our candidates follow, the caller's go in with
            // `RemoteDescriptionSet`.
            s.remote_set = early.answer.is_some();
            s.negotiating = !s.remote_set;
            let (answer, ours) = (early.answer, early.our_ice);
            fx.extend(answer.map(|sdp| Effect::Send(accept(peer).with_sdp(sdp))));
            fx.extend(
                ours.into_iter()
                    .map(|c| Effect::Send(Message::to(Kind::Ice, peer).with_ice(c))),
            );
            if s.remote_set {
                fx.extend(early.their_ice.into_iter().map(Effect::AddIce));
            } else {
                s.pending_ice = early.their_ice;
            }
            self.phase = Phase::Live(s);
            return;
        }
        s.pending_ice = early.their_ice;
        self.phase = Phase::Live(s);
    }

    /// The caller's candidates that came while ringing, kept for the accept.
    fn early_ice(&mut self, ice: impl IntoIterator<Item = IceCandidate>) {
        let room = MAX_PENDING_ICE.saturating_sub(self.early.their_ice.len());
        self.early.their_ice.extend(ice.into_iter().take(room));
    }

    /// The peer-to-peer path went `disconnected` (`failed`: true). Before the call ever
    /// connected a failure is final; afterwards the call has [`CONNECT_MS`] to come back, and
    /// the caller restarts ICE (at once when failed, after [`ICE_GRACE_MS`] when disconnected).
    fn disrupted(&mut self, failed: bool, fx: &mut Vec<Effect>) {
        let Phase::Live(s) = &mut self.phase else { return };
        if s.connected_at.is_none() {
            if failed {
                self.hang_up(self.no_path(false), fx);
            }
            return;
        }
        if !s.disrupted {
            s.disrupted = true;
            s.connect_timer = arm(&mut self.timers, Timer::Connect, CONNECT_MS, fx);
            fx.push(Effect::CheckSignaling);
        }
        if failed {
            if !s.negotiating {
                self.restart(fx);
            }
        } else {
            s.ice_timer = arm(&mut self.timers, Timer::Ice, ICE_GRACE_MS, fx);
        }
    }

    /// Caller: a new offer with fresh ICE credentials, after asking the relay for fresh ICE
    /// servers (TURN credentials expire); the relay's `config` answer releases it.
    fn restart(&mut self, fx: &mut Vec<Effect>) {
        let Phase::Live(s) = &mut self.phase else { return };
        if s.role != Role::Caller || !s.media_ready {
            return;
        }
        if s.restarts >= MAX_RESTARTS {
            return self.hang_up(EndReason::ConnectionFailed { needs_relay: false }, fx);
        }
        s.restarts += 1;
        s.negotiating = true;
        s.restart_pending = true;
        // Candidates of the new ICE generation must wait for the new answer.
        s.remote_set = false;
        s.answer_timer = arm(&mut self.timers, Timer::Answer, ANSWER_MS, fx);
        fx.push(Effect::Send(Message::config_request()));
    }

    /// Caller: the offer out (or its answer) was lost: a new one.
    fn offer_again(&mut self, fx: &mut Vec<Effect>) {
        if let Phase::Live(s) = &mut self.phase {
            s.negotiating = false;
        }
        self.restart(fx);
    }

    fn timeout(&mut self, timer: Timer, id: u32, fx: &mut Vec<Effect>) {
        match (&mut self.phase, timer) {
            (Phase::Calling { .. }, Timer::Ring) if id == self.ring_timer => {
                let reason = EndReason::Unavailable {
                    code: Some(Code::NoAnswer),
                    text: String::new(),
                };
                self.hang_up(reason, fx);
            }
            (Phase::Ringing { .. }, Timer::Ring) if id == self.ring_timer => self.end(EndReason::Missed, fx),
            (Phase::Live(s), Timer::Connect)
                if id == s.connect_timer && (s.connected_at.is_none() || s.disrupted) =>
            {
                let connected = s.connected_at.is_some();
                self.hang_up(self.no_path(connected), fx);
            }
            (Phase::Live(s), Timer::Ice)
                if id == s.ice_timer && (s.disrupted || s.connected_at.is_none()) && !s.negotiating =>
            {
                self.restart(fx)
            }
            (Phase::Live(s), Timer::Resume) if id == s.resume_timer => {
                fx.push(Effect::Send(s.media_message().with_msg(RESUMED)));
            }
            (Phase::Live(s), Timer::Answer) if id == s.answer_timer => {
                if !s.negotiating {
                    return;
                }
                if s.restart_pending {
                    // No fresh servers came: restart with the ones we have.
                    s.restart_pending = false;
                    s.answer_timer = arm(&mut self.timers, Timer::Answer, ANSWER_MS, fx);
                    fx.push(Effect::RestartIce);
                } else {
                    // The offer or its answer was lost.
                    self.offer_again(fx);
                }
            }
            _ => {}
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
        // The camera first: it takes longest to open (the shell asks for it at once).
        fx.extend([
            Effect::Send(Message::to(Kind::CallStart, peer)),
            Effect::StartMedia { ask: true },
            Effect::OpenPeer { offer: true },
            Effect::CreateOffer,
        ]);
        self.warm = Warm::Opening;
        self.ring_timer = arm(&mut self.timers, Timer::Ring, RING_MS, fx);
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

    /// To the peer of the live call, or of the call we are making: the caller's offer and
    /// candidates go out while it rings.
    fn send_in_call(&self, kind: Kind, fill: impl FnOnce(Message) -> Message, fx: &mut Vec<Effect>) {
        if let Phase::Live(Session { peer, .. }) | Phase::Calling { peer } = &self.phase {
            fx.push(Effect::Send(fill(Message::to(kind, peer))));
        }
    }

    /// Ringing, and `from` is who rings us.
    fn ringing_from(&self, from: &str) -> bool {
        matches!(&self.phase, Phase::Ringing { peer } if peer == from)
    }

    /// The live session with `from`, if that is who we are in a call with.
    fn session_with(&mut self, from: &str) -> Option<&mut Session> {
        match &mut self.phase {
            Phase::Live(s) if s.peer == from => Some(s),
            _ => None,
        }
    }

    fn receive(&mut self, mut m: Message, fx: &mut Vec<Effect>) {
        if m.kind == Kind::Config && m.is_from_system() {
            let servers = m.ice_servers.unwrap_or_default();
            self.turn = servers.iter().any(IceServer::is_turn);
            fx.push(Effect::IceServers(servers));
            if let Phase::Live(s) = &mut self.phase {
                if std::mem::take(&mut s.restart_pending) {
                    fx.push(Effect::RestartIce);
                }
            }
            return;
        }
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
            return self.system_notice(m, fx);
        }
        let Some(from) = m.from_user.clone() else { return };
        if m.kind == Kind::CallBack {
            self.call_back(&from, m.msg.take().unwrap_or_default(), fx);
            if m.sdp.is_none() {
                return;
            }
            // The callee's answer came inside its accept: taken as if it had come next.
            m.kind = Kind::Answer;
        }
        match m.kind {
            Kind::CallStart => self.incoming(&from, fx),
            Kind::Offer if self.ringing_from(&from) => {
                if let (None, Some(sdp)) = (&self.early.offer, m.sdp) {
                    let (sdp, ice) = split_candidates(&sdp);
                    self.early_ice(ice);
                    self.early.answering = true;
                    fx.push(Effect::AnswerOffer(sdp.clone()));
                    self.early.offer = Some(sdp);
                }
            }
            Kind::Ice if self.ringing_from(&from) => self.early_ice(m.ice_candidate),
            Kind::Offer => {
                if let (Some(s), Some(sdp)) = (self.session_with(&from), m.sdp) {
                    if s.role == Role::Callee {
                        // The offer (or a new one, an ICE restart): its candidates wait for it.
                        s.remote_set = false;
                        s.resume_timer = 0; // answered: nothing was lost
                        fx.push(Effect::AnswerOffer(sdp));
                    }
                }
            }
            Kind::Answer => {
                // (Not `session_with`: the timer below needs `self.timers` too.)
                if let (Phase::Live(s), Some(sdp)) = (&mut self.phase, m.sdp) {
                    if s.peer == from && s.role == Role::Caller && s.negotiating && !s.restart_pending {
                        s.negotiating = false;
                        fx.push(Effect::AcceptAnswer(sdp));
                        if s.connected_at.is_none() || s.disrupted {
                            s.ice_timer = arm(&mut self.timers, Timer::Ice, CHECKING_MS, fx);
                        }
                    }
                }
            }
            Kind::Ice => {
                if let (Some(s), Some(c)) = (self.session_with(&from), m.ice_candidate) {
                    if s.remote_set {
                        fx.push(Effect::AddIce(c));
                    } else if s.pending_ice.len() < MAX_PENDING_ICE {
                        s.pending_ice.push(c);
                    }
                }
            }
            Kind::Hangup => {
                if self.peer() == Some(from.as_str()) {
                    let reason = match (&self.phase, m.code) {
                        (Phase::Ringing { .. }, _) => EndReason::Missed,
                        (_, Some(Code::PeerDisconnected)) => EndReason::PeerDisconnected,
                        (Phase::Live(s), _) if m.msg.as_deref() == Some(HANGUP_NO_PATH) => {
                            self.no_path(s.connected_at.is_some())
                        }
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
                        screen: m.screen.unwrap_or(s.remote.screen),
                    };
                    // The callee is back on a new socket with no offer to answer: ours died
                    // with its old one.
                    let lost = s.role == Role::Caller && s.negotiating && !s.restart_pending;
                    if lost && m.msg.as_deref() == Some(RESUMED) {
                        self.offer_again(fx);
                    }
                }
            }
            Kind::CallBack | Kind::Presence | Kind::Config => {}
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
            Event::MicFailed(why) => {
                s.local.audio = false;
                self.notice = Some(Notice::MicFailed(why));
            }
            // The state says "sharing" only once the browser sends the screen.
            Event::ToggleScreen if !s.local.screen => fx.push(Effect::Screen(true)),
            Event::ToggleScreen | Event::ScreenEnded if s.local.screen => {
                s.local.screen = false;
                fx.push(Effect::Screen(false));
            }
            Event::ScreenShared => s.local.screen = true,
            // Cancelling the browser's picker is a choice, not a failure.
            Event::ScreenFailed(why) if !why.starts_with("NotAllowedError") => {
                self.notice = Some(Notice::ScreenFailed(why));
            }
            _ => {}
        }
        let Phase::Live(s) = &self.phase else { return };
        if s.local != before {
            fx.push(Effect::Send(s.media_message()));
        }
    }

    fn incoming(&mut self, from: &str, fx: &mut Vec<Effect>) {
        match &self.phase {
            Phase::Idle | Phase::Ended { .. } => {
                fx.extend([
                    Effect::StartMedia { ask: false },
                    Effect::OpenPeer { offer: false },
                ]);
                self.warm = Warm::Opening;
                self.ring_timer = arm(&mut self.timers, Timer::Ring, RING_MS, fx);
                self.phase = Phase::Ringing {
                    peer: from.to_owned(),
                };
            }
            // Glare: both called each other. Exactly one call must result, decided the same way
            // on both sides: the name that sorts first stays caller; the other accepts.
            Phase::Calling { peer } if peer == from => {
                if self.me.as_str() > from {
                    fx.push(Effect::Send(accept(from)));
                    self.go_live(from, Role::Callee, fx);
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
            ACCEPT if calling_them => self.go_live(from, Role::Caller, fx),
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

    fn system_notice(&mut self, m: Message, fx: &mut Vec<Effect>) {
        let text = m.msg.unwrap_or_default();
        match m.code {
            Some(code @ (Code::NameTaken | Code::Replaced)) => self.link = Link::Refused(code),
            // In a call, the relay no longer links us with the peer (it restarted, or the peer's
            // hang-up crossed our message): nothing more can be signaled, so the call is over.
            Some(Code::NotInCall) if matches!(self.phase, Phase::Live(_)) => {
                self.end(EndReason::CallLost, fx)
            }
            // Outside a call this arrives after races (both sides hanging up at once) and means
            // nothing to the user.
            Some(Code::NotInCall) => {}
            Some(code @ (Code::Offline | Code::Busy | Code::NotOnline | Code::NoAnswer))
                if matches!(self.phase, Phase::Calling { .. }) =>
            {
                self.end(
                    EndReason::Unavailable {
                        code: Some(code),
                        text,
                    },
                    fx,
                );
            }
            code => self.notice = Some(Notice::Server { code, text }),
        }
    }
}

/// The bitrate (kbit/s) our video starts at, instead of the browser's 300: the first picture's
/// key frame is paced out at the start rate, so it arrives sooner and sharper (docs/perf.md);
/// the browser's estimate takes over from there.
pub const START_KBPS: u32 = 1000;

/// The peer's description with `x-google-start-bitrate` on each of its video codecs: Chromium
/// and Safari read our sending side's start rate from the description they apply. Codecs
/// that carry one already keep theirs; other browsers ignore the parameter.
pub fn with_start_bitrate(sdp: &str) -> String {
    const VIDEO: [&str; 5] = ["VP8", "VP9", "H264", "H265", "AV1"];
    fn video_pt(line: &str) -> Option<&str> {
        let (pt, codec) = line.strip_prefix("a=rtpmap:")?.split_once(' ')?;
        VIDEO.contains(&codec.split('/').next()?).then_some(pt)
    }
    fn fmtp_pt(line: &str) -> Option<&str> {
        Some(line.strip_prefix("a=fmtp:")?.split_once(' ')?.0)
    }
    // Read once: the video payload types, and which of all carry an fmtp line already.
    let video: Vec<&str> = sdp.lines().filter_map(video_pt).collect();
    let with_fmtp: Vec<&str> = sdp.lines().filter_map(fmtp_pt).collect();
    let param = format!("x-google-start-bitrate={START_KBPS}");
    let mut out = String::with_capacity(sdp.len() + 256);
    for line in sdp.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        let eol = &line[content.len()..];
        out.push_str(content);
        let fmtp_of_video = fmtp_pt(content).is_some_and(|pt| video.contains(&pt));
        if fmtp_of_video && !content.contains("x-google-start-bitrate") {
            out.push(';');
            out.push_str(&param);
        }
        out.push_str(eol);
        if let Some(pt) = video_pt(content).filter(|pt| !with_fmtp.contains(pt)) {
            out.push_str(&format!("a=fmtp:{pt} {param}\r\n"));
        }
    }
    out
}

/// Whether the calls we place offer a codec the browser has (`mime` as `getCapabilities` names
/// it, `fmtp` its `sdpFmtpLine`): Opus and G.711 for sound, VP8 and H.264 constrained baseline
/// for pictures (the codecs every WebRTC endpoint must have, RFC 7874 and 7742) with their
/// retransmissions. Chromium offers 20 by default: applying that offer and its answer took
/// ~22 ms of each call's setup, ~7 ms with these, and the offer is half the size (2.9 KB instead
/// of 5.5) on a phone's slow uplink (docs/perf.md). An offer from someone else is answered with
/// whatever of it the browser has.
pub fn offered_codec(mime: &str, fmtp: &str) -> bool {
    let has = |param: &str| fmtp.split(';').any(|p| p.trim().eq_ignore_ascii_case(param));
    let (kind, name) = mime.split_once('/').unwrap_or_default();
    match (kind, name.to_ascii_uppercase().as_str()) {
        ("audio", "OPUS" | "PCMU" | "PCMA") | ("video", "VP8" | "RTX") => true,
        ("video", "H264") => {
            has("packetization-mode=1") && (has("profile-level-id=42e01f") || has("profile-level-id=42001f"))
        }
        _ => false,
    }
}

/// Takes the `a=candidate` lines out of an SDP, as trickled candidates of their m-section (`mid`
/// and index): an offer that comes while ringing is set without them, so the callee's ICE
/// agent has no one to send checks to before the accept (see the module docs). Also drops
/// `a=end-of-candidates`, which would stop the candidates added later.
pub fn split_candidates(sdp: &str) -> (String, Vec<IceCandidate>) {
    let mut kept = String::with_capacity(sdp.len());
    let mut found: Vec<(usize, String)> = Vec::new();
    let mut mids: Vec<Option<String>> = Vec::new();
    for line in sdp.split_inclusive('\n') {
        let content = line.trim_end_matches(['\r', '\n']);
        if content.starts_with("m=") {
            mids.push(None);
        } else if let (Some(mid), Some(last)) = (content.strip_prefix("a=mid:"), mids.last_mut()) {
            *last = Some(mid.to_owned());
        }
        if let Some(candidate) = content.strip_prefix("a=") {
            if candidate.starts_with("candidate:") {
                // Before the first m-section a candidate belongs to nothing: dropped.
                if let Some(index) = mids.len().checked_sub(1) {
                    found.push((index, candidate.to_owned()));
                }
                continue;
            }
            if candidate == "end-of-candidates" {
                continue;
            }
        }
        kept.push_str(line);
    }
    let ice = found
        .into_iter()
        .map(|(index, candidate)| IceCandidate {
            candidate,
            sdp_mid: mids[index].clone(),
            sdp_m_line_index: u16::try_from(index).ok(),
            username_fragment: None,
        })
        .collect();
    (kept, ice)
}

/// Hands out the next timer id and starts that timer.
/// The `call_back` that accepts `peer`'s call.
fn accept(peer: &str) -> Message {
    Message::to(Kind::CallBack, peer).with_msg(ACCEPT)
}

fn arm(timers: &mut u32, timer: Timer, ms: u32, fx: &mut Vec<Effect>) -> u32 {
    *timers = timers.wrapping_add(1);
    fx.push(Effect::After {
        ms,
        timer,
        id: *timers,
    });
    *timers
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::SYSTEM_NAME;

    #[test]
    fn calls_offer_the_codecs_every_endpoint_has_and_no_others() {
        let h264 = "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=42e01f";
        for (mime, fmtp) in [
            ("audio/opus", "minptime=10;useinbandfec=1"),
            ("audio/PCMU", ""),
            ("audio/PCMA", ""),
            ("video/VP8", ""),
            ("video/rtx", ""),
            ("video/H264", h264),
            ("video/H264", "packetization-mode=1;profile-level-id=42001f"),
        ] {
            assert!(offered_codec(mime, fmtp), "{mime} {fmtp}");
        }
        for (mime, fmtp) in [
            ("audio/red", ""),
            ("audio/G722", ""),
            ("audio/CN", ""),
            ("audio/telephone-event", ""),
            ("video/VP9", "profile-id=0"),
            ("video/AV1", "level-idx=5;profile=0;tier=0"),
            ("video/red", ""),
            ("video/ulpfec", ""),
            (
                "video/H264",
                "level-asymmetry-allowed=1;packetization-mode=0;profile-level-id=42e01f",
            ),
            (
                "video/H264",
                "level-asymmetry-allowed=1;packetization-mode=1;profile-level-id=4d001f",
            ),
            ("audio/VP8", ""),
            ("opus", ""),
        ] {
            assert!(!offered_codec(mime, fmtp), "{mime} {fmtp}");
        }
    }

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
                Effect::Send(m) => Some((m.kind, m.to_user.clone().unwrap_or_default(), m.msg.clone())),
                _ => None,
            })
            .collect()
    }

    /// The effects without the timers (most tests are not about deadlines).
    fn untimed(fx: &[Effect]) -> Vec<Effect> {
        fx.iter()
            .filter(|e| !matches!(e, Effect::After { .. }))
            .cloned()
            .collect()
    }

    /// Runs events in order, returning the final state and all effects.
    /// The SDP a sent `call_back` carries.
    fn answer_inside(fx: &[Effect]) -> Option<&str> {
        fx.iter().find_map(|e| match e {
            Effect::Send(m) if m.kind == Kind::CallBack => m.sdp.as_deref(),
            _ => None,
        })
    }

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
        assert_eq!(fx[1], Effect::Send(Message::media("bob", false, true, false)));
        let (s, fx) = s.step(Event::ToggleCamera);
        assert_eq!(
            fx[0],
            Effect::Camera {
                on: false,
                back: false
            }
        );
        assert_eq!(fx[1], Effect::Send(Message::media("bob", false, false, false)));
        let (s, fx) = s.step(Event::ToggleMic);
        assert_eq!(
            fx,
            [
                Effect::Mic(true),
                Effect::Send(Message::media("bob", true, false, false))
            ]
        );
        // Switching cameras turns the camera on, the other one.
        let (s, fx) = s.step(Event::SwitchCamera);
        assert_eq!(fx[0], Effect::Camera { on: true, back: true });
        assert_eq!(fx[1], Effect::Send(Message::media("bob", true, true, false)));
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
        assert_eq!(fx, [Effect::Send(Message::media("bob", true, false, false))]);
        assert!(!session(&s).local.video);
        assert_eq!(
            s.notice,
            Some(Notice::CameraFailed("NotReadableError: busy".into()))
        );
        assert!(matches!(s.status(2000.0), Status::InCall { .. }));
    }

    #[test]
    fn a_microphone_that_fails_to_open_leaves_the_call_up_muted() {
        let (s, fx) = caller_in_call().step(Event::MicFailed("NotReadableError: busy".into()));
        assert_eq!(fx, [Effect::Send(Message::media("bob", false, true, false))]);
        assert!(!session(&s).local.audio);
        assert_eq!(s.notice, Some(Notice::MicFailed("NotReadableError: busy".into())));
        assert!(matches!(s.status(2000.0), Status::InCall { .. }));
        // Unmuting tries again.
        let (_, fx) = s.step(Event::ToggleMic);
        assert_eq!(fx[0], Effect::Mic(true));
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
                video: true,
                screen: false
            }
        );
        // From someone else: ignored.
        let (s, _) = s.step(Event::Received(Message {
            from_user: Some("mallory".into()),
            ..Message::media("alice", false, false, false)
        }));
        assert_eq!(
            session(&s).remote,
            Av {
                audio: false,
                video: true,
                screen: false
            }
        );
    }

    #[test]
    fn screen_sharing_starts_when_the_browser_sends_it_and_stops_either_way() {
        let s = caller_in_call();
        let (s, fx) = s.step(Event::ToggleScreen);
        assert_eq!(fx, [Effect::Screen(true)]);
        assert!(!session(&s).local.screen, "not sharing until the picker says so");
        let (s, fx) = s.step(Event::ScreenShared);
        assert!(session(&s).local.screen);
        assert_eq!(fx, [Effect::Send(Message::media("bob", true, true, true))]);
        // Stopped from the page.
        let (s, fx) = s.step(Event::ToggleScreen);
        assert_eq!(
            fx,
            [
                Effect::Screen(false),
                Effect::Send(Message::media("bob", true, true, false))
            ]
        );
        // Stopped from the browser's own bar.
        let (s, _) = run(s, [Event::ToggleScreen, Event::ScreenShared]);
        let (s, fx) = s.step(Event::ScreenEnded);
        assert_eq!(fx[0], Effect::Screen(false));
        assert!(!session(&s).local.screen);
        // A late "ended" changes nothing.
        assert_eq!(s.clone().step(Event::ScreenEnded).1, []);
        // The picker cancelled: no notice; another failure: a notice.
        let (s, fx) = s.step(Event::ScreenFailed("NotAllowedError: Permission denied".into()));
        assert_eq!((fx, &s.notice), (vec![], &None));
        let (s, _) = s.step(Event::ScreenFailed("NotReadableError: busy".into()));
        assert_eq!(
            s.notice,
            Some(Notice::ScreenFailed("NotReadableError: busy".into()))
        );
        // A reconnected socket tells the peer again, screen included.
        let (s, _) = run(s, [Event::ToggleScreen, Event::ScreenShared]);
        let (_, fx) = s.step(Event::SocketOpen);
        assert!(fx.contains(&Effect::Send(Message::media("bob", true, true, true))));
    }

    #[test]
    fn the_peers_screen_flag_comes_from_its_media_message() {
        let s = caller_in_call();
        let mut sharing = msg(Kind::Media, "bob");
        sharing.screen = Some(true);
        let (s, _) = s.step(Event::Received(sharing));
        assert!(session(&s).remote.screen);
        assert!(session(&s).remote.video, "other flags unchanged");
    }

    #[test]
    fn video_codecs_get_a_start_bitrate_and_nothing_else_changes() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
                   a=fmtp:111 minptime=10;useinbandfec=1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\n\
                   a=rtpmap:96 VP8/90000\r\na=rtcp-fb:96 nack\r\na=rtpmap:97 rtx/90000\r\n\
                   a=fmtp:97 apt=96\r\na=rtpmap:98 VP9/90000\r\na=fmtp:98 profile-id=0\r\n";
        assert_eq!(
            with_start_bitrate(sdp),
            "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\na=rtpmap:111 opus/48000/2\r\n\
             a=fmtp:111 minptime=10;useinbandfec=1\r\nm=video 9 UDP/TLS/RTP/SAVPF 96 97 98\r\n\
             a=rtpmap:96 VP8/90000\r\na=fmtp:96 x-google-start-bitrate=1000\r\na=rtcp-fb:96 nack\r\n\
             a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:98 VP9/90000\r\n\
             a=fmtp:98 profile-id=0;x-google-start-bitrate=1000\r\n"
        );
        let once = with_start_bitrate(sdp);
        assert_eq!(
            with_start_bitrate(&once),
            once,
            "a start rate already there stays"
        );
    }

    #[test]
    fn an_answer_inside_the_accept_is_set_at_once() {
        let (s, _) = State::new("alice").step(Event::Dial("bob".into()));
        let (s, fx) = s.step(Event::Received(
            msg(Kind::CallBack, "bob").with_msg(ACCEPT).with_sdp("a".into()),
        ));
        assert_eq!(s.status(0.0), Status::Connecting("bob".into()));
        assert!(untimed(&fx).contains(&Effect::AcceptAnswer("a".into())), "{fx:?}");
        assert!(!session(&s).negotiating);
        // A decline with SDP (nonsense) is still a decline.
        let (s, _) = State::new("alice").step(Event::Dial("bob".into()));
        let (s, fx) = s.step(Event::Received(
            msg(Kind::CallBack, "bob").with_msg(DECLINE).with_sdp("a".into()),
        ));
        assert!(matches!(s.phase, Phase::Ended { .. }));
        assert!(!fx.iter().any(|e| matches!(e, Effect::AcceptAnswer(_))));
    }

    #[test]
    fn caller_happy_path_answered_before_the_camera_opens() {
        let s = State::new("alice");
        let (s, fx) = s.step(Event::Dial(" bob ".into()));
        assert_eq!(
            untimed(&fx)[1..],
            [
                Effect::StartMedia { ask: true },
                Effect::OpenPeer { offer: true },
                Effect::CreateOffer,
            ],
            "the camera (the slowest to open), then the connection and its offer"
        );
        assert_eq!(sent(&fx), [(Kind::CallStart, "bob".into(), None)]);
        assert_eq!(s.status(0.0), Status::Calling("bob".into()));
        assert!(!s.previewing());

        // Answered before the camera is open and the offer made: neither waits for the other.
        let (s, fx) = s.step(Event::Received(msg(Kind::CallBack, "bob").with_msg(ACCEPT)));
        assert!(untimed(&fx).is_empty(), "{fx:?}");
        assert_eq!(s.status(0.0), Status::Connecting("bob".into()));
        assert!(!session(&s).media_ready);
        let (s, fx) = s.step(Event::MediaReady);
        assert!(fx.is_empty());
        assert!(session(&s).media_ready);
        let (s, fx) = s.step(Event::LocalOffer("o".into()));
        assert!(
            matches!(&fx[..], [Effect::Send(m)] if m.kind == Kind::Offer && m.sdp.as_deref() == Some("o"))
        );
        let (s, fx) = s.step(Event::LocalIce(ice(1)));
        assert!(
            matches!(&fx[..], [Effect::Send(m)] if m.kind == Kind::Ice && m.ice_candidate == Some(ice(1)))
        );

        let (s, fx) = s.step(Event::Received(msg(Kind::Answer, "bob").with_sdp("a".into())));
        assert_eq!(untimed(&fx), [Effect::AcceptAnswer("a".into())]);
        let (s, fx) = s.step(Event::PeerConnected { at_ms: 5_000.0 });
        // The microphone once the connection is up (see the module docs).
        assert_eq!(fx, [Effect::OpenMicrophone]);
        assert_eq!(
            s.status(65_500.0),
            Status::InCall {
                peer: "bob".into(),
                seconds: 60
            }
        );
    }

    #[test]
    fn the_microphone_opens_once_per_call_when_it_connects() {
        let (s, _) = run(
            State::new("alice"),
            [
                Event::Dial("bob".into()),
                Event::MediaReady,
                Event::Received(msg(Kind::CallBack, "bob").with_msg(ACCEPT)),
            ],
        );
        let (s, fx) = s.step(Event::ToggleMic);
        assert_eq!(fx.first(), Some(&Effect::Mic(false)));
        // Silenced by the shell, which was told `Mic(false)` before it opened.
        let (s, fx) = s.step(Event::PeerConnected { at_ms: 1.0 });
        assert_eq!(fx, [Effect::OpenMicrophone]);
        // Back after a disruption (or an ICE restart): it is open already.
        let (s, _) = s.step(Event::PeerDisconnected);
        let (_, fx) = s.step(Event::PeerConnected { at_ms: 2.0 });
        assert!(!fx.iter().any(|e| matches!(e, Effect::OpenMicrophone)), "{fx:?}");
    }

    #[test]
    fn callee_of_a_classic_caller_answers_without_waiting_for_the_camera() {
        let (s, fx) = State::new("bob").step(recv(Kind::CallStart, "alice"));
        assert_eq!(
            untimed(&fx),
            [
                Effect::StartMedia { ask: false },
                Effect::OpenPeer { offer: false }
            ]
        );
        assert_eq!(s.status(0.0), Status::Ringing("alice".into()));
        // No permission yet: nothing opened until the person answers.
        let (s, fx) = s.step(Event::MediaSkipped);
        assert!(fx.is_empty());

        let (s, fx) = s.step(Event::Accept);
        assert_eq!(sent(&fx), [(Kind::CallBack, "alice".into(), Some("1".into()))]);
        assert!(fx.contains(&Effect::StartMedia { ask: true }));

        // The offer (a classic caller's, after the accept) is answered at once; the camera's
        // tracks join the connection when it opens.
        let (s, fx) = s.step(Event::Received(msg(Kind::Offer, "alice").with_sdp("o".into())));
        assert_eq!(fx, [Effect::AnswerOffer("o".into())]);
        let (s, fx) = s.step(Event::MediaReady);
        assert!(fx.is_empty());
        assert!(session(&s).media_ready);
        let (_, fx) = s.step(Event::LocalAnswer("a".into()));
        assert!(
            matches!(&fx[..], [Effect::Send(m)] if m.kind == Kind::Answer && m.to_user.as_deref() == Some("alice"))
        );
    }

    #[test]
    fn warmed_caller_sends_its_offer_while_it_rings() {
        let (s, _) = run(
            State::new("alice"),
            [Event::Dial("bob".into()), Event::MediaReady],
        );
        assert!(s.previewing(), "own preview while it rings");
        assert_eq!(s.tone(), Tone::Ringback);
        // Made and sent while it rings: the relay passes it on or holds it until the accept.
        let (s, fx) = run(
            s,
            [
                Event::LocalOffer("o".into()),
                Event::LocalIce(ice(1)),
                Event::LocalIce(ice(2)),
            ],
        );
        assert_eq!(
            sent(&fx),
            [
                (Kind::Offer, "bob".into(), None),
                (Kind::Ice, "bob".into(), None),
                (Kind::Ice, "bob".into(), None)
            ]
        );
        let (s, fx) = s.step(Event::Received(msg(Kind::CallBack, "bob").with_msg(ACCEPT)));
        assert!(sent(&fx).is_empty(), "nothing sent twice: {fx:?}");
        assert!(!fx.contains(&Effect::CreateOffer));
        assert!(session(&s).media_ready && session(&s).negotiating);
        assert!(!s.previewing());
        // The answer is taken as for any offer.
        let (_, fx) = s.step(Event::Received(msg(Kind::Answer, "bob").with_sdp("a".into())));
        assert_eq!(untimed(&fx), [Effect::AcceptAnswer("a".into())]);
    }

    /// An offer whose SDP carries a candidate of its second m-section.
    const OFFER_WITH_CANDIDATE: &str = "v=0\r\nm=audio 9 UDP\r\na=mid:0\r\nm=video 9 UDP\r\na=mid:1\r\n\
        a=candidate:1 1 udp 1 192.0.2.1 5000 typ host\r\na=end-of-candidates\r\n";

    #[test]
    fn callee_answers_while_it_rings_and_sends_nothing_before_the_accept() {
        let (s, fx) = run(
            State::new("bob"),
            [recv(Kind::CallStart, "alice"), Event::MediaReady],
        );
        assert_eq!(
            untimed(&fx),
            [
                Effect::StartMedia { ask: false },
                Effect::OpenPeer { offer: false }
            ]
        );
        let offer = msg(Kind::Offer, "alice").with_sdp(OFFER_WITH_CANDIDATE.into());
        let (s, fx) = s.step(Event::Received(offer));
        let stripped = split_candidates(OFFER_WITH_CANDIDATE).0;
        assert!(!stripped.contains("candidate"), "{stripped}");
        assert_eq!(fx, [Effect::AnswerOffer(stripped)]);
        let (s, fx) = run(
            s,
            [
                Event::Received(msg(Kind::Ice, "alice").with_ice(ice(7))),
                Event::LocalAnswer("a".into()),
                Event::RemoteDescriptionSet,
                Event::LocalIce(ice(1)),
            ],
        );
        assert!(fx.is_empty(), "nothing leaves before the accept: {fx:?}");
        assert_eq!(s.status(0.0), Status::Ringing("alice".into()));
        assert!(s.looks_like(
            &run(
                State::new("bob"),
                [recv(Kind::CallStart, "alice"), Event::MediaReady]
            )
            .0
        ));

        let (s, fx) = s.step(Event::Accept);
        assert_eq!(
            sent(&fx),
            [
                (Kind::CallBack, "alice".into(), Some(ACCEPT.into())),
                (Kind::Ice, "alice".into(), None)
            ]
        );
        assert_eq!(answer_inside(&fx), Some("a"), "the accept carries the answer");
        let added: Vec<&IceCandidate> = fx
            .iter()
            .filter_map(|e| match e {
                Effect::AddIce(c) => Some(c),
                _ => None,
            })
            .collect();
        assert_eq!(
            added.len(),
            2,
            "the one from the SDP and the trickled one: {fx:?}"
        );
        assert_eq!(added[0].sdp_mid.as_deref(), Some("1"));
        assert_eq!(added[1], &ice(7));
        assert!(!fx
            .iter()
            .any(|e| matches!(e, Effect::StartMedia { .. } | Effect::AnswerOffer(_))));
        assert!(session(&s).media_ready && session(&s).remote_set);
        assert_eq!(s.early, Early::default());
    }

    #[test]
    fn accepted_while_the_answer_is_being_made_it_goes_out_when_ready() {
        let (s, _) = run(
            State::new("bob"),
            [
                recv(Kind::CallStart, "alice"),
                Event::MediaReady,
                Event::Received(msg(Kind::Offer, "alice").with_sdp("o".into())),
                Event::Received(msg(Kind::Ice, "alice").with_ice(ice(7))),
            ],
        );
        let (s, fx) = s.step(Event::Accept);
        assert_eq!(sent(&fx), [], "the accept waits for the answer to go inside it");
        assert_eq!(s.status(0.0), Status::Connecting("alice".into()));
        assert!(!fx
            .iter()
            .any(|e| matches!(e, Effect::AddIce(_) | Effect::AnswerOffer(_))));
        let (s, fx) = s.step(Event::LocalAnswer("a".into()));
        assert_eq!(sent(&fx), [(Kind::CallBack, "alice".into(), Some(ACCEPT.into()))]);
        assert_eq!(answer_inside(&fx), Some("a"));
        let (s, fx) = s.step(Event::RemoteDescriptionSet);
        assert_eq!(fx, [Effect::AddIce(ice(7))]);
        // An ICE restart's answer later is an answer.
        let (_, fx) = s.step(Event::LocalAnswer("b".into()));
        assert_eq!(sent(&fx), [(Kind::Answer, "alice".into(), None)]);
    }

    #[test]
    fn an_offer_is_answered_while_ringing_before_the_camera_opens_or_without_it() {
        // No camera permission yet: nothing is opened, but the answer is made.
        let (s, fx) = run(
            State::new("bob"),
            [
                recv(Kind::CallStart, "alice"),
                Event::MediaSkipped,
                Event::Received(msg(Kind::Offer, "alice").with_sdp("o".into())),
                Event::Received(msg(Kind::Ice, "alice").with_ice(ice(7))),
                Event::LocalAnswer("a".into()),
            ],
        );
        assert_eq!(
            untimed(&fx),
            [
                Effect::StartMedia { ask: false },
                Effect::OpenPeer { offer: false },
                Effect::AnswerOffer("o".into())
            ]
        );
        // Accept asks for the camera and sends the answer at once, without waiting for it.
        let (s, fx) = s.step(Event::Accept);
        assert!(fx.contains(&Effect::StartMedia { ask: true }));
        assert_eq!(sent(&fx), [(Kind::CallBack, "alice".into(), Some(ACCEPT.into()))]);
        assert_eq!(answer_inside(&fx), Some("a"));
        assert!(fx.contains(&Effect::AddIce(ice(7))));
        assert!(!session(&s).media_ready);
        let (s, _) = s.step(Event::MediaReady);
        assert!(session(&s).media_ready);
    }

    #[test]
    fn a_call_answered_ahead_and_declined_releases_everything_and_sends_only_the_decline() {
        let ringing = run(
            State::new("bob"),
            [
                recv(Kind::CallStart, "alice"),
                Event::MediaReady,
                Event::Received(msg(Kind::Offer, "alice").with_sdp("o".into())),
                Event::LocalAnswer("a".into()),
                Event::LocalIce(ice(1)),
            ],
        )
        .0;
        for end in [Event::Decline, recv(Kind::Hangup, "alice")] {
            let (s, fx) = ringing.clone().step(end);
            assert!(fx.contains(&Effect::Teardown));
            assert!(sent(&fx)
                .iter()
                .all(|(k, _, m)| *k == Kind::CallBack && m.as_deref() == Some(DECLINE)));
            assert_eq!(s.early, Early::default());
        }
        // Messages of someone else, or a second offer, change nothing.
        let (s, fx) = ringing
            .clone()
            .step(Event::Received(msg(Kind::Offer, "carol").with_sdp("x".into())));
        assert!(fx.is_empty());
        assert_eq!(s, ringing);
        let (s, fx) = ringing
            .clone()
            .step(Event::Received(msg(Kind::Offer, "alice").with_sdp("x".into())));
        assert!(fx.is_empty());
        assert_eq!(s.early.offer.as_deref(), Some("o"));
    }

    #[test]
    fn an_offer_refused_while_ringing_ends_the_call_for_both_with_the_reason() {
        let (s, fx) = run(
            State::new("bob"),
            [
                recv(Kind::CallStart, "alice"),
                Event::MediaReady,
                Event::Received(msg(Kind::Offer, "alice").with_sdp("bad".into())),
                Event::NegotiationFailed("InvalidAccessError: no".into()),
            ],
        );
        assert!(fx.contains(&Effect::Teardown), "camera off again: {fx:?}");
        assert!(fx.iter().any(
            |e| matches!(e, Effect::Send(m) if m.kind == Kind::Hangup && m.msg.as_deref() == Some(HANGUP_NO_PATH))
        ));
        assert!(matches!(
            s.status(0.0),
            Status::Ended {
                reason: EndReason::NegotiationFailed(_),
                ..
            }
        ));
    }

    #[test]
    fn candidates_are_taken_out_of_an_sdp_with_their_section() {
        let (kept, ice) = split_candidates(OFFER_WITH_CANDIDATE);
        assert_eq!(
            kept,
            "v=0\r\nm=audio 9 UDP\r\na=mid:0\r\nm=video 9 UDP\r\na=mid:1\r\n"
        );
        assert_eq!(
            ice,
            [IceCandidate {
                candidate: "candidate:1 1 udp 1 192.0.2.1 5000 typ host".into(),
                sdp_mid: Some("1".into()),
                sdp_m_line_index: Some(1),
                username_fragment: None,
            }]
        );
        // Plain \n line ends, no mid, a candidate before any section (dropped).
        let (kept, ice) = split_candidates("v=0\na=candidate:0 x\nm=audio\na=candidate:2 y\n");
        assert_eq!(kept, "v=0\nm=audio\n");
        assert_eq!(ice.len(), 1);
        assert_eq!(
            (ice[0].sdp_mid.as_deref(), ice[0].sdp_m_line_index),
            (None, Some(0))
        );
        // Nothing to take: the same text.
        assert_eq!(split_candidates("v=0\r\nm=audio\r\n").0, "v=0\r\nm=audio\r\n");
    }

    #[test]
    fn negotiation_traffic_changes_nothing_on_screen_but_the_call_phase_does() {
        let callee = run(State::new("bob"), [recv(Kind::CallStart, "alice"), Event::Accept]).0;
        let (s, _) = callee
            .clone()
            .step(Event::Received(msg(Kind::Ice, "alice").with_ice(ice(1))));
        assert_ne!(s, callee);
        assert!(s.looks_like(&callee), "a queued candidate is invisible");
        let (s2, _) = s.clone().step(Event::MediaReady);
        assert!(!s2.looks_like(&s), "media ready shows the controls");
        let (s3, _) = s2.clone().step(Event::PeerConnected { at_ms: 1.0 });
        assert!(!s3.looks_like(&s2));
        let caller = run(
            State::new("alice"),
            [Event::Dial("bob".into()), Event::MediaReady],
        )
        .0;
        let (s, _) = caller.clone().step(Event::LocalOffer("o".into()));
        assert!(s.looks_like(&caller));
    }

    #[test]
    fn an_accept_that_overtakes_the_offer_being_made_sends_it_when_made() {
        let (s, fx) = run(
            State::new("alice"),
            [Event::Dial("bob".into()), Event::MediaReady],
        );
        assert!(fx.contains(&Effect::CreateOffer));
        let (s, fx) = s.step(Event::Received(msg(Kind::CallBack, "bob").with_msg(ACCEPT)));
        assert!(
            sent(&fx).is_empty() && !fx.contains(&Effect::CreateOffer),
            "{fx:?}"
        );
        assert!(session(&s).negotiating);
        let (_, fx) = s.step(Event::LocalOffer("o".into()));
        assert_eq!(sent(&fx), [(Kind::Offer, "bob".into(), None)]);
    }

    #[test]
    fn glare_gives_the_new_callee_a_new_connection_and_keeps_its_camera() {
        let (s, fx) = run(
            State::new("bob"),
            [
                Event::Dial("alice".into()),
                Event::MediaReady,
                recv(Kind::CallStart, "alice"),
            ],
        );
        assert!(matches!(&s.phase, Phase::Live(x) if x.role == Role::Callee && x.media_ready));
        let tail = &fx[fx
            .iter()
            .rposition(|e| *e == Effect::OpenPeer { offer: false })
            .expect("a new connection")..];
        assert!(
            !tail
                .iter()
                .any(|e| matches!(e, Effect::Teardown | Effect::StartMedia { .. })),
            "{fx:?}"
        );
        let (_, fx) = s.step(Event::Received(msg(Kind::Offer, "alice").with_sdp("o".into())));
        assert_eq!(fx, [Effect::AnswerOffer("o".into())]);
    }

    #[test]
    fn warmed_callee_answers_the_offer_at_once() {
        let (s, _) = run(
            State::new("bob"),
            [recv(Kind::CallStart, "alice"), Event::MediaReady],
        );
        assert!(s.previewing(), "own preview behind the incoming sheet");
        let (s, fx) = s.step(Event::Accept);
        assert!(!fx.iter().any(|e| matches!(e, Effect::StartMedia { .. })));
        let (_, fx) = s.step(Event::Received(msg(Kind::Offer, "alice").with_sdp("o".into())));
        assert_eq!(fx, [Effect::AnswerOffer("o".into())]);
    }

    #[test]
    fn a_warm_up_still_looking_up_the_permission_at_accept_asks_when_it_finds_none() {
        let (s, fx) = run(
            State::new("bob"),
            [recv(Kind::CallStart, "alice"), Event::Accept, Event::MediaSkipped],
        );
        assert_eq!(
            fx.iter()
                .filter(|e| matches!(e, Effect::StartMedia { .. }))
                .count(),
            2
        );
        assert_eq!(fx.last(), Some(&Effect::StartMedia { ask: true }));
        assert!(!session(&s).media_ready);
    }

    #[test]
    fn a_failed_warm_up_ends_the_callers_attempt_but_not_the_callees() {
        let (s, fx) = run(
            State::new("alice"),
            [
                Event::Dial("bob".into()),
                Event::MediaFailed("NotAllowedError".into()),
            ],
        );
        assert_eq!(sent(&fx).last(), Some(&(Kind::Hangup, "bob".into(), None)));
        assert!(matches!(
            s.phase,
            Phase::Ended {
                reason: EndReason::MediaFailed(_),
                ..
            }
        ));
        assert_eq!(fx.last(), Some(&Effect::Teardown));

        let (s, _) = run(
            State::new("bob"),
            [
                recv(Kind::CallStart, "alice"),
                Event::MediaFailed("NotReadableError".into()),
            ],
        );
        assert_eq!(s.status(0.0), Status::Ringing("alice".into()));
        let (_, fx) = s.step(Event::Accept);
        assert!(
            fx.contains(&Effect::StartMedia { ask: true }),
            "Accept tries again"
        );
    }

    #[test]
    fn every_end_before_the_answer_releases_warmed_media() {
        let calling = || {
            run(
                State::new("alice"),
                [Event::Dial("bob".into()), Event::MediaReady],
            )
            .0
        };
        let ringing = || {
            run(
                State::new("bob"),
                [recv(Kind::CallStart, "alice"), Event::MediaReady],
            )
            .0
        };
        let ring_out = |s: State| {
            let id = s.ring_timer;
            s.step(Event::Timeout(Timer::Ring, id))
        };
        let system = |code: Code| {
            let mut m = Message::to(Kind::CallBack, "alice").with_msg("x");
            m.from_user = Some(SYSTEM_NAME.into());
            m.code = Some(code);
            Event::Received(m)
        };
        let ends = [
            calling().step(Event::HangUp),
            calling().step(recv(Kind::CallBack, "bob")), // a classic notice text ("")
            calling().step(Event::Received(msg(Kind::CallBack, "bob").with_msg(DECLINE))),
            calling().step(system(Code::Busy)),
            ring_out(calling()),
            ringing().step(Event::Decline),
            ringing().step(recv(Kind::Hangup, "alice")),
            ring_out(ringing()),
        ];
        for (i, (s, fx)) in ends.into_iter().enumerate() {
            assert!(matches!(s.phase, Phase::Ended { .. }), "case {i}: {:?}", s.phase);
            assert!(fx.contains(&Effect::Teardown), "case {i}: {fx:?}");
            assert_eq!(s.warm, Warm::Off, "case {i}");
            assert!(!s.previewing());
        }
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
            !fx.contains(&Effect::StartMedia { ask: true }),
            "declining never asks for the camera"
        );
        assert!(fx.contains(&Effect::Teardown), "the warm-up is released");
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
        assert_eq!(sent(&fx).len(), 1, "only the call_start: {fx:?}");
        assert_eq!(
            fx.last(),
            Some(&Effect::Teardown),
            "the camera opened for dialing goes off"
        );
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
        assert_eq!(
            untimed(&fx),
            [
                Effect::StartMedia { ask: false },
                Effect::OpenPeer { offer: false },
                Effect::Teardown
            ],
            "the warm-up, then its release"
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
        assert_eq!(
            fx.last(),
            Some(&Effect::Teardown),
            "the camera opened for dialing goes off"
        );
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

    /// The id of the last timer of this kind that `fx` starts.
    fn timer(fx: &[Effect], kind: Timer) -> u32 {
        fx.iter()
            .rev()
            .find_map(|e| match e {
                Effect::After { timer, id, .. } if *timer == kind => Some(*id),
                _ => None,
            })
            .unwrap_or_else(|| panic!("no {kind:?} timer in {fx:?}"))
    }

    fn config(turn: bool) -> Event {
        let url = if turn {
            "turn:198.18.0.1:3478"
        } else {
            "stun:198.18.0.1:3479"
        };
        Event::Received(Message::config(
            "alice",
            vec![IceServer {
                urls: vec![url.into()],
                ..IceServer::default()
            }],
        ))
    }

    fn ended_with(s: &State) -> &EndReason {
        match &s.phase {
            Phase::Ended { reason, .. } => reason,
            other => panic!("not ended: {other:?}"),
        }
    }

    /// The caller, accepted and with media: its offer is out, not answered.
    fn caller_negotiating() -> (State, Vec<Effect>) {
        run(
            State::new("alice"),
            [
                Event::Dial("bob".into()),
                Event::Received(msg(Kind::CallBack, "bob").with_msg(ACCEPT)),
                Event::MediaReady,
            ],
        )
    }

    #[test]
    fn a_path_that_fails_before_connecting_ends_the_call_and_says_whether_turn_is_needed() {
        let (s, fx) = caller_negotiating().0.step(Event::PeerFailed);
        assert!(fx.contains(&Effect::Teardown));
        assert_eq!(
            sent(&fx),
            [(Kind::Hangup, "bob".into(), Some(HANGUP_NO_PATH.into()))]
        );
        assert_eq!(ended_with(&s), &EndReason::ConnectionFailed { needs_relay: true });
        // With a TURN server configured the advice would be wrong: just "could not connect".
        let with_turn = run(State::new("alice"), [config(true)]).0;
        assert!(with_turn.turn);
        let (s, _) = run(
            with_turn,
            [
                Event::Dial("bob".into()),
                Event::Received(msg(Kind::CallBack, "bob").with_msg(ACCEPT)),
                Event::PeerFailed,
            ],
        );
        assert_eq!(
            ended_with(&s),
            &EndReason::ConnectionFailed { needs_relay: false }
        );
    }

    #[test]
    fn the_side_that_gives_up_first_tells_the_other_why() {
        let (s, fx) = caller_negotiating().0.step(Event::PeerFailed);
        assert_eq!(
            sent(&fx),
            [(Kind::Hangup, "bob".into(), Some(HANGUP_NO_PATH.into()))]
        );
        assert!(matches!(ended_with(&s), EndReason::ConnectionFailed { .. }));
        let (callee, _) = run(State::new("bob"), [recv(Kind::CallStart, "alice"), Event::Accept]);
        let (s, fx) = callee.step(Event::Received(
            msg(Kind::Hangup, "alice").with_msg(HANGUP_NO_PATH),
        ));
        assert!(fx.contains(&Effect::Teardown));
        assert_eq!(ended_with(&s), &EndReason::ConnectionFailed { needs_relay: true });
        // An ordinary hang-up stays one.
        let (s, _) =
            caller_in_call().step(Event::Received(msg(Kind::Hangup, "bob").with_msg(HANGUP_NO_PATH)));
        assert_eq!(
            ended_with(&s),
            &EndReason::ConnectionFailed { needs_relay: false }
        );
    }

    #[test]
    fn a_refused_session_description_ends_the_call_on_both_sides_with_the_reason() {
        let (s, fx) = caller_negotiating()
            .0
            .step(Event::NegotiationFailed("InvalidAccessError: bad SDP".into()));
        assert!(fx.contains(&Effect::Teardown));
        assert_eq!(
            sent(&fx),
            [(Kind::Hangup, "bob".into(), Some(HANGUP_NO_PATH.into()))]
        );
        assert_eq!(
            ended_with(&s),
            &EndReason::NegotiationFailed("InvalidAccessError: bad SDP".into())
        );
        // Too late to matter after the call: nothing happens.
        let (s2, fx) = s.clone().step(Event::NegotiationFailed("late".into()));
        assert!(fx.is_empty() && s2 == s);
    }

    #[test]
    fn a_call_that_never_connects_ends_at_its_deadline_on_both_sides() {
        let (caller, fx) = caller_negotiating();
        let deadline = timer(&fx, Timer::Connect);
        assert!(fx.contains(&Effect::After {
            ms: CONNECT_MS,
            timer: Timer::Connect,
            id: deadline
        }));
        let (s, fx) = caller.step(Event::Timeout(Timer::Connect, deadline));
        assert!(fx.contains(&Effect::Teardown));
        assert_eq!(ended_with(&s), &EndReason::ConnectionFailed { needs_relay: true });
        let (callee, fx) = run(State::new("bob"), [recv(Kind::CallStart, "alice"), Event::Accept]);
        let (s, _) = callee.step(Event::Timeout(Timer::Connect, timer(&fx, Timer::Connect)));
        assert_eq!(ended_with(&s), &EndReason::ConnectionFailed { needs_relay: true });
        // Once connected, the same deadline does nothing.
        let (s, fx) = caller_in_call().step(Event::Timeout(Timer::Connect, 2));
        assert!(fx.is_empty());
        assert!(s.connected_call().is_some());
    }

    #[test]
    fn a_path_disconnected_for_two_seconds_makes_the_caller_restart_ice_with_fresh_servers() {
        let (s, fx) = caller_in_call().step(Event::PeerDisconnected);
        assert_eq!(s.status(2000.0), Status::Reconnecting("bob".into()));
        assert!(sent(&fx).is_empty(), "a blip may heal by itself");
        assert!(
            fx.contains(&Effect::CheckSignaling),
            "but the socket may be dead too"
        );
        let check = timer(&fx, Timer::Ice);
        assert!(fx.contains(&Effect::After {
            ms: ICE_GRACE_MS,
            timer: Timer::Ice,
            id: check
        }));
        // Two seconds later: ask the relay for fresh ICE servers first.
        let (s, fx) = s.step(Event::Timeout(Timer::Ice, check));
        assert_eq!(sent(&fx), [(Kind::Config, String::new(), None)]);
        assert!(!fx.contains(&Effect::RestartIce));
        let (s, fx) = s.step(config(true));
        assert!(matches!(&fx[..], [Effect::IceServers(v), Effect::RestartIce] if v[0].is_turn()));
        let (s, fx) = s.step(Event::LocalOffer("restart-offer".into()));
        assert_eq!(sent(&fx), [(Kind::Offer, "bob".into(), None)]);
        // The new generation's candidates wait for the new answer.
        let (s, fx) = s.step(Event::Received(msg(Kind::Ice, "bob").with_ice(ice(9))));
        assert!(fx.is_empty());
        let (s, fx) = s.step(Event::Received(msg(Kind::Answer, "bob").with_sdp("a2".into())));
        assert_eq!(untimed(&fx), [Effect::AcceptAnswer("a2".into())]);
        let (s, fx) = s.step(Event::RemoteDescriptionSet);
        assert_eq!(fx, [Effect::AddIce(ice(9))]);
        let (s, _) = s.step(Event::PeerConnected { at_ms: 9000.0 });
        assert_eq!(
            s.status(10_000.0),
            Status::InCall {
                peer: "bob".into(),
                seconds: 9
            },
            "the same call, its timer running since the first connect"
        );
        assert_eq!(session(&s).restarts, 1);
    }

    #[test]
    fn a_path_that_heals_by_itself_needs_no_restart() {
        let (s, fx) = caller_in_call().step(Event::PeerDisconnected);
        let check = timer(&fx, Timer::Ice);
        let (s, _) = s.step(Event::PeerConnected { at_ms: 3000.0 });
        let (s, fx) = s.step(Event::Timeout(Timer::Ice, check));
        assert!(fx.is_empty());
        assert_eq!(session(&s).restarts, 0);
    }

    #[test]
    fn a_failed_path_restarts_at_once_and_two_failures_make_one_restart() {
        let (s, fx) = caller_in_call().step(Event::PeerFailed);
        assert_eq!(sent(&fx), [(Kind::Config, String::new(), None)]);
        // Glare of restarts: another failure or disconnect, or an older check, while the first
        // restart is under way starts no second one.
        let (s, fx) = run(s, [Event::PeerFailed, Event::PeerDisconnected]);
        let check = timer(&fx, Timer::Ice);
        assert!(sent(&fx).is_empty());
        let (s, fx) = s.step(Event::Timeout(Timer::Ice, check));
        assert!(fx.is_empty());
        assert_eq!(session(&s).restarts, 1);
        // The relay's configuration releases exactly one offer.
        let (_, fx) = run(s, [config(false), config(false)]);
        assert_eq!(fx.iter().filter(|e| **e == Effect::RestartIce).count(), 1);
    }

    #[test]
    fn a_media_stall_restarts_at_once_and_only_once() {
        let (s, fx) = caller_in_call().step(Event::MediaStalled);
        assert_eq!(sent(&fx), [(Kind::Config, String::new(), None)]);
        assert!(fx.contains(&Effect::CheckSignaling));
        assert_eq!(s.status(0.0), Status::Reconnecting("bob".into()));
        // The next readings stall too: nothing more until the restart has had its chance.
        let (s, fx) = s.step(Event::MediaStalled);
        assert!(fx.is_empty());
        // A restart answered while the path is still down is watched like a first one.
        let (s, _) = run(s, [config(false), Event::LocalOffer("o".into())]);
        let (s, fx) = s.step(Event::Received(msg(Kind::Answer, "bob").with_sdp("a".into())));
        assert!(fx.iter().any(|e| matches!(
            e,
            Effect::After {
                timer: Timer::Ice,
                ms: CHECKING_MS,
                ..
            }
        )));
        // Media again (the browser never said anything but `connected`): back in the call.
        let (s, _) = s.step(Event::MediaFlowing);
        assert!(matches!(s.status(0.0), Status::InCall { .. }));
        // Not in a connected call: a stall means nothing.
        assert!(caller_negotiating().0.step(Event::MediaStalled).1.is_empty());
    }

    #[test]
    fn a_callee_back_on_a_new_socket_with_nothing_to_answer_gets_a_new_offer_at_once() {
        // The restart offer went out while the callee's socket was dying with its network.
        let restarting = || {
            run(
                caller_in_call(),
                [Event::MediaStalled, config(false), Event::LocalOffer("o2".into())],
            )
            .0
        };
        let resumed = || Event::Received(msg(Kind::Media, "bob").with_msg(RESUMED));
        let (s, fx) = restarting().step(resumed());
        assert_eq!(
            sent(&fx),
            [(Kind::Config, String::new(), None)],
            "a new offer, fresh servers first"
        );
        assert_eq!(session(&s).restarts, 2);
        // While that one is being made the callee's return changes nothing; nor once answered.
        assert!(s.clone().step(resumed()).1.is_empty());
        let answered = [
            config(false),
            Event::LocalOffer("o3".into()),
            Event::Received(msg(Kind::Answer, "bob").with_sdp("a3".into())),
        ];
        assert!(run(s, answered).0.step(resumed()).1.is_empty());
        // Flags alone (a toggle) while an offer is out are only flags.
        assert!(restarting()
            .step(Event::Received(msg(Kind::Media, "bob")))
            .1
            .is_empty());
    }

    #[test]
    fn a_callee_back_on_a_new_socket_says_so_unless_an_offer_comes_first() {
        let (callee, _) = run(
            State::new("bob"),
            [
                recv(Kind::CallStart, "alice"),
                Event::Accept,
                Event::MediaReady,
                Event::Received(msg(Kind::Offer, "alice").with_sdp("o1".into())),
                Event::RemoteDescriptionSet,
                Event::PeerConnected { at_ms: 1.0 },
                Event::SocketClosed,
            ],
        );
        let (back, fx) = callee.clone().step(Event::SocketOpen);
        assert_eq!(sent(&fx), [(Kind::Media, "alice".into(), None)], "flags at once");
        let soon = timer(&fx, Timer::Resume);
        assert!(fx.contains(&Effect::After {
            ms: RESUME_MS,
            timer: Timer::Resume,
            id: soon
        }));
        // Nothing came with the greeting: "resumed".
        let (_, fx) = back.clone().step(Event::Timeout(Timer::Resume, soon));
        assert_eq!(sent(&fx), [(Kind::Media, "alice".into(), Some(RESUMED.into()))]);
        // The relay held the restart offer for it: answered, nothing to say.
        let (back, _) = back.step(Event::Received(msg(Kind::Offer, "alice").with_sdp("o2".into())));
        assert!(sent(&back.step(Event::Timeout(Timer::Resume, soon)).1).is_empty());
        // A caller back on a new socket has nothing to say beyond its flags; a callee never
        // offers, whatever its caller says.
        let (_, fx) = run(caller_in_call(), [Event::SocketClosed, Event::SocketOpen]);
        assert!(!fx.iter().any(|e| matches!(
            e,
            Effect::After {
                timer: Timer::Resume,
                ..
            }
        )));
        let back = Event::Received(msg(Kind::Media, "alice").with_msg(RESUMED));
        assert!(callee.step(back).1.is_empty());
    }

    #[test]
    fn the_callee_never_restarts_but_answers_the_callers_restart() {
        let (callee, _) = run(
            State::new("bob"),
            [
                recv(Kind::CallStart, "alice"),
                Event::Accept,
                Event::MediaReady,
                Event::Received(msg(Kind::Offer, "alice").with_sdp("o1".into())),
                Event::RemoteDescriptionSet,
                Event::PeerConnected { at_ms: 1.0 },
            ],
        );
        let (s, fx) = callee.step(Event::PeerFailed);
        assert!(sent(&fx).is_empty() && !fx.contains(&Effect::RestartIce));
        let (s, fx) = s.step(Event::Timeout(Timer::Ice, u32::MAX));
        assert!(fx.is_empty());
        let (s, fx) = s.step(Event::Received(msg(Kind::Offer, "alice").with_sdp("o2".into())));
        assert_eq!(fx, [Effect::AnswerOffer("o2".into())]);
        let (s, fx) = s.step(Event::Received(msg(Kind::Ice, "alice").with_ice(ice(3))));
        assert!(fx.is_empty(), "queued until the restart offer is applied");
        let (_, fx) = s.step(Event::RemoteDescriptionSet);
        assert_eq!(fx, [Effect::AddIce(ice(3))]);
    }

    #[test]
    fn an_unanswered_offer_is_offered_again_and_restarts_are_bounded() {
        let (mut s, fx) = caller_negotiating();
        assert!(fx.contains(&Effect::CreateOffer));
        let mut answer = timer(&fx, Timer::Answer);
        for round in 1..=MAX_RESTARTS {
            let (next, fx) = s.step(Event::Timeout(Timer::Answer, answer));
            assert_eq!(sent(&fx), [(Kind::Config, String::new(), None)], "round {round}");
            // No configuration comes back either: restart with what we have.
            let (next, fx) = next.step(Event::Timeout(Timer::Answer, timer(&fx, Timer::Answer)));
            assert!(fx.contains(&Effect::RestartIce));
            answer = timer(&fx, Timer::Answer);
            s = next;
        }
        let (s, fx) = s.step(Event::Timeout(Timer::Answer, answer));
        assert!(fx.contains(&Effect::Teardown));
        assert_eq!(
            ended_with(&s),
            &EndReason::ConnectionFailed { needs_relay: false }
        );
    }

    #[test]
    fn a_path_that_does_not_come_up_after_the_answer_is_restarted_once_by_the_caller() {
        let (s, _) = caller_negotiating();
        let (s, _) = s.step(Event::LocalOffer("o".into()));
        let (s, fx) = s.step(Event::Received(msg(Kind::Answer, "bob").with_sdp("a".into())));
        let check = timer(&fx, Timer::Ice);
        assert!(fx.contains(&Effect::After {
            ms: CHECKING_MS,
            timer: Timer::Ice,
            id: check
        }));
        // Connected in time: nothing to do.
        let (connected, _) = s.clone().step(Event::PeerConnected { at_ms: 1.0 });
        assert!(connected.step(Event::Timeout(Timer::Ice, check)).1.is_empty());
        // Not connected (candidates lost with a dying socket): gather and send them again.
        let (s, fx) = s.step(Event::Timeout(Timer::Ice, check));
        assert_eq!(sent(&fx), [(Kind::Config, String::new(), None)]);
        assert_eq!(session(&s).restarts, 1);
    }

    #[test]
    fn a_broken_call_that_does_not_come_back_ends() {
        let (s, fx) = caller_in_call().step(Event::PeerDisconnected);
        let deadline = timer(&fx, Timer::Connect);
        let (s, fx) = s.step(Event::Timeout(Timer::Connect, deadline));
        assert!(fx.contains(&Effect::Teardown));
        assert_eq!(
            ended_with(&s),
            &EndReason::ConnectionFailed { needs_relay: false }
        );
    }

    #[test]
    fn calls_ring_out_on_the_client_too() {
        let (s, fx) = State::new("alice").step(Event::Dial("bob".into()));
        let ring = timer(&fx, Timer::Ring);
        assert!(fx.contains(&Effect::After {
            ms: RING_MS,
            timer: Timer::Ring,
            id: ring
        }));
        assert!(
            s.clone().step(Event::Timeout(Timer::Ring, ring + 1)).1.is_empty(),
            "stale"
        );
        let (s, fx) = s.step(Event::Timeout(Timer::Ring, ring));
        assert_eq!(sent(&fx), [(Kind::Hangup, "bob".into(), None)]);
        assert!(matches!(
            ended_with(&s),
            EndReason::Unavailable {
                code: Some(Code::NoAnswer),
                ..
            }
        ));
        let (s, fx) = State::new("bob").step(recv(Kind::CallStart, "alice"));
        let (s, _) = s.step(Event::Timeout(Timer::Ring, timer(&fx, Timer::Ring)));
        assert_eq!(ended_with(&s), &EndReason::Missed);
    }

    #[test]
    fn candidates_before_the_remote_description_are_capped() {
        let (mut s, _) = caller_negotiating();
        for n in 0..(MAX_PENDING_ICE as u16 + 50) {
            s = s.step(Event::Received(msg(Kind::Ice, "bob").with_ice(ice(n)))).0;
        }
        assert_eq!(session(&s).pending_ice.len(), MAX_PENDING_ICE);
    }

    #[test]
    fn after_a_reconnect_the_relay_is_asked_about_the_call_and_a_lost_call_ends() {
        let (s, fx) = run(caller_in_call(), [Event::SocketClosed, Event::SocketOpen]);
        assert_eq!(sent(&fx), [(Kind::Media, "bob".into(), None)]);
        // A restarted relay knows no call.
        let n = Message::notice("alice", Code::NotInCall, "you are not in a call with bob");
        let (s, fx) = s.step(Event::Received(n));
        assert!(fx.contains(&Effect::Teardown));
        assert_eq!(ended_with(&s), &EndReason::CallLost);
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
        assert_eq!(
            fa.iter()
                .filter(|e| matches!(e, Effect::StartMedia { .. }))
                .count(),
            1
        );
        assert!(matches!(&b.phase, Phase::Live(s) if s.role == Role::Callee));
        assert!(!fb.contains(&Effect::Teardown), "bob's warm camera carries over");
        assert!(sent(&fb).contains(&(Kind::CallBack, "alice".into(), Some("1".into()))));
        // alice's offer went out while it rang; bob's accept makes her the caller of the call.
        let (a, fx) = run(a, [Event::MediaReady, Event::LocalOffer("o".into())]);
        assert_eq!(sent(&fx), [(Kind::Offer, "bob".into(), None)]);
        let (a, fx) = a.step(Event::Received(msg(Kind::CallBack, "bob").with_msg(ACCEPT)));
        assert!(sent(&fx).is_empty());
        assert!(matches!(&a.phase, Phase::Live(s) if s.role == Role::Caller && s.negotiating));
        // bob, now the callee, answers that offer on his new connection at once.
        assert!(fb.contains(&Effect::OpenPeer { offer: false }));
        let (_, fx) = b.step(Event::Received(msg(Kind::Offer, "alice").with_sdp("o".into())));
        assert_eq!(fx, [Effect::AnswerOffer("o".into())]);
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
