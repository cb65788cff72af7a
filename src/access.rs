//! A private server (`--access-code`): only people who know the code get in. Everything but a
//! small door (`/door`, and what a page needs to show it: `/pkg`, icons, the manifest, the service
//! worker, the offline page, `/healthz`, the language switch) asks for a session cookie; pages
//! without one send the browser to the door, the rest (the signaling WebSocket, `/config.json`,
//! `/metrics`) answers 401. The door takes the code once per device and sets the cookie.
//!
//! The cookie is `v1.{issued}.{mac}`: an HMAC-SHA256, under a key kept on disk, of the issue time
//! and of the code itself, so changing the code revokes every cookie made with the old one.
//! An invite link (`duet invite`) lets a new device in without the code: `/invite/{token}`, the
//! token `i1.{id}.{expires}.{uses}.{mac}` signed the same way, good until it expires and for
//! `uses` devices (counted in `invites` in the state directory, so a restart forgets nothing). Door
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
    const EXACT: [&str; 8] = [
        "/door",
        "/healthz",
        "/readyz",
        "/manifest.webmanifest",
        "/sw.js",
        "/offline.html",
        "/offline.js",
        "/favicon.ico",
    ];
    const PREFIXES: [&str; 4] = ["/pkg/", "/icons/", "/lang/", "/invite/"];
    EXACT.contains(&path) || PREFIXES.iter().any(|p| path.starts_with(p))
}

pub struct Access {
    key: hmac::Key,
    /// HMAC of the code under `key`: what cookies are bound to and attempts compared with.
    code_mac: hmac::Tag,
    /// `Secure` on the cookie (the server itself speaks TLS).
    secure: bool,
    limiter: Mutex<Limiter>,
    /// How often each invite was used.
    invites: Mutex<Redeemed>,
}

/// An invite: who may come in without the code, until when, how many devices.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Invite {
    pub id: u64,
    /// Seconds since the epoch.
    pub expires: u64,
    pub uses: u32,
}

/// Use counts of invites (id → used, expires), persisted as `id used expires` lines in `file`
/// (none: in memory only).
#[derive(Default)]
struct Redeemed {
    file: Option<std::path::PathBuf>,
    used: HashMap<u64, (u32, u64)>,
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
            invites: Mutex::new(Redeemed::default()),
        }
    }

    /// Counts invite uses in `dir/invites` (read now, written on every use).
    pub fn with_invites_in(self, dir: &Path) -> Access {
        let file = dir.join("invites");
        let used = std::fs::read_to_string(&file)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                let mut f = l.split(' ').map(str::parse::<u64>);
                let (Some(Ok(id)), Some(Ok(used)), Some(Ok(expires))) = (f.next(), f.next(), f.next()) else {
                    return None;
                };
                Some((id, (u32::try_from(used).ok()?, expires)))
            })
            .collect();
        *self.invites.lock().unwrap_or_else(|e| e.into_inner()) = Redeemed {
            file: Some(file),
            used,
        };
        self
    }

    /// The token of an invite link.
    pub fn invite_token(&self, invite: &Invite) -> String {
        let Invite { id, expires, uses } = *invite;
        let mac = hmac::sign(&self.key, &self.invite_signed(invite));
        format!("i1.{id}.{expires}.{uses}.{}", b64(mac.as_ref()))
    }

    /// The invite a token stands for, if this server made it (with this code) and it has not
    /// expired; its uses are not looked at.
    pub fn read_invite(&self, token: &str, now: u64) -> Option<Invite> {
        let mut parts = token.split('.');
        if parts.next() != Some("i1") {
            return None;
        }
        let mut number = || parts.next()?.parse::<u64>().ok();
        let (id, expires, uses) = (number()?, number()?, u32::try_from(number()?).ok()?);
        let mac = b64_decode(parts.next()?).ok()?;
        let invite = Invite { id, expires, uses };
        let genuine =
            parts.next().is_none() && hmac::verify(&self.key, &self.invite_signed(&invite), &mac).is_ok();
        (genuine && now < expires).then_some(invite)
    }

    fn invite_signed(&self, invite: &Invite) -> Vec<u8> {
        let mut data =
            format!("duet-invite|i1|{}|{}|{}|", invite.id, invite.expires, invite.uses).into_bytes();
        data.extend_from_slice(self.code_mac.as_ref());
        data
    }

    /// One more device comes in with `invite`, if it has a use left (counted, and written down
    /// before the answer).
    pub fn redeem(&self, invite: &Invite, now: u64) -> bool {
        let mut store = self.invites.lock().unwrap_or_else(|e| e.into_inner());
        store.used.retain(|_, (_, expires)| *expires > now);
        let used = store.used.get(&invite.id).map_or(0, |(n, _)| *n);
        if used >= invite.uses {
            return false;
        }
        store.used.insert(invite.id, (used + 1, invite.expires));
        if let Some(file) = &store.file {
            let lines: String = store
                .used
                .iter()
                .map(|(id, (n, expires))| format!("{id} {n} {expires}\n"))
                .collect();
            if let Err(e) = std::fs::write(file, lines) {
                tracing::error!(file = %file.display(), error = %e, "cannot record an invite's use");
            }
        }
        true
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

    /// On to `to` (a path of this site) with a new session cookie.
    fn signed_in(&self, to: &str, now: u64) -> Response {
        let mut response = Redirect::to(to).into_response();
        if let Ok(cookie) = HeaderValue::from_str(&self.set_cookie(now)) {
            response.headers_mut().insert(header::SET_COOKIE, cookie);
        }
        response
    }

    fn has_session(&self, headers: &HeaderMap) -> bool {
        let now = unix_now();
        crate::server::cookie_values(headers, COOKIE).any(|v| self.valid(v, now))
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

/// `GET /invite/{token}`: a device comes in with an invite link: the session cookie and on to
/// the app, or the door (saying why not) for a link that is forged, expired or used up. Bad
/// tokens count as door attempts.
pub async fn invite(
    State(access): State<Arc<Access>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    axum::extract::Path(token): axum::extract::Path<String>,
) -> Response {
    let now = unix_now();
    match access.read_invite(&token, now) {
        Some(invite) if access.redeem(&invite, now) => {
            tracing::info!(ip = %peer.ip(), invite = invite.id, "invite used");
            access.signed_in("/", now)
        }
        found => {
            access.admit_attempt(peer.ip(), now as f64);
            let why = if found.is_some() {
                "used up"
            } else {
                "not valid or expired"
            };
            tracing::warn!(ip = %peer.ip(), "invite {why}");
            Redirect::to("/door?next=%2F&invite=1").into_response()
        }
    }
}

/// `duet invite`: a link for `uses` devices, good for `ttl_secs`, at `base` (the server's
/// public URL).
pub fn invite_link(access: &Access, base: &str, uses: u32, ttl_secs: u64) -> String {
    let mut id = [0u8; 8];
    let _ = ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id);
    let invite = Invite {
        id: u64::from_be_bytes(id),
        expires: unix_now() + ttl_secs,
        uses,
    };
    format!(
        "{}/invite/{}",
        base.trim_end_matches('/'),
        access.invite_token(&invite)
    )
}

/// `7d`, `12h`, `30m`, `45s` or plain seconds.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let (number, unit) = text.split_at(text.find(|c: char| !c.is_ascii_digit()).unwrap_or(text.len()));
    let n: u64 = number
        .parse()
        .map_err(|_| format!("not a duration: {text:?} (e.g. 7d, 12h, 30m)"))?;
    let scale = match unit {
        "" | "s" => 1,
        "m" => 60,
        "h" => 3600,
        "d" => 86_400,
        _ => return Err(format!("unknown unit in {text:?}: use s, m, h or d")),
    };
    n.checked_mul(scale).ok_or_else(|| format!("too long: {text:?}"))
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
        .filter(|n| crate::server::local_path(n))
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
    access.signed_in(&next, unix_now())
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
            "/readyz",
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
    fn an_invite_is_good_until_it_expires_for_its_uses_and_for_this_code_only() {
        let dir = std::env::temp_dir().join(format!("duet-invites-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let access = Access::new("tulip", KEY, false).with_invites_in(&dir);
        let now = 1_800_000_000;
        let invite = Invite {
            id: 42,
            expires: now + 100,
            uses: 2,
        };
        let token = access.invite_token(&invite);
        assert_eq!(access.read_invite(&token, now), Some(invite));
        assert_eq!(access.read_invite(&token, now + 100), None, "expired");
        assert_eq!(
            Access::new("lily", KEY, false).read_invite(&token, now),
            None,
            "code changed"
        );
        let more = token.replacen(".2.", ".9.", 1);
        assert_eq!(access.read_invite(&more, now), None, "uses changed");
        for bad in [
            "",
            "i1",
            "i1.42.1.1",
            &format!("{token}.x"),
            "i2.42.1900000000.2.AAAA",
        ] {
            assert_eq!(access.read_invite(bad, now), None, "{bad:?}");
        }
        assert!(access.redeem(&invite, now));
        // A restart reads the count back.
        let again = Access::new("tulip", KEY, false).with_invites_in(&dir);
        assert!(again.redeem(&invite, now));
        assert!(!again.redeem(&invite, now), "used up");
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn durations_read_like_people_write_them() {
        assert_eq!(parse_duration("7d"), Ok(7 * 86_400));
        assert_eq!(parse_duration("12h"), Ok(43_200));
        assert_eq!(parse_duration("30m"), Ok(1800));
        assert_eq!(parse_duration("45"), Ok(45));
        for bad in ["", "d", "7w", "-1d", "99999999999999999999d"] {
            assert!(parse_duration(bad).is_err(), "{bad:?}");
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
