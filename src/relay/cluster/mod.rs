//! Several Duet nodes as one relay, on Redis (`--redis-url`).
//!
//! Redis holds who is online and who is in a call with whom, and decides everything that
//! involves two names in one Lua script per operation (`relay.lua`): claim a name, route a
//! message, leave, sweep due deadlines. A script delivers by returning ops for the calling node
//! and publishing the others on the recipient node's channel, so a pair's messages keep the order
//! Redis decided them in. Deadlines use Redis `TIME`. Within an answered call, SDP and ICE skip
//! the scripts: nodes publish them straight to the partner's node ([`Op::Direct`]), which checks
//! its own record of the call. This module runs the scripts and turns ops into the relay's
//! [`Action`]s; `node.rs` keeps the node's lease, subscription and registrations alive; the
//! WebSocket shell (`ws.rs`) carries the actions out as in embedded mode.

use super::registry::{self, Action, ConnId, Timing};
use crate::signal::{Code, Kind, Message, ProtocolError, ACCEPT, DECLINE};
use redis::aio::ConnectionManager;
use redis::Script;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a node's lease lasts, and how often it renews it (3 renewals per lease).
pub const LEASE: Duration = Duration::from_secs(6);
pub const RENEW: Duration = Duration::from_secs(2);
/// A Redis command that takes longer counts as a failure (Redis unreachable).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);

const LIBRARY: &str = include_str!("relay.lua");

/// Where the cluster's state lives and who this node is.
#[derive(Clone, Debug)]
pub struct ClusterConfig {
    pub url: String,
    /// Prepended to every key and channel, so clusters can share one Redis.
    pub prefix: String,
    pub node: String,
}

/// One decision carried out by the node that receives it.
#[derive(Debug, PartialEq, Eq)]
pub enum Op {
    /// A stamped message, as JSON, for a local connection.
    Relay(ConnId, String),
    Core(Action),
    /// The presence list for every local connection but `skip` (the joiner, who has it).
    Presence {
        skip: Option<ConnId>,
        version: u64,
        users: Vec<String>,
    },
    /// The answered call `conn`'s user is in now (none: no call); see `ws.rs`.
    Link {
        conn: ConnId,
        peer: Option<Partner>,
    },
    /// `from`'s message to `to`, published straight to this node by `from`'s: delivered on
    /// `conn` if this node, too, has `to` in a call with `from`; else through Redis again.
    Direct {
        conn: ConnId,
        to: String,
        from: String,
        json: String,
    },
    /// A joiner's own presence list, unless the node has a newer one.
    Joined {
        conn: ConnId,
        name: String,
        version: u64,
        users: Vec<String>,
    },
}

/// A local user's partner in an answered call, as Redis last said.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Partner {
    pub name: String,
    /// Whether the local user called.
    pub caller: bool,
    /// The partner's node and connection; `None` while the partner is away.
    pub at: Option<(String, ConnId)>,
}

/// What went wrong talking to Redis.
#[derive(Debug)]
pub enum ClusterError {
    Redis(redis::RedisError),
    Timeout,
    /// Another node of this cluster runs with other relay settings.
    Settings {
        ours: String,
        theirs: String,
    },
    /// A script answered something it never answers (a bug, or another program's keys).
    Reply(&'static str),
}

impl std::fmt::Display for ClusterError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ClusterError::Redis(e) => write!(f, "redis: {e}"),
            ClusterError::Timeout => write!(f, "redis did not answer within {COMMAND_TIMEOUT:?}"),
            ClusterError::Reply(script) => write!(f, "unexpected reply from the {script} script"),
            ClusterError::Settings { ours, theirs } => write!(
                f,
                "the cluster's nodes run with ring/grace/presence settings {theirs}, this node with {ours}: \
                 start every node with the same --ring-timeout-secs, --grace-secs and --presence-max"
            ),
        }
    }
}

impl std::error::Error for ClusterError {}

impl From<redis::RedisError> for ClusterError {
    fn from(e: redis::RedisError) -> ClusterError {
        ClusterError::Redis(e)
    }
}

struct Scripts {
    join: Script,
    leave: Script,
    route: Script,
    tick: Script,
    settings: Script,
    relink: Script,
    redeliver: Script,
}

impl Scripts {
    fn new() -> Scripts {
        let script = |op: &str| Script::new(&format!("{LIBRARY}\nreturn op_{op}()\n"));
        Scripts {
            join: script("join"),
            leave: script("leave"),
            route: script("route"),
            tick: script("tick"),
            settings: script("settings"),
            relink: script("relink"),
            redeliver: script("redeliver"),
        }
    }
}

/// Counters for `/metrics`.
#[derive(Default)]
pub struct ClusterStats {
    pub commands: AtomicU64,
    pub failures: AtomicU64,
    pub gaps: AtomicU64,
    pub resyncs: AtomicU64,
    /// Script round trips: count and total microseconds.
    pub scripts: AtomicU64,
    pub script_micros: AtomicU64,
}

/// This node's handle on the cluster.
pub struct Cluster {
    pub config: ClusterConfig,
    redis: ConnectionManager,
    scripts: Scripts,
    /// ARGV 3–5 of every script: ring timeout, grace, presence cap.
    settings: [String; 3],
    /// The epoch of Redis' data this node registered its users in.
    epoch: Mutex<Option<String>>,
    /// Leaves that failed (Redis unreachable), retried with the lease renewal.
    pending_leaves: Mutex<Vec<(ConnId, String)>>,
    ready: AtomicBool,
    pub stats: ClusterStats,
}

/// What a lease renewal found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Renewal {
    Kept,
    /// The lease had expired (other nodes may have signed this node's users out): they must
    /// register again.
    Lost,
    /// Redis lost its data (a new epoch): the users must register again, and their calls too.
    Wiped,
}

impl Cluster {
    /// Connects, and checks this node's settings against the live nodes'.
    pub async fn connect(
        config: ClusterConfig,
        timing: Timing,
        presence_max: usize,
    ) -> Result<Cluster, ClusterError> {
        let client = redis::Client::open(config.url.as_str())?;
        let manager = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Some(COMMAND_TIMEOUT))
            .set_response_timeout(Some(COMMAND_TIMEOUT))
            .set_number_of_retries(1)
            .set_max_delay(Duration::from_millis(500));
        let redis = ConnectionManager::new_with_config(client, manager).await?;
        let cluster = Cluster {
            config,
            redis,
            scripts: Scripts::new(),
            settings: [
                timing.ring_timeout_ms.to_string(),
                timing.grace_ms.to_string(),
                presence_max.to_string(),
            ],
            epoch: Mutex::new(None),
            pending_leaves: Mutex::new(Vec::new()),
            ready: AtomicBool::new(false),
            stats: ClusterStats::default(),
        };
        let ours = cluster.settings.join(" ");
        let theirs: String = cluster.run(&cluster.scripts.settings, &[ours.as_str()]).await?;
        if theirs != ours {
            return Err(ClusterError::Settings { ours, theirs });
        }
        Ok(cluster)
    }

    /// A fresh Redis client for the node's subscription (pub/sub needs its own connection).
    pub fn client(&self) -> Result<redis::Client, ClusterError> {
        Ok(redis::Client::open(self.config.url.as_str())?)
    }

    /// This node's channel, and the one presence changes go out on.
    pub fn channels(&self) -> [String; 2] {
        let p = &self.config.prefix;
        [format!("{p}n:{}", self.config.node), format!("{p}presence")]
    }

    /// Redis answered the last lease renewal.
    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    async fn run<T: redis::FromRedisValue>(&self, script: &Script, args: &[&str]) -> Result<T, ClusterError> {
        let mut invocation = script.prepare_invoke();
        invocation
            .arg(&self.config.prefix)
            .arg(&self.config.node)
            .arg(&self.settings[..]);
        for a in args {
            invocation.arg(*a);
        }
        let mut redis = self.redis.clone();
        let started = Instant::now();
        let result = self.bounded(invocation.invoke_async(&mut redis)).await;
        self.stats.scripts.fetch_add(1, Ordering::Relaxed);
        self.stats
            .script_micros
            .fetch_add(started.elapsed().as_micros() as u64, Ordering::Relaxed);
        result
    }

    /// One Redis command, counted, within [`COMMAND_TIMEOUT`].
    async fn bounded<T>(
        &self,
        command: impl std::future::Future<Output = redis::RedisResult<T>>,
    ) -> Result<T, ClusterError> {
        self.stats.commands.fetch_add(1, Ordering::Relaxed);
        let result = match tokio::time::timeout(COMMAND_TIMEOUT, command).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(ClusterError::Redis(e)),
            Err(_) => Err(ClusterError::Timeout),
        };
        if result.is_err() {
            self.stats.failures.fetch_add(1, Ordering::Relaxed);
        }
        result
    }

    /// Connection `conn` wants `name`: see [`registry::Registry::join`]. `again`: the node
    /// registers a session it already serves (after Redis lost its data or the lease lapsed).
    pub async fn join(
        &self,
        conn: ConnId,
        name: &str,
        secret: Option<&str>,
        early: bool,
        again: bool,
    ) -> Result<Vec<Op>, ClusterError> {
        let digest = secret.map(digest).unwrap_or_default();
        let args = [
            conn.to_string(),
            name.to_owned(),
            digest,
            flag(early).into(),
            flag(again).into(),
        ];
        let ops = self.run::<Vec<String>>(&self.scripts.join, &strs(&args)).await?;
        Ok(self.ops(&ops))
    }

    /// Connection `conn`, which held `name`, is gone.
    pub async fn leave(&self, conn: ConnId, name: &str) -> Vec<Op> {
        match self
            .run::<Vec<String>>(&self.scripts.leave, &[&conn.to_string(), name])
            .await
        {
            Ok(ops) => self.ops(&ops),
            Err(e) => {
                tracing::warn!(conn, %name, error = %e, "leave kept for retry: redis unavailable");
                self.lock_pending().push((conn, name.to_owned()));
                Vec::new()
            }
        }
    }

    /// A message from `from` on `conn` to `to`, stamped (see [`registry::stamp`]): see
    /// [`registry::Registry::handle`]. Refused with [`Code::Unavailable`] when Redis is
    /// unreachable.
    pub async fn route(
        &self,
        conn: ConnId,
        from: &str,
        to: &str,
        m: &Message,
    ) -> Result<Vec<Op>, ProtocolError> {
        let kind = m.kind;
        let json = m.to_json();
        // The variants the script may deliver instead (see `op_route` in relay.lua).
        let (mut alt, mut inside) = (String::new(), String::new());
        if kind == Kind::Hangup {
            let mut c = m.clone();
            c.code = Some(Code::Cancelled);
            alt = c.to_json();
        } else if let (Kind::CallStart | Kind::CallBack, Some(sdp)) = (kind, &m.sdp) {
            // The offer inside a call_start, the answer inside an accept.
            let mut bare = m.clone();
            bare.sdp = None;
            alt = bare.to_json();
            let inner = if kind == Kind::CallStart {
                Kind::Offer
            } else {
                Kind::Answer
            };
            inside = registry::stamped(inner, from, to, sdp.clone()).to_json();
        }
        let msg = match m.msg.as_deref() {
            Some(ACCEPT) => ACCEPT,
            Some(DECLINE) => DECLINE,
            _ => "",
        };
        let args = [
            conn.to_string().as_str(),
            from,
            to,
            kind.as_str(),
            msg,
            &json,
            &alt,
            &inside,
        ]
        .map(str::to_owned);
        match self.run::<Vec<String>>(&self.scripts.route, &strs(&args)).await {
            Ok(ops) if ops.first().map(String::as_str) == Some("E") => {
                let code = ops
                    .get(1)
                    .and_then(|c| Code::named(c))
                    .unwrap_or(Code::BadMessage);
                Err(registry::refusal(code, to, kind))
            }
            Ok(ops) => Ok(self.ops(&ops)),
            Err(e) => {
                tracing::warn!(conn, %from, error = %e, "message refused: redis unavailable");
                Err(ProtocolError::new(
                    Code::Unavailable,
                    "the server cannot reach its shared state right now; try again in a moment",
                ))
            }
        }
    }

    /// After Redis lost its data: the call `name` (on `conn`) was in with `peer`, back in
    /// Redis unless either has another by now.
    pub async fn relink(
        &self,
        conn: ConnId,
        name: &str,
        peer: &str,
        caller: bool,
    ) -> Result<Vec<Op>, ClusterError> {
        let args = [
            conn.to_string(),
            name.to_owned(),
            peer.to_owned(),
            flag(caller).into(),
        ];
        let ops = self
            .run::<Vec<String>>(&self.scripts.relink, &strs(&args))
            .await?;
        Ok(self.ops(&ops))
    }

    /// Publishes `from`'s stamped message straight to the node of `to`'s connection `conn`
    /// (an answered call on two nodes: no script). Awaited in the sender's turn, on the one
    /// connection the scripts use too, so it keeps its place after the sender's earlier ones.
    pub async fn publish_direct(
        &self,
        node: &str,
        conn: ConnId,
        to: &str,
        from: &str,
        json: &str,
    ) -> Result<(), ClusterError> {
        let channel = format!("{}n:{node}", self.config.prefix);
        let op = format!("v\n{conn}\n{to}\n{from}\n{json}");
        let mut redis = self.redis.clone();
        let mut publish = redis::cmd("PUBLISH");
        publish.arg(channel).arg(op);
        self.bounded(publish.query_async::<i64>(&mut redis))
            .await
            .map(drop)
    }

    /// A direct message whose recipient's connection was gone: through the route rules again
    /// (held for a reconnecting partner, or delivered to the new connection).
    pub async fn redeliver(&self, from: &str, to: &str, json: &str) -> Vec<Op> {
        match self
            .run::<Vec<String>>(&self.scripts.redeliver, &[from, to, json])
            .await
        {
            Ok(ops) => self.ops(&ops),
            Err(e) => {
                tracing::warn!(%from, %to, error = %e, "a message for a reconnecting partner was lost: redis unavailable");
                Vec::new()
            }
        }
    }

    /// Once a second: everything due (ring timeouts, grace periods, nodes whose lease ran
    /// out); with `renew` (every [`RENEW`]) also this node's lease and its subscription's canary
    /// number `canary`, and failed leaves again. With `renew`, says whether the node's users
    /// must be registered again.
    pub async fn tick(&self, renew: bool, canary: u64) -> Result<(Option<Renewal>, Vec<Op>), ClusterError> {
        let args = [
            flag(renew).to_owned(),
            LEASE.as_millis().to_string(),
            random_id(),
            canary.to_string(),
        ];
        let mut reply = match self.run::<Vec<String>>(&self.scripts.tick, &strs(&args)).await {
            Ok(reply) if reply.len() >= 2 => reply.into_iter(),
            Ok(_) => return Err(ClusterError::Reply("tick")),
            Err(e) => {
                self.ready.store(false, Ordering::Relaxed);
                return Err(e);
            }
        };
        self.ready.store(true, Ordering::Relaxed);
        let (epoch, fresh) = (reply.next().unwrap_or_default(), reply.next().unwrap_or_default());
        let mut ops = self.ops(&reply.collect::<Vec<_>>());
        if !renew {
            return Ok((None, ops));
        }
        let renewal = {
            let mut known = self.epoch.lock().unwrap_or_else(|p| p.into_inner());
            let first = known.is_none();
            let changed = known.as_deref() != Some(epoch.as_str());
            *known = Some(epoch);
            match (first, changed, fresh == "1") {
                (true, ..) => Renewal::Kept,
                (false, true, _) => Renewal::Wiped,
                (false, false, true) => Renewal::Lost,
                (false, false, false) => Renewal::Kept,
            }
        };
        let pending = std::mem::take(&mut *self.lock_pending());
        for (conn, name) in pending {
            ops.extend(self.leave(conn, &name).await);
        }
        Ok((Some(renewal), ops))
    }

    fn lock_pending(&self) -> std::sync::MutexGuard<'_, Vec<(ConnId, String)>> {
        self.pending_leaves.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ops from a script or the node's channel; malformed ones are logged and skipped.
    pub fn ops(&self, raw: &[String]) -> Vec<Op> {
        let mut out = Vec::new();
        for op in raw {
            match parse_op(op, &self.config.node) {
                Some(ops) => out.extend(ops),
                None => tracing::error!(op = %op.escape_debug(), "malformed cluster op"),
            }
        }
        out
    }
}

/// One op string (see `relay.lua`) as the actions it stands for on node `node`; canaries
/// (`c…`) stand for none.
pub fn parse_op(op: &str, node: &str) -> Option<Vec<Op>> {
    let mut fields = op.split('\n');
    let tag = fields.next()?;
    if tag == "b" {
        let (skip_node, skip_conn) = (fields.next()?, fields.next()?);
        let skip = (skip_node == node).then(|| skip_conn.parse().ok()).flatten();
        let version = fields.next()?.parse().ok()?;
        let users = names(fields);
        return Some(vec![Op::Presence { skip, version, users }]);
    }
    if tag.starts_with('c') {
        return Some(Vec::new());
    }
    let conn: ConnId = fields.next()?.parse().ok()?;
    if tag == "s" {
        let rest: Vec<&str> = fields.collect();
        return Some(vec![Op::Relay(conn, rest.join("\n"))]);
    }
    let to = fields.next()?;
    if tag == "l" {
        let caller = fields.next()? == "1";
        let (node, at) = (fields.next()?, fields.next()?);
        let at = match node {
            "" => None,
            node => Some((node.to_owned(), at.parse().ok()?)),
        };
        let peer = (!to.is_empty()).then(|| Partner {
            name: to.to_owned(),
            caller,
            at,
        });
        return Some(vec![Op::Link { conn, peer }]);
    }
    if tag == "v" {
        let from = fields.next()?.to_owned();
        let json = fields.collect::<Vec<_>>().join("\n");
        return Some(vec![Op::Direct {
            conn,
            to: to.to_owned(),
            from,
            json,
        }]);
    }
    if tag == "p" {
        let version = fields.next()?.parse().ok()?;
        let (name, users) = (to.to_owned(), names(fields));
        return Some(vec![Op::Joined {
            conn,
            name,
            version,
            users,
        }]);
    }
    let actions: Vec<Action> = match tag {
        "h" => {
            let (from, code) = (fields.next()?, Code::named(fields.next()?)?);
            vec![registry::hangup_from(conn, to, from, code)]
        }
        "a" => vec![registry::no_answer(conn, to, fields.next()?)],
        "r" => registry::replaced(conn, to).into(),
        "t" => registry::name_taken(conn, to).into(),
        "g" => vec![Action::Config(conn, to.to_owned())],
        _ => return None,
    };
    Some(actions.into_iter().map(Op::Core).collect())
}

fn names<'a>(fields: impl Iterator<Item = &'a str>) -> Vec<String> {
    fields.filter(|u| !u.is_empty()).map(str::to_owned).collect()
}

fn unavailable_actions(conn: ConnId, name: &str) -> [Action; 2] {
    let text = "the server cannot reach its shared state right now; trying again shortly";
    [
        Action::Send(conn, Message::notice(name, Code::Unavailable, text)),
        Action::Close(conn, 1013, text.to_owned()),
    ]
}

/// A sign-in refused while Redis is unreachable.
pub fn unavailable(conn: ConnId, name: &str) -> Vec<Op> {
    unavailable_actions(conn, name)
        .into_iter()
        .map(Op::Core)
        .collect()
}

fn flag(b: bool) -> &'static str {
    if b {
        "1"
    } else {
        "0"
    }
}

fn strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// Secrets are not stored in Redis: their SHA-256, hex.
fn digest(secret: &str) -> String {
    let d = ring::digest::digest(&ring::digest::SHA256, secret.as_bytes());
    d.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// 64 random bits, hex: node ids and epochs.
pub fn random_id() -> String {
    let mut bytes = [0u8; 8];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut bytes).expect("system randomness");
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ops_parse_into_the_relays_actions() {
        assert_eq!(
            parse_op("p\n7\nalice\n12\nalice\nbob", "n1").unwrap(),
            vec![Op::Joined {
                conn: 7,
                name: "alice".into(),
                version: 12,
                users: vec!["alice".into(), "bob".into()]
            }]
        );
        assert_eq!(
            parse_op("s\n3\n{\"type\":\"offer\"}", "n1").unwrap(),
            vec![Op::Relay(3, "{\"type\":\"offer\"}".into())]
        );
        assert_eq!(
            parse_op("b\nn1\n4\n3\nalice", "n1").unwrap(),
            vec![Op::Presence {
                skip: Some(4),
                version: 3,
                users: vec!["alice".into()]
            }]
        );
        assert_eq!(
            parse_op("b\nn2\n4\n5\n", "n1").unwrap(),
            vec![Op::Presence {
                skip: None,
                version: 5,
                users: vec![]
            }],
            "another node's joiner is not skipped here; an empty list is empty"
        );
        let Op::Core(Action::Send(5, bye)) = &parse_op("h\n5\nbob\nalice\nno_answer", "n1").unwrap()[0]
        else {
            panic!()
        };
        assert_eq!(
            (bye.from_user.as_deref(), bye.code),
            (Some("alice"), Some(Code::NoAnswer))
        );
        assert_eq!(parse_op("c17", "n1"), Some(vec![]), "a canary carries nothing");
        assert_eq!(
            parse_op("l\n4\nbob\n1\nn2\n9", "n1").unwrap(),
            vec![Op::Link {
                conn: 4,
                peer: Some(Partner {
                    name: "bob".into(),
                    caller: true,
                    at: Some(("n2".into(), 9))
                })
            }]
        );
        assert_eq!(
            parse_op("l\n4\n\n0\n\n", "n1").unwrap(),
            vec![Op::Link { conn: 4, peer: None }]
        );
        assert_eq!(
            parse_op("v\n4\nbob\nann\n{}", "n1").unwrap(),
            vec![Op::Direct {
                conn: 4,
                to: "bob".into(),
                from: "ann".into(),
                json: "{}".into()
            }]
        );
        for bad in ["", "s\nx\n{}", "h\n5\nbob\nalice\nnot_a_code", "z\n1\nx"] {
            assert_eq!(parse_op(bad, "n1"), None, "{bad:?}");
        }
    }

    #[test]
    fn secrets_are_digested_and_ids_are_random() {
        assert_eq!(digest("ka").len(), 64);
        assert_ne!(digest("ka"), digest("kb"));
        assert_ne!(random_id(), random_id());
    }
}
