//! The history index cache: the walk's state at the last commit read, kept in the Git
//! folder (`.git/promptctl/history-v1-*.json`) so that the next run reads only the commits
//! made since.
//!
//! The cache is never trusted: it is used only when its format, promptctl's version, the
//! prompts folder and the revision all match, its checksum holds, every index in it is in
//! range, and (checked by the walk) its commit lies on the first-parent chain of the new
//! tip. Anything else rebuilds it. It is written to a temporary file and renamed, so a
//! crash never leaves half a cache.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::{Oid, Repository};
use serde::{Deserialize, Serialize};

use super::tracker::{FileEntry, Outcome, ParsedBlob, Tracker};
use super::{CommitInfo, Problem, PromptHistory, Version};
use crate::diagnostic::{Diagnostic, Position, Severity};
use crate::repo::{Definition, PromptId};

/// The first line's magic word and format number.
const MAGIC: &str = "promptctl-history 1";

/// What a cache is for: one prompts folder read at one revision.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    /// The prompts folder inside the repository, `/`-separated.
    pub prompts_dir: String,
    /// The revision as given (`HEAD` by default).
    pub rev: String,
}

impl Key {
    fn file(&self, repo: &Repository) -> PathBuf {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for byte in self.prompts_dir.bytes().chain([0]).chain(self.rev.bytes()) {
            hash ^= u64::from(byte);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
        repo.path()
            .join("promptctl")
            .join(format!("history-v1-{hash:016x}.json"))
    }
}

/// The walk's state after the cached tip.
#[derive(Debug)]
pub(crate) struct State {
    /// The last commit read.
    pub tip: Oid,
    /// Its prompts subtree.
    pub tip_prompts: Option<Oid>,
    /// The tracker after it.
    pub tracker: Tracker,
}

/// What reading the cache gave.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// No cache.
    Missing,
    /// A cache that cannot be used, and why.
    Invalid(String),
    /// A usable cache.
    Hit(Box<State>),
}

/// The cache's content; generic so that writing borrows what reading owns.
#[derive(Serialize, Deserialize)]
struct Body<D, C> {
    tool: String,
    prompts_dir: String,
    rev: String,
    tip: String,
    tip_prompts: Option<String>,
    commits: Vec<C>,
    definitions: Vec<D>,
    blobs: Vec<CachedBlob>,
    files: Vec<CachedFile>,
    prompts: Vec<CachedPrompt>,
    problems: Vec<CachedProblem>,
}

#[derive(Serialize, Deserialize)]
struct CachedBlob {
    id: String,
    name: Option<String>,
    service: Option<String>,
    /// Index into `definitions`, or absent for an incomplete file.
    definition: Option<usize>,
    failed: Option<CachedDiagnostic>,
}

#[derive(Serialize, Deserialize)]
struct CachedFile {
    path: String,
    blob: usize,
    claims: Option<PromptId>,
}

#[derive(Serialize, Deserialize)]
struct CachedPrompt {
    id: PromptId,
    archived: bool,
    path: PathBuf,
    versions: Vec<CachedVersion>,
}

#[derive(Serialize, Deserialize)]
struct CachedVersion {
    commit: usize,
    definition: usize,
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct CachedProblem {
    commit: Option<String>,
    diagnostic: CachedDiagnostic,
}

#[derive(Serialize, Deserialize)]
struct CachedDiagnostic {
    error: bool,
    code: String,
    message: String,
    path: PathBuf,
    line: usize,
    column: usize,
    length: usize,
    line_text: Option<String>,
    help: Option<String>,
}

/// The codes a history diagnostic can have (the cache stores them as text).
const CODES: &[&str] = &[
    "file-too-large",
    "binary-file",
    "not-utf8",
    "empty-file",
    "yaml-limits",
    "schema",
    "yaml-syntax",
    "no-service",
    "incomplete-definition",
    "duplicate-identity",
];

impl CachedDiagnostic {
    fn of(diagnostic: &Diagnostic) -> CachedDiagnostic {
        CachedDiagnostic {
            error: diagnostic.severity == Severity::Error,
            code: diagnostic.code.to_owned(),
            message: diagnostic.message.clone(),
            path: diagnostic.path.clone(),
            line: diagnostic.position.line,
            column: diagnostic.position.column,
            length: diagnostic.length,
            line_text: diagnostic.line_text.clone(),
            help: diagnostic.help.clone(),
        }
    }

    fn restore(self) -> Result<Diagnostic, String> {
        let code = CODES
            .iter()
            .find(|code| **code == self.code)
            .ok_or_else(|| format!("unknown diagnostic code `{}`", self.code))?;
        let mut diagnostic = Diagnostic::error(
            code,
            self.path,
            Position::new(self.line, self.column),
            self.message,
        )
        .with_length(self.length);
        if !self.error {
            diagnostic.severity = Severity::Warning;
        }
        diagnostic.line_text = self.line_text;
        diagnostic.help = self.help;
        Ok(diagnostic)
    }
}

fn checksum(text: &str) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in text.as_bytes().chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash ^= u64::from_le_bytes(word);
        hash = hash.wrapping_mul(0x0100_0000_01b3).rotate_left(29);
    }
    format!("{hash:016x}")
}

/// Reads the cache for `key`, if there is a usable one.
pub(crate) fn load(repo: &Repository, key: &Key, prompts_dir: &Path) -> Loaded {
    let text = match std::fs::read_to_string(key.file(repo)) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(err) => return Loaded::Invalid(format!("cannot read the cache: {err}")),
    };
    match decode(&text, key, prompts_dir) {
        Ok(state) => Loaded::Hit(Box::new(state)),
        Err(reason) => Loaded::Invalid(reason),
    }
}

fn decode(text: &str, key: &Key, prompts_dir: &Path) -> Result<State, String> {
    let (header, body_text) = text.split_once('\n').ok_or("the cache is truncated")?;
    let sum = header
        .strip_prefix(MAGIC)
        .and_then(|rest| rest.strip_prefix(' '))
        .ok_or("the cache has another format")?;
    if sum != checksum(body_text) {
        return Err("the cache's checksum does not match".to_owned());
    }
    let body: Body<Definition, CommitInfo> =
        serde_json::from_str(body_text).map_err(|err| format!("the cache is corrupt: {err}"))?;
    if body.tool != env!("CARGO_PKG_VERSION") {
        return Err("the cache was written by another promptctl version".to_owned());
    }
    if body.prompts_dir != key.prompts_dir || body.rev != key.rev {
        return Err("the cache is for another prompts folder or revision".to_owned());
    }
    let oid =
        |hex: &str| Oid::from_str(hex).map_err(|_| format!("bad object id `{hex}` in the cache"));
    let tip = oid(&body.tip)?;
    let tip_prompts = body.tip_prompts.as_deref().map(oid).transpose()?;
    let definitions: Vec<Arc<Definition>> = body.definitions.into_iter().map(Arc::new).collect();
    let commits: Vec<Arc<CommitInfo>> = body.commits.into_iter().map(Arc::new).collect();
    let definition = |index: usize| {
        definitions
            .get(index)
            .cloned()
            .ok_or_else(|| "definition index out of range".to_owned())
    };
    let mut blobs = Vec::with_capacity(body.blobs.len());
    for blob in body.blobs {
        let outcome = match (blob.definition, blob.failed) {
            (Some(index), None) => Outcome::Complete(definition(index)?),
            (None, None) => Outcome::Incomplete,
            (None, Some(failed)) => Outcome::Failed(failed.restore()?),
            (Some(_), Some(_)) => return Err("a cached blob is both parsed and failed".to_owned()),
        };
        blobs.push((
            oid(&blob.id)?,
            Arc::new(ParsedBlob {
                name: blob.name,
                service: blob.service,
                outcome,
            }),
        ));
    }
    let mut tracker = Tracker::new(prompts_dir);
    for file in body.files {
        let (blob, parsed) = blobs
            .get(file.blob)
            .cloned()
            .ok_or("blob index out of range")?;
        if let Some(id) = &file.claims {
            tracker
                .claims
                .entry(id.clone())
                .or_default()
                .insert(file.path.clone());
        }
        tracker.files.insert(
            file.path,
            FileEntry {
                blob,
                parsed,
                claims: file.claims,
            },
        );
    }
    for prompt in body.prompts {
        let mut versions = Vec::with_capacity(prompt.versions.len());
        for (index, version) in prompt.versions.into_iter().enumerate() {
            versions.push(Version {
                number: u32::try_from(index + 1).map_err(|_| "too many versions")?,
                commit: Some(
                    commits
                        .get(version.commit)
                        .cloned()
                        .ok_or("commit index out of range")?,
                ),
                definition: definition(version.definition)?,
                path: version.path,
            });
        }
        if versions.is_empty() {
            return Err("a cached prompt has no version".to_owned());
        }
        tracker.prompts.insert(
            prompt.id.clone(),
            PromptHistory {
                id: prompt.id,
                versions,
                archived: prompt.archived,
                path: prompt.path,
            },
        );
    }
    for problem in body.problems {
        tracker.problems.push(Problem {
            commit: problem.commit,
            diagnostic: problem.diagnostic.restore()?,
        });
    }
    Ok(State {
        tip,
        tip_prompts,
        tracker,
    })
}

/// Writes the cache for `key`: the tracker's state after `tip`.
pub(crate) fn store<'a>(
    repo: &Repository,
    key: &Key,
    tip: Oid,
    tip_prompts: Option<Oid>,
    tracker: &'a Tracker,
) -> std::io::Result<()> {
    let mut definitions: Vec<&Definition> = Vec::new();
    let mut definition_index: HashMap<*const Definition, usize> = HashMap::new();
    let mut intern = |definition: &'a Arc<Definition>| -> usize {
        *definition_index
            .entry(Arc::as_ptr(definition))
            .or_insert_with(|| {
                definitions.push(definition);
                definitions.len() - 1
            })
    };
    let mut blobs = Vec::new();
    let mut blob_index: HashMap<Oid, usize> = HashMap::new();
    let mut files: Vec<(&String, &FileEntry)> = tracker.files.iter().collect();
    files.sort_by(|a, b| a.0.cmp(b.0));
    let mut cached_files = Vec::with_capacity(files.len());
    for (path, entry) in files {
        let index = match blob_index.get(&entry.blob) {
            Some(index) => *index,
            None => {
                let (definition, failed) = match &entry.parsed.outcome {
                    Outcome::Complete(definition) => (Some(intern(definition)), None),
                    Outcome::Incomplete => (None, None),
                    Outcome::Failed(diagnostic) => (None, Some(CachedDiagnostic::of(diagnostic))),
                };
                blobs.push(CachedBlob {
                    id: entry.blob.to_string(),
                    name: entry.parsed.name.clone(),
                    service: entry.parsed.service.clone(),
                    definition,
                    failed,
                });
                blob_index.insert(entry.blob, blobs.len() - 1);
                blobs.len() - 1
            }
        };
        cached_files.push(CachedFile {
            path: path.clone(),
            blob: index,
            claims: entry.claims.clone(),
        });
    }
    let mut commits: Vec<&CommitInfo> = Vec::new();
    let mut commit_index: HashMap<*const CommitInfo, usize> = HashMap::new();
    let mut prompts = Vec::with_capacity(tracker.prompts.len());
    for prompt in tracker.prompts.values() {
        let mut versions = Vec::with_capacity(prompt.versions.len());
        for version in &prompt.versions {
            let Some(commit) = &version.commit else {
                return Ok(()); // the working tree's state is never cached
            };
            let commit = *commit_index.entry(Arc::as_ptr(commit)).or_insert_with(|| {
                commits.push(commit);
                commits.len() - 1
            });
            versions.push(CachedVersion {
                commit,
                definition: intern(&version.definition),
                path: version.path.clone(),
            });
        }
        prompts.push(CachedPrompt {
            id: prompt.id.clone(),
            archived: prompt.archived,
            path: prompt.path.clone(),
            versions,
        });
    }
    let body = Body {
        tool: env!("CARGO_PKG_VERSION").to_owned(),
        prompts_dir: key.prompts_dir.clone(),
        rev: key.rev.clone(),
        tip: tip.to_string(),
        tip_prompts: tip_prompts.map(|id| id.to_string()),
        commits,
        definitions,
        blobs,
        files: cached_files,
        prompts,
        problems: tracker
            .problems
            .iter()
            .map(|problem| CachedProblem {
                commit: problem.commit.clone(),
                diagnostic: CachedDiagnostic::of(&problem.diagnostic),
            })
            .collect(),
    };
    let body_text = serde_json::to_string(&body).map_err(std::io::Error::other)?;
    let file = key.file(repo);
    if let Some(folder) = file.parent() {
        std::fs::create_dir_all(folder)?;
    }
    let temporary = file.with_extension(format!("tmp{}", std::process::id()));
    let text = format!("{MAGIC} {}\n{body_text}", checksum(&body_text));
    std::fs::write(&temporary, text)?;
    std::fs::rename(&temporary, &file)
}
