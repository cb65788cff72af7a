//! Server configuration: command-line flags, each also settable by an environment variable.
//! `duet --help` lists them with their defaults; the README has the same table.

use crate::relay::ice::IceSettings;
use crate::relay::{RelayConfig, Timing};
use clap::{Parser, Subcommand, ValueEnum};
use std::fmt;
use std::net::SocketAddr;
use std::time::Duration;

/// A secret from the command line or the environment: `Debug` (and so every log of the
/// configuration) shows `<redacted>`, never the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl std::str::FromStr for Secret {
    type Err = std::convert::Infallible;
    fn from_str(s: &str) -> Result<Secret, Self::Err> {
        Ok(Secret(s.to_owned()))
    }
}

/// What else the binary does besides serving.
#[derive(Subcommand, Clone, Debug)]
pub enum Command {
    /// Print an invite link: it lets new devices into a private server without the code. Run it
    /// with the server's --access-code and --state-dir (changing the code voids every invite).
    Invite {
        /// How many devices may come in with it.
        #[arg(long, default_value_t = 1)]
        uses: u32,
        /// How long it is good for: 7d, 12h, 30m, 45s.
        #[arg(long, default_value = "7d", value_parser = crate::access::parse_duration)]
        ttl: u64,
        /// The server's address as people open it, e.g. https://duet.example.org.
        #[arg(long, env = "DUET_PUBLIC_URL")]
        url: String,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

#[derive(Parser, Clone, Debug)]
#[command(name = "duet", version, about = "Duet: self-hosted one-to-one video calls")]
pub struct Config {
    /// Address to listen on [default: the Leptos site-addr, 127.0.0.1:3000].
    #[arg(long, env = "DUET_ADDR")]
    pub addr: Option<SocketAddr>,
    /// Seconds an unanswered call rings before the caller is told "no answer".
    #[arg(long, env = "DUET_RING_TIMEOUT_SECS", default_value_t = 30)]
    pub ring_timeout_secs: u64,
    /// Seconds a party who dropped mid-call has to reconnect before the call ends.
    #[arg(long, env = "DUET_GRACE_SECS", default_value_t = 10)]
    pub grace_secs: u64,
    /// Largest signaling message accepted, in bytes.
    #[arg(long, env = "DUET_MAX_MESSAGE_BYTES", default_value_t = 64 * 1024)]
    pub max_message_bytes: usize,
    /// Sustained messages per second allowed per connection.
    #[arg(long, env = "DUET_RATE_PER_SEC", default_value_t = 50)]
    pub rate_per_sec: u32,
    /// Messages a connection may send in one burst (ICE trickles in bursts).
    #[arg(long, env = "DUET_RATE_BURST", default_value_t = 200)]
    pub rate_burst: u32,
    /// Over-limit messages in a row before a connection is disconnected.
    #[arg(long, env = "DUET_RATE_MAX_STRIKES", default_value_t = 500)]
    pub rate_max_strikes: u32,
    /// Connections the server accepts in total.
    #[arg(long, env = "DUET_MAX_CONNECTIONS", default_value_t = 20_000)]
    pub max_connections: usize,
    /// Connections accepted from one IP address.
    #[arg(long, env = "DUET_MAX_CONNECTIONS_PER_IP", default_value_t = 64)]
    pub max_connections_per_ip: usize,
    /// Seconds between WebSocket pings to each client.
    #[arg(long, env = "DUET_PING_SECS", default_value_t = 20)]
    pub ping_secs: u64,
    /// Seconds without any frame (not even a pong) before a connection is dropped.
    #[arg(long, env = "DUET_IDLE_TIMEOUT_SECS", default_value_t = 50)]
    pub idle_timeout_secs: u64,
    /// Messages queued for one client before it counts as stuck and is dropped.
    #[arg(long, env = "DUET_OUTBOX", default_value_t = 256)]
    pub outbox: usize,
    /// Extra origins allowed to open the WebSocket (the page's own origin always is); `*` = any.
    /// Repeat the flag, or comma-separate in the variable.
    #[arg(long = "allowed-origin", env = "DUET_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Vec<String>,
    /// Most names in a presence list; beyond this many people online, joins and leaves are no
    /// longer announced to everyone (newcomers still get a list).
    #[arg(long, env = "DUET_PRESENCE_MAX", default_value_t = crate::relay::registry::PRESENCE_MAX)]
    pub presence_max: usize,
    /// Largest file people may send each other in a call, in MiB (files go peer to peer, never
    /// through the server; the receiving browser holds one in memory until it is saved).
    #[arg(long, env = "DUET_MAX_FILE_MIB", default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=4096))]
    pub max_file_mib: u64,
    /// Run as one node of several that act as one relay, sharing who is online and who is in a
    /// call with whom on this Redis (e.g. `redis://127.0.0.1:6379/0`). Without it, one process
    /// holds everything in memory and needs no Redis. See README, "Running several nodes".
    #[arg(long, env = "DUET_REDIS_URL")]
    pub redis_url: Option<Secret>,
    /// Prefix of every Redis key and channel this cluster uses (clusters may share a Redis).
    #[arg(long, env = "DUET_REDIS_PREFIX", default_value = "duet:")]
    pub redis_prefix: String,
    /// This node's name in the cluster (logs, `/metrics`); random when not given. Must differ
    /// between the nodes of one cluster.
    #[arg(long, env = "DUET_NODE_ID")]
    pub node_id: Option<String>,
    /// STUN or TURN server URL handed to browsers (e.g. `stun:stun.example.org:3478`,
    /// `turn:turn.example.org:3478?transport=udp`). Repeat the flag, or comma-separate.
    /// Without any (and without --stun-addr), calls connect only where both sides reach each
    /// other directly (one LAN).
    #[arg(long = "ice-server", env = "DUET_ICE_SERVERS", value_delimiter = ',')]
    pub ice_servers: Vec<String>,
    /// Answer STUN Binding requests on this UDP address (e.g. `0.0.0.0:3478`), and hand
    /// browsers `stun:{the host they used}:{port}`: enough for calls across most home routers.
    #[arg(long, env = "DUET_STUN_ADDR")]
    pub stun_addr: Option<SocketAddr>,
    /// TURN server URL (`turn:host:3478?transport=udp`, `turns:host:5349?transport=tcp`).
    /// Repeat the flag, or comma-separate.
    #[arg(long = "turn-url", env = "DUET_TURN_URLS", value_delimiter = ',')]
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret` (with `use-auth-secret`): each signed-in person gets their
    /// own credential, valid for --turn-ttl-secs, over the WebSocket only.
    #[arg(long, env = "DUET_TURN_SECRET")]
    pub turn_secret: Option<Secret>,
    /// Lifetime of a TURN credential made with --turn-secret.
    #[arg(long, env = "DUET_TURN_TTL_SECS", default_value_t = 3600)]
    pub turn_ttl_secs: u64,
    /// Username for TURN servers without a shared secret (one for everyone: prefer --turn-secret).
    #[arg(long, env = "DUET_TURN_USERNAME")]
    pub turn_username: Option<String>,
    /// Credential for TURN servers without a shared secret.
    #[arg(long, env = "DUET_TURN_CREDENTIAL")]
    pub turn_credential: Option<Secret>,
    /// HTTPS with this PEM certificate chain (needs --tls-key).
    #[arg(
        long,
        env = "DUET_TLS_CERT",
        requires = "tls_key",
        conflicts_with = "tls_self_signed"
    )]
    pub tls_cert: Option<std::path::PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(long, env = "DUET_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<std::path::PathBuf>,
    /// HTTPS with a self-signed certificate for localhost and this machine's addresses, made on
    /// first use and kept in --tls-dir. Prints the phone URLs and a QR code.
    #[arg(long, env = "DUET_TLS_SELF_SIGNED")]
    pub tls_self_signed: bool,
    /// Where --tls-self-signed keeps its certificate.
    #[arg(long, env = "DUET_TLS_DIR", default_value = ".duet/tls")]
    pub tls_dir: std::path::PathBuf,
    /// A private server: only people who enter this code (once per device) get in; see
    /// README "A private server". Changing it signs everyone out.
    #[arg(
        long,
        global = true,
        env = "DUET_ACCESS_CODE",
        conflicts_with = "access_code_file"
    )]
    pub access_code: Option<Secret>,
    /// The access code from a file (its first line): keeps it out of the process list.
    #[arg(long, global = true, env = "DUET_ACCESS_CODE_FILE")]
    pub access_code_file: Option<std::path::PathBuf>,
    /// Where Duet keeps what it makes for itself (the key that signs access cookies and invites,
    /// the invites' use counts).
    #[arg(long, global = true, env = "DUET_STATE_DIR", default_value = ".duet")]
    pub state_dir: std::path::PathBuf,
    /// The key that signs access cookies and invites (at least 32 bytes), instead of the one
    /// made in --state-dir: the same file on several servers lets one cookie open them all.
    #[arg(long, global = true, env = "DUET_SESSION_KEY_FILE")]
    pub session_key_file: Option<std::path::PathBuf>,
    #[command(subcommand)]
    pub command: Option<Command>,
    /// Log format; the level comes from RUST_LOG (default "info").
    #[arg(long, env = "DUET_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

impl Config {
    /// The ICE servers: `--ice-server` URLs sorted into STUN and TURN, `--turn-url`s, the
    /// credentials and the embedded STUN server's port.
    pub fn ice(&self) -> IceSettings {
        let (turn, stun): (Vec<String>, Vec<String>) = self
            .ice_servers
            .iter()
            .cloned()
            .partition(|u| u.starts_with("turn:") || u.starts_with("turns:"));
        IceSettings {
            stun_urls: stun,
            turn_urls: turn.into_iter().chain(self.turn_urls.iter().cloned()).collect(),
            turn_secret: self.turn_secret.as_ref().map(|s| s.expose().to_owned()),
            turn_ttl_secs: self.turn_ttl_secs,
            turn_username: self.turn_username.clone(),
            turn_credential: self.turn_credential.as_ref().map(|s| s.expose().to_owned()),
            stun_port: self.stun_addr.map(|a| a.port()),
        }
    }

    /// A word of warning for the log about the configuration, if it deserves one.
    pub fn warning(&self) -> Option<&'static str> {
        (self.turn_secret.is_none() && self.turn_credential.is_some()).then_some(
            "--turn-username/--turn-credential are one TURN password shared with every visitor \
             (anyone can use the TURN server as a relay): prefer coturn's --turn-secret",
        )
    }

    /// The access code, from --access-code or the first line of --access-code-file; `Err` if
    /// the file cannot be read or the code is empty.
    pub fn access_code(&self) -> Result<Option<Secret>, String> {
        let code = match (&self.access_code, &self.access_code_file) {
            (Some(code), _) => code.expose().to_owned(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .map_err(|e| format!("cannot read the access code file {}: {e}", path.display()))?
                .lines()
                .next()
                .unwrap_or_default()
                .to_owned(),
            (None, None) => return Ok(None),
        };
        if code.trim().is_empty() {
            return Err("the access code is empty".into());
        }
        Ok(Some(Secret(code)))
    }

    /// Where this node's cluster lives, if it is one (`--redis-url`).
    pub fn cluster(&self) -> Option<crate::relay::cluster::ClusterConfig> {
        let url = self.redis_url.as_ref()?.expose().to_owned();
        Some(crate::relay::cluster::ClusterConfig {
            url,
            prefix: self.redis_prefix.clone(),
            node: self
                .node_id
                .clone()
                .unwrap_or_else(crate::relay::cluster::random_id),
        })
    }

    pub fn relay(&self) -> RelayConfig {
        RelayConfig {
            timing: Timing {
                ring_timeout_ms: self.ring_timeout_secs * 1000,
                grace_ms: self.grace_secs * 1000,
            },
            max_message_bytes: self.max_message_bytes,
            rate_per_sec: self.rate_per_sec,
            rate_burst: self.rate_burst,
            rate_max_strikes: self.rate_max_strikes,
            max_connections: self.max_connections,
            max_connections_per_ip: self.max_connections_per_ip,
            ping_interval: Duration::from_secs(self.ping_secs.max(1)),
            idle_timeout: Duration::from_secs(self.idle_timeout_secs.max(1)),
            outbox: self.outbox.max(1),
            allowed_origins: self.allowed_origins.clone(),
            presence_max: self.presence_max,
            ice: self.ice(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_match_the_relay_defaults() {
        let cfg = Config::try_parse_from(["duet"]).unwrap();
        let relay = cfg.relay();
        let d = RelayConfig::default();
        assert_eq!(relay.timing, d.timing);
        assert_eq!(
            (
                relay.max_message_bytes,
                relay.rate_per_sec,
                relay.rate_burst,
                relay.max_connections
            ),
            (
                d.max_message_bytes,
                d.rate_per_sec,
                d.rate_burst,
                d.max_connections
            )
        );
        assert_eq!(
            (relay.ping_interval, relay.idle_timeout),
            (d.ping_interval, d.idle_timeout)
        );
    }

    #[test]
    fn flags_override() {
        let cfg = Config::try_parse_from([
            "duet",
            "--ring-timeout-secs",
            "3",
            "--allowed-origin",
            "https://a.example",
            "--allowed-origin",
            "https://b.example",
        ])
        .unwrap();
        assert_eq!(cfg.relay().timing.ring_timeout_ms, 3000);
        assert_eq!(cfg.allowed_origins.len(), 2);
        assert!(Config::try_parse_from(["duet", "--rate-per-sec", "lots"]).is_err());
    }

    #[test]
    fn ice_servers_with_static_turn_credentials() {
        let cfg = Config::try_parse_from([
            "duet",
            "--ice-server",
            "stun:stun.example.org:3478,turn:turn.example.org:3478",
            "--turn-username",
            "u",
            "--turn-credential",
            "p",
        ])
        .unwrap();
        let json = serde_json::to_value(cfg.ice().servers_for("bob", None, 0)).unwrap();
        assert_eq!(
            json,
            serde_json::json!([
                {"urls": ["stun:stun.example.org:3478"]},
                {"urls": ["turn:turn.example.org:3478"], "username": "u", "credential": "p"},
            ])
        );
        assert!(
            cfg.warning().is_some(),
            "a shared TURN password is worth a warning"
        );
        assert_eq!(
            Config::try_parse_from(["duet"]).unwrap().ice(),
            IceSettings {
                turn_ttl_secs: 3600,
                ..IceSettings::default()
            }
        );
    }

    #[test]
    fn turn_secret_and_embedded_stun() {
        let cfg = Config::try_parse_from([
            "duet",
            "--stun-addr",
            "0.0.0.0:3479",
            "--turn-url",
            "turn:198.18.0.1:3478?transport=udp",
            "--turn-secret",
            "north-secret",
            "--turn-ttl-secs",
            "60",
        ])
        .unwrap();
        let ice = cfg.ice();
        assert_eq!((ice.stun_port, ice.turn_ttl_secs), (Some(3479), 60));
        let servers = ice.servers_for("bob", Some("198.18.0.1:3000"), 1000);
        assert_eq!(servers[0].urls, ["stun:198.18.0.1:3479"]);
        assert_eq!(servers[1].username.as_deref(), Some("1060:bob"));
        assert!(cfg.warning().is_none());
        // The configuration is logged at start: no secret in its Debug form.
        let shown = format!("{cfg:?} {:?}", cfg.relay());
        assert!(!shown.contains("north-secret"), "{shown}");
    }
}
