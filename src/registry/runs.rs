//! The run recorder: every router execution becomes a row of `prompt_runs`, written by a
//! background task so that the caller never waits for the database.
//!
//! Rows go through a bounded channel ([`QUEUE_CAPACITY`]); a full queue or a database that
//! is down costs dropped rows (counted in [`RecorderStats::dropped`]), never a failed or a
//! slower call. The writer drains the channel with `recv_many`, up to [`BATCH_ROWS`] rows
//! or [`FLUSH_INTERVAL`] per flush, and writes each batch with one binary `COPY`. It
//! creates the day partitions ahead (today and tomorrow) and drops the ones older than
//! `retention_days`. [`RunRecorder::shutdown`] flushes what is queued within a deadline.

use std::sync::Arc;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::calendar::civil_date;
use serde::Serialize;
use tokio::sync::{Notify, mpsc};
use tokio_postgres::Client;
use tokio_postgres::binary_copy::BinaryCopyInWriter;
use tokio_postgres::types::{ToSql, Type};
use uuid::Uuid;

/// Rows the queue holds before new ones are dropped.
pub const QUEUE_CAPACITY: usize = 50_000;
/// Rows per flush at most (a busy router fills a batch in a tenth of a second at 50,000
/// runs a second; fewer, larger `COPY`s cost the server less per row).
pub const BATCH_ROWS: usize = 5_000;
/// At most one flush per interval (unless a batch is full).
pub const FLUSH_INTERVAL: Duration = Duration::from_millis(100);

/// One execution of a prompt, as stored in `prompt_runs`.
#[derive(Debug, Clone, Serialize)]
pub struct RunRecord {
    /// The run's id.
    pub run_id: Uuid,
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

impl RunRecord {
    /// Replaces every NUL character of the text fields with U+FFFD.
    fn replace_nul(&mut self) {
        let scrub = |text: &mut String| {
            if text.contains('\0') {
                *text = text.replace('\0', "\u{FFFD}");
            }
        };
        for text in [&mut self.service, &mut self.name, &mut self.model_requested] {
            scrub(text);
        }
        for text in [
            &mut self.trace_id,
            &mut self.environment,
            &mut self.model_used,
            &mut self.provider,
            &mut self.error,
            &mut self.attempt_errors,
            &mut self.input_text,
            &mut self.output_text,
        ]
        .into_iter()
        .flatten()
        {
            scrub(text);
        }
    }
}

/// What the recorder did so far.
#[derive(Debug, Clone, Default, Serialize)]
pub struct RecorderStats {
    /// Rows written.
    pub written: u64,
    /// Rows dropped (queue full, database down or slow).
    pub dropped: u64,
    /// The last database error, if any.
    pub last_error: Option<String>,
}

#[derive(Default)]
struct Shared {
    written: AtomicU64,
    dropped: AtomicU64,
    /// Rows queued or being flushed.
    pending: AtomicU64,
    closing: AtomicBool,
    close: Notify,
    last_error: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, rows: usize, error: String) {
        self.dropped.fetch_add(rows as u64, Ordering::Relaxed);
        *self.last_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(error);
    }
}

/// The background writer of `prompt_runs`.
pub struct RunRecorder {
    tx: Option<mpsc::Sender<RunRecord>>,
    shared: Arc<Shared>,
    task: tokio::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
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
        }
    }

    /// Starts the writer for the database at `url`; must be called inside a Tokio runtime.
    /// The connection is made by the writer, so a database that is down costs nothing here.
    pub fn start(url: String, retention_days: u32) -> RunRecorder {
        let (tx, rx) = mpsc::channel(QUEUE_CAPACITY);
        let shared = Arc::new(Shared::default());
        let task = tokio::spawn(writer(url, retention_days, rx, shared.clone()));
        RunRecorder {
            tx: Some(tx),
            shared,
            task: tokio::sync::Mutex::new(Some(task)),
        }
    }

    /// Queues a row; never waits. A full queue drops it (counted). NUL characters, which
    /// no PostgreSQL text holds and which would fail the whole batch, become U+FFFD.
    pub fn record(&self, mut record: RunRecord) {
        let Some(tx) = &self.tx else { return };
        record.replace_nul();
        self.shared.pending.fetch_add(1, Ordering::Relaxed);
        if self.shared.closing.load(Ordering::Relaxed) || tx.try_send(record).is_err() {
            self.shared.pending.fetch_sub(1, Ordering::Relaxed);
            self.shared.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Rows written and dropped so far.
    pub fn stats(&self) -> RecorderStats {
        RecorderStats {
            written: self.shared.written.load(Ordering::Relaxed),
            dropped: self.shared.dropped.load(Ordering::Relaxed),
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
        self.shared.closing.store(true, Ordering::SeqCst);
        self.shared.close.notify_one();
        let task = self.task.lock().await.take();
        if let Some(mut task) = task
            && tokio::time::timeout(deadline, &mut task).await.is_err()
        {
            task.abort();
            let pending = self.shared.pending.swap(0, Ordering::SeqCst);
            self.shared.dropped.fetch_add(pending, Ordering::Relaxed);
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
        self.stats()
    }
}

const COLUMNS: &str = "run_id, trace_id, service, name, version, environment, model_requested, \
     model_used, provider, latency_ms, input_tokens, output_tokens, cache_read_tokens, \
     cache_write_tokens, cost_usd, error, attempt_errors, quality_score, sampled, input_text, \
     output_text, created_at";

const TYPES: [Type; 22] = [
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
];

/// Writes `rows` with one binary `COPY` (what each flush does).
pub async fn write_rows(client: &Client, rows: &[RunRecord]) -> Result<(), tokio_postgres::Error> {
    let sink = client
        .copy_in(&format!(
            "COPY prompt_runs ({COLUMNS}) FROM STDIN (FORMAT binary)"
        ))
        .await?;
    let writer = BinaryCopyInWriter::new(sink, &TYPES);
    let mut writer = std::pin::pin!(writer);
    for r in rows {
        let values: [&(dyn ToSql + Sync); 22] = [
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
        ];
        writer.as_mut().write(&values).await?;
    }
    writer.finish().await?;
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

/// Sets up a connection for the writer: its commits do not wait for the write-ahead log
/// to reach the disk (`synchronous_commit = off`). Monitoring rows are telemetry: a
/// server crash may lose the last fraction of a second of them (the database stays
/// consistent), and in exchange a flush never waits for an fsync.
pub async fn prepare_writer_session(client: &Client) -> Result<(), tokio_postgres::Error> {
    client.batch_execute("SET synchronous_commit = off").await
}

async fn open(url: &str, retention_days: u32) -> Result<Client, String> {
    let mut client = tokio::time::timeout(Duration::from_secs(3), super::connect(url))
        .await
        .map_err(|_| "the database did not answer within 3 s".to_owned())?
        .map_err(|e| e.to_string())?;
    prepare_writer_session(&client)
        .await
        .map_err(|e| super::describe(&e))?;
    super::migrations::migrate(&mut client)
        .await
        .map_err(|e| e.to_string())?;
    maintain_partitions(&client, retention_days)
        .await
        .map_err(|e| super::describe(&e))?;
    Ok(client)
}

async fn writer(
    url: String,
    retention_days: u32,
    mut rx: mpsc::Receiver<RunRecord>,
    shared: Arc<Shared>,
) {
    let mut client: Option<Client> = None;
    let mut failed_at: Option<Instant> = None;
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
        if client.as_ref().is_none_or(Client::is_closed) {
            client = None;
            let retry = failed_at.is_none_or(|at| at.elapsed() > Duration::from_secs(1));
            if retry || closing {
                match open(&url, retention_days).await {
                    Ok(opened) => {
                        client = Some(opened);
                        failed_at = None;
                    }
                    Err(err) => {
                        failed_at = Some(Instant::now());
                        shared.fail(batch.len(), err);
                    }
                }
            } else {
                shared.fail(batch.len(), "the database is unreachable".into());
            }
        }
        if let Some(open_client) = &client {
            if today() != day {
                day = today();
                let _ = maintain_partitions(open_client, retention_days).await;
            }
            match write_rows(open_client, &batch).await {
                Ok(()) => {
                    shared
                        .written
                        .fetch_add(batch.len() as u64, Ordering::Relaxed);
                }
                Err(err) => {
                    shared.fail(batch.len(), super::describe(&err));
                    client = None;
                }
            }
        }
        shared
            .pending
            .fetch_sub(batch.len() as u64, Ordering::Relaxed);
        batch.clear();
        if closing && rx.is_empty() {
            return;
        }
    }
}
