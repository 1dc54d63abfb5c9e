//! The client side of `/healthz`: asks a running `promptctl serve` whether it answers, within
//! a deadline, for `promptctl healthcheck` (a container's `HEALTHCHECK`, where there is no
//! curl). Healthy means one thing: a `200` to a `GET` of the URL, without following a
//! redirect. The endpoint itself is [`super::api::healthz`].

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

/// The most characters of a URL a message shows; the rest is cut, with `…`.
pub const MAX_SHOWN_URL: usize = 200;

/// `url` as messages show it: a user and password (`user:pw@`) as `***@`, and at most
/// [`MAX_SHOWN_URL`] characters, so that neither a credential nor a huge URL reaches a
/// log. Text that is not a URL is masked the same way.
pub fn shown_url(url: &str) -> String {
    let start = url.find("://").map_or(0, |scheme| scheme + 3);
    let end = url[start..]
        .find(['/', '?', '#'])
        .map_or(url.len(), |authority| start + authority);
    let mut shown = match url[start..end].rfind('@') {
        Some(at) => format!("{}***{}", &url[..start], &url[start + at..]),
        None => url.to_owned(),
    };
    if crate::registry::columns::clip(&mut shown, MAX_SHOWN_URL) {
        shown.push('…');
    }
    shown
}

/// Why a server is not healthy, or could not be asked. Every `url` is [`shown_url`]'s.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The URL is not an `http://` or `https://` URL.
    #[error("`{url}` is not an http:// or https:// URL: {reason}")]
    BadUrl {
        /// The URL as given.
        url: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `[serve] listen` is not an address to derive the URL from.
    #[error("cannot derive the health URL from the listen address `{listen}`: {reason}")]
    BadListen {
        /// The address as configured.
        listen: String,
        /// What is wrong with it.
        reason: String,
    },
    /// No complete answer within the deadline.
    #[error("no answer from {url} within {seconds} s")]
    Timeout {
        /// The URL asked.
        url: String,
        /// The deadline, in seconds.
        seconds: f64,
    },
    /// The connection failed (refused, reset, TLS, DNS).
    #[error("cannot reach {url}: {reason}")]
    Unreachable {
        /// The URL asked.
        url: String,
        /// The error and its causes.
        reason: String,
    },
    /// The server answered, but not `200`.
    #[error("{url} answered {status}, not 200")]
    Status {
        /// The URL asked.
        url: String,
        /// The status it answered.
        status: u16,
    },
}

/// The `/healthz` URL of a server listening on `listen` (`[serve] listen`), asked from the
/// same machine: an unspecified address (`0.0.0.0`, `[::]`) is asked on loopback.
pub fn url_for_listen(listen: &str) -> Result<String, ProbeError> {
    let address: SocketAddr = listen.parse().map_err(|err| ProbeError::BadListen {
        listen: listen.to_owned(),
        reason: format!("{err}"),
    })?;
    let ip = match address.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    Ok(format!(
        "http://{}/healthz",
        SocketAddr::new(ip, address.port())
    ))
}

/// Checks that `url` is an `http://` or `https://` URL with a host.
pub fn parse_url(url: &str) -> Result<reqwest::Url, ProbeError> {
    let bad = |reason: String| ProbeError::BadUrl {
        url: shown_url(url),
        reason,
    };
    let parsed = reqwest::Url::parse(url).map_err(|err| bad(err.to_string()))?;
    if !matches!(parsed.scheme(), "http" | "https") {
        return Err(bad(format!(
            "the scheme is `{}`",
            shown_url(parsed.scheme())
        )));
    }
    if parsed.host_str().is_none_or(str::is_empty) {
        return Err(bad("it has no host".to_owned()));
    }
    Ok(parsed)
}

/// Sends `GET url` and waits at most `timeout` for its status: `Ok(200)` when healthy.
/// Proxy variables are ignored (the server is asked directly) and a redirect is not
/// followed, so only the server at `url` itself can answer healthy.
pub async fn probe(url: &str, timeout: Duration) -> Result<u16, ProbeError> {
    let parsed = parse_url(url)?;
    let client = reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .connect_timeout(timeout)
        .timeout(timeout)
        .build()
        .map_err(|err| ProbeError::Unreachable {
            url: shown_url(url),
            reason: root_cause(&err),
        })?;
    let timed_out = || ProbeError::Timeout {
        url: shown_url(url),
        seconds: timeout.as_secs_f64(),
    };
    // reqwest's own timeout covers the request; this one bounds everything else too.
    let response = tokio::time::timeout(timeout, client.get(parsed).send())
        .await
        .map_err(|_| timed_out())?
        .map_err(|err| {
            if err.is_timeout() {
                timed_out()
            } else {
                ProbeError::Unreachable {
                    url: shown_url(url),
                    reason: root_cause(&err),
                }
            }
        })?;
    let status = response.status().as_u16();
    if status == 200 {
        Ok(status)
    } else {
        Err(ProbeError::Status {
            url: shown_url(url),
            status,
        })
    }
}

/// What went wrong, for people: the innermost cause (`Connection refused (os error 111)`,
/// a TLS error), which reqwest's own message (`error sending request for url (...)`) and
/// hyper's (`client error (Connect)`) only wrap.
pub fn root_cause(err: &(dyn std::error::Error + 'static)) -> String {
    let mut innermost = err;
    while let Some(cause) = innermost.source() {
        innermost = cause;
    }
    innermost.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_addresses_become_loopback_urls() {
        let url = |listen| url_for_listen(listen).expect("an address");
        assert_eq!(url("0.0.0.0:8080"), "http://127.0.0.1:8080/healthz");
        assert_eq!(url("[::]:9000"), "http://[::1]:9000/healthz");
        assert_eq!(url("10.1.2.3:80"), "http://10.1.2.3:80/healthz");
        assert!(matches!(
            url_for_listen("localhost"),
            Err(ProbeError::BadListen { .. })
        ));
    }

    #[test]
    fn shown_urls_hide_credentials_and_stop_at_the_bound() {
        assert_eq!(
            shown_url("http://ada:pw@host:8080/healthz?x=@y"),
            "http://***@host:8080/healthz?x=@y"
        );
        assert_eq!(shown_url("https://token@host/"), "https://***@host/");
        assert_eq!(shown_url("ada:pw@host:1"), "***@host:1");
        assert_eq!(shown_url("http://a@b@host/"), "http://***@host/");
        assert_eq!(
            shown_url("http://127.0.0.1:8080/healthz"),
            "http://127.0.0.1:8080/healthz"
        );
        let long = format!("http://host/{}", "é".repeat(1000));
        let shown = shown_url(&long);
        assert_eq!(shown.chars().count(), MAX_SHOWN_URL + 1);
        assert!(shown.ends_with('…'));
        assert_eq!(shown_url(""), "");
    }

    #[test]
    fn only_http_urls_with_a_host_are_asked() {
        assert!(parse_url("http://127.0.0.1:8080/healthz").is_ok());
        assert!(parse_url("https://example.test/healthz").is_ok());
        for bad in [
            "ftp://host/x",
            "127.0.0.1:8080",
            "file:///etc/passwd",
            "http://",
            "",
        ] {
            assert!(
                matches!(parse_url(bad), Err(ProbeError::BadUrl { .. })),
                "{bad}"
            );
        }
    }
}
