//! Per-connection protections as plain values (no sockets, no clock): the shell passes `now`.

/// Token bucket: `burst` messages at once, refilled at `per_sec`. A connection over its budget
/// has messages dropped (with one `rate_limited` notice per episode); one that keeps flooding for
/// `max_strikes` dropped messages in a row is disconnected.
#[derive(Clone, Debug)]
pub struct RateLimiter {
    per_ms: f64,
    burst: f64,
    tokens: f64,
    last_ms: u64,
    strikes: u32,
    max_strikes: u32,
}

/// What to do with one incoming message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Pass,
    /// Drop it and tell the sender (first drop of an episode).
    DropAndWarn,
    /// Drop it silently (the sender was already told).
    Drop,
    /// The flood goes on: disconnect.
    Disconnect,
}

impl RateLimiter {
    pub fn new(per_sec: u32, burst: u32, max_strikes: u32, now_ms: u64) -> RateLimiter {
        RateLimiter {
            per_ms: f64::from(per_sec) / 1000.0,
            burst: f64::from(burst.max(1)),
            tokens: f64::from(burst.max(1)),
            last_ms: now_ms,
            strikes: 0,
            max_strikes,
        }
    }

    pub fn check(&mut self, now_ms: u64) -> Verdict {
        let elapsed = now_ms.saturating_sub(self.last_ms) as f64;
        self.last_ms = self.last_ms.max(now_ms);
        self.tokens = (self.tokens + elapsed * self.per_ms).min(self.burst);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            self.strikes = 0;
            return Verdict::Pass;
        }
        self.strikes += 1;
        match self.strikes {
            1 => Verdict::DropAndWarn,
            n if n > self.max_strikes => Verdict::Disconnect,
            _ => Verdict::Drop,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_passes_then_the_rate_applies() {
        let mut r = RateLimiter::new(10, 5, 100, 0);
        for _ in 0..5 {
            assert_eq!(r.check(0), Verdict::Pass);
        }
        assert_eq!(r.check(0), Verdict::DropAndWarn);
        assert_eq!(r.check(0), Verdict::Drop);
        // 10 per second: one token every 100 ms.
        assert_eq!(r.check(99), Verdict::Drop);
        assert_eq!(r.check(100), Verdict::Pass);
        assert_eq!(r.check(100), Verdict::DropAndWarn, "a new episode warns again");
        // A long pause refills only up to the burst.
        for _ in 0..5 {
            assert_eq!(r.check(60_000), Verdict::Pass);
        }
        assert_ne!(r.check(60_000), Verdict::Pass);
    }

    #[test]
    fn a_persistent_flood_is_disconnected() {
        let mut r = RateLimiter::new(10, 1, 3, 0);
        assert_eq!(r.check(0), Verdict::Pass);
        let verdicts: Vec<Verdict> = (0..5).map(|_| r.check(0)).collect();
        assert_eq!(
            verdicts,
            [
                Verdict::DropAndWarn,
                Verdict::Drop,
                Verdict::Drop,
                Verdict::Disconnect,
                Verdict::Disconnect
            ]
        );
    }

    #[test]
    fn a_clock_going_backwards_does_not_mint_tokens() {
        let mut r = RateLimiter::new(1, 1, 10, 5_000);
        assert_eq!(r.check(5_000), Verdict::Pass);
        assert_ne!(r.check(1_000), Verdict::Pass);
    }
}
