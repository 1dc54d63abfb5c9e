//! The rollups of `prompt_runs`: per minute, hour and day (UTC), one row per bucket and
//! key (source, prompt, version, environment, model, failed) with the runs' counts, token,
//! cost and quality sums and a latency sketch ([`crate::sketch`]), so that a reading of 30
//! days costs about what one of a day does.
//!
//! Written three ways, all through [`Rollups`]: the run recorder's rollup task ([`task`])
//! adds up the batches the recorder wrote and appends them once a second as partial rows
//! ([`write`]);
//! [`compact`] merges the partial rows of each key and bucket into one; [`rebuild_day`]
//! (`promptctl rollup`) recomputes a day's rows from its raw runs, for runs recorded before
//! the rollups existed or loaded around the recorder. Readers ([`read_rollups`],
//! [`read_runs`]) add up every row of a key, so a reading is the same before and after
//! compaction.
//!
//! Retention ([`retire`]): minute rows live as long as raw runs (`[monitoring]
//! retention_days`), hour and day rows `rollup_retention_days` (default 400).

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use futures_util::TryStreamExt;
use tokio_postgres::types::{ToSql, Type};
use tokio_postgres::{Client, Row};

mod rebuild;
pub mod task;

pub use rebuild::{REBUILD_STEP_LIMIT, Rebuilt, SETTLED_AFTER, rebuild};

use super::RegistryError;
use super::runs::RunRecord;
use crate::sketch::LatencySketch;

/// The width of a time bucket: the rollups keep one row per key and bucket at each width.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Width {
    /// One minute.
    Minute,
    /// One hour.
    Hour,
    /// One day (UTC).
    Day,
}

impl Width {
    /// Every width, narrowest first.
    pub const ALL: [Width; 3] = [Width::Minute, Width::Hour, Width::Day];

    /// The width in seconds.
    pub fn seconds(self) -> i64 {
        match self {
            Width::Minute => 60,
            Width::Hour => 3_600,
            Width::Day => 86_400,
        }
    }

    /// The width in microseconds.
    pub fn micros(self) -> i64 {
        self.seconds() * 1_000_000
    }

    /// The start of the bucket holding `at` (microseconds since the epoch, as every time
    /// here).
    pub fn floor(self, at: i64) -> i64 {
        at.div_euclid(self.micros()) * self.micros()
    }

    /// The start of the first bucket starting at or after `at`.
    pub fn ceil(self, at: i64) -> i64 {
        -self.floor(-at)
    }
}

/// What a rollup row is of: the runs of one prompt version in one environment with one
/// model, failed or not. `0` and `''` stand for none.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RollupKey {
    /// The source the run named ('' when it named none).
    pub source: String,
    /// The service.
    pub service: String,
    /// The prompt's name.
    pub name: String,
    /// The version (0: none recorded).
    pub version: i32,
    /// The environment ('' for none).
    pub environment: String,
    /// The model that answered, or the one asked for when none did.
    pub model: String,
    /// Whether the runs failed.
    pub failed: bool,
    /// The side of a canary split the runs took ('' outside a split).
    pub side: String,
}

/// One run's measures, as a rollup adds them up.
#[derive(Debug, Clone, Copy, Default)]
pub struct Measures {
    /// Latency in milliseconds (`None` when not recorded).
    pub latency_ms: Option<f64>,
    /// Input tokens, excluding the cache's.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Tokens read from the provider's cache.
    pub cache_read_tokens: i64,
    /// Tokens written to the provider's cache.
    pub cache_write_tokens: i64,
    /// Cost in US dollars, when priced.
    pub cost_usd: Option<f64>,
    /// The quality score of a scored run.
    pub quality: Option<f64>,
}

/// The sums of a set of runs: one rollup row's figures, or a reading's group.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Figures {
    /// Runs.
    pub calls: i64,
    /// Input tokens, excluding the cache's.
    pub input_tokens: i64,
    /// Output tokens.
    pub output_tokens: i64,
    /// Tokens read from the provider's cache.
    pub cache_read_tokens: i64,
    /// Tokens written to the provider's cache.
    pub cache_write_tokens: i64,
    /// Cost in US dollars.
    pub cost_usd: f64,
    /// The sum of the scored runs' quality.
    pub quality_sum: f64,
    /// Scored runs.
    pub quality_count: i64,
    /// The latencies.
    pub latency: LatencySketch,
}

impl Figures {
    /// Adds one run.
    pub fn add_run(&mut self, run: &Measures) {
        let quality = run.quality.filter(|q| q.is_finite());
        self.add_sums(&Figures {
            calls: 1,
            input_tokens: run.input_tokens,
            output_tokens: run.output_tokens,
            cache_read_tokens: run.cache_read_tokens,
            cache_write_tokens: run.cache_write_tokens,
            // Not a number or infinite (written around the recorder): not counted, so one
            // such row cannot make a whole group's sum unreadable.
            cost_usd: run.cost_usd.filter(|c| c.is_finite()).unwrap_or(0.0),
            quality_sum: quality.unwrap_or(0.0),
            quality_count: quality.map_or(0, |_| 1),
            latency: LatencySketch::new(),
        });
        if let Some(latency) = run.latency_ms {
            self.latency.add(latency);
        }
    }

    /// Adds every run of `other`.
    pub fn merge(&mut self, other: &Figures) {
        self.add_sums(other);
        self.latency.merge(&other.latency);
    }

    /// Adds `other`'s sums (not its latencies).
    pub fn add_sums(&mut self, other: &Figures) {
        self.calls = self.calls.saturating_add(other.calls);
        self.input_tokens = self.input_tokens.saturating_add(other.input_tokens);
        self.output_tokens = self.output_tokens.saturating_add(other.output_tokens);
        self.cache_read_tokens = self
            .cache_read_tokens
            .saturating_add(other.cache_read_tokens);
        self.cache_write_tokens = self
            .cache_write_tokens
            .saturating_add(other.cache_write_tokens);
        self.cost_usd += other.cost_usd;
        self.quality_sum += other.quality_sum;
        self.quality_count = self.quality_count.saturating_add(other.quality_count);
    }
}

/// Rollup rows being built: figures per width, bucket start and key.
#[derive(Debug, Default)]
pub struct Rollups {
    rows: HashMap<(Width, i64, RollupKey), Figures>,
}

impl Rollups {
    /// Adds `runs` to their buckets of each width. The runs of one key and minute are
    /// added up first, under a borrowed key, so a key is copied once per minute a batch
    /// holds, not once per run.
    pub fn add_runs(&mut self, runs: &[RunRecord]) {
        let mut minutes: HashMap<(i64, KeyRef<'_>), Figures> = HashMap::new();
        for run in runs {
            minutes
                .entry((Width::Minute.floor(micros(run.created_at)), KeyRef::of(run)))
                .or_default()
                .add_run(&measures_of(run));
        }
        for ((minute, key), figures) in minutes {
            let key = key.to_owned();
            for width in [Width::Hour, Width::Day] {
                self.merge(width, width.floor(minute), key.clone(), &figures);
            }
            self.merge(Width::Minute, minute, key, &figures);
        }
    }

    /// Adds a row's figures to its bucket.
    fn merge(&mut self, width: Width, bucket: i64, key: RollupKey, figures: &Figures) {
        self.rows
            .entry((width, bucket, key))
            .or_default()
            .merge(figures);
    }

    /// How many rows.
    pub fn len(&self) -> usize {
        self.rows.len()
    }

    /// Whether there is no row.
    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// Forgets every row.
    pub fn clear(&mut self) {
        self.rows.clear();
    }
}

/// A [`RollupKey`] borrowed from a run or a row being read.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct KeyRef<'a> {
    /// The source the run named ('' when it named none).
    pub source: &'a str,
    /// The service.
    pub service: &'a str,
    /// The prompt's name.
    pub name: &'a str,
    /// The version (0: none recorded).
    pub version: i32,
    /// The environment ('' for none).
    pub environment: &'a str,
    /// The model that answered, or the one asked for when none did.
    pub model: &'a str,
    /// Whether the runs failed.
    pub failed: bool,
    /// The side of a canary split the runs took ('' outside a split).
    pub side: &'a str,
}

impl<'a> KeyRef<'a> {
    /// The key of a recorded run (already made to fit its columns by the recorder).
    fn of(run: &'a RunRecord) -> KeyRef<'a> {
        KeyRef {
            source: &run.source,
            service: &run.service,
            name: &run.name,
            version: run.version.unwrap_or(0),
            environment: run.environment.as_deref().unwrap_or(""),
            model: run.model_used.as_deref().unwrap_or(&run.model_requested),
            failed: run.error.is_some(),
            side: run.side.map_or("", crate::environments::Side::as_str),
        }
    }

    /// The key, owned.
    pub fn to_owned(&self) -> RollupKey {
        RollupKey {
            source: self.source.to_owned(),
            service: self.service.to_owned(),
            name: self.name.to_owned(),
            version: self.version,
            environment: self.environment.to_owned(),
            model: self.model.to_owned(),
            failed: self.failed,
            side: self.side.to_owned(),
        }
    }
}

fn measures_of(run: &RunRecord) -> Measures {
    Measures {
        latency_ms: Some(run.latency_ms),
        input_tokens: run.input_tokens.into(),
        output_tokens: run.output_tokens.into(),
        cache_read_tokens: run.cache_read_tokens.into(),
        cache_write_tokens: run.cache_write_tokens.into(),
        cost_usd: run.cost_usd,
        quality: run.quality_score,
    }
}

/// Microseconds since the epoch (negative before it), PostgreSQL's precision.
pub fn micros(at: SystemTime) -> i64 {
    match at.duration_since(UNIX_EPOCH) {
        Ok(after) => i64::try_from(after.as_micros()).unwrap_or(i64::MAX),
        Err(before) => -i64::try_from(before.duration().as_micros()).unwrap_or(i64::MAX),
    }
}

/// The time `micros` microseconds after the epoch.
pub fn time(micros: i64) -> SystemTime {
    if micros >= 0 {
        UNIX_EPOCH + Duration::from_micros(micros.unsigned_abs())
    } else {
        UNIX_EPOCH - Duration::from_micros(micros.unsigned_abs())
    }
}

const COLUMNS: &str = "width, bucket, source, service, name, version, environment, model, \
     failed, calls, input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, \
     cost_usd, quality_sum, quality_count, latency, partial, side";

const TYPES: [Type; 20] = [
    Type::INT4,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::INT4,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::BOOL,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::INT8,
    Type::FLOAT8,
    Type::FLOAT8,
    Type::INT8,
    Type::BYTEA,
    Type::BOOL,
    Type::TEXT,
];

/// Appends `rollups` with one binary `COPY`; `partial` marks rows that [`compact`] merges
/// later with the other rows of their key and bucket.
pub async fn write(
    client: &Client,
    rollups: &Rollups,
    partial: bool,
) -> Result<(), tokio_postgres::Error> {
    if rollups.is_empty() {
        return Ok(());
    }
    let mut writer = super::binary_copy(client, "prompt_rollups", COLUMNS, &TYPES).await?;
    for ((width, bucket, key), figures) in &rollups.rows {
        let width = width.seconds() as i32;
        let bucket = time(*bucket);
        let latency = figures.latency.encode();
        let values: [&(dyn ToSql + Sync); 20] = [
            &width,
            &bucket,
            &key.source,
            &key.service,
            &key.name,
            &key.version,
            &key.environment,
            &key.model,
            &key.failed,
            &figures.calls,
            &figures.input_tokens,
            &figures.output_tokens,
            &figures.cache_read_tokens,
            &figures.cache_write_tokens,
            &figures.cost_usd,
            &figures.quality_sum,
            &figures.quality_count,
            &latency,
            &partial,
            &key.side,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.as_mut().finish().await?;
    Ok(())
}

/// The columns a reader selects, in the order [`row_ref`] reads them, the side last.
const READ_COLUMNS: &str = "source, service, name, version, environment, model, failed, calls, \
     input_tokens, output_tokens, cache_read_tokens, cache_write_tokens, cost_usd, \
     quality_sum, quality_count, latency";

/// Where the side is among [`READ_COLUMNS`] and the side after them.
const READ_SIDE_AT: usize = 16;

/// Which rows a reading takes: a service, a name and an environment, each optional.
#[derive(Debug, Clone, Default)]
pub struct Narrowing {
    /// Only this service.
    pub service: Option<String>,
    /// Only this name.
    pub name: Option<String>,
    /// Only this environment.
    pub environment: Option<String>,
    /// The schema of the database read: older ones lack the columns later migrations
    /// added (`source` in schema 5, `side` in 7), read as ''.
    pub schema: i32,
}

impl Narrowing {
    /// The SQL conditions after `time >= $1 AND time < $2` and their parameters, for the
    /// rollups or for the raw runs (`raw`), where no environment is NULL or '' (a rollup's
    /// '').
    fn conditions(&self, raw: bool) -> (String, Vec<&(dyn ToSql + Sync)>) {
        let mut sql = String::new();
        let mut params: Vec<&(dyn ToSql + Sync)> = Vec::new();
        for (column, value) in [
            ("service", &self.service),
            ("name", &self.name),
            ("environment", &self.environment),
        ] {
            match value {
                Some(value) if raw && column == "environment" && value.is_empty() => {
                    sql.push_str(" AND (environment IS NULL OR environment = '')");
                }
                Some(value) => {
                    params.push(value);
                    sql.push_str(&format!(" AND {column} = ${}", params.len() + 2));
                }
                None => {}
            }
        }
        (sql, params)
    }

    /// The rollups' `side` column, or '' before it existed.
    fn rollup_side(&self) -> &'static str {
        if self.schema >= crate::registry::CANARY_SCHEMA {
            "side"
        } else {
            "''::text"
        }
    }
}

/// One rollup row as a reading sees it: borrowed from the database's row, its sketch
/// still encoded (a reader merges it straight into its own).
#[derive(Debug)]
pub struct RowRef<'a> {
    /// The bucket's start.
    pub at: i64,
    /// The key.
    pub key: KeyRef<'a>,
    /// The sums (the latency sketch left empty).
    pub sums: Figures,
    /// The latency sketch, encoded.
    pub latency: &'a [u8],
}

/// The key of a row selected with [`READ_COLUMNS`] or [`RUN_COLUMNS`] (after `skip`
/// leading columns), its side at `skip + side_at`.
fn key_ref(row: &Row, skip: usize, side_at: usize) -> Result<KeyRef<'_>, RegistryError> {
    Ok(KeyRef {
        source: row.try_get(skip)?,
        service: row.try_get(skip + 1)?,
        name: row.try_get(skip + 2)?,
        version: row.try_get(skip + 3)?,
        environment: row.try_get(skip + 4)?,
        model: row.try_get(skip + 5)?,
        failed: row.try_get(skip + 6)?,
        side: row.try_get(skip + side_at)?,
    })
}

/// The sums of a row selected with [`READ_COLUMNS`], from its column `at` (`calls`) on.
fn sums(row: &Row, at: usize) -> Result<Figures, RegistryError> {
    let count = |offset: usize| row.try_get::<_, i64>(at + offset);
    let amount = |offset: usize| row.try_get::<_, f64>(at + offset);
    Ok(Figures {
        calls: count(0)?,
        input_tokens: count(1)?,
        output_tokens: count(2)?,
        cache_read_tokens: count(3)?,
        cache_write_tokens: count(4)?,
        cost_usd: amount(5)?,
        quality_sum: amount(6)?,
        quality_count: count(7)?,
        latency: LatencySketch::new(),
    })
}

/// A row selected with [`READ_COLUMNS`] (after `skip` leading columns), its sketch still
/// encoded.
fn row_ref(row: &Row, skip: usize, at: i64) -> Result<RowRef<'_>, RegistryError> {
    Ok(RowRef {
        at,
        key: key_ref(row, skip, READ_SIDE_AT)?,
        sums: sums(row, skip + 7)?,
        latency: row.try_get(skip + 15)?,
    })
}

/// Calls `visit` with each rollup row of `width` whose bucket starts in `[from, to)`.
pub async fn read_rollups(
    client: &Client,
    width: Width,
    (from, to): (i64, i64),
    narrowing: &Narrowing,
    mut visit: impl FnMut(RowRef<'_>) -> Result<(), RegistryError>,
) -> Result<(), RegistryError> {
    if from >= to {
        return Ok(());
    }
    let (conditions, narrow) = narrowing.conditions(false);
    let sql = format!(
        "SELECT bucket, {READ_COLUMNS}, {} FROM prompt_rollups \
         WHERE width = {} AND bucket >= $1 AND bucket < $2{conditions}",
        narrowing.rollup_side(),
        width.seconds()
    );
    let (from, to) = (time(from), time(to));
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &to];
    params.extend(narrow);
    // Rows are folded as they arrive, while PostgreSQL still sends the rest.
    let mut rows = std::pin::pin!(client.query_raw(&sql, params).await?);
    while let Some(row) = rows.try_next().await? {
        let at: SystemTime = row.try_get(0)?;
        visit(row_ref(&row, 1, micros(at))?)?;
    }
    Ok(())
}

/// The raw runs' columns as a rollup keys and measures them (after the creation time and
/// the source).
const RUN_COLUMNS: &str = "service, name, coalesce(version, 0), \
     coalesce(environment, ''), left(coalesce(model_used, model_requested, ''), 100), \
     error IS NOT NULL, latency_ms, coalesce(input_tokens, 0)::int8, \
     coalesce(output_tokens, 0)::int8, coalesce(cache_read_tokens, 0)::int8, \
     coalesce(cache_write_tokens, 0)::int8, cost_usd, quality_score";

/// Where the side is among [`RUN_COLUMNS`] and the side after them.
const RUN_SIDE_AT: usize = 14;

/// Calls `visit` with each raw run created in `[from, to)`: its creation time, key and
/// measures.
pub async fn read_runs(
    client: &Client,
    (from, to): (i64, i64),
    narrowing: &Narrowing,
    mut visit: impl FnMut(i64, KeyRef<'_>, Measures),
) -> Result<(), RegistryError> {
    if from >= to {
        return Ok(());
    }
    let (conditions, narrow) = narrowing.conditions(true);
    let source = if narrowing.schema >= crate::registry::SOURCES_SCHEMA {
        "source"
    } else {
        "''::text"
    };
    let side = if narrowing.schema >= crate::registry::CANARY_SCHEMA {
        "coalesce(side, '')"
    } else {
        "''::text"
    };
    let sql = format!(
        "SELECT created_at, {source}, {RUN_COLUMNS}, {side} \
         FROM prompt_runs WHERE created_at >= $1 AND created_at < $2{conditions}"
    );
    let (from, to) = (time(from), time(to));
    let mut params: Vec<&(dyn ToSql + Sync)> = vec![&from, &to];
    params.extend(narrow);
    let mut rows = std::pin::pin!(client.query_raw(&sql, params).await?);
    while let Some(row) = rows.try_next().await? {
        let measures = Measures {
            latency_ms: row.try_get(8)?,
            input_tokens: row.try_get(9)?,
            output_tokens: row.try_get(10)?,
            cache_read_tokens: row.try_get(11)?,
            cache_write_tokens: row.try_get(12)?,
            cost_usd: row.try_get(13)?,
            quality: row.try_get(14)?,
        };
        let at: SystemTime = row.try_get(0)?;
        visit(micros(at), key_ref(&row, 1, RUN_SIDE_AT)?, measures);
    }
    Ok(())
}

/// From when the rollups hold every run.
pub async fn complete_from(client: &Client) -> Result<i64, RegistryError> {
    let row = client
        .query_one("SELECT complete_from FROM prompt_rollup_state", &[])
        .await?;
    Ok(micros(row.try_get(0)?))
}

/// When runs created from `from` on are older than the rollups (so a reading takes them
/// from `prompt_runs`, slower): the time from which the rollups hold every run. `None`
/// when there are none, or before the rollups' migration.
pub async fn not_rolled_up(
    client: &Client,
    from: SystemTime,
) -> Result<Option<SystemTime>, RegistryError> {
    if super::migrations::current_version(client)
        .await?
        .unwrap_or(0)
        < ROLLUPS_SCHEMA
    {
        return Ok(None);
    }
    let complete = time(complete_from(client).await?);
    if from >= complete {
        return Ok(None);
    }
    let row = client
        .query_one(
            "SELECT EXISTS (SELECT 1 FROM prompt_runs WHERE created_at >= $1 AND created_at < $2)",
            &[&from, &complete],
        )
        .await?;
    Ok(row.try_get::<_, bool>(0)?.then_some(complete))
}

/// The schema whose migration made the rollups.
pub const ROLLUPS_SCHEMA: i32 = 6;

/// The advisory lock that [`compact`] and [`rebuild_day`] hold, so that one rewrites a
/// bucket at a time.
const REWRITE_LOCK: i64 = 0x7072_6f6d_7074_0002;

/// Key rows merged per compaction transaction at most (bounds its memory).
const COMPACT_CHUNK: i64 = 20_000;

/// Merges the partial rows of each key and bucket into one row, a chunk of keys per
/// transaction; returns how many rows it removed. Skips (returns 0) while another
/// process compacts or rebuilds. Rows appended meanwhile stay partial for the next pass.
pub async fn compact(client: &Client) -> Result<u64, RegistryError> {
    let mut removed = 0;
    loop {
        client.batch_execute("BEGIN").await?;
        let pass = compact_chunk(client).await;
        let finish = if matches!(pass, Ok(Some(_))) {
            "COMMIT"
        } else {
            "ROLLBACK"
        };
        client.batch_execute(finish).await?;
        match pass? {
            Some(rows) => removed += rows,
            None => return Ok(removed),
        }
    }
}

/// One compaction pass inside a transaction: the rows it removed, or `None` when there is
/// nothing to merge or another process holds the lock.
async fn compact_chunk(client: &Client) -> Result<Option<u64>, RegistryError> {
    let locked: bool = client
        .query_one("SELECT pg_try_advisory_xact_lock($1)", &[&REWRITE_LOCK])
        .await?
        .try_get(0)?;
    if !locked {
        return Ok(None);
    }
    let rows = client
        .query(
            &format!(
                "WITH touched AS (SELECT DISTINCT width, bucket, source, service, name, \
                   version, environment, model, failed, side FROM prompt_rollups \
                   WHERE partial LIMIT {COMPACT_CHUNK}) \
                 DELETE FROM prompt_rollups r USING touched t \
                 WHERE r.width = t.width AND r.bucket = t.bucket AND r.source = t.source \
                   AND r.service = t.service AND r.name = t.name AND r.version = t.version \
                   AND r.environment = t.environment AND r.model = t.model \
                   AND r.failed = t.failed AND r.side = t.side \
                 RETURNING r.width, r.bucket, {}, r.side",
                prefixed("r.", READ_COLUMNS)
            ),
            &[],
        )
        .await?;
    if rows.is_empty() {
        return Ok(None);
    }
    let mut merged = Rollups::default();
    for row in &rows {
        let width: i32 = row.try_get(0)?;
        let width = Width::ALL
            .into_iter()
            .find(|w| w.seconds() == i64::from(width))
            .ok_or_else(|| RegistryError::Corrupt(format!("rollup width {width}")))?;
        let at: SystemTime = row.try_get(1)?;
        let read = row_ref(row, 2, micros(at))?;
        let mut figures = read.sums;
        figures
            .latency
            .merge_encoded(read.latency)
            .map_err(|err| RegistryError::Corrupt(err.to_string()))?;
        merged.merge(width, read.at, read.key.to_owned(), &figures);
    }
    write(client, &merged, false).await?;
    Ok(Some((rows.len() - merged.len()) as u64))
}

/// `columns` (a comma-separated list) with each column prefixed.
fn prefixed(prefix: &str, columns: &str) -> String {
    columns
        .split(',')
        .map(|column| format!("{prefix}{}", column.trim()))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Deletes minute rows older than `raw_days` and hour and day rows older than
/// `rollup_days` (0 keeps them).
pub async fn retire(client: &Client, raw_days: u32, rollup_days: u32) -> Result<(), RegistryError> {
    for (widths, days) in [(&[60][..], raw_days), (&[3_600, 86_400][..], rollup_days)] {
        if days == 0 {
            continue;
        }
        let widths: Vec<i32> = widths.to_vec();
        client
            .execute(
                "DELETE FROM prompt_rollups WHERE width = ANY($1) \
                 AND bucket < now() - make_interval(days => $2)",
                &[&widths, &(days as i32)],
            )
            .await?;
    }
    Ok(())
}
