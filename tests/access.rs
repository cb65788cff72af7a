//! A private server (`--access-code`) over real HTTP and WebSockets on loopback: strangers get
//! the door and nothing else; the code gets a cookie that opens everything; wrong codes are
//! refused and then slowed; a changed code signs everyone out.

mod common;

use common::http;
use duet::access::Access;
use duet::relay::{Hub, RelayConfig};
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Error as WsError;

const KEY: &[u8] = b"a key of thirty-two bytes, test.";

async fn start_private(code: &str) -> SocketAddr {
    let conf = leptos::prelude::get_configuration(Some("Cargo.toml")).expect("leptos config");
    let hub = Hub::new(RelayConfig::default());
    let access = Arc::new(Access::new(code, KEY, false));
    let app = duet::server::app_with(conf.leptos_options, hub.clone(), Some(access));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(duet::server::serve(listener, app, hub, std::future::pending()));
    addr
}

/// The session cookie (`name=value`) a right code gets.
async fn enter(addr: SocketAddr, code: &str) -> String {
    let r = http(
        addr,
        "POST",
        "/door",
        None,
        Some(&format!("code={code}&next=%2Fu%2Falice")),
    )
    .await;
    assert_eq!(r.status, 303, "{}", r.head);
    assert_eq!(r.header("location"), Some("/u/alice"));
    let cookie = r.header("set-cookie").expect("a session cookie");
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );
    cookie.split(';').next().unwrap().to_owned()
}

async fn upgrade(addr: SocketAddr, cookie: Option<&str>) -> Result<(), WsError> {
    let mut request = format!("ws://{addr}/webrtc/alice").into_client_request().unwrap();
    if let Some(c) = cookie {
        request.headers_mut().insert("cookie", c.parse().unwrap());
    }
    tokio_tungstenite::connect_async(request).await.map(drop)
}

#[tokio::test]
async fn strangers_get_the_door_and_nothing_else() {
    let addr = start_private("tulip").await;
    for page in ["/", "/u/alice", "/call/bob", "/go?name=alice"] {
        let r = http(addr, "GET", page, None, None).await;
        assert_eq!(r.status, 303, "{page}");
        let to = r.header("location").unwrap();
        assert!(to.starts_with("/door?next="), "{page} -> {to}");
        assert!(
            !r.body.contains("alice") || page.contains("alice"),
            "no page content"
        );
    }
    for closed in ["/config.json", "/metrics"] {
        assert_eq!(
            http(addr, "GET", closed, None, None).await.status,
            401,
            "{closed}"
        );
    }
    match upgrade(addr, None).await {
        Err(WsError::Http(response)) => assert_eq!(response.status(), 401),
        other => panic!("the WebSocket must be refused: {other:?}"),
    }
    // The door itself and what draws it are open.
    let door = http(addr, "GET", "/door?next=%2Fu%2Falice", None, None).await;
    assert_eq!(door.status, 200);
    assert!(door.body.contains("action=\"/door\""), "{}", door.body);
    assert_eq!(http(addr, "GET", "/healthz", None, None).await.status, 200);
    // Static files pass the gate (200, or 404 where no site has been built yet).
    for open in [
        "/manifest.webmanifest",
        "/sw.js",
        "/pkg/duet.css",
        "/icons/icon-192.png",
    ] {
        let status = http(addr, "GET", open, None, None).await.status;
        assert!(matches!(status, 200 | 404), "{open}: {status}");
    }
}

#[tokio::test]
async fn the_code_opens_everything_and_a_wrong_one_is_refused_then_slowed() {
    let addr = start_private("tulip").await;
    let cookie = enter(addr, "tulip").await;
    assert_eq!(
        http(addr, "GET", "/u/alice", Some(&cookie), None).await.status,
        200
    );
    assert_eq!(
        http(addr, "GET", "/config.json", Some(&cookie), None)
            .await
            .status,
        200
    );
    upgrade(addr, Some(&cookie))
        .await
        .expect("the WebSocket with the cookie");
    // A forged or stale cookie is nobody's.
    let forged = format!("{}x", cookie);
    assert_eq!(
        http(addr, "GET", "/u/alice", Some(&forged), None).await.status,
        303
    );

    // Wrong: back to the door, saying so; no cookie. Then, past the burst, 429.
    let mut statuses = Vec::new();
    for _ in 0..7 {
        let r = http(addr, "POST", "/door", None, Some("code=daisy&next=%2F")).await;
        assert!(r.header("set-cookie").is_none());
        statuses.push(r.status);
        if r.status == 303 {
            assert_eq!(r.header("location"), Some("/door?next=%2F&wrong=1"));
        } else {
            assert!(r.header("refresh").unwrap().contains("/door?next=%2F&slow=1"));
        }
    }
    assert_eq!(
        &statuses[..4],
        [303; 4],
        "the right code spent one attempt: {statuses:?}"
    );
    assert_eq!(statuses[5..], [429, 429], "{statuses:?}");
    // Even the right code waits now (same address).
    assert_eq!(
        http(addr, "POST", "/door", None, Some("code=tulip")).await.status,
        429
    );
}

#[tokio::test]
async fn a_changed_code_signs_everyone_out_and_next_stays_on_this_site() {
    let old = start_private("tulip").await;
    let cookie = enter(old, "tulip").await;
    // The same key, another code (the owner changed it and restarted).
    let new = start_private("lily").await;
    assert_eq!(
        http(new, "GET", "/u/alice", Some(&cookie), None).await.status,
        303
    );
    assert!(upgrade(new, Some(&cookie)).await.is_err());
    // `next` may only be a path here.
    for evil in [
        "https%3A%2F%2Fevil.example%2F",
        "%2F%2Fevil.example",
        "%2F%5Cevil.example",
        "%2Fa%0D%0ASet-Cookie%3A+x",
    ] {
        let r = http(
            new,
            "POST",
            "/door",
            None,
            Some(&format!("code=lily&next={evil}")),
        )
        .await;
        assert_eq!(r.header("location"), Some("/"), "{evil}");
    }
}

#[tokio::test]
async fn no_code_guess_cookie_or_secret_reaches_the_log() {
    let dir = std::env::temp_dir().join(format!("duet-log-{}", std::process::id()));
    let (code, guess, key) = ("code-secret-41c9", "guess-secret-8e07", "name-key-2b6d");
    let server = common::Logged::start(
        &[],
        &[
            ("DUET_ACCESS_CODE", code),
            ("DUET_STATE_DIR", dir.to_str().unwrap()),
        ],
    )
    .await;
    let addr = server.addr;
    let wrong = http(addr, "POST", "/door", None, Some(&format!("code={guess}"))).await;
    assert_eq!(wrong.header("location"), Some("/door?next=%2F&wrong=1"));
    let cookie = enter(addr, code).await;
    let mut request = format!("ws://{addr}/webrtc/alice").into_client_request().unwrap();
    request.headers_mut().insert("cookie", cookie.parse().unwrap());
    let offered = format!("duet, duet-key.{key}");
    request
        .headers_mut()
        .insert("sec-websocket-protocol", offered.parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(request)
        .await
        .expect("in, with the cookie");
    drop(ws);
    let log = server.stop().await;
    assert!(
        log.contains("wrong access code") && log.contains("access code accepted"),
        "{log}"
    );
    let session = cookie.split_once('=').unwrap().1;
    for secret in [code, guess, key, session] {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn an_invite_lets_its_devices_in_without_the_code_and_no_more() {
    use duet::access::Invite;
    let addr = start_private("tulip").await;
    // Made the way `duet invite` makes it: the server's key and code.
    let minter = Access::new("tulip", KEY, false);
    let expires = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
        + 600;
    let token = minter.invite_token(&Invite {
        id: 7,
        expires,
        uses: 2,
    });
    for _ in 0..2 {
        let r = http(addr, "GET", &format!("/invite/{token}"), None, None).await;
        assert_eq!((r.status, r.header("location")), (303, Some("/")));
        let cookie = r
            .header("set-cookie")
            .unwrap()
            .split(';')
            .next()
            .unwrap()
            .to_owned();
        assert_eq!(
            http(addr, "GET", "/u/alice", Some(&cookie), None).await.status,
            200
        );
    }
    // Used up; and a forged or expired one is no better: the door says so, no cookie.
    let forged = token.replacen(".2.", ".3.", 1);
    let expired = minter.invite_token(&Invite {
        id: 8,
        expires: 1,
        uses: 1,
    });
    let other_code = Access::new("lily", KEY, false).invite_token(&Invite {
        id: 9,
        expires,
        uses: 1,
    });
    for bad in [&token, &forged, &expired, &other_code] {
        let r = http(addr, "GET", &format!("/invite/{bad}"), None, None).await;
        assert_eq!(r.header("location"), Some("/door?next=%2F&invite=1"), "{bad}");
        assert!(r.header("set-cookie").is_none());
    }
}
