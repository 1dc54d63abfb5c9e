//! Deploying: what an environment runs (`pin`, `promote`) and bringing an old definition
//! back as the next version (`rollback`), each as plan ▶ test ▶ write ▶ commit. A plan
//! checks everything and computes the new file without touching the disk; writing is
//! atomic (a temporary file renamed over the old one), and a commit that fails puts the
//! file back, so a deployment lands as a commit or not at all.
//!
//! The command line (`cli/pin.rs`, `promote.rs`, `rollback.rs`) is a thin door over this:
//! it prints the outcome and turns a [`DeployError`] into its message, hints and exit
//! code. Not here: resolving what an environment runs for rendering or running
//! (`environments::resolve_definition`).

pub mod canary;
pub mod pin;
pub mod rollback;

use std::path::{Path, PathBuf};

use crate::config::Config;
use crate::diagnostic::{Diagnostic, display_path};
use crate::environments::{Environments, Pin, VersionRef};
use crate::history::commit::CommitError;
use crate::history::{HistoryError, PromptHistory};
use crate::repo::{LookupError, PromptId};

/// Why a deployment was refused or failed; nothing was written unless the variant says so.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// `environments.yaml` does not parse.
    #[error("{0}")]
    Environments(Box<Diagnostic>),
    /// The prompt's file is gone.
    #[error("{prompt} is archived: no file defines it any more")]
    Archived {
        /// The prompt.
        prompt: PromptId,
        /// Whether an environment pin was asked for (removing it is another way out).
        pinning: bool,
    },
    /// The version asked for does not exist.
    #[error("{prompt} has no version {version}; {}", version_range(*.count))]
    NoSuchVersion {
        /// The prompt.
        prompt: PromptId,
        /// The version asked for.
        version: u32,
        /// How many versions it has.
        count: usize,
    },
    /// The prompt has no committed version.
    #[error("{prompt} has no version")]
    NoVersion {
        /// The prompt.
        prompt: PromptId,
    },
    /// The prompt is not in the working tree (`unreadable` files did not parse).
    #[error("{error}")]
    Lookup {
        /// Why.
        error: LookupError,
        /// How many files of the working tree could not be read.
        unreadable: usize,
    },
    /// The environments file is written in a shape the minimal edit does not handle.
    #[error("{0}")]
    Edit(String),
    /// The minimal edit would not read back as the pin asked for.
    #[error("editing {} would not give the pin asked for; the file is unchanged", display_path(.path))]
    EditMismatch {
        /// The environments file.
        path: PathBuf,
    },
    /// The file to write has changes of its own that the deployment would take along.
    #[error("{} has uncommitted changes; {}", display_path(.path), match .by {
        Overwrite::Commit => "--commit would commit them too",
        Overwrite::Rollback => "a rollback would overwrite them",
        Overwrite::Decision => "the canary decision's commit would take them too",
    })]
    Uncommitted {
        /// The file.
        path: PathBuf,
        /// What would take them.
        by: Overwrite,
    },
    /// The rolled-back file does not parse back to exactly the old definition.
    #[error("cannot write v{version}'s definition back into {}; the file is unchanged", display_path(.path))]
    Unwritable {
        /// The version rolled back to.
        version: u32,
        /// The prompt's file.
        path: PathBuf,
    },
    /// The prompt has no tests to run against the rolled-back definition.
    #[error("{prompt} has no tests to run against v{version}")]
    NoTests {
        /// The prompt.
        prompt: PromptId,
        /// The version rolled back to.
        version: u32,
    },
    /// A prompt cannot be tested: it lacks a part of its definition.
    #[error(transparent)]
    Incomplete(#[from] crate::eval::Incomplete),
    /// Writing the file failed.
    #[error("cannot write {}: {source}", display_path(.path))]
    Write {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Committing failed (the file was put back).
    #[error(transparent)]
    Commit(#[from] CommitError),
    /// Reading the history failed.
    #[error(transparent)]
    History(#[from] HistoryError),
}

/// What would take a file's uncommitted changes along.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overwrite {
    /// `--commit` (the commit would hold them).
    Commit,
    /// A rollback (it rewrites the file).
    Rollback,
    /// A canary decision (it commits the file by default).
    Decision,
}

fn version_range(count: usize) -> String {
    match count {
        0 => "it has no committed version yet".to_owned(),
        1 => "its only version is 1".to_owned(),
        latest => format!("its versions are 1 to {latest}"),
    }
}

/// The project's environments file, or an empty one (to be created) when there is none.
pub fn load_environments(config: &Config) -> Result<Environments, DeployError> {
    match Environments::load(config) {
        Ok(Some(environments)) => Ok(environments),
        Ok(None) => Environments::parse(&config.settings.environments, "")
            .map_err(|d| DeployError::Environments(Box::new(d))),
        Err(diagnostic) => Err(DeployError::Environments(Box::new(diagnostic))),
    }
}

/// `v3` or `latest`.
pub fn version_label(version: VersionRef) -> String {
    match version {
        VersionRef::Latest => "latest".to_owned(),
        VersionRef::Number(n) => format!("v{n}"),
    }
}

/// A pin as people read it: `v3 (gpt-4o)`, `latest (own model)`.
pub fn pin_label(pin: &Pin) -> String {
    format!(
        "{} ({})",
        version_label(pin.version),
        pin.model.as_deref().unwrap_or("own model")
    )
}

/// Refuses an archived prompt, and a version number the prompt does not have.
fn validate(prompt: &PromptHistory, version: VersionRef, pinning: bool) -> Result<(), DeployError> {
    if prompt.archived {
        return Err(DeployError::Archived {
            prompt: prompt.id.clone(),
            pinning,
        });
    }
    if let VersionRef::Number(n) = version
        && prompt.version(n).is_none()
    {
        return Err(DeployError::NoSuchVersion {
            prompt: prompt.id.clone(),
            version: n,
            count: prompt.versions.len(),
        });
    }
    Ok(())
}

/// Writes `text` to `path` through a temporary file, so a crash never leaves half a file.
fn write_atomically(path: &Path, text: &str) -> Result<(), DeployError> {
    crate::files::replace(path, text.as_bytes()).map_err(|source| DeployError::Write {
        path: path.to_path_buf(),
        source,
    })
}

/// Refuses to overwrite `path` when it has uncommitted changes.
fn refuse_uncommitted(path: &Path, shown: &Path, by: Overwrite) -> Result<(), DeployError> {
    if crate::history::commit::has_changes(path)? {
        return Err(DeployError::Uncommitted {
            path: shown.to_path_buf(),
            by,
        });
    }
    Ok(())
}

/// Writes `text` over the file at `path` (holding `original`, `None`: no file) and
/// commits it alone with `message`; when the commit fails, the file is put back as it was.
fn write_and_commit(
    path: &Path,
    original: Option<&str>,
    text: &str,
    message: &str,
) -> Result<String, DeployError> {
    write_atomically(path, text)?;
    crate::history::commit::commit_file(path, message).map_err(|err| {
        // The edit lands as a commit or not at all.
        match original {
            Some(original) => {
                let _ = write_atomically(path, original);
            }
            None => {
                let _ = std::fs::remove_file(path);
            }
        }
        DeployError::Commit(err)
    })
}
