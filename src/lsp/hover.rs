//! Hover: a variable's declaration, and on `template:` or `messages:` the prompt rendered
//! with its first test case's variables.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use lsp_types::{Hover, HoverContents, MarkupContent, MarkupKind, Position, Range};

use super::Project;
use super::completion::{declared_variables, open_tag, spec_markdown};
use super::documents::{Cursor, byte_to_utf16};
use crate::render::Renderer;
use crate::repo::Definition;
use crate::repo::file::parse_prompt;

/// The hover at the cursor.
pub fn hover(project: &Project, at: &Cursor<'_>) -> Option<Hover> {
    if let Some((start, end)) = word_at(at.line, at.cursor)
        && open_tag(&at.line[..start]).is_some()
        && !at.line[..start].ends_with('.')
    {
        let word = &at.line[start..end];
        let declared = declared_variables(&at.path, at.text)
            .into_iter()
            .find(|declared| declared.name == word)?;
        return Some(Hover {
            contents: HoverContents::Markup(spec_markdown(word, declared.spec.as_ref())),
            range: Some(line_range(at.line, at.position.line, start, end)),
        });
    }
    let key = ["template", "messages"]
        .into_iter()
        .find(|key| at.line.starts_with(&format!("{key}:")) && at.cursor <= key.len())?;
    Some(Hover {
        contents: HoverContents::Markup(MarkupContent {
            kind: MarkupKind::Markdown,
            value: rendered(project, &at.path, at.text),
        }),
        range: Some(line_range(at.line, at.position.line, 0, key.len())),
    })
}

/// The prompt rendered with its first test case's variables, or why it cannot be.
fn rendered(project: &Project, path: &std::path::Path, text: &str) -> String {
    let file = match parse_prompt(path, text) {
        Ok(file) => file,
        Err(diagnostic) => return format!("Cannot render: {}", diagnostic.message),
    };
    let Some(definition) = Definition::of(&file) else {
        return "Cannot render: the prompt needs `model:` and `template:` or `messages:`."
            .to_owned();
    };
    let (vars, source) = match file.tests.as_ref().and_then(|tests| tests.value.first()) {
        Some(test) => (
            test.value.vars.clone(),
            format!(
                "test `{}`",
                test.value.name.clone().unwrap_or_else(|| "1".to_owned())
            ),
        ),
        None => (BTreeMap::new(), "no test case: defaults only".to_owned()),
    };
    let renderer = Renderer::new(project.partials.clone());
    match renderer.render(&definition, &vars) {
        Ok(messages) => {
            let mut out = format!("Rendered with the variables of {source}:\n");
            for message in messages {
                let fence = code_fence(&message.content);
                let _ = write!(
                    out,
                    "\n**{}**\n{fence}text\n{}\n{fence}\n",
                    message.role.as_str(),
                    message.content
                );
            }
            out
        }
        Err(err) => format!("Cannot render with the variables of {source}: {err}"),
    }
}

/// A Markdown code fence that `text` cannot close: backticks, one more than the longest
/// run of them at the start of a line of `text` (at least three), lines ending at `\n`
/// or `\r`.
pub fn code_fence(text: &str) -> String {
    // Markdown ends a line at a lone carriage return too.
    let longest = text
        .split(['\n', '\r'])
        .map(|line| line.trim_start().chars().take_while(|c| *c == '`').count())
        .max()
        .unwrap_or(0);
    "`".repeat(longest.max(2) + 1)
}

/// The identifier around byte `cursor` of `line`, as a byte range.
pub fn word_at(line: &str, cursor: usize) -> Option<(usize, usize)> {
    let is_ident = |c: char| c.is_alphanumeric() || c == '_';
    let start = line[..cursor]
        .char_indices()
        .rev()
        .take_while(|(_, c)| is_ident(*c))
        .last()
        .map_or(cursor, |(index, _)| index);
    let end = line[cursor..]
        .char_indices()
        .find(|(_, c)| !is_ident(*c))
        .map_or(line.len(), |(index, _)| cursor + index);
    (end > start).then_some((start, end))
}

/// An LSP range of a byte range on line `line_number`.
pub fn line_range(line: &str, line_number: u32, start: usize, end: usize) -> Range {
    Range::new(
        Position::new(line_number, byte_to_utf16(line, start)),
        Position::new(line_number, byte_to_utf16(line, end)),
    )
}

#[cfg(test)]
mod tests {
    use super::code_fence;

    #[test]
    fn no_line_of_the_text_closes_its_fence() {
        assert_eq!(code_fence("plain"), "```");
        assert_eq!(code_fence("a\n```\nb"), "````");
        assert_eq!(code_fence("a\r  `````\r# heading"), "``````");
        assert_eq!(code_fence("~~~~\n```"), "````");
    }
}
