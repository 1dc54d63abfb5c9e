//! `promptctl stats [PROMPT] [--env E] [--since 24h] [--by version|model|environment|source|side]
//! [--check]`: the recorded runs' figures, computed in PostgreSQL.

use std::time::SystemTime;

use clap::{Args, ValueEnum};

use super::output::{Format, table};
use super::shared::{database_url, runtime};
use super::{CliError, Context, exit};
use crate::registry::stats::{GroupBy, StatsQuery, check, stats};

/// The grouping of `--by`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum By {
    Version,
    Model,
    Environment,
    Source,
    Side,
}

/// Arguments of `promptctl stats`.
#[derive(Debug, Args)]
pub struct StatsArgs {
    /// Only this prompt: `name`, `service/name` or `source:service/name`.
    prompt: Option<String>,
    /// Only this environment.
    #[arg(long = "env", value_name = "E")]
    environment: Option<String>,
    /// The window: runs of the last DURATION (`90s`, `30m`, `24h`, `7d`).
    #[arg(long, value_name = "DURATION", default_value = "24h")]
    since: String,
    /// Group each prompt's runs by version, model, environment, source or side (of a
    /// canary split).
    #[arg(long, value_enum)]
    by: Option<By>,
    /// Compare the window with the one before it against `[monitoring.alerts]`; exit 1
    /// naming each breach.
    #[arg(long)]
    check: bool,
    /// The PostgreSQL URL [default: the variable named by `[sync] database_url_env`].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

/// Runs `promptctl stats`.
pub fn run(context: &Context, args: &StatsArgs) -> Result<u8, CliError> {
    let window = crate::config::parse_duration(&args.since)
        .map_err(|why| CliError::input(format!("--since: {why}")))?;
    let config = context.config()?;
    let url = database_url(context, &config, args.database_url.as_deref())?;
    let query = StatsQuery {
        prompt: args.prompt.clone(),
        service: None,
        environment: args.environment.clone(),
        by: match args.by {
            None => GroupBy::Prompt,
            Some(By::Version) => GroupBy::Version,
            Some(By::Model) => GroupBy::Model,
            Some(By::Environment) => GroupBy::Environment,
            Some(By::Source) => GroupBy::Source,
            Some(By::Side) => GroupBy::Side,
        },
    };
    let now = SystemTime::now();
    let from = now - window;
    let (current, previous, unrolled) = runtime()?.block_on(async {
        // Through the registry, so that a database never synced or of a newer schema
        // says so (with the fix) instead of a missing table.
        let registry = crate::registry::Registry::connect(&url).await?;
        if crate::registry::stats::names_sources(&query) {
            registry.require_sources("`stats` by source or of `source:service/name`")?;
        }
        let client = registry.client();
        let current = stats(client, &query, from, now).await?;
        let previous = if args.check {
            stats(client, &query, from - window, from).await?
        } else {
            Vec::new()
        };
        let start = if args.check { from - window } else { from };
        let unrolled = crate::registry::rollups::not_rolled_up(client, start).await?;
        Ok::<_, crate::registry::RegistryError>((current, previous, unrolled))
    })?;
    if let Some(complete) = unrolled {
        note_unrolled(context, complete);
    }
    let output = &context.output;
    let breaches = if args.check {
        check(
            &current,
            &previous,
            &config.settings.monitoring.alerts,
            window,
        )
    } else {
        Vec::new()
    };
    match output.format {
        Format::Json => {
            if args.check {
                output.json(&serde_json::json!({
                    "since": args.since, "rows": current, "previous": previous, "breaches": breaches,
                }));
            } else {
                output.json(&serde_json::json!({"since": args.since, "rows": current}));
            }
        }
        Format::Human => {
            let group = match args.by {
                None => None,
                Some(By::Version) => Some("VERSION"),
                Some(By::Model) => Some("MODEL"),
                Some(By::Environment) => Some("ENVIRONMENT"),
                Some(By::Source) => Some("SOURCE"),
                Some(By::Side) => Some("SIDE"),
            };
            let mut header = vec!["PROMPT"];
            header.extend(group);
            header.extend([
                "CALLS",
                "ERRORS",
                "P50 MS",
                "P95 MS",
                "P99 MS",
                "TOKENS IN",
                "TOKENS OUT",
                "COST USD",
                "QUALITY",
            ]);
            let ms = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
            let rows: Vec<Vec<String>> = current
                .iter()
                .map(|r| {
                    let mut row = vec![r.prompt.clone()];
                    if group.is_some() {
                        row.push(r.group.clone());
                    }
                    row.extend([
                        r.calls.to_string(),
                        format!("{:.2}%", r.error_rate * 100.0),
                        ms(r.p50_ms),
                        ms(r.p95_ms),
                        ms(r.p99_ms),
                        r.input_tokens.to_string(),
                        r.output_tokens.to_string(),
                        format!("{:.4}", r.cost_usd),
                        r.quality
                            .map_or_else(|| "-".to_owned(), |q| format!("{q:.3} (n={})", r.scored)),
                    ]);
                    row
                })
                .collect();
            if rows.is_empty() {
                output.note(&format!("no runs in the last {}", args.since));
            } else {
                output.data(&table(&header, &rows));
            }
            for breach in &breaches {
                let group = if breach.group.is_empty() {
                    String::new()
                } else {
                    format!(" [{}]", breach.group)
                };
                output.note(&format!(
                    "alert {}: {}{group}: {}",
                    breach.alert, breach.prompt, breach.message
                ));
            }
        }
    }
    Ok(if breaches.is_empty() {
        exit::SUCCESS
    } else {
        exit::FAILED
    })
}

/// Says that runs of the window are older than the rollups, so they were read from
/// `prompt_runs` (right, only slower), and how to roll them up.
fn note_unrolled(context: &Context, complete: SystemTime) {
    let complete = crate::registry::unix_seconds(complete);
    context.output.note(&format!(
        "runs created before {} are not rolled up yet: read from prompt_runs, which is slower; \
         `promptctl rollup` rolls them up",
        crate::calendar::utc_minute(complete)
    ));
}
