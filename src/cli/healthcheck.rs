//! `promptctl healthcheck`: exit 0 when a running `promptctl serve` answers `/healthz` with
//! 200 within the timeout, 1 otherwise. For a container's `HEALTHCHECK` (the image holds no
//! curl) and for scripts; the asking is [`crate::serve::health`].

use std::time::Duration;

use clap::Args;

use super::output::Format;
use super::{CliError, Context, ErrorKind, exit};
use crate::serve::health::{self, ProbeError};

/// Arguments of `promptctl healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The URL to ask [default: `/healthz` at `[serve] listen`, an unspecified address
    /// asked on loopback: http://127.0.0.1:8080/healthz].
    #[arg(long, value_name = "URL", env = "PROMPTCTL_HEALTHCHECK_URL")]
    url: Option<String>,
    /// Seconds to wait for the answer, connecting included (1 to 86400).
    #[arg(long, value_name = "S", default_value_t = 5)]
    timeout: u64,
}

/// Runs `promptctl healthcheck`.
pub fn run(context: &Context, args: &HealthcheckArgs) -> Result<u8, CliError> {
    let timeout = crate::settings::timeout(args.timeout, "the timeout (--timeout)")?;
    let url = match &args.url {
        Some(url) => url.clone(),
        None => {
            let config = context.config()?;
            health::url_for_listen(&config.settings.serve.listen).map_err(input)?
        }
    };
    health::parse_url(&url).map_err(input)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::external(format!("cannot start the async runtime: {err}")))?;
    match runtime.block_on(health::probe(&url, timeout)) {
        Ok(status) => {
            report(context, &url, Some(status), None);
            Ok(exit::SUCCESS)
        }
        Err(err) => {
            let status = match &err {
                ProbeError::Status { status, .. } => Some(*status),
                _ => None,
            };
            if context.output.format == Format::Json {
                report(context, &url, status, Some(&err.to_string()));
                return Ok(exit::FAILED);
            }
            Err(unhealthy(err, timeout))
        }
    }
}

/// Bad input: exit 2.
fn input(err: ProbeError) -> CliError {
    CliError::input(err.to_string())
}

/// Not healthy: exit 1, with a hint for the common causes.
fn unhealthy(err: ProbeError, timeout: Duration) -> CliError {
    let hint = match &err {
        ProbeError::Unreachable { .. } => {
            Some("is `promptctl serve` running, and listening on this address?".to_owned())
        }
        ProbeError::Timeout { .. } => Some(format!(
            "the server accepted nothing or answered nothing in {} s; --timeout waits longer",
            timeout.as_secs()
        )),
        _ => None,
    };
    let error = CliError {
        kind: ErrorKind::Failed,
        ..CliError::input(err.to_string())
    };
    match hint {
        Some(hint) => error.hint(hint),
        None => error,
    }
}

/// The outcome on stdout: one line, or a JSON object under `--format json`; the URL as
/// [`health::shown_url`] shows it.
fn report(context: &Context, url: &str, status: Option<u16>, error: Option<&str>) {
    let url = health::shown_url(url);
    if context.output.format == Format::Json {
        context.output.json(&serde_json::json!({
            "url": url,
            "healthy": error.is_none(),
            "status": status,
            "error": error,
        }));
    } else {
        context.output.data(&format!("healthy: {url} answered 200"));
    }
}
