//! Findings about the user's files, each pointing at a place in a file.
//!
//! A [`Diagnostic`] is what `check` reports and what the loader returns for a file it
//! cannot read: a severity, a stable code, a message, the file with a line and column, the
//! offending line itself, and a hint saying what to do. Library code only builds them; the
//! command line decides how to print them (see `cli::output`).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// How serious a finding is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    /// Worth fixing, but does not fail `check` unless `--strict` is given.
    Warning,
    /// Fails `check`.
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// A place in a file: 1-based line and column (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Default)]
pub struct Position {
    /// 1-based line number.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
}

impl Position {
    /// A position from a 1-based line and column.
    pub fn new(line: usize, column: usize) -> Self {
        Position {
            line: line.max(1),
            column: column.max(1),
        }
    }

    /// The start of the file.
    pub fn start() -> Self {
        Position::new(1, 1)
    }
}

/// One finding about a user's file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// A stable, kebab-case identifier of the rule, e.g. `undeclared-variable`.
    pub code: &'static str,
    /// What is wrong, in one sentence.
    pub message: String,
    /// The file, relative to the project root.
    pub path: PathBuf,
    /// Where in the file.
    #[serde(flatten)]
    pub position: Position,
    /// How many characters to underline from `position` (at least 1).
    pub length: usize,
    /// The text of the offending line, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub line_text: Option<String>,
    /// What to do about it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub help: Option<String>,
}

impl Diagnostic {
    /// A finding of `severity` at `path:position`.
    pub fn new(
        severity: Severity,
        code: &'static str,
        path: impl Into<PathBuf>,
        position: Position,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic {
            severity,
            code,
            message: message.into(),
            path: path.into(),
            position,
            length: 1,
            line_text: None,
            help: None,
        }
    }

    /// An error at `path:position`.
    pub fn error(
        code: &'static str,
        path: impl Into<PathBuf>,
        position: Position,
        message: impl Into<String>,
    ) -> Self {
        Diagnostic::new(Severity::Error, code, path, position, message)
    }

    /// Adds a hint saying what to do.
    #[must_use]
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Sets how many characters to underline.
    #[must_use]
    pub fn with_length(mut self, length: usize) -> Self {
        self.length = length.max(1);
        self
    }

    /// Fills in the offending line from the file's source text.
    #[must_use]
    pub fn with_source(mut self, source: &str) -> Self {
        self.line_text = source
            .lines()
            .nth(self.position.line.saturating_sub(1))
            .map(|line| line.trim_end_matches('\r').to_owned());
        self
    }

    /// `path:line:col`, the way compilers name a place.
    pub fn location(&self) -> String {
        format!(
            "{}:{}:{}",
            display_path(&self.path),
            self.position.line,
            self.position.column
        )
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}: {}: {}",
            self.location(),
            self.severity,
            self.message
        )
    }
}

/// A path as users write it: forward slashes on every platform.
pub fn display_path(path: &Path) -> String {
    path.to_string_lossy().replace('\\', "/")
}

/// The closest of `candidates` to `word`, when it is close enough to be a likely typo.
pub fn closest<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|candidate| (strsim::jaro_winkler(word, candidate), candidate))
        .filter(|(score, _)| *score > 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, candidate)| candidate)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn closest_finds_typos_and_ignores_strangers() {
        let fields = ["model", "messages", "template", "variables"];
        assert_eq!(closest("modle", fields), Some("model"));
        assert_eq!(closest("variabels", fields), Some("variables"));
        assert_eq!(closest("zzz", fields), None);
    }

    #[test]
    fn with_source_picks_the_line() {
        let d =
            Diagnostic::error("x", "a.yaml", Position::new(2, 3), "m").with_source("one\ntwo\r\n");
        assert_eq!(d.line_text.as_deref(), Some("two"));
        assert_eq!(d.to_string(), "a.yaml:2:3: error: m");
    }
}
