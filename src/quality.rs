//! Connection quality from WebRTC statistics: two `getStats` readings in, figures and a grade
//! out. Pure, so it is tested natively; the browser shell (`client/stats.rs`) takes the readings.

/// The counters of one `getStats` reading that the indicator needs. Counters are cumulative
/// since the call started; rates come from the difference of two readings.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Sample {
    /// When it was taken (ms, the `timestamp` of the report).
    pub at_ms: f64,
    /// `currentRoundTripTime` of the selected candidate pair, seconds.
    pub rtt_s: Option<f64>,
    /// Summed over the inbound RTP streams (audio and video).
    pub packets_received: u64,
    /// Can go down: the spec counts duplicates as negative loss.
    pub packets_lost: i64,
    pub bytes_received: u64,
    /// Inbound video, as decoded.
    pub frame_size: Option<(u32, u32)>,
    pub fps: Option<f64>,
    /// The way the media takes, from the selected pair's candidate types.
    pub path: Option<Path>,
}

/// How the media travels between the two browsers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Path {
    /// Host candidates on both ends: same network (or public addresses).
    Direct,
    /// Through a NAT, found with STUN (server- or peer-reflexive candidates).
    Stun,
    /// Through a TURN relay server.
    Relay,
}

impl Path {
    /// From the `candidateType`s of the selected pair's local and remote candidates.
    pub fn of(local: &str, remote: &str) -> Path {
        let types = [local, remote];
        if types.contains(&"relay") {
            Path::Relay
        } else if types.iter().any(|t| matches!(*t, "srflx" | "prflx")) {
            Path::Stun
        } else {
            Path::Direct
        }
    }
}

/// What the details view shows; `None` where the browser has not reported it (yet).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Quality {
    pub rtt_ms: Option<f64>,
    /// Of the packets due in the interval, the share that never arrived.
    pub loss_pct: Option<f64>,
    /// Everything received (audio + video), kbit/s.
    pub kbps: Option<f64>,
    pub resolution: Option<(u32, u32)>,
    pub fps: Option<f64>,
    pub path: Option<Path>,
}

/// Four steps, shown as 4..1 bars.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Grade {
    Poor,
    Fair,
    Good,
    Excellent,
}

impl Grade {
    pub fn bars(self) -> u8 {
        self as u8 + 1
    }
}

impl Quality {
    /// Nothing at all arrived from the peer for at least 450 ms: audio flows all the time in a
    /// call (a packet every 20 ms; a muted microphone sends silence), so the path is broken,
    /// typically because our network just changed. Browsers take 5 s or more to call the
    /// connection `disconnected`.
    pub fn stalled(prev: &Sample, now: &Sample) -> bool {
        now.at_ms - prev.at_ms >= 450.0
            && prev.packets_received > 0
            && now.packets_received == prev.packets_received
            && now.bytes_received == prev.bytes_received
    }

    /// The figures over the interval from `prev` to `now`.
    pub fn between(prev: &Sample, now: &Sample) -> Quality {
        let seconds = (now.at_ms - prev.at_ms) / 1000.0;
        let received = now.packets_received.saturating_sub(prev.packets_received) as f64;
        let lost = (now.packets_lost - prev.packets_lost).max(0) as f64;
        let bytes = now.bytes_received.saturating_sub(prev.bytes_received) as f64;
        Quality {
            rtt_ms: now
                .rtt_s
                .filter(|r| r.is_finite() && *r >= 0.0)
                .map(|r| r * 1000.0),
            loss_pct: (received + lost > 0.0).then(|| 100.0 * lost / (received + lost)),
            // A counter reset (new stream) or a clock step would give nonsense: no figure.
            kbps: (seconds > 0.0 && now.bytes_received >= prev.bytes_received)
                .then(|| bytes * 8.0 / 1000.0 / seconds),
            resolution: now.frame_size.filter(|(w, h)| *w > 0 && *h > 0),
            fps: now.fps.filter(|f| f.is_finite() && *f >= 0.0),
            path: now.path,
        }
    }

    /// The worst of what the round trip and the loss say (the two a person notices: lag and
    /// breaking up). Bitrate is shown but not graded: it is low for good reasons too (the
    /// other camera off, a still picture).
    pub fn grade(&self) -> Grade {
        let by_rtt = self.rtt_ms.map_or(Grade::Excellent, |ms| match ms {
            ms if ms < 150.0 => Grade::Excellent,
            ms if ms < 300.0 => Grade::Good,
            ms if ms < 500.0 => Grade::Fair,
            _ => Grade::Poor,
        });
        let by_loss = self.loss_pct.map_or(Grade::Excellent, |pct| match pct {
            pct if pct < 1.0 => Grade::Excellent,
            pct if pct < 3.0 => Grade::Good,
            pct if pct < 8.0 => Grade::Fair,
            _ => Grade::Poor,
        });
        by_rtt.min(by_loss)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(at_ms: f64, received: u64, lost: i64, bytes: u64) -> Sample {
        Sample {
            at_ms,
            rtt_s: Some(0.04),
            packets_received: received,
            packets_lost: lost,
            bytes_received: bytes,
            frame_size: Some((640, 480)),
            fps: Some(30.0),
            path: Some(Path::Stun),
        }
    }

    #[test]
    fn the_path_is_the_most_indirect_end_of_the_pair() {
        assert_eq!(Path::of("host", "host"), Path::Direct);
        assert_eq!(Path::of("srflx", "host"), Path::Stun);
        assert_eq!(Path::of("host", "prflx"), Path::Stun);
        assert_eq!(Path::of("srflx", "relay"), Path::Relay);
        assert_eq!(Path::of("relay", "relay"), Path::Relay);
    }

    #[test]
    fn rates_come_from_the_difference_of_two_readings() {
        let q = Quality::between(&sample(1000.0, 100, 0, 10_000), &sample(3000.0, 290, 10, 260_000));
        assert_eq!(q.rtt_ms, Some(40.0));
        assert_eq!(q.loss_pct, Some(5.0));
        assert_eq!(q.kbps, Some(1000.0));
        assert_eq!(q.resolution, Some((640, 480)));
        assert_eq!(q.path, Some(Path::Stun));
        assert_eq!(q.grade(), Grade::Fair);
        assert_eq!(q.grade().bars(), 2);
    }

    #[test]
    fn half_a_second_without_a_single_packet_is_a_stall() {
        let before = sample(1000.0, 100, 0, 10_000);
        assert!(Quality::stalled(&before, &sample(1500.0, 100, 0, 10_000)));
        assert!(!Quality::stalled(&before, &sample(1500.0, 101, 0, 10_100)));
        assert!(
            !Quality::stalled(&before, &sample(1200.0, 100, 0, 10_000)),
            "too short to tell"
        );
        let nothing_yet = sample(1000.0, 0, 0, 0);
        assert!(
            !Quality::stalled(&nothing_yet, &sample(2000.0, 0, 0, 0)),
            "not started yet"
        );
    }

    #[test]
    fn nothing_received_yet_means_unknown_not_perfect_figures() {
        let s = Sample::default();
        let q = Quality::between(&s, &s);
        assert_eq!(
            (q.rtt_ms, q.loss_pct, q.kbps, q.resolution),
            (None, None, None, None)
        );
        assert_eq!(q.grade(), Grade::Excellent, "nothing says it is bad");
    }

    #[test]
    fn counter_resets_and_negative_loss_give_no_nonsense() {
        let q = Quality::between(&sample(1000.0, 500, 20, 90_000), &sample(2000.0, 10, 15, 1_000));
        assert_eq!(q.kbps, None);
        assert_eq!(q.loss_pct, None);
        let q = Quality::between(&sample(1000.0, 0, 0, 0), &sample(1000.0, 10, 0, 100));
        assert_eq!(q.kbps, None, "no time passed");
    }

    #[test]
    fn grade_is_the_worst_of_lag_and_loss() {
        let grade = |rtt_ms, loss_pct| {
            Quality {
                rtt_ms: Some(rtt_ms),
                loss_pct: Some(loss_pct),
                ..Quality::default()
            }
            .grade()
        };
        assert_eq!(grade(20.0, 0.0), Grade::Excellent);
        assert_eq!(grade(200.0, 0.0), Grade::Good);
        assert_eq!(grade(20.0, 2.0), Grade::Good);
        assert_eq!(grade(400.0, 0.5), Grade::Fair);
        assert_eq!(grade(20.0, 12.0), Grade::Poor);
        assert_eq!(grade(900.0, 0.0), Grade::Poor);
        assert_eq!(Grade::Excellent.bars(), 4);
        assert_eq!(Grade::Poor.bars(), 1);
    }
}
