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
    /// The quoted ETag: a hash of `body`.
    pub etag: String,
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
                    let result = match cache.db.registry().await {
                        Ok(registry) => load(registry).await,
                        Err(err) => Err(err),
                    };
                    match result {
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
        let registry = self.db.registry().await?;
        let value = load(registry).await.inspect_err(|err| self.db.note(err))?;
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

/// The read connection, reopened when the server went away.
pub struct Db {
    url: String,
    current: Mutex<Option<Arc<Registry>>>,
    up: AtomicBool,
}

impl Db {
    fn new(url: String) -> Db {
        Db {
            url,
            current: Mutex::new(None),
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

    /// Marks the database down when `err` says it is unreachable.
    pub fn note(&self, err: &RegistryError) {
        if matches!(
            err,
            RegistryError::Connect { .. } | RegistryError::Database(_)
        ) {
            self.set_up(false);
        }
    }

    /// The open registry connection, connecting when there is none.
    pub async fn registry(&self) -> Result<Arc<Registry>, RegistryError> {
        let mut current = self.current.lock().await;
        if let Some(registry) = current.as_ref()
            && !registry.is_closed()
        {
            return Ok(registry.clone());
        }
        *current = None;
        match Registry::connect(&self.url).await {
            Ok(registry) => {
                let registry = Arc::new(registry);
                *current = Some(registry.clone());
                self.set_up(true);
                Ok(registry)
            }
            Err(err) => {
                self.note(&err);
                Err(err)
            }
        }
    }

    /// Whether the database answers `SELECT 1` within a second.
    pub async fn ping(&self) -> bool {
        let check = async {
            let registry = self.registry().await?;
            registry.client().simple_query("SELECT 1").await?;
            Ok::<_, RegistryError>(())
        };
        let ok = matches!(
            tokio::time::timeout(Duration::from_secs(2), check).await,
            Ok(Ok(()))
        );
        self.set_up(ok);
        ok
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
    let (client, mut connection) = tokio_postgres::connect(url, tokio_postgres::NoTls)
        .await
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
    client
        .batch_execute(&format!("LISTEN {CHANNEL}"))
        .await
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
    driver.abort();
    drop(client);
    Err("the server closed the connection".to_owned())
}
