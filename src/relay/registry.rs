//! The relay's socket-free core: who is online, who is calling whom, and what to deliver.
//!
//! Every method takes plain values (including the time, in milliseconds of a monotonic clock) and
//! returns [`Action`]s ("send this to connection 7", "close connection 3"); the WebSocket shell in
//! `ws.rs` carries them out and calls [`Registry::tick`] once a second. So every rule here is
//! unit-tested without a network or a clock.
//!
//! Invariants (checked by `assert_invariants` in tests):
//! - each connected name maps to exactly one connection and that connection back to the name;
//!   a name that dropped during a call stays reserved ("away") until its grace period ends;
//! - `calls` is symmetric: `a`'s link names `b` iff `b`'s names `a`, with the same ring deadline,
//!   and both are known users;
//! - every forwarded message carries the sender's real name in `fromUser`;
//! - when everyone has left and every deadline has passed, nothing remains.

use crate::signal::{
    validate_name, Code, Kind, Message, ProtocolError, ACCEPT, CLOSE_NAME_TAKEN, CLOSE_REPLACED, DECLINE,
};
use std::collections::{BTreeMap, HashMap};

/// Identifies one WebSocket connection for the lifetime of the process.
pub type ConnId = u64;

/// A decision for the shell to carry out, in order.
// `Send` is the common variant and lives only until the shell has queued it: boxing its message
// would add an allocation per relayed message to save a few bytes in a short Vec.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send(ConnId, Message),
    /// Close the connection after what was queued for it, with a WebSocket close code and reason.
    Close(ConnId, u16, String),
    /// Send this connection, which holds this name, its ICE servers (a `config` message). The
    /// shell makes them: TURN credentials depend on the wall clock and the host the browser used.
    Config(ConnId, String),
}

/// Messages kept for a party who is away mid-call (reconnecting), delivered in order when they
/// are back; beyond this many the rest is dropped (the caller's answer watchdog re-offers).
pub const HELD_MAX: usize = 64;

/// How long things may take, in milliseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// An unanswered call is given up after this long (`no_answer`).
    pub ring_timeout_ms: u64,
    /// A party whose connection drops mid-call may reconnect within this long without the call
    /// being ended for the other side.
    pub grace_ms: u64,
}

impl Default for Timing {
    fn default() -> Timing {
        Timing {
            ring_timeout_ms: 30_000,
            grace_ms: 10_000,
        }
    }
}

#[derive(Debug)]
struct User {
    /// `None` while away: dropped during a call, within the grace period.
    conn: Option<ConnId>,
    secret: Option<String>,
    away_until: u64,
    /// Messages from the call partner that arrived while away.
    held: Vec<Message>,
    /// The client takes an offer while its phone rings (`?early=1`, the Duet page): it sets it
    /// up ahead and answers only after its accept. Other clients get the caller's offer,
    /// candidates and media flags after their accept, in the classic order.
    early: bool,
}

/// One side of a pending or active call.
#[derive(Clone, Debug, PartialEq, Eq)]
struct CallLink {
    peer: String,
    caller: bool,
    /// `Some(deadline)` while ringing, `None` once accepted.
    ringing_until: Option<u64>,
    /// Caller's side: what the caller sent while it rang that the callee takes only after its
    /// accept (see [`User::early`]); delivered, in order, on the accept.
    ahead: Vec<Message>,
}

/// Default for [`Registry::with_presence_max`].
pub const PRESENCE_MAX: usize = 100;

#[derive(Debug)]
pub struct Registry {
    timing: Timing,
    presence_max: usize,
    /// Sorted, so presence lists come out in a stable order.
    users: BTreeMap<String, User>,
    conns: HashMap<ConnId, String>,
    calls: HashMap<String, CallLink>,
}

/// Counts for `/metrics`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub connected: usize,
    pub away: usize,
    pub calls_ringing: usize,
    pub calls_active: usize,
}

impl Default for Registry {
    fn default() -> Registry {
        Registry::new(Timing::default())
    }
}

impl Registry {
    pub fn new(timing: Timing) -> Registry {
        Registry {
            timing,
            presence_max: PRESENCE_MAX,
            users: BTreeMap::new(),
            conns: HashMap::new(),
            calls: HashMap::new(),
        }
    }

    /// Presence lists carry at most `n` names, and joins/leaves are announced to everyone only
    /// while at most `n` people are online: past that, telling everyone of every join would cost
    /// O(n²) frames of O(n) size. A newcomer always gets the (truncated) list.
    pub fn with_presence_max(mut self, n: usize) -> Registry {
        self.presence_max = n;
        self
    }

    pub fn stats(&self) -> Stats {
        let (ringing, active) = self
            .calls
            .values()
            .fold((0, 0), |(r, a), l| match l.ringing_until {
                Some(_) => (r + 1, a),
                None => (r, a + 1),
            });
        Stats {
            connected: self.conns.len(),
            away: self.users.len() - self.conns.len(),
            // Each call has two links.
            calls_ringing: ringing / 2,
            calls_active: active / 2,
        }
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.conns.is_empty() && self.calls.is_empty()
    }

    pub fn partner_of(&self, name: &str) -> Option<&str> {
        self.calls.get(name).map(|l| l.peer.as_str())
    }

    /// A new connection `conn` wants `name`. The same secret takes over an existing session
    /// (reload, network change, reconnect within the grace period); anything else is refused
    /// while the owner is online or away. `early`: see [`User::early`].
    pub fn join(&mut self, conn: ConnId, name: &str, secret: Option<&str>, early: bool) -> Vec<Action> {
        // The HTTP layer refuses bad names before upgrading; this keeps the core safe on its own.
        if let Err(e) = validate_name(name) {
            return vec![
                Action::Send(conn, Message::notice(name, Code::BadMessage, e.to_string())),
                Action::Close(conn, 1008, e.to_string()),
            ];
        }
        let mut actions = Vec::new();
        if let Some(existing) = self.users.get(name) {
            let same_owner = secret.is_some() && existing.secret.as_deref() == secret;
            if !same_owner {
                return name_taken(conn, name).into();
            }
            if let Some(old) = existing.conn {
                self.conns.remove(&old);
                // (A takeover of a connected session: nothing is held for it.)
                actions.extend(replaced(old, name));
            }
        }
        let held = self
            .users
            .get_mut(name)
            .map(|u| std::mem::take(&mut u.held))
            .unwrap_or_default();
        self.users.insert(
            name.to_owned(),
            User {
                conn: Some(conn),
                secret: secret.map(str::to_owned),
                away_until: 0,
                held: Vec::new(),
                early,
            },
        );
        self.conns.insert(conn, name.to_owned());
        self.announce_presence(Some(conn), &mut actions);
        actions.push(Action::Config(conn, name.to_owned()));
        // Back within the grace period: what the partner sent meanwhile, in order.
        actions.extend(held.into_iter().map(|m| Action::Send(conn, m)));
        actions
    }

    /// Connection `conn` is gone. If it still owned its name: outside a call the name goes offline
    /// at once; in a call it stays reserved for the grace period, and the call with it.
    pub fn leave(&mut self, conn: ConnId, now: u64) -> Vec<Action> {
        let Some(name) = self.conns.remove(&conn) else {
            return Vec::new(); // refused or replaced earlier: owns nothing
        };
        let mut actions = Vec::new();
        if self.calls.contains_key(&name) && self.timing.grace_ms > 0 {
            if let Some(user) = self.users.get_mut(&name) {
                user.conn = None;
                user.away_until = now + self.timing.grace_ms;
            }
        } else {
            self.users.remove(&name);
            actions.extend(self.hang_up_for(&name, Code::PeerDisconnected));
        }
        self.announce_presence(None, &mut actions);
        actions
    }

    /// Time passed: give up unanswered calls, end the calls of parties who did not come back.
    pub fn tick(&mut self, now: u64) -> Vec<Action> {
        let mut actions = Vec::new();
        let unanswered: Vec<(String, String)> = self
            .calls
            .iter()
            .filter(|(_, l)| l.caller && l.ringing_until.is_some_and(|t| t <= now))
            .map(|(caller, l)| (caller.clone(), l.peer.clone()))
            .collect();
        for (caller, callee) in unanswered {
            if let Some(c) = self.conn_of(&caller) {
                actions.push(no_answer(c, &caller, &callee));
            }
            actions.extend(self.hang_up_for(&caller, Code::NoAnswer));
        }
        let gone: Vec<String> = self
            .users
            .iter()
            .filter(|(_, u)| u.conn.is_none() && u.away_until <= now)
            .map(|(name, _)| name.clone())
            .collect();
        for name in gone {
            self.users.remove(&name);
            actions.extend(self.hang_up_for(&name, Code::PeerDisconnected));
        }
        actions
    }

    /// A text frame from `conn`: parse, check, stamp the sender, decide who gets what.
    pub fn handle(&mut self, conn: ConnId, text: &str, now: u64) -> Vec<Action> {
        let Some(from) = self.conns.get(&conn).cloned() else {
            return Vec::new();
        };
        let routed = Message::parse(text).and_then(|m| match m.kind {
            // Not addressed to anyone: fresh ICE servers for the sender.
            Kind::Config => Ok(vec![Action::Config(conn, from.clone())]),
            _ => self.route(&from, m, now),
        });
        match routed {
            Ok(actions) => actions,
            Err(e) => self.refuse(conn, e),
        }
    }

    /// Tells `conn` why its frame was dropped.
    pub fn refuse(&self, conn: ConnId, e: ProtocolError) -> Vec<Action> {
        let to = self.conns.get(&conn).map(String::as_str).unwrap_or("");
        vec![Action::Send(conn, Message::notice(to, e.code, e.detail))]
    }

    fn route(&mut self, from: &str, m: Message, now: u64) -> Result<Vec<Action>, ProtocolError> {
        let (to, mut m) = stamp(from, m)?;
        let link = self.calls.get(from).filter(|l| l.peer == to).cloned();
        let mut actions = Vec::new();
        match (m.kind, &link) {
            (Kind::CallStart, _) => {
                if !self.users.contains_key(&to) {
                    return Err(refusal(Code::Offline, &to, m.kind));
                }
                if self.partner_of(&to).is_some_and(|p| p != from) {
                    return Err(refusal(Code::Busy, &to, m.kind));
                }
                // Away (reconnecting) and in no call: not reachable. Refused before anything
                // changes: the caller's current call must not end for a call that cannot ring.
                if self.conn_of(&to).is_none() && link.is_none() {
                    return Err(refusal(Code::Offline, &to, m.kind));
                }
                if link.is_none() {
                    // Calling someone new abandons whatever call the caller had going.
                    actions.extend(self.hang_up_for(from, Code::Cancelled));
                    self.link(from, &to, now + self.timing.ring_timeout_ms);
                }
                // else: glare (both called each other) or a repeat; the clients settle glare.
                // An offer riding along goes as an `offer` of its own, next (held for a client
                // that takes none while it rings): no client needs to know this shape.
                if let Some(sdp) = m.sdp.take() {
                    actions.extend(self.deliver(&to, m, link.is_some())?);
                    actions.extend(self.route(from, stamped(Kind::Offer, from, &to, sdp), now)?);
                    return Ok(actions);
                }
            }
            (Kind::CallBack, Some(l)) if m.msg.as_deref() == Some(ACCEPT) && l.ringing_until.is_some() => {
                let mut ahead = Vec::new();
                for (a, b) in [(from, to.as_str()), (to.as_str(), from)] {
                    if let Some(l) = self.calls.get_mut(a).filter(|l| l.peer == b) {
                        l.ringing_until = None;
                        ahead.append(&mut l.ahead);
                    }
                }
                // What the caller sent while it rang, now that the callee has accepted.
                for held in ahead {
                    let callee = held.to_user.clone().unwrap_or_default();
                    actions.extend(self.deliver(&callee, held, true).ok().flatten());
                }
                // The callee's answer may ride along (a Duet page); a caller that does not take
                // it so gets it as an `answer` of its own, next.
                if !self.users.get(&to).is_some_and(|u| u.early) {
                    if let Some(sdp) = m.sdp.take() {
                        actions.extend(self.deliver(&to, m, true)?);
                        actions.extend(self.deliver(&to, stamped(Kind::Answer, from, &to, sdp), true)?);
                        return Ok(actions);
                    }
                }
            }
            (Kind::CallBack, Some(_)) if m.msg.as_deref() == Some(DECLINE) => {
                self.end_call(from);
            }
            (Kind::CallBack, _) if matches!(m.msg.as_deref(), Some(ACCEPT | DECLINE)) => {
                return Err(refusal(Code::NotInCall, &to, m.kind));
            }
            // Other call_back text is a notice (e.g. "busy") and may go to anyone.
            (Kind::CallBack, _) => {}
            (Kind::Hangup, Some(l)) => {
                if l.caller && l.ringing_until.is_some() {
                    m.code = Some(Code::Cancelled);
                }
                self.end_call(from);
            }
            (Kind::Offer | Kind::Ice | Kind::Media, Some(l))
                if l.caller && l.ringing_until.is_some() && !self.users.get(&to).is_some_and(|u| u.early) =>
            {
                // Ahead of the accept, to a client that wants the classic order: held.
                if let Some(l) = self.calls.get_mut(from) {
                    if l.ahead.len() < HELD_MAX {
                        l.ahead.push(m);
                    }
                }
                return Ok(actions);
            }
            (Kind::Offer | Kind::Answer | Kind::Ice | Kind::Media, Some(_)) => {}
            (Kind::Offer | Kind::Answer | Kind::Ice | Kind::Media | Kind::Hangup, None) => {
                return Err(refusal(Code::NotInCall, &to, m.kind))
            }
            (Kind::Presence | Kind::Config, _) => unreachable!("refused above"),
        }
        actions.extend(self.deliver(&to, m, link.is_some())?);
        Ok(actions)
    }

    /// Sends `m` to `to`; if `to` is away (reconnecting) and `linked` (in a call with the
    /// sender), keeps it for when they are back.
    fn deliver(&mut self, to: &str, m: Message, linked: bool) -> Result<Option<Action>, ProtocolError> {
        match self.users.get_mut(to) {
            Some(User { conn: Some(c), .. }) => return Ok(Some(Action::Send(*c, m))),
            Some(user) if linked => {
                if user.held.len() < HELD_MAX {
                    user.held.push(m);
                }
                return Ok(None);
            }
            _ => {}
        }
        Err(refusal(Code::NotOnline, to, m.kind))
    }

    fn conn_of(&self, name: &str) -> Option<ConnId> {
        self.users.get(name).and_then(|u| u.conn)
    }

    fn link(&mut self, caller: &str, callee: &str, ringing_until: u64) {
        for (a, b, caller) in [(caller, callee, true), (callee, caller, false)] {
            let link = CallLink {
                peer: b.to_owned(),
                caller,
                ringing_until: Some(ringing_until),
                ahead: Vec::new(),
            };
            self.calls.insert(a.to_owned(), link);
        }
    }

    /// Ends `name`'s call on their behalf: the partner gets a `hangup` from `name` with `code`.
    fn hang_up_for(&mut self, name: &str, code: Code) -> Option<Action> {
        let peer = self.end_call(name)?;
        let peer_conn = self.conn_of(&peer)?;
        Some(hangup_from(peer_conn, &peer, name, code))
    }

    /// Removes `name`'s call, returning the former partner.
    fn end_call(&mut self, name: &str) -> Option<String> {
        let peer = self.calls.remove(name)?.peer;
        self.calls.remove(&peer);
        Some(peer)
    }

    /// Presence after a join (`joiner`) or a leave; see [`Registry::with_presence_max`].
    fn announce_presence(&self, joiner: Option<ConnId>, actions: &mut Vec<Action>) {
        let online: Vec<(&String, ConnId)> = self
            .users
            .iter()
            .filter_map(|(n, u)| u.conn.map(|c| (n, c)))
            .collect();
        let users: Vec<String> = online
            .iter()
            .take(self.presence_max)
            .map(|(n, _)| (*n).clone())
            .collect();
        if online.len() <= self.presence_max {
            for (name, conn) in online {
                actions.push(Action::Send(conn, Message::presence(name, users.clone())));
            }
        } else if let Some((name, conn)) = joiner.and_then(|j| online.into_iter().find(|(_, c)| *c == j)) {
            actions.push(Action::Send(conn, Message::presence(name, users)));
        }
    }

    #[cfg(test)]
    fn assert_invariants(&self) {
        for (conn, name) in &self.conns {
            assert_eq!(self.users.get(name).and_then(|u| u.conn), Some(*conn));
        }
        for (name, user) in &self.users {
            if let Some(c) = user.conn {
                assert_eq!(self.conns.get(&c), Some(name));
            }
        }
        for (a, l) in &self.calls {
            let back = self.calls.get(&l.peer).expect("calls symmetric");
            assert_eq!(&back.peer, a);
            assert_ne!(back.caller, l.caller, "one caller per call");
            assert_eq!(back.ringing_until, l.ringing_until);
            assert!(
                l.ahead.is_empty() || (l.caller && l.ringing_until.is_some()),
                "held only while ringing"
            );
            assert!(
                self.users.contains_key(a) && self.users.contains_key(&l.peer),
                "parties known"
            );
        }
    }
}

// The relay's words and stamps, shared with the Redis backend (`cluster`), which makes the same
// decisions in Lua and has them carried out here.

/// Checks what any routed message needs (a recipient other than the sender, a type clients may
/// send) and stamps it: the server, never the client, says who a message is from; only the
/// server sets codes and presence lists. Returns the recipient and the stamped message.
pub fn stamp(from: &str, mut m: Message) -> Result<(String, Message), ProtocolError> {
    if matches!(m.kind, Kind::Presence | Kind::Config) {
        return Err(ProtocolError::new(
            Code::BadMessage,
            format!("{} is sent by the server only", m.kind.as_str()),
        ));
    }
    let to = match m.to_user.as_deref() {
        Some(to) if !to.is_empty() => to.to_owned(),
        _ => {
            return Err(ProtocolError::new(
                Code::MissingRecipient,
                format!("{} needs a \"toUser\"", m.kind.as_str()),
            ))
        }
    };
    if to == from {
        return Err(ProtocolError::new(
            Code::ToSelf,
            "you cannot send a message to yourself",
        ));
    }
    m.from_user = Some(from.to_owned());
    m.code = None;
    m.users = None;
    m.ice_servers = None;
    Ok((to, m))
}

/// A `kind` message from `from` to `to` carrying `sdp`, as [`stamp`] leaves it.
pub fn stamped(kind: Kind, from: &str, to: &str, sdp: String) -> Message {
    let mut m = Message::to(kind, to).with_sdp(sdp);
    m.from_user = Some(from.to_owned());
    m
}

/// Why a `kind` message to `to` was refused, for the refusals that depend on who is online and
/// in a call with whom.
pub fn refusal(code: Code, to: &str, kind: Kind) -> ProtocolError {
    let text = match code {
        Code::Offline => format!("{to} is not online right now"),
        Code::Busy => format!("{to} is in another call"),
        Code::NotInCall => format!("you are not in a call with {to}; message dropped"),
        Code::NotOnline => format!("{to} is not online; the {} was not delivered", kind.as_str()),
        other => other.as_str().to_owned(),
    };
    ProtocolError::new(code, text)
}

/// A connection that asked for a name someone else holds: told, and closed.
pub fn name_taken(conn: ConnId, name: &str) -> [Action; 2] {
    let text = format!("the name {name} is in use by someone else right now; pick another");
    [
        Action::Send(conn, Message::notice(name, Code::NameTaken, text.clone())),
        Action::Close(conn, CLOSE_NAME_TAKEN, text),
    ]
}

/// The old connection of a name its owner opened again elsewhere: told, and closed.
pub fn replaced(old: ConnId, name: &str) -> [Action; 2] {
    let text = "this name was opened in another window";
    [
        Action::Send(old, Message::notice(name, Code::Replaced, text)),
        Action::Close(old, CLOSE_REPLACED, text.to_owned()),
    ]
}

/// `conn`, signed in as `name`, hears that the server is going away, and is closed.
pub fn shutting_down(conn: ConnId, name: &str) -> [Action; 2] {
    let text = "the server is restarting; reconnecting shortly";
    [
        Action::Send(conn, Message::notice(name, Code::ServerShutdown, text)),
        Action::Close(conn, 1001, text.to_owned()),
    ]
}

/// The caller `caller` (on `conn`) hears that `callee` did not answer.
pub fn no_answer(conn: ConnId, caller: &str, callee: &str) -> Action {
    let text = format!("{callee} did not answer");
    Action::Send(conn, Message::notice(caller, Code::NoAnswer, text))
}

/// `peer` (on `conn`) hears that `name` ended their call, with `code` saying why.
pub fn hangup_from(conn: ConnId, peer: &str, name: &str, code: Code) -> Action {
    let mut bye = Message::to(Kind::Hangup, peer);
    bye.from_user = Some(name.to_owned());
    bye.code = Some(code);
    Action::Send(conn, bye)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::SYSTEM_NAME;
    use serde_json::json;

    const A: ConnId = 1;
    const B: ConnId = 2;
    const C: ConnId = 3;
    const NOW: u64 = 1_000;
    const T: Timing = Timing {
        ring_timeout_ms: 30_000,
        grace_ms: 10_000,
    };

    fn reg_abc() -> Registry {
        let mut r = Registry::new(Timing::default());
        r.join(A, "alice", Some("ka"), false);
        r.join(B, "bob", Some("kb"), false);
        r.join(C, "carol", None, false);
        r
    }

    fn send(r: &mut Registry, conn: ConnId, v: serde_json::Value) -> Vec<Action> {
        let out = r.handle(conn, &v.to_string(), NOW);
        r.assert_invariants();
        out
    }

    /// The messages `actions` sends to `conn`, in order, excluding presence.
    fn all_to(actions: &[Action], conn: ConnId) -> Vec<&Message> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(c, m) if *c == conn && m.kind != Kind::Presence => Some(m),
                _ => None,
            })
            .collect()
    }

    /// The single message `actions` sends to `conn`, excluding presence.
    fn only_to(actions: &[Action], conn: ConnId) -> Message {
        let msgs = all_to(actions, conn);
        assert_eq!(msgs.len(), 1, "exactly one message to {conn}: {actions:?}");
        msgs[0].clone()
    }

    fn notice_code(actions: &[Action], conn: ConnId) -> Code {
        assert_eq!(actions.len(), 1, "{actions:?}");
        let m = only_to(actions, conn);
        assert_eq!(m.from_user.as_deref(), Some(SYSTEM_NAME));
        m.code.expect("a notice has a code")
    }

    #[test]
    fn join_broadcasts_presence_to_everyone() {
        let mut r = Registry::new(Timing::default());
        r.join(A, "alice", None, false);
        let out = r.join(B, "bob", None, false);
        assert_eq!(out.len(), 3);
        assert_eq!(out[2], Action::Config(B, "bob".into()), "then bob's ICE servers");
        for a in &out[..2] {
            let Action::Send(_, m) = a else { panic!() };
            assert_eq!(
                m.users.as_deref(),
                Some(&["alice".to_string(), "bob".to_string()][..])
            );
        }
        r.assert_invariants();
    }

    #[test]
    fn presence_is_bounded_for_large_populations() {
        let mut r = Registry::new(T).with_presence_max(3);
        for (i, name) in ["a", "b", "c"].into_iter().enumerate() {
            assert_eq!(
                r.join(i as ConnId, name, None, false).len(),
                i + 2,
                "everyone hears of {name}, who gets their ICE servers"
            );
        }
        // The fourth and fifth joiners get a list of three; nobody else is told.
        for (i, name) in [(3, "d"), (4, "e")] {
            let out = r.join(i, name, None, false);
            assert_eq!(out.len(), 2);
            assert!(
                matches!(&out[0], Action::Send(c, m) if *c == i && m.users.as_ref().map(Vec::len) == Some(3))
            );
        }
        assert!(
            r.leave(0, NOW).is_empty(),
            "a leave that leaves 4 online is not broadcast"
        );
        // Back within the cap: everyone hears of changes again.
        assert_eq!(r.leave(1, NOW).len(), 3);
    }

    #[test]
    fn name_cannot_be_taken_over_without_the_secret() {
        let mut r = reg_abc();
        for secret in [None, Some("wrong")] {
            let out = r.join(9, "alice", secret, false);
            assert!(matches!(&out[0], Action::Send(9, m) if m.code == Some(Code::NameTaken)));
            assert!(matches!(&out[1], Action::Close(9, CLOSE_NAME_TAKEN, _)));
            assert_eq!(out.len(), 2, "nobody else hears of it");
        }
        // A name joined without a secret can never be taken over either.
        let out = r.join(9, "carol", None, false);
        assert!(matches!(&out[1], Action::Close(9, CLOSE_NAME_TAKEN, _)));
        // The refused connection owns nothing, so its leaving changes nothing.
        assert!(r.leave(9, NOW).is_empty());
        assert_eq!(r.conn_of("alice"), Some(A));
        r.assert_invariants();
    }

    #[test]
    fn same_secret_replaces_the_old_connection() {
        let mut r = reg_abc();
        let out = r.join(7, "alice", Some("ka"), false);
        assert!(matches!(&out[0], Action::Send(A, m) if m.code == Some(Code::Replaced)));
        assert!(matches!(&out[1], Action::Close(A, CLOSE_REPLACED, _)));
        assert_eq!(r.conn_of("alice"), Some(7));
        // The old socket closing later must not take the name offline.
        assert!(r.leave(A, NOW).is_empty());
        assert_eq!(r.stats().connected, 3);
        let out = send(&mut r, B, json!({"type":"call_start","toUser":"alice"}));
        assert_eq!(only_to(&out, 7).kind, Kind::CallStart);
    }

    #[test]
    fn from_user_is_stamped_by_the_server() {
        let mut r = reg_abc();
        let out = send(
            &mut r,
            A,
            json!({"type":"call_start","fromUser":"carol","toUser":"bob","code":"busy","users":["x"]}),
        );
        let m = only_to(&out, B);
        assert_eq!(m.from_user.as_deref(), Some("alice"));
        assert_eq!(m.code, None, "clients cannot forge codes");
        assert_eq!(m.users, None);
        // Spoofing the system name is overwritten too.
        let out = send(
            &mut r,
            A,
            json!({"type":"call_back","fromUser":SYSTEM_NAME,"toUser":"bob","msg":"x"}),
        );
        assert_eq!(only_to(&out, B).from_user.as_deref(), Some("alice"));
    }

    #[test]
    fn every_type_is_relayed_to_its_recipient() {
        let mut r = reg_abc();
        send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        for v in [
            json!({"type":"call_back","toUser":"alice","msg":"1"}),
            json!({"type":"answer","toUser":"alice","sdp":"v=0"}),
            json!({"type":"_ice","toUser":"alice","iceCandidate":{"candidate":"c","sdpMid":"0","sdpMLineIndex":0}}),
        ] {
            let out = send(&mut r, B, v.clone());
            let m = only_to(&out, A);
            assert_eq!(m.kind.as_str(), v["type"]);
            assert_eq!(m.from_user.as_deref(), Some("bob"));
        }
        let out = send(&mut r, A, json!({"type":"offer","toUser":"bob","sdp":"v=0"}));
        assert_eq!(only_to(&out, B).sdp.as_deref(), Some("v=0"));
        let out = send(&mut r, A, json!({"type":"hangup","toUser":"bob"}));
        assert_eq!(only_to(&out, B).kind, Kind::Hangup);
        assert_eq!(r.partner_of("alice"), None);
    }

    /// Bob's page takes offers while it rings, carol's classic client does not.
    fn reg_early_bob() -> Registry {
        let mut r = Registry::new(Timing::default());
        r.join(A, "alice", Some("ka"), true);
        r.join(B, "bob", Some("kb"), true);
        r.join(C, "carol", None, false);
        r
    }

    fn ahead_of_accept(to: &str) -> [serde_json::Value; 3] {
        [
            json!({"type":"offer","toUser":to,"sdp":"v=0 offer"}),
            json!({"type":"_ice","toUser":to,"iceCandidate":{"candidate":"c1","sdpMid":"0","sdpMLineIndex":0}}),
            json!({"type":"media","toUser":to,"audio":true,"video":false}),
        ]
    }

    #[test]
    fn an_early_callee_gets_the_offer_while_it_rings() {
        let mut r = reg_early_bob();
        send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        for v in ahead_of_accept("bob") {
            let m = only_to(&send(&mut r, A, v.clone()), B);
            assert_eq!(m.kind.as_str(), v["type"]);
            assert_eq!(m.from_user.as_deref(), Some("alice"));
        }
        let out = send(&mut r, B, json!({"type":"call_back","toUser":"alice","msg":"1"}));
        assert_eq!(out.len(), 1, "nothing held: {out:?}");
    }

    #[test]
    fn a_classic_callee_gets_what_the_caller_sent_ahead_after_its_accept_in_order() {
        let mut r = reg_early_bob();
        send(&mut r, A, json!({"type":"call_start","toUser":"carol"}));
        for v in ahead_of_accept("carol") {
            assert!(send(&mut r, A, v).is_empty(), "held while carol's phone rings");
        }
        let out = send(&mut r, C, json!({"type":"call_back","toUser":"alice","msg":"1"}));
        assert_eq!(only_to(&out, A).kind, Kind::CallBack);
        let to_carol = all_to(&out, C);
        let kinds: Vec<Kind> = to_carol.iter().map(|m| m.kind).collect();
        assert_eq!(kinds, [Kind::Offer, Kind::Ice, Kind::Media]);
        assert!(to_carol.iter().all(|m| m.from_user.as_deref() == Some("alice")));
        assert_eq!(to_carol[0].sdp.as_deref(), Some("v=0 offer"));
        // Accepted: from now on everything goes straight through.
        let out = send(
            &mut r,
            A,
            json!({"type":"_ice","toUser":"carol","iceCandidate":{"candidate":"c2"}}),
        );
        assert_eq!(only_to(&out, C).kind, Kind::Ice);
    }

    #[test]
    fn an_offer_inside_the_call_start_goes_as_an_offer_after_it_held_for_a_classic_callee() {
        let mut r = reg_early_bob();
        let start = |to: &str| json!({"type":"call_start","toUser":to,"sdp":"v=0 offer"});
        let out = send(&mut r, A, start("bob"));
        let to_bob: Vec<_> = all_to(&out, B)
            .into_iter()
            .map(|m| (m.kind, m.sdp.as_deref()))
            .collect();
        assert_eq!(
            to_bob,
            [(Kind::CallStart, None), (Kind::Offer, Some("v=0 offer"))]
        );
        send(&mut r, A, json!({"type":"hangup","toUser":"bob"}));
        // carol's classic client: the call_start alone, the offer after her accept.
        let m = only_to(&send(&mut r, A, start("carol")), C);
        assert_eq!((m.kind, m.sdp.as_deref()), (Kind::CallStart, None));
        let out = send(&mut r, C, json!({"type":"call_back","toUser":"alice","msg":"1"}));
        let to_carol: Vec<_> = all_to(&out, C)
            .into_iter()
            .map(|m| (m.kind, m.from_user.as_deref(), m.sdp.as_deref()))
            .collect();
        assert_eq!(to_carol, [(Kind::Offer, Some("alice"), Some("v=0 offer"))]);
    }

    #[test]
    fn an_answer_inside_the_accept_reaches_a_duet_caller_as_it_is_and_a_classic_one_as_an_answer() {
        let mut r = reg_early_bob();
        send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        let accept = |to: &str| json!({"type":"call_back","toUser":to,"msg":"1","sdp":"v=0 answer"});
        let m = only_to(&send(&mut r, B, accept("alice")), A);
        assert_eq!((m.kind, m.sdp.as_deref()), (Kind::CallBack, Some("v=0 answer")));
        send(&mut r, A, json!({"type":"hangup","toUser":"bob"}));
        // carol's classic client calls bob's page.
        send(&mut r, C, json!({"type":"call_start","toUser":"bob"}));
        let out = send(&mut r, B, accept("carol"));
        let to_carol: Vec<_> = all_to(&out, C)
            .into_iter()
            .map(|m| (m.kind, m.msg.clone(), m.sdp.clone()))
            .collect();
        assert_eq!(
            to_carol,
            [
                (Kind::CallBack, Some("1".into()), None),
                (Kind::Answer, None, Some("v=0 answer".into()))
            ]
        );
        assert_eq!(r.partner_of("carol"), Some("bob"));
    }

    #[test]
    fn what_was_held_for_a_classic_callee_goes_with_a_declined_or_cancelled_call() {
        let mut r = reg_early_bob();
        for end in [
            (C, json!({"type":"call_back","toUser":"alice","msg":"0"})),
            (A, json!({"type":"hangup","toUser":"carol"})),
        ] {
            send(&mut r, A, json!({"type":"call_start","toUser":"carol"}));
            for v in ahead_of_accept("carol") {
                send(&mut r, A, v);
            }
            send(&mut r, end.0, end.1);
            assert_eq!(r.partner_of("alice"), None);
            // A new call starts with nothing held.
            send(&mut r, A, json!({"type":"call_start","toUser":"carol"}));
            let out = send(&mut r, C, json!({"type":"call_back","toUser":"alice","msg":"1"}));
            assert_eq!(out.len(), 1, "{out:?}");
            send(&mut r, A, json!({"type":"hangup","toUser":"carol"}));
        }
        // At most HELD_MAX messages are kept per ringing call.
        send(&mut r, A, json!({"type":"call_start","toUser":"carol"}));
        for _ in 0..HELD_MAX + 5 {
            send(&mut r, A, ahead_of_accept("carol")[1].clone());
        }
        let out = send(&mut r, C, json!({"type":"call_back","toUser":"alice","msg":"1"}));
        assert_eq!(out.len(), 1 + HELD_MAX);
    }

    #[test]
    fn calling_an_offline_name_gets_the_offline_notice() {
        let mut r = reg_abc();
        let out = send(&mut r, A, json!({"type":"call_start","toUser":"zoe"}));
        assert_eq!(notice_code(&out, A), Code::Offline);
        let m = only_to(&out, A);
        assert_eq!(m.kind, Kind::CallBack);
        assert!(m.msg.unwrap().contains("zoe"));
        assert_eq!(r.partner_of("alice"), None);
        let out = send(&mut r, A, json!({"type":"offer","toUser":"zoe","sdp":"v=0"}));
        assert_eq!(notice_code(&out, A), Code::NotInCall);
        let out = send(
            &mut r,
            A,
            json!({"type":"call_back","toUser":"zoe","msg":"hello"}),
        );
        assert_eq!(notice_code(&out, A), Code::NotOnline);
    }

    #[test]
    fn bad_input_gets_a_typed_notice_and_nothing_is_forwarded() {
        let mut r = reg_abc();
        let cases = [
            ("{oops", Code::BadMessage),
            (r#"{"type":"wave","toUser":"bob"}"#, Code::UnknownType),
            (r#"{"type":"offer","sdp":"v=0"}"#, Code::MissingRecipient),
            (
                r#"{"type":"offer","toUser":"","sdp":"v=0"}"#,
                Code::MissingRecipient,
            ),
            (r#"{"type":"call_start","toUser":"alice"}"#, Code::ToSelf),
            (
                r#"{"type":"presence","toUser":"bob","users":[]}"#,
                Code::BadMessage,
            ),
        ];
        for (text, code) in cases {
            let out = r.handle(A, text, NOW);
            assert_eq!(notice_code(&out, A), code, "{text}");
        }
        r.assert_invariants();
    }

    #[test]
    fn busy_callee_is_not_disturbed() {
        let mut r = reg_abc();
        send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        let out = send(&mut r, C, json!({"type":"call_start","toUser":"bob"}));
        assert_eq!(notice_code(&out, C), Code::Busy);
        let out = send(&mut r, C, json!({"type":"call_start","toUser":"alice"}));
        assert_eq!(notice_code(&out, C), Code::Busy);
        assert_eq!(r.partner_of("bob"), Some("alice"));
    }

    #[test]
    fn decline_ends_the_pending_call() {
        let mut r = reg_abc();
        send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        let out = send(&mut r, B, json!({"type":"call_back","toUser":"alice","msg":"0"}));
        assert_eq!(only_to(&out, A).msg.as_deref(), Some("0"));
        assert_eq!(r.partner_of("alice"), None);
        // bob is free again
        let out = send(&mut r, C, json!({"type":"call_start","toUser":"bob"}));
        assert_eq!(only_to(&out, B).kind, Kind::CallStart);
    }

    #[test]
    fn calling_someone_else_hangs_up_the_old_call() {
        let mut r = reg_abc();
        send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        let out = send(&mut r, A, json!({"type":"call_start","toUser":"carol"}));
        assert_eq!(only_to(&out, B).kind, Kind::Hangup);
        assert_eq!(only_to(&out, B).code, Some(Code::Cancelled));
        assert_eq!(only_to(&out, C).kind, Kind::CallStart);
        assert_eq!(r.partner_of("bob"), None);
    }

    fn in_call(r: &mut Registry) {
        send(r, A, json!({"type":"call_start","toUser":"bob"}));
        send(r, B, json!({"type":"call_back","toUser":"alice","msg":"1"}));
    }

    #[test]
    fn disconnect_mid_call_ends_it_after_the_grace_period_and_leaves_nothing_behind() {
        let mut r = reg_abc();
        in_call(&mut r);
        let out = r.leave(A, NOW);
        r.assert_invariants();
        assert!(out
            .iter()
            .all(|a| matches!(a, Action::Send(_, m) if m.kind == Kind::Presence)));
        // Away: not listed, but the name and the call are kept; bob's messages are dropped quietly.
        assert!(send(
            &mut r,
            B,
            json!({"type":"_ice","toUser":"alice","iceCandidate":{"candidate":"c"}})
        )
        .is_empty());
        let out = send(&mut r, C, json!({"type":"call_start","toUser":"alice"}));
        assert_eq!(notice_code(&out, C), Code::Busy);
        assert!(r.tick(NOW + T.grace_ms - 1).is_empty());
        let out = r.tick(NOW + T.grace_ms);
        let bye = only_to(&out, B);
        assert_eq!(bye.kind, Kind::Hangup);
        assert_eq!(bye.from_user.as_deref(), Some("alice"));
        assert_eq!(bye.code, Some(Code::PeerDisconnected));
        assert_eq!(r.partner_of("bob"), None);
        r.leave(B, NOW);
        r.leave(C, NOW);
        assert!(r.is_empty());
    }

    #[test]
    fn reconnecting_within_the_grace_period_keeps_the_call() {
        let mut r = reg_abc();
        in_call(&mut r);
        r.leave(A, NOW);
        // Someone else cannot grab the name meanwhile.
        assert!(matches!(
            r.join(8, "alice", Some("x"), false).last(),
            Some(Action::Close(8, CLOSE_NAME_TAKEN, _))
        ));
        r.join(9, "alice", Some("ka"), false);
        r.assert_invariants();
        assert!(
            r.tick(NOW + T.grace_ms * 2).is_empty(),
            "no hangup: alice came back"
        );
        let out = send(
            &mut r,
            B,
            json!({"type":"_ice","toUser":"alice","iceCandidate":{"candidate":"c"}}),
        );
        assert_eq!(only_to(&out, 9).kind, Kind::Ice);
    }

    #[test]
    fn calling_someone_away_and_in_no_call_is_offline_and_keeps_the_callers_call() {
        let mut r = Registry::new(T);
        for (conn, name) in [(A, "alice"), (B, "bob"), (C, "carol"), (4, "dan")] {
            r.join(conn, name, Some(name), false);
        }
        // bob drops mid-call; dan hangs up: bob is away, reserved, in no call.
        send(&mut r, B, json!({"type":"call_start","toUser":"dan"}));
        send(&mut r, 4, json!({"type":"call_back","toUser":"bob","msg":"1"}));
        r.leave(B, NOW);
        send(&mut r, 4, json!({"type":"hangup","toUser":"bob"}));
        send(&mut r, A, json!({"type":"call_start","toUser":"carol"}));
        let out = send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        assert_eq!(notice_code(&out, A), Code::Offline, "and carol hears nothing");
        assert_eq!(r.partner_of("alice"), Some("carol"));
    }

    #[test]
    fn messages_for_an_away_partner_wait_for_them_bounded_and_in_order() {
        let mut r = Registry::new(T);
        r.join(A, "alice", Some("ka"), false);
        r.join(B, "bob", None, false);
        send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        send(&mut r, B, json!({"type":"call_back","toUser":"alice","msg":"1"}));
        r.leave(A, NOW);
        for n in 0..HELD_MAX + 10 {
            let out = send(
                &mut r,
                B,
                json!({"type":"_ice","toUser":"alice","iceCandidate":{"candidate":n.to_string()}}),
            );
            assert!(out.is_empty(), "held quietly: {out:?}");
        }
        let out = r.join(9, "alice", Some("ka"), false);
        let held: Vec<String> = out
            .iter()
            .filter_map(|a| match a {
                Action::Send(9, m) if m.kind == Kind::Ice => {
                    assert_eq!(m.from_user.as_deref(), Some("bob"));
                    Some(m.ice_candidate.clone().unwrap().candidate)
                }
                _ => None,
            })
            .collect();
        let expected: Vec<String> = (0..HELD_MAX).map(|n| n.to_string()).collect();
        assert_eq!(held, expected);
        // Delivered once: a later resume gets nothing again.
        r.leave(9, NOW);
        let again = r.join(10, "alice", Some("ka"), false);
        assert!(!again
            .iter()
            .any(|a| matches!(a, Action::Send(_, m) if m.kind == Kind::Ice)));
        r.assert_invariants();
    }

    #[test]
    fn a_config_request_is_answered_to_the_sender_only() {
        let mut r = reg_abc();
        let out = send(&mut r, A, json!({"type":"config","toUser":"bob"}));
        assert_eq!(out, [Action::Config(A, "alice".into())]);
        let out = send(&mut r, A, json!({"type":"presence","toUser":"bob"}));
        assert_eq!(notice_code(&out, A), Code::BadMessage);
    }

    #[test]
    fn without_a_grace_period_a_disconnect_ends_the_call_at_once() {
        let mut r = Registry::new(Timing { grace_ms: 0, ..T });
        r.join(A, "alice", None, false);
        r.join(B, "bob", None, false);
        in_call(&mut r);
        let out = r.leave(A, NOW);
        assert_eq!(only_to(&out, B).code, Some(Code::PeerDisconnected));
        r.leave(B, NOW);
        assert!(r.is_empty());
    }

    #[test]
    fn call_messages_only_flow_between_the_parties() {
        let mut r = reg_abc();
        in_call(&mut r);
        for v in [
            json!({"type":"offer","toUser":"bob","sdp":"v=0"}),
            json!({"type":"answer","toUser":"alice","sdp":"v=0"}),
            json!({"type":"_ice","toUser":"bob","iceCandidate":{"candidate":"c"}}),
            json!({"type":"media","toUser":"bob","audio":false}),
            json!({"type":"hangup","toUser":"alice"}),
            json!({"type":"call_back","toUser":"alice","msg":"1"}),
            json!({"type":"call_back","toUser":"alice","msg":"0"}),
        ] {
            let out = send(&mut r, C, v.clone());
            assert_eq!(notice_code(&out, C), Code::NotInCall, "{v}");
        }
        assert_eq!(r.partner_of("alice"), Some("bob"), "the call is undisturbed");
        // A notice text may still go to anyone.
        let out = send(&mut r, C, json!({"type":"call_back","toUser":"alice","msg":"hi"}));
        assert_eq!(only_to(&out, A).msg.as_deref(), Some("hi"));
    }

    #[test]
    fn an_unanswered_call_times_out_for_both_sides() {
        let mut r = reg_abc();
        send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        assert_eq!(r.stats().calls_ringing, 1);
        assert!(r.tick(NOW + T.ring_timeout_ms - 1).is_empty());
        let out = r.tick(NOW + T.ring_timeout_ms);
        r.assert_invariants();
        assert_eq!(only_to(&out, A).code, Some(Code::NoAnswer));
        assert_eq!(only_to(&out, A).from_user.as_deref(), Some(SYSTEM_NAME));
        let stop = only_to(&out, B);
        assert_eq!((stop.kind, stop.code), (Kind::Hangup, Some(Code::NoAnswer)));
        assert_eq!(r.partner_of("alice"), None);
    }

    #[test]
    fn an_accepted_call_does_not_time_out() {
        let mut r = reg_abc();
        in_call(&mut r);
        assert_eq!(r.stats().calls_active, 1);
        assert!(r.tick(NOW + T.ring_timeout_ms * 10).is_empty());
        assert_eq!(r.partner_of("alice"), Some("bob"));
    }

    #[test]
    fn the_caller_cancelling_while_ringing_is_marked_cancelled() {
        let mut r = reg_abc();
        send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        let out = send(&mut r, A, json!({"type":"hangup","toUser":"bob"}));
        assert_eq!(only_to(&out, B).code, Some(Code::Cancelled));
        // Once accepted, a hang-up is a plain hang-up.
        in_call(&mut r);
        let out = send(&mut r, A, json!({"type":"hangup","toUser":"bob"}));
        assert_eq!(only_to(&out, B).code, None);
    }

    #[test]
    fn glare_keeps_one_call() {
        let mut r = reg_abc();
        send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        let out = send(&mut r, B, json!({"type":"call_start","toUser":"alice"}));
        assert_eq!(
            only_to(&out, A).kind,
            Kind::CallStart,
            "forwarded; the clients settle who calls"
        );
        assert_eq!(r.stats().calls_ringing, 1);
    }

    #[test]
    fn shutdown_tells_and_closes_a_connection() {
        // (The hub does this for every connection it has, signed in or not.)
        let out = shutting_down(A, "alice");
        assert_eq!(out.len(), 2);
        assert!(out
            .iter()
            .any(|a| matches!(a, Action::Send(_, m) if m.code == Some(Code::ServerShutdown))));
        assert!(out.iter().any(|a| matches!(a, Action::Close(_, 1001, _))));
    }

    #[test]
    fn unknown_connection_is_ignored() {
        let mut r = reg_abc();
        assert!(r
            .handle(99, r#"{"type":"hangup","toUser":"bob"}"#, NOW)
            .is_empty());
    }

    #[test]
    fn invalid_name_is_refused_by_the_core_too() {
        let mut r = Registry::new(Timing::default());
        let out = r.join(A, "no spaces", None, false);
        assert!(matches!(out.last(), Some(Action::Close(A, 1008, _))));
        assert!(r.is_empty());
    }
}

/// Property tests: random sequences of connects, disconnects, messages (well-formed, spoofed,
/// misaddressed) and time passing, checked against the invariants after every step.
#[cfg(test)]
mod props {
    use super::*;
    use proptest::prelude::*;

    const NAMES: [&str; 4] = ["alice", "bob", "carol", "dave"];
    const KINDS: [&str; 8] = [
        "call_start",
        "call_back",
        "offer",
        "answer",
        "_ice",
        "hangup",
        "presence",
        "media",
    ];
    const MSGS: [&str; 3] = ["1", "0", "busy"];

    #[derive(Clone, Debug)]
    enum Op {
        Join {
            conn: u8,
            name: usize,
            secret: Option<u8>,
            early: bool,
        },
        Leave {
            conn: u8,
        },
        Send {
            conn: u8,
            kind: usize,
            to: usize,
            spoof: usize,
            msg: usize,
        },
        Garbage {
            conn: u8,
            text: String,
        },
        Tick {
            ms: u64,
        },
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (
                0u8..6,
                0..NAMES.len(),
                proptest::option::of(0u8..2),
                any::<bool>()
            )
                .prop_map(|(conn, name, secret, early)| Op::Join {
                    conn,
                    name,
                    secret,
                    early
                }),
            (0u8..6).prop_map(|conn| Op::Leave { conn }),
            (
                0u8..6,
                0..KINDS.len(),
                0..NAMES.len() + 1,
                0..NAMES.len(),
                0..MSGS.len()
            )
                .prop_map(|(conn, kind, to, spoof, msg)| Op::Send {
                    conn,
                    kind,
                    to,
                    spoof,
                    msg
                }),
            (0u8..6, ".{0,40}").prop_map(|(conn, text)| Op::Garbage { conn, text }),
            (0u64..40_000).prop_map(|ms| Op::Tick { ms }),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(400))]

        #[test]
        fn deliveries_respect_calls_and_senders_and_nothing_leaks(ops in proptest::collection::vec(op(), 1..80)) {
            let mut r = Registry::new(Timing::default());
            // Connection ids are never reused, as in the server.
            let mut next_conn: ConnId = 1;
            let mut slots: HashMap<u8, ConnId> = HashMap::new();
            let mut now = 0u64;
            for op in ops {
                match op {
                    Op::Join { conn, name, secret, early } => {
                        if let Some(old) = slots.insert(conn, next_conn) {
                            r.leave(old, now);
                        }
                        let secret = secret.map(|s| format!("k{s}"));
                        r.join(next_conn, NAMES[name], secret.as_deref(), early);
                        next_conn += 1;
                    }
                    Op::Leave { conn } => {
                        if let Some(c) = slots.remove(&conn) {
                            r.leave(c, now);
                        }
                    }
                    Op::Send { conn, kind, to, spoof, msg } => {
                        let Some(&c) = slots.get(&conn) else { continue };
                        let sender = r.conns.get(&c).cloned();
                        let partner_before = sender.as_deref().and_then(|s| r.partner_of(s)).map(str::to_owned);
                        // The sender is a caller whose call still rings.
                        let ringing_caller = sender.as_deref().and_then(|s| r.calls.get(s)).is_some_and(|l| l.caller && l.ringing_until.is_some());
                        let to_name = NAMES.get(to).copied().unwrap_or("nobody");
                        let text = serde_json::json!({
                            "type": KINDS[kind], "fromUser": NAMES[spoof], "toUser": to_name,
                            "msg": MSGS[msg], "sdp": "v=0", "iceCandidate": {"candidate": "c"},
                            "code": "busy",
                        })
                        .to_string();
                        for action in r.handle(c, &text, now) {
                            let Action::Send(dest, m) = action else { continue };
                            if m.is_from_system() || m.kind == Kind::Presence {
                                continue;
                            }
                            let sender = sender.as_deref().expect("only known senders get anything relayed");
                            let dest_name = r.conns.get(&dest).expect("delivered to a live connection");
                            if m.kind == Kind::CallStart {
                                prop_assert!(m.sdp.is_none(), "an offer inside a call_start goes as an offer");
                            }
                            if m.kind == Kind::CallBack && m.msg.as_deref() == Some(ACCEPT) && m.sdp.is_some() {
                                prop_assert!(r.users[dest_name.as_str()].early, "an answer inside an accept only to a page that takes it");
                            }
                            if m.from_user.as_deref() == Some(sender) && m.kind.as_str() == KINDS[kind] {
                                // The message itself: to its addressee, stamped with the real sender.
                                prop_assert_eq!(dest_name, to_name);
                                prop_assert_eq!(m.code.is_none() || m.kind == Kind::Hangup, true);
                                if matches!(m.kind, Kind::Offer | Kind::Answer | Kind::Ice | Kind::Media | Kind::Hangup) {
                                    prop_assert_eq!(partner_before.as_deref(), Some(to_name), "only within a call");
                                }
                                if matches!(m.kind, Kind::Offer | Kind::Ice | Kind::Media) && ringing_caller {
                                    prop_assert!(r.users[dest_name.as_str()].early, "classic callees get nothing ahead of their accept");
                                }
                            } else if m.kind != Kind::Hangup && m.from_user.as_deref() == Some(sender) {
                                // An SDP that rode inside a call_start or an accept, as its own message.
                                prop_assert_eq!(dest_name, to_name);
                                prop_assert!(matches!((KINDS[kind], m.kind), ("call_start", Kind::Offer) | ("call_back", Kind::Answer)));
                            } else if m.kind != Kind::Hangup {
                                // What the partner sent ahead, released by this accept.
                                prop_assert_eq!(KINDS[kind], "call_back");
                                prop_assert_eq!(dest_name, sender);
                                prop_assert_eq!(m.from_user.as_deref(), partner_before.as_deref());
                                prop_assert!(matches!(m.kind, Kind::Offer | Kind::Ice | Kind::Media));
                            } else {
                                // A hang-up on the sender's behalf, to its previous partner.
                                prop_assert_eq!(m.kind, Kind::Hangup);
                                prop_assert_eq!(m.from_user.as_deref(), Some(sender));
                                prop_assert_eq!(Some(dest_name.as_str()), partner_before.as_deref());
                            }
                        }
                    }
                    Op::Garbage { conn, text } => {
                        if let Some(&c) = slots.get(&conn) {
                            for action in r.handle(c, &text, now) {
                                if let Action::Send(dest, m) = action {
                                    prop_assert_eq!(dest, c, "garbage is answered to its sender only");
                                    prop_assert!(m.is_from_system());
                                }
                            }
                        }
                    }
                    Op::Tick { ms } => {
                        now += ms;
                        r.tick(now);
                    }
                }
                r.assert_invariants();
            }
            for (_, c) in slots.drain() {
                r.leave(c, now);
            }
            r.tick(now + 10 * Timing::default().ring_timeout_ms);
            prop_assert!(r.is_empty(), "everyone left: nothing remains: {:?}", r);
        }
    }
}
