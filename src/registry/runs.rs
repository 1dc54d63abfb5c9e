//! The run recorder: every router execution becomes a row of `prompt_runs`, written by a
//! background task so that the caller never waits for the database.
//!
//! Rows go through a bounded channel ([`QUEUE_CAPACITY`]); a full queue or a database that
//! is down costs dropped rows (counted in [`RecorderStats::dropped`] and logged as a
//! `tracing` warning), never a failed or a slower call. The writer drains the channel with
//! `recv_many`, up to [`BATCH_ROWS`] rows or [`FLUSH_INTERVAL`] per flush, and writes each
//! batch with one binary `COPY` (half on each of two connections, at once, from
//! 1,000 rows: `Writers`). It creates the day partitions ahead (today and tomorrow)
//! and drops the ones older than `retention_days`. [`RunRecorder::shutdown`] flushes what
//! is queued within a deadline.
//!
//! Each batch written is handed to the recorder's rollup task
//! (`super::rollups::task`), which adds up and appends its rollups on a connection of its
//! own; what it loses is counted in [`RecorderStats::unrolled`].
//!
//! One bad row costs only itself. Before a batch is sent, every row is made to fit its
//! columns ([`fit_row`]: NUL characters, which PostgreSQL text refuses, become U+FFFD, and
//! values longer than their `VARCHAR` column are cut; counted in
//! [`RecorderStats::cleaned`]). A batch PostgreSQL still refuses for its data (SQLSTATE
//! classes 22, 23 and 54: a bad value, a constraint, a limit) is split in halves and
//! written again, down to single rows, so only the rows it refuses are dropped (counted in
//! [`RecorderStats::rejected`], each logged with its run id and PostgreSQL's reason).

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::rollups::task::{self as rollup_task, Handover, RollupCounters};
use crate::calendar::civil_date;
use crate::config::{MonitoringSettings, SynchronousCommit};
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio_postgres::Client;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

/// Rows the queue holds before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 50_000;
/// Rows per flush at most (a busy router fills a batch in a tenth of a second at 50,000
/// runs a second; fewer, larger `COPY`s cost the server less per row).
pub const BATCH_ROWS: usize = 5_000;
/// How the writer reconnects after the database failed: the one retry policy, a ceiling
/// of one second doubling up to eight (batches that come meanwhile are dropped and
/// counted).
const RECONNECT: crate::retry::RetryPolicy = crate::retry::RetryPolicy {
    max_retries: u32::MAX,
    base_delay: Duration::from_secs(1),
    max_delay: Duration::from_secs(8),
};

/// At most one flush per interval (unless a batch is full).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// One execution of a prompt, as stored in `prompt_runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: Uuid,
    /// The source (repository) of the prompt run, when it was read from the registry;
    /// empty when read from a repository or a bundle.
    pub source: String,
    /// The caller's trace id.
    pub trace_id: Option<String>,
    /// The service.
    pub service: String,
    /// The prompt's name.
    pub name: String,
    /// The version run.
    pub version: Option<i32>,
    /// The environment.
    pub environment: Option<String>,
    /// The side of the environment's canary split the run took (`None`: no split).
    pub side: Option<crate::environments::Side>,
    /// The model the environment asked for.
    pub model_requested: String,
    /// The model that answered (`None` when none did).
    pub model_used: Option<String>,
    /// The provider of the model that answered.
    pub provider: Option<String>,
    /// Wall time of the execution in milliseconds.
    pub latency_ms: f64,
    /// Input tokens (excluding cache reads and writes).
    pub input_tokens: i32,
    /// Output tokens.
    pub output_tokens: i32,
    /// Tokens read from the provider's prompt cache.
    pub cache_read_tokens: i32,
    /// Tokens written to the provider's prompt cache.
    pub cache_write_tokens: i32,
    /// The cost in US dollars, at the configured prices at the time of the run.
    pub cost_usd: Option<f64>,
    /// Why the run failed, when it did.
    pub error: Option<String>,
    /// The errors of the models that failed before one answered (fallbacks).
    pub attempt_errors: Option<String>,
    /// The share of `monitor` assertions that passed, for a sampled run.
    pub quality_score: Option<f64>,
    /// Whether the run was sampled for scoring.
    pub sampled: bool,
    /// The rendered input (only with `[monitoring] store_io = true`).
    pub input_text: Option<String>,
    /// The output (only with `[monitoring] store_io = true`).
    pub output_text: Option<String>,
    /// When the run started.
    #[serde(skip)]
    pub created_at: SystemTime,
}

/// What the recorder did so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecorderStats {
    /// Rows written.
    pub written: u64,
    /// Rows dropped (queue full, database down or slow, or refused by PostgreSQL).
    pub dropped: u64,
    /// Of the dropped rows, those PostgreSQL refused one by one, after cleaning.
    pub rejected: u64,
    /// Rows written after being made to fit their columns (NUL characters replaced,
    /// over-long values cut).
    pub cleaned: u64,
    /// Rows written whose rollups were lost (the rollup task's queue was full, the
    /// database failed for longer than its buffer holds, or shutdown's deadline passed);
    /// `promptctl rollup --since` rolls them up again.
    pub unrolled: u64,
    /// The last database error, if any.
    pub last_error: Option<String>,
}

struct Shared {
    written: AtomicU64,
    dropped: AtomicU64,
    rejected: AtomicU64,
    cleaned: AtomicU64,
    drop_log: DropLog,
    /// Rows queued or being flushed.
    pending: AtomicU64,
    closing: AtomicBool,
    close: Notify,
    last_error: Mutex<Option<String>>,
}

impl Default for Shared {
    fn default() -> Shared {
        Shared {
            written: AtomicU64::default(),
            dropped: AtomicU64::default(),
            rejected: AtomicU64::default(),
            cleaned: AtomicU64::default(),
            drop_log: DropLog::new("run records dropped: not written to prompt_runs"),
            pending: AtomicU64::default(),
            closing: AtomicBool::default(),
            close: Notify::default(),
            last_error: Mutex::default(),
        }
    }
}

/// Drops are logged at most once per this interval, with their count: a database that is
/// down, or a full queue, would otherwise log a line per flush or per call.
const DROP_LOG_INTERVAL: Duration = Duration::from_secs(1);

/// The throttled warning of dropped rows (run records, or the rollups of runs written):
/// counts add up between two warnings.
pub(crate) struct DropLog {
    /// What the warning says was lost.
    what: &'static str,
    state: Mutex<DropLogState>,
}

#[derive(Default)]
struct DropLogState {
    rows: u64,
    reason: String,
    logged_at: Option<Instant>,
}

impl DropLog {
    /// A log whose warnings say `what` was lost.
    pub(crate) fn new(what: &'static str) -> DropLog {
        DropLog {
            what,
            state: Mutex::default(),
        }
    }

    /// Adds `rows` dropped because of `reason`; logs them (and those not logged yet) unless
    /// a warning went out less than [`DROP_LOG_INTERVAL`] ago.
    pub(crate) fn note(&self, rows: u64, reason: &str) {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        state.rows += rows;
        if state.reason != reason {
            reason.clone_into(&mut state.reason);
        }
        if state
            .logged_at
            .is_none_or(|at| at.elapsed() >= DROP_LOG_INTERVAL)
        {
            state.logged_at = Some(Instant::now());
            self.emit(&mut state);
        }
    }

    /// Logs the drops not logged yet, if any.
    pub(crate) fn flush(&self) {
        self.emit(&mut self.state.lock().unwrap_or_else(|e| e.into_inner()));
    }

    fn emit(&self, state: &mut DropLogState) {
        if state.rows > 0 {
            tracing::warn!(rows = state.rows, reason = %state.reason, "{}", self.what);
            state.rows = 0;
        }
    }
}

impl Shared {
    /// Counts and logs (throttled) `rows` dropped because of `error`: the database is down
    /// or refused the batch as a whole.
    fn fail(&self, rows: usize, error: String) {
        self.dropped.fetch_add(rows as u64, Ordering::Relaxed);
        self.drop_log.note(rows as u64, &error);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// Counts and logs one row PostgreSQL refused on its own.
    fn reject(&self, row: &RunRecord, error: String) {
        tracing::warn!(
            run_id = %row.run_id,
            prompt = %format_args!("{}/{}", row.service, row.name),
            error = %error,
            "run record dropped: PostgreSQL refused the row"
        );
        self.rejected.fetch_add(1, Ordering::Relaxed);
        self.dropped.fetch_add(1, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }

    /// Counts and logs (throttled) a row dropped because the queue is full or the recorder
    /// is closing.
    fn drop_queued(&self) {
        self.dropped.fetch_add(1, Ordering::Relaxed);
        self.drop_log.note(
            1,
            "the recorder's queue is full (the database is slower than the runs) or closing",
        );
    }
}

/// The background writer of `prompt_runs`.
pub struct RunRecorder {
    tx: Option<mpsc::Sender<RunRecord>>,
    shared: Arc<Shared>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    rollup_task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
    rollup_counters: Arc<RollupCounters>,
}

impl std::fmt::Debug for RunRecorder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RunRecorder")
            .field("stats", &self.stats())
            .finish()
    }
}

impl RunRecorder {
    /// A recorder that records nothing (no database configured).
    pub fn disabled() -> RunRecorder {
        RunRecorder {
            tx: None,
            shared: Arc::new(Shared::default()),
            task: tokio::sync::Mutex::new(None),
            rollup_task: tokio::sync::Mutex::new(None),
            rollup_counters: Arc::new(RollupCounters::default()),
        }
    }

    /// Starts the writer for the database at `url` with `[monitoring]`'s retention and
    /// durability; must be called inside a Tokio runtime. The connections are made by the
    /// writer and its rollup task, so a database that is down costs nothing here.
    pub fn start(url: String, monitoring: &MonitoringSettings) -> RunRecorder {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared::default());
        let rollup_counters = Arc::new(RollupCounters::default());
        let (handover, rollup_task) =
            rollup_task::start(url.clone(), monitoring.clone(), rollup_counters.clone());
        let task = tokio::spawn(writer(
            url,
            monitoring.clone(),
            rx,
            shared.clone(),
            handover,
        ));
        RunRecorder {
            tx: Some(tx),
            shared,
            task: tokio::sync::Mutex::new(Some(task)),
            rollup_task: tokio::sync::Mutex::new(Some(rollup_task)),
            rollup_counters,
        }
    }

    /// Queues a row; never waits. A full queue drops it (counted). The writer makes every
    /// row fit before sending it (see `registry::columns`).
    pub fn record(&self, record: RunRecord) {
        let Some(tx) = &self.tx else { return };
        self.shared.pending.fetch_add(1, Ordering::Relaxed);
        if self.shared.closing.load(Ordering::Relaxed) || tx.try_send(record).is_err() {
            self.shared.pending.fetch_sub(1, Ordering::Relaxed);
            self.shared.drop_queued();
        }
    }

    /// Rows written and dropped so far.
    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            written: self.shared.written.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
            rejected: self.shared.rejected.load(Ordering::Relaxed),
            cleaned: self.shared.cleaned.load(Ordering::Relaxed),
            unrolled: self.rollup_counters.unrolled.load(Ordering::Relaxed),
            last_error: self
                .shared
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone(),
        }
    }

    /// Flushes what is queued, waiting at most `deadline`; rows still queued then are
    /// dropped (counted). Later rows are dropped.
    pub async fn shutdown(&self, deadline: Duration) -> RecorderStats {
        let started = Instant::now();
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.close.notify_one();
        let task = self.task.lock().await.take();
        if let Some(mut task) = task
            && tokio::time::timeout(deadline, &mut task).await.is_err()
        {
            task.abort();
            let pending = self.shared.pending.swap(0, Ordering::SeqCst);
            self.shared.dropped.fetch_add(pending, Ordering::Relaxed);
            self.shared.drop_log.note(
                pending,
                "the database took longer than the shutdown's flush deadline",
            );
            let mut error = self
                .shared
                .last_error
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if error.is_none() {
                *error = Some(format!(
                    "the database took longer than the {:.1} s flush deadline",
                    deadline.as_secs_f64()
                ));
            }
        }
        // The writer is gone, so is its side of the rollup task: the task appends what
        // it holds and ends.
        let rollups = self.rollup_task.lock().await.take();
        if let Some(mut rollups) = rollups {
            let left = deadline.saturating_sub(started.elapsed());
            if tokio::time::timeout(left, &mut rollups).await.is_err() {
                rollups.abort();
                self.rollup_counters
                    .lose_pending("the shutdown's deadline passed");
            }
        }
        self.shared.drop_log.flush();
        self.rollup_counters.flush_log();
        self.stats()
    }
}

const COLUMNS: &str = "run_id, trace_id, service, name, version, environment, model_requested, \
     model_used, provider, latency_ms, input_tokens, output_tokens, cache_read_tokens, \
     cache_write_tokens, cost_usd, error, attempt_errors, quality_score, sampled, input_text, \
     output_text, created_at, source, side";

const TYPES: [Type; 24] = [
    Type::UUID,
    Type::TEXT,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::INT4,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::VARCHAR,
    Type::FLOAT8,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::INT4,
    Type::FLOAT8,
    Type::TEXT,
    Type::TEXT,
    Type::FLOAT8,
    Type::BOOL,
    Type::TEXT,
    Type::TEXT,
    Type::TIMESTAMPTZ,
    Type::TEXT,
    Type::TEXT,
];

/// Writes `rows` into `prompt_runs` with one binary `COPY`, all or none: PostgreSQL
/// refuses the whole `COPY` for one row that does not fit, so make each fit first
/// ([`fit_row`]). Each flush of the recorder goes through here (and splits a refused
/// batch, see the module's doc).
pub async fn write_rows(client: &Client, rows: &[RunRecord]) -> Result<(), tokio_postgres::Error> {
    let mut writer = super::binary_copy(client, "prompt_runs", COLUMNS, &TYPES).await?;
    for r in rows {
        let side = r.side.map(crate::environments::Side::as_str);
        let values: [&(dyn ToSql + Sync); 24] = [
            &r.run_id,
            &r.trace_id,
            &r.service,
            &r.name,
            &r.version,
            &r.environment,
            &r.model_requested,
            &r.model_used,
            &r.provider,
            &r.latency_ms,
            &r.input_tokens,
            &r.output_tokens,
            &r.cache_read_tokens,
            &r.cache_write_tokens,
            &r.cost_usd,
            &r.error,
            &r.attempt_errors,
            &r.quality_score,
            &r.sampled,
            &r.input_text,
            &r.output_text,
            &r.created_at,
            &r.source,
            &side,
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.as_mut().finish().await?;
    Ok(())
}

/// Makes `row` fit the columns of `prompt_runs`: every NUL character (which PostgreSQL
/// text refuses) becomes U+FFFD, and each value longer than its `VARCHAR` column is cut to
/// the column's length (limits in [`super::columns`]). Returns whether anything changed.
pub fn fit_row(row: &mut RunRecord) -> bool {
    use super::columns::{
        MAX_ENVIRONMENT, MAX_NAME, MAX_PROVIDER, MAX_RUN_MODEL, MAX_SERVICE, clean, clip,
    };
    let mut changed = false;
    for (text, limit) in [
        (&mut row.service, Some(MAX_SERVICE)),
        (&mut row.name, Some(MAX_NAME)),
        (&mut row.model_requested, Some(MAX_RUN_MODEL)),
        (&mut row.source, None),
    ] {
        changed |= clean(text);
        changed |= limit.is_some_and(|limit| clip(text, limit));
    }
    for (text, limit) in [
        (&mut row.trace_id, None),
        (&mut row.environment, Some(MAX_ENVIRONMENT)),
        (&mut row.model_used, Some(MAX_RUN_MODEL)),
        (&mut row.provider, Some(MAX_PROVIDER)),
        (&mut row.error, None),
        (&mut row.attempt_errors, None),
        (&mut row.input_text, None),
        (&mut row.output_text, None),
    ] {
        if let Some(text) = text {
            changed |= clean(text);
            changed |= limit.is_some_and(|limit| clip(text, limit));
        }
    }
    changed
}

/// Whether PostgreSQL refused rows for their data (SQLSTATE class 22, a bad value; 23, a
/// constraint; 54, a limit) rather than because the table or the connection failed.
fn refused_for_data(err: &tokio_postgres::Error) -> bool {
    err.as_db_error()
        .is_some_and(|db| matches!(db.code().code().get(..2), Some("22" | "23" | "54")))
}

/// Writes `rows` (already made to fit): a batch PostgreSQL refuses for its data is split in
/// halves and written again, down to single rows, so only the rows it refuses are dropped,
/// each counted and logged. Any other failure (the connection, the table) drops the rows
/// not written yet, counted and logged, and is returned. The rows written go to the
/// rollup task, moved when they are the whole batch.
async fn write_batch(
    client: &Client,
    rows: &mut Vec<RunRecord>,
    shared: &Shared,
    handover: &Handover,
) -> Result<(), tokio_postgres::Error> {
    let mut written: Vec<&[RunRecord]> = Vec::new();
    let result = write_parts(client, rows, shared, &mut written).await;
    if written.len() == 1 && written[0].len() == rows.len() {
        handover.send(std::mem::replace(rows, Vec::with_capacity(BATCH_ROWS)));
    } else if !written.is_empty() {
        handover.send(written.concat());
    }
    result
}

/// [`write_batch`]'s splitting: adds each part written to `written`.
async fn write_parts<'r>(
    client: &Client,
    rows: &'r [RunRecord],
    shared: &Shared,
    written: &mut Vec<&'r [RunRecord]>,
) -> Result<(), tokio_postgres::Error> {
    let mut parts = vec![rows];
    while let Some(part) = parts.pop() {
        match write_rows(client, part).await {
            Ok(()) => {
                shared
                    .written
                    .fetch_add(part.len() as u64, Ordering::Relaxed);
                written.push(part);
            }
            Err(err) if refused_for_data(&err) && part.len() == 1 => {
                shared.reject(&part[0], super::describe(&err));
            }
            Err(err) if refused_for_data(&err) => {
                let (first, second) = part.split_at(part.len() / 2);
                parts.push(second);
                parts.push(first);
            }
            Err(err) => {
                let left = part.len() + parts.iter().map(|p| p.len()).sum::<usize>();
                shared.fail(left, super::describe(&err));
                return Err(err);
            }
        }
    }
    Ok(())
}

fn today() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| (d.as_secs() / 86_400) as i64)
}

/// Creates the day partitions of today and tomorrow and drops those older than
/// `retention_days` (retention by dropping partitions, not by deleting rows).
pub async fn maintain_partitions(
    client: &Client,
    retention_days: u32,
) -> Result<(), tokio_postgres::Error> {
    let day = today();
    for offset in [0, 1] {
        let (y, m, d) = civil_date(day + offset);
        let (ny, nm, nd) = civil_date(day + offset + 1);
        let sql = format!(
            "CREATE TABLE IF NOT EXISTS prompt_runs_{y:04}{m:02}{d:02} PARTITION OF prompt_runs \
             FOR VALUES FROM ('{y:04}-{m:02}-{d:02} 00:00:00+00') TO ('{ny:04}-{nm:02}-{nd:02} 00:00:00+00')"
        );
        // A default partition already holding rows of that day refuses the new partition:
        // the rows then stay in the default partition.
        let _ = client.batch_execute(&sql).await;
    }
    if retention_days > 0 {
        let (y, m, d) = civil_date(day - i64::from(retention_days));
        let cutoff = format!("prompt_runs_{y:04}{m:02}{d:02}");
        let rows = client
            .query(
                "SELECT c.relname::text FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid \
                 WHERE i.inhparent = 'prompt_runs'::regclass AND c.relname ~ '^prompt_runs_[0-9]{8}$'",
                &[],
            )
            .await?;
        for row in rows {
            let name: String = row.get(0);
            if name < cutoff {
                client
                    .batch_execute(&format!("DROP TABLE IF EXISTS {name}"))
                    .await?;
            }
        }
        client
            .execute(
                "DELETE FROM prompt_runs_default WHERE created_at < now() - make_interval(days => $1)",
                &[&(retention_days as i32)],
            )
            .await?;
    }
    Ok(())
}

/// Sets up a connection for the writer with `[monitoring] synchronous_commit`. By default
/// (`off`) its commits do not wait for the write-ahead log to reach the disk: monitoring
/// rows are telemetry, a server crash may lose the last fraction of a second of them (the
/// database stays consistent, runs and their rollups alike), and in exchange a flush
/// never waits for an fsync.
pub async fn prepare_writer_session(
    client: &Client,
    durability: SynchronousCommit,
) -> Result<(), tokio_postgres::Error> {
    client
        .batch_execute(&format!("SET synchronous_commit = {}", durability.as_sql()))
        .await
}

/// Batches at least this long are written half on each of the writer's two connections.
const SPLIT_ROWS: usize = 1_000;

/// The writer's two connections: PostgreSQL takes a `COPY` on one backend, so a batch is
/// written half on each, at once, and two backends share the work (on 2 cores, about
/// 95,000 rows/s with one against 117,000 to 136,000 with two: `scripts/bench-router.sh`).
struct Writers {
    first: Client,
    second: Client,
}

impl Writers {
    async fn open(url: &str, monitoring: &MonitoringSettings) -> Result<Writers, String> {
        let first = open(url, monitoring).await?;
        let second = tokio::time::timeout(Duration::from_secs(3), super::connect(url))
            .await
            .map_err(|_| "the database did not answer within 3 s".to_owned())?
            .map_err(|e| e.to_string())?;
        prepare_writer_session(&second, monitoring.synchronous_commit)
            .await
            .map_err(|e| super::describe(&e))?;
        Ok(Writers { first, second })
    }

    fn is_closed(&self) -> bool {
        self.first.is_closed() || self.second.is_closed()
    }

    /// Writes `batch` ([`write_batch`]), half on each connection when it is long.
    async fn write(
        &self,
        batch: &mut Vec<RunRecord>,
        shared: &Shared,
        handover: &Handover,
    ) -> Result<(), tokio_postgres::Error> {
        if batch.len() < SPLIT_ROWS {
            return write_batch(&self.first, batch, shared, handover).await;
        }
        let mut second = batch.split_off(batch.len() / 2);
        let (first, second) = tokio::join!(
            write_batch(&self.first, batch, shared, handover),
            write_batch(&self.second, &mut second, shared, handover)
        );
        first.and(second)
    }
}

async fn open(url: &str, monitoring: &MonitoringSettings) -> Result<Client, String> {
    let mut client = tokio::time::timeout(Duration::from_secs(3), super::connect(url))
        .await
        .map_err(|_| "the database did not answer within 3 s".to_owned())?
        .map_err(|e| e.to_string())?;
    prepare_writer_session(&client, monitoring.synchronous_commit)
        .await
        .map_err(|e| super::describe(&e))?;
    super::migrations::migrate(&mut client)
        .await
        .map_err(|e| e.to_string())?;
    maintain_partitions(&client, monitoring.retention_days)
        .await
        .map_err(|e| super::describe(&e))?;
    Ok(client)
}

async fn writer(
    url: String,
    monitoring: MonitoringSettings,
    mut rx: mpsc::Receiver<RunRecord>,
    shared: Arc<Shared>,
    handover: Handover,
) {
    let mut client: Option<Writers> = None;
    // After failures to connect: how many, and when the next attempt may be made.
    let mut failures: u32 = 0;
    let mut next_attempt: Option<Instant> = None;
    let mut last_flush = Instant::now() - FLUSH_INTERVAL;
    let mut day = today();
    let mut batch: Vec<RunRecord> = Vec::with_capacity(BATCH_ROWS);
    loop {
        let closing = shared.closing.load(Ordering::SeqCst);
        if !closing {
            tokio::select! {
                n = rx.recv_many(&mut batch, BATCH_ROWS) => if n == 0 { return },
                () = shared.close.notified() => {}
            }
            let wait = FLUSH_INTERVAL.saturating_sub(last_flush.elapsed());
            if batch.len() < BATCH_ROWS && !wait.is_zero() {
                tokio::select! {
                    () = tokio::time::sleep(wait) => {}
                    () = shared.close.notified() => {}
                }
            }
        }
        while batch.len() < BATCH_ROWS {
            match rx.try_recv() {
                Ok(row) => batch.push(row),
                Err(_) => break,
            }
        }
        let closing = shared.closing.load(Ordering::SeqCst);
        if batch.is_empty() {
            if closing {
                return;
            }
            continue;
        }
        last_flush = Instant::now();
        if client.as_ref().is_none_or(Writers::is_closed) {
            client = None;
            let retry = next_attempt.is_none_or(|at| Instant::now() >= at);
            if retry || closing {
                match Writers::open(&url, &monitoring).await {
                    Ok(opened) => {
                        client = Some(opened);
                        failures = 0;
                        next_attempt = None;
                    }
                    Err(err) => {
                        next_attempt = Some(Instant::now() + RECONNECT.delay(failures, None));
                        failures = failures.saturating_add(1);
                        shared.fail(batch.len(), err);
                    }
                }
            } else {
                shared.fail(batch.len(), "the database is unreachable".into());
            }
        }
        if let Some(writers) = &client {
            if today() != day {
                day = today();
                let _ = maintain_partitions(&writers.first, monitoring.retention_days).await;
            }
            let cleaned = batch
                .iter_mut()
                .map(fit_row)
                .filter(|&changed| changed)
                .count();
            shared.cleaned.fetch_add(cleaned as u64, Ordering::Relaxed);
        }
        let rows = batch.len() as u64;
        if let Some(writers) = &client
            && writers.write(&mut batch, &shared, &handover).await.is_err()
        {
            client = None;
        }
        shared.pending.fetch_sub(rows, Ordering::Relaxed);
        batch.clear();
        if closing && rx.is_empty() {
            return;
        }
    }
}
