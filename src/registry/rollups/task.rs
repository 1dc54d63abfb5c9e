//! The run recorder's rollup task: the writer hands it each batch it wrote; it adds their
//! rollups up in memory and appends them once per [`ROLLUP_INTERVAL`] (and when the
//! writer ends), compacts the appended rows every [`COMPACT_INTERVAL`] and retires old ones
//! hourly, all on a connection of its own, so the writer's `COPY`s never wait for it and
//! the adding up runs while PostgreSQL takes the next batch.
//!
//! Rollup rows grow with the keys a second holds, not with the runs. A database that
//! fails keeps the pending rollups for the next try, up to [`MAX_PENDING_ROLLUPS`] rows;
//! past that, when the hand-over queue ([`HANDOVER_BATCHES`]) is full, and when the
//! process dies, the runs are in `prompt_runs` but not in the rollups: counted
//! ([`RollupCounters::unrolled`]) and logged, and `promptctl rollup --since` rolls them up
//! again.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::mpsc;
use tokio_postgres::Client;

use super::{Rollups, compact, retire, write};
use crate::config::MonitoringSettings;
use crate::registry::runs::{DropLog, RunRecord};

/// How often the recorder appends the rollups of the runs it wrote.
pub const ROLLUP_INTERVAL: Duration = Duration::from_secs(1);
/// How often the recorder merges the partial rollup rows it appended.
pub const COMPACT_INTERVAL: Duration = Duration::from_secs(30);
/// How often the recorder deletes rollups past their retention.
const RETIRE_INTERVAL: Duration = Duration::from_secs(3_600);
/// Rollup rows held for a database that fails, at most (each holds a latency sketch of
/// up to about 11 KiB, most far less); past this they are dropped and counted.
pub const MAX_PENDING_ROLLUPS: usize = 200_000;
/// Written batches waiting for the task, at most (a flush of 1,000 rows or more is handed
/// over as its two halves of at most 2,500 rows: at most 160,000 runs).
pub const HANDOVER_BATCHES: usize = 64;
/// How long after a failed connection the task tries again.
const RECONNECT_AFTER: Duration = Duration::from_secs(1);

/// What the rollup task holds and lost, shared with the recorder's stats.
pub struct RollupCounters {
    /// Runs written whose rollups were lost.
    pub unrolled: AtomicU64,
    /// Runs whose rollups the task holds, not appended yet.
    pending: AtomicU64,
    /// The throttled warning of the losses (a full hand-over queue would otherwise warn
    /// per batch).
    log: DropLog,
}

impl Default for RollupCounters {
    fn default() -> RollupCounters {
        RollupCounters {
            unrolled: AtomicU64::default(),
            pending: AtomicU64::default(),
            log: DropLog::new(
                "rollups lost: the runs are in prompt_runs; `promptctl rollup --since` rolls them up",
            ),
        }
    }
}

impl std::fmt::Debug for RollupCounters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RollupCounters")
            .field("unrolled", &self.unrolled)
            .field("pending", &self.pending)
            .finish()
    }
}

impl RollupCounters {
    /// Counts the runs the task held as lost (the task was stopped before it appended
    /// them).
    pub fn lose_pending(&self, reason: &str) {
        lose(self, self.pending.swap(0, Ordering::Relaxed), reason);
    }

    /// Logs the losses not logged yet (at shutdown).
    pub fn flush_log(&self) {
        self.log.flush();
    }
}

/// The writer's side of the task: hands over written batches, never waits.
#[derive(Debug)]
pub struct Handover {
    tx: mpsc::Sender<Vec<RunRecord>>,
    counters: Arc<RollupCounters>,
}

impl Handover {
    /// Hands over `runs`, written to `prompt_runs`; a full queue loses their rollups
    /// (counted and logged).
    pub fn send(&self, runs: Vec<RunRecord>) {
        if let Err(err) = self.tx.try_send(runs) {
            let runs = match err {
                mpsc::error::TrySendError::Full(runs) | mpsc::error::TrySendError::Closed(runs) => {
                    runs
                }
            };
            lose(
                &self.counters,
                runs.len() as u64,
                "the rollup task is behind",
            );
        }
    }
}

/// Starts the task for the database at `url`; returns the writer's side and the task.
pub fn start(
    url: String,
    monitoring: MonitoringSettings,
    counters: Arc<RollupCounters>,
) -> (Handover, tokio::task::JoinHandle<()>) {
    let (tx, rx) = mpsc::channel(HANDOVER_BATCHES);
    let task = tokio::spawn(run(url, monitoring, rx, counters.clone()));
    (Handover { tx, counters }, task)
}

/// Counts and logs (throttled) `runs` whose rollups were lost.
fn lose(counters: &RollupCounters, runs: u64, reason: &str) {
    if runs > 0 {
        counters.unrolled.fetch_add(runs, Ordering::Relaxed);
        counters.log.note(runs, reason);
    }
}

/// The task's connection, made when first needed and again after it broke.
struct Connection {
    url: String,
    monitoring: MonitoringSettings,
    client: Option<Client>,
    failed_at: Option<Instant>,
}

impl Connection {
    async fn get(&mut self) -> Option<&Client> {
        if self.client.as_ref().is_some_and(Client::is_closed) {
            self.client = None;
        }
        if self.client.is_none()
            && self
                .failed_at
                .is_none_or(|at| at.elapsed() >= RECONNECT_AFTER)
        {
            match tokio::time::timeout(Duration::from_secs(3), crate::registry::connect(&self.url))
                .await
            {
                Ok(Ok(client)) => {
                    let session = crate::registry::runs::prepare_writer_session(
                        &client,
                        self.monitoring.synchronous_commit,
                    );
                    if session.await.is_ok() {
                        self.client = Some(client);
                        self.failed_at = None;
                    } else {
                        self.failed_at = Some(Instant::now());
                    }
                }
                _ => self.failed_at = Some(Instant::now()),
            }
        }
        self.client.as_ref()
    }
}

async fn run(
    url: String,
    monitoring: MonitoringSettings,
    mut rx: mpsc::Receiver<Vec<RunRecord>>,
    counters: Arc<RollupCounters>,
) {
    let mut connection = Connection {
        url,
        monitoring: monitoring.clone(),
        client: None,
        failed_at: None,
    };
    let mut pending = Pending::default();
    let mut compact_at = Instant::now() + COMPACT_INTERVAL;
    let mut retire_at = Instant::now();
    loop {
        let due = pending.due().unwrap_or(compact_at).min(compact_at);
        tokio::select! {
            batch = rx.recv() => match batch {
                Some(runs) => {
                    counters.pending.fetch_add(runs.len() as u64, Ordering::Relaxed);
                    pending.add(&runs);
                }
                None => {
                    pending.flush(connection.get().await, &counters, true).await;
                    return;
                }
            },
            () = tokio::time::sleep_until(due.into()) => {}
        }
        if pending.is_due() {
            pending
                .flush(connection.get().await, &counters, false)
                .await;
        }
        if Instant::now() >= compact_at {
            compact_at = Instant::now() + COMPACT_INTERVAL;
            let retire_now = Instant::now() >= retire_at;
            if retire_now {
                retire_at = Instant::now() + RETIRE_INTERVAL;
            }
            if let Some(client) = connection.get().await {
                maintain(client, &monitoring, retire_now).await;
            }
        }
    }
}

/// Compacts the appended rows and, when `retire_now`, deletes rollups past their
/// retention. Failures are logged and retried at the next interval: the rows stay partial
/// meanwhile, which costs readers time, not correctness.
async fn maintain(client: &Client, monitoring: &MonitoringSettings, retire_now: bool) {
    if let Err(err) = compact(client).await {
        tracing::warn!(error = %err, "rollup compaction failed; retried in {} s", COMPACT_INTERVAL.as_secs());
    }
    if retire_now
        && let Err(err) = retire(
            client,
            monitoring.retention_days,
            monitoring.rollup_retention_days,
        )
        .await
    {
        tracing::warn!(error = %err, "rollup retention failed");
    }
}

/// Appends `rows` as partial rows and says a recorder is live (`promptctl rollup` leaves
/// it the unsettled hour).
async fn append(client: &Client, rows: &Rollups) -> Result<(), tokio_postgres::Error> {
    write(client, rows, true).await?;
    client
        .execute(
            "UPDATE prompt_rollup_state SET recorder_seen_at = now()",
            &[],
        )
        .await?;
    Ok(())
}

/// The rollups of the rows written and not yet appended themselves.
#[derive(Default)]
struct Pending {
    rows: Rollups,
    /// Runs they hold.
    runs: u64,
    /// When the oldest of them was added.
    since: Option<Instant>,
}

impl Pending {
    fn add(&mut self, runs: &[RunRecord]) {
        self.since.get_or_insert_with(Instant::now);
        self.runs += runs.len() as u64;
        self.rows.add_runs(runs);
    }

    /// When they are to be appended, if there are any.
    fn due(&self) -> Option<Instant> {
        self.since.map(|since| since + ROLLUP_INTERVAL)
    }

    fn is_due(&self) -> bool {
        self.due().is_some_and(|due| Instant::now() >= due)
    }

    /// Appends them. A database that fails keeps them for the next try, unless they are
    /// more than [`MAX_PENDING_ROLLUPS`] rows or this is the `last` try.
    async fn flush(&mut self, client: Option<&Client>, counters: &RollupCounters, last: bool) {
        if self.since.is_none() {
            return;
        }
        let failure = match client {
            Some(client) => match append(client, &self.rows).await {
                Ok(()) => None,
                Err(err) => Some(crate::registry::describe(&err)),
            },
            None => Some("the database is unreachable".to_owned()),
        };
        match failure {
            None => self.clear(counters),
            Some(reason) if last || self.rows.len() > MAX_PENDING_ROLLUPS => {
                lose(counters, self.runs, &reason);
                self.clear(counters);
            }
            // Kept: the next try comes one interval later.
            Some(_) => self.since = Some(Instant::now()),
        }
    }

    fn clear(&mut self, counters: &RollupCounters) {
        counters.pending.fetch_sub(self.runs, Ordering::Relaxed);
        self.rows.clear();
        self.runs = 0;
        self.since = None;
    }
}
