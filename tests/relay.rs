//! Integration tests: the real server (the same router `main` serves) on an ephemeral loopback
//! port, and real WebSocket clients (tokio-tungstenite).
//!
//! "Nothing was forwarded" is asserted without sleeping: after the message under test, the same
//! sender sends a marker to the same recipient; the relay keeps per-connection order, so the
//! marker must be the next thing that arrives.

mod common;

use common::{connect_at, notice_code, serve, try_connect_at, Client};
use duet::relay::{Hub, RelayConfig, Timing};
use futures_util::SinkExt;
use serde_json::json;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio_tungstenite::connect_async;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};

/// The relay under test: one process, or (with `DUET_TEST_REDIS=1`, as `scripts/test` runs this
/// file a second time) two nodes of a cluster on a Redis of the test's own. Connections go to
/// the nodes in turn, so in a cluster alice and bob are on different nodes, and someone who
/// reconnects may land on the other one.
struct Net {
    a: SocketAddr,
    b: SocketAddr,
    cluster: bool,
    turn: std::sync::atomic::AtomicUsize,
    _redis: Option<common::Redis>,
}

impl Net {
    fn single(addr: SocketAddr) -> Net {
        Net {
            a: addr,
            b: addr,
            cluster: false,
            turn: Default::default(),
            _redis: None,
        }
    }

    /// The node the next connection goes to.
    fn next(&self) -> SocketAddr {
        match self.turn.fetch_add(1, std::sync::atomic::Ordering::Relaxed) % 2 {
            0 => self.a,
            _ => self.b,
        }
    }
}

async fn start() -> Net {
    start_with(RelayConfig::default()).await
}

/// The real server (same router, same serve loop as `main`) on ephemeral loopback ports.
async fn start_with(config: RelayConfig) -> Net {
    if std::env::var_os("DUET_TEST_REDIS").is_none() {
        return Net::single(serve(Hub::new(config)).await);
    }
    let redis = common::Redis::start().await;
    let mut nodes = Vec::new();
    for node in ["n1", "n2"] {
        let cluster = duet::relay::cluster::ClusterConfig {
            url: redis.url(),
            prefix: "duet:".into(),
            node: node.into(),
        };
        let cluster = duet::relay::cluster::Cluster::connect(cluster, config.timing, config.presence_max)
            .await
            .expect("a node joins the cluster");
        let hub = Hub::clustered(config.clone(), cluster)
            .await
            .expect("node starts");
        nodes.push(serve(hub).await);
    }
    Net {
        a: nodes[0],
        b: nodes[1],
        cluster: true,
        turn: Default::default(),
        _redis: Some(redis),
    }
}

async fn connect(net: &Net, name: &str, key: Option<&str>) -> Client {
    connect_at(net.next(), name, key).await
}

async fn try_connect(net: &Net, name: &str, key: Option<&str>) -> Result<Client, WsError> {
    try_connect_at(net.next(), name, key).await
}

#[tokio::test]
async fn relays_every_type_classic_shapes_and_stamps_the_sender() {
    let net = start().await;
    let mut alice = connect(&net, "alice", Some("ka")).await;
    let mut bob = connect(&net, "bob", Some("kb")).await;
    let ice = json!({"candidate":"candidate:1 1 udp 2122260223 127.0.0.1 50000 typ host","sdpMid":"0","sdpMLineIndex":0});

    // A classic client sends fromUser itself; the server overwrites it regardless.
    alice
        .send(json!({"type":"call_start","fromUser":"mallory","toUser":"bob"}))
        .await;
    let m = bob.recv().await;
    assert_eq!(m, json!({"type":"call_start","fromUser":"alice","toUser":"bob"}));

    bob.send(json!({"type":"call_back","fromUser":"bob","toUser":"alice","msg":"1"}))
        .await;
    assert_eq!(
        alice.recv().await,
        json!({"type":"call_back","fromUser":"bob","toUser":"alice","msg":"1"})
    );

    alice
        .send(json!({"type":"offer","fromUser":"alice","toUser":"bob","sdp":"v=0\r\n"}))
        .await;
    assert_eq!(
        bob.recv().await,
        json!({"type":"offer","fromUser":"alice","toUser":"bob","sdp":"v=0\r\n"})
    );

    bob.send(json!({"type":"answer","toUser":"alice","sdp":"v=0 a"}))
        .await;
    assert_eq!(alice.recv().await["sdp"], "v=0 a");

    alice
        .send(json!({"type":"_ice","toUser":"bob","iceCandidate":ice}))
        .await;
    assert_eq!(
        bob.recv().await,
        json!({"type":"_ice","fromUser":"alice","toUser":"bob","iceCandidate":ice})
    );
    bob.send(json!({"type":"_ice","toUser":"alice","iceCandidate":ice}))
        .await;
    assert_eq!(alice.recv().await["iceCandidate"], ice);

    // Duet's addition: microphone/camera state, within the call.
    alice
        .send(json!({"type":"media","toUser":"bob","audio":false,"video":true}))
        .await;
    assert_eq!(
        bob.recv().await,
        json!({"type":"media","fromUser":"alice","toUser":"bob","audio":false,"video":true})
    );

    alice.send(json!({"type":"hangup","toUser":"bob"})).await;
    assert_eq!(
        bob.recv().await,
        json!({"type":"hangup","fromUser":"alice","toUser":"bob"})
    );
}

#[tokio::test]
async fn a_callers_offer_reaches_an_early_page_while_it_rings_and_a_classic_client_after_its_accept() {
    let net = start().await;
    let mut alice = connect(&net, "alice", Some("ka&early=1")).await;
    // bob's page takes offers while it rings (`early=1`); carol is a classic client.
    let mut bob = connect(&net, "bob", Some("kb&early=1")).await;
    let mut carol = connect(&net, "carol", Some("kc")).await;
    let offer = |to: &str| json!({"type":"offer","toUser":to,"sdp":"v=0\r\n"});
    let ice = |to: &str| json!({"type":"_ice","toUser":to,"iceCandidate":{"candidate":"candidate:1"}});

    alice.send(json!({"type":"call_start","toUser":"bob"})).await;
    assert_eq!(bob.recv().await["type"], "call_start");
    alice.send(offer("bob")).await;
    alice.send(ice("bob")).await;
    assert_eq!(bob.recv().await["type"], "offer", "while it rings");
    assert_eq!(bob.recv().await["type"], "_ice");
    alice.send(json!({"type":"hangup","toUser":"bob"})).await;
    assert_eq!(bob.recv().await["type"], "hangup");

    alice.send(json!({"type":"call_start","toUser":"carol"})).await;
    assert_eq!(carol.recv().await["type"], "call_start");
    alice.send(offer("carol")).await;
    alice.send(ice("carol")).await;
    // Nothing more reaches carol before her accept: the marker comes next.
    alice
        .send(json!({"type":"call_back","toUser":"carol","msg":"marker"}))
        .await;
    assert_eq!(carol.recv().await["msg"], "marker");
    carol
        .send(json!({"type":"call_back","toUser":"alice","msg":"1"}))
        .await;
    assert_eq!(alice.recv().await["msg"], "1");
    let m = carol.recv().await;
    assert_eq!(
        m,
        json!({"type":"offer","fromUser":"alice","toUser":"carol","sdp":"v=0\r\n"})
    );
    assert_eq!(carol.recv().await["type"], "_ice");
}

#[tokio::test]
async fn an_offer_inside_a_call_start_goes_as_an_offer_next_and_to_a_classic_client_after_its_accept() {
    let net = start().await;
    let mut alice = connect(&net, "alice", Some("ka&early=1")).await;
    let mut bob = connect(&net, "bob", Some("kb&early=1")).await;
    let mut carol = connect(&net, "carol", Some("kc")).await;
    let start = |to: &str| json!({"type":"call_start","toUser":to,"sdp":"v=0\r\n"});

    alice.send(start("bob")).await;
    assert_eq!(
        bob.recv().await,
        json!({"type":"call_start","fromUser":"alice","toUser":"bob"})
    );
    assert_eq!(
        bob.recv().await,
        json!({"type":"offer","fromUser":"alice","toUser":"bob","sdp":"v=0\r\n"})
    );
    alice.send(json!({"type":"hangup","toUser":"bob"})).await;
    assert_eq!(bob.recv().await["type"], "hangup");

    alice.send(start("carol")).await;
    assert_eq!(
        carol.recv().await,
        json!({"type":"call_start","fromUser":"alice","toUser":"carol"}),
        "a classic client gets the call_start it knows"
    );
    alice
        .send(json!({"type":"call_back","toUser":"carol","msg":"marker"}))
        .await;
    assert_eq!(carol.recv().await["msg"], "marker", "no offer before the accept");
    carol
        .send(json!({"type":"call_back","toUser":"alice","msg":"1"}))
        .await;
    assert_eq!(alice.recv().await["msg"], "1");
    assert_eq!(
        carol.recv().await,
        json!({"type":"offer","fromUser":"alice","toUser":"carol","sdp":"v=0\r\n"})
    );
}

#[tokio::test]
async fn an_answer_inside_an_accept_reaches_an_early_page_with_it_and_a_classic_client_as_an_answer() {
    let net = start().await;
    let mut alice = connect(&net, "alice", Some("ka&early=1")).await;
    let mut bob = connect(&net, "bob", Some("kb&early=1")).await;
    let mut carol = connect(&net, "carol", Some("kc")).await;
    let accept = |to: &str| json!({"type":"call_back","toUser":to,"msg":"1","sdp":"v=0\r\n"});

    alice.send(json!({"type":"call_start","toUser":"bob"})).await;
    assert_eq!(bob.recv().await["type"], "call_start");
    bob.send(accept("alice")).await;
    assert_eq!(
        alice.recv().await,
        json!({"type":"call_back","fromUser":"bob","toUser":"alice","msg":"1","sdp":"v=0\r\n"})
    );
    alice.send(json!({"type":"hangup","toUser":"bob"})).await;
    assert_eq!(bob.recv().await["type"], "hangup");

    carol.send(json!({"type":"call_start","toUser":"bob"})).await;
    assert_eq!(bob.recv().await["type"], "call_start");
    bob.send(accept("carol")).await;
    assert_eq!(
        carol.recv().await,
        json!({"type":"call_back","fromUser":"bob","toUser":"carol","msg":"1"}),
        "a classic client gets the accept it knows"
    );
    assert_eq!(
        carol.recv().await,
        json!({"type":"answer","fromUser":"bob","toUser":"carol","sdp":"v=0\r\n"})
    );
}

#[tokio::test]
async fn a_spoofed_from_user_never_reaches_anyone() {
    let net = start().await;
    let mut alice = connect(&net, "alice", None).await;
    let mut bob = connect(&net, "bob", None).await;
    let mut carol = connect(&net, "carol", None).await;
    alice
        .send(json!({"type":"call_back","fromUser":"carol","toUser":"bob","msg":"hello","code":"offline"}))
        .await;
    let m = bob.recv().await;
    assert_eq!(m["fromUser"], "alice");
    assert!(m.get("code").is_none(), "clients cannot forge server codes: {m}");
    // Carol, whose name was used, got nothing: the next thing she hears is alice's marker.
    alice.send(json!({"type":"call_start","toUser":"carol"})).await;
    let m = carol.recv().await;
    assert_eq!(
        (m["type"].as_str(), m["fromUser"].as_str()),
        (Some("call_start"), Some("alice"))
    );
}

#[tokio::test]
async fn calling_an_offline_name_gets_the_offline_notice() {
    let net = start().await;
    let mut alice = connect(&net, "alice", None).await;
    alice
        .send(json!({"type":"call_start","fromUser":"alice","toUser":"zoe"}))
        .await;
    let m = alice.recv().await;
    assert_eq!(notice_code(&m), "offline");
    assert!(m["msg"].as_str().unwrap().contains("zoe"));
}

#[tokio::test]
async fn bad_input_gets_typed_errors_and_the_connection_stays_open() {
    let net = start().await;
    let mut alice = connect(&net, "alice", None).await;
    let mut bob = connect(&net, "bob", None).await;
    let cases = [
        (WsMessage::Text("{not json".into()), "bad_message"),
        (
            WsMessage::Text(r#"{"type":"teleport","toUser":"bob"}"#.into()),
            "unknown_type",
        ),
        (
            WsMessage::Text(r#"{"type":"offer","sdp":"v=0"}"#.into()),
            "missing_recipient",
        ),
        (
            WsMessage::Text(r#"{"type":"call_start","toUser":"alice"}"#.into()),
            "to_self",
        ),
        (
            WsMessage::Text(r#"{"type":"offer","toUser":"bob","sdp":42}"#.into()),
            "bad_message",
        ),
        (WsMessage::Binary(vec![1u8, 2, 3].into()), "bad_message"),
    ];
    for (frame, code) in cases {
        alice.send_raw(frame).await;
        assert_eq!(notice_code(&alice.recv().await), code);
    }
    // Still open, and none of the above reached bob: the marker is the next thing he gets.
    alice.send(json!({"type":"call_start","toUser":"bob"})).await;
    assert_eq!(bob.recv().await["type"], "call_start");
}

#[tokio::test]
async fn a_name_cannot_be_taken_over_while_its_owner_is_online() {
    let net = start().await;
    let mut alice = connect(&net, "alice", Some("secret-a")).await;
    let mut bob = connect(&net, "bob", None).await;
    for key in [Some("guess"), None] {
        let mut thief = try_connect(&net, "alice", key).await.expect("upgrade");
        assert_eq!(notice_code(&thief.recv_any().await), "name_taken");
        let (code, reason) = thief.closed_with().await;
        assert_eq!(u16::from(code), duet::signal::CLOSE_NAME_TAKEN);
        assert!(reason.contains("alice"), "{reason}");
    }
    // The owner is undisturbed and still reachable.
    bob.send(json!({"type":"call_start","toUser":"alice"})).await;
    assert_eq!(alice.recv().await["fromUser"], "bob");
}

#[tokio::test]
async fn the_same_secret_replaces_the_old_connection() {
    let net = start().await;
    let mut old = connect(&net, "alice", Some("secret-a")).await;
    let mut bob = connect(&net, "bob", None).await;
    let mut new = connect(&net, "alice", Some("secret-a")).await;
    assert_eq!(notice_code(&old.recv().await), "replaced");
    let (code, _) = old.closed_with().await;
    assert_eq!(u16::from(code), duet::signal::CLOSE_REPLACED);
    bob.send(json!({"type":"call_start","toUser":"alice"})).await;
    assert_eq!(new.recv().await["fromUser"], "bob");
}

#[tokio::test]
async fn the_secret_is_taken_from_the_subprotocol_header_as_duet_pages_send_it() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let net = start().await;
    let mut request = format!("ws://{}/webrtc/alice", net.a)
        .into_client_request()
        .unwrap();
    let offered = format!(
        "{}, {}secret-a",
        duet::signal::SUBPROTOCOL,
        duet::signal::KEY_PROTOCOL
    );
    request
        .headers_mut()
        .insert("sec-websocket-protocol", offered.parse().unwrap());
    let (ws, response) = connect_async(request).await.expect("upgrade accepted");
    // The relay chose Duet's subprotocol (a browser fails the socket otherwise), never the key.
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        duet::signal::SUBPROTOCOL
    );
    let mut old = Client { ws };
    assert_eq!(old.recv_any().await["type"], "presence");
    assert_eq!(old.recv_any().await["type"], "config");
    // The same secret from the URL (a classic client) is the same person; another is not.
    let refused = try_connect(&net, "alice", Some("secret-b")).await;
    assert_eq!(notice_code(&refused.expect("upgrade").recv().await), "name_taken");
    let _new = connect(&net, "alice", Some("secret-a")).await;
    assert_eq!(notice_code(&old.recv().await), "replaced");
}

#[tokio::test]
async fn names_are_checked_at_the_upgrade() {
    let net = start().await;
    for bad in ["a%20b", "%40duet", "x%2Fy", &"n".repeat(33)] {
        match try_connect(&net, bad, None).await {
            Err(WsError::Http(resp)) => {
                assert_eq!(resp.status(), 400, "{bad}");
                let body = String::from_utf8(resp.body().clone().unwrap_or_default()).unwrap();
                assert!(body.starts_with("invalid name"), "{bad}: {body}");
            }
            Err(e) => panic!("{bad}: unexpected error {e}"),
            Ok(_) => panic!("{bad}: upgrade should be refused"),
        }
    }
    // Unicode names work: 张伟.
    let mut zhang = try_connect(&net, "%E5%BC%A0%E4%BC%9F", None)
        .await
        .expect("upgrade");
    assert_eq!(zhang.recv_any().await["users"], json!(["张伟"]));
}

fn timing(ring_timeout_ms: u64, grace_ms: u64) -> RelayConfig {
    RelayConfig {
        timing: Timing {
            ring_timeout_ms,
            grace_ms,
        },
        ..RelayConfig::default()
    }
}

#[tokio::test]
async fn presence_follows_joins_and_leaves_and_a_dropped_caller_ends_the_call() {
    let net = start_with(timing(30_000, 300)).await;
    let mut alice = connect(&net, "alice", None).await;
    let mut bob = connect(&net, "bob", None).await;
    alice.presence(&["alice", "bob"]).await;
    alice.send(json!({"type":"call_start","toUser":"bob"})).await;
    bob.recv().await;
    bob.send(json!({"type":"call_back","toUser":"alice","msg":"1"}))
        .await;
    alice.recv().await;
    // Alice's tab closes mid-call: she leaves the list at once, the call ends after the grace.
    drop(alice);
    bob.presence(&["bob"]).await;
    let m = bob.recv().await;
    assert_eq!(
        m,
        json!({"type":"hangup","fromUser":"alice","toUser":"bob","code":"peer_disconnected"})
    );
}

#[tokio::test]
async fn a_signaling_blip_within_the_grace_period_keeps_the_call() {
    let net = start_with(timing(30_000, 60_000)).await;
    let mut alice = connect(&net, "alice", Some("ka")).await;
    let mut bob = connect(&net, "bob", None).await;
    alice.send(json!({"type":"call_start","toUser":"bob"})).await;
    bob.recv().await;
    bob.send(json!({"type":"call_back","toUser":"alice","msg":"1"}))
        .await;
    alice.recv().await;
    drop(alice);
    bob.presence(&["bob"]).await;
    // What bob sends while alice is away waits for her, in order.
    for c in ["c0", "c1"] {
        bob.send(json!({"type":"_ice","toUser":"alice","iceCandidate":{"candidate":c}}))
            .await;
    }
    still_relays(&mut bob, &mut alice_watcher(&net).await, "watcher").await;
    let mut alice = connect(&net, "alice", Some("ka")).await;
    for c in ["c0", "c1"] {
        assert_eq!(alice.recv().await["iceCandidate"]["candidate"], c);
    }
    // The call survived: ICE still flows both ways, and nobody was told of a hang-up.
    bob.send(json!({"type":"_ice","toUser":"alice","iceCandidate":{"candidate":"c2"}}))
        .await;
    assert_eq!(alice.recv().await["iceCandidate"]["candidate"], "c2");
    alice
        .send(json!({"type":"_ice","toUser":"bob","iceCandidate":{"candidate":"c3"}}))
        .await;
    assert_eq!(bob.recv().await["type"], "_ice");
}

/// A third person, so a sender can prove its earlier messages were processed (see
/// `still_relays`) without waiting on a clock.
async fn alice_watcher(net: &Net) -> Client {
    connect(net, "watcher", None).await
}

#[tokio::test]
async fn each_person_gets_own_ice_servers_over_the_websocket_and_none_publicly() {
    let config = RelayConfig {
        ice: duet::relay::ice::IceSettings {
            turn_urls: vec!["turn:198.18.0.1:3478?transport=udp".into()],
            turn_secret: Some("north".into()),
            turn_ttl_secs: 600,
            stun_port: Some(3479),
            ..Default::default()
        },
        ..RelayConfig::default()
    };
    let net = start_with(config).await;
    let mut c = try_connect(&net, "bob", None).await.unwrap();
    assert_eq!(c.recv_any().await["type"], "presence");
    let first = c.recv_any().await;
    assert_eq!(first["type"], "config");
    assert_eq!(first["fromUser"], duet::signal::SYSTEM_NAME);
    let servers = &first["iceServers"];
    assert_eq!(servers[0]["urls"], json!([format!("stun:127.0.0.1:3479")]));
    let username = servers[1]["username"].as_str().unwrap();
    let (expiry, name) = username.split_once(':').unwrap();
    assert_eq!(name, "bob");
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let expiry: u64 = expiry.parse().unwrap();
    assert!((now + 590..=now + 610).contains(&expiry), "{expiry} vs {now}");
    let (_, credential) = duet::relay::ice::turn_rest_credential("north", "bob", expiry);
    assert_eq!(servers[1]["credential"], credential);
    // Asked again (before an ICE restart): a fresh configuration.
    c.send(json!({"type":"config"})).await;
    assert_eq!(c.recv_any().await["type"], "config");
    // Nobody can hand anyone else ICE servers.
    c.send(json!({"type":"config","toUser":"alice","iceServers":[]}))
        .await;
    assert_eq!(
        c.recv_any().await["type"],
        "config",
        "a request, whatever it carries"
    );
    // The public configuration: STUN only, no credential.
    let (status, body) = http_get(net.a, "/config.json").await;
    assert_eq!(status, 200);
    assert!(
        body.contains("stun:127.0.0.1:3479") && !body.contains("turn") && !body.contains("credential"),
        "{body}"
    );
}

#[tokio::test]
async fn a_long_chinese_name_is_refused_with_a_close_reason_that_fits() {
    let net = start().await;
    let name = "张".repeat(32);
    let _owner = connect(&net, &name, Some("owner")).await;
    let mut thief = try_connect(&net, &name, Some("thief")).await.expect("upgrade");
    assert_eq!(notice_code(&thief.recv_any().await), "name_taken");
    let (code, reason) = thief.closed_with().await;
    assert_eq!(u16::from(code), duet::signal::CLOSE_NAME_TAKEN);
    assert!(
        reason.len() <= 123 && reason.ends_with('…'),
        "{} bytes: {reason}",
        reason.len()
    );
}

#[tokio::test]
async fn secrets_never_reach_the_log() {
    // The real binary, every log line on, with every secret set.
    let secrets = ["turn-secret-7f3a", "static-credential-9c1e", "name-key-5d2b"];
    let args = ["--turn-url", "turn:127.0.0.1:3478", "--turn-secret", secrets[0]];
    let more = ["--turn-credential", secrets[1], "--turn-username", "u"];
    let server = common::Logged::start(&[&args[..], &more[..]].concat(), &[]).await;
    let mut c = connect_at(server.addr, "bob", Some(secrets[2])).await;
    c.send(json!({"type":"config"})).await;
    assert_eq!(c.recv_any().await["type"], "config");
    c.send(json!({"type":"hangup","toUser":"alice"})).await;
    assert_eq!(notice_code(&c.recv_any().await), "not_in_call");
    drop(c);
    let log = server.stop().await;
    assert!(log.contains("connected"), "the log has the connection: {log}");
    for secret in secrets {
        assert!(!log.contains(secret), "{secret} in the log:\n{log}");
    }
}

#[tokio::test]
async fn an_unanswered_call_times_out() {
    let net = start_with(timing(300, 10_000)).await;
    let mut alice = connect(&net, "alice", None).await;
    let mut bob = connect(&net, "bob", None).await;
    alice.send(json!({"type":"call_start","toUser":"bob"})).await;
    assert_eq!(bob.recv().await["type"], "call_start");
    assert_eq!(notice_code(&alice.recv().await), "no_answer");
    assert_eq!(
        bob.recv().await,
        json!({"type":"hangup","fromUser":"alice","toUser":"bob","code":"no_answer"})
    );
}

#[tokio::test]
async fn busy_callee_gets_no_second_call() {
    let net = start().await;
    let mut alice = connect(&net, "alice", None).await;
    let mut bob = connect(&net, "bob", None).await;
    let mut carol = connect(&net, "carol", None).await;
    alice.send(json!({"type":"call_start","toUser":"bob"})).await;
    bob.recv().await;
    carol.send(json!({"type":"call_start","toUser":"bob"})).await;
    assert_eq!(notice_code(&carol.recv().await), "busy");
    alice.send(json!({"type":"hangup","toUser":"bob"})).await;
    assert_eq!(
        bob.recv().await["type"],
        "hangup",
        "bob heard nothing of carol's attempt"
    );
}

/// One plain HTTP/1.1 GET; returns (status, body).
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let reply = common::http(addr, "GET", path, None, None).await;
    (reply.status, reply.body)
}

#[tokio::test]
async fn pages_are_server_rendered() {
    let net = start().await;
    let (status, body) = http_get(net.a, "/u/alice").await;
    assert_eq!(status, 200);
    for needle in [
        "id=\"remote-video\"",
        "id=\"local-video\"",
        "Friend's name",
        "Ready to call",
    ] {
        assert!(body.contains(needle), "SSR HTML lacks {needle}");
    }
    let (status, body) = http_get(net.a, "/call/bob").await;
    assert_eq!(status, 200);
    assert!(body.contains("Call bob on Duet"));
    let (status, _) = http_get(net.a, "/no/such/page").await;
    assert_eq!(status, 404);
    assert_eq!(http_get(net.a, "/healthz").await, (200, "ok".into()));
    assert_eq!(
        http_get(net.a, "/config.json").await,
        (200, r#"{"iceServers":[]}"#.into())
    );
}

// ---- Abuse: the server stays up, others keep relaying, every refusal is typed. ----

/// Alice and bob online; returns a check that bob can still reach alice through the relay.
async fn pair(net: &Net) -> (Client, Client) {
    (connect(net, "alice", None).await, connect(net, "bob", None).await)
}

async fn still_relays(from: &mut Client, to: &mut Client, to_name: &str) {
    from.send(json!({"type":"call_back","toUser":to_name,"msg":"still here?"}))
        .await;
    assert_eq!(to.recv().await["msg"], "still here?");
}

#[tokio::test]
async fn a_flooder_is_slowed_then_disconnected_and_others_are_unaffected() {
    let net = start_with(RelayConfig {
        rate_per_sec: 10,
        rate_burst: 20,
        rate_max_strikes: 100,
        ..RelayConfig::default()
    })
    .await;
    let (mut alice, mut bob) = pair(&net).await;
    let mut flooder = connect(&net, "flood", None).await;
    let note = json!({"type":"call_back","toUser":"alice","msg":"spam"}).to_string();
    for _ in 0..500 {
        if flooder
            .ws
            .send(WsMessage::Text(note.clone().into()))
            .await
            .is_err()
        {
            break;
        }
    }
    // The burst got through, then one rate_limited notice, then the close.
    let mut delivered = 0;
    loop {
        let m = alice.recv().await;
        if m["msg"] == "spam" {
            delivered += 1;
        } else {
            panic!("unexpected {m}");
        }
        if delivered == 20 {
            break;
        }
    }
    assert_eq!(notice_code(&flooder.recv().await), "rate_limited");
    let (code, reason) = flooder.closed_with().await;
    assert_eq!((u16::from(code), reason.as_str()), (1008, "rate limit exceeded"));
    alice.presence(&["alice", "bob"]).await;
    still_relays(&mut bob, &mut alice, "alice").await;
}

#[tokio::test]
async fn oversized_messages_get_too_large_and_huge_frames_close_only_that_connection() {
    let net = start_with(RelayConfig {
        max_message_bytes: 1024,
        ..RelayConfig::default()
    })
    .await;
    let (mut alice, mut bob) = pair(&net).await;
    let big = json!({"type":"offer","toUser":"bob","sdp":"x".repeat(1500)});
    alice.send(big).await;
    assert_eq!(notice_code(&alice.recv().await), "too_large");
    still_relays(&mut alice, &mut bob, "bob").await;
    // Over twice the limit: the WebSocket layer closes (1009), the server lives on.
    let mut huge = connect(&net, "huge", None).await;
    let _ = huge.ws.send(WsMessage::Text("y".repeat(4096).into())).await;
    let (code, _) = huge.closed_with().await;
    assert_eq!(u16::from(code), 1009);
    still_relays(&mut bob, &mut alice, "alice").await;
}

#[tokio::test]
async fn a_thousand_malformed_messages_each_get_a_typed_error() {
    let net = start_with(RelayConfig {
        rate_burst: 5_000,
        ..RelayConfig::default()
    })
    .await;
    let (mut alice, mut bob) = pair(&net).await;
    let garbage = [
        "{",
        "[]",
        "null",
        r#"{"type":"x"}"#,
        r#"{"type":"offer","toUser":5}"#,
    ];
    for i in 0..1000 {
        alice
            .send_raw(WsMessage::Text(garbage[i % garbage.len()].into()))
            .await;
    }
    for _ in 0..1000 {
        let code = notice_code(&alice.recv().await).to_owned();
        assert!(code == "bad_message" || code == "unknown_type", "{code}");
    }
    still_relays(&mut alice, &mut bob, "bob").await;
}

#[tokio::test]
async fn a_reader_that_never_reads_is_dropped_without_growing_memory() {
    let net = start_with(RelayConfig {
        outbox: 8,
        rate_burst: 10_000,
        rate_per_sec: 10_000,
        ..RelayConfig::default()
    })
    .await;
    let mut alice = connect(&net, "alice", None).await;
    let mut bob = connect(&net, "bob", None).await;
    let slow = connect(&net, "slow", None).await; // never reads again
    let chunk = "z".repeat(60_000);
    // Far more than the socket buffers plus 8 queued frames can hold.
    for _ in 0..400 {
        bob.send(json!({"type":"call_back","toUser":"slow","msg":chunk}))
            .await;
    }
    // The slow one is gone; the others are fine. (Bob's inbox now holds not_online notices for
    // his sends after the drop, so check through alice's.)
    alice.presence(&["alice", "bob"]).await;
    still_relays(&mut bob, &mut alice, "alice").await;
    drop(slow);
}

#[tokio::test]
async fn a_half_open_connection_is_removed_by_the_heartbeat() {
    let net = start_with(RelayConfig {
        ping_interval: Duration::from_millis(200),
        idle_timeout: Duration::from_millis(600),
        ..RelayConfig::default()
    })
    .await;
    let mut alice = connect(&net, "alice", None).await;
    // A client that stops reading never answers pings, like a peer whose network vanished.
    let ghost = connect(&net, "ghost", None).await;
    alice.presence(&["alice", "ghost"]).await;
    // Alice keeps reading (so her client answers pings) while the ghost is dropped.
    alice.presence(&["alice"]).await;
    let mut bob = connect(&net, "bob", None).await;
    still_relays(&mut bob, &mut alice, "alice").await;
    drop(ghost);
}

#[tokio::test]
async fn connection_limits_are_enforced_with_a_typed_refusal() {
    let net = start_with(RelayConfig {
        max_connections_per_ip: 2,
        ..RelayConfig::default()
    })
    .await;
    // The limit is per node: everyone on one.
    let net = Net::single(net.a);
    let (mut alice, mut bob) = pair(&net).await;
    let mut third = try_connect(&net, "carol", None).await.expect("upgrade");
    assert_eq!(notice_code(&third.recv_any().await), "too_many_connections");
    let (code, _) = third.closed_with().await;
    assert_eq!(u16::from(code), 1013);
    still_relays(&mut alice, &mut bob, "bob").await;
    // A slot frees up when someone leaves.
    drop(alice);
    bob.presence(&["bob"]).await;
    connect(&net, "carol", None).await;
}

#[tokio::test]
async fn a_foreign_origin_cannot_open_the_websocket() {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let net = start().await;
    for (origin, ok) in [
        ("https://evil.example", false),
        (&*format!("http://{}", net.a), true),
    ] {
        let mut req = format!("ws://{}/webrtc/alice", net.a)
            .into_client_request()
            .unwrap();
        req.headers_mut().insert("origin", origin.parse().unwrap());
        match connect_async(req).await {
            Err(WsError::Http(resp)) => {
                assert!(!ok, "{origin} should be allowed");
                assert_eq!(resp.status(), 403);
            }
            Ok(_) => assert!(ok, "{origin} should be refused"),
            Err(e) => panic!("{e}"),
        }
    }
}

#[tokio::test]
async fn metrics_count_connections_calls_and_rejections() {
    let net = start().await;
    let (mut alice, mut bob) = pair(&net).await;
    alice.send(json!({"type":"call_start","toUser":"bob"})).await;
    bob.recv().await;
    alice.send_raw(WsMessage::Text("nope".into())).await;
    alice.recv().await;
    let (status, body) = http_get(net.a, "/metrics").await;
    assert_eq!(status, 200);
    // A cluster node counts its own connections, and reports on Redis (alice is on n1, the
    // call_start was delivered by bob's node).
    let lines: &[&str] = if net.cluster {
        &[
            "duet_connections 1",
            "duet_cluster_ready{node=\"n1\"} 1",
            "duet_redis_failures_total{node=\"n1\"} 0",
            "duet_rejections_total{reason=\"bad_message\"} 1",
        ]
    } else {
        &[
            "duet_connections 2",
            "duet_calls{state=\"ringing\"} 1",
            "duet_messages_relayed_total 1",
            "duet_rejections_total{reason=\"bad_message\"} 1",
        ]
    };
    for line in lines {
        assert!(body.contains(line), "metrics lack {line}:\n{body}");
    }
}

#[tokio::test]
async fn shutdown_tells_every_client_and_closes_within_a_bounded_time() {
    let conf = leptos::prelude::get_configuration(Some("Cargo.toml")).expect("leptos config");
    let hub = Hub::new(RelayConfig::default());
    let app = duet::server::app(conf.leptos_options, hub.clone());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(duet::server::serve(listener, app, hub, async {
        let _ = stopped.await;
    }));
    let (mut alice, mut bob) = pair(&Net::single(addr)).await;
    stop.send(()).unwrap();
    for c in [&mut alice, &mut bob] {
        assert_eq!(notice_code(&c.recv().await), "server_shutdown");
        let (code, _) = c.closed_with().await;
        assert_eq!(u16::from(code), 1001);
    }
    tokio::time::timeout(Duration::from_secs(5), server)
        .await
        .expect("the server stops within 5 s")
        .unwrap()
        .unwrap();
}
