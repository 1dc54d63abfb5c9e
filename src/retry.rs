//! The one retry policy for calls to the outside world: the providers' HTTP calls, the
//! connection to PostgreSQL, and the run writer's reconnection. Exponential backoff with
//! full jitter: the wait before retry number `n` is drawn uniformly from `[0, ceiling)`,
//! where the ceiling starts at `base_delay`, doubles each retry and stops at `max_delay`
//! (so clients that failed together do not come back together). A `Retry-After` the
//! server gave is honoured instead, up to `max_delay`.
//!
//! What is worth retrying is the caller's decision (a 429, a 5xx, a timeout or a dropped
//! connection; never a request the server refused as wrong).

use std::future::Future;
use std::time::Duration;

/// Whether an HTTP answer of `status` may succeed when asked again: 429 (too many
/// requests) and every 5xx. The one rule for providers and GitHub's API alike.
pub fn transient_status(status: u16) -> bool {
    status == 429 || status >= 500
}

/// How failed calls are retried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Attempts after the first.
    pub max_retries: u32,
    /// The first ceiling; doubles each retry.
    pub base_delay: Duration,
    /// The highest ceiling, and the longest single wait, `Retry-After` included.
    pub max_delay: Duration,
}

impl Default for RetryPolicy {
    /// The providers' policy: three retries, 250 ms doubling, at most 30 s.
    fn default() -> Self {
        RetryPolicy {
            max_retries: 3,
            base_delay: Duration::from_millis(250),
            max_delay: Duration::from_secs(30),
        }
    }
}

impl RetryPolicy {
    /// The ceiling of the wait before retry number `attempt` (0-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        self.base_delay
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(self.max_delay)
    }

    /// The wait before retry number `attempt` (0-based): uniform in `[0, ceiling)` (full
    /// jitter), or the server's `Retry-After` when it gave one.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        match retry_after {
            Some(wait) => wait.min(self.max_delay),
            None => self.ceiling(attempt).mul_f64(unit_random()),
        }
    }

    /// Runs `attempt` until it succeeds, fails in a way `transient` says retrying cannot
    /// mend, or the retries are spent; between attempts, waits [`RetryPolicy::delay`]
    /// (each attempt may give the server's `Retry-After` with its result).
    pub async fn run<T, E, F, Fut>(
        &self,
        attempt: F,
        transient: impl Fn(&E) -> bool,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = (Result<T, E>, Option<Duration>)>,
    {
        self.run_with(attempt, transient, tokio::time::sleep).await
    }

    /// [`RetryPolicy::run`], waiting with `sleep` (the tests' records the waits).
    async fn run_with<T, E, F, Fut, S, Wait>(
        &self,
        mut attempt: F,
        transient: impl Fn(&E) -> bool,
        mut sleep: S,
    ) -> Result<T, E>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = (Result<T, E>, Option<Duration>)>,
        S: FnMut(Duration) -> Wait,
        Wait: Future<Output = ()>,
    {
        let mut retry = 0;
        loop {
            match attempt().await {
                (Err(err), retry_after) if transient(&err) && retry < self.max_retries => {
                    sleep(self.delay(retry, retry_after)).await;
                    retry += 1;
                }
                (result, _) => return result,
            }
        }
    }
}

/// A number in [0, 1) that differs between calls (no cryptographic quality needed):
/// SplitMix64 over a counter started from the clock, so every bit of the result depends
/// on every bit of the counter (a plain xorshift of the clock's nanoseconds left the high
/// bits, the ones that make the fraction, nearly constant).
fn unit_random() -> f64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    const GAMMA: u64 = 0x9E37_79B9_7F4A_7C15;
    static STATE: AtomicU64 = AtomicU64::new(0);
    let mut seed = STATE.fetch_add(GAMMA, Ordering::Relaxed);
    if seed == 0 {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(1, |d| d.as_nanos() as u64);
        // The first call seeds the counter from the clock (a race only costs a repeat).
        let _ = STATE.compare_exchange(GAMMA, nanos, Ordering::Relaxed, Ordering::Relaxed);
        seed = nanos;
    }
    let mut z = seed.wrapping_add(GAMMA);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_jitter_spans_zero_to_the_growing_ceiling() {
        let policy = RetryPolicy::default();
        for attempt in 0..5 {
            let ceiling = policy.base_delay * 2u32.pow(attempt);
            assert_eq!(policy.ceiling(attempt), ceiling);
            let delays: Vec<Duration> = (0..400).map(|_| policy.delay(attempt, None)).collect();
            assert!(delays.iter().all(|d| *d < ceiling), "{attempt}: {delays:?}");
            // Uniform over [0, ceiling): some waits fall in the lower half, which equal
            // jitter (ceiling × [0.5, 1)) never gives.
            assert!(
                delays.iter().any(|d| *d < ceiling / 2),
                "{attempt}: no wait below half the ceiling"
            );
            assert!(delays.iter().any(|d| *d >= ceiling / 2), "{attempt}");
            // And spread over the range, not stuck near one value.
            let mean = delays.iter().map(Duration::as_secs_f64).sum::<f64>() / 400.0;
            let half = ceiling.as_secs_f64() / 2.0;
            assert!((mean - half).abs() < half * 0.2, "{attempt}: mean {mean}");
        }
        assert_eq!(policy.ceiling(40), policy.max_delay);
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(2))),
            Duration::from_secs(2)
        );
        assert_eq!(
            policy.delay(0, Some(Duration::from_secs(999))),
            policy.max_delay
        );
        assert_eq!(policy.delay(0, Some(Duration::MAX)), policy.max_delay);
    }

    #[test]
    fn a_retry_after_is_waited_for_exactly() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .expect("runtime");
        let policy = RetryPolicy::default();
        let mut waits = Vec::new();
        let mut calls = 0;
        let result: Result<u32, &str> = runtime.block_on(policy.run_with(
            || {
                calls += 1;
                let call = calls;
                async move {
                    match call {
                        1 => (Err("429"), Some(Duration::from_secs(1))),
                        2 => (Err("503"), None),
                        _ => (Ok(call), None),
                    }
                }
            },
            |_| true,
            |wait| {
                waits.push(wait);
                std::future::ready(())
            },
        ));
        assert_eq!(result, Ok(3));
        assert_eq!(waits[0], Duration::from_secs(1), "the server's Retry-After");
        assert!(waits[1] < policy.ceiling(1), "{waits:?}");
    }

    #[test]
    fn retries_what_is_transient_and_no_more_than_allowed() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .expect("runtime");
        let policy = RetryPolicy {
            max_retries: 2,
            base_delay: Duration::from_millis(1),
            max_delay: Duration::from_millis(2),
        };
        // A transient error is tried 1 + max_retries times, any other once.
        for (error, tries) in [("busy", 3), ("refused", 1)] {
            let mut calls = 0;
            let result: Result<(), &str> = runtime.block_on(policy.run(
                || {
                    calls += 1;
                    async move { (Err(error), None) }
                },
                |err| *err == "busy",
            ));
            assert_eq!((result, calls), (Err(error), tries));
        }
    }
}
