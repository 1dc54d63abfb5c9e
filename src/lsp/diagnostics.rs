//! Diagnostics for one open buffer: the findings of `promptctl check`, the same messages at
//! the same places, as LSP diagnostics.
//!
//! For speed only the changed document is checked, against the working tree's partials
//! (with open partial buffers laid over them): rules that need every prompt file, such as
//! two files defining the same prompt, are left to `promptctl check`.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use lsp_types::{DiagnosticSeverity, NumberOrString, Range};

use super::Project;
use super::documents::{end_on_line, from_line_column};
use crate::check::check_cancellable;
use crate::diagnostic::{Diagnostic, Severity};
use crate::repo::Snapshot;

/// The findings of `check` for the buffer `text` of `file` (an absolute path); when
/// `cancel` is set meanwhile, the test cases left are not rendered.
pub fn for_document(
    project: &Project,
    file: &Path,
    text: &str,
    cancel: &Arc<AtomicBool>,
) -> Vec<lsp_types::Diagnostic> {
    let Some(relative) = project.relative(file) else {
        return Vec::new();
    };
    let prompts_dir = &project.config.settings.prompts_dir;
    let mut snapshot = Snapshot::from_files(
        prompts_dir,
        vec![(relative.clone(), text.as_bytes().to_vec())],
    );
    snapshot.partials = project.partials.clone();
    let path = prompts_dir.join(&relative);
    check_cancellable(&snapshot, Some(cancel.clone()))
        .diagnostics
        .iter()
        .filter(|d| d.path == path)
        .map(|d| to_lsp(text, d))
        .collect()
}

/// One finding as an LSP diagnostic; the hint goes into `data.help`, where clients that
/// show it can.
pub fn to_lsp(text: &str, diagnostic: &Diagnostic) -> lsp_types::Diagnostic {
    let start = from_line_column(text, diagnostic.position.line, diagnostic.position.column);
    let end = end_on_line(
        text,
        diagnostic.position.line,
        diagnostic.position.column,
        diagnostic.length,
    );
    lsp_types::Diagnostic {
        range: Range::new(start, end),
        severity: Some(match diagnostic.severity {
            Severity::Error => DiagnosticSeverity::ERROR,
            Severity::Warning => DiagnosticSeverity::WARNING,
        }),
        code: Some(NumberOrString::String(diagnostic.code.to_owned())),
        source: Some("promptctl".to_owned()),
        message: diagnostic.message.clone(),
        data: diagnostic
            .help
            .as_ref()
            .map(|help| serde_json::json!({ "help": help })),
        ..lsp_types::Diagnostic::default()
    }
}
