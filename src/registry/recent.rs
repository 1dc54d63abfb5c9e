//! The recent runs of one prompt, as the dashboard lists them: the sampled runs that failed
//! their quality checks first, then the newest. Raw rows of `prompt_runs`, read through the
//! `(service, name, environment, created_at)` index one environment at a time, so the
//! cost is a few index walks whatever the number of runs. Not for figures over a window:
//! those come from [`super::stats`].

use std::collections::HashSet;
use std::time::SystemTime;

use serde::Serialize;
use tokio_postgres::Client;

use super::{RegistryError, unix_seconds};

/// The most environments whose runs are read.
const MAX_ENVIRONMENTS: i64 = 50;
/// The most characters of a run's error kept.
const ERROR_CHARS: i32 = 300;

/// One recorded run.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct RecentRun {
    /// The run's id.
    pub run_id: String,
    /// When it was recorded, seconds since the epoch.
    pub created_at: i64,
    /// The version that ran.
    pub version: Option<i32>,
    /// The environment it ran in.
    pub environment: Option<String>,
    /// The model that answered (the requested one for a failed run).
    pub model: Option<String>,
    /// Latency in milliseconds.
    pub latency_ms: Option<f64>,
    /// Cost in US dollars.
    pub cost_usd: Option<f64>,
    /// Why it failed (the first characters), if it did.
    pub error: Option<String>,
    /// Its quality score, if it was sampled and scored.
    pub quality_score: Option<f64>,
    /// Whether it was sampled for scoring.
    pub sampled: bool,
}

impl RecentRun {
    /// Whether the run was sampled and failed its quality checks (a score under 1).
    pub fn failed_quality(&self) -> bool {
        self.sampled && self.quality_score.is_some_and(|score| score < 1.0)
    }
}

/// Up to `limit` runs of `service/name` recorded in `[from, to)` (in `environment` only,
/// when given): the sampled runs that failed their quality checks, newest first, then the
/// newest of the others.
pub async fn recent_runs(
    client: &Client,
    service: &str,
    name: &str,
    environment: Option<&str>,
    (from, to): (SystemTime, SystemTime),
    limit: u32,
) -> Result<Vec<RecentRun>, RegistryError> {
    // Runs of no environment only when every environment is asked for.
    let (environments, unnamed) = match environment {
        Some(environment) => (vec![environment.to_owned()], false),
        None => (environments(client, service, name).await?, true),
    };
    let which = (environments.as_slice(), unnamed);
    let limit = i64::from(limit);
    let failed = read(client, (service, name), which, (from, to), true, limit).await?;
    let newest = read(client, (service, name), which, (from, to), false, limit).await?;
    Ok(merge(failed, newest, usize::try_from(limit).unwrap_or(0)))
}

/// `failed` newest first, then the runs of `newest` not among them, newest first; `limit`
/// in all.
fn merge(mut failed: Vec<RecentRun>, mut newest: Vec<RecentRun>, limit: usize) -> Vec<RecentRun> {
    failed.sort_by_key(|run| std::cmp::Reverse(run.created_at));
    newest.sort_by_key(|run| std::cmp::Reverse(run.created_at));
    let seen: HashSet<String> = failed.iter().map(|r| r.run_id.clone()).collect();
    failed.extend(newest.into_iter().filter(|r| !seen.contains(&r.run_id)));
    failed.truncate(limit);
    failed
}

/// The environments `service/name` has runs in (at most [`MAX_ENVIRONMENTS`]), found by
/// skipping through the index from one to the next rather than reading the runs.
async fn environments(
    client: &Client,
    service: &str,
    name: &str,
) -> Result<Vec<String>, RegistryError> {
    let rows = client
        .query(
            "WITH RECURSIVE envs(environment) AS (
               (SELECT environment FROM prompt_runs
                WHERE service = $1 AND name = $2 AND environment IS NOT NULL
                ORDER BY environment LIMIT 1)
               UNION ALL
               SELECT (SELECT r.environment FROM prompt_runs r
                       WHERE r.service = $1 AND r.name = $2 AND r.environment > e.environment
                       ORDER BY r.environment LIMIT 1)
               FROM envs e WHERE e.environment IS NOT NULL)
             SELECT environment::text FROM envs WHERE environment IS NOT NULL LIMIT $3",
            &[&service, &name, &MAX_ENVIRONMENTS],
        )
        .await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

/// Up to `limit` runs per environment of `environments` (and of no environment when
/// `unnamed`), newest first; only the sampled runs scored under 1 when `failed`.
async fn read(
    client: &Client,
    (service, name): (&str, &str),
    (environments, unnamed): (&[String], bool),
    (from, to): (SystemTime, SystemTime),
    failed: bool,
    limit: i64,
) -> Result<Vec<RecentRun>, RegistryError> {
    let only = if failed {
        "AND r.sampled AND r.quality_score < 1"
    } else {
        ""
    };
    let columns = format!(
        "r.run_id::text, r.created_at, r.version, r.environment::text, \
         coalesce(r.model_used, r.model_requested)::text, r.latency_ms, r.cost_usd, \
         left(r.error, {ERROR_CHARS}), r.quality_score, r.sampled"
    );
    let window = "r.service = $1 AND r.name = $2 AND r.created_at >= $3 AND r.created_at < $4";
    let sql = format!(
        "SELECT x.* FROM unnest($5::text[]) AS k(environment)
         CROSS JOIN LATERAL (SELECT {columns} FROM prompt_runs r
           WHERE {window} AND r.environment = k.environment {only}
           ORDER BY r.created_at DESC LIMIT $6) x
         UNION ALL
         (SELECT {columns} FROM prompt_runs r
          WHERE {window} AND r.environment IS NULL AND $7 {only}
          ORDER BY r.created_at DESC LIMIT $6)"
    );
    let rows = client
        .query(
            &sql,
            &[&service, &name, &from, &to, &environments, &limit, &unnamed],
        )
        .await?;
    Ok(rows
        .iter()
        .map(|row| {
            let created_at: SystemTime = row.get(1);
            RecentRun {
                run_id: row.get(0),
                created_at: unix_seconds(created_at),
                version: row.get(2),
                environment: row.get(3),
                model: row.get(4),
                latency_ms: row.get(5),
                cost_usd: row.get(6),
                error: row.get(7),
                quality_score: row.get(8),
                sampled: row.get(9),
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(id: &str, at: i64, score: Option<f64>) -> RecentRun {
        RecentRun {
            run_id: id.into(),
            created_at: at,
            version: Some(1),
            environment: None,
            model: None,
            latency_ms: None,
            cost_usd: None,
            error: None,
            quality_score: score,
            sampled: score.is_some(),
        }
    }

    #[test]
    fn failures_come_first_once_then_the_newest() {
        let failed = vec![run("a", 10, Some(0.5)), run("b", 20, Some(0.0))];
        let newest = vec![
            run("c", 30, None),
            run("b", 20, Some(0.0)),
            run("d", 5, None),
        ];
        let ids: Vec<String> = merge(failed, newest, 4)
            .into_iter()
            .map(|r| r.run_id)
            .collect();
        assert_eq!(ids, ["b", "a", "c", "d"]);
        assert!(run("x", 0, Some(0.99)).failed_quality());
        assert!(!run("x", 0, Some(1.0)).failed_quality());
        assert!(!run("x", 0, None).failed_quality());
    }
}
