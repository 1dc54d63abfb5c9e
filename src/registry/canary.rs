//! The runs of one side of a canary split, as `promptctl canary status` reads them from
//! `prompt_runs`: the newest first, at most a bound, streamed to the caller.

use std::time::SystemTime;

use futures_util::TryStreamExt;
use tokio_postgres::types::ToSql;

use super::{Registry, RegistryError};
use crate::environments::Side;

/// What the analysis reads of one run.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RunFacts {
    /// The run failed after its retries and fallbacks.
    pub failed: bool,
    /// A provider attempt failed on the way (a fallback, or the run's failure).
    pub faltered: bool,
    /// Wall time in milliseconds.
    pub latency_ms: Option<f64>,
    /// The cost in US dollars, when priced.
    pub cost_usd: Option<f64>,
    /// The quality score of a sampled run.
    pub quality: Option<f64>,
}

/// Which runs: one prompt's, in one environment, on one side, since a time.
#[derive(Debug, Clone)]
pub struct SideQuery<'a> {
    /// The prompt's service.
    pub service: &'a str,
    /// The prompt's name.
    pub name: &'a str,
    /// The environment.
    pub environment: &'a str,
    /// Runs created from this time on.
    pub since: SystemTime,
    /// Runs created before this time.
    pub until: SystemTime,
    /// The most runs read (the newest).
    pub limit: u64,
}

/// What one side of a split runs: its runs are those of this version asked of this model.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RunsOf {
    /// The version.
    pub version: i32,
    /// The model asked for (`prompt_runs.model_requested`).
    pub model: String,
}

/// Calls `visit` with each run of `side` that `query` selects, newest first, only those of
/// `of` when given (runs of an earlier split in the same window are left out); returns how
/// many it read. A database migrated before canary splits has none.
pub async fn read_side(
    registry: &Registry,
    query: &SideQuery<'_>,
    (side, of): (Side, Option<&RunsOf>),
    mut visit: impl FnMut(RunFacts),
) -> Result<u64, RegistryError> {
    if registry.schema() < super::CANARY_SCHEMA {
        return Ok(0);
    }
    let limit = i64::try_from(query.limit).unwrap_or(i64::MAX);
    let side = side.as_str();
    let version = of.map(|of| of.version);
    let model = of.map(|of| of.model.as_str());
    let params: [&(dyn ToSql + Sync); 9] = [
        &query.service,
        &query.name,
        &query.environment,
        &side,
        &query.since,
        &query.until,
        &limit,
        &version,
        &model,
    ];
    let sql = "SELECT error IS NOT NULL, error IS NOT NULL OR attempt_errors IS NOT NULL, \
               latency_ms, cost_usd, quality_score FROM prompt_runs \
               WHERE service = $1 AND name = $2 AND environment = $3 AND side = $4 \
               AND created_at >= $5 AND created_at < $6 \
               AND ($8::int4 IS NULL OR version = $8) \
               AND ($9::text IS NULL OR model_requested = $9) \
               ORDER BY created_at DESC LIMIT $7";
    let client = registry.client();
    let mut rows = std::pin::pin!(client.query_raw(sql, params).await?);
    let mut read = 0;
    while let Some(row) = rows.try_next().await? {
        read += 1;
        visit(RunFacts {
            failed: row.try_get(0)?,
            faltered: row.try_get(1)?,
            latency_ms: row.try_get(2)?,
            cost_usd: row.try_get(3)?,
            quality: row.try_get(4)?,
        });
    }
    Ok(read)
}

/// A canary split of a prompt as the registry holds it.
#[derive(Debug, Clone, PartialEq)]
pub struct Split {
    /// The environment.
    pub environment: String,
    /// The baseline's version (`None`: latest).
    pub version: Option<i32>,
    /// The baseline's model override.
    pub model: Option<String>,
    /// The canary's version (`None`: latest).
    pub canary_version: Option<i32>,
    /// The canary's model override.
    pub canary_model: Option<String>,
    /// The percentage of calls the canary takes.
    pub weight: f64,
    /// The time of the commit that last changed the split.
    pub since: Option<SystemTime>,
}

/// The canary splits of `service/name`, by environment; none on a database migrated
/// before canary splits.
pub async fn splits(
    registry: &Registry,
    service: &str,
    name: &str,
) -> Result<Vec<Split>, RegistryError> {
    if registry.schema() < super::CANARY_SCHEMA {
        return Ok(Vec::new());
    }
    let rows = registry
        .client()
        .query(
            "SELECT environment::text, version, model::text, canary_version, canary_model::text, \
             canary_weight, canary_since FROM prompt_environments \
             WHERE service = $1 AND name = $2 AND canary_weight IS NOT NULL ORDER BY environment",
            &[&service, &name],
        )
        .await?;
    rows.iter()
        .map(|row| {
            Ok(Split {
                environment: row.try_get(0)?,
                version: row.try_get(1)?,
                model: row.try_get(2)?,
                canary_version: row.try_get(3)?,
                canary_model: row.try_get(4)?,
                weight: row.try_get(5)?,
                since: row.try_get(6)?,
            })
        })
        .collect()
}
