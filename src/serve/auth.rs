//! Bearer tokens: a read scope (GET, render) and a run scope (run, which spends money; a
//! run token also reads). Tokens are compared in constant time and never logged; the
//! per-token rate limit of `run` is a token bucket keyed by the token's hash.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::token_bucket::TokenBucket;

/// What a request may do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Scope {
    /// GET and render.
    Read,
    /// Everything, run included.
    Run,
}

/// Why a request is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// No token, or one no variable lists: 401.
    Unauthenticated,
    /// A valid token without the scope: 403.
    Forbidden,
}

/// The configured tokens, as SHA-256 digests (so comparisons have one length).
#[derive(Debug, Default)]
pub struct Tokens {
    read: Vec<[u8; 32]>,
    run: Vec<[u8; 32]>,
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Tokens {
    /// Tokens from the two lists.
    pub fn new(read: &[String], run: &[String]) -> Tokens {
        Tokens {
            read: read.iter().map(|t| digest(t)).collect(),
            run: run.iter().map(|t| digest(t)).collect(),
        }
    }

    /// Whether any token is configured (else the API is open and listens on loopback only).
    pub fn enabled(&self) -> bool {
        !self.read.is_empty() || !self.run.is_empty()
    }

    /// The scope of `authorization` (the header's value), or why it is refused, for a request
    /// that needs `needed`. Every configured token is compared, in constant time each.
    pub fn check(&self, authorization: Option<&[u8]>, needed: Scope) -> Result<(), Denied> {
        if !self.enabled() {
            return Ok(());
        }
        let token = authorization
            .and_then(|value| std::str::from_utf8(value).ok())
            .and_then(|value| {
                value
                    .strip_prefix("Bearer ")
                    .or_else(|| value.strip_prefix("bearer "))
            })
            .map(str::trim)
            .ok_or(Denied::Unauthenticated)?;
        let given = digest(token);
        let mut is_read = subtle::Choice::from(0);
        for known in &self.read {
            is_read |= known.ct_eq(&given);
        }
        let mut is_run = subtle::Choice::from(0);
        for known in &self.run {
            is_run |= known.ct_eq(&given);
        }
        let scope = if bool::from(is_run) {
            Scope::Run
        } else if bool::from(is_read) {
            Scope::Read
        } else {
            return Err(Denied::Unauthenticated);
        };
        if scope >= needed {
            Ok(())
        } else {
            Err(Denied::Forbidden)
        }
    }
}

/// A token bucket per token ([`TokenBucket`]): `rate` requests a second, bursts of `burst`.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: Mutex<HashMap<[u8; 32], TokenBucket>>,
}

impl RateLimiter {
    /// A limiter; a `rate` of 0 turns it off.
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter {
            rate,
            burst: burst.max(1.0),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Takes one token from the bucket of `authorization`'s holder, or says how long until
    /// the bucket holds one.
    pub fn take(&self, authorization: Option<&[u8]>) -> Result<(), Duration> {
        if self.rate <= 0.0 {
            return Ok(());
        }
        let key: [u8; 32] = Sha256::digest(authorization.unwrap_or_default()).into();
        let Ok(mut buckets) = self.buckets.lock() else {
            return Ok(());
        };
        if buckets.len() > 10_000 {
            buckets.clear();
        }
        let now = Instant::now();
        buckets
            .entry(key)
            .or_insert_with(|| TokenBucket::new(self.rate, self.burst, now))
            .try_take(now)
            // Whole seconds, as `Retry-After` gives them.
            .map_err(|wait| {
                Duration::try_from_secs_f64(wait.as_secs_f64().ceil()).unwrap_or(Duration::MAX)
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes() {
        let tokens = Tokens::new(&["r1".into()], &["x1".into()]);
        assert_eq!(
            tokens.check(None, Scope::Read),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(
            tokens.check(Some(b"Bearer nope"), Scope::Read),
            Err(Denied::Unauthenticated)
        );
        assert_eq!(tokens.check(Some(b"Bearer r1"), Scope::Read), Ok(()));
        assert_eq!(
            tokens.check(Some(b"Bearer r1"), Scope::Run),
            Err(Denied::Forbidden)
        );
        assert_eq!(tokens.check(Some(b"Bearer x1"), Scope::Run), Ok(()));
        assert_eq!(tokens.check(Some(b"Bearer x1"), Scope::Read), Ok(()));
        assert!(Tokens::default().check(None, Scope::Run).is_ok());
    }

    #[test]
    fn rate_limit() {
        let limiter = RateLimiter::new(1.0, 2.0);
        assert!(limiter.take(Some(b"a")).is_ok());
        assert!(limiter.take(Some(b"a")).is_ok());
        assert_eq!(limiter.take(Some(b"a")), Err(Duration::from_secs(1)));
        assert!(limiter.take(Some(b"b")).is_ok());
        let slow = RateLimiter::new(0.1, 1.0);
        assert!(slow.take(None).is_ok());
        let wait = slow.take(None).expect_err("empty");
        assert!(wait >= Duration::from_secs(9) && wait <= Duration::from_secs(10));
    }
}
