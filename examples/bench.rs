//! Relay load benchmark: one tokio client measures Duet's relay and PeerServer (npm `peer`, the
//! PeerJS server) in the same run, so the figures compare like with like. `scripts/bench` builds
//! it, starts both servers and runs it; the figures go to docs/perf.md.
//!
//! Per server: (1) open N idle connections, each registered (Duet's first `presence`, PeerJS's
//! `OPEN`): connect rate and server RSS per connection; (2) `pairs` extra pairs ping-pong ICE
//! candidates, one in flight per pair, for a fixed time: one-way relay latency (sender and receiver
//! share this process's clock), messages/s, server CPU; (3) everything closes, RSS again.
//! Any failed connect, unexpected close or timeout counts as an error.
//!
//! Several `--duet` addresses are the nodes of one cluster (`scripts/bench-cluster`): idle
//! connections go to them in turn, and each pair's two ends to two different nodes (or one, with
//! `--same-node`). `--hold-secs` only opens and holds the idle crowd (a helper process: one process
//! may hold fewer than 20,000 files here); `--one-way` paces one-way streams with sequence
//! numbers, so loss and reordering show.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use futures_util::{stream, SinkExt, StreamExt};
use tokio::net::{TcpSocket, TcpStream};
use tokio::sync::watch;
use tokio::time::timeout;
use tokio_tungstenite::tungstenite::{protocol::WebSocketConfig, Message as Frame};
use tokio_tungstenite::WebSocketStream;

type Ws = WebSocketStream<TcpStream>;

/// How long any single step may take before it counts as an error.
const STEP_TIMEOUT: Duration = Duration::from_secs(15);

#[derive(Parser)]
#[command(about = "Relay benchmark: Duet vs PeerServer, same client, same run")]
struct Args {
    /// Duet's address (repeat for the nodes of a cluster); omit to skip Duet.
    #[arg(long)]
    duet: Vec<SocketAddr>,
    /// Duet servers' PIDs, for RSS and CPU from /proc (summed over the nodes).
    #[arg(long)]
    duet_pid: Vec<u32>,
    /// PeerServer's address (started with `--path /`); omit to skip it.
    #[arg(long)]
    peerjs: Option<SocketAddr>,
    #[arg(long)]
    peerjs_pid: Option<u32>,
    /// Idle connections held open while the pairs run.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Pairs that ping-pong ICE candidates through the relay.
    #[arg(long, default_value_t = 100)]
    pairs: usize,
    /// Duration of each traffic phase (saturated, then paced).
    #[arg(long, default_value_t = 10)]
    seconds: u64,
    /// Messages per second per pair in the paced phase.
    #[arg(long, default_value_t = 100)]
    rate: u64,
    /// Connection attempts in flight at once.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Spread connections over source addresses 127.0.0.1..=N (28k ephemeral ports each).
    #[arg(long, default_value_t = 4)]
    sources: u8,
    /// Interval of PeerJS's client HEARTBEAT (the PeerJS library sends one every 5 s).
    #[arg(long, default_value_t = 5)]
    heartbeat_secs: u64,
    /// Prefix of every name, so several client processes do not collide.
    #[arg(long, default_value = "")]
    prefix: String,
    /// Both ends of a pair on the same node (else on two different nodes of a cluster).
    #[arg(long)]
    same_node: bool,
    /// Only open the idle connections, print "holding N", and hold them until SIGINT (at most
    /// this many seconds).
    #[arg(long)]
    hold_secs: Option<u64>,
    /// The paced phase sends one way (a → b) without waiting, with sequence numbers.
    #[arg(long)]
    one_way: bool,
    /// Skip the saturated phase.
    #[arg(long)]
    skip_saturated: bool,
}

#[derive(Clone, Copy, PartialEq, Debug)]
enum Server {
    Duet,
    PeerJs,
}

impl Server {
    fn label(self) -> &'static str {
        match self {
            Server::Duet => "Duet",
            Server::PeerJs => "PeerServer",
        }
    }

    fn path(self, id: &str) -> String {
        match self {
            Server::Duet => format!("/webrtc/{id}?key=k{id}"),
            Server::PeerJs => format!("/peerjs?key=peerjs&id={id}&token=t{id}"),
        }
    }

    /// The server's greeting that says the connection is registered under its name.
    fn is_greeting(self, text: &str) -> bool {
        match self {
            Server::Duet => text.contains(r#""type":"presence""#),
            Server::PeerJs => text.contains(r#""type":"OPEN""#),
        }
    }

    /// A realistic trickled candidate for `to`, carrying the send time (µs since `origin`) and
    /// its sequence number.
    fn candidate(self, to: &str, seq: u64, sent_us: u64) -> String {
        let candidate = format!(
            r#"{{"candidate":"candidate:842163049 1 udp 1677729535 198.51.100.7 {} typ srflx raddr 0.0.0.0 rport 0 generation 0 ufrag sEMT network-cost 999 ts={sent_us} seq={seq}","sdpMid":"0","sdpMLineIndex":0}}"#,
            40_000 + seq % 20_000
        );
        match self {
            Server::Duet => format!(r#"{{"type":"_ice","toUser":"{to}","iceCandidate":{candidate}}}"#),
            Server::PeerJs => format!(
                r#"{{"type":"CANDIDATE","dst":"{to}","payload":{{"candidate":{candidate},"type":"media","connectionId":"mc_bench"}}}}"#
            ),
        }
    }

    fn heartbeat(self) -> Option<&'static str> {
        match self {
            Server::Duet => None, // the server pings; tungstenite answers like a browser does
            Server::PeerJs => Some(r#"{"type":"HEARTBEAT"}"#),
        }
    }
}

/// The number after `key` (`ts=`, `seq=`) in a candidate.
fn field(text: &str, key: &str) -> Option<u64> {
    let rest = &text[text.find(key)? + key.len()..];
    let end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    rest[..end].parse().ok()
}

fn sent_us(text: &str) -> Option<u64> {
    field(text, "ts=")
}

struct Target {
    server: Server,
    /// The nodes; one address for a single server.
    addrs: Vec<SocketAddr>,
    pids: Vec<u32>,
}

impl Target {
    /// Where the `i`-th connection of a kind goes: the nodes in turn.
    fn node(&self, i: usize) -> SocketAddr {
        self.addrs[i % self.addrs.len()]
    }

    fn label(&self) -> String {
        match self.addrs.len() {
            1 => self.server.label().to_owned(),
            n => format!("{} ({n} nodes)", self.server.label()),
        }
    }
}

async fn connect(t: &Target, addr: SocketAddr, source: Ipv4Addr, id: &str) -> Result<Ws, String> {
    let socket = TcpSocket::new_v4().map_err(|e| format!("socket: {e}"))?;
    socket
        .bind(SocketAddr::from((source, 0)))
        .map_err(|e| format!("bind {source}: {e}"))?;
    let tcp = socket.connect(addr).await.map_err(|e| format!("connect: {e}"))?;
    tcp.set_nodelay(true).map_err(|e| format!("nodelay: {e}"))?;
    // Small buffers, as the server uses: 20k default 128 KiB read buffers would be 2.5 GB here.
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{addr}{}", t.server.path(id));
    let (mut ws, _) = tokio_tungstenite::client_async_with_config(url, tcp, Some(config))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    wait_for(&mut ws, |text| t.server.is_greeting(text)).await?;
    Ok(ws)
}

/// Reads until a text frame satisfies `want`; returns it.
async fn wait_for(ws: &mut Ws, want: impl Fn(&str) -> bool) -> Result<String, String> {
    loop {
        match timeout(STEP_TIMEOUT, ws.next()).await {
            Ok(Some(Ok(Frame::Text(text)))) if want(&text) => return Ok(text.to_string()),
            Ok(Some(Ok(Frame::Close(frame)))) => return Err(format!("closed by server: {frame:?}")),
            Ok(Some(Ok(_))) => continue,
            Ok(Some(Err(e))) => return Err(format!("read: {e}")),
            Ok(None) => return Err("connection ended".into()),
            Err(_) => return Err("timed out".into()),
        }
    }
}

async fn send(ws: &mut Ws, text: String) -> Result<(), String> {
    ws.send(Frame::Text(text.into()))
        .await
        .map_err(|e| format!("send: {e}"))
}

/// Keeps an idle connection alive (answering pings, sending heartbeats) until `stop`.
async fn hold(
    server: Server,
    ws: Ws,
    mut stop: watch::Receiver<bool>,
    every: Duration,
    errors: Arc<AtomicU64>,
) {
    let (mut sink, mut stream) = ws.split();
    let mut beat = tokio::time::interval(every);
    beat.tick().await;
    loop {
        tokio::select! {
            _ = stop.changed() => {
                let _ = sink.send(Frame::Close(None)).await;
                return;
            }
            _ = beat.tick(), if server.heartbeat().is_some() => {
                let text = server.heartbeat().unwrap_or_default();
                if sink.send(Frame::Text(text.into())).await.is_err() {
                    errors.fetch_add(1, Ordering::Relaxed);
                    return;
                }
            }
            frame = stream.next() => if !matches!(frame, Some(Ok(Frame::Text(_) | Frame::Ping(_) | Frame::Pong(_)))) {
                eprintln!("{}: idle connection lost: {frame:?}", server.label());
                errors.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
    }
}

/// Makes the two ends of a pair able to exchange candidates: Duet relays them only within a call.
async fn pair_up(server: Server, a: &mut Ws, b: &mut Ws, a_id: &str, b_id: &str) -> Result<(), String> {
    if server == Server::Duet {
        send(a, format!(r#"{{"type":"call_start","toUser":"{b_id}"}}"#)).await?;
        wait_for(b, |t| t.contains(r#""type":"call_start""#)).await?;
        send(
            b,
            format!(r#"{{"type":"call_back","toUser":"{a_id}","msg":"1"}}"#),
        )
        .await?;
        wait_for(a, |t| t.contains(r#""type":"call_back""#)).await?;
    }
    Ok(())
}

type Pair = [(Ws, String); 2];

/// Ping-pongs candidates between the two ends until `until`, one in flight; with `pace`, one
/// message per period (from `start`), else as fast as the relay answers. Returns the ends and the
/// one-way latencies in µs.
async fn ping_pong(
    server: Server,
    mut ends: Pair,
    origin: Instant,
    (start, pace): (Instant, Option<Duration>),
    until: Instant,
) -> Result<(Pair, Vec<u32>), String> {
    let mut latencies = Vec::with_capacity(100_000);
    let mut ticks = pace.map(|period| {
        let mut ticks = tokio::time::interval_at(start.into(), period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        ticks
    });
    let mut seq = 0u64;
    while Instant::now() < until {
        if let Some(ticks) = &mut ticks {
            ticks.tick().await;
        }
        let (from, to) = if seq.is_multiple_of(2) { (0, 1) } else { (1, 0) };
        let text = server.candidate(&ends[to].1, seq, origin.elapsed().as_micros() as u64);
        send(&mut ends[from].0, text).await?;
        let got = wait_for(&mut ends[to].0, |t| t.contains("ts=")).await?;
        let sent = sent_us(&got).ok_or("candidate without a timestamp")?;
        latencies.push((origin.elapsed().as_micros() as u64).saturating_sub(sent) as u32);
        seq += 1;
    }
    Ok((ends, latencies))
}

/// One pair's traffic: the ends, the one-way latencies (µs), messages lost and out of order.
struct Run {
    ends: Pair,
    latencies: Vec<u32>,
    lost: u64,
    out_of_order: u64,
}

/// Sends candidates a → b one per `period` (from `start`) until `until` without waiting for
/// them; b checks each arrives, once, in order.
async fn one_way(
    server: Server,
    ends: Pair,
    origin: Instant,
    (start, period): (Instant, Duration),
    until: Instant,
) -> Result<Run, String> {
    let [(mut a, a_id), (mut b, b_id)] = ends;
    let (count_tx, mut count_rx) = tokio::sync::oneshot::channel::<u64>();
    let sender = async {
        let mut ticks = tokio::time::interval_at(start.into(), period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut seq = 0u64;
        while Instant::now() < until {
            ticks.tick().await;
            let text = server.candidate(&b_id, seq, origin.elapsed().as_micros() as u64);
            send(&mut a, text).await?;
            seq += 1;
        }
        let _ = count_tx.send(seq);
        Ok::<_, String>(())
    };
    let receiver = async {
        let (mut latencies, mut next, mut got, mut out_of_order) =
            (Vec::with_capacity(2_000), 0u64, 0u64, 0u64);
        let mut total = None;
        // Whatever has not arrived 3 s after the last send is lost.
        let deadline = tokio::time::sleep_until((until + Duration::from_secs(3)).into());
        tokio::pin!(deadline);
        while total.is_none_or(|t| got < t) {
            tokio::select! {
                text = wait_for(&mut b, |t| t.contains("ts=")) => {
                    let text = text?;
                    let seq = field(&text, "seq=").ok_or("candidate without a sequence number")?;
                    let sent = sent_us(&text).ok_or("candidate without a timestamp")?;
                    latencies.push((origin.elapsed().as_micros() as u64).saturating_sub(sent) as u32);
                    out_of_order += u64::from(seq != next);
                    next = seq + 1;
                    got += 1;
                }
                n = &mut count_rx, if total.is_none() => total = Some(n.map_err(|_| "sender gone")?),
                _ = &mut deadline => break,
            }
        }
        Ok::<_, String>((latencies, total.unwrap_or(got).saturating_sub(got), out_of_order))
    };
    let (sent, received) = tokio::join!(sender, receiver);
    sent?;
    let (latencies, lost, out_of_order) = received?;
    Ok(Run {
        ends: [(a, a_id), (b, b_id)],
        latencies,
        lost,
        out_of_order,
    })
}

/// Resident set size (KiB) and CPU time (ms, user + system) of processes, summed, from /proc.
fn proc_stats(pids: &[u32]) -> Option<(u64, u64)> {
    let stats: Option<Vec<(u64, u64)>> = pids.iter().map(|&pid| one_proc_stats(pid)).collect();
    let stats = stats.filter(|s| !s.is_empty())?;
    Some(stats.iter().fold((0, 0), |(r, c), (r1, c1)| (r + r1, c + c1)))
}

fn one_proc_stats(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after "(comm)": state is 3rd overall, utime 14th, stime 15th; ticks are 10 ms.
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some((rss, ticks * 10))
}

#[derive(Default)]
struct Report {
    connected: usize,
    connect_secs: f64,
    connect_ms: Vec<u32>,
    rss_start_kib: Option<u64>,
    rss_idle_kib: Option<u64>,
    rss_end_kib: Option<u64>,
    /// Pairs as fast as the relay answers, then at the paced rate.
    saturated: Traffic,
    paced: Traffic,
    errors: u64,
}

#[derive(Default)]
struct Traffic {
    /// Sorted one-way latencies, µs.
    latencies_us: Vec<u32>,
    secs: f64,
    cpu_ms: Option<u64>,
    /// One-way streams: messages sent but never received, and received out of order.
    lost: u64,
    out_of_order: u64,
}

impl Traffic {
    fn msgs_per_sec(&self) -> f64 {
        self.latencies_us.len() as f64 / self.secs.max(f64::EPSILON)
    }
    fn percentile(&self, p: f64) -> Option<f64> {
        (!self.latencies_us.is_empty()).then(|| percentile(&self.latencies_us, p) as f64)
    }
    fn cpu_per_1k(&self) -> Option<f64> {
        self.cpu_ms
            .map(|c| c as f64 * 1000.0 / self.latencies_us.len().max(1) as f64)
    }
}

impl Report {
    fn bytes_per_connection(&self) -> Option<f64> {
        let grown = self.rss_idle_kib?.checked_sub(self.rss_start_kib?)?;
        Some(grown as f64 * 1024.0 / self.connected.max(1) as f64)
    }
}

fn percentile<T: Copy + Default>(sorted: &[T], p: f64) -> T {
    if sorted.is_empty() {
        return T::default();
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs every pair for `args.seconds`; returns the figures and the pairs that survived.
async fn traffic(
    t: &Target,
    pairs: Vec<Pair>,
    pace: Option<Duration>,
    args: &Args,
    origin: Instant,
    errors: &AtomicU64,
) -> (Traffic, Vec<Pair>) {
    let one_way_pace = pace.filter(|_| args.one_way);
    let cpu_before = proc_stats(&t.pids).map(|s| s.1);
    let started = Instant::now();
    let until = started + Duration::from_secs(args.seconds);
    let count = pairs.len().max(1) as u32;
    let runs: Vec<_> = pairs
        .into_iter()
        .enumerate()
        .map(|(i, ends)| {
            // Paced pairs start spread over one period, not in lockstep.
            let start = started + pace.unwrap_or_default() * i as u32 / count;
            let server = t.server;
            tokio::spawn(async move {
                match one_way_pace {
                    Some(period) => one_way(server, ends, origin, (start, period), until).await,
                    None => ping_pong(server, ends, origin, (start, pace), until).await.map(
                        |(ends, latencies)| Run {
                            ends,
                            latencies,
                            lost: 0,
                            out_of_order: 0,
                        },
                    ),
                }
            })
        })
        .collect();
    let mut traffic = Traffic::default();
    let mut survivors = Vec::with_capacity(runs.len());
    for run in runs {
        match run.await {
            Ok(Ok(mut run)) => {
                traffic.latencies_us.append(&mut run.latencies);
                traffic.lost += run.lost;
                traffic.out_of_order += run.out_of_order;
                survivors.push(run.ends);
            }
            Ok(Err(e)) => {
                errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("{}: pair traffic failed: {e}", t.label());
            }
            Err(e) => panic!("ping-pong task panicked: {e}"),
        }
    }
    traffic.secs = started.elapsed().as_secs_f64();
    traffic.cpu_ms = proc_stats(&t.pids)
        .map(|s| s.1)
        .zip(cpu_before)
        .map(|(a, b)| a - b);
    traffic.latencies_us.sort_unstable();
    (traffic, survivors)
}

async fn run(t: &Target, args: &Args, origin: Instant) -> Report {
    let mut report = Report {
        rss_start_kib: proc_stats(&t.pids).map(|s| s.0),
        ..Report::default()
    };
    let errors = Arc::new(AtomicU64::new(0));
    let (stop_tx, stop_rx) = watch::channel(false);
    let every = Duration::from_secs(args.heartbeat_secs.max(1));

    // Phase 1: N idle connections.
    let started = Instant::now();
    let results: Vec<_> = stream::iter(0..args.connections)
        .map(|i| async move {
            let source = Ipv4Addr::new(127, 0, 0, 1 + (i % args.sources.max(1) as usize) as u8);
            let t0 = Instant::now();
            connect(t, t.node(i), source, &format!("{}idle{i}", args.prefix))
                .await
                .map(|ws| (ws, t0.elapsed()))
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    report.connect_secs = started.elapsed().as_secs_f64();
    let mut holders = Vec::with_capacity(results.len());
    for result in results {
        match result {
            Ok((ws, took)) => {
                report.connect_ms.push(took.as_millis() as u32);
                let task = hold(t.server, ws, stop_rx.clone(), every, Arc::clone(&errors));
                holders.push(tokio::spawn(task));
            }
            Err(e) => {
                if errors.fetch_add(1, Ordering::Relaxed) < 5 {
                    eprintln!("{}: connect failed: {e}", t.label());
                }
            }
        }
    }
    report.connected = holders.len();
    report.connect_ms.sort_unstable();
    if let Some(secs) = args.hold_secs {
        // A helper holding part of a crowd: say so, hold until told (bounded), let go.
        println!(
            "holding {} connections ({} errors)",
            report.connected,
            errors.load(Ordering::Relaxed)
        );
        let _ = tokio::time::timeout(Duration::from_secs(secs), tokio::signal::ctrl_c()).await;
        let _ = stop_tx.send(true);
        for holder in holders {
            let _ = holder.await;
        }
        report.errors = errors.load(Ordering::Relaxed);
        return report;
    }
    // Let the server settle (tasks parked, allocator quiet) before reading its RSS.
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.rss_idle_kib = proc_stats(&t.pids).map(|s| s.0);

    // Phase 2: pairs ping-pong candidates.
    let mut ready = Vec::with_capacity(args.pairs);
    for p in 0..args.pairs {
        let (a_id, b_id) = (format!("{}pa{p}", args.prefix), format!("{}pb{p}", args.prefix));
        // On two nodes of a cluster (the next one along), or both on one.
        let (a_at, b_at) = (t.node(p), t.node(p + usize::from(!args.same_node)));
        let set_up = async {
            let mut a = connect(t, a_at, Ipv4Addr::LOCALHOST, &a_id).await?;
            let mut b = connect(t, b_at, Ipv4Addr::LOCALHOST, &b_id).await?;
            pair_up(t.server, &mut a, &mut b, &a_id, &b_id).await?;
            Ok::<_, String>([(a, a_id), (b, b_id)])
        };
        match set_up.await {
            Ok(ends) => ready.push(ends),
            Err(e) => {
                errors.fetch_add(1, Ordering::Relaxed);
                eprintln!("{}: pair {p} failed: {e}", t.label());
            }
        }
    }
    let mut pairs = ready;
    let saturated = (!args.skip_saturated).then_some(None);
    let paced = Some(Duration::from_secs_f64(1.0 / args.rate.max(1) as f64));
    for pace in saturated.into_iter().chain([paced]) {
        let (traffic, back) = traffic(t, pairs, pace, args, origin, &errors).await;
        pairs = back;
        match pace {
            None => report.saturated = traffic,
            Some(_) => report.paced = traffic,
        }
    }
    for [(mut a, _), (mut b, _)] in pairs {
        let _ = a.close(None).await;
        let _ = b.close(None).await;
    }

    // Phase 3: close everything.
    let _ = stop_tx.send(true);
    for holder in holders {
        let _ = holder.await;
    }
    tokio::time::sleep(Duration::from_secs(2)).await;
    report.rss_end_kib = proc_stats(&t.pids).map(|s| s.0);
    report.errors = errors.load(Ordering::Relaxed);
    report
}

fn print(args: &Args, reports: &[(Server, Report)]) {
    let header: Vec<&str> = reports.iter().map(|(s, _)| s.label()).collect();
    let ratio = reports.len() == 2;
    println!();
    println!(
        "{} idle connections; {} pairs ping-pong ICE candidates for {} s as fast as the relay answers \
         (saturated), then {} s at {} messages/s per pair (paced); latency is one-way, client → relay → client",
        args.connections, args.pairs, args.seconds, args.seconds, args.rate
    );
    println!();
    print!("| metric | {} |", header.join(" | "));
    println!("{}", if ratio { " Duet / PeerServer |" } else { "" });
    println!(
        "|---|{}{}",
        "---|".repeat(header.len()),
        if ratio { "---|" } else { "" }
    );
    type Metric = fn(&Report) -> Option<f64>;
    let rows: [(&str, Metric); 21] = [
        ("connections open", |r| Some(r.connected as f64)),
        ("connect rate (conn/s)", |r| {
            Some(r.connected as f64 / r.connect_secs)
        }),
        (
            "connect p50 (ms)",
            |r| Some(percentile(&r.connect_ms, 0.5) as f64),
        ),
        ("connect p99 (ms)", |r| {
            Some(percentile(&r.connect_ms, 0.99) as f64)
        }),
        ("server RSS at start (MiB)", |r| {
            r.rss_start_kib.map(|k| k as f64 / 1024.0)
        }),
        ("server RSS with N idle (MiB)", |r| {
            r.rss_idle_kib.map(|k| k as f64 / 1024.0)
        }),
        ("RSS per idle connection (KiB)", |r| {
            r.bytes_per_connection().map(|b| b / 1024.0)
        }),
        ("saturated: relay messages/s", |r| {
            Some(r.saturated.msgs_per_sec())
        }),
        ("saturated: latency p50 (µs)", |r| r.saturated.percentile(0.5)),
        ("saturated: latency p99 (µs)", |r| r.saturated.percentile(0.99)),
        ("saturated: server CPU per 1k messages (ms)", |r| {
            r.saturated.cpu_per_1k()
        }),
        ("paced: relay messages/s", |r| Some(r.paced.msgs_per_sec())),
        ("paced: latency p50 (µs)", |r| r.paced.percentile(0.5)),
        ("paced: latency p90 (µs)", |r| r.paced.percentile(0.9)),
        ("paced: latency p99 (µs)", |r| r.paced.percentile(0.99)),
        ("paced: latency max (µs)", |r| r.paced.percentile(1.0)),
        ("paced: server CPU per 1k messages (ms)", |r| r.paced.cpu_per_1k()),
        ("paced: messages lost", |r| Some(r.paced.lost as f64)),
        ("paced: messages out of order", |r| {
            Some(r.paced.out_of_order as f64)
        }),
        ("server RSS after all closed (MiB)", |r| {
            r.rss_end_kib.map(|k| k as f64 / 1024.0)
        }),
        ("errors", |r| Some(r.errors as f64)),
    ];
    for (name, metric) in rows {
        let values: Vec<Option<f64>> = reports.iter().map(|(_, r)| metric(r)).collect();
        let cells: Vec<String> = values
            .iter()
            .map(|v| {
                v.map_or("n/a".into(), |v| {
                    if v.fract() == 0.0 {
                        format!("{v:.0}")
                    } else {
                        format!("{v:.1}")
                    }
                })
            })
            .collect();
        print!("| {name} | {} |", cells.join(" | "));
        if ratio {
            match (values[0], values[1]) {
                (Some(a), Some(b)) if b != 0.0 => print!(" {:.2} |", a / b),
                _ => print!(" – |"),
            }
        }
        println!();
    }
}

#[tokio::main]
async fn main() {
    let args = Args::parse();
    let origin = Instant::now();
    let targets: Vec<Target> = [
        (Server::Duet, args.duet.clone(), args.duet_pid.clone()),
        (
            Server::PeerJs,
            args.peerjs.into_iter().collect(),
            args.peerjs_pid.into_iter().collect(),
        ),
    ]
    .into_iter()
    .filter(|(_, addrs, _)| !addrs.is_empty())
    .map(|(server, addrs, pids)| Target { server, addrs, pids })
    .collect();
    if targets.is_empty() {
        eprintln!("nothing to measure: give --duet and/or --peerjs");
        std::process::exit(2);
    }
    let mut reports = Vec::new();
    for t in &targets {
        eprintln!("measuring {} at {:?} …", t.label(), t.addrs);
        let report = run(t, &args, origin).await;
        eprintln!(
            "{}: {} connections, {} messages, {} errors",
            t.label(),
            report.connected,
            report.saturated.latencies_us.len() + report.paced.latencies_us.len(),
            report.errors
        );
        reports.push((t.server, report));
    }
    if args.hold_secs.is_none() {
        print(&args, &reports);
    }
    if reports.iter().any(|(_, r)| r.errors > 0) {
        std::process::exit(1);
    }
}
