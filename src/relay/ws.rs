//! The axum WebSocket shell around [`Registry`]: admits connections, reads frames, enforces the
//! per-connection limits, asks the core, writes frames. No protocol decisions are made here.

use super::cluster::{self, Cluster, ClusterError, Op, Partner};
use super::limits::{RateLimiter, Verdict};
use super::queue::{self, TrySendError};
use super::registry::{Action, ConnId, Registry, Timing};
use crate::signal::{
    close_reason, validate_name, Code, Kind, Message, KEY_PROTOCOL, MAX_KEY_BYTES, SUBPROTOCOL,
};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, Path, Query, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::time::Instant;

/// Limits and timings of the relay. Every field has a CLI flag (see `config.rs`).
#[derive(Clone, Debug)]
pub struct RelayConfig {
    pub timing: Timing,
    /// Largest text message accepted (a large SDP offer is ~10 KiB).
    pub max_message_bytes: usize,
    pub rate_per_sec: u32,
    pub rate_burst: u32,
    /// Dropped messages in a row before a flooder is disconnected.
    pub rate_max_strikes: u32,
    pub max_connections: usize,
    pub max_connections_per_ip: usize,
    pub ping_interval: Duration,
    /// A connection that sent nothing (not even a pong) for this long is dropped.
    pub idle_timeout: Duration,
    /// Frames queued for one connection before it counts as a stuck consumer and is dropped.
    pub outbox: usize,
    /// Origins allowed to open the WebSocket besides the page's own; `*` allows any.
    pub allowed_origins: Vec<String>,
    /// Most names in a presence list; see [`Registry::with_presence_max`].
    pub presence_max: usize,
    /// STUN/TURN servers: each signed-in person gets theirs in a `config` message; the
    /// public `/config.json` lists the STUN servers only.
    pub ice: super::ice::IceSettings,
}

impl Default for RelayConfig {
    fn default() -> RelayConfig {
        RelayConfig {
            timing: Timing::default(),
            max_message_bytes: 64 * 1024,
            rate_per_sec: 50,
            rate_burst: 200,
            rate_max_strikes: 500,
            max_connections: 20_000,
            max_connections_per_ip: 64,
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(50),
            outbox: 256,
            allowed_origins: Vec::new(),
            presence_max: super::registry::PRESENCE_MAX,
            ice: super::ice::IceSettings::default(),
        }
    }
}

enum Outbound {
    Text(String),
    Ping,
    /// An orderly close, after everything queued before it.
    Close(u16, String),
}

struct Outbox {
    /// Also ends the connection with a close frame that skips the queue (`jump`).
    tx: queue::Sender<Outbound>,
    /// The `Host` the browser connected to: where it reaches the embedded STUN server.
    host: Option<Box<str>>,
    name: Box<str>,
    /// What the client said of itself: a cluster node registers it again after Redis lost it.
    client: Client,
    /// Signed in (has had its own presence list): presence broadcasts reach it.
    joined: bool,
    /// Cluster mode: messages for it that another node published while its sign-in was still
    /// on its way back from Redis; they follow its greeting (presence, config, held messages).
    early: Vec<String>,
}

/// At most this many [`Outbox::early`] messages (a sign-in takes one Redis round trip).
const EARLY_MAX: usize = 64;

#[derive(Default)]
struct Inner {
    registry: Registry,
    outboxes: HashMap<ConnId, Outbox>,
    per_ip: HashMap<IpAddr, usize>,
    /// Cluster mode: the newest presence broadcast applied (version, list).
    presence: Option<(u64, Vec<String>)>,
    /// Cluster mode: the answered call each local connection's user is in, as Redis last said
    /// (partner, whether they called, where it is connected); see [`Hub::direct`].
    partners: HashMap<ConnId, Partner>,
}

/// Shared relay state: the core, one outbound queue per live connection, and counters.
pub struct Hub {
    config: RelayConfig,
    inner: Mutex<Inner>,
    next_id: AtomicU64,
    started: Instant,
    relayed: AtomicU64,
    accepted: AtomicU64,
    rejections: Mutex<BTreeMap<&'static str, u64>>,
    /// Several nodes as one relay: the decisions are Redis' (see `cluster`), not `registry`'s.
    pub(super) cluster: Option<Arc<Cluster>>,
}

impl Hub {
    pub fn new(config: RelayConfig) -> Arc<Hub> {
        Hub::build(config, None)
    }

    /// A node of a cluster on Redis; starts the tasks that keep it in the cluster.
    pub async fn clustered(config: RelayConfig, cluster: Cluster) -> Result<Arc<Hub>, ClusterError> {
        let cluster = Arc::new(cluster);
        let hub = Hub::build(config, Some(Arc::clone(&cluster)));
        super::node::start(&hub, &cluster).await?;
        Ok(hub)
    }

    fn build(config: RelayConfig, cluster: Option<Arc<Cluster>>) -> Arc<Hub> {
        let inner = Inner {
            registry: Registry::new(config.timing).with_presence_max(config.presence_max),
            ..Inner::default()
        };
        Arc::new(Hub {
            config,
            inner: Mutex::new(inner),
            next_id: AtomicU64::new(1),
            started: Instant::now(),
            relayed: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
            rejections: Mutex::new(BTreeMap::new()),
            cluster,
        })
    }

    /// Open connections.
    pub fn connections(&self) -> usize {
        self.lock().outboxes.len()
    }

    fn now_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in the core; keep serving regardless.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn count_rejection(&self, reason: &'static str) {
        *self
            .rejections
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .entry(reason)
            .or_default() += 1;
    }

    /// Runs `f` on the core and carries out the actions it returns, all under one lock so
    /// deliveries keep the order the core decided.
    fn with_core(&self, f: impl FnOnce(&mut Registry, u64) -> Vec<Action>) {
        let now = self.now_ms();
        let mut inner = self.lock();
        let actions = f(&mut inner.registry, now);
        for action in actions {
            self.carry_out(&mut inner, action);
        }
    }

    fn carry_out(&self, inner: &mut Inner, action: Action) {
        match action {
            Action::Send(conn, m) => {
                match m.code {
                    Some(code) if m.is_from_system() => self.count_rejection(code.as_str()),
                    _ if m.kind != Kind::Presence => {
                        self.relayed.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {}
                }
                queue_text(self, inner, conn, |_| m.to_json());
            }
            Action::Config(conn, name) => {
                queue_text(self, inner, conn, |outbox| {
                    let host = outbox.host.as_deref();
                    let servers = self.config.ice.servers_for(&name, host, unix_now());
                    Message::config(&name, servers).to_json()
                });
            }
            Action::Close(conn, code, reason) => {
                // Queued, so the notice that explains the close goes out first.
                if let Some(outbox) = inner.outboxes.remove(&conn) {
                    if let Err(TrySendError::Full) = outbox.tx.try_send(Outbound::Close(code, reason.clone()))
                    {
                        outbox.tx.jump(Outbound::Close(code, reason));
                    }
                }
            }
        }
    }

    /// Carries out a cluster's decisions, in order, under one lock.
    pub(super) fn apply(&self, ops: Vec<Op>) {
        let bounced = self.apply_direct(ops);
        debug_assert!(
            bounced.is_empty(),
            "direct messages come from the node's channel only"
        );
    }

    /// [`Hub::apply`], returning the direct messages that must go through Redis again, as
    /// (from, to, json).
    pub(super) fn apply_direct(&self, ops: Vec<Op>) -> Vec<(String, String, String)> {
        let mut bounced = Vec::new();
        if ops.is_empty() {
            return bounced;
        }
        let mut inner = self.lock();
        let mut greeted = Vec::new();
        for op in ops {
            match op {
                Op::Relay(conn, json) => {
                    self.relayed.fetch_add(1, Ordering::Relaxed);
                    queue_after_greeting(self, &mut inner, conn, json);
                }
                Op::Core(action) => self.carry_out(&mut inner, action),
                Op::Link { conn, peer } => match peer {
                    Some(peer) => {
                        inner.partners.insert(conn, peer);
                    }
                    None => {
                        inner.partners.remove(&conn);
                    }
                },
                Op::Direct { conn, to, from, json } => {
                    // Only to a connection that is still `to`'s, in a call with `from`.
                    let agreed = inner.partners.get(&conn).is_some_and(|p| p.name == from);
                    if agreed && inner.outboxes.get(&conn).is_some_and(|o| *o.name == *to) {
                        self.relayed.fetch_add(1, Ordering::Relaxed);
                        queue_after_greeting(self, &mut inner, conn, json);
                    } else {
                        bounced.push((from, to, json));
                    }
                }
                Op::Presence { skip, version, users } => {
                    if inner.presence.as_ref().is_some_and(|(v, _)| *v >= version) {
                        continue; // older than what everyone here has
                    }
                    let targets: Vec<(ConnId, Box<str>)> = inner
                        .outboxes
                        .iter()
                        .filter(|(c, o)| o.joined && Some(**c) != skip)
                        .map(|(c, o)| (*c, o.name.clone()))
                        .collect();
                    for (conn, name) in targets {
                        queue_text(self, &mut inner, conn, |_| {
                            Message::presence(&name, users.clone()).to_json()
                        });
                    }
                    inner.presence = Some((version, users));
                }
                Op::Joined {
                    conn,
                    name,
                    version,
                    users,
                } => {
                    // A broadcast that crossed this join may be newer than the joiner's list.
                    let users = match &inner.presence {
                        Some((v, newer)) if *v > version => newer.clone(),
                        _ => users,
                    };
                    queue_text(self, &mut inner, conn, |_| {
                        Message::presence(&name, users).to_json()
                    });
                    if let Some(outbox) = inner.outboxes.get_mut(&conn) {
                        outbox.joined = true;
                        greeted.push(conn);
                    }
                }
            }
        }
        // After the whole sign-in (its config and held messages are in the same ops).
        for conn in greeted {
            let early = inner
                .outboxes
                .get_mut(&conn)
                .map(|o| std::mem::take(&mut o.early))
                .unwrap_or_default();
            for json in early {
                queue_text(self, &mut inner, conn, |_| json);
            }
        }
        bounced
    }

    /// Connection `conn` signs in as `name`.
    async fn join(&self, conn: ConnId, name: &str, client: &Client) {
        let (key, early) = (client.key.as_deref(), client.early);
        match &self.cluster {
            None => self.with_core(|r, _| r.join(conn, name, key, early)),
            // Boxed here and below: a connection's task is sized for its largest await, and the
            // Redis calls' futures would otherwise cost every idle connection ~1 KiB.
            Some(cluster) => match Box::pin(cluster.join(conn, name, key, early, false)).await {
                Ok(ops) => self.apply(ops),
                Err(e) => {
                    tracing::warn!(conn, %name, error = %e, "sign-in refused: redis unavailable");
                    self.count_rejection(Code::Unavailable.as_str());
                    self.apply(cluster::unavailable(conn, name));
                }
            },
        }
    }

    /// A text frame from `conn`, signed in as `name`.
    async fn handle(&self, conn: ConnId, name: &str, text: &str) {
        match &self.cluster {
            None => self.with_core(|r, now| r.handle(conn, text, now)),
            Some(cluster) => Box::pin(self.handle_clustered(cluster, conn, name, text)).await,
        }
    }

    async fn handle_clustered(&self, cluster: &Cluster, conn: ConnId, name: &str, text: &str) {
        let stamped = match Message::parse(text) {
            Ok(m) if m.kind == Kind::Config => {
                return self.apply(vec![Op::Core(Action::Config(conn, name.to_owned()))])
            }
            Ok(m) => super::registry::stamp(name, m),
            Err(e) => Err(e),
        };
        let (to, m) = match stamped {
            Ok(stamped) => stamped,
            Err(e) => return self.refuse(conn, e.code, &e.detail),
        };
        // Within an answered call: no script (see `direct`).
        match self.direct(conn, name, &to, &m, false) {
            Direct::Done => return,
            Direct::There(node, at) => {
                // (Counted as relayed by the node that delivers it.)
                if cluster
                    .publish_direct(&node, at, &to, name, &m.to_json())
                    .await
                    .is_ok()
                {
                    return;
                }
            }
            Direct::No => {}
        }
        match cluster.route(conn, name, &to, &m).await {
            Ok(ops) => self.apply(ops),
            Err(e)
                if e.code == Code::Unavailable
                    && matches!(self.direct(conn, name, &to, &m, true), Direct::Done) => {}
            Err(e) => self.refuse(conn, e.code, &e.detail),
        }
    }

    /// SDP, ICE and media flags within an answered call skip the route script when the
    /// sender's last word from Redis says where its partner is: on this node (delivered here,
    /// if the partner's word agrees) or on another (published straight to that node, which
    /// checks its own word). Each sender's word is current for its own messages (a connection's
    /// frames are handled one after another) and deliveries name a connection, never reused: a
    /// stale word can at most reach the old partner's gone connection, whose node sends the
    /// message through Redis again. `hangup`: Redis is away; a hang-up between two people
    /// here goes too.
    fn direct(&self, conn: ConnId, from: &str, to: &str, m: &Message, hangup: bool) -> Direct {
        let relayed = matches!(m.kind, Kind::Offer | Kind::Answer | Kind::Ice | Kind::Media);
        if !(relayed || hangup && m.kind == Kind::Hangup) {
            return Direct::No;
        }
        let mut inner = self.lock();
        let Some(Partner {
            name,
            at: Some((node, at)),
            ..
        }) = inner.partners.get(&conn)
        else {
            return Direct::No;
        };
        if name != to {
            return Direct::No;
        }
        let (node, at) = (node.clone(), *at);
        let here = self.cluster.as_ref().is_some_and(|c| c.config.node == node);
        if !here {
            return if hangup {
                Direct::No
            } else {
                Direct::There(node, at)
            };
        }
        let agreed = inner.partners.get(&at).is_some_and(|p| p.name == from);
        if !agreed || inner.outboxes.get(&at).is_none_or(|o| *o.name != *to) {
            return Direct::No;
        }
        if m.kind == Kind::Hangup {
            inner.partners.remove(&conn);
            inner.partners.remove(&at);
        }
        self.carry_out(&mut inner, Action::Send(at, m.clone()));
        Direct::Done
    }

    /// Connection `conn`, signed in as `name`, is gone.
    async fn leave(&self, conn: ConnId, name: &str) {
        match &self.cluster {
            None => self.with_core(|r, now| r.leave(conn, now)),
            Some(cluster) => self.apply(Box::pin(cluster.leave(conn, name)).await),
        }
    }

    /// The signed-in connections, as the cluster must register them again.
    pub(super) fn sessions(&self) -> Vec<Session> {
        let inner = self.lock();
        let joined = inner.outboxes.iter().filter(|(_, o)| o.joined);
        joined
            .map(|(c, o)| Session {
                conn: *c,
                name: o.name.to_string(),
                key: o.client.key.clone(),
                early: o.client.early,
                partner: inner.partners.get(c).cloned(),
            })
            .collect()
    }

    /// Tells `conn` why something was refused.
    fn refuse(&self, conn: ConnId, code: Code, text: &str) {
        let mut inner = self.lock();
        let Some(name) = inner.outboxes.get(&conn).map(|o| o.name.clone()) else {
            return;
        };
        self.carry_out(&mut inner, Action::Send(conn, Message::notice(&name, code, text)));
    }

    /// Time-driven work: ring timeouts, grace periods. The server calls this every second.
    /// (A cluster's deadlines are swept on Redis' clock by `node`.)
    pub fn tick(&self) {
        if self.cluster.is_none() {
            self.with_core(|r, now| r.tick(now));
        }
    }

    /// Tells every client the server is going away and closes their connections.
    pub fn shutdown(&self) {
        let mut inner = self.lock();
        let conns: Vec<(ConnId, Box<str>)> =
            inner.outboxes.iter().map(|(c, o)| (*c, o.name.clone())).collect();
        for (conn, name) in conns {
            for action in super::registry::shutting_down(conn, &name) {
                self.carry_out(&mut inner, action);
            }
        }
    }

    /// Ready to take sign-ins: always, unless a cluster node cannot reach Redis.
    pub fn is_ready(&self) -> bool {
        self.cluster.as_ref().is_none_or(|c| c.is_ready())
    }

    /// Prometheus text exposition.
    pub fn metrics(&self) -> String {
        let (stats, connections) = {
            let inner = self.lock();
            (inner.registry.stats(), inner.outboxes.len())
        };
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, samples: &[(&str, u64)]| {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (labels, v) in samples {
                let _ = writeln!(out, "{name}{labels} {v}");
            }
        };
        metric(
            "duet_connections",
            "gauge",
            "Open signaling connections.",
            &[("", connections as u64)],
        );
        metric(
            "duet_users_away",
            "gauge",
            "Users who dropped mid-call, within their grace period.",
            &[("", stats.away as u64)],
        );
        metric(
            "duet_calls",
            "gauge",
            "Calls in progress.",
            &[
                ("{state=\"ringing\"}", stats.calls_ringing as u64),
                ("{state=\"active\"}", stats.calls_active as u64),
            ],
        );
        metric(
            "duet_connections_accepted_total",
            "counter",
            "Connections accepted since start.",
            &[("", self.accepted.load(Ordering::Relaxed))],
        );
        metric(
            "duet_messages_relayed_total",
            "counter",
            "Messages delivered from one user to another.",
            &[("", self.relayed.load(Ordering::Relaxed))],
        );
        let rejections = self.rejections.lock().unwrap_or_else(|p| p.into_inner()).clone();
        let labels: Vec<(String, u64)> = rejections
            .iter()
            .map(|(reason, n)| (format!("{{reason=\"{reason}\"}}"), *n))
            .collect();
        let samples: Vec<(&str, u64)> = labels.iter().map(|(l, n)| (l.as_str(), *n)).collect();
        metric(
            "duet_rejections_total",
            "counter",
            "Refused messages and connections, by reason.",
            &samples,
        );
        if let Some(cluster) = &self.cluster {
            let stats = &cluster.stats;
            let load = |n: &AtomicU64| n.load(Ordering::Relaxed);
            let node = format!("{{node=\"{}\"}}", cluster.config.node.escape_default());
            let ready = u64::from(cluster.is_ready());
            metric(
                "duet_cluster_ready",
                "gauge",
                "This node reaches Redis (1) or not (0).",
                &[(&node, ready)],
            );
            let counters = [
                (
                    "duet_redis_commands_total",
                    "Commands (scripts, publishes) sent to Redis.",
                    &stats.commands,
                ),
                (
                    "duet_redis_failures_total",
                    "Redis commands that failed or timed out.",
                    &stats.failures,
                ),
                (
                    "duet_redis_pubsub_gaps_total",
                    "Times the node's subscription was lost and made again.",
                    &stats.gaps,
                ),
                (
                    "duet_redis_resyncs_total",
                    "Times the node registered its users again.",
                    &stats.resyncs,
                ),
            ];
            for (name, help, n) in counters {
                metric(name, "counter", help, &[(&node, load(n))]);
            }
            let _ = writeln!(
                out,
                "# HELP duet_redis_script_seconds Round trips of the relay's Redis scripts.\n\
                 # TYPE duet_redis_script_seconds summary\n\
                 duet_redis_script_seconds_sum{node} {:.6}\nduet_redis_script_seconds_count{node} {}",
                load(&stats.script_micros) as f64 / 1e6,
                load(&stats.scripts),
            );
        }
        out
    }

    /// Counts a connection from `ip` in, or says why not.
    fn admit(self: &Arc<Hub>, ip: IpAddr) -> Result<Admission, &'static str> {
        let mut inner = self.lock();
        let total: usize = inner.per_ip.values().sum();
        if total >= self.config.max_connections {
            return Err("the server is full right now; try again in a minute");
        }
        let n = inner.per_ip.entry(ip).or_default();
        if *n >= self.config.max_connections_per_ip {
            return Err("too many connections from your address");
        }
        *n += 1;
        Ok(Admission {
            hub: Arc::clone(self),
            ip,
        })
    }
}

/// Where a message within an answered call goes without the route script.
enum Direct {
    /// Delivered on this node.
    Done,
    /// To this node's connection.
    There(String, ConnId),
    No,
}

/// A signed-in connection, as a cluster node registers it again.
pub(super) struct Session {
    pub conn: ConnId,
    pub name: String,
    pub key: Option<String>,
    pub early: bool,
    /// The answered call it was in, as Redis last said.
    pub partner: Option<Partner>,
}

/// A message for `conn`, after its greeting: kept until it has signed in (see
/// [`Outbox::early`]).
fn queue_after_greeting(hub: &Hub, inner: &mut Inner, conn: ConnId, json: String) {
    match inner.outboxes.get_mut(&conn) {
        Some(outbox) if !outbox.joined => {
            if outbox.early.len() < EARLY_MAX {
                outbox.early.push(json);
            } else {
                tracing::warn!(conn, "message dropped: too many before the sign-in finished");
            }
        }
        _ => queue_text(hub, inner, conn, |_| json),
    }
}

/// Queues the text `make` writes for `conn`, if it is still connected; a full queue means a
/// stuck consumer. (A closed one means the connection is already ending: nothing to do.)
fn queue_text(hub: &Hub, inner: &mut Inner, conn: ConnId, make: impl FnOnce(&Outbox) -> String) {
    let Some(outbox) = inner.outboxes.get(&conn) else {
        return;
    };
    if let Err(TrySendError::Full) = outbox.tx.try_send(Outbound::Text(make(outbox))) {
        drop_stuck_consumer(hub, inner, conn);
    }
}

/// Seconds since the Unix epoch (TURN credentials expire on the TURN server's clock).
fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn host_header(headers: &HeaderMap) -> Option<&str> {
    headers.get(header::HOST).and_then(|h| h.to_str().ok())
}

/// A client whose queue is full does not read: close it now, skipping the queue.
fn drop_stuck_consumer(hub: &Hub, inner: &mut Inner, conn: ConnId) {
    tracing::warn!(conn, "outbound queue full: dropping a stuck consumer");
    hub.count_rejection("slow_consumer");
    kill(inner, conn, 1008, "too slow to receive messages");
}

fn kill(inner: &mut Inner, conn: ConnId, code: u16, reason: &str) {
    if let Some(outbox) = inner.outboxes.remove(&conn) {
        // Skips the queue: the consumer may be the problem.
        outbox.tx.jump(Outbound::Close(code, reason.to_owned()));
    }
}

/// A counted connection; uncounted when dropped.
struct Admission {
    hub: Arc<Hub>,
    ip: IpAddr,
}

impl Drop for Admission {
    fn drop(&mut self) {
        let mut inner = self.hub.lock();
        if let Some(n) = inner.per_ip.get_mut(&self.ip) {
            *n -= 1;
            if *n == 0 {
                inner.per_ip.remove(&self.ip);
            }
        }
    }
}

#[derive(Deserialize)]
struct ConnectQuery {
    key: Option<String>,
    /// `1`: the client takes an offer while it rings (see `registry::User::early`).
    early: Option<String>,
}

/// `GET /webrtc/{username}` (WebSocket), `GET /healthz`, `GET /metrics`, `GET /config.json`.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route(
            "/config.json",
            get(|State(hub): State<Arc<Hub>>, headers: HeaderMap| async move {
                axum::Json(hub.config.ice.public(host_header(&headers)))
            }),
        )
        .route("/webrtc/{username}", get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        // Whether to send this node new sign-ins: a cluster node that cannot reach Redis is not.
        .route(
            "/readyz",
            get(|State(hub): State<Arc<Hub>>| async move {
                match hub.is_ready() {
                    true => (StatusCode::OK, "ready"),
                    false => (StatusCode::SERVICE_UNAVAILABLE, "not ready: redis unavailable"),
                }
            }),
        )
        .route(
            "/metrics",
            get(|State(hub): State<Arc<Hub>>| async move { hub.metrics() }),
        )
        .with_state(hub)
}

/// Browsers always send `Origin` on WebSocket upgrades; a page on another site must not be able
/// to open a connection in the user's name (cross-site WebSocket hijacking). Clients that send
/// no `Origin` are not browsers and are allowed.
fn origin_allowed(headers: &HeaderMap, allowed: &[String]) -> bool {
    let Some(origin) = headers.get(header::ORIGIN).and_then(|o| o.to_str().ok()) else {
        return true;
    };
    if allowed.iter().any(|a| a == "*" || a.eq_ignore_ascii_case(origin)) {
        return true;
    }
    let host = host_header(headers).unwrap_or_default();
    let authority = origin.split_once("://").map(|(_, rest)| rest).unwrap_or_default();
    !host.is_empty() && authority.eq_ignore_ascii_case(host)
}

async fn upgrade(
    Path(name): Path<String>,
    Query(query): Query<ConnectQuery>,
    State(hub): State<Arc<Hub>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Response {
    let refuse = |status: StatusCode, reason: &'static str, text: String| {
        // `?name`: escaped, so a name cannot forge log lines.
        tracing::info!(?name, %peer, reason, "refused upgrade: {text}");
        hub.count_rejection(reason);
        (status, text).into_response()
    };
    if let Err(e) = validate_name(&name) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_name",
            format!("invalid name: {e}"),
        );
    }
    if !origin_allowed(&headers, &hub.config.allowed_origins) {
        let origin = headers
            .get(header::ORIGIN)
            .and_then(|o| o.to_str().ok())
            .unwrap_or_default();
        return refuse(
            StatusCode::FORBIDDEN,
            "origin",
            format!("origin not allowed: {origin}"),
        );
    }
    // The secret from the offered subprotocols (Duet pages), else from the URL (classic clients).
    let offered = headers
        .get(header::SEC_WEBSOCKET_PROTOCOL)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let from_header = offered
        .split(',')
        .find_map(|p| p.trim().strip_prefix(KEY_PROTOCOL))
        .map(str::to_owned);
    let key = from_header.or(query.key).filter(|k| !k.is_empty());
    if key.as_ref().is_some_and(|k| k.len() > MAX_KEY_BYTES) {
        return refuse(
            StatusCode::BAD_REQUEST,
            "invalid_key",
            format!("invalid key: at most {MAX_KEY_BYTES} bytes"),
        );
    }
    let early = query.early.as_deref() == Some("1");
    let host = host_header(&headers).map(Box::from);
    // Accept messages up to twice the limit so an oversized one gets a typed notice rather than
    // a dropped connection; beyond that the WebSocket layer closes with 1009.
    let hard_cap = hub.config.max_message_bytes.saturating_mul(2);
    ws.protocols([SUBPROTOCOL])
        .max_message_size(hard_cap)
        .max_frame_size(hard_cap)
        // Signaling messages are small: don't reserve tungstenite's 128 KiB per socket.
        .read_buffer_size(256)
        .write_buffer_size(0)
        // Boxed: an async fn keeps its arguments' space for its whole life, and the socket is
        // moved out (split) at once.
        .on_upgrade(move |socket| {
            let client = Client { key, early };
            serve(Box::new(socket), hub, name, client, peer.ip(), host)
        })
}

/// What a connecting client said of itself in the URL's query.
#[derive(Clone)]
struct Client {
    key: Option<String>,
    early: bool,
}

async fn serve(
    socket: Box<WebSocket>,
    hub: Arc<Hub>,
    name: String,
    client: Client,
    ip: IpAddr,
    host: Option<Box<str>>,
) {
    let (mut sink, mut stream) = (*socket).split();
    let _admission = match hub.admit(ip) {
        Ok(a) => a,
        Err(text) => {
            tracing::warn!(%name, %ip, "refused connection: {text}");
            hub.count_rejection(Code::TooManyConnections.as_str());
            let notice = Message::notice(&name, Code::TooManyConnections, text);
            let _ = sink.send(WsMessage::Text(notice.to_json().into())).await;
            let frame = CloseFrame {
                code: 1013, // try again later
                reason: text.into(),
            };
            let _ = sink.send(WsMessage::Close(Some(frame))).await;
            return;
        }
    };
    let conn = hub.next_id.fetch_add(1, Ordering::Relaxed);
    hub.accepted.fetch_add(1, Ordering::Relaxed);
    let cfg = hub.config.clone();
    let (tx, mut rx) = queue::bounded(cfg.outbox);
    // The reader waits for room in its own queue before handling the next frame: a client that
    // sends faster than it reads its replies is slowed by TCP backpressure, not buffered.
    let own_queue = tx.clone();
    let outbox = Outbox {
        tx,
        host,
        name: name.as_str().into(),
        client,
        joined: false,
        early: Vec::new(),
    };
    let client = outbox.client.clone();
    hub.lock().outboxes.insert(conn, outbox);
    tracing::info!(conn, %name, %ip, "connected");

    let mut writer = tokio::spawn(async move {
        while let Some(next) = rx.recv().await {
            let frame = match next {
                Outbound::Text(text) => WsMessage::Text(text.into()),
                Outbound::Ping => WsMessage::Ping(Default::default()),
                Outbound::Close(code, reason) => WsMessage::Close(Some(CloseFrame {
                    code,
                    reason: close_reason(&reason).into(),
                })),
            };
            let closing = matches!(frame, WsMessage::Close(_));
            if sink.send(frame).await.is_err() || closing {
                return;
            }
        }
    });

    hub.join(conn, &name, &client).await;
    drop(client); // not kept in this task's state for the connection's whole life

    let mut limiter = RateLimiter::new(
        cfg.rate_per_sec,
        cfg.rate_burst,
        cfg.rate_max_strikes,
        hub.now_ms(),
    );
    let mut ping = tokio::time::interval(cfg.ping_interval);
    ping.tick().await; // the first tick is immediate
    let mut last_seen = Instant::now();
    let mut writer_done = false;
    // Whether the client ended the connection (else we did, and owe it a closing handshake).
    let mut client_left = false;
    loop {
        tokio::select! {
            frame = stream.next() => {
                let frame = match frame {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        // E.g. a frame over the hard cap; tell the client why before dropping it.
                        let text = e.to_string();
                        let code = if text.contains("too long") || text.contains("Space limit") { 1009 } else { 1002 };
                        tracing::info!(conn, %name, error = %text, "read error");
                        hub.count_rejection(if code == 1009 { "frame_too_large" } else { "protocol_error" });
                        kill(&mut hub.lock(), conn, code, &text);
                        break;
                    }
                    None => {
                        client_left = true;
                        break;
                    }
                };
                last_seen = Instant::now();
                let text = match frame {
                    WsMessage::Text(text) => Some(text),
                    WsMessage::Binary(_) => None,
                    WsMessage::Close(_) => {
                        client_left = true;
                        break;
                    }
                    WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                };
                match limiter.check(hub.now_ms()) {
                    Verdict::Pass => {}
                    Verdict::DropAndWarn => {
                        tracing::info!(conn, %name, "rate limited");
                        hub.refuse(conn, Code::RateLimited, "too many messages; slow down");
                        continue;
                    }
                    Verdict::Drop => {
                        hub.count_rejection(Code::RateLimited.as_str());
                        continue;
                    }
                    Verdict::Disconnect => {
                        tracing::warn!(conn, %name, "disconnecting a flooder");
                        hub.count_rejection("flood");
                        // In order: the rate_limited notice queued earlier goes out first.
                        hub.with_core(|_, _| vec![Action::Close(conn, 1008, "rate limit exceeded".into())]);
                        break;
                    }
                }
                match tokio::time::timeout(cfg.idle_timeout, own_queue.ready()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(_)) => break, // closed by the core meanwhile
                    Err(_) => {
                        drop_stuck_consumer(&hub, &mut hub.lock(), conn);
                        break;
                    }
                }
                match text {
                    Some(text) if text.len() > cfg.max_message_bytes => {
                        let detail = format!("message of {} bytes; the limit is {}", text.len(), cfg.max_message_bytes);
                        hub.refuse(conn, Code::TooLarge, &detail);
                    }
                    Some(text) => hub.handle(conn, &name, text.as_str()).await,
                    None => hub.refuse(conn, Code::BadMessage, "binary frames are not part of the protocol"),
                }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > cfg.idle_timeout {
                    tracing::info!(conn, %name, "no sign of life: dropping");
                    hub.count_rejection("idle_timeout");
                    kill(&mut hub.lock(), conn, 1001, "no response to ping");
                    break;
                }
                let mut inner = hub.lock();
                match inner.outboxes.get(&conn).map(|o| o.tx.try_send(Outbound::Ping)) {
                    Some(Ok(())) => {}
                    Some(Err(TrySendError::Full)) => {
                        drop_stuck_consumer(&hub, &mut inner, conn);
                        break;
                    }
                    Some(Err(TrySendError::Closed)) | None => break,
                }
            }
            _ = &mut writer => {
                writer_done = true;
                break;
            }
        }
    }
    hub.leave(conn, &name).await;
    {
        let mut inner = hub.lock();
        inner.outboxes.remove(&conn);
        inner.partners.remove(&conn);
    }
    drop(own_queue);
    // Let the writer flush a close frame, but never wait long on a dead peer.
    if !writer_done
        && tokio::time::timeout(Duration::from_secs(2), &mut writer)
            .await
            .is_err()
    {
        writer.abort();
    }
    if !client_left {
        // Closing handshake: read (and discard) until the client's close, briefly. Dropping a
        // socket with unread data makes the kernel reset it, and the client would lose our close
        // frame and its reason.
        let drain = async {
            while let Some(Ok(frame)) = stream.next().await {
                if matches!(frame, WsMessage::Close(_)) {
                    break;
                }
            }
        };
        let _ = tokio::time::timeout(Duration::from_secs(1), drain).await;
    }
    tracing::info!(conn, %name, "disconnected");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(origin: Option<&str>, host: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(header::HOST, host.parse().unwrap());
        if let Some(o) = origin {
            h.insert(header::ORIGIN, o.parse().unwrap());
        }
        h
    }

    /// A message another node published while a sign-in was still on its way back from Redis
    /// reaches the client after its greeting, not before it (a flaky cluster test caught it).
    #[tokio::test]
    async fn cluster_messages_before_the_sign_in_follow_the_greeting() {
        let hub = Hub::new(RelayConfig::default());
        let (tx, mut rx) = queue::bounded(16);
        let outbox = Outbox {
            tx,
            host: None,
            name: "bob".into(),
            client: Client {
                key: None,
                early: true,
            },
            joined: false,
            early: Vec::new(),
        };
        hub.lock().outboxes.insert(7, outbox);
        hub.apply(vec![Op::Relay(7, "published meanwhile".into())]);
        hub.apply(vec![
            Op::Joined {
                conn: 7,
                name: "bob".into(),
                version: 1,
                users: vec!["bob".into()],
            },
            Op::Relay(7, "held".into()),
        ]);
        let mut got = Vec::new();
        for _ in 0..3 {
            match rx.recv().await {
                Some(Outbound::Text(t)) => got.push(t),
                _ => panic!("a text frame"),
            }
        }
        assert!(got[0].contains("\"presence\""), "{got:?}");
        assert_eq!(got[1..], ["held", "published meanwhile"]);
        // Signed in: straight through.
        hub.apply(vec![Op::Relay(7, "later".into())]);
        assert!(matches!(rx.recv().await, Some(Outbound::Text(t)) if t == "later"));
    }

    #[test]
    fn same_origin_and_listed_origins_are_allowed() {
        assert!(origin_allowed(&headers(None, "duet.example"), &[]));
        assert!(origin_allowed(
            &headers(Some("https://duet.example"), "duet.example"),
            &[]
        ));
        assert!(origin_allowed(
            &headers(Some("http://127.0.0.1:3000"), "127.0.0.1:3000"),
            &[]
        ));
        assert!(!origin_allowed(
            &headers(Some("https://evil.example"), "duet.example"),
            &[]
        ));
        assert!(!origin_allowed(&headers(Some("null"), "duet.example"), &[]));
        let list = ["https://app.example".to_string()];
        assert!(origin_allowed(
            &headers(Some("https://app.example"), "duet.example"),
            &list
        ));
        assert!(origin_allowed(
            &headers(Some("https://x.example"), "duet.example"),
            &["*".into()]
        ));
    }
}
