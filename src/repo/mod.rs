//! The prompts repository on disk: prompt files, partials, and looking prompts up by name.
//!
//! A [`Snapshot`] is every prompt file and partial of one tree, from the working tree
//! ([`Snapshot::load_working_tree`]) or from any list of files (`history` feeds it blobs of
//! a commit). Files that cannot be parsed become diagnostics in the snapshot; they never stop
//! the others from loading.

pub mod definition;
pub mod file;
pub mod plain_yaml;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use definition::{Body, Definition, MessageTemplate, PromptId};
pub use file::{Assertion, PromptFile, Role, TestCase, VariableSpec, VariableType};

use crate::config::Config;
use crate::diagnostic::{Diagnostic, closest, display_path};

/// Errors reading the repository as a whole (single bad files become diagnostics instead).
#[derive(Debug, thiserror::Error)]
pub enum RepoError {
    /// The prompts folder is missing.
    #[error("prompts folder {} does not exist", display_path(.path))]
    NoPromptsDir {
        /// The folder looked for.
        path: PathBuf,
    },
    /// The prompts folder is a symbolic link, which would read files from elsewhere.
    #[error("prompts folder {} is a symbolic link: promptctl reads only the repository's own files", display_path(.path))]
    LinkedPromptsDir {
        /// The folder.
        path: PathBuf,
    },
    /// The prompts folder lies outside the project (`prompts_dir = "../elsewhere"`).
    #[error("prompts folder {} is outside the project {}: promptctl reads only the repository's own files", display_path(.path), display_path(.root))]
    OutsideProject {
        /// The folder.
        path: PathBuf,
        /// The project's root.
        root: PathBuf,
    },
    /// A file or folder could not be read.
    #[error("cannot read {}: {source}", display_path(.path))]
    Io {
        /// The path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
}

/// Errors finding a prompt by what the user typed, in the repository or the registry.
#[derive(Debug, thiserror::Error)]
pub enum LookupError {
    /// No prompt has that name.
    #[error("no prompt named `{query}`{place}{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    NotFound {
        /// What was asked for.
        query: String,
        /// Where it was looked for.
        place: Place,
        /// A close name, if any.
        suggestion: Option<String>,
    },
    /// Several services have a prompt of that name.
    #[error("`{query}` names prompts in several services: {}; write it as service/name", candidates.join(", "))]
    Ambiguous {
        /// What was asked for.
        query: String,
        /// The matching identities.
        candidates: Vec<String>,
    },
}

impl LookupError {
    /// `query` names none of `names` (each prompt's `name` and `service/name`) in `place`;
    /// the closest of them is the suggestion.
    pub fn not_found<'a>(
        query: &str,
        place: Place,
        names: impl IntoIterator<Item = &'a str>,
    ) -> LookupError {
        LookupError::NotFound {
            query: query.to_owned(),
            place,
            suggestion: closest(query, names).map(str::to_owned),
        }
    }
}

/// Where a prompt was looked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// The repository (a revision's history or the working tree).
    Repository,
    /// The PostgreSQL registry.
    Registry,
}

impl std::fmt::Display for Place {
    /// How a message names the place after the prompt: nothing for the repository.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Repository => Ok(()),
            Place::Registry => f.write_str(" in the registry"),
        }
    }
}

/// Partial templates by their path relative to the prompts folder.
pub type Partials = Arc<BTreeMap<String, String>>;

/// One prompt file, loaded.
#[derive(Debug, Clone)]
pub struct LoadedPrompt {
    /// The file, relative to the project root (e.g. `prompts/billing/invoice.yaml`).
    pub path: PathBuf,
    /// The file relative to the prompts folder (e.g. `billing/invoice.yaml`).
    pub relative: PathBuf,
    /// The file's text.
    pub source: String,
    /// The parsed file.
    pub file: PromptFile,
    /// Its identity, when it can be derived.
    pub id: Option<PromptId>,
    /// Its definition, when the file has a model and a template.
    pub definition: Option<Definition>,
}

/// Every prompt and partial of one tree.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    /// The prompts folder relative to the project root (e.g. `prompts`).
    pub prompts_dir: PathBuf,
    /// Prompt files that parsed, sorted by path.
    pub prompts: Vec<LoadedPrompt>,
    /// Partials by path relative to the prompts folder.
    pub partials: Partials,
    /// Files that could not be read or parsed.
    pub problems: Vec<Diagnostic>,
}

/// What a file under the prompts folder is, by its name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    /// A prompt file (`.yaml`, `.yml`).
    Prompt,
    /// A partial template (`.j2`, `.jinja`).
    Partial,
}

impl FileKind {
    /// The kind of a file, or `None` for files promptctl ignores (and hidden paths, such as
    /// the recordings folder).
    pub fn of(relative: &Path) -> Option<FileKind> {
        if relative
            .components()
            .any(|c| c.as_os_str().to_string_lossy().starts_with('.'))
        {
            return None;
        }
        match relative.extension()?.to_str()? {
            "yaml" | "yml" => Some(FileKind::Prompt),
            "j2" | "jinja" => Some(FileKind::Partial),
            _ => None,
        }
    }
}

/// The path of a partial as templates include it: relative to the prompts folder, with
/// forward slashes.
pub fn partial_name(relative: &Path) -> String {
    display_path(relative)
}

impl Snapshot {
    /// Loads the working tree's prompts folder: the files [`working_files`] finds, read
    /// with [`read_working_file`].
    pub fn load_working_tree(config: &Config) -> Result<Snapshot, RepoError> {
        let prompts_dir = config.prompts_dir();
        if !prompts_dir.is_dir() {
            return Err(RepoError::NoPromptsDir { path: prompts_dir });
        }
        let listed = working_files(&prompts_dir)?;
        let inside = prompts_dir
            .canonicalize()
            .ok()
            .zip(config.root.canonicalize().ok())
            .is_some_and(|(dir, root)| dir.starts_with(root));
        if !inside {
            return Err(RepoError::OutsideProject {
                path: prompts_dir,
                root: config.root.clone(),
            });
        }
        let shown_dir = &config.settings.prompts_dir;
        let mut files = Vec::new();
        let mut problems = Vec::new();
        for (relative, _) in listed {
            match read_working_file(&prompts_dir.join(&relative), &shown_dir.join(&relative)) {
                Ok(bytes) => files.push((relative, bytes)),
                Err(diagnostic) => problems.push(diagnostic),
            }
        }
        let mut snapshot = Snapshot::from_files(shown_dir, files);
        snapshot.problems.extend(problems);
        snapshot.problems.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(snapshot)
    }

    /// Builds a snapshot from files given relative to the prompts folder.
    pub fn from_files(prompts_dir: &Path, files: Vec<(PathBuf, Vec<u8>)>) -> Snapshot {
        let mut snapshot = Snapshot {
            prompts_dir: prompts_dir.to_path_buf(),
            ..Snapshot::default()
        };
        let mut partials = BTreeMap::new();
        let mut prompt_files = Vec::new();
        for (relative, bytes) in files {
            match FileKind::of(&relative) {
                Some(FileKind::Partial) => {
                    let path = prompts_dir.join(&relative);
                    match file::decode_text(&path, &bytes) {
                        Ok(text) => {
                            partials.insert(partial_name(&relative), text);
                        }
                        Err(diagnostic) => snapshot.problems.push(diagnostic),
                    }
                }
                Some(FileKind::Prompt) => prompt_files.push((relative, bytes)),
                None => {}
            }
        }
        let results = parse_all(prompts_dir, prompt_files);
        for result in results {
            match result {
                Ok(prompt) => snapshot.prompts.push(prompt),
                Err(diagnostic) => snapshot.problems.push(diagnostic),
            }
        }
        snapshot.prompts.sort_by(|a, b| a.path.cmp(&b.path));
        snapshot.partials = Arc::new(partials);
        snapshot
    }

    /// Finds a prompt by `name` or `service/name`.
    pub fn find(&self, query: &str) -> Result<&LoadedPrompt, LookupError> {
        find_by_query(
            self.prompts
                .iter()
                .filter_map(|prompt| Some((prompt.id.as_ref()?, prompt))),
            query,
        )
    }
}

/// Every path under the folder `dir` named like a prompt file or partial (relative to it,
/// sorted), skipping hidden paths, whatever it is: [`read_working_file`] reads only a
/// regular file and reports anything else (a symbolic link, a FIFO, a folder named
/// `x.yaml`), so nothing outside the repository is read, no read can hang and nothing is
/// silently left out. Links to folders are not followed; `dir` itself being a link is an
/// error. Every command that reads the working tree's prompts folder finds its files here.
pub fn working_files(dir: &Path) -> Result<Vec<(PathBuf, FileKind)>, RepoError> {
    if std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink()) {
        return Err(RepoError::LinkedPromptsDir {
            path: dir.to_path_buf(),
        });
    }
    let mut files = Vec::new();
    for entry in walkdir::WalkDir::new(dir)
        .follow_root_links(false)
        .sort_by_file_name()
    {
        let entry = entry.map_err(|err| RepoError::Io {
            path: err.path().unwrap_or(dir).to_path_buf(),
            source: err.into(),
        })?;
        let relative = entry
            .path()
            .strip_prefix(dir)
            .unwrap_or(entry.path())
            .to_path_buf();
        if entry.depth() == 0 {
            continue;
        }
        if let Some(kind) = FileKind::of(&relative) {
            files.push((relative, kind));
        }
    }
    Ok(files)
}

/// Reads one prompt file or partial of the working tree at `path` (`shown` names it in
/// problems), bounded: a file over [`file::MAX_FILE_BYTES`] is refused by its size without
/// being read, and at most one byte past the limit is read from a file growing meanwhile.
/// A path that is not a regular file (a symbolic link, looked at itself and never
/// followed, a FIFO, a folder), or cannot be read, is a problem naming it and why.
pub fn read_working_file(path: &Path, shown: &Path) -> Result<Vec<u8>, Diagnostic> {
    use crate::files::ReadError;
    let refuse = |code: &'static str, message: String, help: &str| {
        Diagnostic::error(code, shown, crate::diagnostic::Position::start(), message)
            .with_help(help)
    };
    match crate::files::read_regular(path, file::MAX_FILE_BYTES as u64) {
        Ok(bytes) => Ok(bytes),
        Err(ReadError::TooLarge { size, .. }) => Err(file::too_large(shown, size)),
        Err(ReadError::NotRegular { kind, .. }) => {
            let (what, help) = match kind {
                "a folder" => (
                    "a directory",
                    "rename it: names ending in .yaml, .yml, .j2 or .jinja are prompt files and partials",
                ),
                "a symbolic link" => (
                    "a symbolic link",
                    "replace it with the file itself: promptctl reads regular files only, and Git stores a link, not what it points to",
                ),
                _ => (
                    "not a regular file (a FIFO, socket or device)",
                    "remove it from the prompts folder",
                ),
            };
            Err(refuse(
                "not-a-file",
                format!("this is {what}, not a prompt file that can be loaded"),
                help,
            ))
        }
        Err(ReadError::Io { source, .. }) => Err(refuse(
            "unreadable",
            format!("cannot read the file: {source}"),
            "make it readable by the user running promptctl",
        )),
    }
}

/// The one item whose identity `query` (`name` or `service/name`) names: not found (with a
/// close name as suggestion) or ambiguous (a name used by several services) otherwise.
pub fn find_by_query<'a, T>(
    items: impl Iterator<Item = (&'a PromptId, &'a T)> + Clone,
    query: &str,
) -> Result<&'a T, LookupError> {
    let matches: Vec<(&PromptId, &T)> = items
        .clone()
        .filter(|(id, _)| id_matches(id, query))
        .collect();
    match matches.as_slice() {
        [(_, one)] => Ok(one),
        [] => {
            let names: Vec<String> = items
                .flat_map(|(id, _)| [id.name.clone(), id.to_string()])
                .collect();
            Err(LookupError::not_found(
                query,
                Place::Repository,
                names.iter().map(String::as_str),
            ))
        }
        many => Err(LookupError::Ambiguous {
            query: query.to_owned(),
            candidates: many.iter().map(|(id, _)| id.to_string()).collect(),
        }),
    }
}

/// Whether `query` (`name` or `service/name`) names `id`.
pub fn id_matches(id: &PromptId, query: &str) -> bool {
    match query.split_once('/') {
        Some((service, name)) => id.service == service && id.name == name,
        None => id.name == query,
    }
}

fn parse_one(
    prompts_dir: &Path,
    relative: PathBuf,
    bytes: &[u8],
) -> Result<LoadedPrompt, Diagnostic> {
    let path = prompts_dir.join(&relative);
    let source = file::decode_text(&path, bytes)?;
    let parsed = file::parse_prompt(&path, &source)?;
    let id = PromptId::of(&parsed, &relative);
    let definition = Definition::of(&parsed);
    Ok(LoadedPrompt {
        path,
        relative,
        source,
        file: parsed,
        id,
        definition,
    })
}

/// Parses files on every core: parsing dominates `check` on large repositories.
fn parse_all(
    prompts_dir: &Path,
    files: Vec<(PathBuf, Vec<u8>)>,
) -> Vec<Result<LoadedPrompt, Diagnostic>> {
    crate::parallel::map_sized(
        &files,
        |(_, bytes)| bytes.len(),
        |(relative, bytes)| parse_one(prompts_dir, relative.clone(), bytes),
    )
}

/// Maps a place inside a YAML string scalar (1-based line and column within the string's
/// value) to its place in the file, given where the parser located the scalar
/// (`value_line`, `value_column`, 1-based: the first content line of a block scalar, the
/// opening quote or first character of a flow scalar). Exact for block scalars (`|`, `>`)
/// and single-line scalars; for multi-line flow scalars it falls back to the scalar's start.
pub fn locate_in_scalar(
    source: &str,
    value_line: usize,
    value_column: usize,
    line_in_value: usize,
    column_in_value: usize,
) -> crate::diagnostic::Position {
    use crate::diagnostic::Position;
    let line_at = |line: usize| source.lines().nth(line.saturating_sub(1));
    let Some(first) = line_at(value_line) else {
        return Position::new(value_line, value_column);
    };
    let after_block_indicator = value_line > 1
        && line_at(value_line - 1).is_some_and(|previous| {
            let code = previous.split(" #").next().unwrap_or(previous).trim_end();
            let tail = code.trim_end_matches(|c: char| c.is_ascii_digit() || c == '-' || c == '+');
            tail.ends_with('|') || tail.ends_with('>')
        });
    if after_block_indicator {
        return Position::new(
            value_line + line_in_value - 1,
            value_column + column_in_value - 1,
        );
    }
    match first.chars().nth(value_column.saturating_sub(1)) {
        Some('"' | '\'') if line_in_value == 1 => {
            Position::new(value_line, value_column + column_in_value)
        }
        _ if line_in_value == 1 => Position::new(value_line, value_column + column_in_value - 1),
        _ => Position::new(value_line, value_column),
    }
}
