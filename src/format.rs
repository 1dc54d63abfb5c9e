//! `promptctl fmt`: one canonical layout for prompt files, comments kept.
//!
//! The formatter works on the file's lines, not on a re-serialized value, so that comments,
//! flow collections (`{type: contains, value: x}`) and scalars stay as the user wrote them.
//! It builds a tree of block collections (mapping entries and sequence items, each with the
//! comment lines directly above it) and writes it back:
//!
//! - top-level keys in the order of SPEC section 1 (`PROMPT_KEYS`); inside messages `role,
//!   content`, inside tests `name, description, vars, assert`, inside assertions `type,
//!   value, threshold, schema, model`, inside a variable `type, required, default,
//!   description`; variables, parameters and vars keep the user's order. A key moves with
//!   the comment lines directly above it; a comment block separated from the first key by a
//!   blank line is the file's header and stays at the top;
//! - two-space indentation, sequences indented under their key, `- ` items;
//! - strings holding line breaks written as `|` block scalars (`|-` without a final line
//!   break) when a block scalar can hold them exactly;
//! - flow collections and one-line scalars as written; runs of blank lines collapsed to one;
//!   no trailing blank lines; line ends as the file had them (LF or CRLF).
//!
//! It never changes what a file means: the result is parsed again and must give the same
//! value as the input, or the file is left alone. Files with YAML features it does not
//! handle (anchors, aliases, tags, several documents, explicit indentation indicators) are
//! refused with a `fmt-unsupported` diagnostic, not guessed at. `fmt(fmt(x)) == fmt(x)`.
//!
//! This module knows only text; walking folders and printing live in `cli::fmt`.

use std::path::Path;

use crate::diagnostic::{Diagnostic, Position, Severity};
use crate::repo::file::{ASSERTION_KEYS, PROMPT_KEYS, TEST_KEYS, VARIABLE_KEYS, parse_prompt};
use crate::yaml_scan::{closing_quote, quote_end, starts_comment};

/// The code of the diagnostic for a file the formatter will not touch.
pub const UNSUPPORTED: &str = "fmt-unsupported";

/// Formats the text of a prompt file. The error is the file's parse error, or a
/// [`UNSUPPORTED`] diagnostic when the file uses YAML the formatter leaves alone.
pub fn format_prompt(source: &str) -> Result<String, Diagnostic> {
    format_prompt_at(Path::new("prompt.yaml"), source)
}

/// [`format_prompt`], naming `path` in diagnostics.
pub fn format_prompt_at(path: &Path, source: &str) -> Result<String, Diagnostic> {
    parse_prompt(path, source)?;
    let crlf = source.contains("\r\n");
    let text = if crlf {
        source.replace("\r\n", "\n")
    } else {
        source.to_owned()
    };
    let formatted = format_text(&text).map_err(|(line, message)| {
        Diagnostic::new(
            Severity::Warning,
            UNSUPPORTED,
            path,
            Position::new(line, 1),
            message,
        )
        .with_source(&text)
        .with_help("promptctl fmt leaves this file as it is; format it by hand")
    })?;
    verify(path, &text, &formatted)?;
    Ok(if crlf {
        formatted.replace('\n', "\r\n")
    } else {
        formatted
    })
}

/// Requires that `formatted` means exactly what `original` means.
fn verify(path: &Path, original: &str, formatted: &str) -> Result<(), Diagnostic> {
    let unsafe_change = |why: &str| {
        Diagnostic::new(
            Severity::Warning,
            UNSUPPORTED,
            path,
            Position::start(),
            format!("formatting would change the file's meaning ({why}); left as it is"),
        )
        .with_help("please report this file; format it by hand meanwhile")
    };
    let before: serde_json::Value = crate::repo::file::parse_yaml(path, original, &[])?;
    let after: serde_json::Value = crate::repo::file::parse_yaml(path, formatted, &[])
        .map_err(|_| unsafe_change("the result does not parse"))?;
    if before != after {
        return Err(unsafe_change("values differ"));
    }
    let old = parse_prompt(path, original)?;
    let new = parse_prompt(path, formatted).map_err(|_| unsafe_change("not a prompt file"))?;
    let definition = |file| crate::repo::Definition::of(file).map(|d| d.canonical_json());
    if definition(&old) != definition(&new) {
        return Err(unsafe_change("the definition differs"));
    }
    Ok(())
}

/// An error of the line parser: 1-based line and message.
type Unsupported = (usize, String);

/// One line of the input.
#[derive(Debug, Clone)]
struct Line {
    /// 1-based line number.
    number: usize,
    /// Leading spaces.
    indent: usize,
    /// The text after the indentation, without trailing whitespace.
    text: String,
    /// The line as it was, without its line end.
    raw: String,
}

impl Line {
    fn blank(&self) -> bool {
        self.text.is_empty()
    }
    fn comment(&self) -> bool {
        self.text.starts_with('#')
    }
    fn content(&self) -> bool {
        !self.blank() && !self.comment()
    }
}

/// A comment line or a blank line above an item.
#[derive(Debug, Clone, PartialEq)]
enum Leading {
    Blank,
    Comment(String),
}

/// What an item's value is, when written on its own lines.
#[derive(Debug, Clone, Default)]
struct Item {
    /// Comment and blank lines directly above.
    leading: Vec<Leading>,
    /// Whether it is a sequence item (`- ...`).
    dash: bool,
    /// For a mapping entry, the key as written (quotes kept); for a sequence item, empty.
    key: String,
    /// The value text on the item's line, with its trailing comment (may be empty).
    value: String,
    /// Continuation lines of a multi-line flow collection or scalar, trimmed.
    continuation: Vec<String>,
    /// A block scalar's lines, relative to its indentation (`None` for a blank line).
    scalar: Option<Vec<Option<String>>>,
    /// A nested block collection.
    child: Option<Block>,
}

/// A block mapping or sequence.
#[derive(Debug, Clone, Default)]
struct Block {
    items: Vec<Item>,
}

/// The parsed document: header comments, top-level block, trailing comments.
struct Document {
    header: Vec<Leading>,
    root: Block,
    trailer: Vec<Leading>,
}

struct Parser {
    lines: Vec<Line>,
    next: usize,
    pending: Vec<Leading>,
}

fn format_text(text: &str) -> Result<String, Unsupported> {
    let mut document = parse_document(text)?;
    reorder(&mut document.root, Context::Top);
    Ok(emit_document(&mut document))
}

fn parse_document(text: &str) -> Result<Document, Unsupported> {
    let mut lines = Vec::new();
    for (index, raw) in text.split('\n').enumerate() {
        let number = index + 1;
        let trimmed_end = raw.trim_end();
        let body = trimmed_end.trim_start_matches(' ');
        lines.push(Line {
            number,
            indent: trimmed_end.len() - body.len(),
            text: body.to_owned(),
            raw: raw.to_owned(),
        });
    }
    let mut header = Vec::new();
    // Leading `---` and directives.
    let mut first_content = lines.iter().position(Line::content);
    if let Some(index) = first_content
        && lines[index].text.starts_with('%')
    {
        return Err((lines[index].number, "YAML directives".to_owned()));
    }
    if let Some(index) = first_content
        && (lines[index].text == "---" || lines[index].text.starts_with("--- #"))
    {
        for line in &lines[..index] {
            header.push(leading_of(line));
        }
        header.push(Leading::Comment(lines[index].text.clone()));
        lines.drain(..=index);
        first_content = lines.iter().position(Line::content);
    }
    for line in &lines {
        if line.indent == 0
            && (line.text == "---"
                || line.text.starts_with("--- ")
                || line.text == "..."
                || line.text.starts_with("... "))
        {
            return Err((line.number, "several YAML documents".to_owned()));
        }
    }
    let Some(first) = first_content else {
        return Err((1, "no content".to_owned()));
    };
    if lines[first].indent != 0 {
        return Err((lines[first].number, "indented top-level keys".to_owned()));
    }
    let mut parser = Parser {
        lines,
        next: 0,
        pending: Vec::new(),
    };
    let root = parser.block(None, false)?;
    parser.take_comments();
    if let Some(line) = parser.lines.get(parser.next) {
        return Err((line.number, "unexpected indentation".to_owned()));
    }
    let trailer = std::mem::take(&mut parser.pending);
    // The header: comments above the first key that a blank line separates from it.
    let mut root = root;
    if let Some(first) = root.items.first_mut()
        && let Some(last_blank) = first.leading.iter().rposition(|l| *l == Leading::Blank)
    {
        let rest = first.leading.split_off(last_blank + 1);
        header.extend(std::mem::replace(&mut first.leading, rest));
    }
    Ok(Document {
        header,
        root,
        trailer,
    })
}

fn leading_of(line: &Line) -> Leading {
    if line.blank() {
        Leading::Blank
    } else {
        Leading::Comment(line.text.clone())
    }
}

/// Splits `key: value` at the mapping colon; `None` when the text is not a mapping entry.
fn split_key(text: &str) -> Option<(String, String)> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    let key_end = if first == b'"' || first == b'\'' {
        let close = closing_quote(text, 0)?;
        if bytes.get(close + 1) != Some(&b':') {
            return None;
        }
        close + 1
    } else {
        if matches!(
            first,
            b'#' | b'&'
                | b'*'
                | b'!'
                | b'|'
                | b'>'
                | b'['
                | b']'
                | b'{'
                | b'}'
                | b','
                | b'%'
                | b'@'
                | b'`'
        ) || text.starts_with("- ")
            || text == "-"
            || text.starts_with("? ")
            || text == "?"
        {
            return None;
        }
        let mut found = None;
        for (index, ch) in text.char_indices() {
            if index > 0 && starts_comment(bytes, index) {
                return None;
            }
            if ch == ':' {
                let after = &text[index + 1..];
                if after.is_empty() || after.starts_with([' ', '\t']) {
                    found = Some(index);
                    break;
                }
            }
        }
        found?
    };
    let key = text[..key_end].trim_end().to_owned();
    let value = text[key_end + 1..].trim_start().to_owned();
    Some((key, value))
}

/// The key without quotes, for ordering.
fn plain_key(key: &str) -> &str {
    key.trim_matches(|c| c == '"' || c == '\'')
}

/// How a value written after `key:` or `- ` goes on.
#[derive(Debug, PartialEq)]
enum ValueKind {
    /// Nothing (maybe a comment): a nested block or null follows.
    Empty,
    /// A block scalar header such as `|-`.
    BlockScalar,
    /// A value complete on its line, or a plain scalar that may go on on deeper lines.
    Plain,
    /// A flow collection or quoted scalar that goes on on the next lines.
    Open,
}

fn value_kind(value: &str, line: usize) -> Result<ValueKind, Unsupported> {
    if value.is_empty() || value.starts_with('#') {
        return Ok(ValueKind::Empty);
    }
    let first = value.as_bytes()[0];
    if matches!(first, b'&' | b'*' | b'!') {
        return Err((line, "anchors, aliases or tags".to_owned()));
    }
    if first == b'|' || first == b'>' {
        let header = value.split('#').next().unwrap_or("").trim_end();
        let indicators = &header[1..];
        if indicators.chars().any(|c| c.is_ascii_digit()) {
            return Err((
                line,
                "a block scalar with an indentation indicator".to_owned(),
            ));
        }
        if indicators.contains('+') {
            return Err((
                line,
                "a block scalar that keeps trailing lines (`+`)".to_owned(),
            ));
        }
        if !indicators.chars().all(|c| c == '-') {
            return Err((line, "an unusual block scalar header".to_owned()));
        }
        return Ok(ValueKind::BlockScalar);
    }
    let mut scan = Scan::default();
    scan.feed(value, line)?;
    Ok(if scan.open() {
        ValueKind::Open
    } else {
        ValueKind::Plain
    })
}

/// Tracks flow brackets and quotes across lines.
#[derive(Default)]
struct Scan {
    depth: usize,
    quote: Option<u8>,
}

impl Scan {
    fn open(&self) -> bool {
        self.depth > 0 || self.quote.is_some()
    }

    fn feed(&mut self, text: &str, line: usize) -> Result<(), Unsupported> {
        let bytes = text.as_bytes();
        let mut at_token = self.quote.is_none();
        let mut index = 0;
        while index < bytes.len() {
            let b = bytes[index];
            if let Some(quote) = self.quote {
                match quote_end(bytes, index, quote) {
                    Some(close) => {
                        self.quote = None;
                        index = close + 1;
                        continue;
                    }
                    None => break,
                }
            }
            match b {
                b'#' if starts_comment(bytes, index) => break,
                b'"' | b'\'' if at_token => self.quote = Some(b),
                b'&' | b'*' | b'!' if at_token => {
                    return Err((line, "anchors, aliases or tags".to_owned()));
                }
                b'[' | b'{' if at_token || self.depth > 0 => {
                    self.depth += 1;
                    at_token = true;
                }
                b']' | b'}' if self.depth > 0 => {
                    self.depth -= 1;
                    at_token = false;
                }
                b',' if self.depth > 0 => at_token = true,
                b':' if bytes.get(index + 1).is_none_or(|n| *n == b' ') || self.depth > 0 => {
                    at_token = true;
                }
                b' ' | b'\t' => {}
                _ => at_token = false,
            }
            index += 1;
        }
        Ok(())
    }
}

impl Parser {
    /// Moves comment and blank lines into `pending`; returns the next content line.
    fn take_comments(&mut self) -> Option<Line> {
        while let Some(line) = self.lines.get(self.next) {
            if line.content() {
                return Some(line.clone());
            }
            let leading = leading_of(line);
            if !(leading == Leading::Blank && self.pending.last() == Some(&Leading::Blank)) {
                self.pending.push(leading);
            }
            self.next += 1;
        }
        None
    }

    /// Parses a block collection whose lines are deeper than `parent` (the top level when
    /// `None`); `indentless` allows a sequence at the parent's own indentation.
    fn block(&mut self, parent: Option<usize>, indentless: bool) -> Result<Block, Unsupported> {
        let mut block = Block::default();
        let Some(first) = self.take_comments() else {
            return Ok(block);
        };
        let deeper = parent.is_none_or(|p| first.indent > p);
        let first_dash = is_dash(&first.text);
        let indentless_seq = indentless && parent == Some(first.indent) && first_dash;
        if !deeper && !indentless_seq {
            return Ok(block);
        }
        let indent = first.indent;
        while let Some(line) = self.take_comments() {
            if line.indent < indent || (line.indent == indent && is_dash(&line.text) != first_dash)
            {
                break;
            }
            if line.indent > indent {
                return Err((line.number, "unexpected indentation".to_owned()));
            }
            self.next += 1;
            let item = self.item(&line, indent, &line.text)?;
            block.items.push(item);
        }
        Ok(block)
    }

    /// Parses one item whose text `text` starts at column `indent` of `line`.
    fn item(&mut self, line: &Line, indent: usize, text: &str) -> Result<Item, Unsupported> {
        let mut item = Item {
            leading: std::mem::take(&mut self.pending),
            ..Item::default()
        };
        if is_dash(text) {
            item.dash = true;
            let rest = text[1..].trim_start();
            let rest_indent = indent + (text.len() - rest.len());
            if is_dash(rest) {
                return Err((line.number, "a sequence inside a sequence item".to_owned()));
            }
            if let Some((_, _)) = split_key(rest) {
                // An inline mapping: its first entry sits on the dash's line.
                let first = self.item(line, rest_indent, rest)?;
                let mut child = Block { items: vec![first] };
                while let Some(next) = self.take_comments() {
                    if next.indent != rest_indent || is_dash(&next.text) {
                        if next.indent > rest_indent {
                            return Err((next.number, "unexpected indentation".to_owned()));
                        }
                        break;
                    }
                    self.next += 1;
                    let entry = self.item(&next, rest_indent, &next.text)?;
                    child.items.push(entry);
                }
                item.child = Some(child);
                return Ok(item);
            }
            item.value = rest.to_owned();
            self.value(&mut item, line, indent, false)?;
            return Ok(item);
        }
        let Some((key, value)) = split_key(text) else {
            return Err((
                line.number,
                "a line that is not `key: value` or `- item`".to_owned(),
            ));
        };
        item.key = key;
        item.value = value;
        self.value(&mut item, line, indent, true)?;
        Ok(item)
    }

    /// Reads what follows an item's value on later lines.
    fn value(
        &mut self,
        item: &mut Item,
        line: &Line,
        indent: usize,
        is_key: bool,
    ) -> Result<(), Unsupported> {
        match value_kind(&item.value, line.number)? {
            ValueKind::Empty => {
                let child = self.block(Some(indent), is_key)?;
                if !child.items.is_empty() {
                    item.child = Some(child);
                }
            }
            ValueKind::BlockScalar => {
                let mut content: Vec<&Line> = Vec::new();
                let mut index = self.next;
                let mut last_content = None;
                while let Some(next) = self.lines.get(index) {
                    if !next.blank() && next.indent <= indent {
                        break;
                    }
                    content.push(next);
                    if !next.blank() {
                        last_content = Some(content.len());
                    }
                    index += 1;
                }
                let kept = last_content.unwrap_or(0);
                content.truncate(kept);
                let base = content
                    .iter()
                    .filter(|l| !l.blank())
                    .map(|l| l.indent)
                    .next()
                    .unwrap_or(indent + 2);
                let mut lines = Vec::new();
                for l in &content {
                    if l.blank() {
                        // A line of spaces deeper than the content holds those spaces.
                        if l.raw.len() > base && l.raw.trim().is_empty() {
                            return Err((
                                l.number,
                                "a whitespace-only line in a block scalar".to_owned(),
                            ));
                        }
                        lines.push(None);
                    } else if l.indent < base {
                        return Err((
                            l.number,
                            "a block scalar less indented than its first line".to_owned(),
                        ));
                    } else {
                        lines.push(Some(l.raw[base..].trim_end_matches('\r').to_owned()));
                    }
                }
                self.next += kept;
                item.scalar = Some(lines);
            }
            ValueKind::Open => {
                let mut scan = Scan::default();
                scan.feed(&item.value, line.number)?;
                while scan.open() {
                    let Some(next) = self.lines.get(self.next) else {
                        return Err((
                            line.number,
                            "an unclosed flow collection or quote".to_owned(),
                        ));
                    };
                    scan.feed(&next.text, next.number)?;
                    item.continuation.push(next.text.clone());
                    self.next += 1;
                }
                self.plain_continuation(item, indent);
            }
            ValueKind::Plain => self.plain_continuation(item, indent),
        }
        Ok(())
    }

    /// A plain scalar going on on deeper lines.
    fn plain_continuation(&mut self, item: &mut Item, indent: usize) {
        loop {
            let mut index = self.next;
            while self.lines.get(index).is_some_and(Line::blank) {
                index += 1;
            }
            match self.lines.get(index) {
                Some(next) if next.indent > indent && !next.comment() => {
                    for blank in &self.lines[self.next..index] {
                        let _ = blank;
                        item.continuation.push(String::new());
                    }
                    item.continuation.push(next.text.clone());
                    self.next = index + 1;
                }
                _ => break,
            }
        }
    }
}

fn is_dash(text: &str) -> bool {
    text == "-" || text.starts_with("- ")
}

/// Where a block sits, which decides its key order.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Context {
    Top,
    Messages,
    Message,
    Tests,
    Test,
    Assertions,
    Assertion,
    Variables,
    Variable,
    Other,
}

fn reorder(block: &mut Block, context: Context) {
    let order: Option<&[&str]> = match context {
        Context::Top => Some(PROMPT_KEYS),
        Context::Message => Some(&["role", "content"]),
        Context::Test => Some(TEST_KEYS),
        Context::Assertion => Some(ASSERTION_KEYS),
        Context::Variable => Some(VARIABLE_KEYS),
        _ => None,
    };
    if let Some(order) = order
        && block.items.iter().all(|item| !item.dash)
    {
        let rank = |item: &Item| {
            order
                .iter()
                .position(|k| *k == plain_key(&item.key))
                .unwrap_or(order.len())
        };
        block.items.sort_by_key(rank);
    }
    for item in &mut block.items {
        let child_context = match (context, item.dash, plain_key(&item.key)) {
            (Context::Top, false, "messages") => Context::Messages,
            (Context::Top, false, "tests") => Context::Tests,
            (Context::Top, false, "monitor") => Context::Assertions,
            (Context::Top, false, "variables") => Context::Variables,
            (Context::Messages, true, _) => Context::Message,
            (Context::Tests, true, _) => Context::Test,
            (Context::Test, false, "assert") => Context::Assertions,
            (Context::Assertions, true, _) => Context::Assertion,
            (Context::Variables, false, _) => Context::Variable,
            _ => Context::Other,
        };
        if let Some(child) = &mut item.child {
            reorder(child, child_context);
        }
    }
}

fn emit_document(document: &mut Document) -> String {
    let mut out = Vec::new();
    emit_leading(&document.header, 0, &mut out);
    if let Some(first) = document.root.items.first_mut() {
        while first.leading.first() == Some(&Leading::Blank) {
            first.leading.remove(0);
        }
    }
    emit_block(&document.root, 0, &mut out);
    emit_leading(&document.trailer, 0, &mut out);
    while out.last().is_some_and(String::is_empty) {
        out.pop();
    }
    let mut text = String::new();
    let mut previous_blank = false;
    for line in out {
        let blank = line.is_empty();
        if blank && previous_blank {
            continue;
        }
        previous_blank = blank;
        text.push_str(&line);
        text.push('\n');
    }
    text
}

fn emit_leading(leading: &[Leading], indent: usize, out: &mut Vec<String>) {
    for line in leading {
        match line {
            Leading::Blank => out.push(String::new()),
            Leading::Comment(text) => out.push(format!("{}{text}", " ".repeat(indent))),
        }
    }
}

fn emit_block(block: &Block, indent: usize, out: &mut Vec<String>) {
    for item in &block.items {
        emit_leading(&item.leading, indent, out);
        emit_item(item, indent, out);
    }
}

fn emit_item(item: &Item, indent: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    if item.dash
        && item.value.is_empty()
        && let Some(child) = &item.child
        && child.items.first().is_some_and(|first| !first.dash)
    {
        // `- key: value` with the mapping's other entries under it.
        let mut inner = Vec::new();
        for (index, entry) in child.items.iter().enumerate() {
            if index == 0 {
                // Comments above the first entry go above the dash.
                emit_leading(&entry.leading, indent, out);
                let start = inner.len();
                emit_item(entry, indent + 2, &mut inner);
                inner[start] = format!("{pad}- {}", inner[start].trim_start());
            } else {
                emit_leading(&entry.leading, indent + 2, &mut inner);
                emit_item(entry, indent + 2, &mut inner);
            }
        }
        out.extend(inner);
        return;
    }
    let head = if item.dash {
        "-".to_owned()
    } else {
        format!("{}:", item.key)
    };
    if let Some(block) = block_scalar_for(item) {
        out.push(format!("{pad}{head} {}", block.0));
        push_scalar_lines(&block.1, indent + 2, out);
        return;
    }
    if item.value.is_empty() {
        out.push(format!("{pad}{head}"));
    } else {
        out.push(format!("{pad}{head} {}", item.value));
    }
    if let Some(lines) = &item.scalar {
        push_scalar_lines(lines, indent + 2, out);
    }
    for line in &item.continuation {
        if line.is_empty() {
            out.push(String::new());
        } else {
            out.push(format!("{pad}  {line}"));
        }
    }
    if let Some(child) = &item.child {
        emit_block(child, indent + 2, out);
    }
}

fn push_scalar_lines(lines: &[Option<String>], indent: usize, out: &mut Vec<String>) {
    let pad = " ".repeat(indent);
    for line in lines {
        match line {
            Some(text) => out.push(format!("{pad}{text}")),
            None => out.push(String::new()),
        }
    }
}

/// A double-quoted string holding line breaks, as a block scalar header and lines, when a
/// block scalar can hold it exactly.
fn block_scalar_for(item: &Item) -> Option<(&'static str, Vec<Option<String>>)> {
    if item.dash || !item.value.starts_with('"') || item.scalar.is_some() {
        return None;
    }
    let mut source = item.value.clone();
    for line in &item.continuation {
        source.push('\n');
        source.push_str(line);
    }
    // Only a lone quoted scalar: no trailing comment.
    if closing_quote(&source, 0)? != source.len() - 1 {
        return None;
    }
    let value: String = serde_saphyr::from_str(&source).ok()?;
    if !value.contains('\n') || value.ends_with("\n\n") || value.trim().is_empty() {
        return None;
    }
    let (header, body) = match value.strip_suffix('\n') {
        Some(body) => ("|", body),
        None => ("|-", value.as_str()),
    };
    let mut lines = Vec::new();
    for line in body.split('\n') {
        if line.ends_with([' ', '\t'])
            || line.chars().any(|c| c.is_control() && c != '\t')
            || line.contains('\u{feff}')
        {
            return None;
        }
        lines.push(if line.is_empty() {
            None
        } else {
            Some(line.to_owned())
        });
    }
    // The first content line decides the indentation: it must not start with a space.
    let first = lines.iter().flatten().next()?;
    if first.starts_with([' ', '\t']) {
        return None;
    }
    // Leading empty lines are fine; a body that starts with one needs no special care.
    Some((header, lines))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fmt(text: &str) -> String {
        let once = format_prompt(text).expect("formats");
        let twice = format_prompt(&once).expect("formats again");
        assert_eq!(once, twice, "not idempotent");
        once
    }

    #[test]
    fn reorders_top_level_keys_with_their_comments() {
        let text = "# header\n\ntests: []\n# the model\nmodel: gpt-4o  # inline\ntemplate: hi\n";
        assert_eq!(
            fmt(text),
            "# header\n\n# the model\nmodel: gpt-4o  # inline\ntemplate: hi\ntests: []\n"
        );
    }

    #[test]
    fn indents_two_spaces_and_orders_nested_keys() {
        let text = "model: m\nmessages:\n- content: hi\n  role: system\ntests:\n    -   assert:\n          - value: x\n            type: contains\n        name: t\n";
        assert_eq!(
            fmt(text),
            "model: m\nmessages:\n  - role: system\n    content: hi\ntests:\n  - name: t\n    assert:\n      - type: contains\n        value: x\n"
        );
    }

    #[test]
    fn multi_line_strings_become_block_scalars() {
        let text = "model: m\nmessages:\n  - role: user\n    content: \"Review:\\n{{ diff }}\"\n  - role: system\n    content: \"a\\nb\\n\"\n";
        assert_eq!(
            fmt(text),
            "model: m\nmessages:\n  - role: user\n    content: |-\n      Review:\n      {{ diff }}\n  - role: system\n    content: |\n      a\n      b\n"
        );
    }

    #[test]
    fn block_scalars_are_reindented() {
        let text = "model: m\ntemplate: |\n        line one\n\n          indented\n        # not a comment\n# a real comment\ntests: []\n";
        assert_eq!(
            fmt(text),
            "model: m\ntemplate: |\n  line one\n\n    indented\n  # not a comment\n# a real comment\ntests: []\n"
        );
    }

    #[test]
    fn keeps_flow_collections_and_comments_inside_blocks() {
        let text = "model: m\nvariables:\n  # the input\n  x: {type: string, required: true}\ntemplate: hi {{ x }}\ntests:\n  - name: t\n    # vars\n    vars: {x: \"a, b\"}\n    assert: [{type: contains, value: a}]\n";
        assert_eq!(fmt(text), text);
    }

    #[test]
    fn refuses_anchors_and_several_documents() {
        for text in [
            "model: &m gpt\ntemplate: hi\nparameters:\n  x: *m\n",
            "model: m\ntemplate: hi\n---\nmodel: n\n",
            "model: !!str m\ntemplate: hi\n",
        ] {
            let err = format_prompt(text).expect_err("refuses");
            assert!(
                [UNSUPPORTED, "yaml-limits", "yaml-syntax"].contains(&err.code),
                "{text}: {}",
                err.code
            );
        }
    }

    #[test]
    fn bad_files_give_their_parse_error() {
        let err = format_prompt("modle: x\n").expect_err("rejects");
        assert_eq!(err.code, "schema");
    }

    #[test]
    fn tabs_inside_block_scalars_are_content() {
        let text = "model: m\ntemplate: \"code:\\n\\tindented\"\n";
        assert_eq!(fmt(text), "model: m\ntemplate: |-\n  code:\n  \tindented\n");
    }

    #[test]
    fn plain_and_flow_values_over_several_lines_are_kept() {
        let text = "description: a long\n    plain text\nmodel: m\ntemplate: hi\ntests:\n  - vars: {a: 1,\n        b: 2}\n    name: t\n";
        assert_eq!(
            fmt(text),
            "description: a long\n  plain text\nmodel: m\ntemplate: hi\ntests:\n  - name: t\n    vars: {a: 1,\n      b: 2}\n"
        );
    }

    #[test]
    fn comments_above_a_moved_first_entry_go_above_the_item() {
        let text =
            "model: m\nmessages:\n  # says who\n  - content: hi\n    # the role\n    role: user\n";
        assert_eq!(
            fmt(text),
            "model: m\nmessages:\n  # says who\n  # the role\n  - role: user\n    content: hi\n"
        );
    }

    #[test]
    fn crlf_is_kept() {
        assert_eq!(
            fmt("template: hi\r\nmodel: m\r\n"),
            "model: m\r\ntemplate: hi\r\n"
        );
    }
}
