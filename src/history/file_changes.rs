//! When a file of the project last changed in a way the caller cares about: the
//! environments file's split of one prompt, for the window of `promptctl canary status`.
//! A first-parent walk from `HEAD` that reads the file's blob at each commit, parsing only
//! when the blob differs from the newer commit's.

use std::collections::BTreeMap;

use git2::{Oid, Repository};

use super::HistoryError;
use crate::config::Config;

/// The commit that made a change, and when.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeAt {
    /// The commit (40 hex digits).
    pub commit: String,
    /// Its committer time, seconds since the Unix epoch.
    pub time: i64,
}

/// Commits walked at most: beyond them the oldest one walked is answered.
const MAX_COMMITS: usize = 100_000;

/// For each key `keys` gives the file's text at `start` (default `HEAD`), the newest
/// first-parent commit from which its value has held: the commit whose parent gives
/// another value (or none). `keys` reads the file's text (`None`: no such file); it is
/// called once per distinct version of the file met. A key whose value held through the
/// whole walk gets the oldest commit walked. Empty when the branch has no commits.
pub fn last_changes<K: Ord + Clone, V: PartialEq>(
    config: &Config,
    path: &std::path::Path,
    start: Option<&str>,
    mut keys: impl FnMut(Option<&str>) -> BTreeMap<K, V>,
) -> Result<BTreeMap<K, ChangeAt>, HistoryError> {
    let repo = super::base::open(config)?;
    let inside = inside_repository(&repo, config, path);
    let Some(head) = super::resolve(&repo, start)? else {
        return Ok(BTreeMap::new());
    };
    let text = |blob: Option<Oid>| -> Result<Option<String>, HistoryError> {
        Ok(match blob {
            Some(id) => Some(String::from_utf8_lossy(repo.find_blob(id)?.content()).into_owned()),
            None => None,
        })
    };
    let mut commit = repo.find_commit(head)?;
    let mut blob = blob_at(&commit, &inside)?;
    let mut open = keys(text(blob)?.as_deref());
    let mut found = BTreeMap::new();
    for _ in 0..MAX_COMMITS {
        if open.is_empty() {
            break;
        }
        let Ok(parent) = commit.parent(0) else { break };
        let parent_blob = blob_at(&parent, &inside)?;
        if parent_blob != blob {
            let before = keys(text(parent_blob)?.as_deref());
            let at = ChangeAt::of(&commit);
            open.retain(|key, value| {
                let changed = before.get(key) != Some(value);
                if changed {
                    found.insert(key.clone(), at.clone());
                }
                !changed
            });
            blob = parent_blob;
        }
        commit = parent;
    }
    let oldest = ChangeAt::of(&commit);
    for key in open.into_keys() {
        found.insert(key, oldest.clone());
    }
    Ok(found)
}

impl ChangeAt {
    fn of(commit: &git2::Commit<'_>) -> ChangeAt {
        ChangeAt {
            commit: commit.id().to_string(),
            time: commit.time().seconds(),
        }
    }
}

/// `path` (relative to the project root) relative to the repository's work tree.
fn inside_repository(
    repo: &Repository,
    config: &Config,
    path: &std::path::Path,
) -> std::path::PathBuf {
    let file = config.root.join(path);
    match repo.workdir() {
        Some(workdir) => {
            let workdir = workdir
                .canonicalize()
                .unwrap_or_else(|_| workdir.to_path_buf());
            file.strip_prefix(&workdir)
                .map_or_else(|_| path.to_path_buf(), std::path::Path::to_path_buf)
        }
        None => path.to_path_buf(),
    }
}

/// The blob at `path` in `commit`'s tree, when there is one.
fn blob_at(commit: &git2::Commit<'_>, path: &std::path::Path) -> Result<Option<Oid>, HistoryError> {
    let tree = commit.tree()?;
    Ok(match tree.get_path(path) {
        Ok(entry) if entry.kind() == Some(git2::ObjectType::Blob) => Some(entry.id()),
        _ => None,
    })
}
