//! The ICE servers a signed-in person gets (a `config` message over the WebSocket): STUN URLs as
//! configured plus the embedded STUN server at the host the browser used, and TURN URLs with
//! credentials — time-limited ones made with coturn's shared secret (its "REST API"), or the
//! static ones an operator gave for another TURN server.
//!
//! Pure: the wall clock and the host are arguments.

use crate::signal::{ClientConfig, IceServer};
use base64::Engine as _;
use hmac::{Hmac, Mac};
use std::fmt;

/// Everything the operator configured about ICE servers.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct IceSettings {
    /// `stun:` URLs, handed out as they are.
    pub stun_urls: Vec<String>,
    /// `turn:`/`turns:` URLs.
    pub turn_urls: Vec<String>,
    /// coturn's `static-auth-secret`: each person gets a credential valid for `turn_ttl_secs`.
    pub turn_secret: Option<String>,
    pub turn_ttl_secs: u64,
    /// One username/credential for everyone (TURN servers without the secret mechanism).
    pub turn_username: Option<String>,
    pub turn_credential: Option<String>,
    /// Port of the embedded STUN server, advertised at the host the browser reached us by.
    pub stun_port: Option<u16>,
}

/// Secrets stay out of logs: `Debug` shows only whether they are set.
impl fmt::Debug for IceSettings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let set = |v: &Option<String>| v.as_ref().map(|_| "<redacted>");
        f.debug_struct("IceSettings")
            .field("stun_urls", &self.stun_urls)
            .field("turn_urls", &self.turn_urls)
            .field("turn_secret", &set(&self.turn_secret))
            .field("turn_ttl_secs", &self.turn_ttl_secs)
            .field("turn_username", &self.turn_username)
            .field("turn_credential", &set(&self.turn_credential))
            .field("stun_port", &self.stun_port)
            .finish()
    }
}

/// coturn's REST-API credential for `name`, valid until `expiry` (Unix seconds): username
/// `"{expiry}:{name}"`, credential base64(HMAC-SHA1(secret, username)).
pub fn turn_rest_credential(secret: &str, name: &str, expiry: u64) -> (String, String) {
    let username = format!("{expiry}:{name}");
    let mut mac = Hmac::<sha1::Sha1>::new_from_slice(secret.as_bytes()).expect("HMAC takes any key length");
    mac.update(username.as_bytes());
    let credential = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
    (username, credential)
}

/// The host part of a `Host` header (`example.org:3000` → `example.org`, `[::1]:3000` →
/// `[::1]`); `None` for anything that could not be a host.
fn host_only(host: &str) -> Option<&str> {
    let host = match host.strip_prefix('[') {
        Some(rest) => &host[..rest.find(']')? + 2],
        None => host.split(':').next()?,
    };
    let ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '[' | ']' | ':'));
    ok.then_some(host)
}

impl IceSettings {
    /// STUN servers, the embedded one at `host` (the `Host` the browser connected to) first.
    fn stun(&self, host: Option<&str>) -> Option<IceServer> {
        let embedded = self
            .stun_port
            .zip(host.and_then(host_only))
            .map(|(port, host)| format!("stun:{host}:{port}"));
        let urls: Vec<String> = embedded
            .into_iter()
            .chain(self.stun_urls.iter().cloned())
            .collect();
        (!urls.is_empty()).then(|| IceServer {
            urls,
            ..IceServer::default()
        })
    }

    /// What `name` gets over the WebSocket at `now` (Unix seconds).
    pub fn servers_for(&self, name: &str, host: Option<&str>, now: u64) -> Vec<IceServer> {
        let mut servers: Vec<IceServer> = self.stun(host).into_iter().collect();
        if !self.turn_urls.is_empty() {
            let (username, credential) = match &self.turn_secret {
                Some(secret) => {
                    let (u, c) = turn_rest_credential(secret, name, now + self.turn_ttl_secs);
                    (Some(u), Some(c))
                }
                None => (self.turn_username.clone(), self.turn_credential.clone()),
            };
            servers.push(IceServer {
                urls: self.turn_urls.clone(),
                username,
                credential,
            });
        }
        servers
    }

    /// `GET /config.json`, public: STUN only, never a credential.
    pub fn public(&self, host: Option<&str>) -> ClientConfig {
        ClientConfig {
            ice_servers: self.stun(host).into_iter().collect(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first made with Python's hmac (`base64.b64encode(hmac.new(b"north",
    /// b"1700000000:bob", "sha1").digest())`); the second accepted by coturn 4.6.1 itself
    /// (`turnserver --use-auth-secret --static-auth-secret north`, then `turnutils_uclient -u
    /// 1795699608:bob -w …`: ALLOCATE, CREATE_PERMISSION and CHANNEL_BIND "success", 2026-11-26,
    /// while that expiry was 10 minutes ahead).
    #[test]
    fn rest_credential_matches_known_vectors() {
        let (user, cred) = turn_rest_credential("north", "bob", 1_700_000_000);
        assert_eq!(user, "1700000000:bob");
        assert_eq!(cred, "7tNSWpJ3gOxGfEgOjt+kaWhBC20=");
        let (user, cred) = turn_rest_credential("north", "bob", 1_795_699_608);
        assert_eq!(user, "1795699608:bob");
        assert_eq!(cred, "RpgmuIdJb5z9STCz9eho8fyzIBk=");
    }

    #[test]
    fn each_person_gets_own_expiring_turn_credentials_and_the_embedded_stun() {
        let ice = IceSettings {
            turn_urls: vec!["turn:198.18.0.1:3478?transport=udp".into()],
            turn_secret: Some("north".into()),
            turn_ttl_secs: 3600,
            stun_port: Some(3479),
            stun_urls: vec!["stun:stun.example.org:3478".into()],
            ..IceSettings::default()
        };
        let servers = ice.servers_for("bob", Some("198.18.0.1:3000"), 1_699_996_400);
        assert_eq!(
            servers[0].urls,
            ["stun:198.18.0.1:3479", "stun:stun.example.org:3478"]
        );
        assert_eq!(servers[1].username.as_deref(), Some("1700000000:bob"));
        assert_eq!(
            servers[1].credential.as_deref(),
            Some("7tNSWpJ3gOxGfEgOjt+kaWhBC20=")
        );
        let alice = ice.servers_for("alice", Some("198.18.0.1:3000"), 1_699_996_400);
        assert_ne!(alice[1].credential, servers[1].credential);
        // The public configuration has no TURN entry at all.
        let public = serde_json::to_string(&ice.public(Some("[::1]:3000"))).unwrap();
        assert_eq!(
            public,
            r#"{"iceServers":[{"urls":["stun:[::1]:3479","stun:stun.example.org:3478"]}]}"#
        );
    }

    #[test]
    fn static_credentials_and_odd_hosts() {
        let ice = IceSettings {
            turn_urls: vec!["turns:t.example.org:5349?transport=tcp".into()],
            turn_username: Some("u".into()),
            turn_credential: Some("p".into()),
            stun_port: Some(3478),
            ..IceSettings::default()
        };
        let s = ice.servers_for("bob", Some("bad host/x"), 0);
        assert_eq!(s.len(), 1, "no STUN URL from a host that is not one: {s:?}");
        assert_eq!(
            (s[0].username.as_deref(), s[0].credential.as_deref()),
            (Some("u"), Some("p"))
        );
        assert_eq!(host_only("duet.example.org"), Some("duet.example.org"));
        assert_eq!(host_only("[fe80::1]:443"), Some("[fe80::1]"));
        assert_eq!(host_only("[fe80::1"), None);
        assert!(IceSettings::default()
            .servers_for("bob", Some("h:1"), 0)
            .is_empty());
    }

    #[test]
    fn debug_never_shows_secrets() {
        let ice = IceSettings {
            turn_secret: Some("north-secret".into()),
            turn_credential: Some("static-pass".into()),
            ..IceSettings::default()
        };
        let shown = format!("{ice:?}");
        assert!(
            !shown.contains("north-secret") && !shown.contains("static-pass"),
            "{shown}"
        );
        assert!(shown.contains("<redacted>"));
    }
}
