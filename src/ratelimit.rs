//! A per-client sliding-window-log rate limiter: at most `limit` accepted requests in
//! any rolling window. A token bucket or GCRA at `limit`/s would let a steady `limit`
//! per second through and then one more; a log of accepted instants does not.
//!
//! Memory stays bounded: each client holds at most `limit` instants, idle clients are
//! swept out periodically, and at most `max_clients` are tracked (past that, an
//! arbitrary client's history is forgotten to make room).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// What the limiter decided for one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Go ahead; the request was counted.
    Allowed,
    /// Over the limit; not counted. Try again after this long.
    Limited {
        /// Time until the oldest counted request leaves the window.
        retry_after: Duration,
    },
}

/// A sliding-window-log limiter keyed by client IP.
#[derive(Debug)]
pub struct RateLimiter {
    limit: usize,
    window: Duration,
    max_clients: usize,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    clients: HashMap<IpAddr, VecDeque<Instant>>,
    last_sweep: Option<Instant>,
}

/// Idle clients are swept out at most this many windows apart.
const SWEEP_EVERY_WINDOWS: u32 = 10;

impl RateLimiter {
    /// A limiter allowing `limit` requests per `window`; `None` when `limit` is 0 (off).
    #[must_use]
    pub fn new(limit: u32, window: Duration, max_clients: usize) -> Option<Self> {
        (limit > 0).then(|| Self {
            limit: limit as usize,
            window,
            max_clients: max_clients.max(1),
            state: Mutex::new(State {
                clients: HashMap::new(),
                last_sweep: None,
            }),
        })
    }

    /// Decides for a request from `client` arriving at `now`, and counts it if allowed.
    pub fn check(&self, client: IpAddr, now: Instant) -> Decision {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let window = self.window;
        let due = state
            .last_sweep
            .is_none_or(|last| now.saturating_duration_since(last) >= window * SWEEP_EVERY_WINDOWS);
        if due {
            state.clients.retain(|_, log| {
                log.back()
                    .is_some_and(|&t| now.saturating_duration_since(t) < window)
            });
            state.last_sweep = Some(now);
        }
        if !state.clients.contains_key(&client)
            && state.clients.len() >= self.max_clients
            && let Some(victim) = state.clients.keys().next().copied()
        {
            state.clients.remove(&victim);
        }
        let log = state.clients.entry(client).or_default();
        while log
            .front()
            .is_some_and(|&t| now.saturating_duration_since(t) >= window)
        {
            log.pop_front();
        }
        if log.len() >= self.limit {
            let oldest = *log.front().expect("a full log is not empty");
            let retry_after = window.saturating_sub(now.saturating_duration_since(oldest));
            return Decision::Limited { retry_after };
        }
        log.push_back(now);
        Decision::Allowed
    }

    /// How many clients are tracked now.
    #[must_use]
    pub fn tracked_clients(&self) -> usize {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clients
            .len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECOND: Duration = Duration::from_secs(1);

    fn ip(n: u32) -> IpAddr {
        IpAddr::from(n.to_be_bytes())
    }

    #[test]
    fn ten_requests_paced_at_100ms_pass_and_an_eleventh_right_after_is_limited() {
        let limiter = RateLimiter::new(10, SECOND, 100).expect("on");
        let t0 = Instant::now();
        for i in 0..10 {
            assert_eq!(
                limiter.check(ip(1), t0 + Duration::from_millis(100 * i)),
                Decision::Allowed,
                "request {i}"
            );
        }
        let eleventh = t0 + Duration::from_millis(905);
        match limiter.check(ip(1), eleventh) {
            Decision::Limited { retry_after } => assert_eq!(retry_after, Duration::from_millis(95)),
            Decision::Allowed => panic!("the 11th request in one second passed"),
        }
        // Another client is unaffected.
        assert_eq!(limiter.check(ip(2), eleventh), Decision::Allowed);
        // Once the first request leaves the window, one more fits, and only one.
        assert_eq!(limiter.check(ip(1), t0 + SECOND), Decision::Allowed);
        assert!(matches!(
            limiter.check(ip(1), t0 + SECOND),
            Decision::Limited { .. }
        ));
    }

    #[test]
    fn a_steady_rate_at_the_limit_never_gets_one_extra_through() {
        // 10 per second for 5 seconds, then a burst: a token bucket would allow one more.
        let limiter = RateLimiter::new(10, SECOND, 100).expect("on");
        let t0 = Instant::now();
        let mut allowed = 0;
        for i in 0..60 {
            if limiter.check(ip(1), t0 + Duration::from_millis(95 * i)) == Decision::Allowed {
                allowed += 1;
            }
        }
        // In any window of 1 s there are at most 10 accepted requests.
        assert!(allowed <= 10 * 6, "{allowed}");
        let burst_at = t0 + Duration::from_millis(95 * 60);
        let burst = (0..20)
            .filter(|_| limiter.check(ip(1), burst_at) == Decision::Allowed)
            .count();
        assert!(burst <= 10);
    }

    #[test]
    fn limited_requests_are_not_counted() {
        let limiter = RateLimiter::new(2, SECOND, 100).expect("on");
        let t0 = Instant::now();
        assert_eq!(limiter.check(ip(1), t0), Decision::Allowed);
        assert_eq!(limiter.check(ip(1), t0), Decision::Allowed);
        for _ in 0..100 {
            assert!(matches!(
                limiter.check(ip(1), t0 + Duration::from_millis(500)),
                Decision::Limited { .. }
            ));
        }
        assert_eq!(limiter.check(ip(1), t0 + SECOND), Decision::Allowed);
    }

    #[test]
    fn memory_stays_bounded_under_many_clients() {
        let limiter = RateLimiter::new(10, SECOND, 1_000).expect("on");
        let t0 = Instant::now();
        for n in 0..10_000 {
            limiter.check(ip(n), t0);
        }
        assert_eq!(limiter.tracked_clients(), 1_000);
        // Idle clients are swept out once they have been quiet for a window.
        limiter.check(ip(1), t0 + SECOND * (SWEEP_EVERY_WINDOWS + 1));
        assert_eq!(limiter.tracked_clients(), 1);
    }

    #[test]
    fn zero_turns_limiting_off() {
        assert!(RateLimiter::new(0, SECOND, 10).is_none());
    }
}
