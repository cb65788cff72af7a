//! Shared by the integration tests: the real server binary as a child process, raw HTTP requests.
// Each test crate uses a part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::process::{Child, ChildStderr, ChildStdout};

/// The server binary with every log line on, listening on a port the kernel picks.
pub struct Logged {
    pub server: Child,
    pub addr: SocketAddr,
    stdout: ChildStdout,
    stderr: ChildStderr,
    seen: Vec<u8>,
}

impl Logged {
    /// Starts `duet --addr 127.0.0.1:0 {args}` with `envs` and waits for the line saying where
    /// it listens.
    pub async fn start(args: &[&str], envs: &[(&str, &str)]) -> Logged {
        let mut server = tokio::process::Command::new(env!("CARGO_BIN_EXE_duet"))
            .args(["--addr", "127.0.0.1:0"])
            .args(args)
            .envs(envs.iter().copied())
            .env("RUST_LOG", "trace")
            .env("LEPTOS_OUTPUT_NAME", "duet")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the server binary starts");
        let mut stdout = server.stdout.take().unwrap();
        let stderr = server.stderr.take().unwrap();
        let mut seen = Vec::new();
        let addr: SocketAddr = loop {
            let mut buf = [0u8; 4096];
            let n = tokio::time::timeout(Duration::from_secs(5), stdout.read(&mut buf))
                .await
                .expect("log within 5 s")
                .unwrap();
            assert!(n > 0, "server exited: {}", String::from_utf8_lossy(&seen));
            seen.extend_from_slice(&buf[..n]);
            let text = String::from_utf8_lossy(&seen);
            if let Some(at) = text.find("listening on http://") {
                let rest = &text[at + "listening on http://".len()..];
                if let Some(end) = rest.find(|c: char| c.is_whitespace()) {
                    break rest[..end].parse().expect("an address");
                }
            }
        };
        Logged {
            server,
            addr,
            stdout,
            stderr,
            seen,
        }
    }

    /// Stops the server and returns everything it logged.
    pub async fn stop(mut self) -> String {
        self.server.start_kill().unwrap();
        self.server.wait().await.unwrap();
        self.stdout.read_to_end(&mut self.seen).await.unwrap();
        self.stderr.read_to_end(&mut self.seen).await.unwrap();
        String::from_utf8_lossy(&self.seen).into_owned()
    }
}

/// A response as it came: status, header lines, body.
pub struct Reply {
    pub status: u16,
    pub head: String,
    pub body: String,
}

impl Reply {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.head.lines().find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case(name).then(|| v.trim())
        })
    }
}

pub async fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    cookie: Option<&str>,
    form: Option<&str>,
) -> Reply {
    let mut s = TcpStream::connect(addr).await.unwrap();
    let mut req = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n");
    if let Some(c) = cookie {
        req.push_str(&format!("Cookie: {c}\r\n"));
    }
    if let Some(f) = form {
        req.push_str(&format!(
            "Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{f}",
            f.len()
        ));
    } else {
        req.push_str("\r\n");
    }
    s.write_all(req.as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut raw))
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    Reply {
        status: text[9..12].parse().unwrap(),
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// A redis-server of the test's own (no persistence), on a Unix socket in a fresh directory;
/// killed when dropped.
pub struct Redis {
    server: Child,
    pub dir: std::path::PathBuf,
}

impl Redis {
    pub async fn start() -> Redis {
        static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("duet-redis-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let mut redis = Redis {
            server: Redis::spawn(&dir),
            dir,
        };
        redis.wait().await;
        redis
    }

    fn spawn(dir: &std::path::Path) -> Child {
        let socket = dir.join("redis.sock");
        tokio::process::Command::new("redis-server")
            .args([
                "--port",
                "0",
                "--save",
                "",
                "--appendonly",
                "no",
                "--unixsocketperm",
                "700",
            ])
            .arg("--unixsocket")
            .arg(&socket)
            .arg("--dir")
            .arg(dir)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server starts (scripts/setup.sh installs it)")
    }

    /// Until the socket answers (the server creates it when it is ready).
    async fn wait(&mut self) {
        let socket = self.dir.join("redis.sock");
        for _ in 0..500 {
            if tokio::net::UnixStream::connect(&socket).await.is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.server.try_wait() {
                panic!("redis-server exited: {status}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        panic!("redis-server did not open {}", socket.display());
    }

    pub fn url(&self) -> String {
        format!("redis+unix://{}", self.dir.join("redis.sock").display())
    }

    /// `kill -9`, and a new, empty one in its place (same socket).
    pub async fn restart_empty(&mut self) {
        self.kill().await;
        let _ = std::fs::remove_file(self.dir.join("redis.sock"));
        self.server = Redis::spawn(&self.dir);
        self.wait().await;
    }

    pub async fn kill(&mut self) {
        let _ = self.server.kill().await;
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

// ---- WebSocket clients of a relay, and a relay served in-process ----

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message as WsMessage};
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

pub const WAIT: Duration = Duration::from_secs(5);

/// The real server (same router, same serve loop as `main`) on an ephemeral loopback port.
pub async fn serve(hub: std::sync::Arc<duet::relay::Hub>) -> SocketAddr {
    let conf = leptos::prelude::get_configuration(Some("Cargo.toml")).expect("leptos config");
    let app = duet::server::app(conf.leptos_options, hub.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(duet::server::serve(listener, app, hub, std::future::pending()));
    addr
}

pub struct Client {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

pub async fn connect_at(addr: SocketAddr, name: &str, key: Option<&str>) -> Client {
    let mut c = try_connect_at(addr, name, key).await.expect("upgrade accepted");
    // Every accepted connection is greeted with the presence list, then its ICE servers.
    let hello = c.recv_any().await;
    assert_eq!(hello["type"], "presence", "{hello}");
    let config = c.recv_any().await;
    assert_eq!(config["type"], "config", "{config}");
    c
}

pub async fn try_connect_at(addr: SocketAddr, name: &str, key: Option<&str>) -> Result<Client, WsError> {
    let mut url = format!("ws://{addr}/webrtc/{name}");
    if let Some(k) = key {
        url.push_str(&format!("?key={k}"));
    }
    let (ws, _) = connect_async(url).await?;
    Ok(Client { ws })
}

impl Client {
    pub async fn send(&mut self, v: Value) {
        self.ws.send(WsMessage::Text(v.to_string().into())).await.unwrap();
    }

    pub async fn send_raw(&mut self, frame: WsMessage) {
        self.ws.send(frame).await.unwrap();
    }

    /// The next frame, whatever it is, as JSON.
    pub async fn recv_any(&mut self) -> Value {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame within 5 s")
                .expect("socket open")
                .expect("no socket error");
            match frame {
                WsMessage::Text(t) => return serde_json::from_str(&t).expect("server sends JSON"),
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next frame as JSON, if one comes within `limit`.
    pub async fn recv_within(&mut self, limit: Duration) -> Option<Value> {
        loop {
            let frame = tokio::time::timeout(limit, self.ws.next()).await.ok()?;
            match frame.expect("socket open").expect("no socket error") {
                WsMessage::Text(t) => return Some(serde_json::from_str(&t).expect("server sends JSON")),
                WsMessage::Ping(_) | WsMessage::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// The next frame that is not a presence update.
    pub async fn recv(&mut self) -> Value {
        loop {
            let v = self.recv_any().await;
            if v["type"] != "presence" {
                return v;
            }
        }
    }

    /// Waits for a presence update listing exactly `users`.
    pub async fn presence(&mut self, users: &[&str]) {
        loop {
            let v = self.recv_any().await;
            if v["type"] == "presence" && v["users"] == json!(users) {
                return;
            }
        }
    }

    /// The close frame the server ends this connection with.
    pub async fn closed_with(&mut self) -> (CloseCode, String) {
        loop {
            let frame = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("close within 5 s")
                .expect("a close frame before the end")
                .expect("no socket error");
            if let WsMessage::Close(Some(f)) = frame {
                return (f.code, f.reason.to_string());
            }
        }
    }
}

pub fn notice_code(v: &Value) -> &str {
    assert_eq!(v["type"], "call_back", "{v}");
    assert_eq!(v["fromUser"], duet::signal::SYSTEM_NAME, "{v}");
    assert!(
        v["msg"].as_str().is_some_and(|m| !m.is_empty()),
        "human text: {v}"
    );
    v["code"].as_str().expect("code")
}
