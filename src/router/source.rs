//! Where the router reads prompts from: the Git repository, the PostgreSQL registry (through
//! the one read cache, [`crate::registry::cache`]) or an offline bundle written by
//! `promptctl export`.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::RouterError;
use crate::config::Config;
use crate::environments::{Environments, Side, resolve_definition};
use crate::history::History;
use crate::registry::Selector;
use crate::registry::cache::{CachedPrompt, RegistryCache};

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
    /// The side of the environment's canary split this entry runs (`None`: the
    /// environment has no split).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub side: Option<Side>,
    /// For the environment's own entry (its baseline): the percentage of calls its canary
    /// takes, when it has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub canary_weight: Option<f64>,
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
    /// A prompt as the registry gave it for `environment`.
    fn of_registry(
        read: crate::registry::RegistryPrompt,
        environment: Option<&String>,
    ) -> ResolvedPrompt {
        ResolvedPrompt {
            service: read.service,
            name: read.name,
            environment: environment.cloned(),
            side: read.side,
            canary_weight: read.canary_weight,
            version: Some(read.version),
            model: read.model,
            definition: read.definition,
            partials: read.partials,
            monitor: read.monitor,
        }
    }

    /// `service/name`.
    pub fn id(&self) -> String {
        format!("{}/{}", self.service, self.name)
    }
}

/// A resolved prompt of a static source with its compiled renderer, shared between calls.
#[derive(Debug)]
pub(crate) struct StaticPrompt {
    prompt: ResolvedPrompt,
    renderer: Renderer,
}

/// A prompt ready to run: from a static source, or a copy in the registry cache.
#[derive(Debug, Clone)]
pub(crate) enum Ready {
    Static(Arc<StaticPrompt>),
    Registry(Arc<CachedPrompt>),
}

impl Ready {
    fn new(prompt: ResolvedPrompt) -> Ready {
        let renderer = Renderer::new(Arc::new(prompt.partials.clone()));
        Ready::Static(Arc::new(StaticPrompt { prompt, renderer }))
    }

    /// What the router reads of it.
    pub(crate) fn target(&self) -> Target<'_> {
        match self {
            Ready::Static(ready) => Target {
                source: "",
                side: ready.prompt.side,
                canary_weight: ready.prompt.canary_weight,
                service: &ready.prompt.service,
                name: &ready.prompt.name,
                version: ready.prompt.version,
                model: &ready.prompt.model,
                definition: &ready.prompt.definition,
                monitor: &ready.prompt.monitor,
                renderer: &ready.renderer,
            },
            Ready::Registry(cached) => Target {
                source: &cached.prompt.source,
                side: cached.prompt.side,
                canary_weight: cached.prompt.canary_weight,
                service: &cached.prompt.service,
                name: &cached.prompt.name,
                version: Some(cached.prompt.version),
                model: &cached.prompt.model,
                definition: &cached.prompt.definition,
                monitor: &cached.prompt.monitor,
                renderer: &cached.renderer,
            },
        }
    }

    /// A copy as a [`ResolvedPrompt`].
    pub(crate) fn to_resolved(&self) -> ResolvedPrompt {
        match self {
            Ready::Static(ready) => ready.prompt.clone(),
            Ready::Registry(cached) => {
                let found = &cached.prompt;
                ResolvedPrompt {
                    service: found.service.clone(),
                    name: found.name.clone(),
                    environment: found.environment.clone(),
                    side: found.side,
                    canary_weight: found.canary_weight,
                    version: Some(found.version),
                    model: found.model.clone(),
                    definition: found.definition.clone(),
                    partials: found.partials.clone(),
                    monitor: found.monitor.clone(),
                }
            }
        }
    }
}

/// The parts of a prompt that running it reads.
pub(crate) struct Target<'a> {
    /// The source that published it (empty outside the registry).
    pub source: &'a str,
    /// The side of its environment's canary split (`None`: no split).
    pub side: Option<Side>,
    /// The percentage of calls the environment's canary takes (on the baseline's entry).
    pub canary_weight: Option<f64>,
    pub service: &'a str,
    pub name: &'a str,
    pub version: Option<u32>,
    pub model: &'a str,
    pub definition: &'a Definition,
    pub monitor: &'a [Assertion],
    pub renderer: &'a Renderer,
}

impl Target<'_> {
    /// `service/name`.
    pub(crate) fn id(&self) -> String {
        format!("{}/{}", self.service, self.name)
    }
}

/// Every prompt of every environment, resolved: the repository source and the bundle.
#[derive(Debug, Default)]
pub(crate) struct Table {
    /// `(service/name, env, side)` → prompt; env `""` is the prompt's latest version.
    entries: HashMap<(String, String, Side), Ready>,
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
        let side = prompt.side.unwrap_or(Side::Baseline);
        self.entries.insert((id, env, side), Ready::new(prompt));
    }

    fn lookup(&self, query: &str, env: &str, side: Side) -> Result<Ready, RouterError> {
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
        if let Some(found) = self.entries.get(&(id.clone(), env.to_owned(), side)) {
            return Ok(found.clone());
        }
        if side == Side::Canary {
            return Err(RouterError::UnknownPrompt(format!(
                "{id} has no canary in {env}"
            )));
        }
        // An environment the file does not pin the prompt in runs its latest version on
        // its own model (as `render --env` and the registry do).
        self.entries
            .get(&(id.clone(), String::new(), Side::Baseline))
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
    /// Every prompt of the PostgreSQL registry, of every source (or of `source` only),
    /// resolved for every environment a prompt is pinned in (or only `only`): what a
    /// service of the organisation boots from offline. Archived prompts are left out, as
    /// the registry serves none.
    pub async fn from_registry(
        registry: &crate::registry::Registry,
        source: Option<&str>,
        only: Option<&str>,
    ) -> Result<Bundle, crate::registry::RegistryError> {
        use crate::registry::listing::PromptFilter;
        use crate::registry::{RegistryError, Selector};
        if let Some(source) = source {
            if let Some(problem) = crate::registry::sources::source_name_problem(source) {
                return Err(RegistryError::Invalid(format!(
                    "--source {source}: {problem}"
                )));
            }
            registry.require_sources("`export --registry --source`")?;
        }
        let filter = PromptFilter {
            source: source.map(str::to_owned),
            ..PromptFilter::default()
        };
        let mut listed = Vec::new();
        let mut after: Option<(String, String)> = None;
        loop {
            let page = registry.list_prompts(&filter, after.as_ref(), 100).await?;
            after = page
                .entries
                .last()
                .map(|p| (p.service.clone(), p.name.clone()));
            listed.extend(page.entries.into_iter().filter(|p| !p.archived));
            if !page.more {
                break;
            }
        }
        if let (Some(source), true) = (source, listed.is_empty()) {
            let query = "SELECT DISTINCT source FROM prompt_owners ORDER BY 1";
            let rows =
                crate::registry::bounded(async { Ok(registry.client().query(query, &[]).await?) })
                    .await?;
            let known: Vec<String> = rows
                .iter()
                .map(|row| format!("`{}`", row.get::<_, String>(0)))
                .collect();
            return Err(RegistryError::Invalid(format!(
                "the registry holds no prompt of source `{source}`; its sources: {}",
                known.join(", ")
            )));
        }
        let names: Vec<String> = match only {
            Some(only) => vec![only.to_owned()],
            None => listed
                .iter()
                .flat_map(|p| p.environments.keys().cloned())
                .collect::<std::collections::BTreeSet<_>>()
                .into_iter()
                .collect(),
        };
        let mut prompts = Vec::new();
        for prompt in &listed {
            let query = format!("{}/{}", prompt.service, prompt.name);
            let environments = std::iter::once(None).chain(names.iter().map(Some));
            for environment in environments {
                let selector =
                    environment.map_or(Selector::Latest, |e| Selector::Environment(e.clone()));
                let read = registry.get_prompt(&query, &selector).await?;
                let split = read.canary_weight.is_some();
                prompts.push(ResolvedPrompt::of_registry(read, environment));
                if let (true, Some(environment)) = (split, environment) {
                    let canary = Selector::Canary(environment.clone());
                    let read = registry.get_prompt(&query, &canary).await?;
                    prompts.push(ResolvedPrompt::of_registry(read, Some(environment)));
                }
            }
        }
        Ok(Bundle {
            format: 1,
            commit: None,
            environments: names,
            prompts,
        })
    }

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
                let name = env.as_deref().unwrap_or("");
                let weight = environments.canary(id, name).map(|c| c.weight);
                let sides = match weight {
                    Some(_) => &[Side::Baseline, Side::Canary][..],
                    None => &[Side::Baseline][..],
                };
                for &side in sides {
                    let Ok(resolved) =
                        resolve_definition(&history, Some(&environments), id, name, side, working)
                    else {
                        continue;
                    };
                    prompts.push(ResolvedPrompt {
                        service: id.service.clone(),
                        name: id.name.clone(),
                        environment: env.clone(),
                        side: weight.map(|_| side),
                        canary_weight: weight.filter(|_| side == Side::Baseline),
                        version: resolved.version,
                        model: resolved.definition.model.clone(),
                        definition: resolved.definition,
                        partials: (*resolved.partials).clone(),
                        monitor: monitor.clone(),
                    });
                }
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
    /// The PostgreSQL registry through a read cache the caller shares (`serve` reads its
    /// prompts through the same one).
    Cache {
        /// The cache.
        cache: Arc<RegistryCache>,
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

/// The registry source: the read cache, and the bundle that answers while the database
/// has not (a copy the cache holds is served before it).
pub(crate) struct RegistrySource {
    cache: Arc<RegistryCache>,
    fallback: Option<Table>,
}

impl RegistrySource {
    /// The prompt `selector` picks; when the database does not answer and nothing is
    /// cached, the bundle's copy for `env` (none for a chosen version).
    async fn get(
        &self,
        query: &str,
        selector: &Selector,
        env: Option<(&str, Side)>,
    ) -> Result<Ready, RouterError> {
        match self.cache.get(query, selector).await {
            Ok((cached, _)) => Ok(Ready::Registry(cached)),
            Err(err) if err.is_external() => match (&self.fallback, env) {
                (Some(table), Some((env, side))) => table.lookup(query, env, side),
                _ => Err(RouterError::Source(err.to_string())),
            },
            Err(err) => Err(RouterError::UnknownPrompt(err.to_string())),
        }
    }
}

/// The router's prompt lookup.
pub(crate) enum Source {
    Static(Table),
    Registry(RegistrySource),
}

impl Source {
    pub(crate) fn new(source: PromptSource) -> Source {
        let (cache, fallback) = match source {
            PromptSource::Static(bundle) => return Source::Static(bundle.into_table()),
            PromptSource::Registry { url, ttl, fallback } => {
                (Arc::new(RegistryCache::new(url, ttl)), fallback)
            }
            PromptSource::Cache { cache, fallback } => (cache, fallback),
        };
        Source::Registry(RegistrySource {
            cache,
            fallback: fallback.map(|b| b.into_table()),
        })
    }

    /// The version `side` of `env` runs of `query` (`""`: the latest on its own model).
    pub(crate) async fn get(
        &self,
        query: &str,
        env: &str,
        side: Side,
    ) -> Result<Ready, RouterError> {
        match self {
            Source::Static(table) => table.lookup(query, env, side),
            Source::Registry(registry) => {
                let selector = match (env.is_empty(), side) {
                    (true, _) => Selector::Latest,
                    (false, Side::Baseline) => Selector::Environment(env.to_owned()),
                    (false, Side::Canary) => Selector::Canary(env.to_owned()),
                };
                registry.get(query, &selector, Some((env, side))).await
            }
        }
    }

    /// Version `version` of a prompt on its own model, from the registry; a static source
    /// has no versions to choose from.
    pub(crate) async fn get_version(
        &self,
        query: &str,
        version: u32,
    ) -> Result<Ready, RouterError> {
        match self {
            Source::Static(_) => Err(RouterError::UnknownPrompt(format!(
                "{query}: choosing version {version} needs the registry"
            ))),
            Source::Registry(registry) => {
                registry.get(query, &Selector::Version(version), None).await
            }
        }
    }

    /// The registry changed (a static source never does).
    pub(crate) fn changed(&self) {
        if let Source::Registry(registry) = self {
            registry.cache.changed();
        }
    }
}
