//! Go to definition: from an include path to the partial, from a variable in a template
//! tag to its declaration.

use lsp_types::{GotoDefinitionParams, GotoDefinitionResponse, Location, Position, Range, Url};

use super::Project;
use super::completion::{declared_variables, open_tag};
use super::documents::{Documents, byte_to_utf16, line_at};
use super::hover::{line_range, word_at};
use crate::render::{find_includes, include_path_is_safe};

/// Where the symbol at the cursor is defined.
pub fn definition(
    project: &Project,
    documents: &Documents,
    params: &GotoDefinitionParams,
) -> Option<GotoDefinitionResponse> {
    let position = params.text_document_position_params.position;
    let uri = &params.text_document_position_params.text_document.uri;
    let text = documents.get(uri)?;
    let (line, cursor) = line_at(text, position)?;

    if let Some(include) = find_includes(line)
        .into_iter()
        .find(|include| (include.offset..=include.offset + include.target.len()).contains(&cursor))
    {
        if !include_path_is_safe(&include.target) {
            return None;
        }
        let target = Url::from_file_path(project.prompts_abs.join(&include.target)).ok()?;
        return Some(GotoDefinitionResponse::Scalar(Location::new(
            target,
            Range::default(),
        )));
    }
    let (start, end) = word_at(line, cursor)?;
    open_tag(&line[..start])?;
    let path = uri.to_file_path().unwrap_or_default();
    let word = &line[start..end];
    let declared = declared_variables(&path, text)
        .into_iter()
        .find(|declared| declared.name == word)?;
    let (line_index, column) = declared.at?;
    let declaration_line = text.lines().nth(line_index)?;
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
        uri.clone(),
        range,
    )))
}
