//! The base a change is measured from, and the prompts folder as it was at any commit.
//!
//! `promptctl test --changed-since REF` compares the working tree with the merge base of
//! `HEAD` and `REF`; on a pull request GitHub checks out a merge commit whose first parent
//! is the base branch, which is the base when no `REF` is given. This module finds those
//! commits and reads a commit's prompts folder into a [`Snapshot`]; what changed between
//! two snapshots is decided in `eval::selection`.

use git2::{Oid, Repository};

use super::objects::ObjectReader;
use super::{HistoryError, prompts_relative, resolve, walk};
use crate::config::Config;
use crate::repo::{FileKind, Snapshot};

/// The commit a change is compared with, and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChangeBase {
    /// The base commit (40 hex digits).
    pub commit: String,
    /// How it was found, for people: `merge base with origin/main` or
    /// `first parent of the merge commit`.
    pub how: String,
}

/// The repository holding the project, with libgit2 set up for reading history.
pub(super) fn open(config: &Config) -> Result<Repository, HistoryError> {
    super::tune_libgit2();
    Repository::discover(&config.root).map_err(|err| match err.code() {
        git2::ErrorCode::NotFound => HistoryError::NotARepository {
            path: config.root.clone(),
        },
        _ => HistoryError::Git(err),
    })
}

/// The merge base of `HEAD` and `reference`: what a pull request from `HEAD` into
/// `reference` changes is measured from there.
pub fn merge_base(config: &Config, reference: &str) -> Result<ChangeBase, HistoryError> {
    let repo = open(config)?;
    if repo.is_shallow() {
        return Err(HistoryError::Shallow);
    }
    let head = resolve(&repo, None)?.ok_or_else(|| HistoryError::BadRevision {
        rev: "HEAD".to_owned(),
        message: "the branch has no commits yet".to_owned(),
    })?;
    let other = resolve(&repo, Some(reference))?.ok_or_else(|| HistoryError::BadRevision {
        rev: reference.to_owned(),
        message: "not a commit".to_owned(),
    })?;
    // libgit2 refuses commits with times it cannot parse, which Git reads: then the
    // ancestors are walked raw.
    let base = match repo.merge_base(head, other) {
        Ok(base) => Some(base),
        Err(err) if err.code() == git2::ErrorCode::NotFound => None,
        Err(_) => raw_merge_base(&repo, head, other)?,
    }
    .ok_or_else(|| HistoryError::BadRevision {
        rev: reference.to_owned(),
        message: "no common ancestor with HEAD".to_owned(),
    })?;
    Ok(ChangeBase {
        commit: base.to_string(),
        how: format!("merge base with {reference}"),
    })
}

/// The parents named in a raw commit object.
fn raw_parents(odb: &git2::Odb<'_>, id: Oid) -> Result<Vec<Oid>, git2::Error> {
    let object = odb.read(id)?;
    Ok(object
        .data()
        .split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix(b"parent "))
        .filter_map(|hex| Oid::from_str(std::str::from_utf8(hex).ok()?).ok())
        .collect())
}

/// A merge base of `head` and `other` found from the raw commits: every ancestor of
/// `other`, then the common ancestor nearest to `head` (breadth first). The fork point of
/// a branch, as `git merge-base` finds it for the histories pull requests have.
fn raw_merge_base(repo: &Repository, head: Oid, other: Oid) -> Result<Option<Oid>, HistoryError> {
    let odb = repo.odb()?;
    let mut theirs = std::collections::HashSet::from([other]);
    let mut queue = std::collections::VecDeque::from([other]);
    while let Some(id) = queue.pop_front() {
        for parent in raw_parents(&odb, id)? {
            if theirs.insert(parent) {
                queue.push_back(parent);
            }
        }
    }
    let mut seen = std::collections::HashSet::from([head]);
    let mut layer = vec![head];
    while !layer.is_empty() {
        if let Some(found) = layer.iter().find(|id| theirs.contains(id)) {
            return Ok(Some(*found));
        }
        let mut next = Vec::new();
        for id in layer {
            for parent in raw_parents(&odb, id)? {
                if seen.insert(parent) {
                    next.push(parent);
                }
            }
        }
        layer = next;
    }
    Ok(None)
}

/// When `HEAD` is a merge commit (as GitHub checks out for a pull request), its first
/// parent: the base branch the pull request is merged into. `None` otherwise, or outside
/// a Git repository.
pub fn merge_commit_base(config: &Config) -> Option<ChangeBase> {
    let repo = open(config).ok()?;
    // Read raw, as the history is: libgit2 refuses to parse some commits Git reads.
    let head = super::resolve(&repo, None).ok()??;
    let odb = repo.odb().ok()?;
    let object = odb.read(head).ok()?;
    let parents: Vec<&[u8]> = object
        .data()
        .split(|&b| b == b'\n')
        .take_while(|line| !line.is_empty())
        .filter_map(|line| line.strip_prefix(b"parent "))
        .collect();
    if parents.len() < 2 {
        return None;
    }
    Some(ChangeBase {
        commit: String::from_utf8_lossy(parents[0]).into_owned(),
        how: "first parent of the merge commit".to_owned(),
    })
}

/// The prompts folder at `commit`, as a snapshot (an empty one when the folder did not
/// exist there).
pub fn snapshot_at(config: &Config, commit: &str) -> Result<Snapshot, HistoryError> {
    let repo = open(config)?;
    let prompts_rel = prompts_relative(&repo, config)?;
    let id = Oid::from_str(commit)?;
    let tree = super::commit_tree(&repo, id)?;
    let odb = repo.odb()?;
    let objects = ObjectReader::libgit2(&odb);
    let mut files = Vec::new();
    if let Some(root) = walk::subtree(&objects, tree, &prompts_rel)? {
        let kinds = [FileKind::Prompt, FileKind::Partial];
        for (path, blob) in walk::files_of_kinds(&objects, root, &kinds)? {
            let object = objects.read_start(blob, super::BLOB_LIMIT)?;
            files.push((std::path::PathBuf::from(path), object.to_vec()));
        }
    }
    Ok(Snapshot::from_files(&config.settings.prompts_dir, files))
}

/// The project root (the folder of `promptctl.toml`) relative to the Git repository's
/// top folder: empty at the top, `None` outside a repository. GitHub wants annotation
/// paths relative to the repository.
pub fn root_in_repository(config: &Config) -> Option<std::path::PathBuf> {
    let repo = open(config).ok()?;
    let workdir = repo.workdir()?.canonicalize().ok()?;
    let root = config.root.canonicalize().ok()?;
    root.strip_prefix(&workdir)
        .ok()
        .map(std::path::Path::to_path_buf)
}
