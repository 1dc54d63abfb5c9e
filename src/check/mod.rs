//! `promptctl check`: lint rules over a loaded snapshot.
//!
//! Every rule returns [`Diagnostic`]s pointing at the line in the user's file; nothing stops
//! at the first problem. Files that did not parse arrive as the snapshot's `problems`.
//! The rules for one prompt live in `prompt.rs`, the rules across files here.

pub mod environments;
mod prompt;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde::Serialize;

use crate::diagnostic::{Diagnostic, Position, Severity};
use crate::render::{Renderer, TemplatePart, find_includes, template_error};
use crate::repo::{PromptId, Snapshot};

/// The outcome of checking a snapshot.
#[derive(Debug, Clone, Serialize)]
pub struct CheckReport {
    /// How many prompt files were checked.
    pub prompts: usize,
    /// How many partials were checked.
    pub partials: usize,
    /// Every finding, sorted by file and position.
    pub diagnostics: Vec<Diagnostic>,
}

impl CheckReport {
    /// How many findings have `severity`.
    pub fn count(&self, severity: Severity) -> usize {
        self.diagnostics
            .iter()
            .filter(|d| d.severity == severity)
            .count()
    }

    /// Whether some file could not be read at all (bad input: exit 2 rather than 1).
    pub fn has_unreadable_files(&self) -> bool {
        self.diagnostics.iter().any(|d| is_unreadable_code(d.code))
    }
}

/// Codes of findings that mean the file could not be read as a prompt file at all.
pub fn is_unreadable_code(code: &str) -> bool {
    matches!(
        code,
        "file-too-large"
            | "not-a-file"
            | "unreadable"
            | "binary-file"
            | "not-utf8"
            | "empty-file"
            | "yaml-syntax"
            | "yaml-limits"
            | "schema"
    )
}

/// Runs every rule over `snapshot`.
pub fn check(snapshot: &Snapshot) -> CheckReport {
    check_cancellable(snapshot, None)
}

/// Runs every rule over `snapshot`, stopping the rendering of test cases once `cancel` is
/// set (the language server, when a newer edit replaces the buffer being checked).
pub fn check_cancellable(snapshot: &Snapshot, cancel: Option<Arc<AtomicBool>>) -> CheckReport {
    let renderer = Renderer::new(snapshot.partials.clone());
    let partial_variables = analyse_partials(snapshot, &renderer);
    let mut diagnostics = snapshot.problems.clone();
    diagnostics.extend(partial_variables.diagnostics.iter().cloned());
    let per_prompt = crate::parallel::map(&snapshot.prompts, |loaded| {
        prompt::check_prompt(
            loaded,
            &renderer,
            snapshot,
            &partial_variables,
            cancel.as_ref(),
        )
    });
    diagnostics.extend(per_prompt.into_iter().flatten());
    diagnostics.extend(duplicate_identities(snapshot));
    diagnostics
        .sort_by(|a, b| (&a.path, a.position, &a.message).cmp(&(&b.path, b.position, &b.message)));
    diagnostics.dedup();
    CheckReport {
        prompts: snapshot.prompts.len()
            + snapshot
                .problems
                .iter()
                .filter(|d| {
                    d.path
                        .extension()
                        .is_some_and(|e| e == "yaml" || e == "yml")
                })
                .count(),
        partials: snapshot.partials.len(),
        diagnostics,
    }
}

fn duplicate_identities(snapshot: &Snapshot) -> Vec<Diagnostic> {
    let mut seen: BTreeMap<&PromptId, &PathBuf> = BTreeMap::new();
    let mut found = Vec::new();
    for loaded in &snapshot.prompts {
        let Some(id) = &loaded.id else { continue };
        if let Some(first) = seen.get(id) {
            let position = loaded
                .file
                .name
                .as_ref()
                .map(|name| {
                    Position::new(
                        name.referenced.line() as usize,
                        name.referenced.column() as usize,
                    )
                })
                .unwrap_or_else(Position::start);
            found.push(
                Diagnostic::error(
                    "duplicate-prompt",
                    &loaded.path,
                    position,
                    format!(
                        "prompt `{id}` is also defined in {}",
                        crate::diagnostic::display_path(first)
                    ),
                )
                .with_source(&loaded.source)
                .with_help("rename one of them (`name:`) or move it to another service"),
            );
        } else {
            seen.insert(id, &loaded.path);
        }
    }
    found
}

/// What the partials use: their variables (through nested includes) and their own problems.
#[derive(Debug, Default)]
pub struct PartialAnalysis {
    /// Variables each partial uses, including those of the partials it includes.
    pub variables: BTreeMap<String, BTreeSet<String>>,
    /// Problems inside partials: syntax errors, bad includes.
    pub diagnostics: Vec<Diagnostic>,
}

fn analyse_partials(snapshot: &Snapshot, renderer: &Renderer) -> PartialAnalysis {
    let mut analysis = PartialAnalysis::default();
    let mut direct: BTreeMap<&str, (BTreeSet<String>, Vec<String>)> = BTreeMap::new();
    for (name, source) in snapshot.partials.iter() {
        let path = snapshot.prompts_dir.join(name);
        let used = match renderer.compile(source) {
            Ok(used) => used,
            Err(err) => {
                let position = error_position_in_text(source, &err);
                let message = template_error(TemplatePart::Partial(name.clone()), &err).to_string();
                analysis.diagnostics.push(
                    Diagnostic::error("template-syntax", &path, position, message)
                        .with_source(source),
                );
                BTreeSet::new()
            }
        };
        let mut includes = Vec::new();
        for include in find_includes(source) {
            let (line, column) = line_column(source, include.offset);
            if let Some(diagnostic) = prompt::include_problem(&include.target, snapshot) {
                analysis.diagnostics.push(
                    Diagnostic::error(
                        diagnostic.0,
                        &path,
                        Position::new(line, column),
                        diagnostic.1,
                    )
                    .with_length(include.target.chars().count())
                    .with_source(source)
                    .with_help(diagnostic.2),
                );
            } else {
                includes.push(include.target);
            }
        }
        direct.insert(name, (used, includes));
    }
    for name in direct.keys() {
        let mut all = BTreeSet::new();
        let mut stack = vec![*name];
        let mut visited = BTreeSet::new();
        while let Some(current) = stack.pop() {
            if !visited.insert(current) {
                continue;
            }
            if let Some((used, includes)) = direct.get(current) {
                all.extend(used.iter().cloned());
                stack.extend(includes.iter().map(String::as_str));
            }
        }
        analysis.variables.insert((*name).to_owned(), all);
    }
    analysis
}

/// 1-based line and column (in characters) of a byte offset in `text`.
pub fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let position = crate::config::offset_to_position(text, offset);
    (position.line, position.column)
}

/// Where a minijinja error points inside its template's own text.
pub fn error_position_in_text(text: &str, err: &minijinja::Error) -> Position {
    match (err.range(), err.line()) {
        (Some(range), _) => crate::config::offset_to_position(text, range.start),
        (None, Some(line)) => Position::new(line, 1),
        _ => Position::start(),
    }
}
