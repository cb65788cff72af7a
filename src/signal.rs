//! The signaling wire protocol: the only definition of it, used by the relay and the browser.
//!
//! One JSON object per WebSocket text frame, in the classic shape
//! `{type, fromUser, toUser, msg, sdp, iceCandidate}` plus two additions that classic clients
//! ignore: `code` (machine-readable reason on server notices) and `users` (presence list).
//! Absent fields are omitted when writing and unknown fields are ignored when reading.
//! An accepting `call_back` may carry the callee's answer in `sdp`, a `call_start` the
//! caller's offer; the relay passes the offer on as an `offer` of its own, and the answer so to
//! clients without `early=1` (docs/protocol.md).

use json::Json;
use serde::{Deserialize, Serialize};
use std::fmt;

pub mod frames;
mod json;

/// `fromUser` of every message the server itself originates. It contains `@`, which no user name
/// may contain, so nobody can impersonate the server.
pub const SYSTEM_NAME: &str = "@duet";

/// Longest user name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Longest connection secret (`?key=`), in bytes.
pub const MAX_KEY_BYTES: usize = 128;

/// The WebSocket subprotocol of Duet pages. They send their secret as a second offered
/// subprotocol, [`KEY_PROTOCOL`] + secret, in the `Sec-WebSocket-Protocol` header rather than in
/// the URL, which access logs and consoles show; the relay answers with this one. `?key=` stays
/// for classic clients.
pub const SUBPROTOCOL: &str = "duet";
pub const KEY_PROTOCOL: &str = "duet-key.";

/// `msg` of a `call_back` that accepts the call.
pub const ACCEPT: &str = "1";
/// `msg` of a `call_back` that declines the call.
pub const DECLINE: &str = "0";

/// `msg` of a `hangup` sent because no peer-to-peer path could be made or kept (Duet addition):
/// the other side then says so too, instead of "hung up".
pub const HANGUP_NO_PATH: &str = "connection_failed";

/// `msg` of a `media` message from a callee back on a new signaling socket during a call, with
/// no offer to answer (Duet addition): one sent meanwhile died with the old socket, so a caller
/// whose offer is still unanswered sends a new one at once.
pub const RESUMED: &str = "resumed";

/// WebSocket close code sent with a `name_taken` refusal (4000–4999 is for applications).
pub const CLOSE_NAME_TAKEN: u16 = 4409;
/// WebSocket close code sent to a connection replaced by a newer one with the same secret.
pub const CLOSE_REPLACED: u16 = 4001;

/// The `type` field.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Kind {
    #[serde(rename = "call_start")]
    CallStart,
    #[serde(rename = "call_back")]
    CallBack,
    #[serde(rename = "offer")]
    Offer,
    #[serde(rename = "answer")]
    Answer,
    #[serde(rename = "_ice")]
    Ice,
    #[serde(rename = "hangup")]
    Hangup,
    /// Server → client only: who is online.
    #[serde(rename = "presence")]
    Presence,
    /// Duet addition, between call parties: the sender's microphone/camera state.
    #[serde(rename = "media")]
    Media,
    /// Duet addition. Server → client: the ICE servers (STUN, TURN with credentials) for this
    /// name holder, after every join and on request. Client → server (no `toUser`): a request
    /// for fresh ones (TURN credentials expire).
    #[serde(rename = "config")]
    Config,
}

impl Kind {
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::CallStart => "call_start",
            Kind::CallBack => "call_back",
            Kind::Offer => "offer",
            Kind::Answer => "answer",
            Kind::Ice => "_ice",
            Kind::Hangup => "hangup",
            Kind::Presence => "presence",
            Kind::Media => "media",
            Kind::Config => "config",
        }
    }

    fn parse(s: &str) -> Option<Kind> {
        [
            Kind::CallStart,
            Kind::CallBack,
            Kind::Offer,
            Kind::Answer,
            Kind::Ice,
            Kind::Hangup,
            Kind::Presence,
            Kind::Media,
            Kind::Config,
        ]
        .into_iter()
        .find(|k| k.as_str() == s)
    }
}

/// Machine-readable reason carried in `code` on server notices (always `type: call_back`,
/// `fromUser: SYSTEM_NAME`) and on `hangup`s the server sends on someone's behalf.
/// The table in docs/protocol.md documents each one.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[serde(rename_all = "snake_case")]
pub enum Code {
    /// `call_start` to a name that is not online.
    Offline,
    /// The callee is already in or setting up a call.
    Busy,
    /// The frame was not a JSON object of the right shape (or was binary).
    BadMessage,
    /// `type` is not one of the protocol's types.
    UnknownType,
    /// A message that must name a recipient has no `toUser`.
    MissingRecipient,
    /// `toUser` is the sender itself.
    ToSelf,
    /// `toUser` is not online (for any type but `call_start`, which gets `offline`).
    NotOnline,
    /// The name is held by another connection with a different secret.
    NameTaken,
    /// This connection was replaced by a newer one with the same name and secret.
    Replaced,
    /// The other party's connection went away during the call and did not come back in time.
    PeerDisconnected,
    /// `offer`/`answer`/`_ice`/`hangup` (or an accept/decline) to someone you are not in a call
    /// with.
    NotInCall,
    /// The callee did not answer within the ring timeout.
    NoAnswer,
    /// The caller hung up before the call was answered.
    Cancelled,
    /// Too many messages too fast; more is dropped, and a persistent flood is disconnected.
    RateLimited,
    /// A message over the size limit.
    TooLarge,
    /// The server or this address has reached its connection limit.
    TooManyConnections,
    /// The server is shutting down.
    ServerShutdown,
    /// The server cannot reach its shared state (Redis, with several nodes): new sign-ins and
    /// calls wait until it is back (the connection closes with 1013, "try again later").
    Unavailable,
}

impl Code {
    pub const ALL: [Code; 18] = [
        Code::Offline,
        Code::Busy,
        Code::BadMessage,
        Code::UnknownType,
        Code::MissingRecipient,
        Code::ToSelf,
        Code::NotOnline,
        Code::NameTaken,
        Code::Replaced,
        Code::PeerDisconnected,
        Code::NotInCall,
        Code::NoAnswer,
        Code::Cancelled,
        Code::RateLimited,
        Code::TooLarge,
        Code::TooManyConnections,
        Code::ServerShutdown,
        Code::Unavailable,
    ];

    /// The code whose [`Code::as_str`] is `name`.
    pub fn named(name: &str) -> Option<Code> {
        Code::ALL.into_iter().find(|c| c.as_str() == name)
    }

    pub const fn as_str(self) -> &'static str {
        match self {
            Code::Offline => "offline",
            Code::Busy => "busy",
            Code::BadMessage => "bad_message",
            Code::UnknownType => "unknown_type",
            Code::MissingRecipient => "missing_recipient",
            Code::ToSelf => "to_self",
            Code::NotOnline => "not_online",
            Code::NameTaken => "name_taken",
            Code::Replaced => "replaced",
            Code::PeerDisconnected => "peer_disconnected",
            Code::NotInCall => "not_in_call",
            Code::NoAnswer => "no_answer",
            Code::Cancelled => "cancelled",
            Code::RateLimited => "rate_limited",
            Code::TooLarge => "too_large",
            Code::TooManyConnections => "too_many_connections",
            Code::ServerShutdown => "server_shutdown",
            Code::Unavailable => "unavailable",
        }
    }
}

impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// `RTCIceCandidateInit` as browsers serialize it.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IceCandidate {
    #[serde(default)]
    pub candidate: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_mid: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp_m_line_index: Option<u16>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username_fragment: Option<String>,
}

/// One signaling message, exactly as it travels.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Message {
    #[serde(rename = "type")]
    pub kind: Kind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub from_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to_user: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub msg: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sdp: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_candidate: Option<IceCandidate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<Code>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub users: Option<Vec<String>>,
    /// On `media`: whether the sender's microphone is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub audio: Option<bool>,
    /// On `media`: whether the sender's camera is on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub video: Option<bool>,
    /// On `media`: whether the sender shows its screen instead of its camera (Duet only:
    /// classic pages never send it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub screen: Option<bool>,
    /// On `config` from the server: `RTCConfiguration.iceServers` for this person.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ice_servers: Option<Vec<IceServer>>,
}

impl Message {
    /// A bare message of `kind` addressed to `to`.
    pub fn to(kind: Kind, to: &str) -> Message {
        Message {
            kind,
            from_user: None,
            to_user: Some(to.to_owned()),
            msg: None,
            sdp: None,
            ice_candidate: None,
            code: None,
            users: None,
            audio: None,
            video: None,
            screen: None,
            ice_servers: None,
        }
    }

    pub fn with_msg(mut self, msg: &str) -> Message {
        self.msg = Some(msg.to_owned());
        self
    }

    pub fn with_sdp(mut self, sdp: String) -> Message {
        self.sdp = Some(sdp);
        self
    }

    pub fn with_ice(mut self, candidate: IceCandidate) -> Message {
        self.ice_candidate = Some(candidate);
        self
    }

    /// A `media` message: tells the peer whether our microphone and camera are on, and whether
    /// the video we send is our screen.
    pub fn media(to: &str, audio: bool, video: bool, screen: bool) -> Message {
        let mut m = Message::to(Kind::Media, to);
        m.audio = Some(audio);
        m.video = Some(video);
        m.screen = Some(screen);
        m
    }

    /// A server notice: `call_back` from [`SYSTEM_NAME`] with a human text and a machine code.
    pub fn notice(to: &str, code: Code, text: impl Into<String>) -> Message {
        let mut m = Message::to(Kind::CallBack, to);
        m.from_user = Some(SYSTEM_NAME.to_owned());
        m.msg = Some(text.into());
        m.code = Some(code);
        m
    }

    /// A client's request for fresh ICE servers.
    pub fn config_request() -> Message {
        let mut m = Message::to(Kind::Config, "");
        m.to_user = None;
        m
    }

    /// The server's ICE servers for `to`.
    pub fn config(to: &str, servers: Vec<IceServer>) -> Message {
        let mut m = Message::to(Kind::Config, to);
        m.from_user = Some(SYSTEM_NAME.to_owned());
        m.ice_servers = Some(servers);
        m
    }

    /// The presence list sent to `to`.
    pub fn presence(to: &str, users: Vec<String>) -> Message {
        let mut m = Message::to(Kind::Presence, to);
        m.from_user = Some(SYSTEM_NAME.to_owned());
        m.users = Some(users);
        m
    }

    pub fn is_from_system(&self) -> bool {
        self.from_user.as_deref() == Some(SYSTEM_NAME)
    }

    pub fn to_json(&self) -> String {
        // Serializing plain strings, numbers and enums cannot fail.
        serde_json::to_string(self).expect("Message serializes")
    }

    /// The same bytes as [`Message::to_json`], written without serde_json: the browser's writer
    /// (serde_json is the relay's; see `signal/json.rs`). A property test holds them together.
    pub fn to_wire(&self) -> String {
        let mut out = String::with_capacity(64);
        let mut fields = Fields::new(&mut out);
        fields.str("type", Some(self.kind.as_str()));
        fields.str("fromUser", self.from_user.as_deref());
        fields.str("toUser", self.to_user.as_deref());
        fields.str("msg", self.msg.as_deref());
        fields.str("sdp", self.sdp.as_deref());
        if let Some(c) = &self.ice_candidate {
            fields.key("iceCandidate");
            let mut inner = Fields::new(fields.out);
            inner.str("candidate", Some(&c.candidate));
            inner.str("sdpMid", c.sdp_mid.as_deref());
            if let Some(i) = c.sdp_m_line_index {
                inner.key("sdpMLineIndex");
                inner.out.push_str(&i.to_string());
            }
            inner.str("usernameFragment", c.username_fragment.as_deref());
            inner.end();
        }
        fields.str("code", self.code.map(Code::as_str));
        if let Some(users) = &self.users {
            fields.key("users");
            write_strings(fields.out, users);
        }
        for (key, flag) in [
            ("audio", self.audio),
            ("video", self.video),
            ("screen", self.screen),
        ] {
            if let Some(on) = flag {
                fields.key(key);
                fields.out.push_str(if on { "true" } else { "false" });
            }
        }
        if let Some(servers) = &self.ice_servers {
            fields.key("iceServers");
            fields.out.push('[');
            for (i, server) in servers.iter().enumerate() {
                if i > 0 {
                    fields.out.push(',');
                }
                let mut inner = Fields::new(fields.out);
                inner.key("urls");
                write_strings(inner.out, &server.urls);
                inner.str("username", server.username.as_deref());
                inner.str("credential", server.credential.as_deref());
                inner.end();
            }
            fields.out.push(']');
        }
        fields.end();
        out
    }

    /// Parses a frame the relay sent (the browser's side), without serde_json. Everything it
    /// accepts, [`Message::parse`] accepts with the same result, and it accepts all the relay
    /// writes (property tests hold them together). Stricter on odd forms the relay never sends:
    /// a struct written as an array, a number like `-0`.
    pub fn from_relay(text: &str) -> Result<Message, String> {
        let mut f = object(
            json::parse(text)?,
            &[
                "type",
                "fromUser",
                "toUser",
                "msg",
                "sdp",
                "iceCandidate",
                "code",
                "users",
                "audio",
                "video",
                "screen",
                "iceServers",
            ],
        )?
        .into_iter();
        let mut next = || f.next().flatten();
        let kind = match next().ok_or("missing field `type`")? {
            Json::Str(t) => Kind::parse(&t).ok_or("unknown type")?,
            _ => return Err("\"type\" must be a string".into()),
        };
        Ok(Message {
            kind,
            from_user: optional(next(), string)?,
            to_user: optional(next(), string)?,
            msg: optional(next(), string)?,
            sdp: optional(next(), string)?,
            ice_candidate: optional(next(), ice_candidate)?,
            code: optional(next(), |v| string(v).and_then(|c| code(&c)))?,
            users: optional(next(), strings)?,
            audio: optional(next(), boolean)?,
            video: optional(next(), boolean)?,
            screen: optional(next(), boolean)?,
            ice_servers: optional(next(), |v| list(v, ice_server))?,
        })
    }

    /// Parses one frame from a client. Classifies every failure into a [`ProtocolError`], so the
    /// sender can be told precisely what was wrong.
    pub fn parse(text: &str) -> Result<Message, ProtocolError> {
        let value: serde_json::Value = serde_json::from_str(text)
            .map_err(|e| ProtocolError::new(Code::BadMessage, format!("invalid JSON: {e}")))?;
        let obj = value
            .as_object()
            .ok_or_else(|| ProtocolError::new(Code::BadMessage, "expected a JSON object"))?;
        match obj.get("type") {
            None => return Err(ProtocolError::new(Code::BadMessage, "missing \"type\"")),
            Some(serde_json::Value::String(t)) if Kind::parse(t).is_none() => {
                return Err(ProtocolError::new(
                    Code::UnknownType,
                    format!("unknown type {:?}", truncate(t, 40)),
                ))
            }
            Some(serde_json::Value::String(_)) => {}
            Some(_) => return Err(ProtocolError::new(Code::BadMessage, "\"type\" must be a string")),
        }
        serde_json::from_value(value)
            .map_err(|e| ProtocolError::new(Code::BadMessage, format!("malformed message: {e}")))
    }
}

/// Writes `{"key":value,...}` for [`Message::to_wire`], leaving out absent values.
struct Fields<'a> {
    out: &'a mut String,
    first: bool,
}

impl<'a> Fields<'a> {
    fn new(out: &'a mut String) -> Fields<'a> {
        out.push('{');
        Fields { out, first: true }
    }

    fn key(&mut self, key: &str) {
        if !std::mem::take(&mut self.first) {
            self.out.push(',');
        }
        json::write_str(self.out, key);
        self.out.push(':');
    }

    fn str(&mut self, key: &str, value: Option<&str>) {
        if let Some(v) = value {
            self.key(key);
            json::write_str(self.out, v);
        }
    }

    fn end(self) {
        self.out.push('}');
    }
}

fn write_strings(out: &mut String, items: &[String]) {
    out.push('[');
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        json::write_str(out, item);
    }
    out.push(']');
}

// Readers of field values for [`Message::from_relay`]: the types serde's derive would accept.
type Read<T> = Result<T, String>;

/// An `Option` field: absent or `null` is `None`, as serde reads it.
fn optional<T>(value: Option<Json>, read: impl FnOnce(Json) -> Read<T>) -> Read<Option<T>> {
    match value {
        None | Some(Json::Null) => Ok(None),
        Some(v) => read(v).map(Some),
    }
}

fn string(value: Json) -> Read<String> {
    match value {
        Json::Str(s) => Ok(s),
        _ => Err("expected a string".into()),
    }
}

fn boolean(value: Json) -> Read<bool> {
    match value {
        Json::Bool(b) => Ok(b),
        _ => Err("expected a boolean".into()),
    }
}

fn list<T>(value: Json, read: impl Fn(Json) -> Read<T>) -> Read<Vec<T>> {
    match value {
        Json::Arr(items) => items.into_iter().map(read).collect(),
        _ => Err("expected an array".into()),
    }
}

fn strings(value: Json) -> Read<Vec<String>> {
    list(value, string)
}

fn code(name: &str) -> Read<Code> {
    Code::named(name).ok_or_else(|| "unknown code".into())
}

/// The fields of an object by name, in the order of `known`, each at most once; unknown ones
/// ignored, as serde does.
fn object(value: Json, known: &[&str]) -> Read<Vec<Option<Json>>> {
    let Json::Obj(fields) = value else {
        return Err("expected an object".into());
    };
    let mut found: Vec<Option<Json>> = known.iter().map(|_| None).collect();
    for (key, v) in fields {
        if let Some(i) = known.iter().position(|k| *k == key) {
            if found[i].replace(v).is_some() {
                return Err(format!("duplicate field `{key}`"));
            }
        }
    }
    Ok(found)
}

fn ice_candidate(value: Json) -> Read<IceCandidate> {
    let mut f = object(
        value,
        &["candidate", "sdpMid", "sdpMLineIndex", "usernameFragment"],
    )?
    .into_iter();
    let mut next = || f.next().flatten();
    Ok(IceCandidate {
        candidate: next().map(string).transpose()?.unwrap_or_default(),
        sdp_mid: optional(next(), string)?,
        sdp_m_line_index: optional(next(), |n| match n {
            Json::Num(raw) => raw.parse::<u16>().map_err(|_| "expected a u16".into()),
            _ => Err("expected a number".into()),
        })?,
        username_fragment: optional(next(), string)?,
    })
}

fn ice_server(value: Json) -> Read<IceServer> {
    let mut f = object(value, &["urls", "username", "credential"])?.into_iter();
    let mut next = || f.next().flatten();
    Ok(IceServer {
        urls: strings(next().ok_or("missing field `urls`")?)?,
        username: optional(next(), string)?,
        credential: optional(next(), string)?,
    })
}

/// One entry of `RTCConfiguration.iceServers`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct IceServer {
    pub urls: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub username: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credential: Option<String>,
}

impl IceServer {
    /// A TURN server (the browser gets relay candidates from it).
    pub fn is_turn(&self) -> bool {
        self.urls
            .iter()
            .any(|u| u.starts_with("turn:") || u.starts_with("turns:"))
    }
}

/// The most a WebSocket close frame's reason may hold (RFC 6455: 125-byte payload, 2 of them the
/// code). Browsers fail the connection, losing the reason, when a server sends more.
pub const MAX_CLOSE_REASON_BYTES: usize = 123;

/// `reason` cut to [`MAX_CLOSE_REASON_BYTES`] on a character boundary, with "…" when cut.
pub fn close_reason(reason: &str) -> String {
    if reason.len() <= MAX_CLOSE_REASON_BYTES {
        return reason.to_owned();
    }
    let room = MAX_CLOSE_REASON_BYTES - '…'.len_utf8();
    let end = (0..=room)
        .rev()
        .find(|&i| reason.is_char_boundary(i))
        .unwrap_or(0);
    format!("{}…", &reason[..end])
}

/// `GET /config.json`: what the browser needs from the server's configuration.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default)]
#[serde(rename_all = "camelCase")]
pub struct ClientConfig {
    /// STUN/TURN servers for the peer connection; empty means host candidates only (one LAN).
    pub ice_servers: Vec<IceServer>,
}

/// Why a frame was refused; becomes a [`Message::notice`] to its sender.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProtocolError {
    pub code: Code,
    pub detail: String,
}

impl ProtocolError {
    pub fn new(code: Code, detail: impl Into<String>) -> ProtocolError {
        ProtocolError {
            code,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

impl std::error::Error for ProtocolError {}

fn truncate(s: &str, max_chars: usize) -> String {
    s.chars().take(max_chars).collect()
}

/// Why a user name is not acceptable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NameError {
    Empty,
    TooLong,
    BadChar(char),
}

impl fmt::Display for NameError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NameError::Empty => f.write_str("a name needs at least one character"),
            NameError::TooLong => write!(f, "a name has at most {MAX_NAME_CHARS} characters"),
            NameError::BadChar(c) => write!(
                f,
                "{c:?} is not allowed in a name: use letters, digits, '_', '-' or '.'"
            ),
        }
    }
}

impl std::error::Error for NameError {}

/// 1–32 Unicode letters or digits (so 张伟 works) plus `_-.`; nothing that could be confused
/// with markup, paths or the system name.
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_alphanumeric() || matches!(c, '_' | '-' | '.')))
    {
        return Err(NameError::BadChar(c));
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err(NameError::TooLong);
    }
    Ok(())
}

/// Percent-encodes a name as a URL path segment (`/webrtc/{name}`, `/u/{name}`): names may be
/// non-ASCII, e.g. 张伟.
pub fn encode_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// The inverse of [`encode_segment`]: `%XX` escapes decoded; invalid UTF-8 is replaced, so a
/// mangled URL shows as an invalid name rather than failing.
pub fn decode_segment(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = |b: u8| (b as char).to_digit(16);
        match (
            bytes[i],
            bytes.get(i + 1).copied().and_then(hex),
            bytes.get(i + 2).copied().and_then(hex),
        ) {
            (b'%', Some(hi), Some(lo)) => {
                out.push((hi * 16 + lo) as u8);
                i += 3;
            }
            (b, _, _) => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn decoding_round_trips_the_encoder_and_survives_garbage() {
        for name in ["alice", "张伟", "a_b-c.d", "x y%z"] {
            assert_eq!(decode_segment(&encode_segment(name)), name);
        }
        assert_eq!(decode_segment("%"), "%");
        assert_eq!(decode_segment("%4"), "%4");
        assert_eq!(decode_segment("%zz"), "%zz");
        assert_eq!(decode_segment("%FF"), "\u{fffd}");
    }

    #[test]
    fn encodes_non_ascii_names() {
        assert_eq!(encode_segment("bob_1.x-y"), "bob_1.x-y");
        assert_eq!(encode_segment("张伟"), "%E5%BC%A0%E4%BC%9F");
    }

    fn roundtrip(fixture: serde_json::Value) -> Message {
        let m = Message::parse(&fixture.to_string()).expect("fixture parses");
        let back: serde_json::Value = serde_json::from_str(&m.to_json()).unwrap();
        assert_eq!(back, fixture, "re-serialized form equals the classic fixture");
        m
    }

    #[test]
    fn classic_call_start_and_call_back() {
        let m = roundtrip(json!({"type":"call_start","fromUser":"alice","toUser":"bob"}));
        assert_eq!(m.kind, Kind::CallStart);
        assert_eq!(m.to_user.as_deref(), Some("bob"));
        let m = roundtrip(json!({"type":"call_back","fromUser":"bob","toUser":"alice","msg":"1"}));
        assert_eq!(m.msg.as_deref(), Some(ACCEPT));
        roundtrip(json!({"type":"call_back","fromUser":"bob","toUser":"alice","msg":"0"}));
    }

    #[test]
    fn classic_offer_answer_ice_hangup() {
        let sdp = "v=0\r\no=- 4611 2 IN IP4 127.0.0.1\r\ns=-\r\n";
        let m = roundtrip(json!({"type":"offer","fromUser":"a","toUser":"b","sdp":sdp}));
        assert_eq!(m.sdp.as_deref(), Some(sdp));
        roundtrip(json!({"type":"answer","fromUser":"b","toUser":"a","sdp":sdp}));
        let m = roundtrip(json!({"type":"_ice","fromUser":"a","toUser":"b","iceCandidate":{
            "candidate":"candidate:1 1 udp 2122260223 192.168.1.2 54321 typ host",
            "sdpMid":"0","sdpMLineIndex":0}}));
        let c = m.ice_candidate.unwrap();
        assert_eq!(c.sdp_mid.as_deref(), Some("0"));
        assert_eq!(c.sdp_m_line_index, Some(0));
        roundtrip(json!({"type":"hangup","fromUser":"a","toUser":"b"}));
    }

    #[test]
    fn server_notices_have_the_documented_shape() {
        let n = Message::notice("alice", Code::Offline, "bob is not online");
        let v: serde_json::Value = serde_json::from_str(&n.to_json()).unwrap();
        assert_eq!(
            v,
            json!({"type":"call_back","fromUser":SYSTEM_NAME,"toUser":"alice",
                   "msg":"bob is not online","code":"offline"})
        );
        let p = Message::presence("alice", vec!["alice".into(), "bob".into()]);
        let v: serde_json::Value = serde_json::from_str(&p.to_json()).unwrap();
        assert_eq!(v["type"], "presence");
        assert_eq!(v["users"], json!(["alice", "bob"]));
    }

    #[test]
    fn code_names_on_the_wire_match_as_str_and_the_docs() {
        let docs = include_str!("../docs/protocol.md");
        for code in Code::ALL {
            assert_eq!(serde_json::to_value(code).unwrap(), json!(code.as_str()));
            assert!(
                docs.contains(&format!("| `{code}` |")),
                "docs/protocol.md documents {code}"
            );
        }
    }

    #[test]
    fn config_messages() {
        assert_eq!(Message::config_request().to_json(), r#"{"type":"config"}"#);
        let turn = IceServer {
            urls: vec!["turn:198.18.0.1:3478?transport=udp".into()],
            username: Some("1700000000:bob".into()),
            credential: Some("c2VjcmV0".into()),
        };
        assert!(turn.is_turn());
        let m = roundtrip(
            json!({"type":"config","fromUser":SYSTEM_NAME,"toUser":"bob","iceServers":[
            {"urls":["stun:198.18.0.1:3479"]},
            {"urls":["turn:198.18.0.1:3478?transport=udp"],"username":"1700000000:bob","credential":"c2VjcmV0"}]}),
        );
        assert_eq!(m.ice_servers.as_ref().map(|s| s[1].clone()), Some(turn));
        assert!(!m.ice_servers.unwrap()[0].is_turn());
    }

    #[test]
    fn close_reasons_fit_a_close_frame_and_cut_on_a_character() {
        assert_eq!(close_reason("short"), "short");
        let ascii = "x".repeat(200);
        assert_eq!(close_reason(&ascii).len(), MAX_CLOSE_REASON_BYTES);
        // A 32-character Chinese name in the name_taken text: 3 bytes a character.
        let name = "张".repeat(32);
        let text = format!("the name {name} is in use by someone else right now; pick another");
        let cut = close_reason(&text);
        assert!(cut.len() <= MAX_CLOSE_REASON_BYTES, "{}", cut.len());
        assert!(cut.ends_with('…') && text.starts_with(cut.trim_end_matches('…')));
    }

    #[test]
    fn unknown_fields_are_ignored() {
        let m = Message::parse(r#"{"type":"hangup","toUser":"b","extra":[1,2],"x":null}"#).unwrap();
        assert_eq!(m.kind, Kind::Hangup);
    }

    #[test]
    fn bad_input_is_classified() {
        let code = |s: &str| Message::parse(s).unwrap_err().code;
        assert_eq!(code("not json"), Code::BadMessage);
        assert_eq!(code("[1,2]"), Code::BadMessage);
        assert_eq!(code(r#"{"toUser":"b"}"#), Code::BadMessage);
        assert_eq!(code(r#"{"type":7}"#), Code::BadMessage);
        assert_eq!(code(r#"{"type":"dance","toUser":"b"}"#), Code::UnknownType);
        assert_eq!(code(r#"{"type":"offer","toUser":"b","sdp":5}"#), Code::BadMessage);
        assert_eq!(code(r#"{"type":"_ice","iceCandidate":"x"}"#), Code::BadMessage);
    }

    #[test]
    fn error_detail_truncates_hostile_type_names() {
        let long = "x".repeat(10_000);
        let e = Message::parse(&format!(r#"{{"type":"{long}"}}"#)).unwrap_err();
        assert!(e.detail.len() < 100, "{}", e.detail.len());
    }

    #[test]
    fn names() {
        for ok in ["alice", "Bob_2", "a.b-c", "张伟", "Ölçü", "x", &"n".repeat(32)] {
            assert_eq!(validate_name(ok), Ok(()), "{ok}");
        }
        assert_eq!(validate_name(""), Err(NameError::Empty));
        assert_eq!(validate_name(&"n".repeat(33)), Err(NameError::TooLong));
        assert_eq!(validate_name(&"张".repeat(32)), Ok(()));
        for (bad, c) in [
            ("a b", ' '),
            ("a/b", '/'),
            ("<b>", '<'),
            ("@duet", '@'),
            ("a%20", '%'),
        ] {
            assert_eq!(validate_name(bad), Err(NameError::BadChar(c)), "{bad}");
        }
        assert!(validate_name(SYSTEM_NAME).is_err());
    }
}

/// Parsing never panics: arbitrary text and arbitrary JSON yield a message or a typed error.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    fn json_value() -> impl Strategy<Value = serde_json::Value> {
        let leaf = prop_oneof![
            Just(serde_json::Value::Null),
            any::<bool>().prop_map(serde_json::Value::from),
            any::<i64>().prop_map(serde_json::Value::from),
            any::<f64>()
                .prop_filter("finite", |f| f.is_finite())
                .prop_map(serde_json::Value::from),
            prop_oneof![
                Just("call_start".to_string()),
                Just("_ice".to_string()),
                Just("1".to_string()),
                ".{0,12}"
            ]
            .prop_map(serde_json::Value::from),
        ];
        leaf.prop_recursive(4, 48, 6, |inner| {
            let keys = prop_oneof![
                Just("type".to_string()),
                Just("toUser".to_string()),
                Just("fromUser".to_string()),
                Just("sdp".to_string()),
                Just("iceCandidate".to_string()),
                Just("sdpMLineIndex".to_string()),
                Just("users".to_string()),
                Just("code".to_string()),
                Just("screen".to_string()),
                "[a-z]{1,6}"
            ];
            prop_oneof![
                proptest::collection::vec(inner.clone(), 0..4).prop_map(serde_json::Value::from),
                proptest::collection::btree_map(keys, inner, 0..6)
                    .prop_map(|m| serde_json::Value::Object(m.into_iter().collect())),
            ]
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let text = String::from_utf8_lossy(&bytes);
            if let Err(e) = Message::parse(&text) {
                prop_assert!(!e.detail.is_empty());
            }
        }

        #[test]
        fn arbitrary_json_yields_a_message_or_a_typed_error(v in json_value()) {
            match Message::parse(&v.to_string()) {
                Ok(m) => prop_assert_eq!(Message::parse(&m.to_json()), Ok(m)),
                Err(e) => prop_assert!(matches!(e.code, Code::BadMessage | Code::UnknownType)),
            }
        }

        /// One protocol, two readers and two writers: what the browser's reader accepts, the
        /// relay's accepts with the same result; everything the relay writes, the browser reads
        /// back; and the browser writes the very bytes the relay would.
        #[test]
        fn the_browsers_parser_agrees_with_the_relays(v in json_value()) {
            let text = v.to_string();
            if let Ok(m) = Message::from_relay(&text) {
                prop_assert_eq!(Message::parse(&text), Ok(m));
            }
            if let Ok(m) = Message::parse(&text) {
                prop_assert_eq!(m.to_wire(), m.to_json());
                prop_assert_eq!(Message::from_relay(&m.to_json()), Ok(m));
            }
        }

        #[test]
        fn the_browsers_reader_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
            let _ = Message::from_relay(&String::from_utf8_lossy(&bytes));
        }

        /// Any text in any field (quotes, backslashes, control characters, emoji) makes the trip.
        #[test]
        fn any_text_makes_the_round_trip(
            text in any::<String>(),
            users in proptest::collection::vec(any::<String>(), 0..3),
            index in any::<u16>(),
        ) {
            let mut m = Message::to(Kind::Ice, &text).with_msg(&text).with_ice(IceCandidate {
                candidate: text.clone(),
                sdp_mid: Some(text.clone()),
                sdp_m_line_index: Some(index),
                username_fragment: None,
            });
            m.users = Some(users);
            m.audio = Some(true);
            m.screen = Some(false);
            m.ice_servers = Some(vec![IceServer { urls: vec![text.clone()], username: None, credential: Some(text) }]);
            prop_assert_eq!(m.to_wire(), m.to_json());
            prop_assert_eq!(Message::from_relay(&m.to_json()), Ok(m));
        }
    }
}
