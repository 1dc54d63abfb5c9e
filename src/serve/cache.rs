//! The read cache in front of PostgreSQL: `(value, fetched_at)` per key, fresh for the TTL,
//! then served while one background refresh per key fetches the new value. A `NOTIFY` on
//! `promptctl_sync` (sent by `promptctl sync` when it publishes) drops every key at once;
//! the TTL covers a notification missed while the listener was reconnecting.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use tokio::sync::Mutex;

use crate::registry::{Registry, RegistryError, RegistryPrompt};

/// The channel `promptctl sync` notifies.
pub const CHANNEL: &str = "promptctl_sync";

/// One cached read: the prompt and the exact response bytes with their ETag.
#[derive(Debug)]
pub struct Cached {
    /// The prompt, for render and run.
    pub prompt: RegistryPrompt,
    /// Renders it with the partials of its version.
    pub renderer: crate::render::Renderer,
    /// The JSON response body.
    pub body: axum::body::Bytes,
    /// The quoted ETag (a hash of `body`), ready to send.
    pub etag: axum::http::HeaderValue,
}

struct Entry {
    value: Arc<Cached>,
    fetched_at: Instant,
    refreshing: Arc<AtomicBool>,
}

/// The cache and the database connection it reads through.
pub struct Cache {
    entries: RwLock<HashMap<String, Entry>>,
    ttl: Duration,
    db: Db,
}

/// Where a read came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A fresh cached value.
    Hit,
    /// Read from PostgreSQL now.
    Miss,
    /// Older than the TTL, or the database is unreachable: may be stale.
    Stale,
}

impl Cache {
    /// A cache reading from `url` (the replica when `[serve] read_database_url` is set).
    pub fn new(url: String, ttl: Duration) -> Cache {
        Cache {
            entries: RwLock::new(HashMap::new()),
            ttl,
            db: Db::new(url),
        }
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// Drops every key (a sync published something).
    pub fn clear(&self) {
        if let Ok(mut entries) = self.entries.write() {
            entries.clear();
        }
    }

    /// The cached value of `key` while it is fresh: the request's fast path, which neither
    /// allocates nor awaits.
    pub fn fresh(&self, key: &str) -> Option<(Arc<Cached>, Source)> {
        let entries = self.entries.read().ok()?;
        let entry = entries.get(key)?;
        if entry.fetched_at.elapsed() >= self.ttl {
            return None;
        }
        let source = if self.db.is_up() {
            Source::Hit
        } else {
            Source::Stale
        };
        Some((entry.value.clone(), source))
    }

    /// The cached value of `key`, loading it through `load` when absent; an expired value
    /// is returned at once while one background task per key refreshes it.
    pub async fn get<F, Fut>(
        self: &Arc<Self>,
        key: &str,
        load: F,
    ) -> Result<(Arc<Cached>, Source), RegistryError>
    where
        F: Fn(Arc<Registry>) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = Result<Cached, RegistryError>> + Send,
    {
        let found = self.entries.read().ok().and_then(|entries| {
            entries.get(key).map(|entry| {
                (
                    entry.value.clone(),
                    entry.fetched_at.elapsed() < self.ttl,
                    entry.refreshing.clone(),
                )
            })
        });
        if let Some((value, fresh, refreshing)) = found {
            if fresh {
                let source = if self.db.is_up() {
                    Source::Hit
                } else {
                    Source::Stale
                };
                return Ok((value, source));
            }
            if !refreshing.swap(true, Ordering::AcqRel) {
                let cache = self.clone();
                let key = key.to_owned();
                tokio::spawn(async move {
                    match cache.db.read(load).await {
                        Ok(value) => {
                            cache.insert(&key, value);
                        }
                        Err(err) => {
                            cache.db.note(&err);
                            refreshing.store(false, Ordering::Release);
                        }
                    }
                });
            }
            return Ok((value, Source::Stale));
        }
        // Boxed: the read's future is large, and a request that finds its value cached
        // should not carry (and copy) it.
        let value = Box::pin(self.db.read(load)).await?;
        Ok((self.insert(key, value), Source::Miss))
    }

    fn insert(&self, key: &str, value: Cached) -> Arc<Cached> {
        let value = Arc::new(value);
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(
                key.to_owned(),
                Entry {
                    value: value.clone(),
                    fetched_at: Instant::now(),
                    refreshing: Arc::new(AtomicBool::new(false)),
                },
            );
        }
        value
    }
}

/// After a connection to the read database failed, how long requests get that failure
/// at once instead of each waiting for a connection of its own.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// The read connection, reopened when the server went away.
pub struct Db {
    url: String,
    current: Mutex<Connection>,
    up: AtomicBool,
}

#[derive(Default)]
struct Connection {
    registry: Option<Arc<Registry>>,
    /// The last failure to connect, while it is recent: when, and the error to repeat.
    failed: Option<(Instant, RegistryError)>,
}

impl Db {
    fn new(url: String) -> Db {
        Db {
            url,
            current: Mutex::new(Connection::default()),
            up: AtomicBool::new(true),
        }
    }

    /// Whether the database answered last time it was asked.
    pub fn is_up(&self) -> bool {
        self.up.load(Ordering::Acquire)
    }

    /// Records whether the database is reachable.
    pub fn set_up(&self, up: bool) {
        self.up.store(up, Ordering::Release);
    }

    /// Marks the database down when `err` says it is unreachable (not when the server
    /// refused a statement: it answered).
    pub fn note(&self, err: &RegistryError) {
        if err.is_unreachable() {
            self.set_up(false);
        }
    }

    /// The open registry connection, connecting when there is none. While a connection
    /// failure is less than [`RECONNECT_PAUSE`] old, that failure is returned at once.
    pub async fn registry(&self) -> Result<Arc<Registry>, RegistryError> {
        let mut current = self.current.lock().await;
        if let Some(registry) = current.registry.as_ref()
            && !registry.is_closed()
        {
            return Ok(registry.clone());
        }
        current.registry = None;
        if let Some((when, err)) = &current.failed
            && when.elapsed() < RECONNECT_PAUSE
            && let Some(again) = repeat(err)
        {
            return Err(again);
        }
        match Registry::connect(&self.url).await {
            Ok(registry) => {
                let registry = Arc::new(registry);
                current.registry = Some(registry.clone());
                current.failed = None;
                self.set_up(true);
                Ok(registry)
            }
            Err(err) => {
                self.note(&err);
                if let Some(kept) = repeat(&err) {
                    current.failed = Some((Instant::now(), kept));
                }
                Err(err)
            }
        }
    }

    /// Runs `read` over the open connection within the query timeout. A failure that
    /// says the database is unreachable marks it down and drops the connection, so the
    /// next read opens a new one.
    pub async fn read<T, F, Fut>(&self, read: F) -> Result<T, RegistryError>
    where
        F: FnOnce(Arc<Registry>) -> Fut,
        Fut: std::future::Future<Output = Result<T, RegistryError>>,
    {
        let registry = self.registry().await?;
        let result = crate::registry::bounded(read(registry.clone())).await;
        if let Err(err) = &result
            && err.is_unreachable()
        {
            self.set_up(false);
            let mut current = self.current.lock().await;
            if current
                .registry
                .as_ref()
                .is_some_and(|open| Arc::ptr_eq(open, &registry))
            {
                current.registry = None;
            }
        }
        result
    }

    /// Whether the database answers `SELECT 1` within two seconds.
    pub async fn ping(&self) -> bool {
        let check = self.read(|registry| async move {
            registry.client().simple_query("SELECT 1").await?;
            Ok(())
        });
        let ok = matches!(
            tokio::time::timeout(Duration::from_secs(2), check).await,
            Ok(Ok(()))
        );
        self.set_up(ok);
        ok
    }
}

/// A copy of a connection failure, to repeat to the requests that come right after it.
fn repeat(err: &RegistryError) -> Option<RegistryError> {
    match err {
        RegistryError::Connect { target, reason } => Some(RegistryError::Connect {
            target: target.clone(),
            reason: reason.clone(),
        }),
        RegistryError::Timeout { what, after } => Some(RegistryError::Timeout {
            what: what.clone(),
            after: *after,
        }),
        _ => None,
    }
}

/// Listens on [`CHANNEL`] with a dedicated connection, reconnecting after a failure, and
/// drops the cache and tells the router on every notification (and after every
/// reconnection, since notifications may have been missed meanwhile).
pub async fn listen(cache: Arc<Cache>, router: crate::router::Router, url: String) {
    let mut first = true;
    loop {
        match listen_once(&cache, &router, &url, first).await {
            Ok(()) => {}
            Err(err) => {
                tracing::warn!(error = %err, "LISTEN connection lost; reconnecting");
            }
        }
        first = false;
        cache.db.set_up(false);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn listen_once(
    cache: &Cache,
    router: &crate::router::Router,
    url: &str,
    first: bool,
) -> Result<(), String> {
    let config = crate::registry::config_of(url).map_err(|err| err.to_string())?;
    let limit = crate::registry::timeouts().connect;
    let late = || format!("no connection within {} s", limit.as_secs_f64());
    let (client, mut connection) =
        tokio::time::timeout(limit, config.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| late())?
            .map_err(|err| crate::registry::describe(&err))?;
    let (sender, mut receiver) = tokio::sync::mpsc::unbounded_channel();
    let driver = tokio::spawn(async move {
        loop {
            let message = std::future::poll_fn(|cx| connection.poll_message(cx)).await;
            match message {
                Some(Ok(message)) => {
                    if sender.send(Some(message)).is_err() {
                        return;
                    }
                }
                Some(Err(err)) => {
                    let _ = sender.send(None);
                    tracing::debug!(error = %err, "LISTEN connection error");
                    return;
                }
                None => {
                    let _ = sender.send(None);
                    return;
                }
            }
        }
    });
    let listened = async {
        tokio::time::timeout(limit, client.batch_execute(&format!("LISTEN {CHANNEL}")))
            .await
            .map_err(|_| late())?
            .map_err(|err| crate::registry::describe(&err))?;
        cache.db.set_up(true);
        if !first {
            cache.clear();
            router.registry_changed();
        }
        tracing::info!(channel = CHANNEL, "listening for sync notifications");
        while let Some(message) = receiver.recv().await {
            match message {
                Some(tokio_postgres::AsyncMessage::Notification(notice)) => {
                    tracing::info!(
                        payload = notice.payload(),
                        "sync notification: cache dropped"
                    );
                    cache.clear();
                    router.registry_changed();
                }
                Some(_) => {}
                None => break,
            }
        }
        Err("the server closed the connection".to_owned())
    }
    .await;
    driver.abort();
    drop(client);
    listened
}
