//! Go to definition: from an include path to the partial, from a variable in a template
//! tag to its declaration.

use lsp_types::{GotoDefinitionResponse, Location, Position, Range, Url};

use super::Project;
use super::completion::{declared_variables, open_tag};
use super::documents::{Cursor, byte_to_utf16};
use super::hover::{line_range, word_at};
use crate::render::{find_includes, include_path_is_safe};

/// Where the symbol at the cursor is defined.
pub fn definition(project: &Project, at: &Cursor<'_>) -> Option<GotoDefinitionResponse> {
    if let Some(include) = find_includes(at.line).into_iter().find(|include| {
        (include.offset..=include.offset + include.target.len()).contains(&at.cursor)
    }) {
        if !include_path_is_safe(&include.target) {
            return None;
        }
        let target = Url::from_file_path(project.prompts_abs.join(&include.target)).ok()?;
        return Some(GotoDefinitionResponse::Scalar(Location::new(
            target,
            Range::default(),
        )));
    }
    let (start, end) = word_at(at.line, at.cursor)?;
    open_tag(&at.line[..start])?;
    let word = &at.line[start..end];
    let declared = declared_variables(&at.path, at.text)
        .into_iter()
        .find(|declared| declared.name == word)?;
    let (line_index, column) = declared.at?;
    let declaration_line = at.text.lines().nth(line_index)?;
    let start = Position::new(line_index as u32, byte_to_utf16(declaration_line, column));
    let range = Range::new(
        start,
        line_range(
            declaration_line,
            line_index as u32,
            column,
            column + word.len(),
        )
        .end,
    );
    Some(GotoDefinitionResponse::Scalar(Location::new(
        at.uri.clone(),
        range,
    )))
}
