//! `promptctl rollup [--since DURATION] [--database-url URL]`: builds the rollups of the
//! runs already in `prompt_runs` (recorded before the upgrade that made rollups, or loaded
//! around the recorder), or rebuilds them; the rolling up is
//! [`crate::registry::rollups::rebuild`].

use std::time::SystemTime;

use clap::Args;

use super::output::Format;
use super::shared::{database_url, runtime};
use super::{CliError, Context, exit};
use crate::calendar::utc_minute as date;
use crate::registry::rollups::{self, Rebuilt};

/// Arguments of `promptctl rollup`.
#[derive(Debug, Args)]
pub struct RollupArgs {
    /// Only the runs of the last DURATION (`6h`, `30d`), from the start of its first UTC
    /// day [default: every recorded run].
    #[arg(long, value_name = "DURATION")]
    since: Option<String>,
    /// The PostgreSQL URL [default: the variable named by `[sync] database_url_env`].
    #[arg(long, value_name = "URL")]
    database_url: Option<String>,
}

/// Runs `promptctl rollup`.
pub fn run(context: &Context, args: &RollupArgs) -> Result<u8, CliError> {
    let since = match &args.since {
        Some(text) => {
            let window = crate::config::parse_duration(text)
                .map_err(|why| CliError::input(format!("--since: {why}")))?;
            let from = SystemTime::now()
                .checked_sub(window)
                .unwrap_or(SystemTime::UNIX_EPOCH);
            Some(rollups::micros(from))
        }
        None => None,
    };
    let config = context.config()?;
    let url = database_url(context, &config, args.database_url.as_deref())?;
    let output = &context.output;
    let rebuilt: Rebuilt = runtime()?.block_on(async {
        let mut client = crate::registry::connect(&url).await?;
        let retention = config.settings.monitoring.retention_days;
        rollups::rebuild(&mut client, since, retention, |day, runs, done| {
            output.note(&format!(
                "rolled up {}: {runs} runs ({done} {} done)",
                &date(day / 1_000_000)[..10],
                if done == 1 { "day" } else { "days" }
            ));
        })
        .await
    })?;
    let retained_from = rebuilt.retained_from.map(|day| date(day / 1_000_000));
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "days": rebuilt.days,
            "runs": rebuilt.runs,
            "compacted": rebuilt.compacted,
            "complete_from": date(rebuilt.complete_from / 1_000_000),
            "left_to_recorder_from": rebuilt.settled.map(|at| date(at / 1_000_000)),
            "retained_from": retained_from,
        })),
        Format::Human => {
            output.data(&format!(
                "{} runs over {} days rolled up; rollups hold every run from {}",
                rebuilt.runs,
                rebuilt.days,
                date(rebuilt.complete_from / 1_000_000)
            ));
            if let Some(settled) = rebuilt.settled {
                output.note(&format!(
                    "a recorder is writing: runs created from {} on are left to it",
                    date(settled / 1_000_000)
                ));
            }
            if let Some(retained_from) = retained_from {
                output.note(&format!(
                    "days before {retained_from} are past `[monitoring] retention_days`: their rollups are left as they are"
                ));
            }
        }
    }
    Ok(exit::SUCCESS)
}
