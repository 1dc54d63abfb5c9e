//! `promptctl rollup`: the rollups recomputed from the raw runs, for runs recorded before
//! the rollups existed or loaded around the recorder.
//!
//! While a recorder is live (it appended rollups in the last [`RECORDER_LIVE`]), only
//! *settled* time is rebuilt: runs created more than [`SETTLED_AFTER`] ago, whose rollups
//! the recorder has appended (it appends a run's rollups about a second after writing it,
//! so a rebuild of the last second would count them twice; a run recorded more than an
//! hour after it started still could be). Otherwise every day is, up to the newest run. Days are rebuilt newest first, each in one `REPEATABLE READ`
//! transaction whose snapshot is taken after the rewrite lock is held, so two rebuilds,
//! or a rebuild and a compaction, never see each other's work half done. A day's minute
//! and hour rows are recomputed from its raw runs up to the settled time; its day row from
//! all its hour rows (the recorder's own for the unsettled hours), so the rows the recorder
//! appends meanwhile add up alike at every width. Days with no raw runs are skipped, and so
//! are days older than raw retention: their rollups are all that is left of them.

use std::time::{Duration, SystemTime};

use tokio_postgres::Client;

use super::{
    Figures, Narrowing, REWRITE_LOCK, Rollups, Width, compact, complete_from, micros, read_rollups,
    read_runs, time, write,
};
use crate::registry::RegistryError;
use crate::sketch::LatencySketch;

/// How old a run must be for `promptctl rollup` to rebuild its buckets while a recorder
/// is live.
pub const SETTLED_AFTER: Duration = Duration::from_secs(3_600);

/// A recorder that appended rollups this recently is live.
pub const RECORDER_LIVE: Duration = Duration::from_secs(30);

/// How long one step of a rebuild (waiting for the lock, a statement, or an hour of runs
/// read and its rollups written) may take before the database counts as not answering.
pub const REBUILD_STEP_LIMIT: Duration = Duration::from_secs(120);

/// `work` within [`REBUILD_STEP_LIMIT`].
async fn step<T>(
    work: impl std::future::Future<Output = Result<T, RegistryError>>,
) -> Result<T, RegistryError> {
    crate::registry::within(
        REBUILD_STEP_LIMIT,
        "roll up runs (one step of `promptctl rollup`)",
        work,
    )
    .await
}

/// What [`rebuild`] did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Rebuilt {
    /// Days rolled up.
    pub days: usize,
    /// Runs rolled up.
    pub runs: u64,
    /// Partial rows merged afterwards.
    pub compacted: u64,
    /// From when the rollups hold every run (microseconds since the epoch).
    pub complete_from: i64,
    /// Runs created from this time on were left to the live recorder (not settled yet).
    pub settled: Option<i64>,
    /// Days holding runs before this one were left as they are: older than raw retention.
    pub retained_from: Option<i64>,
}

/// Migrates the database, then rolls up the days holding runs, from the settled time
/// back to the day of `since` (`None`: the first recorded run's), newest first, one
/// transaction a day, calling `progress(day, runs, days done)` after each; days older
/// than `retention_days` (0: none) are left alone. Then merges partial rows. Stopped
/// halfway, the days done stay done and the rollups are complete from the last of them.
pub async fn rebuild(
    client: &mut Client,
    since: Option<i64>,
    retention_days: u32,
    mut progress: impl FnMut(i64, u64, usize),
) -> Result<Rebuilt, RegistryError> {
    crate::registry::migrations::migrate(client).await?;
    let now = micros(SystemTime::now());
    let settled = recorder_live(client)
        .await?
        .then(|| Width::Minute.floor(now - micros_of(SETTLED_AFTER)));
    let retained_from = (retention_days > 0)
        .then(|| Width::Day.ceil(now - i64::from(retention_days) * Width::Day.micros()));
    let oldest = since
        .map(|since| Width::Day.floor(since))
        .into_iter()
        .chain(retained_from)
        .max();
    let (mut days, mut runs) = (0, 0);
    let mut next = last_run_before(client, settled).await?;
    let mut left_alone = None;
    while let Some(day) = next {
        if oldest.is_some_and(|oldest| day < oldest) {
            left_alone = retained_from.filter(|retained| day < *retained);
            break;
        }
        let rolled = rebuild_day(client, day, settled).await?;
        runs += rolled;
        days += 1;
        progress(day, rolled, days);
        next = last_run_before(client, Some(day)).await?;
    }
    let compacted = compact(client).await?;
    Ok(Rebuilt {
        days,
        runs,
        compacted,
        complete_from: complete_from(client).await?,
        settled,
        retained_from: left_alone,
    })
}

/// Whether a recorder appended rollups in the last [`RECORDER_LIVE`].
async fn recorder_live(client: &Client) -> Result<bool, RegistryError> {
    let row = step(async {
        Ok(client
            .query_one(
                "SELECT coalesce(recorder_seen_at > now() - make_interval(secs => $1), false) \
                 FROM prompt_rollup_state",
                &[&RECORDER_LIVE.as_secs_f64()],
            )
            .await?)
    })
    .await?;
    Ok(row.try_get(0)?)
}

fn micros_of(duration: Duration) -> i64 {
    i64::try_from(duration.as_micros()).unwrap_or(i64::MAX)
}

/// The day of the newest raw run created before `before` (`None`: ever), if any
/// (through the index on `created_at`, so days without runs cost nothing).
async fn last_run_before(
    client: &Client,
    before: Option<i64>,
) -> Result<Option<i64>, RegistryError> {
    let row = step(async {
        Ok(match before {
            Some(before) => {
                client
                    .query_one(
                        "SELECT max(created_at) FROM prompt_runs WHERE created_at < $1",
                        &[&time(before)],
                    )
                    .await?
            }
            None => {
                client
                    .query_one("SELECT max(created_at) FROM prompt_runs", &[])
                    .await?
            }
        })
    })
    .await?;
    let last: Option<SystemTime> = row.try_get(0)?;
    Ok(last.map(|at| Width::Day.floor(micros(at))))
}

/// Rebuilds the UTC day starting at `day` (up to `settled`, if any) under the rewrite lock,
/// in one transaction; returns the runs rolled up.
async fn rebuild_day(
    client: &Client,
    day: i64,
    settled: Option<i64>,
) -> Result<u64, RegistryError> {
    // The lock first, the snapshot after: a rebuild waiting for another sees its work.
    step(async {
        client
            .execute("SELECT pg_advisory_lock($1)", &[&REWRITE_LOCK])
            .await?;
        Ok(client
            .batch_execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
            .await?)
    })
    .await?;
    let rebuilt = rebuild_in_transaction(client, day, settled).await;
    let finish = if rebuilt.is_ok() {
        "COMMIT"
    } else {
        "ROLLBACK"
    };
    step(async {
        client.batch_execute(finish).await?;
        client
            .execute("SELECT pg_advisory_unlock($1)", &[&REWRITE_LOCK])
            .await?;
        Ok(())
    })
    .await?;
    rebuilt
}

async fn rebuild_in_transaction(
    client: &Client,
    day: i64,
    settled: Option<i64>,
) -> Result<u64, RegistryError> {
    let end = (day + Width::Day.micros()).min(settled.unwrap_or(i64::MAX));
    step(async {
        client
            .execute(
                "DELETE FROM prompt_rollups WHERE (width IN (60, 3600) \
                 AND bucket >= $1 AND bucket < $2) OR (width = 86400 AND bucket = $1)",
                &[&time(day), &time(end)],
            )
            .await?;
        Ok(())
    })
    .await?;
    let mut runs = 0u64;
    // An hour at a time, so that the minute rows held stay few.
    for hour in (day..end).step_by(Width::Hour.micros() as usize) {
        runs += step(roll_up_hour(
            client,
            (hour, (hour + Width::Hour.micros()).min(end)),
        ))
        .await?;
    }
    step(async {
        write_day_from_hours(client, day).await?;
        // Every run from `day` to the settled time is rolled up now, and from the settled
        // time on the recorder's rollups hold every run when they did before.
        let settled = settled.map(time);
        client
            .execute(
                "UPDATE prompt_rollup_state SET complete_from = $1 \
                 WHERE complete_from > $1 AND ($2::timestamptz IS NULL OR complete_from <= $2)",
                &[&time(day), &settled],
            )
            .await?;
        Ok(())
    })
    .await?;
    Ok(runs)
}

/// Writes the minute and hour rows of the raw runs created in `[from, to)`; returns how
/// many runs.
async fn roll_up_hour(client: &Client, (from, to): (i64, i64)) -> Result<u64, RegistryError> {
    let mut rollups = Rollups::default();
    let mut runs = 0;
    let narrowing = Narrowing {
        schema: crate::registry::migrations::latest_version(),
        ..Narrowing::default()
    };
    read_runs(client, (from, to), &narrowing, |at, key, run| {
        runs += 1;
        let key = key.to_owned();
        rollups
            .rows
            .entry((Width::Hour, Width::Hour.floor(at), key.clone()))
            .or_default()
            .add_run(&run);
        rollups
            .rows
            .entry((Width::Minute, Width::Minute.floor(at), key))
            .or_default()
            .add_run(&run);
    })
    .await?;
    write(client, &rollups, false).await?;
    Ok(runs)
}

/// Writes the day row of each key from the day's hour rows.
async fn write_day_from_hours(client: &Client, day: i64) -> Result<(), RegistryError> {
    let mut days = Rollups::default();
    read_rollups(
        client,
        Width::Hour,
        (day, day + Width::Day.micros()),
        &Narrowing {
            schema: crate::registry::migrations::latest_version(),
            ..Narrowing::default()
        },
        |row| {
            let mut figures = Figures {
                latency: LatencySketch::new(),
                ..row.sums
            };
            figures
                .latency
                .merge_encoded(row.latency)
                .map_err(|err| RegistryError::Corrupt(err.to_string()))?;
            days.merge(Width::Day, day, row.key.to_owned(), &figures);
            Ok(())
        },
    )
    .await?;
    write(client, &days, false).await?;
    Ok(())
}
