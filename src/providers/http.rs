//! The one HTTP path every provider call goes through: a rate limit (the one token bucket,
//! [`crate::token_bucket`]), a timeout, and the one retry policy ([`crate::retry`]:
//! exponential backoff, full jitter) for what is transient (429, 5xx, timeouts, dropped
//! connections), honouring `Retry-After`. A request the provider rejects as invalid (other
//! 4xx) is never retried.

use std::sync::Mutex;
use std::time::{Duration, Instant};

use super::{ProviderError, ProviderSpec};
pub use crate::retry::RetryPolicy;
use crate::token_bucket::TokenBucket;

/// Spaces requests to a provider at most `rate` per second: a token bucket of one
/// ([`TokenBucket::reserve`]), callers served in turn.
#[derive(Debug)]
pub struct RateLimiter {
    bucket: Option<Mutex<TokenBucket>>,
}

impl RateLimiter {
    /// A limiter for `rate` requests per second (`None`: unlimited).
    pub fn new(rate: Option<f64>) -> RateLimiter {
        RateLimiter {
            // A rate of zero, below zero or not a number is no limit rather than a panic
            // (promptctl.toml bounds it; this guards other callers).
            bucket: rate
                .filter(|r| Duration::try_from_secs_f64(1.0 / r).is_ok())
                .map(|r| Mutex::new(TokenBucket::new(r, 1.0, Instant::now()))),
        }
    }

    /// Waits for this request's turn.
    pub async fn acquire(&self) {
        let Some(bucket) = &self.bucket else {
            return;
        };
        let wait = bucket
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .reserve(Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

/// Parses a `Retry-After` header given in seconds (HTTP dates are treated as absent).
pub fn retry_after(headers: &reqwest::header::HeaderMap) -> Option<Duration> {
    let value = headers.get(reqwest::header::RETRY_AFTER)?.to_str().ok()?;
    let seconds: f64 = value.trim().parse().ok()?;
    // A huge value waits the longest wait the policy allows, never panics.
    (seconds >= 0.0).then(|| Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX))
}

/// An API's error message from an error body (`error.message`, `error` or `message`),
/// shortened: a provider's, or GitHub's (`src/eval/pr_comment.rs`).
pub fn error_message(body: &str) -> String {
    let parsed: Option<serde_json::Value> = serde_json::from_str(body).ok();
    let message = parsed
        .as_ref()
        .and_then(|json| {
            json.pointer("/error/message")
                .or_else(|| json.pointer("/error"))
                .or_else(|| json.pointer("/message"))
        })
        .and_then(|m| m.as_str().map(str::to_owned))
        .unwrap_or_else(|| body.trim().to_owned());
    let mut short: String = message.chars().take(300).collect();
    if short.is_empty() {
        short = "(empty body)".to_owned();
    }
    short
}

/// POSTs `body` as JSON and returns the JSON answer, retrying what is transient.
pub async fn post_json_with_retries(
    client: &reqwest::Client,
    spec: &ProviderSpec,
    limiter: &RateLimiter,
    url: &str,
    body: &serde_json::Value,
    headers: &[(&'static str, String)],
    timeout: Duration,
) -> Result<serde_json::Value, ProviderError> {
    let model = body.get("model").and_then(serde_json::Value::as_str);
    spec.retry
        .run(
            || async move {
                limiter.acquire().await;
                let started = std::time::SystemTime::now();
                let (result, wait) = post_once(client, spec, url, body, headers, timeout).await;
                crate::telemetry::spans::record_attempt(crate::telemetry::spans::Attempt {
                    model: model.unwrap_or_default().to_owned(),
                    provider: spec.kind.genai_name().to_owned(),
                    started,
                    ended: std::time::SystemTime::now(),
                    error: result.as_ref().err().map(ToString::to_string),
                    server: reqwest::Url::parse(url).ok().and_then(|url| {
                        Some((url.host_str()?.to_owned(), url.port_or_known_default()?))
                    }),
                });
                (result, wait)
            },
            ProviderError::is_transient,
        )
        .await
}

async fn post_once(
    client: &reqwest::Client,
    spec: &ProviderSpec,
    url: &str,
    body: &serde_json::Value,
    headers: &[(&'static str, String)],
    timeout: Duration,
) -> (Result<serde_json::Value, ProviderError>, Option<Duration>) {
    let mut request = client.post(url).timeout(timeout).json(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let response = match request.send().await {
        Ok(response) => response,
        Err(err) => return (Err(transport_error(spec, url, &err, timeout)), None),
    };
    let status = response.status();
    let wait_hint = retry_after(response.headers());
    let text = match response.text().await {
        Ok(text) => text,
        Err(err) => return (Err(transport_error(spec, url, &err, timeout)), wait_hint),
    };
    if !status.is_success() {
        return (
            Err(ProviderError::Status {
                provider: spec.name.clone(),
                status: status.as_u16(),
                message: redact_secrets(&error_message(&text), headers),
            }),
            wait_hint,
        );
    }
    let parsed = serde_json::from_str(&text).map_err(|err| ProviderError::Malformed {
        provider: spec.name.clone(),
        message: format!("not JSON ({err})"),
    });
    (parsed, None)
}

/// Removes header values (API keys) from a message the provider sent back.
fn redact_secrets(message: &str, headers: &[(&'static str, String)]) -> String {
    let mut clean = message.to_owned();
    for (_, value) in headers {
        let secret = value.strip_prefix("Bearer ").unwrap_or(value);
        if secret.len() >= 8 {
            clean = clean.replace(secret, "[redacted]");
        }
    }
    clean
}

fn transport_error(
    spec: &ProviderSpec,
    url: &str,
    err: &reqwest::Error,
    timeout: Duration,
) -> ProviderError {
    if err.is_timeout() {
        ProviderError::Timeout {
            provider: spec.name.clone(),
            seconds: timeout.as_secs_f64(),
        }
    } else {
        // reqwest's chain can repeat the URL; the innermost cause says what happened.
        let mut cause: &dyn std::error::Error = err;
        while let Some(next) = cause.source() {
            cause = next;
        }
        ProviderError::Connect {
            provider: spec.name.clone(),
            url: url.to_owned(),
            message: cause.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn huge_or_odd_retry_after_and_rates_never_panic() {
        for (value, expected) in [
            ("1e30", Some(Duration::MAX)),
            ("99999999999999999999999", Some(Duration::MAX)),
            ("inf", Some(Duration::MAX)),
            ("NaN", None),
            ("-1", None),
            ("2", Some(Duration::from_secs(2))),
        ] {
            let mut headers = reqwest::header::HeaderMap::new();
            headers.insert(
                reqwest::header::RETRY_AFTER,
                value.parse().expect("header value"),
            );
            assert_eq!(retry_after(&headers), expected, "{value}");
        }
        for rate in [0.0, -1.0, f64::NAN, 1e-300] {
            assert!(RateLimiter::new(Some(rate)).bucket.is_none(), "{rate}");
        }
    }

    #[test]
    fn error_messages_come_from_the_body() {
        assert_eq!(
            error_message(r#"{"error": {"message": "bad key"}}"#),
            "bad key"
        );
        assert_eq!(error_message("oops"), "oops");
        assert_eq!(error_message(""), "(empty body)");
    }
}
