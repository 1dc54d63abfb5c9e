//! Formatting through `promptctl fmt`'s formatter: one edit replacing the whole buffer.

use lsp_types::{DocumentFormattingParams, Position, Range, TextEdit};

use super::documents::{Documents, byte_to_utf16};
use crate::format::format_prompt_at;
use crate::repo::FileKind;

/// The edits that format the buffer: none when it is already formatted or is not a prompt
/// file, an error message when it cannot be formatted (it does not parse, or uses YAML
/// the formatter leaves alone).
pub fn format(
    project: &super::Project,
    documents: &Documents,
    params: &DocumentFormattingParams,
) -> Result<Vec<TextEdit>, String> {
    let uri = &params.text_document.uri;
    let Some(text) = documents.get(uri) else {
        return Err(format!("{uri} is not open"));
    };
    let path = uri.to_file_path().unwrap_or_default();
    // Only prompt files, as `promptctl fmt` decides: not `environments.yaml`, workflows or
    // other YAML outside the prompts folder.
    let is_prompt = project
        .relative(&path)
        .is_some_and(|relative| FileKind::of(&relative) == Some(FileKind::Prompt));
    if !is_prompt {
        return Ok(Vec::new());
    }
    let formatted = format_prompt_at(&path, text)
        .map_err(|diagnostic| format!("cannot format: {}", diagnostic.message))?;
    if formatted == text {
        return Ok(Vec::new());
    }
    Ok(vec![TextEdit::new(
        Range::new(Position::new(0, 0), end_of(text)),
        formatted,
    )])
}

/// The position just past the last character of `text`.
fn end_of(text: &str) -> Position {
    let lines = text.matches('\n').count();
    let last = text.rsplit('\n').next().unwrap_or_default();
    Position::new(lines as u32, byte_to_utf16(last, last.len()))
}
