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
        Action::Close(conn, code, _) => out
            .entry(*conn)
            .or_default()
            .messages
            .push(format!("close {code}")),
        Action::Config(conn, name) => out
            .entry(*conn)
            .or_default()
            .messages
            .push(format!("config {name}")),
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
            sessions.push(Session {
                name: NAMES[name],
                node,
                left: false,
            });
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
            Op::Link { .. } | Op::Direct { .. } => {}
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
            Op::Joined {
                conn, name, users, ..
            } => {
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
            nodes.push(
                Cluster::connect(config, TIMING, PRESENCE_MAX)
                    .await
                    .expect("node connects"),
            );
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
                sessions.push(Session {
                    name: NAMES[name],
                    node,
                    left: false,
                });
                let conn = sessions.len() as ConnId;
                let ops = self.nodes[node % n]
                    .join(conn, NAMES[name], SECRETS[secret], early, false)
                    .await;
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
                let ops = match duet::relay::registry::stamp(s.name, m) {
                    Ok((to, m)) => self.nodes[s.node % n].route(conn, s.name, &to, &m).await,
                    Err(e) => Err(e),
                };
                let ops = match ops {
                    Ok(ops) => ops,
                    // As the hub refuses: to a connection it still has.
                    Err(_) if self.closed.contains(&conn) => Vec::new(),
                    Err(e) => vec![Op::Core(Action::Send(
                        conn,
                        Message::notice(s.name, e.code, e.detail),
                    ))],
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
            let known = ["online", "due", "epoch", "pv", "settings"].contains(&rest)
                || ["u:", "c:", "ahead:", "held:", "n:"]
                    .iter()
                    .any(|k| rest.starts_with(k));
            assert!(known, "unknown key {key}");
            if let Some(name) = rest.strip_prefix("c:") {
                let (peer, caller): (String, String) =
                    self.redis.hmget(key, &["peer", "caller"]).await.unwrap();
                let (back, back_caller): (Option<String>, Option<String>) = self
                    .redis
                    .hmget(format!("{p}c:{peer}"), &["peer", "caller"])
                    .await
                    .unwrap();
                assert_eq!(back.as_deref(), Some(name), "call records symmetric");
                assert_ne!(back_caller, Some(caller.clone()), "one caller per call");
                let ring: u64 = self.redis.hget(key, "ring").await.unwrap();
                let due: Option<f64> = self
                    .redis
                    .zscore(format!("{p}due"), format!("r:{name}"))
                    .await
                    .unwrap();
                let ringing_caller = caller == "1" && ring > 0;
                assert_eq!(
                    due,
                    ringing_caller.then_some(ring as f64),
                    "{name}'s ring deadline"
                );
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
                        ("n:", _) => continue, // a node's lease
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
                    let due: Option<f64> = self
                        .redis
                        .zscore(format!("{p}due"), format!("a:{name}"))
                        .await
                        .unwrap();
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

// ---- Races and failures, through real WebSockets ----

use common::{connect_at, notice_code, try_connect_at, Client};
use duet::relay::{Hub, RelayConfig};

/// `n` nodes in this process on `redis`, with `timing`.
async fn nodes(redis: &common::Redis, n: usize, timing: Timing) -> Vec<std::net::SocketAddr> {
    let config = RelayConfig {
        timing,
        ..RelayConfig::default()
    };
    let mut addrs = Vec::new();
    for i in 0..n {
        let cluster = ClusterConfig {
            url: redis.url(),
            prefix: "duet:".into(),
            node: format!("n{i}"),
        };
        let cluster = Cluster::connect(cluster, config.timing, config.presence_max)
            .await
            .unwrap();
        addrs.push(common::serve(Hub::clustered(config.clone(), cluster).await.unwrap()).await);
    }
    addrs
}

const CALM: Timing = Timing {
    ring_timeout_ms: 30_000,
    grace_ms: 30_000,
};

#[tokio::test]
async fn two_callers_on_two_nodes_ring_one_person_exactly_once() {
    let redis = common::Redis::start().await;
    let n = nodes(&redis, 3, CALM).await;
    for run in 0..30 {
        let (ann, bob, cat) = (format!("ann{run}"), format!("bob{run}"), format!("cat{run}"));
        let mut a = connect_at(n[0], &ann, None).await;
        let mut b = connect_at(n[1], &bob, None).await;
        let mut c = connect_at(n[2], &cat, None).await;
        let call = json!({"type":"call_start","toUser":ann});
        tokio::join!(b.send(call.clone()), c.send(call));
        let first = a.recv().await;
        assert_eq!(first["type"], "call_start", "{first}");
        let (winner, loser) = if first["fromUser"] == bob.as_str() {
            (&bob, &mut c)
        } else {
            (&cat, &mut b)
        };
        assert_eq!(
            notice_code(&loser.recv().await),
            "busy",
            "run {run}: {winner} won"
        );
        // Nothing else rang: the loser's note, sent after its refusal, is ann's next message.
        loser
            .send(json!({"type":"call_back","toUser":ann,"msg":"marker"}))
            .await;
        assert_eq!(a.recv().await["msg"], "marker", "run {run}");
    }
}

#[tokio::test]
async fn glare_across_nodes_makes_exactly_one_call() {
    let redis = common::Redis::start().await;
    let n = nodes(&redis, 2, CALM).await;
    let mut r = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    for run in 0..30 {
        let (ann, bob) = (format!("ann{run}"), format!("bob{run}"));
        let mut a = connect_at(n[0], &ann, None).await;
        let mut b = connect_at(n[1], &bob, None).await;
        tokio::join!(
            a.send(json!({"type":"call_start","toUser":bob})),
            b.send(json!({"type":"call_start","toUser":ann}))
        );
        // Each hears the other's call (the clients settle glare), and Redis holds one call.
        assert_eq!(a.recv().await["type"], "call_start");
        assert_eq!(b.recv().await["type"], "call_start");
        let (a_peer, a_caller): (String, String) = r
            .hmget(format!("duet:c:{ann}"), &["peer", "caller"])
            .await
            .unwrap();
        let (b_peer, b_caller): (String, String) = r
            .hmget(format!("duet:c:{bob}"), &["peer", "caller"])
            .await
            .unwrap();
        assert_eq!((a_peer.as_str(), b_peer.as_str()), (bob.as_str(), ann.as_str()));
        assert_ne!(a_caller, b_caller, "run {run}: one caller");
    }
}

#[tokio::test]
async fn the_same_secret_on_another_node_replaces_the_old_session_and_its_late_close_changes_nothing() {
    let redis = common::Redis::start().await;
    let n = nodes(&redis, 2, CALM).await;
    let mut watcher = connect_at(n[0], "watcher", None).await;
    for run in 0..20 {
        let ann = format!("ann{run}");
        let mut old = connect_at(n[run % 2], &ann, Some("ka")).await;
        let mut new = connect_at(n[(run + 1) % 2], &ann, Some("ka")).await;
        assert_eq!(notice_code(&old.recv().await), "replaced");
        old.closed_with().await;
        drop(old); // its node runs the leave now, after the new session's join
                   // Still online, exactly once, and reachable on the new node.
        watcher.send(json!({"type":"call_start","toUser":ann})).await;
        assert_eq!(new.recv().await["fromUser"], "watcher", "run {run}");
        watcher.send(json!({"type":"hangup","toUser":ann})).await;
        assert_eq!(new.recv().await["type"], "hangup");
        drop(new);
    }
    let mut r = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // The last leaves are processed in order with the watcher's next request.
    watcher.send(json!({"type":"config"})).await;
    watcher.recv().await;
    let online: Vec<String> = r.zrange("duet:online", 0, -1).await.unwrap();
    assert!(
        online.iter().filter(|n| n.starts_with("ann")).count() <= 1,
        "{online:?}"
    );
}

/// A node as its own process (the real binary), so it can be killed with SIGKILL.
struct Process {
    child: tokio::process::Child,
    addr: std::net::SocketAddr,
}

impl Process {
    async fn start(redis: &common::Redis, node: &str, args: &[&str]) -> Process {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_duet"))
            .args([
                "--addr",
                &addr.to_string(),
                "--redis-url",
                &redis.url(),
                "--node-id",
                node,
            ])
            .args(args)
            .env("LEPTOS_OUTPUT_NAME", "duet")
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("the server binary starts");
        for _ in 0..500 {
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                return Process { child, addr };
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("node {node} did not listen on {addr}");
    }
}

#[tokio::test]
async fn a_killed_nodes_people_leave_within_the_lease_and_can_resume_their_call_on_another_node() {
    let redis = common::Redis::start().await;
    let grace = ["--grace-secs", "30"];
    let one = Process::start(&redis, "one", &grace).await;
    let mut two = Process::start(&redis, "two", &grace).await;
    let three = Process::start(&redis, "three", &grace).await;
    let mut ann = connect_at(one.addr, "ann", Some("ka")).await;
    let mut bob = connect_at(two.addr, "bob", Some("kb")).await;
    ann.send(json!({"type":"call_start","toUser":"bob"})).await;
    bob.recv().await;
    bob.send(json!({"type":"call_back","toUser":"ann","msg":"1"}))
        .await;
    assert_eq!(ann.recv().await["msg"], "1");

    two.child.start_kill().unwrap();
    let killed = std::time::Instant::now();
    // Ann's list drops bob within lease + sweep (6 s + 1 s) — and the call waits for him.
    let within = Duration::from_secs(8);
    loop {
        let left = within
            .checked_sub(killed.elapsed())
            .expect("bob left ann's list in time");
        let v = ann.recv_within(left).await.expect("bob left ann's list in time");
        if v["type"] == "presence" && v["users"] == json!(["ann"]) {
            break;
        }
        assert_ne!(v["type"], "hangup", "no hang-up within the grace period: {v}");
    }
    println!("bob left ann's list {:?} after the kill", killed.elapsed());
    ann.send(json!({"type":"_ice","toUser":"bob","iceCandidate":{"candidate":"held"}}))
        .await;
    let mut bob = connect_at(three.addr, "bob", Some("kb")).await;
    assert_eq!(bob.recv().await["iceCandidate"]["candidate"], "held");
    bob.send(json!({"type":"_ice","toUser":"ann","iceCandidate":{"candidate":"back"}}))
        .await;
    assert_eq!(ann.recv().await["iceCandidate"]["candidate"], "back");
}

#[tokio::test]
async fn nodes_with_other_relay_settings_refuse_to_join() {
    let redis = common::Redis::start().await;
    let _one = Process::start(&redis, "one", &["--ring-timeout-secs", "30"]).await;
    let refused = tokio::process::Command::new(env!("CARGO_BIN_EXE_duet"))
        .args([
            "--addr",
            "127.0.0.1:0",
            "--redis-url",
            &redis.url(),
            "--ring-timeout-secs",
            "45",
        ])
        .env("LEPTOS_OUTPUT_NAME", "duet")
        // A node that joined after all would run for good: killed when the wait gives up.
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(60), refused)
        .await
        .expect("a node with other settings exits instead of joining")
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let log = String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("--ring-timeout-secs"), "says which settings: {log}");
}

#[tokio::test]
async fn a_node_without_redis_is_not_ready_and_refuses_sign_ins_with_unavailable() {
    let mut redis = common::Redis::start().await;
    let n = nodes(&redis, 1, CALM).await;
    let mut ann = connect_at(n[0], "ann", None).await;
    assert_eq!(common::http(n[0], "GET", "/readyz", None, None).await.status, 200);
    redis.kill().await;
    let mut refused = try_connect_at(n[0], "bob", None).await.expect("upgrade");
    assert_eq!(notice_code(&refused.recv_any().await), "unavailable");
    let (code, _) = refused.closed_with().await;
    assert_eq!(u16::from(code), 1013);
    ann.send(json!({"type":"call_start","toUser":"cat"})).await;
    assert_eq!(
        notice_code(&ann.recv().await),
        "unavailable",
        "and ann's socket stays open"
    );
    let mut ready = 200;
    for _ in 0..50 {
        ready = common::http(n[0], "GET", "/readyz", None, None).await.status;
        if ready == 503 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(ready, 503, "not ready within the next lease renewal");
    let _: &mut Client = &mut ann;
}

#[tokio::test]
async fn redis_killed_and_restarted_empty_keeps_sockets_and_same_node_calls_and_recovers_within_5_s() {
    let mut redis = common::Redis::start().await;
    let n = nodes(&redis, 2, CALM).await;
    let mut ann = connect_at(n[0], "ann", Some("ka")).await;
    let mut bob = connect_at(n[0], "bob", Some("kb")).await;
    let mut cat = connect_at(n[1], "cat", Some("kc")).await;
    ann.send(json!({"type":"call_start","toUser":"bob"})).await;
    bob.recv().await;
    bob.send(json!({"type":"call_back","toUser":"ann","msg":"1"}))
        .await;
    assert_eq!(ann.recv().await["msg"], "1");
    let ice = |to: &str, c: &str| json!({"type":"_ice","toUser":to,"iceCandidate":{"candidate":c}});

    redis.kill().await;
    // The call on one node goes on (an ICE restart's candidates, both ways).
    ann.send(ice("bob", "down-1")).await;
    assert_eq!(bob.recv().await["iceCandidate"]["candidate"], "down-1");
    bob.send(ice("ann", "down-2")).await;
    assert_eq!(ann.recv().await["iceCandidate"]["candidate"], "down-2");
    // What needs Redis is refused, with a code; nobody's socket is closed.
    cat.send(json!({"type":"call_start","toUser":"ann"})).await;
    assert_eq!(notice_code(&cat.recv().await), "unavailable");
    let mut dan = try_connect_at(n[1], "dan", None).await.expect("upgrade");
    assert_eq!(notice_code(&dan.recv_any().await), "unavailable");
    assert_eq!(u16::from(dan.closed_with().await.0), 1013);

    redis.restart_empty().await;
    let back = std::time::Instant::now();
    // Everyone is listed again, on both nodes, and the call is back in Redis: cat's call finds
    // ann busy, ann's candidates go through Redis again.
    let everyone = json!(["ann", "bob", "cat"]);
    loop {
        let v = cat
            .recv_within(Duration::from_secs(5))
            .await
            .expect("presence again within 5 s");
        if v["type"] == "presence" && v["users"] == everyone {
            break;
        }
    }
    let mut r = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    loop {
        let peer: Option<String> = r.hget("duet:c:ann", "peer").await.unwrap();
        if peer.as_deref() == Some("bob") {
            break;
        }
        assert!(
            back.elapsed() < Duration::from_secs(5),
            "the call is back in Redis within 5 s"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("consistent {:?} after redis came back", back.elapsed());
    cat.send(json!({"type":"call_start","toUser":"ann"})).await;
    assert_eq!(notice_code(&cat.recv().await), "busy");
    ann.send(ice("bob", "up-1")).await;
    assert_eq!(bob.recv().await["iceCandidate"]["candidate"], "up-1");
    let mut dan = connect_at(n[1], "dan", None).await;
    dan.send(json!({"type":"call_start","toUser":"cat"})).await;
    assert_eq!(cat.recv().await["fromUser"], "dan");
}

#[tokio::test]
async fn a_direct_message_for_a_connection_gone_goes_through_redis_again_and_waits_for_the_partner() {
    let redis = common::Redis::start().await;
    let n = nodes(&redis, 2, CALM).await;
    let mut ann = connect_at(n[0], "ann", Some("ka")).await;
    let mut bob = connect_at(n[1], "bob", Some("kb")).await;
    ann.send(json!({"type":"call_start","toUser":"bob"})).await;
    bob.recv().await;
    bob.send(json!({"type":"call_back","toUser":"ann","msg":"1"}))
        .await;
    assert_eq!(ann.recv().await["msg"], "1");
    // Within the answered call, across nodes: straight from node to node.
    let ice = |to: &str, c: &str| json!({"type":"_ice","toUser":to,"iceCandidate":{"candidate":c}});
    ann.send(ice("bob", "direct")).await;
    assert_eq!(bob.recv().await["iceCandidate"]["candidate"], "direct");
    drop(bob);
    ann.presence(&["ann"]).await;
    // What ann's node published for bob's old connection before it heard he was gone: bob's
    // node finds the connection gone and hands the message back to Redis, which holds it.
    let stale = r#"{"type":"_ice","fromUser":"ann","toUser":"bob","iceCandidate":{"candidate":"late"}}"#;
    let mut r = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: i64 = r
        .publish("duet:n:n1", format!("v\n2\nbob\nann\n{stale}"))
        .await
        .unwrap();
    // A forged or stale op for someone not in a call with the sender goes nowhere.
    let _: i64 = r.publish("duet:n:n1", "v\n2\nbob\nmallory\n{}").await.unwrap();
    loop {
        // (The bounce runs on bob's old node, apart from this test: poll Redis for it.)
        let held: i64 = r.llen("duet:held:bob").await.unwrap();
        if held == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    ann.send(ice("bob", "held")).await;
    let mut bob = connect_at(n[0], "bob", Some("kb")).await;
    assert_eq!(bob.recv().await["iceCandidate"]["candidate"], "late");
    assert_eq!(bob.recv().await["iceCandidate"]["candidate"], "held");
    bob.send(ice("ann", "back")).await;
    assert_eq!(ann.recv().await["iceCandidate"]["candidate"], "back");
    let held: i64 = r.llen("duet:held:bob").await.unwrap();
    assert_eq!(held, 0, "mallory's op was never held");
}

#[tokio::test]
async fn after_a_gap_in_its_subscription_a_node_ends_a_call_that_ended_while_it_did_not_hear() {
    let redis = common::Redis::start().await;
    let n = nodes(&redis, 2, CALM).await;
    let mut ann = connect_at(n[0], "ann", Some("ka")).await;
    let mut bob = connect_at(n[1], "bob", Some("kb")).await;
    let mut cat = connect_at(n[1], "cat", Some("kc")).await;
    ann.send(json!({"type":"call_start","toUser":"bob"})).await;
    bob.recv().await;
    bob.send(json!({"type":"call_back","toUser":"ann","msg":"1"}))
        .await;
    assert_eq!(ann.recv().await["msg"], "1");
    let mut r = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    // The call ends in Redis and the news is lost (as a hang-up published into a gap would be),
    // then every subscription drops.
    let _: i64 = r.del(&["duet:c:ann", "duet:c:bob"]).await.unwrap();
    let _: redis::Value = redis::cmd("CLIENT")
        .arg("KILL")
        .arg("TYPE")
        .arg("pubsub")
        .query_async(&mut r)
        .await
        .unwrap();
    // Both nodes subscribe again, register their people again and see the call is over.
    for (p, other) in [(&mut ann, "bob"), (&mut bob, "ann")] {
        let m = p.recv().await;
        assert_eq!(
            (m["type"].as_str(), m["fromUser"].as_str()),
            (Some("hangup"), Some(other)),
            "{m}"
        );
        assert_eq!(m["code"], "peer_disconnected");
    }
    // Nobody else hears a thing, and everyone can call again.
    cat.send(json!({"type":"call_start","toUser":"ann"})).await;
    assert_eq!(ann.recv().await["fromUser"], "cat");
}

#[tokio::test]
async fn after_a_hang_up_nothing_more_goes_straight_to_the_old_partner() {
    let redis = common::Redis::start().await;
    let n = nodes(&redis, 2, CALM).await;
    // Same node, then across nodes: the partner's node hears the call is over.
    for (run, bob_at) in [(0, n[0]), (1, n[1])] {
        let (ann, bob) = (format!("ann{run}"), format!("bob{run}"));
        let mut a = connect_at(n[0], &ann, None).await;
        let mut b = connect_at(bob_at, &bob, None).await;
        a.send(json!({"type":"call_start","toUser":bob})).await;
        b.recv().await;
        b.send(json!({"type":"call_back","toUser":ann,"msg":"1"})).await;
        assert_eq!(a.recv().await["msg"], "1");
        let ice = |to: &str| json!({"type":"_ice","toUser":to,"iceCandidate":{"candidate":"c"}});
        a.send(ice(&bob)).await;
        assert_eq!(b.recv().await["type"], "_ice", "straight, within the call");
        a.send(json!({"type":"hangup","toUser":bob})).await;
        assert_eq!(b.recv().await["type"], "hangup");
        b.send(ice(&ann)).await;
        assert_eq!(notice_code(&b.recv().await), "not_in_call", "run {run}");
        // Ann heard nothing of it: bob's note is her next message.
        b.send(json!({"type":"call_back","toUser":ann,"msg":"marker"}))
            .await;
        assert_eq!(a.recv().await["msg"], "marker", "run {run}");
    }
}
