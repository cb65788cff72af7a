//! Several nodes as one relay, on a real redis-server each test starts for itself.
//!
//! - A differential property test: random join / leave / message sequences give the same
//!   deliveries from the embedded registry (the oracle), a 1-node and a 3-node cluster; after
//!   each run a scan of Redis finds no orphaned keys and only symmetric call records.
//! - Races across nodes, many runs each.
//! - A node killed with SIGKILL, Redis killed and restarted empty, nodes with other settings.

mod common;

use duet::relay::cluster::{parse_op, Cluster, ClusterConfig, Op};
use duet::relay::{Action, ConnId, Registry, Timing};
use duet::signal::{Kind, Message};
use futures_util::StreamExt;
use proptest::prelude::*;
use redis::AsyncCommands;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;

const NAMES: [&str; 5] = ["ann", "bob", "cat", "dan", "zed"];
const SECRETS: [Option<&str>; 3] = [None, Some("k1"), Some("k2")];
/// Long enough that no deadline passes during a run: the differential test is about decisions;
/// deadlines are covered by the relay tests (run across two nodes too).
const TIMING: Timing = Timing {
    ring_timeout_ms: 600_000,
    grace_ms: 600_000,
};
const PRESENCE_MAX: usize = 3;

#[derive(Clone, Debug)]
enum Event {
    Join {
        name: usize,
        node: usize,
        secret: usize,
        early: bool,
    },
    /// The connection of the n-th session so far (mod their number) closes.
    Leave(usize),
    Send {
        session: usize,
        to: usize,
        what: usize,
    },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        2 => (0..4usize, 0..3usize, 0..3usize, any::<bool>())
            .prop_map(|(name, node, secret, early)| Event::Join { name, node, secret, early }),
        1 => (0..64usize).prop_map(Event::Leave),
        // Calls and accepts weigh more: most rules are about calls that exist.
        8 => (0..64usize, 0..5usize, prop::sample::select(&[0, 0, 0, 1, 1, 2, 3, 4, 5, 6, 7, 8, 8][..]))
            .prop_map(|(session, to, what)| Event::Send { session, to, what }),
    ]
}

/// The message a `Send` event sends.
fn message(to: &str, what: usize) -> String {
    let v = match what {
        0 => json!({"type":"call_start","toUser":to}),
        1 => json!({"type":"call_back","toUser":to,"msg":"1"}),
        2 => json!({"type":"call_back","toUser":to,"msg":"0"}),
        3 => json!({"type":"call_back","toUser":to,"msg":"busy now"}),
        4 => json!({"type":"offer","toUser":to,"sdp":"v=0 o"}),
        5 => json!({"type":"answer","toUser":to,"sdp":"v=0 a"}),
        6 => json!({"type":"_ice","toUser":to,"iceCandidate":{"candidate":"c"}}),
        7 => json!({"type":"media","toUser":to,"audio":true,"video":false}),
        _ => json!({"type":"hangup","toUser":to}),
    };
    v.to_string()
}

/// What each connection received in one step: its messages other than presence lists, in
/// order, and the last presence list it got. (A node may apply a presence broadcast before or
/// after what a script returned to it; both are right, so presence is compared by its outcome.)
#[derive(Debug, Default, PartialEq, Eq)]
struct Received {
    messages: Vec<String>,
    presence: Option<Vec<String>>,
}

type Deliveries = BTreeMap<ConnId, Received>;

fn record(out: &mut Deliveries, action: &Action) {
    match action {
        Action::Send(conn, m) if m.kind == Kind::Presence => {
            out.entry(*conn).or_default().presence = m.users.clone();
        }
        Action::Send(conn, m) => out.entry(*conn).or_default().messages.push(m.to_json()),
        Action::Close(conn, code, _) => out.entry(*conn).or_default().messages.push(format!("close {code}")),
        Action::Config(conn, name) => out.entry(*conn).or_default().messages.push(format!("config {name}")),
    }
}

struct Session {
    name: &'static str,
    node: usize,
    /// Its socket closed: it sends nothing more.
    left: bool,
}

/// The session an event acts on, unless it has left (or there is none yet).
fn live(sessions: &[Session], i: usize) -> Option<usize> {
    let i = i.checked_rem(sessions.len())?;
    (!sessions[i].left).then_some(i)
}

/// The embedded registry, driven by the events.
fn oracle_step(r: &mut Registry, sessions: &mut Vec<Session>, ev: &Event) -> Deliveries {
    let mut out = Deliveries::new();
    let actions = match *ev {
        Event::Join {
            name,
            node,
            secret,
            early,
        } => {
            sessions.push(Session { name: NAMES[name], node, left: false });
            r.join(sessions.len() as ConnId, NAMES[name], SECRETS[secret], early)
        }
        Event::Leave(i) => match live(sessions, i) {
            Some(i) => {
                sessions[i].left = true;
                r.leave(i as ConnId + 1, 0)
            }
            None => Vec::new(),
        },
        Event::Send { session, to, what } => match live(sessions, session) {
            Some(i) => r.handle(i as ConnId + 1, &message(NAMES[to], what), 0),
            None => Vec::new(),
        },
    };
    for a in &actions {
        record(&mut out, a);
    }
    out
}

/// One node as the test sees it: which of its connections are signed in (presence broadcasts
/// reach those), as `ws.rs`'s hub keeps it.
#[derive(Default)]
struct NodeView {
    joined: BTreeMap<ConnId, String>,
    presence_version: u64,
}

fn apply(view: &mut NodeView, ops: Vec<Op>, out: &mut Deliveries) {
    for op in ops {
        match op {
            Op::Relay(conn, json) => out.entry(conn).or_default().messages.push(json),
            Op::Core(action) => {
                if let Action::Close(conn, ..) = action {
                    view.joined.remove(&conn);
                }
                record(out, &action);
            }
            Op::Presence { skip, version, users } => {
                if version <= view.presence_version {
                    continue;
                }
                view.presence_version = version;
                for (conn, name) in &view.joined {
                    if Some(*conn) != skip {
                        record(out, &Action::Send(*conn, Message::presence(name, users.clone())));
                    }
                }
            }
            Op::Joined { conn, name, users, .. } => {
                record(out, &Action::Send(conn, Message::presence(&name, users)));
                view.joined.insert(conn, name);
            }
        }
    }
}

/// A cluster of `n` nodes on `redis`, keys under `prefix`, and a subscriber that sees every
/// node's channel, in the order Redis published.
struct TestCluster {
    nodes: Vec<Cluster>,
    views: Vec<NodeView>,
    sub: redis::aio::PubSub,
    redis: redis::aio::MultiplexedConnection,
    prefix: String,
    step: u64,
    /// Connections the relay closed (refused, replaced).
    closed: std::collections::BTreeSet<ConnId>,
}

fn closes(out: &Deliveries) -> Vec<ConnId> {
    let closed = |r: &Received| r.messages.iter().any(|m| m.starts_with("close "));
    out.iter().filter(|(_, r)| closed(r)).map(|(c, _)| *c).collect()
}

impl TestCluster {
    async fn new(url: &str, prefix: &str, n: usize) -> TestCluster {
        let mut nodes = Vec::new();
        for i in 0..n {
            let config = ClusterConfig {
                url: url.into(),
                prefix: prefix.into(),
                node: format!("n{i}"),
            };
            nodes.push(Cluster::connect(config, TIMING, PRESENCE_MAX).await.expect("node connects"));
        }
        let client = redis::Client::open(url).unwrap();
        let mut sub = client.get_async_pubsub().await.unwrap();
        sub.psubscribe(format!("{prefix}*")).await.unwrap();
        let redis = client.get_multiplexed_async_connection().await.unwrap();
        let views = (0..n).map(|_| NodeView::default()).collect();
        TestCluster {
            nodes,
            views,
            sub,
            redis,
            prefix: prefix.into(),
            step: 0,
            closed: Default::default(),
        }
    }

    async fn step(&mut self, sessions: &mut Vec<Session>, ev: &Event) -> Deliveries {
        let n = self.nodes.len();
        let (node, ops) = match *ev {
            Event::Join {
                name,
                node,
                secret,
                early,
            } => {
                sessions.push(Session { name: NAMES[name], node, left: false });
                let conn = sessions.len() as ConnId;
                let ops = self.nodes[node % n].join(conn, NAMES[name], SECRETS[secret], early, false).await;
                (node % n, ops.expect("redis answers"))
            }
            Event::Leave(i) if live(sessions, i).is_some() => {
                let i = i % sessions.len();
                sessions[i].left = true;
                let (s, conn) = (&sessions[i], i as ConnId + 1);
                // The socket is gone: nothing reaches it any more (the hub drops its queue).
                self.views[s.node % n].joined.remove(&conn);
                (s.node % n, self.nodes[s.node % n].leave(conn, s.name).await)
            }
            Event::Send { session, to, what } if live(sessions, session).is_some() => {
                let i = session % sessions.len();
                let (s, conn) = (&sessions[i], i as ConnId + 1);
                let m = Message::parse(&message(NAMES[to], what)).unwrap();
                let ops = match self.nodes[s.node % n].route(conn, s.name, m).await {
                    Ok(ops) => ops,
                    // As the hub refuses: to a connection it still has.
                    Err(_) if self.closed.contains(&conn) => Vec::new(),
                    Err(e) => vec![Op::Core(Action::Send(conn, Message::notice(s.name, e.code, e.detail)))],
                };
                (s.node % n, ops)
            }
            _ => (0, Vec::new()),
        };
        let mut out = Deliveries::new();
        apply(&mut self.views[node], ops, &mut out);
        self.closed.extend(closes(&out));
        // Everything the step published comes before this marker.
        self.step += 1;
        let marker = format!("c{}", self.step);
        let channel = format!("{}marker", self.prefix);
        let _: i64 = self.redis.publish(&channel, &marker).await.unwrap();
        let mut stream = self.sub.on_message();
        loop {
            let msg = tokio::time::timeout(Duration::from_secs(5), stream.next())
                .await
                .expect("the marker within 5 s")
                .expect("subscribed");
            let channel: String = msg.get_channel_name().to_owned();
            let payload = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
            if payload == marker {
                break;
            }
            let targets: Vec<usize> = if channel.ends_with("presence") {
                (0..n).collect()
            } else {
                let node = channel.rsplit("n:n").next().and_then(|i| i.parse().ok());
                vec![node.expect("a node's channel")]
            };
            for i in targets {
                let ops = parse_op(&payload, &format!("n{i}")).expect("well-formed op");
                apply(&mut self.views[i], ops, &mut out);
            }
        }
        self.closed.extend(closes(&out));
        out
    }

    /// No orphans: every key is one the scripts know, every call record has its mirror and
    /// both parties exist, every connected user is online on a node.
    async fn assert_consistent(&mut self) {
        let keys: Vec<String> = self.redis.keys(format!("{}*", self.prefix)).await.unwrap();
        let p = &self.prefix;
        for key in &keys {
            let rest = &key[p.len()..];
            let known = ["online", "due", "nodes", "epoch", "pv", "settings"].contains(&rest)
                || ["u:", "c:", "ahead:", "held:", "n:"].iter().any(|k| rest.starts_with(k));
            assert!(known, "unknown key {key}");
            if let Some(name) = rest.strip_prefix("c:") {
                let (peer, caller): (String, String) = self.redis.hmget(key, &["peer", "caller"]).await.unwrap();
                let (back, back_caller): (Option<String>, Option<String>) =
                    self.redis.hmget(format!("{p}c:{peer}"), &["peer", "caller"]).await.unwrap();
                assert_eq!(back.as_deref(), Some(name), "call records symmetric");
                assert_ne!(back_caller, Some(caller.clone()), "one caller per call");
                let ring: u64 = self.redis.hget(key, "ring").await.unwrap();
                let due: Option<f64> = self.redis.zscore(format!("{p}due"), format!("r:{name}")).await.unwrap();
                let ringing_caller = caller == "1" && ring > 0;
                assert_eq!(due, ringing_caller.then_some(ring as f64), "{name}'s ring deadline");
                for who in [name, &peer] {
                    let exists: bool = self.redis.exists(format!("{p}u:{who}")).await.unwrap();
                    assert!(exists, "{who} in a call is known");
                }
            }
            for list in ["held:", "ahead:"] {
                if let Some(name) = rest.strip_prefix(list) {
                    let exists: bool = self.redis.exists(format!("{p}u:{name}")).await.unwrap();
                    assert!(exists, "{key} belongs to a known user");
                }
            }
            if rest == "due" {
                let due: Vec<(String, f64)> = self.redis.zrange_withscores(key, 0, -1).await.unwrap();
                for (member, at) in due {
                    // A ring deadline is its ringing caller's, a grace deadline its away user's.
                    let (owner, field) = match member.split_at(2) {
                        ("r:", name) => (format!("{p}c:{name}"), "ring"),
                        (_, name) => (format!("{p}u:{name}"), "away"),
                    };
                    let when: Option<u64> = self.redis.hget(&owner, field).await.unwrap();
                    assert_eq!(when.map(|w| w as f64), Some(at), "deadline {member}");
                }
            }
            if let Some(name) = rest.strip_prefix("u:") {
                let (node, away): (String, u64) = self.redis.hmget(key, &["node", "away"]).await.unwrap();
                let online: Option<f64> = self.redis.zscore(format!("{p}online"), name).await.unwrap();
                assert_eq!(online.is_some(), away == 0, "{name}: online iff connected");
                if away == 0 {
                    let on_node: bool = self.redis.sismember(format!("{p}n:{node}"), name).await.unwrap();
                    assert!(on_node, "{name} listed on its node");
                } else {
                    let due: Option<f64> = self.redis.zscore(format!("{p}due"), format!("a:{name}")).await.unwrap();
                    assert_eq!(due, Some(away as f64), "{name}'s grace period is due then");
                }
            }
        }
    }

    /// Every connection has left: nothing remains but the cluster's own keys and the away.
    async fn leave_all(&mut self, sessions: &mut Vec<Session>) {
        for i in 0..sessions.len() {
            self.step(sessions, &Event::Leave(i)).await;
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn one_and_three_nodes_deliver_what_the_embedded_registry_does(events in proptest::collection::vec(event(), 1..80)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            let mut oracle = Registry::new(TIMING).with_presence_max(PRESENCE_MAX);
            let mut oracle_sessions = Vec::new();
            let want: Vec<Deliveries> =
                events.iter().map(|ev| oracle_step(&mut oracle, &mut oracle_sessions, ev)).collect();
            let redis = common::Redis::start().await;
            for n in [1, 3] {
                let mut cluster = TestCluster::new(&redis.url(), &format!("n{n}:"), n).await;
                let mut sessions = Vec::new();
                for (i, ev) in events.iter().enumerate() {
                    let got = cluster.step(&mut sessions, ev).await;
                    prop_assert_eq!(&got, &want[i], "step {} {:?} ({} nodes)", i, ev, n);
                    cluster.assert_consistent().await;
                }
                cluster.leave_all(&mut sessions).await;
                cluster.assert_consistent().await;
            }
            Ok(())
        })?;
    }
}
