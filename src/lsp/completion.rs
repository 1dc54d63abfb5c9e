//! Completion, and the reading of a buffer it shares with hover and definition: where the
//! cursor is (inside a template tag, an include path, after a YAML key) and which
//! variables the prompt declares, even while the buffer does not parse.

use std::path::Path;
use std::sync::LazyLock;

use lsp_types::{
    CompletionItem, CompletionItemKind, CompletionResponse, CompletionTextEdit, Documentation,
    MarkupContent, MarkupKind, Position, Range, TextEdit,
};
use regex::Regex;

use super::Project;
use super::documents::{Cursor, byte_to_utf16};
use crate::repo::VariableSpec;
use crate::repo::file::{ASSERTION_KEYS, AssertionKind, PROMPT_KEYS, parse_prompt};

/// The model every project has: it answers with the rendered prompt.
const BUILTIN_MODEL: &str = "echo";

/// Variable types as written in files.
const VARIABLE_TYPES: &[&str] = &[
    "string", "number", "integer", "boolean", "array", "object", "any",
];

static INCLUDE_PATH: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"\{%[-+]?\s*(?:include|import|from|extends)\s+["']([^"']*)$"#)
        .unwrap_or_else(|err| unreachable!("{err}"))
});
static MODEL_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^\s*(?:-\s+)?|[{,]\s*)model:\s*([\w.\-/:]*)$")
        .unwrap_or_else(|err| unreachable!("{err}"))
});
static TYPE_VALUE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?:^\s*(?:-\s+)?|[{,]\s*)type:\s*(\w*)$")
        .unwrap_or_else(|err| unreachable!("{err}"))
});
static BLOCK_KEY: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:-\s+)?(\w*)$").unwrap_or_else(|err| unreachable!("{err}"))
});
static FLOW_KEY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"[{,]\s*(\w*)$").unwrap_or_else(|err| unreachable!("{err}")));

/// A variable the prompt declares.
#[derive(Debug, Clone)]
pub struct Declared {
    /// Its name.
    pub name: String,
    /// Its declaration, when the buffer parses.
    pub spec: Option<VariableSpec>,
    /// Where its name is written: 0-based line and byte column, when found.
    pub at: Option<(usize, usize)>,
}

/// The variables `text` declares: from a parse of the buffer, or, while it does not
/// parse, from the keys of its `variables:` block.
pub fn declared_variables(path: &Path, text: &str) -> Vec<Declared> {
    let scanned = scan_variables_block(text);
    let locate = |name: &str| {
        scanned
            .iter()
            .find(|(candidate, _)| candidate == name)
            .map(|(_, at)| *at)
    };
    match parse_prompt(path, text) {
        Ok(file) => file
            .variables
            .unwrap_or_default()
            .into_iter()
            .map(|(name, spec)| Declared {
                at: locate(&name),
                name,
                spec: Some(spec.value),
            })
            .collect(),
        Err(_) => scanned
            .iter()
            .map(|(name, at)| Declared {
                name: name.clone(),
                spec: None,
                at: Some(*at),
            })
            .collect(),
    }
}

/// The keys of the top-level `variables:` block with their 0-based line and byte column.
fn scan_variables_block(text: &str) -> Vec<(String, (usize, usize))> {
    let mut found = Vec::new();
    let mut inside = false;
    let mut child_indent: Option<usize> = None;
    for (index, line) in text.lines().enumerate() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = line.len() - trimmed.len();
        if indent == 0 {
            inside = trimmed.starts_with("variables:");
            child_indent = None;
            continue;
        }
        if !inside {
            continue;
        }
        let expected = *child_indent.get_or_insert(indent);
        if indent != expected {
            continue;
        }
        if let Some((key, _)) = trimmed.split_once(':') {
            let key = key.trim().trim_matches(['"', '\'']);
            if !key.is_empty() {
                found.push((key.to_owned(), (index, indent)));
            }
        }
    }
    found
}

/// The byte index of the unclosed `{{` or `{%` before the cursor, when the cursor is
/// inside a template tag on this line.
pub fn open_tag(prefix: &str) -> Option<usize> {
    let last_open = ["{{", "{%"]
        .iter()
        .filter_map(|open| prefix.rfind(open))
        .max()?;
    let last_close = ["}}", "%}"]
        .iter()
        .filter_map(|close| prefix.rfind(close))
        .max();
    match last_close {
        Some(close) if close > last_open => None,
        _ => Some(last_open),
    }
}

/// The keys enclosing 0-based line `index` of a YAML text, nearest first, found by
/// indentation (a list item belongs to the key above it).
pub fn parent_keys(text: &str, index: usize) -> Vec<String> {
    let lines: Vec<&str> = text.lines().collect();
    let Some(current) = lines.get(index) else {
        return Vec::new();
    };
    let indent_of = |line: &str| line.len() - line.trim_start().len();
    let mut limit = indent_of(current);
    let mut allow_equal = current.trim_start().starts_with('-');
    let mut keys = Vec::new();
    for line in lines[..index].iter().rev() {
        let trimmed = line.trim_start();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        let indent = indent_of(line);
        let is_item = trimmed.starts_with('-');
        if indent < limit || (allow_equal && indent == limit && !is_item) {
            limit = indent;
            allow_equal = is_item;
            if !is_item && let Some((key, _)) = trimmed.split_once(':') {
                keys.push(key.trim().to_owned());
            }
            if indent == 0 && !is_item {
                break;
            }
        }
    }
    keys
}

/// Completion items at the cursor.
pub fn complete(project: &Project, at: &Cursor<'_>) -> Option<CompletionResponse> {
    let prefix = &at.line[..at.cursor];

    if let Some(captures) = INCLUDE_PATH.captures(prefix) {
        let typed = captures.get(1).map_or("", |m| m.as_str());
        let range = typed_range(prefix, typed, at.position);
        let items = project
            .partials
            .keys()
            .map(|name| CompletionItem {
                label: name.clone(),
                kind: Some(CompletionItemKind::FILE),
                text_edit: Some(CompletionTextEdit::Edit(TextEdit::new(range, name.clone()))),
                ..CompletionItem::default()
            })
            .collect();
        return Some(CompletionResponse::Array(items));
    }
    if open_tag(prefix).is_some() {
        let items = declared_variables(&at.path, at.text)
            .into_iter()
            .map(|declared| CompletionItem {
                detail: declared.spec.as_ref().map(spec_summary),
                documentation: declared
                    .spec
                    .as_ref()
                    .and_then(|spec| spec.description.clone())
                    .map(Documentation::String),
                label: declared.name,
                kind: Some(CompletionItemKind::VARIABLE),
                ..CompletionItem::default()
            })
            .collect();
        return Some(CompletionResponse::Array(items));
    }
    if MODEL_VALUE.is_match(prefix) {
        let mut models: Vec<&str> = project
            .config
            .settings
            .models
            .keys()
            .map(String::as_str)
            .collect();
        if !models.contains(&BUILTIN_MODEL) {
            models.push(BUILTIN_MODEL);
        }
        return Some(words(&models, CompletionItemKind::VALUE));
    }
    let parents = parent_keys(at.text, at.position.line as usize);
    let in_assertion = parents
        .first()
        .is_some_and(|key| key == "assert" || key == "monitor");
    if TYPE_VALUE.is_match(prefix) {
        if in_assertion {
            // Under `monitor:`, only what `check` accepts there (no expected output).
            let monitor = parents.first().is_some_and(|key| key == "monitor");
            let names: Vec<&str> = AssertionKind::NAMES
                .iter()
                .filter(|(_, kind)| !monitor || kind.allowed_in_monitor())
                .map(|(name, _)| *name)
                .collect();
            return Some(words(&names, CompletionItemKind::ENUM_MEMBER));
        }
        let is_variable = parents.first().is_some_and(|key| key == "variables")
            || parents.get(1).is_some_and(|key| key == "variables");
        if is_variable {
            return Some(words(VARIABLE_TYPES, CompletionItemKind::ENUM_MEMBER));
        }
        return None;
    }
    let in_flow_map = prefix
        .rfind('{')
        .is_some_and(|open| !prefix[open..].contains('}'));
    if in_assertion && ((in_flow_map && FLOW_KEY.is_match(prefix)) || BLOCK_KEY.is_match(prefix)) {
        return Some(keys(ASSERTION_KEYS));
    }
    if parents.is_empty() && !at.line.starts_with([' ', '\t', '-']) && BLOCK_KEY.is_match(prefix) {
        return Some(keys(PROMPT_KEYS));
    }
    None
}

/// The range of what the user typed just before the cursor.
fn typed_range(prefix: &str, typed: &str, position: Position) -> Range {
    let start = byte_to_utf16(prefix, prefix.len() - typed.len());
    Range::new(Position::new(position.line, start), position)
}

fn words(names: &[&str], kind: CompletionItemKind) -> CompletionResponse {
    CompletionResponse::Array(
        names
            .iter()
            .map(|name| CompletionItem {
                label: (*name).to_owned(),
                kind: Some(kind),
                ..CompletionItem::default()
            })
            .collect(),
    )
}

fn keys(names: &[&str]) -> CompletionResponse {
    CompletionResponse::Array(
        names
            .iter()
            .map(|name| CompletionItem {
                label: (*name).to_owned(),
                kind: Some(CompletionItemKind::PROPERTY),
                insert_text: Some(format!("{name}: ")),
                ..CompletionItem::default()
            })
            .collect(),
    )
}

/// One line about a declaration: type, and required or default.
pub fn spec_summary(spec: &VariableSpec) -> String {
    let kind = spec.kind.map_or("any", |kind| kind.as_str());
    match (&spec.default, spec.required) {
        (Some(default), _) => format!("{kind}, default {default}"),
        (None, true) => format!("{kind}, required"),
        (None, false) => format!("{kind}, optional"),
    }
}

/// A declaration as Markdown, for hover.
pub fn spec_markdown(name: &str, spec: Option<&VariableSpec>) -> MarkupContent {
    let mut value = format!("```yaml\n{name}: ");
    match spec {
        Some(spec) => {
            let mut fields = vec![format!("type: {}", spec.kind.map_or("any", |k| k.as_str()))];
            if spec.required {
                fields.push("required: true".to_owned());
            }
            if let Some(default) = &spec.default {
                fields.push(format!("default: {default}"));
            }
            value.push_str(&format!("{{{}}}\n```", fields.join(", ")));
            if let Some(description) = &spec.description {
                value.push_str(&format!("\n\n{description}"));
            }
        }
        None => value.push_str("...\n```\n\ndeclared variable"),
    }
    MarkupContent {
        kind: MarkupKind::Markdown,
        value,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const PROMPT: &str = "model: echo\nvariables:\n  diff: {type: string, required: true}\n  language:\n    type: string\ntests:\n  - name: t\n    assert:\n      - {type: contains, value: x}\n      - type: regex\n        value: y\n";

    #[test]
    fn parents_follow_indentation_and_list_items() {
        assert_eq!(parent_keys(PROMPT, 2), ["variables"]);
        assert_eq!(parent_keys(PROMPT, 4), ["language", "variables"]);
        assert_eq!(parent_keys(PROMPT, 8), ["assert", "tests"]);
        assert_eq!(parent_keys(PROMPT, 10), ["assert", "tests"]);
    }

    #[test]
    fn variables_are_found_while_the_buffer_does_not_parse() {
        let broken = format!("{PROMPT}template: \"{{{{ \n  : [");
        let names: Vec<String> = declared_variables(Path::new("p.yaml"), &broken)
            .into_iter()
            .map(|d| d.name)
            .collect();
        assert_eq!(names, ["diff", "language"]);
    }

    #[test]
    fn open_tags() {
        assert_eq!(open_tag("a {{ "), Some(2));
        assert_eq!(open_tag("a {{ x }} b"), None);
        assert_eq!(open_tag("{% if "), Some(0));
    }
}
