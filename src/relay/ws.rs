//! The axum WebSocket shell around [`Registry`]: reads frames, asks the core, writes frames.
//! No protocol decisions are made here.

use super::registry::{Action, ConnId, Registry};
use crate::signal::{validate_name, Code, ProtocolError, MAX_KEY_BYTES};
use axum::extract::ws::{CloseFrame, Message as WsMessage, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use futures_util::{SinkExt, StreamExt};
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use tokio::sync::mpsc;

/// Largest text frame accepted; a big SDP offer is ~10 KiB.
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Frames queued for one connection before it is considered stuck and dropped.
const OUTBOX_CAPACITY: usize = 256;

enum Outbound {
    Text(String),
    Close(u16, String),
}

#[derive(Default)]
struct Inner {
    registry: Registry,
    outboxes: HashMap<ConnId, mpsc::Sender<Outbound>>,
}

/// Shared relay state: the core plus one outbound queue per live connection.
#[derive(Default)]
pub struct Hub {
    inner: Mutex<Inner>,
    next_id: AtomicU64,
}

impl Hub {
    pub fn new() -> Arc<Hub> {
        Arc::new(Hub::default())
    }

    pub fn online_count(&self) -> usize {
        self.lock().registry.online_count()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock would be a bug in the core; keep serving regardless.
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Runs `f` on the core and carries out the actions it returns, all under one lock so
    /// deliveries keep the order the core decided.
    fn with_core(&self, f: impl FnOnce(&mut Registry) -> Vec<Action>) {
        let mut inner = self.lock();
        let actions = f(&mut inner.registry);
        for action in actions {
            let (conn, out) = match action {
                Action::Send(conn, m) => (conn, Outbound::Text(m.to_json())),
                Action::Close(conn, code, reason) => (conn, Outbound::Close(code, reason)),
            };
            let closing = matches!(out, Outbound::Close(..));
            let Some(tx) = inner.outboxes.get(&conn) else {
                continue;
            };
            if tx.try_send(out).is_err() {
                tracing::warn!(conn, "outbound queue full or closed; dropping the connection");
                inner.outboxes.remove(&conn);
            } else if closing {
                // Nothing more may be sent after a close frame.
                inner.outboxes.remove(&conn);
            }
        }
    }
}

#[derive(Deserialize)]
struct ConnectQuery {
    key: Option<String>,
}

/// `GET /webrtc/{username}` (WebSocket) and `GET /healthz`.
pub fn router(hub: Arc<Hub>) -> Router {
    Router::new()
        .route("/webrtc/{username}", get(upgrade))
        .route("/healthz", get(|| async { "ok" }))
        .with_state(hub)
}

async fn upgrade(
    Path(name): Path<String>,
    Query(query): Query<ConnectQuery>,
    State(hub): State<Arc<Hub>>,
    ws: WebSocketUpgrade,
) -> Response {
    if let Err(e) = validate_name(&name) {
        tracing::info!(%name, error = %e, "refused upgrade: invalid name");
        return (StatusCode::BAD_REQUEST, format!("invalid name: {e}")).into_response();
    }
    let key = query.key.filter(|k| !k.is_empty());
    if key.as_ref().is_some_and(|k| k.len() > MAX_KEY_BYTES) {
        return (
            StatusCode::BAD_REQUEST,
            format!("invalid key: at most {MAX_KEY_BYTES} bytes"),
        )
            .into_response();
    }
    ws.max_message_size(MAX_MESSAGE_BYTES)
        .max_frame_size(MAX_MESSAGE_BYTES)
        .on_upgrade(move |socket| serve(socket, hub, name, key))
}

async fn serve(socket: WebSocket, hub: Arc<Hub>, name: String, key: Option<String>) {
    let conn = hub.next_id.fetch_add(1, Ordering::Relaxed);
    let (mut sink, mut stream) = socket.split();
    let (tx, mut rx) = mpsc::channel(OUTBOX_CAPACITY);
    hub.lock().outboxes.insert(conn, tx);
    tracing::info!(conn, %name, "connected");

    let mut writer = tokio::spawn(async move {
        while let Some(out) = rx.recv().await {
            let frame = match out {
                Outbound::Text(text) => WsMessage::Text(text.into()),
                Outbound::Close(code, reason) => {
                    let frame = CloseFrame {
                        code,
                        reason: reason.into(),
                    };
                    let _ = sink.send(WsMessage::Close(Some(frame))).await;
                    return;
                }
            };
            if sink.send(frame).await.is_err() {
                return;
            }
        }
    });

    hub.with_core(|r| r.join(conn, &name, key.as_deref()));

    let reader = async {
        while let Some(Ok(frame)) = stream.next().await {
            match frame {
                WsMessage::Text(text) => hub.with_core(|r| r.handle(conn, text.as_str())),
                WsMessage::Binary(_) => hub.with_core(|r| {
                    let e =
                        ProtocolError::new(Code::BadMessage, "binary frames are not part of the protocol");
                    r.refuse(conn, e)
                }),
                WsMessage::Close(_) => break,
                WsMessage::Ping(_) | WsMessage::Pong(_) => {}
            }
        }
    };
    // Either side ending ends the connection: the client going away, or the core closing it.
    tokio::select! {
        _ = reader => {}
        _ = &mut writer => {}
    }
    hub.with_core(|r| r.leave(conn));
    hub.lock().outboxes.remove(&conn);
    writer.abort();
    tracing::info!(conn, %name, "disconnected");
}
