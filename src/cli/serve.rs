//! `promptctl serve`: the HTTP API, metrics and dashboard over the PostgreSQL registry.

use clap::Args;

use super::shared::database_url;
use super::{CliError, Context, exit};
use crate::serve::connections::{self, Limits};
use crate::serve::{ServeOptions, serve};

/// Arguments of `promptctl serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// The address to listen on [default: `[serve] listen`, 127.0.0.1:8080].
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
    /// The PostgreSQL URL [default: the variable named by `[sync] database_url_env`].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
    /// A read replica's URL for reads [default: `[serve] read_database_url`].
    #[arg(long, value_name = "URL")]
    read_database_url: Option<String>,
    /// How long cached reads stay fresh, in seconds [default: `[serve] cache_ttl_s`].
    #[arg(long, value_name = "S")]
    cache_ttl: Option<u64>,
    /// Leave prompt labels off the metrics (very large registries).
    #[arg(long)]
    no_prompt_labels: bool,
    /// Runs a second allowed per run token (0: unlimited).
    #[arg(long, value_name = "N", default_value_t = 5.0)]
    run_rate_limit: f64,
    /// The most connections open at once [default: `[serve] max_connections`, else from
    /// the file-descriptor limit].
    #[arg(long, value_name = "N")]
    max_connections: Option<usize>,
    /// Seconds a client may take to send a request's headers, and stay idle between
    /// keep-alive requests [default: `[serve] header_timeout_s`, 10].
    #[arg(long, value_name = "S")]
    header_timeout: Option<u64>,
    /// Seconds a client may take to send a request's body [default: `[serve]
    /// body_timeout_s`, 30].
    #[arg(long, value_name = "S")]
    body_timeout: Option<u64>,
}

/// The accept loop's limits from the flags and `[serve]`; a connection limit the
/// file-descriptor limit cannot hold is lowered to what it can (with a warning).
fn limits(args: &ServeArgs, settings: &crate::config::ServeSettings) -> Result<Limits, CliError> {
    use crate::settings::timeout;
    let fits = connections::connections_for(connections::descriptor_limit());
    let max_connections = match args.max_connections.or(settings.max_connections) {
        Some(0) => return Err(CliError::input("max_connections must be at least 1")),
        Some(asked) if asked > fits => {
            tracing::warn!(
                asked,
                allowed = fits,
                "max_connections is more than the file-descriptor limit (ulimit -n) allows; lowered"
            );
            fits
        }
        Some(asked) => asked,
        None => connections::default_max_connections(),
    };
    Ok(Limits {
        header_timeout: timeout(
            args.header_timeout.unwrap_or(settings.header_timeout_s),
            "the header timeout ([serve] header_timeout_s, --header-timeout)",
        )?,
        body_timeout: timeout(
            args.body_timeout.unwrap_or(settings.body_timeout_s),
            "the body timeout ([serve] body_timeout_s, --body-timeout)",
        )?,
        max_connections,
    })
}

/// Runs `promptctl serve`.
pub fn run(context: &Context, args: &ServeArgs) -> Result<u8, CliError> {
    let config = context.config()?;
    let settings = &config.settings.serve;
    let url = database_url(context, &config, args.database_url.as_deref())?;
    let layers = context.settings(&config);
    let listen = layers.listen(args.listen.as_deref())?;
    let (read_tokens, run_tokens) = layers.tokens();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .try_init();
    let options = ServeOptions {
        listen,
        read_database_url: layers.read_database_url(args.read_database_url.as_deref(), &url),
        database_url: url,
        read_tokens,
        run_tokens,
        cache_ttl: layers.cache_ttl(args.cache_ttl),
        prompt_labels: !args.no_prompt_labels,
        run_rate: args.run_rate_limit,
        settings: config.settings.clone(),
        limits: limits(args, settings)?,
    };
    let export = super::shared::span_export(context, &config)?;
    if let Some(export) = &export {
        tracing::info!(endpoint = %export.endpoint, "exporting runs as OpenTelemetry spans");
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|err| CliError::external(format!("cannot start the async runtime: {err}")))?;
    let token_variables = format!(
        "set {} and {} (comma-separated tokens; `[serve] read_tokens_env` and `run_tokens_env` name other variables)",
        settings.read_tokens_env, settings.run_tokens_env
    );
    let served = runtime.block_on(serve(options));
    drop(runtime);
    if let Some(export) = export {
        export.shutdown(std::time::Duration::from_secs(5));
    }
    served.map_err(|err| match err {
        crate::serve::ServeError::OpenOnNetwork(_) => {
            CliError::input(err.to_string()).hint(token_variables)
        }
        other => CliError::external(other.to_string()),
    })?;
    Ok(exit::SUCCESS)
}
