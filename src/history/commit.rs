//! Writing one file as a commit on the current branch, for the commands that change the
//! repository on the user's behalf (`pin --commit`, `promote --commit`, `rollback`).
//!
//! Only the named file is committed: the new tree is `HEAD`'s tree with that one file
//! replaced, whatever else the user has staged or changed. The identity is the user's, as
//! Git would find it: `GIT_AUTHOR_*` / `GIT_COMMITTER_*` from the environment, else
//! `user.name` and `user.email` from Git's configuration.

use std::path::{Path, PathBuf};

use git2::{IndexEntry, IndexTime, Repository, Signature};

/// Errors committing a file.
#[derive(Debug, thiserror::Error)]
pub enum CommitError {
    /// The project is not inside a Git repository with a working tree.
    #[error("{} is not inside a Git repository with a working tree", crate::diagnostic::display_path(.0))]
    NotARepository(PathBuf),
    /// Git has no identity for the commit.
    #[error("Git does not know who you are: set `user.name` and `user.email`")]
    NoIdentity,
    /// The file is outside the repository.
    #[error("{} is outside the Git repository", crate::diagnostic::display_path(.0))]
    Outside(PathBuf),
    /// The file could not be read.
    #[error("cannot read {}: {source}", crate::diagnostic::display_path(.path))]
    Io {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Git failed.
    #[error("git: {0}")]
    Git(#[from] git2::Error),
}

/// The repository holding `path` and `path` relative to its working tree.
fn open(path: &Path) -> Result<(Repository, PathBuf), CommitError> {
    let start = path.parent().unwrap_or(path);
    let repo =
        Repository::discover(start).map_err(|_| CommitError::NotARepository(path.to_path_buf()))?;
    let workdir = repo
        .workdir()
        .ok_or_else(|| CommitError::NotARepository(path.to_path_buf()))?;
    let workdir = workdir
        .canonicalize()
        .unwrap_or_else(|_| workdir.to_path_buf());
    let parent = start.canonicalize().unwrap_or_else(|_| start.to_path_buf());
    let full = match path.file_name() {
        Some(name) => parent.join(name),
        None => parent,
    };
    let relative = full
        .strip_prefix(&workdir)
        .map_err(|_| CommitError::Outside(path.to_path_buf()))?
        .to_path_buf();
    Ok((repo, relative))
}

/// `HEAD`'s commit, read raw as the history reads it (`None` on an unborn branch): libgit2
/// refuses to parse some commits Git reads.
fn head_commit(repo: &Repository) -> Result<Option<git2::Oid>, CommitError> {
    super::resolve(repo, None).map_err(|err| match err {
        super::HistoryError::Git(err) => CommitError::Git(err),
        other => CommitError::Git(git2::Error::from_str(&other.to_string())),
    })
}

/// Whether `path` differs from `HEAD` (in the index or the working tree); an ignored
/// file has no changes.
pub fn has_changes(path: &Path) -> Result<bool, CommitError> {
    let (repo, relative) = open(path)?;
    let path_text = relative.to_string_lossy().replace('\\', "/");
    if repo.status_should_ignore(&relative).unwrap_or(false) {
        return Ok(false);
    }
    let head_tree = match head_commit(&repo)? {
        Some(head) => Some(repo.find_tree(super::commit_tree(&repo, head)?)?),
        None => None,
    };
    let mut options = git2::DiffOptions::new();
    options
        .pathspec(&path_text)
        .disable_pathspec_match(true)
        .include_untracked(true)
        .include_typechange(true);
    let diff = repo.diff_tree_to_workdir_with_index(head_tree.as_ref(), Some(&mut options))?;
    Ok(diff.deltas().len() > 0)
}

/// `when` as a commit header writes it: seconds and `+HHMM`.
fn signature_line(signature: &Signature<'_>) -> Vec<u8> {
    let when = signature.when();
    let offset = when.offset_minutes();
    let sign = if offset < 0 { '-' } else { '+' };
    let offset = offset.unsigned_abs();
    let mut line = Vec::new();
    line.extend_from_slice(signature.name_bytes());
    line.extend_from_slice(b" <");
    line.extend_from_slice(signature.email_bytes());
    line.extend_from_slice(
        format!(
            "> {} {sign}{:02}{:02}",
            when.seconds(),
            offset / 60,
            offset % 60
        )
        .as_bytes(),
    );
    line
}

/// Writes a commit of `tree` on `parent` as Git writes one, without libgit2 parsing the
/// parent (it refuses some commits Git reads), and moves the branch `HEAD` names (or a
/// detached `HEAD`) to it, only if it still points at `parent`.
fn write_commit(
    repo: &Repository,
    tree: git2::Oid,
    parent: Option<git2::Oid>,
    author: &Signature<'_>,
    committer: &Signature<'_>,
    message: &str,
) -> Result<git2::Oid, CommitError> {
    let mut object = format!("tree {tree}\n").into_bytes();
    if let Some(parent) = parent {
        object.extend_from_slice(format!("parent {parent}\n").as_bytes());
    }
    object.extend_from_slice(b"author ");
    object.extend_from_slice(&signature_line(author));
    object.extend_from_slice(b"\ncommitter ");
    object.extend_from_slice(&signature_line(committer));
    object.extend_from_slice(b"\n\n");
    object.extend_from_slice(message.as_bytes());
    let id = repo.odb()?.write(git2::ObjectType::Commit, &object)?;
    let summary = message.lines().next().unwrap_or_default();
    let log = format!(
        "commit{}: {summary}",
        if parent.is_none() { " (initial)" } else { "" }
    );
    let head = repo.find_reference("HEAD")?;
    let branch = head.symbolic_target().map(str::to_owned);
    match (branch, parent) {
        (Some(branch), Some(parent)) => {
            repo.reference_matching(&branch, id, true, parent, &log)?;
        }
        (Some(branch), None) => {
            repo.reference(&branch, id, false, &log)?;
        }
        (None, _) => repo.set_head_detached(id)?,
    }
    Ok(id)
}

fn signature(repo: &Repository, who: &str) -> Result<Signature<'static>, CommitError> {
    let config = repo.config()?;
    let value = |variable: &str, key: &str| {
        std::env::var(variable)
            .ok()
            .filter(|v| !v.is_empty())
            .or_else(|| config.get_string(key).ok())
    };
    let name = value(&format!("GIT_{who}_NAME"), "user.name");
    let email = value(&format!("GIT_{who}_EMAIL"), "user.email");
    match (name, email) {
        (Some(name), Some(email)) => Ok(Signature::now(&name, &email)?),
        _ => Err(CommitError::NoIdentity),
    }
}

/// Commits the working tree's `path` as it is on disk, alone, on top of `HEAD`, and stages
/// it in the index so that `git status` is clean for it. Returns the new commit's id.
pub fn commit_file(path: &Path, message: &str) -> Result<String, CommitError> {
    let (repo, relative) = open(path)?;
    let author = signature(&repo, "AUTHOR")?;
    let committer = signature(&repo, "COMMITTER")?;
    let content = crate::files::read_regular(path, crate::repo::file::MAX_FILE_BYTES as u64)
        .map_err(|err| CommitError::Io {
            path: path.to_path_buf(),
            source: match err {
                crate::files::ReadError::Io { source, .. } => source,
                other => std::io::Error::other(other.to_string()),
            },
        })?;
    let head = head_commit(&repo)?;
    let mut index = git2::Index::new()?;
    if let Some(head) = head {
        index.read_tree(&repo.find_tree(super::commit_tree(&repo, head)?)?)?;
    }
    let path_text = relative.to_string_lossy().replace('\\', "/");
    let mode = index
        .get_path(Path::new(&path_text), 0)
        .map_or(0o100_644, |entry| entry.mode);
    let entry = IndexEntry {
        ctime: IndexTime::new(0, 0),
        mtime: IndexTime::new(0, 0),
        dev: 0,
        ino: 0,
        mode,
        uid: 0,
        gid: 0,
        file_size: u32::try_from(content.len()).unwrap_or(u32::MAX),
        id: repo.blob(&content)?,
        flags: 0,
        flags_extended: 0,
        path: path_text.clone().into_bytes(),
    };
    index.add(&entry)?;
    let tree = index.write_tree_to(&repo)?;
    let id = write_commit(&repo, tree, head, &author, &committer, message)?;
    let mut real = repo.index()?;
    real.add_path(Path::new(&path_text))?;
    real.write()?;
    Ok(id.to_string())
}
