//! The one token bucket: `rate` tokens a second, holding at most `burst`. The providers'
//! limiter queues callers on it ([`TokenBucket::reserve`]: each waits its turn, spaced
//! `1 / rate` apart), `serve` refuses a run when its token's bucket is empty
//! ([`TokenBucket::try_take`], answered with 429 and `Retry-After`).

use std::time::{Duration, Instant};

/// A token bucket (see the [module documentation](self)).
#[derive(Debug, Clone)]
pub struct TokenBucket {
    rate: f64,
    burst: f64,
    /// Tokens held at `last`; below zero when callers reserved tokens not there yet.
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A full bucket filling at `rate` tokens a second, holding at most `burst` (at least
    /// one).
    pub fn new(rate: f64, burst: f64, now: Instant) -> TokenBucket {
        let burst = burst.max(1.0);
        TokenBucket {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn fill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = self.last.max(now);
    }

    /// Takes a token, or says how long until the bucket holds one (taking nothing).
    pub fn try_take(&mut self, now: Instant) -> Result<(), Duration> {
        self.fill(now);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::try_from_secs_f64((1.0 - self.tokens) / self.rate)
                .unwrap_or(Duration::MAX))
        }
    }

    /// Takes a token whether or not it is there yet, and says how long to wait for it:
    /// callers reserving one after another are served `1 / rate` apart.
    pub fn reserve(&mut self, now: Instant) -> Duration {
        self.fill(now);
        self.tokens -= 1.0;
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::try_from_secs_f64(-self.tokens / self.rate).unwrap_or(Duration::MAX)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn takes_bursts_then_refuses_until_it_fills() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(1.0, 2.0, start);
        assert!(bucket.try_take(start).is_ok());
        assert!(bucket.try_take(start).is_ok());
        assert_eq!(bucket.try_take(start), Err(Duration::from_secs(1)));
        assert!(bucket.try_take(start + Duration::from_secs(1)).is_ok());
        let mut slow = TokenBucket::new(0.1, 1.0, start);
        assert!(slow.try_take(start).is_ok());
        assert_eq!(slow.try_take(start), Err(Duration::from_secs(10)));
    }

    #[test]
    fn reservations_are_spaced_by_the_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(4.0, 1.0, start);
        let waits: Vec<Duration> = (0..3).map(|_| bucket.reserve(start)).collect();
        assert_eq!(
            waits,
            [
                Duration::ZERO,
                Duration::from_millis(250),
                Duration::from_millis(500)
            ]
        );
        // Idle time refills no more than the burst.
        let later = start + Duration::from_secs(60);
        assert_eq!(bucket.reserve(later), Duration::ZERO);
        assert_eq!(bucket.reserve(later), Duration::from_millis(250));
    }
}
