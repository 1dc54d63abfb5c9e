//! Where the router reads prompts from: the Git repository, the PostgreSQL registry (cached,
//! stale-while-revalidate) or an offline bundle written by `promptctl export`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::RouterError;
use crate::config::Config;
use crate::environments::{Environments, resolve_definition};
use crate::history::History;
use crate::registry::{Registry, Selector};

/// Bundle files larger than this are refused: every environment's prompts of a large
/// repository fit in a few megabytes.
pub const MAX_BUNDLE_BYTES: u64 = 256 * 1024 * 1024;
use crate::render::Renderer;
use crate::repo::{Assertion, Definition, PromptId, Snapshot};

/// One prompt as one environment runs it: what the router renders and calls.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ResolvedPrompt {
    /// The service.
    pub service: String,
    /// The name.
    pub name: String,
    /// The environment (`None`: the prompt's latest version and own model).
    pub environment: Option<String>,
    /// The version (`None`: not committed yet).
    pub version: Option<u32>,
    /// The model to call first.
    pub model: String,
    /// The definition, the environment's model applied.
    pub definition: Definition,
    /// The partials its templates may include.
    #[serde(default)]
    pub partials: BTreeMap<String, String>,
    /// The `monitor` assertions that score sampled runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub monitor: Vec<Assertion>,
}

impl ResolvedPrompt {
    /// `service/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.service, self.name)
    }
}

/// A resolved prompt with its compiled renderer, shared between calls.
#[derive(Debug)]
pub(crate) struct Ready {
    pub prompt: ResolvedPrompt,
    pub renderer: Renderer,
}

impl Ready {
    fn new(prompt: ResolvedPrompt) -> Arc<Ready> {
        let renderer = Renderer::new(Arc::new(prompt.partials.clone()));
        Arc::new(Ready { prompt, renderer })
    }
}

/// Every prompt of every environment, resolved: the repository source and the bundle.
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// `(service/name, env)` → prompt; env `""` is the prompt's latest version.
    entries: HashMap<(String, String), Arc<Ready>>,
    /// name → `service/name` (`None` when ambiguous).
    names: HashMap<String, Option<String>>,
    /// The environments the file names.
    environments: Vec<String>,
}

impl Table {
    fn insert(&mut self, prompt: ResolvedPrompt) {
        let id = prompt.id();
        match self.names.get(&prompt.name) {
            Some(Some(other)) if *other != id => {
                self.names.insert(prompt.name.clone(), None);
            }
            Some(_) => {}
            None => {
                self.names.insert(prompt.name.clone(), Some(id.clone()));
            }
        }
        let env = prompt.environment.clone().unwrap_or_default();
        if !env.is_empty() && !self.environments.contains(&env) {
            self.environments.push(env.clone());
        }
        self.entries.insert((id, env), Ready::new(prompt));
    }

    fn lookup(&self, query: &str, env: &str) -> Result<Arc<Ready>, RouterError> {
        let id = if query.contains('/') {
            query.to_owned()
        } else {
            match self.names.get(query) {
                Some(Some(id)) => id.clone(),
                Some(None) => {
                    return Err(RouterError::UnknownPrompt(format!(
                        "{query} is ambiguous: name it as service/name"
                    )));
                }
                None => return Err(RouterError::UnknownPrompt(format!("no prompt {query}"))),
            }
        };
        if let Some(found) = self.entries.get(&(id.clone(), env.to_owned())) {
            return Ok(found.clone());
        }
        // An environment the file does not pin the prompt in runs its latest version on
        // its own model (as `render --env` and the registry do).
        self.entries
            .get(&(id.clone(), String::new()))
            .cloned()
            .ok_or_else(|| RouterError::UnknownPrompt(format!("no prompt {id}")))
    }
}

/// An offline bundle: every environment's resolved prompts in one JSON file.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Bundle {
    /// The format version (1).
    pub format: u32,
    /// The commit the bundle was made from.
    #[serde(default)]
    pub commit: Option<String>,
    /// The environments the bundle holds.
    pub environments: Vec<String>,
    /// The prompts; an entry without environment is the prompt's latest version.
    pub prompts: Vec<ResolvedPrompt>,
}

impl Bundle {
    /// Resolves every prompt of the repository for every environment (or only `only`).
    pub fn from_repository(
        config: &Config,
        rev: Option<&str>,
        only: Option<&str>,
    ) -> Result<Bundle, RouterError> {
        let history =
            History::load(config, rev, true).map_err(|e| RouterError::Source(e.to_string()))?;
        let snapshot =
            Snapshot::load_working_tree(config).map_err(|e| RouterError::Source(e.to_string()))?;
        let environments = Environments::load(config)
            .map_err(|d| RouterError::Source(d.to_string()))?
            .unwrap_or_else(|| Environments {
                path: config.environments_file(),
                source: String::new(),
                prompts_at: None,
                prompts: Vec::new(),
            });
        let mut names = environments.environment_names();
        if let Some(only) = only {
            names.retain(|n| n == only);
            if names.is_empty() {
                names.push(only.to_owned());
            }
        }
        let mut ids: Vec<PromptId> = history
            .prompts
            .iter()
            .filter(|(_, p)| !p.versions.is_empty())
            .map(|(id, _)| id.clone())
            .collect();
        for prompt in &snapshot.prompts {
            if let Some(id) = &prompt.id
                && prompt.definition.is_some()
                && !ids.contains(id)
            {
                ids.push(id.clone());
            }
        }
        ids.sort();
        let mut prompts = Vec::new();
        for id in &ids {
            let loaded = snapshot.prompts.iter().find(|p| p.id.as_ref() == Some(id));
            if history
                .prompts
                .get(id)
                .is_some_and(|p| p.latest().is_none())
                && loaded.is_none()
            {
                continue;
            }
            let working = loaded
                .and_then(|p| p.definition.as_ref())
                .map(|d| (d, &snapshot.partials));
            let monitor: Vec<Assertion> = loaded
                .and_then(|p| p.file.monitor.as_ref())
                .map(|m| m.iter().map(|a| a.value.clone()).collect())
                .unwrap_or_default();
            let mut envs: Vec<Option<String>> = vec![None];
            envs.extend(names.iter().cloned().map(Some));
            for env in envs {
                let Ok(resolved) = resolve_definition(
                    &history,
                    Some(&environments),
                    id,
                    env.as_deref().unwrap_or(""),
                    working,
                ) else {
                    continue;
                };
                let (resolved, environment) = match env {
                    Some(env) => (resolved, Some(env)),
                    None => (resolved, None),
                };
                prompts.push(ResolvedPrompt {
                    service: id.service.clone(),
                    name: id.name.clone(),
                    environment,
                    version: resolved.version,
                    model: resolved.model.clone(),
                    definition: resolved.definition,
                    partials: (*resolved.partials).clone(),
                    monitor: monitor.clone(),
                });
            }
        }
        Ok(Bundle {
            format: 1,
            commit: history.tip.clone(),
            environments: names,
            prompts,
        })
    }

    /// Reads a bundle file (a symbolic link is followed: deployments mount files through
    /// them), refusing one over [`MAX_BUNDLE_BYTES`].
    pub fn read(path: &Path) -> Result<Bundle, RouterError> {
        let text = crate::files::read_bounded_text(path, MAX_BUNDLE_BYTES)
            .map_err(|e| RouterError::Source(e.to_string()))?;
        serde_json::from_str(&text)
            .map_err(|e| RouterError::Source(format!("{} is not a bundle: {e}", path.display())))
    }

    pub(crate) fn into_table(self) -> Table {
        let mut table = Table {
            environments: self.environments,
            ..Table::default()
        };
        for prompt in self.prompts {
            table.insert(prompt);
        }
        table
    }
}

/// Where prompts come from.
pub enum PromptSource {
    /// The repository (working tree and history) or an exported bundle, resolved once.
    Static(Box<Bundle>),
    /// The PostgreSQL registry, cached with a TTL and refreshed in the background; the
    /// bundle, when given, answers until the database has.
    Registry {
        /// The database URL.
        url: String,
        /// How long a cached definition is fresh.
        ttl: Duration,
        /// The offline bundle to boot from.
        fallback: Option<Box<Bundle>>,
    },
}

impl PromptSource {
    /// The repository's working tree and history at `rev` (default `HEAD`).
    pub fn repository(config: &Config, rev: Option<&str>) -> Result<PromptSource, RouterError> {
        Ok(PromptSource::Static(Box::new(Bundle::from_repository(
            config, rev, None,
        )?)))
    }

    /// An offline bundle written by `promptctl export`.
    pub fn bundle(path: &Path) -> Result<PromptSource, RouterError> {
        Ok(PromptSource::Static(Box::new(Bundle::read(path)?)))
    }

    /// The PostgreSQL registry, definitions cached for `ttl`.
    pub fn registry(url: impl Into<String>, ttl: Duration) -> PromptSource {
        PromptSource::Registry {
            url: url.into(),
            ttl,
            fallback: None,
        }
    }
}

struct CacheEntry {
    ready: Arc<Ready>,
    fetched: Instant,
    refreshing: bool,
    /// The registry changed since it was fetched: read it again before using it, and
    /// keep it only as the last good copy.
    changed: bool,
}

/// The registry source: a TTL cache, stale-while-revalidate, last good copy on failure.
pub(crate) struct RegistryCache {
    url: String,
    ttl: Duration,
    fallback: Option<Table>,
    client: tokio::sync::Mutex<Option<Arc<Registry>>>,
    entries: Mutex<HashMap<(String, String), CacheEntry>>,
}

impl RegistryCache {
    async fn registry(&self) -> Result<Arc<Registry>, RouterError> {
        let mut guard = self.client.lock().await;
        if let Some(registry) = guard.as_ref() {
            return Ok(registry.clone());
        }
        let registry = Registry::connect(&self.url)
            .await
            .map_err(|e| RouterError::Source(e.to_string()))?;
        let registry = Arc::new(registry);
        *guard = Some(registry.clone());
        Ok(registry)
    }

    async fn fetch(&self, query: &str, env: &str) -> Result<Arc<Ready>, RouterError> {
        let selector = if env.is_empty() {
            Selector::Latest
        } else {
            Selector::Environment(env.to_owned())
        };
        self.fetch_selected(query, &selector).await
    }

    /// The prompt `selector` picks, read from the registry (not cached).
    async fn fetch_selected(
        &self,
        query: &str,
        selector: &Selector,
    ) -> Result<Arc<Ready>, RouterError> {
        let registry = self.registry().await?;
        match registry.get_prompt(query, selector).await {
            Ok(found) => Ok(Ready::new(ResolvedPrompt {
                service: found.service,
                name: found.name,
                environment: found.environment,
                version: Some(found.version),
                model: found.model,
                definition: found.definition,
                partials: found.partials,
                monitor: found.monitor,
            })),
            Err(err) => {
                if err.is_external() {
                    if err.is_unreachable() {
                        *self.client.lock().await = None;
                    }
                    Err(RouterError::Source(err.to_string()))
                } else {
                    Err(RouterError::UnknownPrompt(err.to_string()))
                }
            }
        }
    }

    pub(crate) async fn get(
        self: &Arc<Self>,
        query: &str,
        env: &str,
    ) -> Result<Arc<Ready>, RouterError> {
        let key = (query.to_owned(), env.to_owned());
        let mut last_good = None;
        let stale = {
            let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
            match entries.get_mut(&key) {
                Some(entry) if entry.changed => {
                    last_good = Some(entry.ready.clone());
                    None
                }
                Some(entry) if entry.fetched.elapsed() < self.ttl => {
                    return Ok(entry.ready.clone());
                }
                Some(entry) => {
                    if !entry.refreshing {
                        entry.refreshing = true;
                        let this = self.clone();
                        let key = key.clone();
                        tokio::spawn(async move { this.refresh(key).await });
                    }
                    Some(entry.ready.clone())
                }
                None => None,
            }
        };
        if let Some(stale) = stale {
            return Ok(stale);
        }
        match self.fetch(query, env).await {
            Ok(ready) => {
                self.entries
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .insert(
                        key,
                        CacheEntry {
                            ready: ready.clone(),
                            fetched: Instant::now(),
                            refreshing: false,
                            changed: false,
                        },
                    );
                Ok(ready)
            }
            Err(err @ RouterError::Source(_)) => match (last_good, &self.fallback) {
                (Some(ready), _) => {
                    // Served stale from now on, refreshed in the background, rather than
                    // every call waiting on a database that does not answer.
                    let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some(entry) = entries.get_mut(&key) {
                        entry.changed = false;
                        entry.fetched = Instant::now()
                            .checked_sub(self.ttl)
                            .unwrap_or(entry.fetched);
                    }
                    Ok(ready)
                }
                (None, Some(table)) => table.lookup(query, env),
                (None, None) => Err(err),
            },
            Err(err) => Err(err),
        }
    }

    /// Marks every cached prompt as changed: the next call of each reads the registry
    /// again (a sync has published), falling back to the copy it had if the database does
    /// not answer.
    pub(crate) fn changed(&self) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        for entry in entries.values_mut() {
            entry.changed = true;
        }
        // The connection knows the schema it met when it opened; a sync may have
        // migrated it since (the monitor assertions of migration 3): connect again.
        if let Ok(mut client) = self.client.try_lock() {
            *client = None;
        }
    }

    async fn refresh(self: Arc<Self>, key: (String, String)) {
        let result = self.fetch(&key.0, &key.1).await;
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = entries.get_mut(&key) {
            entry.refreshing = false;
            if let Ok(ready) = result {
                entry.ready = ready;
                entry.fetched = Instant::now();
            }
        }
    }
}

/// The router's prompt lookup.
pub(crate) enum Source {
    Static(Table),
    Registry(Arc<RegistryCache>),
}

impl Source {
    pub(crate) fn new(source: PromptSource) -> Source {
        match source {
            PromptSource::Static(bundle) => Source::Static(bundle.into_table()),
            PromptSource::Registry { url, ttl, fallback } => {
                Source::Registry(Arc::new(RegistryCache {
                    url,
                    ttl,
                    fallback: fallback.map(|b| b.into_table()),
                    client: tokio::sync::Mutex::new(None),
                    entries: Mutex::new(HashMap::new()),
                }))
            }
        }
    }

    pub(crate) async fn get(&self, query: &str, env: &str) -> Result<Arc<Ready>, RouterError> {
        match self {
            Source::Static(table) => table.lookup(query, env),
            Source::Registry(cache) => cache.get(query, env).await,
        }
    }

    /// Version `version` of a prompt on its own model, read from the registry each time
    /// (a run calls a model, so one more query costs little); a static source has no
    /// versions to choose from.
    pub(crate) async fn get_version(
        &self,
        query: &str,
        version: u32,
    ) -> Result<Arc<Ready>, RouterError> {
        match self {
            Source::Static(_) => Err(RouterError::UnknownPrompt(format!(
                "{query}: choosing version {version} needs the registry"
            ))),
            Source::Registry(cache) => {
                cache
                    .fetch_selected(query, &Selector::Version(version))
                    .await
            }
        }
    }

    /// The registry changed (a static source never does).
    pub(crate) fn changed(&self) {
        if let Source::Registry(cache) = self {
            cache.changed();
        }
    }
}
