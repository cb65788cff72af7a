//! A cluster node's background work (the shell around `cluster`): the subscription to its
//! channel, a tick a second (the sweep of due deadlines, the lease, the canary), and registering
//! its users again when Redis lost them (restart, lapsed lease) or the subscription had a gap.

use super::cluster::{Cluster, ClusterError, Op, Renewal, RENEW};
use super::registry;
use super::ws::{Hub, Session};
use crate::signal::Code;
use futures_util::StreamExt;
use redis::aio::PubSub;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;
use tokio::sync::Notify;

/// Shared between the node's tasks.
struct Watch {
    /// The newest canary this node's subscription has seen.
    canary_seen: AtomicU64,
    /// Tells the listener to drop its subscription and make a new one.
    resubscribe: Notify,
    /// The node's users must be registered again (retried until it succeeds).
    resync: AtomicBool,
    /// ... and their calls too (Redis lost its data).
    relink: AtomicBool,
}

/// Subscribes (before any user can sign in, so nothing addressed to them is missed), takes the
/// first lease, and starts the node's tasks.
pub(super) async fn start(hub: &Arc<Hub>, cluster: &Arc<Cluster>) -> Result<(), ClusterError> {
    let pubsub = subscribe(cluster).await?;
    cluster.tick(true, 0).await?;
    let watch = Arc::new(Watch {
        canary_seen: AtomicU64::new(0),
        resubscribe: Notify::new(),
        resync: AtomicBool::new(false),
        relink: AtomicBool::new(false),
    });
    let weak = Arc::downgrade(hub);
    tokio::spawn(listen(
        weak.clone(),
        Arc::clone(cluster),
        Arc::clone(&watch),
        pubsub,
    ));
    tokio::spawn(tick(weak, Arc::clone(cluster), watch));
    Ok(())
}

async fn subscribe(cluster: &Cluster) -> Result<PubSub, ClusterError> {
    let connect = async {
        let mut pubsub = cluster.client()?.get_async_pubsub().await?;
        for channel in cluster.channels() {
            pubsub.subscribe(channel).await?;
        }
        Ok::<_, ClusterError>(pubsub)
    };
    tokio::time::timeout(Duration::from_secs(2), connect)
        .await
        .map_err(|_| ClusterError::Timeout)?
}

/// Carries out what other nodes published for this one, in order; after a gap (the connection
/// dropped, or the canary did not come back) subscribes again and registers the users again.
async fn listen(hub: Weak<Hub>, cluster: Arc<Cluster>, watch: Arc<Watch>, mut pubsub: PubSub) {
    loop {
        {
            let mut stream = pubsub.on_message();
            loop {
                tokio::select! {
                    msg = stream.next() => {
                        let Some(msg) = msg else { break };
                        let payload = String::from_utf8_lossy(msg.get_payload_bytes()).into_owned();
                        if let Some(seq) = payload.strip_prefix('c').and_then(|s| s.parse().ok()) {
                            watch.canary_seen.fetch_max(seq, Ordering::Relaxed);
                            continue;
                        }
                        let Some(hub) = hub.upgrade() else { return };
                        // In turn, so what follows keeps its place behind a message sent back.
                        for (from, to, json) in hub.apply_direct(cluster.ops(&[payload])) {
                            hub.apply(cluster.redeliver(&from, &to, &json).await);
                        }
                    }
                    _ = watch.resubscribe.notified() => break,
                }
            }
        }
        cluster.stats.gaps.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(node = %cluster.config.node, "redis subscription lost: subscribing again");
        pubsub = loop {
            if hub.strong_count() == 0 {
                return;
            }
            match subscribe(&cluster).await {
                Ok(p) => break p,
                Err(e) => {
                    tracing::debug!(error = %e, "subscribing again");
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            }
        };
        // What was published meanwhile is lost: presence and registrations are redone.
        watch.resync.store(true, Ordering::Relaxed);
    }
}

/// Once a second: the sweep of everything due; every [`RENEW`] also the lease and the canary;
/// registers the users again when needed. One script a second, so an idle node costs Redis a
/// few commands a second.
async fn tick(hub: Weak<Hub>, cluster: Arc<Cluster>, watch: Arc<Watch>) {
    let mut every = tokio::time::interval(Duration::from_secs(1));
    every.tick().await; // the first lease was taken at start
    let renew_every = RENEW.as_secs().max(1);
    let (mut n, mut canary) = (0u64, 0u64);
    let mut reachable = true;
    loop {
        every.tick().await;
        n += 1;
        let renew = n.is_multiple_of(renew_every);
        let Some(hub) = hub.upgrade() else { return };
        if renew && canary > watch.canary_seen.load(Ordering::Relaxed) {
            // The last canary did not come back: the subscription is broken.
            watch.canary_seen.store(canary, Ordering::Relaxed);
            watch.resubscribe.notify_one();
        }
        match cluster.tick(renew, canary + 1).await {
            Ok((renewal, ops)) => {
                if !reachable {
                    tracing::info!(node = %cluster.config.node, "redis reachable again");
                    reachable = true;
                }
                canary += u64::from(renew);
                hub.apply(ops);
                if renewal.is_some_and(|r| r != Renewal::Kept) {
                    tracing::warn!(node = %cluster.config.node, ?renewal, "registering this node's users again");
                    watch.resync.store(true, Ordering::Relaxed);
                }
                if renewal == Some(Renewal::Wiped) {
                    watch.relink.store(true, Ordering::Relaxed);
                }
            }
            Err(e) => {
                if reachable {
                    tracing::error!(node = %cluster.config.node, error = %e, "redis unavailable: refusing sign-ins and calls until it is back");
                    reachable = false;
                }
                continue;
            }
        }
        if watch.resync.swap(false, Ordering::Relaxed) {
            let relink = watch.relink.swap(false, Ordering::Relaxed);
            if !resync(&hub, &cluster, relink).await {
                watch.resync.store(true, Ordering::Relaxed);
                watch.relink.fetch_or(relink, Ordering::Relaxed);
            }
        }
    }
}

/// Registers every signed-in connection of this node again, and with `relink` the calls they
/// were in (after Redis lost its data). False if Redis failed meanwhile.
async fn resync(hub: &Hub, cluster: &Cluster, relink: bool) -> bool {
    cluster.stats.resyncs.fetch_add(1, Ordering::Relaxed);
    let sessions = hub.sessions();
    for s in &sessions {
        match cluster
            .join(s.conn, &s.name, s.key.as_deref(), s.early, true)
            .await
        {
            Ok(mut ops) => {
                if !relink {
                    ops.extend(missed_hangup(s, &ops));
                }
                hub.apply(ops);
            }
            Err(_) => return false,
        }
    }
    for s in sessions.iter().filter(|_| relink) {
        if let Some(partner) = &s.partner {
            match cluster
                .relink(s.conn, &s.name, &partner.name, partner.caller)
                .await
            {
                Ok(ops) => hub.apply(ops),
                Err(_) => return false,
            }
        }
    }
    true
}

/// After a gap: the call `s` was in, if Redis says it is over (a hang-up published while this
/// node did not hear), ends for `s` too, as if the partner's connection had gone.
fn missed_hangup(s: &Session, ops: &[Op]) -> Option<Op> {
    let partner = &s.partner.as_ref()?.name;
    let now = ops.iter().find_map(|op| match op {
        Op::Link { conn, peer } if *conn == s.conn => Some(peer.as_ref().map(|p| p.name.as_str())),
        _ => None,
    })?;
    (now != Some(partner.as_str())).then(|| {
        Op::Core(registry::hangup_from(
            s.conn,
            &s.name,
            partner,
            Code::PeerDisconnected,
        ))
    })
}
