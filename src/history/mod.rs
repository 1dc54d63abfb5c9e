//! Prompt versions derived from Git history (SPEC section 2).
//!
//! [`History::load`] walks the first-parent chain of `HEAD` (or a given revision) oldest
//! first and numbers each prompt's versions by changes of its definition (see
//! `tracker` for the rule itself). The walk reads Git objects raw (`walk`), straight from
//! the pack files where it can (`objects`), skips commits whose prompts subtree did not
//! change, parses each blob once (plain YAML with a fast reader, `repo::plain_yaml`), and
//! keeps an index cache in the Git folder (`cache`) so that a run after one new commit
//! reads only that commit.
//!
//! This module knows Git and the prompt file format, nothing of providers, the database or
//! HTTP. It never prints: problems found in old commits come back as [`Problem`]s.

mod base;
mod cache;
pub mod commit;
mod definitions;
pub mod file_changes;
mod objects;
mod tracker;
mod walk;

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use git2::{ErrorCode, Oid, Repository};
use serde::{Deserialize, Serialize};

use crate::config::Config;
use crate::diagnostic::{Diagnostic, display_path};
use crate::repo::{Definition, FileKind, LookupError, Partials, PromptId};
pub use base::{ChangeBase, merge_base, merge_commit_base, root_in_repository, snapshot_at};
use tracker::{Change, Outcome, ParsedBlob, Tracker};

/// Errors reading the history.
#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    /// The project is not inside a Git repository.
    #[error("{} is not inside a Git repository", display_path(.path))]
    NotARepository {
        /// Where the repository was looked for.
        path: PathBuf,
    },
    /// The repository is a shallow clone: its oldest commits are missing, so version
    /// numbers would be wrong.
    #[error("this is a shallow clone: version numbers need the whole history")]
    Shallow,
    /// The revision asked for does not name a commit.
    #[error("`{rev}` does not name a commit: {message}")]
    BadRevision {
        /// What was asked for.
        rev: String,
        /// Git's reason.
        message: String,
    },
    /// The prompts folder is not inside the repository's working tree.
    #[error("prompts folder {} is outside the Git repository {}", display_path(.prompts), display_path(.repository))]
    OutsideRepository {
        /// The prompts folder.
        prompts: PathBuf,
        /// The repository's working tree.
        repository: PathBuf,
    },
    /// A definition the history cache names could not be read back from its blob.
    #[error("cannot read the definition of {} from blob {blob}: {why}", display_path(.path))]
    StaleDefinition {
        /// The prompt file the version was read from.
        path: PathBuf,
        /// The blob the cache names.
        blob: Oid,
        /// What went wrong.
        why: &'static str,
    },
    /// Git failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// A commit that made a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CommitInfo {
    /// The full commit id (40 hex digits).
    pub id: String,
    /// The committer's time, in seconds since the Unix epoch: when the change landed on the
    /// branch (a rebased or merged commit keeps an older author time).
    pub time: i64,
    /// The committer's time zone, in minutes east of UTC.
    pub offset_minutes: i32,
    /// The author's name.
    pub author_name: String,
    /// The author's email.
    pub author_email: String,
    /// The full commit message.
    pub message: String,
}

impl CommitInfo {
    /// The message's first line.
    pub fn summary(&self) -> &str {
        self.message.lines().next().unwrap_or("").trim_end()
    }

    /// The commit time in RFC 3339, in the committer's time zone.
    pub fn time_rfc3339(&self) -> String {
        rfc3339(self.time, self.offset_minutes)
    }
}

/// One version of a prompt.
#[derive(Debug, Clone)]
pub struct Version {
    /// 1, 2, ...
    pub number: u32,
    /// The commit that made it; `None` for uncommitted changes in the working tree.
    pub commit: Option<Arc<CommitInfo>>,
    /// What reached the model (read from Git on first use).
    pub(crate) definition: Arc<StoredDefinition>,
    /// The prompt's file at that commit, relative to the project root.
    pub path: PathBuf,
}

impl Version {
    /// Whether this is the working tree's next version rather than a commit's.
    pub fn is_uncommitted(&self) -> bool {
        self.commit.is_none()
    }

    /// The model the version is written for (known without reading the definition).
    pub fn model(&self) -> &str {
        &self.definition.model
    }

    /// The definition's fingerprint ([`Definition::fingerprint`]), from the digest the
    /// history holds: no blob is parsed.
    pub fn fingerprint(&self) -> String {
        crate::repo::definition::fingerprint_of(self.definition.digest)
    }

    /// What reached the model. A version read from the cache is parsed from its blob on
    /// first use.
    pub fn definition(&self) -> Result<Arc<Definition>, HistoryError> {
        self.definition.get(&self.path)
    }
}

/// A definition as the history keeps it: its digest (what the numbering rule compares) and
/// its model are always at hand; the definition itself is parsed from its blob on demand
/// when it came from the cache, so that a warm run reads no prompt file.
#[derive(Debug)]
pub(crate) struct StoredDefinition {
    /// The blob it was parsed from (for the working tree, a blob not in the repository).
    pub blob: Oid,
    /// A hash of the definition's canonical JSON: equal definitions, equal digests.
    pub digest: u128,
    /// The model.
    pub model: Arc<str>,
    /// The Git folder to read the blob from, for a definition not yet parsed.
    pub git_dir: Option<Arc<Path>>,
    /// The definition, once parsed.
    pub loaded: OnceLock<Arc<Definition>>,
}

impl StoredDefinition {
    /// A definition just parsed from `blob`.
    pub fn parsed(blob: Oid, definition: Definition) -> StoredDefinition {
        StoredDefinition {
            blob,
            digest: definition.digest(),
            model: Arc::from(definition.model.as_str()),
            git_dir: None,
            loaded: OnceLock::from(Arc::new(definition)),
        }
    }

    /// The definition, parsing the blob (`path` names it in errors) if not done yet.
    fn get(&self, path: &Path) -> Result<Arc<Definition>, HistoryError> {
        if let Some(definition) = self.loaded.get() {
            return Ok(definition.clone());
        }
        let stale = |why| HistoryError::StaleDefinition {
            path: path.to_path_buf(),
            blob: self.blob,
            why,
        };
        // Only a definition read from the cache is not loaded, and it has its Git folder.
        let git_dir = self
            .git_dir
            .as_deref()
            .ok_or_else(|| stale("it names no repository"))?;
        let definition = with_repository(git_dir, |repo| {
            let odb = repo.odb()?;
            let object = odb.read(self.blob)?;
            Ok(crate::repo::plain_yaml::read_or_parse(path, object.data()).ok())
        })?
        .and_then(|file| file.definition)
        .ok_or_else(|| stale("it no longer parses"))?;
        if definition.digest() != self.digest {
            return Err(stale("it parses to another definition"));
        }
        Ok(self.loaded.get_or_init(|| Arc::new(definition)).clone())
    }
}

/// Runs `read` with this thread's handle on the repository of `git_dir`, opened once per
/// thread rather than once per definition read.
fn with_repository<T>(
    git_dir: &Path,
    read: impl FnOnce(&Repository) -> Result<T, git2::Error>,
) -> Result<T, HistoryError> {
    thread_local! {
        static OPEN: std::cell::RefCell<Option<(PathBuf, Repository)>> =
            const { std::cell::RefCell::new(None) };
    }
    OPEN.with_borrow_mut(|open| {
        let repo = match open {
            Some((dir, repo)) if dir == git_dir => repo,
            _ => {
                &open
                    .insert((git_dir.to_path_buf(), Repository::open(git_dir)?))
                    .1
            }
        };
        Ok(read(repo)?)
    })
}

/// Every version of one prompt.
#[derive(Debug, Clone)]
pub struct PromptHistory {
    /// The prompt.
    pub id: PromptId,
    /// Its versions, oldest first (`versions[i].number == i + 1`).
    pub versions: Vec<Version>,
    /// Whether no file defines it at the tip any more.
    pub archived: bool,
    /// Its file at the tip (the last one when archived), relative to the project root.
    pub path: PathBuf,
}

impl PromptHistory {
    /// The latest version.
    pub fn latest(&self) -> Option<&Version> {
        self.versions.last()
    }

    /// Version `number`.
    pub fn version(&self, number: u32) -> Option<&Version> {
        let index = usize::try_from(number).ok()?.checked_sub(1)?;
        self.versions.get(index)
    }
}

/// A file that could not be read at some commit.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The commit, `None` for the working tree.
    pub commit: Option<String>,
    /// What is wrong, with the file's path relative to the project root.
    pub diagnostic: Diagnostic,
}

/// What the index cache did for a load.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CacheStatus {
    /// `--no-cache`, or nothing to cache (no commits).
    Disabled,
    /// No cache existed; the history was read in full and cached.
    Created,
    /// The cache matched the tip; nothing was read.
    UpToDate,
    /// The cache was extended by this many new commits.
    Extended(usize),
    /// The cache could not be used (the reason says why) and was rebuilt.
    Rebuilt(String),
}

/// What the working tree changes, compared with the tip.
#[derive(Debug, Clone, Default)]
pub struct Uncommitted {
    /// Prompts whose working-tree definition differs from their latest version: the next
    /// version, marked uncommitted (`commit` is `None`).
    pub versions: BTreeMap<PromptId, Version>,
    /// Prompts that exist at the tip but are deleted in the working tree.
    pub deleted: Vec<PromptId>,
    /// Working-tree files that could not be read.
    pub problems: Vec<Problem>,
}

/// Every prompt's versions at one commit of the repository.
#[derive(Debug, Clone)]
pub struct History {
    /// The commit read (`None`: the repository has no commits yet).
    pub tip: Option<String>,
    /// Every prompt that ever had a version, archived ones included.
    pub prompts: BTreeMap<PromptId, PromptHistory>,
    /// Files that could not be read, in history order.
    pub problems: Vec<Problem>,
    /// What the cache did.
    pub cache: CacheStatus,
    git_dir: PathBuf,
    prompts_rel: Vec<String>,
    at_head: bool,
    /// The paths `git status` reports under the prompts folder, when read along the way.
    status: Option<Vec<String>>,
    tracker: Tracker,
}

impl History {
    /// Reads the history of `rev` (default `HEAD`) of the repository holding
    /// `config.root`, using the index cache under the Git folder unless `use_cache` is
    /// false. A repository without commits, or on an unborn branch, has an empty history.
    pub fn load(
        config: &Config,
        rev: Option<&str>,
        use_cache: bool,
    ) -> Result<History, HistoryError> {
        tune_libgit2();
        // `git status` (for `uncommitted`) needs nothing from the history: it runs on
        // another core while the cache is read, when the history is read at `HEAD`.
        let status_of = match (rev, Repository::discover(&config.root)) {
            (None, Ok(repo)) if repo.workdir().is_some() && !repo.is_shallow() => {
                prompts_relative(&repo, config)
                    .ok()
                    .map(|prompts_rel| (repo.path().to_path_buf(), prompts_rel.join("/")))
            }
            _ => None,
        };
        std::thread::scope(|scope| {
            // A thread the system refuses (address space or process limits) only costs
            // the working tree's status.
            let status = status_of.as_ref().and_then(|(git_dir, prefix)| {
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || -> Result<Vec<String>, git2::Error> {
                        changed_paths(&Repository::open(git_dir)?, prefix)
                    })
                    .ok()
            });
            let mut history = History::load_here(config, rev, use_cache)?;
            if let Some(status) = status
                && history.at_head
                && let Ok(Ok(paths)) = status.join()
            {
                history.status = Some(paths);
            }
            Ok(history)
        })
    }

    fn load_here(
        config: &Config,
        rev: Option<&str>,
        use_cache: bool,
    ) -> Result<History, HistoryError> {
        let repo = base::open(config)?;
        if repo.is_shallow() {
            return Err(HistoryError::Shallow);
        }
        let prompts_rel = prompts_relative(&repo, config)?;
        let tip = resolve(&repo, rev)?;
        let head = resolve(&repo, None).ok().flatten();
        let mut history = History {
            tip: tip.map(|id| id.to_string()),
            prompts: BTreeMap::new(),
            problems: Vec::new(),
            cache: CacheStatus::Disabled,
            git_dir: repo.path().to_path_buf(),
            at_head: rev.is_none() || (tip.is_some() && tip == head),
            status: None,
            tracker: Tracker::new(&config.settings.prompts_dir),
            prompts_rel,
        };
        let Some(tip) = tip else {
            return Ok(history);
        };
        let key = cache::Key {
            prompts_dir: history.prompts_rel.join("/"),
            rev: rev.unwrap_or("HEAD").to_owned(),
        };
        let cached = if use_cache {
            cache::load(&repo, &key, &config.settings.prompts_dir)
        } else {
            cache::Loaded::Missing
        };
        let stop = match &cached {
            cache::Loaded::Hit(state) => Some(state.tip),
            _ => None,
        };
        // A cache at the tip needs no walk at all.
        let up_to_date = stop == Some(tip);
        let known: HashMap<Oid, Arc<ParsedBlob>> = match &cached {
            cache::Loaded::Hit(state) if !up_to_date => state
                .tracker
                .files
                .values()
                .map(|file| (file.blob, file.parsed.clone()))
                .collect(),
            _ => HashMap::new(),
        };
        let walked = if up_to_date {
            Walked {
                steps: Vec::new(),
                commits: 0,
                met_stop: true,
                tip_prompts: None,
                parsed: HashMap::new(),
            }
        } else {
            walk_chain(
                &repo,
                tip,
                stop,
                &history.prompts_rel,
                &config.settings.prompts_dir,
                &known,
            )?
        };
        let met_stop = walked.met_stop;
        let new_commits = walked.commits;
        let mut tip_prompts = walked.tip_prompts;
        let (cached, resumed) = match cached {
            cache::Loaded::Hit(state) if met_stop => {
                if new_commits == 0 {
                    tip_prompts = state.tip_prompts;
                }
                let state = *state;
                (
                    cache::Loaded::Hit(Box::new(cache::State {
                        tracker: Tracker::default(),
                        ..state
                    })),
                    Some(state.tracker),
                )
            }
            other => (other, None),
        };
        history.tracker = resumed.unwrap_or_else(|| Tracker::new(&config.settings.prompts_dir));
        let parsed_now: Vec<Arc<ParsedBlob>> = if use_cache {
            walked.parsed.values().cloned().collect()
        } else {
            Vec::new()
        };
        apply_steps(walked, &known, &mut history.tracker)?;
        if use_cache {
            history.cache = match (cached, met_stop) {
                (cache::Loaded::Hit(_), true) if new_commits == 0 => CacheStatus::UpToDate,
                (cache::Loaded::Hit(_), true) => CacheStatus::Extended(new_commits),
                (cache::Loaded::Hit(_), false) => CacheStatus::Rebuilt(
                    "the cached commit is no longer on the first-parent chain".to_owned(),
                ),
                (cache::Loaded::Missing, _) => CacheStatus::Created,
                (cache::Loaded::Invalid(reason), _) => CacheStatus::Rebuilt(reason),
            };
            if history.cache != CacheStatus::UpToDate {
                // A cache that cannot be written only costs the next run time.
                let _ = cache::store(&repo, &key, tip, tip_prompts, &history.tracker);
                // The definitions parsed on the way, for `load_definitions`; a walk that
                // knew no blob before parsed them all and replaces the store.
                let _ = definitions::store(
                    repo.path(),
                    parsed_now
                        .iter()
                        .filter_map(|parsed| match &parsed.outcome {
                            Outcome::Complete(stored) => stored
                                .loaded
                                .get()
                                .map(|definition| (stored.blob, &**definition)),
                            _ => None,
                        }),
                    known.is_empty(),
                );
            }
        }
        // The prompts and problems move out of the tracker; `uncommitted` lends them back.
        history.prompts = std::mem::take(&mut history.tracker.prompts);
        history.problems = std::mem::take(&mut history.tracker.problems);
        Ok(history)
    }

    /// Finds a prompt, archived ones included, by `name` or `service/name`.
    pub fn find(&self, query: &str) -> Result<&PromptHistory, LookupError> {
        crate::repo::find_by_query(self.prompts.iter(), query)
    }

    /// Whether the history was read at the commit the working tree is on, so that
    /// [`History::uncommitted`] means something.
    pub fn is_at_head(&self) -> bool {
        self.at_head
    }

    /// What the working tree changes compared with the tip: each prompt whose definition
    /// differs gets the next version number, marked uncommitted. Empty when the history was
    /// read at another revision than `HEAD` or the repository has no working tree. Files
    /// are found with Git's status, so only changed files are read and parsed.
    pub fn uncommitted(&self) -> Result<Uncommitted, HistoryError> {
        let mut result = Uncommitted::default();
        if !self.at_head {
            return Ok(result);
        }
        let repo = Repository::open(&self.git_dir)?;
        let Some(workdir) = repo.workdir().map(Path::to_path_buf) else {
            return Ok(result);
        };
        let prefix = self.prompts_rel.join("/");
        let computed;
        let paths = match &self.status {
            Some(paths) => paths,
            None => {
                computed = changed_paths(&repo, &prefix)?;
                &computed
            }
        };
        let mut changes = Vec::new();
        for path in paths {
            let relative = if prefix.is_empty() {
                path.as_str()
            } else {
                match path
                    .strip_prefix(&prefix)
                    .and_then(|rest| rest.strip_prefix('/'))
                {
                    Some(rest) => rest,
                    None => continue,
                }
            };
            if FileKind::of(Path::new(relative)) != Some(FileKind::Prompt) {
                continue;
            }
            let on_disk = workdir.join(path);
            let shown = self.tracker.prompts_dir.join(relative);
            // Read as every command reads the working tree: a symbolic link, FIFO or device
            // is a problem, never followed or read, and a read stops at the size limit.
            let gone = std::fs::symlink_metadata(&on_disk).is_err();
            let new = match crate::repo::read_working_file(&on_disk, &shown) {
                Ok(bytes) => {
                    let blob = Oid::hash_object(git2::ObjectType::Blob, &bytes)?;
                    if self
                        .tracker
                        .files
                        .get(relative)
                        .is_some_and(|f| f.blob == blob)
                    {
                        continue;
                    }
                    Some((blob, Arc::new(ParsedBlob::parse(&shown, blob, &bytes))))
                }
                // Deleted from the working tree.
                Err(_) if gone && !self.tracker.files.contains_key(relative) => continue,
                Err(_) if gone => None,
                Err(diagnostic) => Some((Oid::zero(), Arc::new(ParsedBlob::failed(diagnostic)))),
            };
            changes.push(Change {
                path: relative.to_owned(),
                new,
            });
        }
        if changes.is_empty() {
            return Ok(result);
        }
        changes.sort_by(|a, b| a.path.cmp(&b.path));
        let mut working = Tracker {
            prompts_dir: self.tracker.prompts_dir.clone(),
            files: self.tracker.files.clone(),
            claims: self.tracker.claims.clone(),
            prompts: self.prompts.clone(),
            problems: Vec::new(),
        };
        working.apply(None, changes);
        for (id, prompt) in &working.prompts {
            let before = self.prompts.get(id);
            if prompt.versions.len() > before.map_or(0, |b| b.versions.len())
                && let Some(latest) = prompt.latest()
            {
                result.versions.insert(id.clone(), latest.clone());
            }
            if prompt.archived && before.is_some_and(|b| !b.archived) {
                result.deleted.push(id.clone());
            }
        }
        result.problems = working.problems;
        Ok(result)
    }

    /// Makes sure the definitions of `versions` are at hand, for a caller about to read
    /// many of them (`sync`): those the definitions store holds are read from it, the
    /// others are parsed from their blobs on every core and added to the store. Without
    /// it, each [`Version::definition`] call reads and parses its own blob.
    pub fn load_definitions<'a>(
        &self,
        versions: impl IntoIterator<Item = &'a Version>,
    ) -> Result<(), HistoryError> {
        let mut pending: Vec<(&StoredDefinition, &Path)> = Vec::new();
        let mut seen = std::collections::HashSet::new();
        for version in versions {
            let stored = &*version.definition;
            if stored.loaded.get().is_none() && seen.insert(stored as *const StoredDefinition) {
                pending.push((stored, version.path.as_path()));
            }
        }
        if pending.is_empty() {
            return Ok(());
        }
        let wanted: HashMap<Oid, u128> = pending
            .iter()
            .map(|(stored, _)| (stored.blob, stored.digest))
            .collect();
        let found: HashMap<Oid, Arc<Definition>> = definitions::load(&self.git_dir, &wanted)
            .into_iter()
            .map(|(blob, definition)| (blob, Arc::new(definition)))
            .collect();
        pending.retain(|(stored, _)| match found.get(&stored.blob) {
            Some(definition) => {
                let _ = stored.loaded.set(definition.clone());
                false
            }
            None => true,
        });
        if pending.is_empty() {
            return Ok(());
        }
        crate::parallel::map(&pending, |(stored, path)| stored.get(path).map(drop))
            .into_iter()
            .collect::<Result<(), HistoryError>>()?;
        // A store that cannot be written only costs the next run the parsing.
        let _ = definitions::store(
            &self.git_dir,
            pending.iter().filter_map(|(stored, _)| {
                stored
                    .loaded
                    .get()
                    .map(|definition| (stored.blob, &**definition))
            }),
            false,
        );
        Ok(())
    }

    /// The partials (`.j2`, `.jinja` files of the prompts folder) at `commit`, for
    /// rendering an old version as it was.
    pub fn partials_at(&self, commit: &str) -> Result<Partials, HistoryError> {
        let id = Oid::from_str(commit)?;
        let partials = with_repository(&self.git_dir, |repo| {
            let tree = commit_tree(repo, id)?;
            let odb = repo.odb()?;
            let objects = objects::ObjectReader::libgit2(&odb);
            let mut partials = BTreeMap::new();
            if let Some(root) = walk::subtree(&objects, tree, &self.prompts_rel)? {
                for (path, blob) in walk::files_of_kinds(&objects, root, &[FileKind::Partial])? {
                    let object = objects.read_start(blob, BLOB_LIMIT)?;
                    let shown = self.tracker.prompts_dir.join(&path);
                    if let Ok(text) = crate::repo::file::decode_text(&shown, &object) {
                        partials.insert(path, text);
                    }
                }
            }
            Ok(partials)
        })?;
        Ok(Arc::new(partials))
    }
}

/// The paths `git status` reports (changed, staged, untracked) under `prefix`. Computed as
/// a diff of `HEAD`'s tree (found through the raw commit, see [`resolve`]) against the
/// index and the working tree, because libgit2's own status parses the `HEAD` commit and
/// refuses some that Git reads.
fn changed_paths(repo: &Repository, prefix: &str) -> Result<Vec<String>, git2::Error> {
    let head_tree = match resolve(repo, None) {
        Ok(Some(head)) => Some(repo.find_tree(commit_tree(repo, head)?)?),
        Ok(None) => None,
        Err(HistoryError::Git(err)) => return Err(err),
        Err(err) => return Err(git2::Error::from_str(&err.to_string())),
    };
    let mut options = git2::DiffOptions::new();
    options
        .include_untracked(true)
        .recurse_untracked_dirs(true)
        .include_ignored(false)
        .include_typechange(true)
        .ignore_submodules(true);
    if !prefix.is_empty() {
        options.pathspec(prefix);
    }
    let diff = repo.diff_tree_to_workdir_with_index(head_tree.as_ref(), Some(&mut options))?;
    let mut paths: Vec<String> = diff
        .deltas()
        .flat_map(|delta| [delta.old_file().path_bytes(), delta.new_file().path_bytes()])
        .flatten()
        .map(|path| String::from_utf8_lossy(path).into_owned())
        .collect();
    paths.sort();
    paths.dedup();
    Ok(paths)
}

/// The prompts folder as path components inside the repository.
fn prompts_relative(repo: &Repository, config: &Config) -> Result<Vec<String>, HistoryError> {
    let relative = match repo.workdir() {
        Some(workdir) => {
            let workdir = workdir
                .canonicalize()
                .unwrap_or_else(|_| workdir.to_path_buf());
            let prompts = config.prompts_dir();
            let prompts = prompts.canonicalize().unwrap_or(prompts);
            prompts
                .strip_prefix(&workdir)
                .map_err(|_| HistoryError::OutsideRepository {
                    prompts: prompts.clone(),
                    repository: workdir.clone(),
                })?
                .to_path_buf()
        }
        None => config.settings.prompts_dir.clone(),
    };
    Ok(relative
        .components()
        .filter_map(|component| match component {
            std::path::Component::Normal(part) => Some(part.to_string_lossy().into_owned()),
            _ => None,
        })
        .collect())
}

/// The commit `rev` names, or `HEAD`'s (`None` when `HEAD` is unborn). Branches, tags,
/// full or short ids and `~N` / `^N` steps are resolved from the raw objects, because
/// libgit2 refuses to parse some commits Git reads (an author without an email, an
/// overflowing time); other revision syntax goes through libgit2.
fn resolve(repo: &Repository, rev: Option<&str>) -> Result<Option<Oid>, HistoryError> {
    match rev {
        Some(rev) => resolve_rev(repo, rev)
            .map(Some)
            .map_err(|err| HistoryError::BadRevision {
                rev: rev.to_owned(),
                message: err.message().to_owned(),
            }),
        None => match repo.head() {
            Ok(head) => {
                let id = head
                    .resolve()?
                    .target()
                    .ok_or_else(|| git2::Error::from_str("HEAD points at no object"))?;
                Ok(Some(peel_to_commit(repo, id)?))
            }
            Err(err) if matches!(err.code(), ErrorCode::UnbornBranch | ErrorCode::NotFound) => {
                Ok(None)
            }
            Err(err) => Err(err.into()),
        },
    }
}

/// The commit of a revision: `BASE` followed by `~N` and `^N` steps, `BASE` a reference,
/// a full or short commit id; anything else is left to libgit2.
fn resolve_rev(repo: &Repository, rev: &str) -> Result<Oid, git2::Error> {
    let split = rev.find(['~', '^']).unwrap_or(rev.len());
    let (base, steps) = rev.split_at(split);
    let Some(steps) = parse_steps(steps) else {
        return peel_to_commit(repo, repo.revparse_single(rev)?.id());
    };
    let reference = repo
        .resolve_reference_from_short_name(base)
        .and_then(|reference| reference.resolve())
        .ok()
        .and_then(|reference| reference.target());
    let hex = base.len() >= 4 && base.bytes().all(|b| b.is_ascii_hexdigit());
    let id = match reference {
        Some(id) => id,
        None if hex => repo
            .odb()?
            .exists_prefix(Oid::from_str(base)?, base.len())?,
        None => repo.revparse_single(base)?.id(),
    };
    let mut id = peel_to_commit(repo, id)?;
    let odb = repo.odb()?;
    for (first_parent_times, parent) in steps {
        for _ in 0..first_parent_times {
            id = nth_parent(&odb, id, 1)?;
        }
        if let Some(n) = parent {
            id = nth_parent(&odb, id, n)?;
        }
    }
    Ok(id)
}

/// `~N` and `^N` steps as (first parents to follow, then the Nth parent to take; `^0` is
/// the commit itself), `None` for other syntax (`^{tree}`, `@{1}`...).
fn parse_steps(mut steps: &str) -> Option<Vec<(u32, Option<usize>)>> {
    let mut parsed = Vec::new();
    while let Some(kind) = steps.chars().next() {
        let rest = &steps[1..];
        let digits = rest.bytes().take_while(u8::is_ascii_digit).count();
        let number: Option<u32> = if digits == 0 {
            Some(1)
        } else {
            rest[..digits].parse().ok()
        };
        match kind {
            '~' => parsed.push((number?, None)),
            '^' => parsed.push((0, Some(usize::try_from(number?).ok()?).filter(|n| *n > 0))),
            _ => return None,
        }
        steps = &rest[digits..];
    }
    Some(parsed)
}

/// The `n`th (1-based) parent of the commit `id`, read raw.
fn nth_parent(odb: &git2::Odb<'_>, id: Oid, n: usize) -> Result<Oid, git2::Error> {
    let object = odb.read(id)?;
    object
        .data()
        .split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix(b"parent "))
        .nth(n - 1)
        .and_then(|hex| Oid::from_str(std::str::from_utf8(hex).ok()?).ok())
        .ok_or_else(|| git2::Error::from_str(&format!("commit {id} has no parent {n}")))
}

/// The commit `id` is or (through annotated tags) points at, read from the raw objects.
fn peel_to_commit(repo: &Repository, mut id: Oid) -> Result<Oid, git2::Error> {
    let odb = repo.odb()?;
    // A chain of tags longer than this is a loop.
    for _ in 0..64 {
        let object = odb.read(id)?;
        match object.kind() {
            git2::ObjectType::Commit => return Ok(id),
            git2::ObjectType::Tag => {
                id = object
                    .data()
                    .split(|&b| b == b'\n')
                    .find_map(|line| line.strip_prefix(b"object "))
                    .and_then(|hex| Oid::from_str(std::str::from_utf8(hex).ok()?).ok())
                    .ok_or_else(|| git2::Error::from_str(&format!("tag {id} names no object")))?;
            }
            other => {
                return Err(git2::Error::from_str(&format!(
                    "{id} is a {other}, not a commit"
                )));
            }
        }
    }
    Err(git2::Error::from_str(
        "the tags point at each other in a loop",
    ))
}

/// The root tree of the commit `id`, read from the raw object (see [`resolve`]).
fn commit_tree(repo: &Repository, id: Oid) -> Result<Oid, git2::Error> {
    let odb = repo.odb()?;
    let object = odb.read(id)?;
    walk::commit_header(object.data())
        .map(|(tree, _)| tree)
        .ok_or_else(|| git2::Error::from_str(&format!("commit {id} cannot be decoded")))
}

/// What walking the new part of the chain gave.
struct Walked {
    /// The commits that changed prompt files, oldest first, with what the walk decoded of
    /// them (time, time zone, author, email, message) and their changes.
    steps: Vec<(Oid, walk::CommitDetails, Vec<walk::BlobChange>)>,
    /// How many commits were read.
    commits: usize,
    /// Whether the walk met the cached tip (else it read down to the root commit).
    met_stop: bool,
    /// The tip's prompts subtree.
    tip_prompts: Option<Oid>,
    /// Every new blob, parsed.
    parsed: HashMap<Oid, Arc<ParsedBlob>>,
}

/// How many objects a walk extending a cache reads through libgit2 before it opens the
/// pack indexes (a few hundred commits).
const OPEN_PACKS_AFTER: usize = 1_000;

/// How much of a prompt file's blob is read: one byte over the size limit, enough for the
/// parser to refuse it.
const BLOB_LIMIT: usize = crate::repo::file::MAX_FILE_BYTES + 1;

/// How many blobs go to a parser thread at once.
const PARSE_BATCH: usize = 32;

/// Walks the first-parent chain from `tip` back to `stop` (or the root), diffing each
/// commit's prompts subtree against its parent's as it goes, while parser threads read and
/// parse each new blob (once) in parallel with the walk.
fn walk_chain(
    repo: &Repository,
    tip: Oid,
    stop: Option<Oid>,
    prompts_rel: &[String],
    prompts_dir: &Path,
    known: &HashMap<Oid, Arc<ParsedBlob>>,
) -> Result<Walked, HistoryError> {
    let odb = repo.odb()?;
    // Extending a cache usually reads a few commits: threads would cost more than they
    // save, so the new blobs are parsed here after the walk, and the pack indexes are
    // opened only if the walk turns out long (a rewritten history). A full walk reads the
    // packs from the start, leaves this thread a core of its own (it reads every object,
    // and the walk is only as fast as it is) and parses on the others.
    let objects_dir = repo.commondir().join("objects");
    let (threads, objects) = match stop {
        Some(_) => (
            0,
            objects::ObjectReader::with_packs(&odb, &objects_dir, OPEN_PACKS_AFTER),
        ),
        None => (
            std::thread::available_parallelism().map_or(1, |n| n.get().saturating_sub(1).max(1)),
            objects::ObjectReader::with_packs(&odb, &objects_dir, 0),
        ),
    };
    let (sender, receiver) = std::sync::mpsc::channel::<Vec<BlobToParse>>();
    let receiver = std::sync::Mutex::new(receiver);
    std::thread::scope(|scope| {
        // A worker the system refuses (address space or process limits) leaves its share
        // to this thread, which parses what is queued after the walk.
        let workers: Vec<_> = (0..threads)
            .filter_map(|_| {
                let receiver = &receiver;
                std::thread::Builder::new()
                    .spawn_scoped(scope, move || parse_queued(receiver, prompts_dir))
                    .ok()
            })
            .collect();
        let walked = walk_and_diff(&objects, tip, stop, prompts_rel, known, &sender);
        drop(sender);
        objects.release();
        // The walk done, this thread parses what is still queued beside the workers.
        let mut parsed: HashMap<Oid, Arc<ParsedBlob>> = parse_queued(&receiver, prompts_dir)
            .into_iter()
            .map(|(blob, result)| (blob, Arc::new(result)))
            .collect();
        for worker in workers {
            match worker.join() {
                Ok(results) => parsed.extend(
                    results
                        .into_iter()
                        .map(|(blob, result)| (blob, Arc::new(result))),
                ),
                Err(panic) => std::panic::resume_unwind(panic),
            }
        }
        let mut walked = walked?;
        walked.parsed = parsed;
        Ok(walked)
    })
}

/// A blob for a parser thread: its id, its path in the prompts folder and its content.
type BlobToParse = (Oid, String, objects::Object);

/// Parses the batches of blobs `receiver` hands out until the walk closes it.
fn parse_queued(
    receiver: &std::sync::Mutex<std::sync::mpsc::Receiver<Vec<BlobToParse>>>,
    prompts_dir: &Path,
) -> Vec<(Oid, ParsedBlob)> {
    let mut parsed = Vec::new();
    loop {
        let batch = match receiver.lock() {
            Ok(receiver) => receiver.recv(),
            Err(poisoned) => poisoned.into_inner().recv(),
        };
        let Ok(batch) = batch else {
            return parsed;
        };
        for (blob, path, data) in batch {
            let path = prompts_dir.join(path);
            parsed.push((blob, ParsedBlob::parse(&path, blob, &data)));
        }
    }
}

/// The walk itself, sending new blobs to the parser threads. Only this thread reads
/// objects: the reader's caches serve one thread, and (through libgit2, which serializes
/// reads of one pack behind a mutex) parser threads reading their own blobs spent a
/// quarter of the walk's time waking each other.
fn walk_and_diff(
    objects: &objects::ObjectReader<'_>,
    tip: Oid,
    stop: Option<Oid>,
    prompts_rel: &[String],
    known: &HashMap<Oid, Arc<ParsedBlob>>,
    sender: &std::sync::mpsc::Sender<Vec<BlobToParse>>,
) -> Result<Walked, HistoryError> {
    let mut reader = walk::CommitReader::new(objects, prompts_rel);
    let mut differ = walk::ChainDiffer::new(objects);
    let mut steps = Vec::new();
    let mut sent: std::collections::HashSet<Oid> = std::collections::HashSet::new();
    let mut batch = Vec::with_capacity(PARSE_BATCH);
    let mut child: Option<(Oid, walk::ReadCommit)> = None;
    let mut tip_prompts = None;
    let mut next = Some(tip);
    let mut commits = 0;
    let mut met_stop = false;
    loop {
        let read = next.map(|id| reader.read(id)).transpose()?;
        let prompts = read.as_ref().and_then(|read| read.prompts);
        if let Some((child_id, child_read)) = &child
            && child_read.prompts != prompts
        {
            let changes = differ.diff(prompts, child_read.prompts)?;
            for (path, blob) in &changes {
                if let Some(blob) = blob
                    && !known.contains_key(blob)
                    && sent.insert(*blob)
                {
                    // A prompt file over the size limit is read only that far: the parser
                    // refuses it, and a huge blob never fills the memory.
                    batch.push((*blob, path.clone(), objects.read_start(*blob, BLOB_LIMIT)?));
                    if batch.len() == PARSE_BATCH {
                        // The receiver lives as long as the walk: sending cannot fail.
                        let _ = sender.send(std::mem::take(&mut batch));
                    }
                }
            }
            if !changes.is_empty() {
                let details = walk::commit_details(&objects.read(*child_id)?);
                steps.push((*child_id, details, changes));
            }
        }
        let (Some(id), Some(read)) = (next, read) else {
            break;
        };
        if Some(id) == stop {
            met_stop = true;
            break;
        }
        if commits == 0 {
            tip_prompts = prompts;
        }
        commits += 1;
        next = read.parent;
        child = Some((id, read));
    }
    if !batch.is_empty() {
        let _ = sender.send(batch);
    }
    steps.reverse();
    Ok(Walked {
        steps,
        commits,
        met_stop,
        tip_prompts,
        parsed: HashMap::new(),
    })
}

/// Sets libgit2's process-wide options for reading history, once, before any thread
/// opens a repository. Verifying every object's hash on read doubles the walk's cost, and
/// Git itself does not verify on read either (`git fsck` does). libgit2's object cache
/// keeps every object read, which the walk (reading each object once, and keeping the
/// few trees it reads twice itself) pays for in locking, copying and freeing at exit.
fn tune_libgit2() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        git2::opts::strict_hash_verification(false);
        git2::opts::enable_caching(false);
    });
}

/// Feeds the walked commits to the tracker, oldest first.
fn apply_steps(
    walked: Walked,
    known: &HashMap<Oid, Arc<ParsedBlob>>,
    tracker: &mut Tracker,
) -> Result<(), HistoryError> {
    for (commit_id, details, changes) in walked.steps {
        let (time, offset_minutes, author_name, author_email, message) = details;
        let info = Arc::new(CommitInfo {
            id: commit_id.to_string(),
            time,
            offset_minutes,
            author_name,
            author_email,
            message,
        });
        let changes = changes
            .into_iter()
            .map(|(path, blob)| Change {
                new: blob.and_then(|blob| {
                    walked
                        .parsed
                        .get(&blob)
                        .or_else(|| known.get(&blob))
                        .map(|parsed| (blob, parsed.clone()))
                }),
                path,
            })
            .collect();
        tracker.apply(Some(&info), changes);
    }
    Ok(())
}

/// Seconds since the epoch, in a time zone `offset_minutes` east of UTC, as RFC 3339.
pub fn rfc3339(seconds: i64, offset_minutes: i32) -> String {
    let local = seconds + i64::from(offset_minutes) * 60;
    let days = local.div_euclid(86_400);
    let second_of_day = local.rem_euclid(86_400);
    let (year, month, day) = crate::calendar::civil_date(days);
    let zone = if offset_minutes == 0 {
        "Z".to_owned()
    } else {
        let sign = if offset_minutes < 0 { '-' } else { '+' };
        let minutes = offset_minutes.unsigned_abs();
        format!("{sign}{:02}:{:02}", minutes / 60, minutes % 60)
    };
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}{zone}",
        second_of_day / 3600,
        second_of_day % 3600 / 60,
        second_of_day % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_formats_utc_and_offsets() {
        assert_eq!(rfc3339(0, 0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(1_700_000_000, 0), "2023-11-14T22:13:20Z");
        assert_eq!(rfc3339(1_700_000_000, 120), "2023-11-15T00:13:20+02:00");
        assert_eq!(rfc3339(1_700_000_000, -330), "2023-11-14T16:43:20-05:30");
    }
}
