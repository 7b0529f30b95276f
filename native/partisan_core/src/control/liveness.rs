//! Ping liveness of one connection, sans-IO: the reader of the connection tells it when bytes
//! arrive and asks it what to do when its deadline passes.
//!
//! Kept apart from [`Node`](super::Node) on purpose: it is consulted on every read, and a
//! connection's reader owns it without any lock. The node learns the verdict as
//! `Input::Closed { reason: PingTimeout }`.

use std::time::{Duration, Instant};

/// Partisan's `connection_ping` option.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PingConfig {
    /// Whether idle connections are pinged at all.
    pub enabled: bool,
    /// Silence on a connection after which a ping is sent.
    pub idle_timeout: Duration,
    /// How long to wait for any byte after a ping before counting a failed attempt.
    pub timeout: Duration,
    /// Failed attempts after which the connection is closed.
    pub max_attempts: u32,
}

impl Default for PingConfig {
    fn default() -> Self {
        PingConfig {
            enabled: true,
            idle_timeout: Duration::from_secs(20),
            timeout: Duration::from_secs(10),
            max_attempts: 5,
        }
    }
}

impl PingConfig {
    /// The longest a silent peer can go unnoticed: an idle period, then every attempt's wait.
    pub fn detection_bound(&self) -> Duration {
        self.idle_timeout + self.timeout * self.max_attempts
    }
}

/// What the connection must do once [`Liveness::deadline`] has passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send a ping frame carrying this nonce.
    Ping(u64),
    /// Close the connection: the peer stayed silent through every attempt.
    Dead,
}

/// The ping state of one connection.
#[derive(Debug, Clone)]
pub struct Liveness {
    cfg: PingConfig,
    last_rx: Instant,
    ping_sent: Option<Instant>,
    attempts: u32,
    nonce: u64,
}

impl Liveness {
    /// A connection that was just established at `now`.
    pub fn new(cfg: PingConfig, now: Instant) -> Liveness {
        Liveness {
            cfg,
            last_rx: now,
            ping_sent: None,
            attempts: 0,
            nonce: 0,
        }
    }

    /// Bytes arrived: the peer is alive, whatever they were.
    pub fn received(&mut self, now: Instant) {
        self.last_rx = now;
        self.ping_sent = None;
        self.attempts = 0;
    }

    /// When [`Liveness::timeout`] is due; `None` when pings are off.
    pub fn deadline(&self) -> Option<Instant> {
        if !self.cfg.enabled {
            return None;
        }
        Some(match self.ping_sent {
            Some(at) => at + self.cfg.timeout,
            None => self.last_rx + self.cfg.idle_timeout,
        })
    }

    /// The deadline passed (the caller checks; calling early is harmless and returns `None`).
    pub fn timeout(&mut self, now: Instant) -> Option<Verdict> {
        if self.deadline().is_none_or(|d| now < d) {
            return None;
        }
        if self.ping_sent.is_some() {
            self.attempts += 1;
            if self.attempts >= self.cfg.max_attempts {
                return Some(Verdict::Dead);
            }
        }
        self.nonce += 1;
        self.ping_sent = Some(now);
        Some(Verdict::Ping(self.nonce))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> PingConfig {
        PingConfig {
            enabled: true,
            idle_timeout: Duration::from_secs(2),
            timeout: Duration::from_secs(1),
            max_attempts: 3,
        }
    }

    #[test]
    fn a_silent_peer_is_dead_within_the_bound() {
        let t0 = Instant::now();
        let mut l = Liveness::new(cfg(), t0);
        let mut pings = 0;
        let dead_at = loop {
            let at = l.deadline().unwrap();
            match l.timeout(at) {
                Some(Verdict::Ping(n)) => {
                    pings += 1;
                    assert_eq!(n, pings);
                }
                Some(Verdict::Dead) => break at,
                None => panic!("deadline passed without a verdict"),
            }
        };
        assert_eq!(pings, 3);
        assert_eq!(dead_at - t0, cfg().detection_bound());
    }

    #[test]
    fn any_byte_resets_the_attempts() {
        let t0 = Instant::now();
        let mut l = Liveness::new(cfg(), t0);
        let at = l.deadline().unwrap();
        assert_eq!(l.timeout(at), Some(Verdict::Ping(1)));
        assert_eq!(l.timeout(at), None, "early calls do nothing");
        l.received(at + Duration::from_millis(10));
        assert_eq!(
            l.deadline(),
            Some(at + Duration::from_millis(10) + cfg().idle_timeout)
        );
    }

    #[test]
    fn disabled_pings_never_fire() {
        let mut l = Liveness::new(
            PingConfig {
                enabled: false,
                ..cfg()
            },
            Instant::now(),
        );
        assert_eq!(l.deadline(), None);
        assert_eq!(l.timeout(Instant::now() + Duration::from_secs(3600)), None);
    }
}
