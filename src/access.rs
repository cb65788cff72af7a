//! A private server (`--access-code`): only people who know the code get in. Everything but a
//! small door (`/door`, and what a page needs to show it: `/pkg`, icons, the manifest, the service
//! worker, the offline page, `/healthz`, the language switch) asks for a session cookie; pages
//! without one send the browser to the door, the rest (the signaling WebSocket, `/config.json`,
//! `/metrics`) answers 401. The door takes the code once per device and sets the cookie.
//!
//! The cookie is `v1.{issued}.{mac}`: an HMAC-SHA256, under a key kept on disk, of the issue time
//! and of the code itself, so changing the code revokes every cookie made with the old one. Door
//! attempts are rate-limited per address and in total; the code is compared in constant time
//! (both sides through the same HMAC); a failure is logged with the address, never the attempt.

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Redirect, Response};
use base64::Engine;
use ring::hmac;
use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

/// The session cookie's name.
pub const COOKIE: &str = "duet_session";
/// A session lasts a year (then the door asks again).
const SESSION_SECS: u64 = 365 * 24 * 3600;
/// Door attempts: per address, a burst of this many, then one more every [`REFILL_SECS`].
const PER_IP_BURST: f64 = 5.0;
const REFILL_SECS: f64 = 12.0;
/// All addresses together: at most this many attempts a minute.
const GLOBAL_PER_MIN: f64 = 60.0;
/// Addresses remembered by the limiter; beyond this the oldest entries go (bounded memory).
const MAX_TRACKED: usize = 10_000;

/// What may be fetched without a session: the door itself and what it is drawn with.
fn open_path(path: &str) -> bool {
    const EXACT: [&str; 7] = [
        "/door",
        "/healthz",
        "/manifest.webmanifest",
        "/sw.js",
        "/offline.html",
        "/offline.js",
        "/favicon.ico",
    ];
    const PREFIXES: [&str; 3] = ["/pkg/", "/icons/", "/lang/"];
    EXACT.contains(&path) || PREFIXES.iter().any(|p| path.starts_with(p))
}

pub struct Access {
    key: hmac::Key,
    /// HMAC of the code under `key`: what cookies are bound to and attempts compared with.
    code_mac: hmac::Tag,
    /// `Secure` on the cookie (the server itself speaks TLS).
    secure: bool,
    limiter: Mutex<Limiter>,
}

impl Access {
    pub fn new(code: &str, key: &[u8], secure: bool) -> Access {
        let key = hmac::Key::new(hmac::HMAC_SHA256, key);
        let code_mac = hmac::sign(&key, code.as_bytes());
        Access {
            key,
            code_mac,
            secure,
            limiter: Mutex::new(Limiter::default()),
        }
    }

    /// The session value for a cookie issued at `now` (seconds since the epoch).
    pub fn session(&self, now: u64) -> String {
        let mac = hmac::sign(&self.key, &self.signed(now));
        format!("v1.{now}.{}", b64(mac.as_ref()))
    }

    /// A session value made by [`Access::session`] with this key and this code, not expired.
    pub fn valid(&self, value: &str, now: u64) -> bool {
        let mut parts = value.splitn(3, '.');
        let (Some("v1"), Some(issued), Some(mac)) = (parts.next(), parts.next(), parts.next()) else {
            return false;
        };
        let (Ok(issued), Ok(mac)) = (issued.parse::<u64>(), b64_decode(mac)) else {
            return false;
        };
        // A minute of clock skew; then a year.
        let fresh = issued <= now + 60 && now.saturating_sub(issued) < SESSION_SECS;
        fresh && hmac::verify(&self.key, &self.signed(issued), &mac).is_ok()
    }

    fn signed(&self, issued: u64) -> Vec<u8> {
        let mut data = format!("duet-session|v1|{issued}|").into_bytes();
        data.extend_from_slice(self.code_mac.as_ref());
        data
    }

    /// The attempt is the code (constant time: the attempt's MAC is checked against the code's).
    pub fn code_matches(&self, attempt: &str) -> bool {
        hmac::verify(&self.key, attempt.as_bytes(), self.code_mac.as_ref()).is_ok()
    }

    /// One more door attempt from `ip` at `now` (seconds) is allowed.
    pub fn admit_attempt(&self, ip: IpAddr, now: f64) -> bool {
        self.limiter
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .admit(ip, now)
    }

    fn set_cookie(&self, now: u64) -> String {
        let secure = if self.secure { "; Secure" } else { "" };
        format!(
            "{COOKIE}={}; Path=/; Max-Age={SESSION_SECS}; HttpOnly; SameSite=Lax{secure}",
            self.session(now)
        )
    }

    fn has_session(&self, headers: &HeaderMap) -> bool {
        let now = unix_now();
        headers
            .get_all(header::COOKIE)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(';'))
            .filter_map(|c| c.trim().strip_prefix(COOKIE)?.strip_prefix('='))
            .any(|v| self.valid(v, now))
    }
}

/// Token buckets per address and one for everyone.
#[derive(Default)]
struct Limiter {
    per_ip: HashMap<IpAddr, (f64, f64)>,
    global: Option<(f64, f64)>,
}

impl Limiter {
    fn admit(&mut self, ip: IpAddr, now: f64) -> bool {
        let refill =
            |(tokens, at): (f64, f64), rate: f64, cap: f64| ((tokens + (now - at) * rate).min(cap), now);
        let global = refill(
            self.global.unwrap_or((GLOBAL_PER_MIN, now)),
            GLOBAL_PER_MIN / 60.0,
            GLOBAL_PER_MIN,
        );
        if self.per_ip.len() >= MAX_TRACKED && !self.per_ip.contains_key(&ip) {
            // Forget the address that has been quiet longest.
            if let Some(oldest) = self
                .per_ip
                .iter()
                .min_by(|a, b| a.1 .1.total_cmp(&b.1 .1))
                .map(|(k, _)| *k)
            {
                self.per_ip.remove(&oldest);
            }
        }
        let mine = refill(
            *self.per_ip.get(&ip).unwrap_or(&(PER_IP_BURST, now)),
            1.0 / REFILL_SECS,
            PER_IP_BURST,
        );
        let allowed = mine.0 >= 1.0 && global.0 >= 1.0;
        let take = if allowed { 1.0 } else { 0.0 };
        self.per_ip.insert(ip, (mine.0 - take, now));
        self.global = Some((global.0 - take, now));
        allowed
    }
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

fn b64_decode(text: &str) -> Result<Vec<u8>, base64::DecodeError> {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.decode(text)
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The key cookies are signed with: `session.key` in `dir`, made (32 random bytes, readable by
/// the owner only) on first use, so sessions outlive a restart.
pub fn load_or_create_key(dir: &Path) -> std::io::Result<Vec<u8>> {
    let path = dir.join("session.key");
    match std::fs::read(&path) {
        Ok(key) if key.len() >= 32 => return Ok(key),
        Ok(_) => return Err(std::io::Error::other(format!("{} is too short", path.display()))),
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(e),
        Err(_) => {}
    }
    let mut key = vec![0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut key)
        .map_err(|_| std::io::Error::other("no randomness for the session key"))?;
    std::fs::create_dir_all(dir)?;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(&path)?, &key)?;
    Ok(key)
}

/// The middleware: a request without a valid session gets the door (pages) or 401.
pub async fn gate(State(access): State<Arc<Access>>, request: Request, next: Next) -> Response {
    let path = request.uri().path().to_owned();
    if open_path(&path) || access.has_session(request.headers()) {
        return next.run(request).await;
    }
    let page = request.method() == axum::http::Method::GET
        && (matches!(path.as_str(), "/" | "/go") || path.starts_with("/u/") || path.starts_with("/call/"));
    if page {
        let target = request
            .uri()
            .path_and_query()
            .map_or("/", |p| p.as_str())
            .to_owned();
        return Redirect::to(&format!("/door?next={}", crate::signal::encode_segment(&target)))
            .into_response();
    }
    (
        StatusCode::UNAUTHORIZED,
        "this Duet server is private: open it in a browser and enter its access code",
    )
        .into_response()
}

#[derive(serde::Deserialize)]
pub struct DoorForm {
    code: String,
    next: Option<String>,
}

/// `POST /door`: the code (from the door page's form). Right: the cookie and on to `next` (a path
/// of this site). Wrong: back to the door, saying so. Too many attempts: 429 and the door says
/// to wait.
pub async fn door(
    State(access): State<Arc<Access>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::Form(form): axum::Form<DoorForm>,
) -> Response {
    let next = form
        .next
        .filter(|n| n.starts_with('/') && !n.starts_with("//") && !n.contains('\\'))
        .unwrap_or_else(|| "/".to_owned());
    let back = |why: &str| format!("/door?next={}&{why}=1", crate::signal::encode_segment(&next));
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64());
    if !access.admit_attempt(peer.ip(), now) {
        tracing::warn!(ip = %peer.ip(), "door: too many attempts");
        // Browsers follow no Location on a 429; `Refresh` takes them back to the door, which
        // says to wait.
        let refresh = format!("0; url={}", back("slow"));
        let mut response =
            (StatusCode::TOO_MANY_REQUESTS, "too many attempts: wait a minute").into_response();
        if let Ok(v) = HeaderValue::from_str(&refresh) {
            response.headers_mut().insert(header::REFRESH, v);
        }
        return response;
    }
    if !access.code_matches(&form.code) {
        tracing::warn!(ip = %peer.ip(), "door: wrong access code");
        return Redirect::to(&back("wrong")).into_response();
    }
    tracing::info!(ip = %peer.ip(), "door: access code accepted");
    let mut response = Redirect::to(&next).into_response();
    if let Ok(cookie) = HeaderValue::from_str(&access.set_cookie(unix_now())) {
        response.headers_mut().insert(header::SET_COOKIE, cookie);
    }
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY: &[u8] = b"0123456789abcdef0123456789abcdef";

    #[test]
    fn a_session_is_valid_for_its_key_and_code_and_for_a_year() {
        let access = Access::new("tulip", KEY, false);
        let now = 1_800_000_000;
        let s = access.session(now);
        assert!(access.valid(&s, now));
        assert!(access.valid(&s, now + SESSION_SECS - 1));
        assert!(!access.valid(&s, now + SESSION_SECS), "expired");
        assert!(!access.valid(&s, now - 3600), "issued in the future");
        // Another code (the owner changed it) or another key: every old session is void.
        assert!(!Access::new("tulip2", KEY, false).valid(&s, now));
        assert!(!Access::new("tulip", b"another key, 32 bytes long......", false).valid(&s, now));
    }

    #[test]
    fn tampered_or_malformed_sessions_are_refused() {
        let access = Access::new("tulip", KEY, false);
        let now = 1_800_000_000;
        let s = access.session(now);
        let later = s.replacen(&format!(".{now}."), &format!(".{}.", now + 1), 1);
        assert!(!access.valid(&later, now + 1), "issue time changed");
        let mut flipped = s.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'A' { b'B' } else { b'A' };
        assert!(!access.valid(&String::from_utf8(flipped).unwrap(), now));
        for bad in [
            "",
            "v1",
            "v1..",
            "v2.1.x",
            "v1.x.AAAA",
            "v1.1.***",
            &s[..s.len() - 2],
        ] {
            assert!(!access.valid(bad, now), "{bad:?}");
        }
    }

    #[test]
    fn the_code_is_compared_exactly() {
        let access = Access::new("tulip 🌷", KEY, false);
        assert!(access.code_matches("tulip 🌷"));
        for wrong in ["", "tulip", "tulip 🌷 ", "TULIP 🌷"] {
            assert!(!access.code_matches(wrong), "{wrong:?}");
        }
    }

    #[test]
    fn door_attempts_are_limited_per_address_and_in_total() {
        let access = Access::new("x", KEY, false);
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t = 1000.0;
        for _ in 0..5 {
            assert!(access.admit_attempt(a, t));
        }
        assert!(!access.admit_attempt(a, t), "burst spent");
        assert!(access.admit_attempt(b, t), "another address is not held up");
        assert!(access.admit_attempt(a, t + REFILL_SECS), "one more after a while");
        // Everyone together: no more than GLOBAL_PER_MIN a minute from many addresses.
        let admitted = (0..200u32)
            .filter(|i| access.admit_attempt(IpAddr::from(i.to_be_bytes()), t + REFILL_SECS))
            .count();
        assert!(admitted <= GLOBAL_PER_MIN as usize, "{admitted}");
    }

    #[test]
    fn the_cookie_is_http_only_lax_and_secure_under_tls() {
        let c = Access::new("x", KEY, true).set_cookie(1);
        assert!(c.starts_with("duet_session=v1.1."));
        for attribute in ["Path=/", "HttpOnly", "SameSite=Lax", "Secure", "Max-Age="] {
            assert!(c.contains(attribute), "{c}");
        }
        assert!(!Access::new("x", KEY, false).set_cookie(1).contains("Secure"));
    }

    #[test]
    fn only_the_door_and_what_draws_it_are_open() {
        for open in [
            "/door",
            "/healthz",
            "/pkg/duet.css",
            "/icons/icon-192.png",
            "/sw.js",
            "/lang/zh-CN",
        ] {
            assert!(open_path(open), "{open}");
        }
        for closed in [
            "/",
            "/u/alice",
            "/call/bob",
            "/webrtc/alice",
            "/config.json",
            "/metrics",
            "/go",
            "/doors",
        ] {
            assert!(!open_path(closed), "{closed}");
        }
    }

    #[test]
    fn the_key_is_made_once_and_kept() {
        let dir = std::env::temp_dir().join(format!("duet-key-{}", std::process::id()));
        let first = load_or_create_key(&dir).unwrap();
        assert_eq!(first.len(), 32);
        assert_eq!(load_or_create_key(&dir).unwrap(), first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("session.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o077, 0, "owner only");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
