//! The relay's socket-free core: who is online, who is calling whom, and what to deliver.
//!
//! Every method takes plain values and returns [`Action`]s ("send this to connection 7",
//! "close connection 3"); the WebSocket shell in `ws.rs` carries them out. So every rule here is
//! unit-tested without a network.
//!
//! Invariants (checked by `assert_invariants` in tests):
//! - each online name maps to exactly one connection and that connection back to the name;
//! - `partner` is symmetric: `partner[a] == b` iff `partner[b] == a`, and both are online;
//! - every forwarded message carries the sender's real name in `fromUser`.

use crate::signal::{
    validate_name, Code, Kind, Message, ProtocolError, CLOSE_NAME_TAKEN, CLOSE_REPLACED, DECLINE,
};
use std::collections::{BTreeMap, HashMap};

/// Identifies one WebSocket connection for the lifetime of the process.
pub type ConnId = u64;

/// A decision for the shell to carry out, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    Send(ConnId, Message),
    /// Close the connection after what was queued for it, with a WebSocket close code and reason.
    Close(ConnId, u16, String),
}

#[derive(Debug)]
struct User {
    conn: ConnId,
    secret: Option<String>,
}

#[derive(Debug, Default)]
pub struct Registry {
    /// Sorted, so presence lists come out in a stable order.
    users: BTreeMap<String, User>,
    conns: HashMap<ConnId, String>,
    /// The other party of each pending (ringing) or active call, both ways.
    partner: HashMap<String, String>,
}

impl Registry {
    pub fn new() -> Registry {
        Registry::default()
    }

    pub fn online_count(&self) -> usize {
        self.users.len()
    }

    pub fn is_empty(&self) -> bool {
        self.users.is_empty() && self.conns.is_empty() && self.partner.is_empty()
    }

    pub fn partner_of(&self, name: &str) -> Option<&str> {
        self.partner.get(name).map(String::as_str)
    }

    /// A new connection `conn` wants `name`. The same secret takes over an existing session
    /// (reload, network change); anything else is refused while the owner is online.
    pub fn join(&mut self, conn: ConnId, name: &str, secret: Option<&str>) -> Vec<Action> {
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
                let text = format!("the name {name} is in use by someone else right now; pick another");
                return vec![
                    Action::Send(conn, Message::notice(name, Code::NameTaken, text.clone())),
                    Action::Close(conn, CLOSE_NAME_TAKEN, text),
                ];
            }
            let old = existing.conn;
            self.conns.remove(&old);
            let text = "this name was opened in another window";
            actions.push(Action::Send(old, Message::notice(name, Code::Replaced, text)));
            actions.push(Action::Close(old, CLOSE_REPLACED, text.to_owned()));
        }
        self.users.insert(
            name.to_owned(),
            User {
                conn,
                secret: secret.map(str::to_owned),
            },
        );
        self.conns.insert(conn, name.to_owned());
        self.broadcast_presence(&mut actions);
        actions
    }

    /// Connection `conn` is gone. If it still owned its name, the name goes offline and a call
    /// partner is told the call is over.
    pub fn leave(&mut self, conn: ConnId) -> Vec<Action> {
        let Some(name) = self.conns.remove(&conn) else {
            return Vec::new(); // refused or replaced earlier: owns nothing
        };
        self.users.remove(&name);
        let mut actions = Vec::new();
        actions.extend(self.hang_up_for(&name, Some(Code::PeerDisconnected)));
        self.broadcast_presence(&mut actions);
        actions
    }

    /// A text frame from `conn`: parse, check, stamp the sender, decide who gets what.
    pub fn handle(&mut self, conn: ConnId, text: &str) -> Vec<Action> {
        let Some(from) = self.conns.get(&conn).cloned() else {
            return Vec::new();
        };
        match Message::parse(text).and_then(|m| self.route(&from, m)) {
            Ok(actions) => actions,
            Err(e) => self.refuse(conn, e),
        }
    }

    /// Tells `conn` why its frame was dropped.
    pub fn refuse(&self, conn: ConnId, e: ProtocolError) -> Vec<Action> {
        let to = self.conns.get(&conn).map(String::as_str).unwrap_or("");
        vec![Action::Send(conn, Message::notice(to, e.code, e.detail))]
    }

    fn route(&mut self, from: &str, mut m: Message) -> Result<Vec<Action>, ProtocolError> {
        if m.kind == Kind::Presence {
            return Err(ProtocolError::new(
                Code::BadMessage,
                "presence is sent by the server only",
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
        // The server, never the client, says who a message is from; only the server sets codes
        // and presence lists.
        m.from_user = Some(from.to_owned());
        m.code = None;
        m.users = None;

        let Some(to_conn) = self.conn_of(&to) else {
            return match m.kind {
                Kind::CallStart => Err(ProtocolError::new(
                    Code::Offline,
                    format!("{to} is not online right now"),
                )),
                // Hanging up on someone who already left needs no answer.
                Kind::Hangup => {
                    self.end_call(from);
                    Ok(Vec::new())
                }
                _ => Err(ProtocolError::new(
                    Code::NotOnline,
                    format!("{to} is not online; the {} was not delivered", m.kind.as_str()),
                )),
            };
        };

        let mut actions = Vec::new();
        match m.kind {
            Kind::CallStart => {
                let callee_partner = self.partner_of(&to);
                if callee_partner.is_some() && callee_partner != Some(from) {
                    return Err(ProtocolError::new(Code::Busy, format!("{to} is in another call")));
                }
                // Calling someone new abandons whatever call the caller had going.
                if self.partner_of(from).is_some_and(|p| p != to) {
                    actions.extend(self.hang_up_for(from, None));
                }
                self.partner.insert(from.to_owned(), to.clone());
                self.partner.insert(to.clone(), from.to_owned());
            }
            // A decline or a hang-up between the two parties ends their call.
            Kind::CallBack | Kind::Hangup
                if (m.kind == Kind::Hangup || m.msg.as_deref() == Some(DECLINE))
                    && self.partner_of(from) == Some(to.as_str()) =>
            {
                self.end_call(from);
            }
            _ => {}
        }
        actions.push(Action::Send(to_conn, m));
        Ok(actions)
    }

    fn conn_of(&self, name: &str) -> Option<ConnId> {
        self.users.get(name).map(|u| u.conn)
    }

    /// Ends `name`'s call on their behalf: the partner gets a `hangup` from `name`.
    fn hang_up_for(&mut self, name: &str, code: Option<Code>) -> Option<Action> {
        let peer = self.end_call(name)?;
        let peer_conn = self.conn_of(&peer)?;
        let mut bye = Message::to(Kind::Hangup, &peer);
        bye.from_user = Some(name.to_owned());
        bye.code = code;
        Some(Action::Send(peer_conn, bye))
    }

    /// Removes `name`'s call, returning the former partner.
    fn end_call(&mut self, name: &str) -> Option<String> {
        let peer = self.partner.remove(name)?;
        self.partner.remove(&peer);
        Some(peer)
    }

    fn broadcast_presence(&self, actions: &mut Vec<Action>) {
        let users: Vec<String> = self.users.keys().cloned().collect();
        for (name, user) in &self.users {
            actions.push(Action::Send(user.conn, Message::presence(name, users.clone())));
        }
    }

    #[cfg(test)]
    fn assert_invariants(&self) {
        assert_eq!(self.users.len(), self.conns.len());
        for (name, user) in &self.users {
            assert_eq!(self.conns.get(&user.conn), Some(name));
        }
        for (a, b) in &self.partner {
            assert_eq!(self.partner.get(b), Some(a), "partner map symmetric");
            assert!(
                self.users.contains_key(a) && self.users.contains_key(b),
                "partners online"
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::signal::SYSTEM_NAME;
    use serde_json::json;

    const A: ConnId = 1;
    const B: ConnId = 2;
    const C: ConnId = 3;

    fn reg_abc() -> Registry {
        let mut r = Registry::new();
        r.join(A, "alice", Some("ka"));
        r.join(B, "bob", Some("kb"));
        r.join(C, "carol", None);
        r
    }

    fn send(r: &mut Registry, conn: ConnId, v: serde_json::Value) -> Vec<Action> {
        let out = r.handle(conn, &v.to_string());
        r.assert_invariants();
        out
    }

    /// The single message `actions` sends to `conn`, excluding presence.
    fn only_to(actions: &[Action], conn: ConnId) -> Message {
        let msgs: Vec<&Message> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Send(c, m) if *c == conn && m.kind != Kind::Presence => Some(m),
                _ => None,
            })
            .collect();
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
        let mut r = Registry::new();
        r.join(A, "alice", None);
        let out = r.join(B, "bob", None);
        assert_eq!(out.len(), 2);
        for a in &out {
            let Action::Send(_, m) = a else { panic!() };
            assert_eq!(
                m.users.as_deref(),
                Some(&["alice".to_string(), "bob".to_string()][..])
            );
        }
        r.assert_invariants();
    }

    #[test]
    fn name_cannot_be_taken_over_without_the_secret() {
        let mut r = reg_abc();
        for secret in [None, Some("wrong")] {
            let out = r.join(9, "alice", secret);
            assert!(matches!(&out[0], Action::Send(9, m) if m.code == Some(Code::NameTaken)));
            assert!(matches!(&out[1], Action::Close(9, CLOSE_NAME_TAKEN, _)));
            assert_eq!(out.len(), 2, "nobody else hears of it");
        }
        // A name joined without a secret can never be taken over either.
        let out = r.join(9, "carol", None);
        assert!(matches!(&out[1], Action::Close(9, CLOSE_NAME_TAKEN, _)));
        // The refused connection owns nothing, so its leaving changes nothing.
        assert!(r.leave(9).is_empty());
        assert_eq!(r.conn_of("alice"), Some(A));
        r.assert_invariants();
    }

    #[test]
    fn same_secret_replaces_the_old_connection() {
        let mut r = reg_abc();
        let out = r.join(7, "alice", Some("ka"));
        assert!(matches!(&out[0], Action::Send(A, m) if m.code == Some(Code::Replaced)));
        assert!(matches!(&out[1], Action::Close(A, CLOSE_REPLACED, _)));
        assert_eq!(r.conn_of("alice"), Some(7));
        // The old socket closing later must not take the name offline.
        assert!(r.leave(A).is_empty());
        assert_eq!(r.online_count(), 3);
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
        assert_eq!(notice_code(&out, A), Code::NotOnline);
        assert!(send(&mut r, A, json!({"type":"hangup","toUser":"zoe"})).is_empty());
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
            let out = r.handle(A, text);
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
        assert_eq!(only_to(&out, C).kind, Kind::CallStart);
        assert_eq!(r.partner_of("bob"), None);
    }

    #[test]
    fn disconnect_mid_call_tells_the_peer_and_leaves_nothing_behind() {
        let mut r = reg_abc();
        send(&mut r, A, json!({"type":"call_start","toUser":"bob"}));
        send(&mut r, B, json!({"type":"call_back","toUser":"alice","msg":"1"}));
        let out = r.leave(A);
        r.assert_invariants();
        let bye = only_to(&out, B);
        assert_eq!(bye.kind, Kind::Hangup);
        assert_eq!(bye.from_user.as_deref(), Some("alice"));
        assert_eq!(bye.code, Some(Code::PeerDisconnected));
        assert_eq!(r.partner_of("bob"), None);
        r.leave(B);
        r.leave(C);
        assert!(r.is_empty());
    }

    #[test]
    fn unknown_connection_is_ignored() {
        let mut r = reg_abc();
        assert!(r.handle(99, r#"{"type":"hangup","toUser":"bob"}"#).is_empty());
    }

    #[test]
    fn invalid_name_is_refused_by_the_core_too() {
        let mut r = Registry::new();
        let out = r.join(A, "no spaces", None);
        assert!(matches!(out.last(), Some(Action::Close(A, 1008, _))));
        assert!(r.is_empty());
    }
}
