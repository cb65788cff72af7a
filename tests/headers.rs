//! Security headers on every kind of response of the real router, over a real loopback
//! connection: pages, the not-found page, static files, health and the relay's refusals.

use duet::relay::{Hub, RelayConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

/// One GET: the response head (lower-cased) and body.
async fn get(addr: std::net::SocketAddr, path: &str) -> (String, String) {
    get_with(addr, path, "").await
}

async fn get_with(addr: std::net::SocketAddr, path: &str, headers: &str) -> (String, String) {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let req = format!("GET {path} HTTP/1.1\r\nHost: x\r\n{headers}Connection: close\r\n\r\n");
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await.unwrap();
    let end = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    (
        String::from_utf8_lossy(&raw[..end]).to_lowercase(),
        String::from_utf8_lossy(&raw[end + 4..]).into_owned(),
    )
}

/// The whole app on a loopback port.
async fn start() -> std::net::SocketAddr {
    let conf = leptos::prelude::get_configuration(Some("Cargo.toml")).expect("leptos config");
    let hub = Hub::new(RelayConfig::default());
    let app = duet::server::app(conf.leptos_options, hub.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(duet::server::serve(listener, app, hub, std::future::pending()));
    addr
}

#[tokio::test]
async fn pages_are_sent_compressed_to_browsers_that_take_it() {
    let addr = start().await;
    let (head, body) = get_with(addr, "/u/alice", "Accept-Encoding: br\r\n").await;
    assert!(head.contains("content-encoding: br"), "{head}");
    assert!(!body.contains("<html"), "compressed");
    let (head, body) = get(addr, "/u/alice").await;
    assert!(!head.contains("content-encoding"), "{head}");
    assert!(body.contains("<html"));
}

#[tokio::test]
async fn every_response_carries_the_security_headers() {
    let addr = start().await;

    // A page, a page for a bad name, not found, a static file (or its 404 without a build), the
    // health check, a language switch (redirect), and a WebSocket request without an upgrade.
    for path in [
        "/",
        "/u/alice",
        "/u/a%20b",
        "/nope",
        "/sw.js",
        "/pkg/duet.css",
        "/healthz",
        "/lang/zh-CN",
        "/webrtc/alice",
    ] {
        let (head, body) = get(addr, path).await;
        assert!(head.starts_with("http/1.1 "), "{path}: {head}");
        for expected in [
            "x-content-type-options: nosniff",
            "referrer-policy: no-referrer",
            "x-frame-options: deny",
            "cross-origin-opener-policy: same-origin",
            "content-security-policy: default-src 'self'; script-src 'self' 'wasm-unsafe-eval'",
            "; style-src 'self'; ",
            "; connect-src 'self'; ",
            "; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
            "permissions-policy: camera=(self), microphone=(self), fullscreen=(self), screen-wake-lock=(self), display-capture=(self)",
            // Nothing here is content-addressed: revalidated on every use.
            "cache-control: no-cache",
        ] {
            assert!(head.contains(expected), "{path} lacks {expected:?}:\n{head}");
        }
        assert!(!head.contains("unsafe-inline"), "{path}: {head}");
        // HSTS only under HTTPS (the TLS e2e test sees it there).
        assert!(!head.contains("strict-transport-security"), "{path}: {head}");
        if head.contains("content-type: text/html") && body.contains("<script") {
            inline_scripts_carry_the_policys_nonce(path, &head, &body);
        }
    }
}

/// A rendered page: a nonce in its policy, and that nonce on every one of its scripts.
fn inline_scripts_carry_the_policys_nonce(path: &str, head: &str, body: &str) {
    let policy = head
        .lines()
        .find(|l| l.starts_with("content-security-policy:"))
        .unwrap();
    let nonce = policy
        .split("'nonce-")
        .nth(1)
        .and_then(|rest| rest.split('\'').next())
        .unwrap_or_else(|| panic!("{path}: a page's policy has a nonce: {policy}"));
    assert!(nonce.len() >= 16, "{path}: {nonce}");
    // The head was lower-cased, so the page is compared lower-cased too.
    let body = body.to_lowercase();
    let scripts = body.matches("<script").count();
    assert!(
        scripts >= 2,
        "{path}: the hydration script and the service worker's"
    );
    let with_nonce = body.matches(&format!(" nonce=\"{nonce}\">")).count();
    assert_eq!(
        with_nonce, scripts,
        "{path}: every script has the nonce {nonce}:\n{body}"
    );
}

/// The chat's file size cap travels in the page (`--max-file-mib`, default 100 MiB): the
/// browser reads it there. One process-wide setting, so one test sets it.
#[tokio::test]
async fn pages_carry_the_file_size_cap() {
    let addr = start().await;
    let (_, body) = get(addr, "/u/alice").await;
    assert!(body.contains(r#"data-max-file="104857600""#), "default 100 MiB");
    duet::app::set_max_file(5 * 1024 * 1024);
    let (_, body) = get(addr, "/u/alice").await;
    assert!(body.contains(r#"data-max-file="5242880""#), "as set at start-up");
}
