//! The one read cache in front of the registry, shared by the router and `serve`: a copy of
//! each prompt read (by name and [`Selector`]), fresh for the TTL, then served while one
//! background refresh per key reads the new one (stale-while-revalidate). A `NOTIFY` on
//! [`CHANNEL`] (sent by `promptctl sync` when it publishes, heard by [`listen`]) marks the
//! copies of the prompts it names changed ([`super::notice`]; every copy when it names
//! none or does not parse): the next read of each goes to PostgreSQL, and when the
//! database does not answer the copy is served as the last good one. The TTL covers a notification missed
//! while the listener was reconnecting.
//!
//! Not for: listings and statistics, which read through [`Db`] uncached.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Mutex;

use super::{Registry, RegistryError, RegistryPrompt, Selector};
use crate::render::Renderer;

/// The channel `promptctl sync` notifies.
pub const CHANNEL: &str = "promptctl_sync";

/// How a door encodes a prompt for its clients, once per copy read: the body and its
/// entity tag (`serve`: the JSON of `GET /v1/prompts/{service}/{name}`).
pub type Encoder = fn(&RegistryPrompt) -> (Bytes, Bytes);

/// One cached read: the prompt, its renderer, and the door's encoding of it.
#[derive(Debug)]
pub struct CachedPrompt {
    /// The prompt, for render and run.
    pub prompt: RegistryPrompt,
    /// Renders it with the partials of its version.
    pub renderer: Renderer,
    /// The encoded prompt ([`Encoder`]; empty without one).
    pub body: Bytes,
    /// The quoted entity tag of `body` (empty without an encoder), shared like the body
    /// so that a response's `ETag` header costs no copy.
    pub etag: Bytes,
}

/// Where a read came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// A fresh cached value.
    Hit,
    /// Read from PostgreSQL now.
    Miss,
    /// Older than the TTL, changed by a sync while the database does not answer, or the
    /// database is unreachable: may be stale.
    Stale,
}

impl Source {
    /// `hit`, `miss` or `stale` (the `result` label of the cache's metric).
    pub fn as_str(self) -> &'static str {
        match self {
            Source::Hit => "hit",
            Source::Miss => "miss",
            Source::Stale => "stale",
        }
    }
}

struct Entry {
    value: Arc<CachedPrompt>,
    fetched_at: Instant,
    refreshing: Arc<AtomicBool>,
    /// A sync published since it was read: read it again before using it, and keep it
    /// only as the last good copy.
    changed: bool,
}

/// The cache and the database connection it reads through.
pub struct RegistryCache {
    entries: RwLock<HashMap<String, Entry>>,
    ttl: Duration,
    db: Db,
    encoder: Option<Encoder>,
    reads: Reads,
}

/// The counters of [`crate::telemetry::CACHE_READS`] by result, made once with the cache
/// (from the metrics recorder installed then) so that a read does not look them up.
struct Reads {
    hit: metrics::Counter,
    miss: metrics::Counter,
    stale: metrics::Counter,
}

impl Reads {
    fn new() -> Reads {
        let counter = |source: Source| crate::telemetry::cache_read_counter(source.as_str());
        Reads {
            hit: counter(Source::Hit),
            miss: counter(Source::Miss),
            stale: counter(Source::Stale),
        }
    }

    fn count(&self, source: Source) {
        match source {
            Source::Hit => &self.hit,
            Source::Miss => &self.miss,
            Source::Stale => &self.stale,
        }
        .increment(1);
    }
}

impl std::fmt::Debug for RegistryCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RegistryCache")
            .field("ttl", &self.ttl)
            .finish_non_exhaustive()
    }
}

/// The key of a read: the prompt as asked for and the selector (one allocation, no
/// formatting machinery: every read makes one).
fn key_of(query: &str, selector: &Selector) -> String {
    let mut key = String::with_capacity(query.len() + 24);
    key.push_str(query);
    key.push('\0');
    match selector {
        Selector::Latest => key.push_str("latest"),
        Selector::Version(n) => {
            key.push('v');
            key.push_str(&n.to_string());
        }
        Selector::Environment(e) => {
            key.push('e');
            key.push_str(e);
        }
        Selector::Canary(e) => {
            key.push('c');
            key.push_str(e);
        }
    }
    key
}

impl RegistryCache {
    /// A cache reading from `url` (the replica when `[serve] read_database_url` is set),
    /// copies fresh for `ttl`. It counts its reads on the metrics recorder installed when it
    /// is made: install the recorder first.
    pub fn new(url: String, ttl: Duration) -> RegistryCache {
        RegistryCache {
            entries: RwLock::new(HashMap::new()),
            ttl,
            db: Db::new(url),
            encoder: None,
            reads: Reads::new(),
        }
    }

    /// The cache encoding every copy it reads with `encoder`.
    #[must_use]
    pub fn with_encoder(mut self, encoder: Encoder) -> RegistryCache {
        self.encoder = Some(encoder);
        self
    }

    /// The database handle.
    pub fn db(&self) -> &Db {
        &self.db
    }

    /// A sync published: every copy is read again on its next use (and kept as the last
    /// good one), and the connection is opened again, since the schema it met may have
    /// been migrated since.
    pub fn changed(&self) {
        crate::telemetry::count_invalidation("everything");
        if let Ok(mut entries) = self.entries.write() {
            for entry in entries.values_mut() {
                entry.changed = true;
            }
        }
        self.db.reset();
    }

    /// A sync changed `prompts` (service, name) only: their copies are read again on
    /// their next use, and so is a copy asked for by bare name whose name is among them
    /// (a new prompt may make that name ambiguous); every other copy stays fresh.
    pub fn changed_prompts(&self, prompts: &[(String, String)]) {
        crate::telemetry::count_invalidation("keys");
        if prompts.is_empty() {
            return;
        }
        let pairs: std::collections::HashSet<(&str, &str)> = prompts
            .iter()
            .map(|(service, name)| (service.as_str(), name.as_str()))
            .collect();
        let names: std::collections::HashSet<&str> = pairs.iter().map(|(_, n)| *n).collect();
        if let Ok(mut entries) = self.entries.write() {
            for (key, entry) in entries.iter_mut() {
                let prompt = &entry.value.prompt;
                let query = key.split('\0').next().unwrap_or_default();
                let bare = !query.contains('/');
                if pairs.contains(&(prompt.service.as_str(), prompt.name.as_str()))
                    || (bare && names.contains(query))
                {
                    entry.changed = true;
                }
            }
        }
    }

    /// Applies one notification's payload ([`super::notice`]): drops the prompts it
    /// names, or everything when it names none or does not parse.
    pub fn notified(&self, payload: &str) {
        match super::notice::parse(payload) {
            Some(prompts) => self.changed_prompts(&prompts),
            None => self.changed(),
        }
    }

    /// The prompt `query` (`name` or `service/name`) at `selector`, from the cache when
    /// fresh; an expired copy is returned at once while one background task per key
    /// refreshes it.
    pub async fn get(
        self: &Arc<Self>,
        query: &str,
        selector: &Selector,
    ) -> Result<(Arc<CachedPrompt>, Source), RegistryError> {
        let key = key_of(query, selector);
        let found = self.entries.read().ok().and_then(|entries| {
            entries.get(&key).map(|entry| {
                (
                    entry.value.clone(),
                    entry.changed,
                    entry.fetched_at.elapsed() < self.ttl,
                    entry.refreshing.clone(),
                )
            })
        });
        // The database reads are boxed: their futures are large, and a request that finds
        // its copy fresh (the hot path) should neither carry nor copy them.
        let result = match found {
            None => Box::pin(self.read(query, selector, &key)).await,
            Some((last_good, true, _, _)) => {
                Box::pin(self.read_again(query, selector, &key, last_good)).await
            }
            Some((value, false, true, _)) => {
                let source = if self.db.is_up() {
                    Source::Hit
                } else {
                    Source::Stale
                };
                Ok((value, source))
            }
            Some((value, false, false, refreshing)) => {
                if !refreshing.swap(true, Ordering::AcqRel) {
                    self.refresh(query, selector, key, refreshing);
                }
                Ok((value, Source::Stale))
            }
        };
        if let Ok((_, source)) = &result {
            self.reads.count(*source);
        }
        result
    }

    /// Reads a copy from the database and keeps it.
    async fn read(
        &self,
        query: &str,
        selector: &Selector,
        key: &str,
    ) -> Result<(Arc<CachedPrompt>, Source), RegistryError> {
        let value = self.load(query, selector).await?;
        Ok((self.insert(key, value), Source::Miss))
    }

    /// A copy a sync changed: read again, or, when the database does not answer, the last
    /// good copy, served stale from then on (refreshed in the background) rather than every
    /// read waiting on a database that does not answer.
    async fn read_again(
        &self,
        query: &str,
        selector: &Selector,
        key: &str,
        last_good: Arc<CachedPrompt>,
    ) -> Result<(Arc<CachedPrompt>, Source), RegistryError> {
        match self.read(query, selector, key).await {
            Err(err) if err.is_external() => {
                if let Ok(mut entries) = self.entries.write()
                    && let Some(entry) = entries.get_mut(key)
                {
                    entry.changed = false;
                    entry.fetched_at = Instant::now()
                        .checked_sub(self.ttl)
                        .unwrap_or(entry.fetched_at);
                }
                Ok((last_good, Source::Stale))
            }
            other => other,
        }
    }

    /// Refreshes `key` in a background task.
    fn refresh(
        self: &Arc<Self>,
        query: &str,
        selector: &Selector,
        key: String,
        refreshing: Arc<AtomicBool>,
    ) {
        let cache = self.clone();
        let query = query.to_owned();
        let selector = selector.clone();
        tokio::spawn(async move {
            match cache.load(&query, &selector).await {
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

    async fn load(&self, query: &str, selector: &Selector) -> Result<CachedPrompt, RegistryError> {
        let encoder = self.encoder;
        self.db
            .read(|registry| async move {
                let prompt = registry.get_prompt(query, selector).await?;
                let renderer = prompt.renderer();
                let (body, etag) = encoder.map(|encode| encode(&prompt)).unwrap_or_default();
                Ok(CachedPrompt {
                    prompt,
                    renderer,
                    body,
                    etag,
                })
            })
            .await
    }

    fn insert(&self, key: &str, value: CachedPrompt) -> Arc<CachedPrompt> {
        let value = Arc::new(value);
        if let Ok(mut entries) = self.entries.write() {
            entries.insert(
                key.to_owned(),
                Entry {
                    value: value.clone(),
                    fetched_at: Instant::now(),
                    refreshing: Arc::new(AtomicBool::new(false)),
                    changed: false,
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

    /// Drops the open connection (when no read holds the lock): the next read opens one.
    fn reset(&self) {
        if let Ok(mut current) = self.current.try_lock() {
            current.registry = None;
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
        let result = super::bounded(read(registry.clone())).await;
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

/// Listens on [`CHANNEL`] with a dedicated connection to `url`, reconnecting after a
/// failure, and tells `cache` that the registry changed on every notification (and after
/// every reconnection, since notifications may have been missed meanwhile). Runs until
/// the task is dropped.
pub async fn listen(cache: Arc<RegistryCache>, url: String) {
    let mut first = true;
    loop {
        if let Err(err) = listen_once(&cache, &url, first).await {
            tracing::warn!(error = %err, "LISTEN connection lost; reconnecting");
        }
        first = false;
        cache.db.set_up(false);
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

async fn listen_once(cache: &RegistryCache, url: &str, first: bool) -> Result<(), String> {
    let config = super::config_of(url).map_err(|err| err.to_string())?;
    let limit = super::timeouts().connect;
    let late = || format!("no connection within {} s", limit.as_secs_f64());
    let (client, mut connection) =
        tokio::time::timeout(limit, config.connect(tokio_postgres::NoTls))
            .await
            .map_err(|_| late())?
            .map_err(|err| super::describe(&err))?;
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
            .map_err(|err| super::describe(&err))?;
        cache.db.set_up(true);
        if !first {
            cache.changed();
        }
        tracing::info!(channel = CHANNEL, "listening for sync notifications");
        while let Some(message) = receiver.recv().await {
            match message {
                Some(tokio_postgres::AsyncMessage::Notification(notice)) => {
                    tracing::info!(
                        payload = notice.payload(),
                        "sync notification: cached prompts changed"
                    );
                    cache.notified(notice.payload());
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{Body, Definition};

    fn prompt(service: &str, name: &str) -> CachedPrompt {
        let definition = Definition {
            model: "m".to_owned(),
            parameters: Default::default(),
            variables: Default::default(),
            body: Body::Template("t".to_owned()),
        };
        CachedPrompt {
            prompt: RegistryPrompt {
                id: uuid::Uuid::nil(),
                source: "s".to_owned(),
                service: service.to_owned(),
                name: name.to_owned(),
                version: 1,
                model: "m".to_owned(),
                environment: None,
                canary_weight: None,
                side: None,
                definition,
                commit_sha: String::new(),
                commit_message: None,
                created_by: None,
                created_at: None,
                archived: false,
                partials: Default::default(),
                monitor: Vec::new(),
            },
            renderer: Renderer::new(Arc::new(Default::default())),
            body: Bytes::new(),
            etag: Bytes::new(),
        }
    }

    fn changed(cache: &RegistryCache) -> Vec<String> {
        let entries = cache.entries.read().expect("lock");
        let mut keys: Vec<String> = entries
            .iter()
            .filter(|(_, e)| e.changed)
            .map(|(k, _)| k.replace('\0', " "))
            .collect();
        keys.sort();
        keys
    }

    #[test]
    fn a_notice_naming_prompts_drops_only_theirs_and_their_bare_names() {
        let cache = RegistryCache::new("postgres://unused".to_owned(), Duration::from_secs(60));
        for (query, service, name) in [
            ("a/x", "a", "x"),
            ("src:a/x", "a", "x"),
            ("x", "b", "x"),
            ("b/y", "b", "y"),
            ("y", "b", "y"),
        ] {
            cache.insert(&key_of(query, &Selector::Latest), prompt(service, name));
        }
        cache.notified(r#"{"source":"s","branch":"main","commit":"c","previous":null,"versions_added":1,"prompts":[["a","x"]],"part":1,"parts":1}"#);
        assert_eq!(
            changed(&cache),
            ["a/x latest", "src:a/x latest", "x latest"]
        );
        cache.notified("not json");
        assert_eq!(changed(&cache).len(), 5);
    }
}
