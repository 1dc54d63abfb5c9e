//! A fast reader for the plain YAML most prompt files are written in, for the history walk.
//!
//! Deriving versions parses every prompt file of every commit once, a few tens of
//! thousands of files in a monorepo, and the full YAML parser (serde-saphyr, with source
//! positions for diagnostics) spends about 50 µs on a small one. This reader knows a
//! subset of YAML: block mappings and sequences indented with spaces, plain scalars that
//! are plainly strings, integers, decimals or `true`/`false`, one-line quoted scalars
//! (escapes `\n`, `\t`, `\"`, `\\` and `\/` at most), `|` and `|-` block scalars, one-line
//! flow collections, and comments. On anything else (anchors, tags, other escapes,
//! folded or multi-line scalars, duplicate keys, a word YAML might read as a boolean or a
//! null, a number where a string belongs, a key the prompt schema does not know)
//! it answers `None`, and the caller parses the file with the full parser, which also
//! reports what is wrong. So it decides nothing on its own: when it answers, the full
//! parser would have accepted the file and given the same name, service and definition
//! (a property the tests check against serde-saphyr on many generated files).

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::path::Path;

use super::definition::{Body, Definition, MessageTemplate};
use super::file::{PromptFile, Role, VariableSpec, VariableType};
use crate::diagnostic::Diagnostic;

/// What a prompt file says, read by [`read`].
#[derive(Debug, Clone, PartialEq)]
pub struct PlainFile {
    /// The explicit `name:`, if any.
    pub name: Option<String>,
    /// The explicit `service:`, if any.
    pub service: Option<String>,
    /// The definition; `None` when the file lacks a model or a template.
    pub definition: Option<Definition>,
}

/// Files larger than this go to the full parser (which also enforces its budgets).
const MAX_PLAIN_BYTES: usize = 64 * 1024;

/// The longest key this reader takes.
const MAX_KEY_LENGTH: usize = 1000;

/// The deepest nesting this reader follows.
const MAX_DEPTH: usize = 16;

/// A prompt file's explicit name and service and its definition, from its bytes: read by
/// [`read`] when the file is plain YAML, by the full parser otherwise, whose diagnostic
/// says what is wrong with a file that does not parse. `path` (relative to the project
/// root) names the file in the diagnostic.
pub fn read_or_parse(path: &Path, bytes: &[u8]) -> Result<PlainFile, Diagnostic> {
    let text = super::file::decode_text(path, bytes)?;
    if let Some(plain) = read(&text) {
        return Ok(plain);
    }
    Ok(PlainFile::of(super::file::parse_prompt(path, &text)?))
}

impl PlainFile {
    /// What a file parsed by the full parser says.
    pub fn of(file: PromptFile) -> PlainFile {
        PlainFile {
            definition: Definition::of(&file),
            name: file.name.map(|name| name.value),
            service: file.service.map(|service| service.value),
        }
    }
}

/// Reads a prompt file written in plain YAML; `None` means "ask the full parser".
pub fn read(text: &str) -> Option<PlainFile> {
    if text.len() > MAX_PLAIN_BYTES || text.chars().any(unusual_char) {
        return None;
    }
    let lines: Vec<Line<'_>> = text.split('\n').map(Line::of).collect();
    let mut parser = Parser { lines, at: 0 };
    parser.skip_blank();
    let root = parser.block(0, 0)?;
    parser.skip_blank();
    if parser.at < parser.lines.len() {
        return None;
    }
    file_of(root)
}

/// A character YAML treats specially or refuses: tabs and carriage returns (indentation
/// and line-break rules), other control characters, the byte-order mark and the Unicode
/// line and paragraph separators (line breaks in YAML 1.1).
fn unusual_char(c: char) -> bool {
    (c.is_control() && c != '\n')
        || matches!(
            c,
            '\u{feff}' | '\u{2028}' | '\u{2029}' | '\u{fffe}' | '\u{ffff}'
        )
}

/// A line split into its indentation and the rest.
#[derive(Debug, Clone, Copy)]
struct Line<'a> {
    indent: usize,
    /// After the indentation, with the line's end as written.
    rest: &'a str,
    /// The whole line.
    whole: &'a str,
}

impl<'a> Line<'a> {
    fn of(whole: &'a str) -> Line<'a> {
        let rest = whole.trim_start_matches(' ');
        Line {
            indent: whole.len() - rest.len(),
            rest,
            whole,
        }
    }

    /// Nothing but spaces, or a comment.
    fn is_blank(&self) -> bool {
        self.rest.is_empty() || self.rest.starts_with('#')
    }
}

/// A YAML node of the subset.
#[derive(Debug, Clone, PartialEq)]
enum Node<'a> {
    /// A plain (unquoted) scalar, as written.
    Plain(&'a str),
    /// A quoted or block scalar: always a string.
    Text(Cow<'a, str>),
    Map(Vec<(&'a str, Node<'a>)>),
    Seq(Vec<Node<'a>>),
}

struct Parser<'a> {
    lines: Vec<Line<'a>>,
    at: usize,
}

impl<'a> Parser<'a> {
    fn skip_blank(&mut self) {
        while self.lines.get(self.at).is_some_and(Line::is_blank) {
            self.at += 1;
        }
    }

    /// The next line that is not blank, without consuming it.
    fn peek(&mut self) -> Option<Line<'a>> {
        self.skip_blank();
        self.lines.get(self.at).copied()
    }

    /// A block collection whose first line is the next one, indented exactly `indent`.
    fn block(&mut self, indent: usize, depth: usize) -> Option<Node<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        let line = self.peek()?;
        if line.indent != indent {
            return None;
        }
        if is_item(line.rest) {
            self.sequence(indent, depth)
        } else {
            self.mapping(indent, depth)
        }
    }

    /// A block sequence of items at `indent`.
    fn sequence(&mut self, indent: usize, depth: usize) -> Option<Node<'a>> {
        let mut items = Vec::new();
        while let Some(line) = self.peek() {
            // A line less indented, or a key at the indentation of a sequence written
            // under its key (`key:` then `- item` at the same indentation), ends it; the
            // collection around it decides whether that line may follow.
            if line.indent < indent || (line.indent == indent && !is_item(line.rest)) {
                break;
            }
            if line.indent > indent {
                return None;
            }
            let after = line.rest[1..].trim_start_matches(' ');
            let item_indent = indent + (line.rest.len() - after.len());
            if after.is_empty() || after.starts_with('#') || is_item(after) {
                // `-` alone (the item on the next lines) or `- - x`: not in the subset.
                return None;
            }
            if split_key(after).is_some() {
                // `- key: value` starts a mapping whose keys line up after the dash.
                self.lines[self.at] = Line {
                    indent: item_indent,
                    rest: after,
                    whole: line.whole,
                };
                items.push(self.mapping(item_indent, depth + 1)?);
            } else {
                self.at += 1;
                items.push(self.value_on_line(after, indent, depth)?);
            }
        }
        Some(Node::Seq(items))
    }

    /// A block mapping of keys at `indent`.
    fn mapping(&mut self, indent: usize, depth: usize) -> Option<Node<'a>> {
        let mut entries: Vec<(&'a str, Node<'a>)> = Vec::new();
        while let Some(line) = self.peek() {
            if line.indent < indent {
                break;
            }
            if line.indent > indent || is_item(line.rest) {
                return None;
            }
            let (key, after) = split_key(line.rest)?;
            if entries.iter().any(|(seen, _)| *seen == key) {
                return None;
            }
            self.at += 1;
            let value = if after.is_empty() || after.starts_with('#') {
                // The value is the block on the next lines: more indented, or a sequence
                // at the key's own indentation.
                let next = self.peek()?;
                let nested = next.indent > indent || (next.indent == indent && is_item(next.rest));
                if !nested {
                    return None;
                }
                self.block(next.indent, depth + 1)?
            } else {
                self.value_on_line(after, indent, depth)?
            };
            entries.push((key, value));
        }
        Some(Node::Map(entries))
    }

    /// The value written after `key:` or `- ` on the current line (already consumed), in a
    /// collection at `indent`: a block scalar, a flow collection, a quoted or a plain scalar.
    fn value_on_line(&mut self, text: &'a str, indent: usize, depth: usize) -> Option<Node<'a>> {
        let value = match text.as_bytes().first()? {
            b'|' => {
                let keep_newline = match text {
                    "|" => true,
                    "|-" => false,
                    _ => return None,
                };
                return self.block_scalar(indent, keep_newline);
            }
            b'{' | b'[' => {
                let mut flow = Flow { text, at: 0 };
                let node = flow.node(depth)?;
                flow.end_of_line()?;
                node
            }
            b'"' | b'\'' => {
                let (value, rest) = quoted(text)?;
                end_of_value(rest)?;
                Node::Text(value)
            }
            _ => Node::Plain(plain_block_scalar(text)?),
        };
        // A more indented line after a value on one line would continue it.
        if let Some(next) = self.peek()
            && next.indent > indent
        {
            return None;
        }
        Some(value)
    }

    /// The lines of a `|` or `|-` scalar under a key at `indent`.
    fn block_scalar(&mut self, indent: usize, keep_newline: bool) -> Option<Node<'a>> {
        let first = *self.lines.get(self.at)?;
        // The first line sets the indentation; a leading empty line is left to the full
        // parser, whose rules for it are subtle.
        if first.rest.is_empty() || first.indent <= indent {
            return None;
        }
        let content_indent = first.indent;
        let mut text = String::new();
        let mut pending_newlines = 0;
        let mut last_content = self.at;
        while let Some(line) = self.lines.get(self.at) {
            if line.rest.is_empty() {
                if line.indent > content_indent {
                    // Spaces beyond the indentation on an otherwise empty line: content.
                    return None;
                }
                pending_newlines += 1;
                self.at += 1;
                continue;
            }
            if line.indent < content_indent {
                if line.indent > indent && !line.rest.starts_with('#') {
                    return None;
                }
                break;
            }
            if !text.is_empty() || pending_newlines > 0 {
                text.push('\n');
            }
            for _ in 0..pending_newlines {
                text.push('\n');
            }
            pending_newlines = 0;
            text.push_str(&line.whole[content_indent..]);
            last_content = self.at;
            self.at += 1;
        }
        // Content up to the end of a file without a final line break: whether the clipped
        // value ends in a newline is a corner of YAML left to the full parser.
        if last_content + 1 == self.lines.len() {
            return None;
        }
        // Trailing empty lines belong to nothing: hand them back so that a following
        // comment or key is read from the right line.
        self.at -= pending_newlines;
        if keep_newline {
            text.push('\n');
        }
        Some(Node::Text(Cow::Owned(text)))
    }
}

/// Whether a line's content is a sequence item (`- ` or a lone `-`).
fn is_item(rest: &str) -> bool {
    rest == "-" || rest.starts_with("- ")
}

/// `key: value` split at the colon: a key of letters, digits, `_`, `-` and `.` that starts
/// with a letter or `_`, and what follows the colon (trimmed of spaces).
fn split_key(text: &str) -> Option<(&str, &str)> {
    let colon = text.find(':')?;
    let key = &text[..colon];
    let after = &text[colon + 1..];
    let key_ok = key
        .bytes()
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'));
    // serde-saphyr looks at most 1024 characters ahead for a key's colon.
    if !key_ok
        || key.len() > MAX_KEY_LENGTH
        || !(after.is_empty() || after.starts_with(' '))
        || is_reserved_word(key)
    {
        return None;
    }
    Some((key, after.trim_start_matches(' ')))
}

/// A plain scalar in block context, without its trailing comment; `None` for anything a
/// plain scalar of the subset cannot be.
fn plain_block_scalar(text: &str) -> Option<&str> {
    let text = match text.find(" #") {
        Some(comment) => &text[..comment],
        None => text,
    };
    let text = text.trim_end_matches(' ');
    if starts_with_indicator(text)? || text.contains(": ") || text.ends_with(':') {
        return None;
    }
    Some(text)
}

/// Whether a plain scalar starts with one of YAML's indicator characters (a `-` before a
/// digit, a negative number, excepted); `None` for an empty one.
fn starts_with_indicator(text: &str) -> Option<bool> {
    let bytes = text.as_bytes();
    let first = *bytes.first()?;
    let negative_number = first == b'-' && bytes.get(1).is_some_and(u8::is_ascii_digit);
    Some(b"-?:,[]{}#&*!|>'\"%@`".contains(&first) && !negative_number)
}

/// A quoted scalar on one line at the start of `text`, and what follows it: `'...'`
/// without `'` inside, `"..."` with the escapes `\n`, `\t`, `\"`, `\\` and `\/` at most.
fn quoted(text: &str) -> Option<(Cow<'_, str>, &str)> {
    let quote = text.chars().next()?;
    let body = &text[1..];
    if quote == '\'' {
        let end = body.find('\'')?;
        let rest = &body[end + 1..];
        if rest.starts_with('\'') {
            return None;
        }
        return Some((Cow::Borrowed(&body[..end]), rest));
    }
    let end = body.find(['"', '\\'])?;
    if body.as_bytes()[end] == b'"' {
        return Some((Cow::Borrowed(&body[..end]), &body[end + 1..]));
    }
    let mut value = String::from(&body[..end]);
    let mut chars = body[end..].char_indices();
    while let Some((at, c)) = chars.next() {
        match c {
            '"' => return Some((Cow::Owned(value), &body[end + at + 1..])),
            '\\' => value.push(match chars.next()?.1 {
                'n' => '\n',
                't' => '\t',
                '"' => '"',
                '\\' => '\\',
                '/' => '/',
                _ => return None,
            }),
            c => value.push(c),
        }
    }
    None
}

/// Checks that only spaces and a comment follow a value on its line.
fn end_of_value(rest: &str) -> Option<()> {
    let comment = rest.starts_with(' ') && rest.trim_start_matches(' ').starts_with('#');
    (rest.trim_start_matches(' ').is_empty() || comment).then_some(())
}

/// A one-line flow collection: `{k: v, ...}` and `[a, ...]`, nested.
struct Flow<'a> {
    text: &'a str,
    at: usize,
}

impl<'a> Flow<'a> {
    fn skip_spaces(&mut self) {
        while self.text.as_bytes().get(self.at) == Some(&b' ') {
            self.at += 1;
        }
    }

    fn next_byte(&mut self) -> Option<u8> {
        self.skip_spaces();
        self.text.as_bytes().get(self.at).copied()
    }

    /// The comma-separated items of the collection opening at the cursor, each read by
    /// `item`, up to and past `close`; `None` for anything else between them.
    fn items(&mut self, close: u8, mut item: impl FnMut(&mut Self) -> Option<()>) -> Option<()> {
        self.at += 1;
        if self.next_byte()? == close {
            self.at += 1;
            return Some(());
        }
        loop {
            item(self)?;
            match self.next_byte()? {
                b',' => self.at += 1,
                byte if byte == close => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    fn node(&mut self, depth: usize) -> Option<Node<'a>> {
        if depth > MAX_DEPTH {
            return None;
        }
        match self.next_byte()? {
            b'{' => {
                let mut entries: Vec<(&'a str, Node<'a>)> = Vec::new();
                self.items(b'}', |flow| {
                    let key = flow.key()?;
                    if entries.iter().any(|(seen, _)| *seen == key) {
                        return None;
                    }
                    let value = flow.node(depth + 1)?;
                    entries.push((key, value));
                    Some(())
                })?;
                Some(Node::Map(entries))
            }
            b'[' => {
                let mut items = Vec::new();
                self.items(b']', |flow| {
                    items.push(flow.node(depth + 1)?);
                    Some(())
                })?;
                Some(Node::Seq(items))
            }
            b'"' | b'\'' => {
                let (value, rest) = quoted(&self.text[self.at..])?;
                self.at = self.text.len() - rest.len();
                Some(Node::Text(value))
            }
            _ => {
                let rest = &self.text[self.at..];
                let end = rest.find([',', '}', ']'])?;
                let scalar = rest[..end].trim_end_matches(' ');
                // A bracket inside a flow scalar opens a collection to YAML.
                if starts_with_indicator(scalar)?
                    || scalar.contains([':', '[', '{'])
                    || scalar.contains(" #")
                {
                    return None;
                }
                self.at += end;
                Some(Node::Plain(scalar))
            }
        }
    }

    /// A key and its colon inside a flow mapping.
    fn key(&mut self) -> Option<&'a str> {
        self.skip_spaces();
        let rest = &self.text[self.at..];
        let colon = rest.find(':')?;
        let key = &rest[..colon];
        if !rest[colon + 1..].starts_with(' ') {
            return None;
        }
        split_key(&rest[..colon + 2])?;
        self.at += colon + 1;
        Some(key)
    }

    fn end_of_line(&mut self) -> Option<()> {
        end_of_value(&self.text[self.at..])
    }
}

/// What a plain scalar means, by the YAML 1.2 core schema as serde-saphyr reads it; `None`
/// for every spelling this reader does not vouch for (other booleans and nulls, octal,
/// hexadecimal, exponents, infinities, underscores, leading zeros, dates, ...).
fn resolve(plain: &str) -> Option<serde_json::Value> {
    use serde_json::Value;
    match plain {
        "true" => return Some(Value::Bool(true)),
        "false" => return Some(Value::Bool(false)),
        _ => {}
    }
    let first = plain.bytes().next()?;
    if first.is_ascii_digit() || matches!(first, b'-' | b'+' | b'.') {
        let digits = plain.strip_prefix('-').unwrap_or(plain);
        let (whole, fraction) = match digits.split_once('.') {
            Some((whole, fraction)) => (whole, Some(fraction)),
            None => (digits, None),
        };
        let decimal = |part: &str| !part.is_empty() && part.bytes().all(|b| b.is_ascii_digit());
        if !decimal(whole)
            || (whole.len() > 1 && whole.starts_with('0'))
            || whole.len() > 15
            || plain.starts_with("-0")
        {
            return None;
        }
        return match fraction {
            None => plain.parse::<i64>().ok().map(Value::from),
            Some(fraction) if decimal(fraction) && fraction.len() <= 15 => plain
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number),
            Some(_) => None,
        };
    }
    if is_reserved_word(plain) || plain.starts_with('~') {
        return None;
    }
    Some(Value::String(plain.to_owned()))
}

/// A word some YAML readers take for a boolean or a null, in any case.
fn is_reserved_word(word: &str) -> bool {
    const RESERVED: &[&str] = &[
        "y", "n", "yes", "no", "on", "off", "true", "false", "null", "nan", "inf",
    ];
    RESERVED
        .iter()
        .any(|reserved| reserved.eq_ignore_ascii_case(word))
}

/// A node that must be a string.
fn string(node: &Node<'_>) -> Option<String> {
    match node {
        Node::Text(text) => Some(text.clone().into_owned()),
        Node::Plain(plain) => match resolve(plain)? {
            serde_json::Value::String(text) => Some(text),
            _ => None,
        },
        _ => None,
    }
}

/// A node as a JSON value (maps with string keys).
fn value(node: &Node<'_>) -> Option<serde_json::Value> {
    use serde_json::Value;
    Some(match node {
        Node::Text(text) => Value::String(text.clone().into_owned()),
        Node::Plain(plain) => resolve(plain)?,
        Node::Seq(items) => Value::Array(items.iter().map(value).collect::<Option<_>>()?),
        Node::Map(entries) => Value::Object(
            entries
                .iter()
                .map(|(key, node)| Some(((*key).to_owned(), value(node)?)))
                .collect::<Option<_>>()?,
        ),
    })
}

fn map<'n, 'a>(node: &'n Node<'a>) -> Option<&'n [(&'a str, Node<'a>)]> {
    match node {
        Node::Map(entries) => Some(entries),
        _ => None,
    }
}

fn seq<'n, 'a>(node: &'n Node<'a>) -> Option<&'n [Node<'a>]> {
    match node {
        Node::Seq(items) => Some(items),
        _ => None,
    }
}

fn boolean(node: &Node<'_>) -> Option<bool> {
    match node {
        Node::Plain(plain) => resolve(plain)?.as_bool(),
        _ => None,
    }
}

/// A map whose values are JSON values.
fn value_map(node: &Node<'_>) -> Option<BTreeMap<String, serde_json::Value>> {
    map(node)?
        .iter()
        .map(|(key, node)| Some(((*key).to_owned(), value(node)?)))
        .collect()
}

fn variable(node: &Node<'_>) -> Option<VariableSpec> {
    let mut spec = VariableSpec {
        kind: None,
        required: false,
        default: None,
        description: None,
    };
    for (key, node) in map(node)? {
        match *key {
            "type" => {
                spec.kind = Some(VariableType::parse(&string(node)?)?);
            }
            "required" => spec.required = boolean(node)?,
            "default" => spec.default = Some(value(node)?),
            "description" => spec.description = Some(string(node)?),
            _ => return None,
        }
    }
    Some(spec)
}

/// Checks an assertion's shape as the prompt schema has it (its meaning is `check`'s).
fn assertion(node: &Node<'_>) -> Option<()> {
    let mut has_type = false;
    for (key, node) in map(node)? {
        match *key {
            "type" => {
                // Any name parses; whether it is a known type is for `check` to say.
                string(node)?;
                has_type = true;
            }
            "value" | "schema" => {
                value(node)?;
            }
            "threshold" => match node {
                Node::Plain(plain) if plain.contains('.') => {
                    resolve(plain)?.as_f64()?;
                }
                _ => return None,
            },
            "model" => {
                string(node)?;
            }
            _ => return None,
        }
    }
    has_type.then_some(())
}

fn test_case(node: &Node<'_>) -> Option<()> {
    for (key, node) in map(node)? {
        match *key {
            "name" | "description" => {
                string(node)?;
            }
            "vars" => {
                value_map(node)?;
            }
            "assert" => {
                for item in seq(node)? {
                    assertion(item)?;
                }
            }
            _ => return None,
        }
    }
    Some(())
}

fn messages(node: &Node<'_>) -> Option<Vec<MessageTemplate>> {
    seq(node)?
        .iter()
        .map(|item| {
            let (mut role, mut content) = (None, None);
            for (key, node) in map(item)? {
                match *key {
                    "role" => {
                        role = Some(Role::parse(&string(node)?)?);
                    }
                    "content" => content = Some(string(node)?),
                    _ => return None,
                }
            }
            Some(MessageTemplate {
                role: role?,
                content: content?,
            })
        })
        .collect()
}

/// The file a root node stands for, by the rules of `PromptFile` and `Definition::of`.
fn file_of(root: Node<'_>) -> Option<PlainFile> {
    let mut file = PlainFile {
        name: None,
        service: None,
        definition: None,
    };
    let (mut model, mut template, mut chat) = (None, None, None);
    let mut parameters = BTreeMap::new();
    let mut variables = BTreeMap::new();
    for (key, node) in map(&root)? {
        match *key {
            "name" => file.name = Some(string(node)?),
            "service" => file.service = Some(string(node)?),
            "description" => {
                string(node)?;
            }
            "model" => model = Some(string(node)?),
            "parameters" => parameters = value_map(node)?,
            "variables" => {
                for (name, spec) in map(node)? {
                    variables.insert((*name).to_owned(), variable(spec)?);
                }
            }
            "messages" => chat = Some(messages(node)?),
            "template" => template = Some(string(node)?),
            "monitor" => {
                for item in seq(node)? {
                    assertion(item)?;
                }
            }
            "tests" => {
                for item in seq(node)? {
                    test_case(item)?;
                }
            }
            _ => return None,
        }
    }
    let body = match (template, chat) {
        (Some(template), None) => Some(Body::Template(template)),
        (None, Some(messages)) => Some(Body::Messages(messages)),
        _ => None,
    };
    file.definition = match (model, body) {
        (Some(model), Some(body)) => Some(Definition {
            model,
            parameters,
            variables,
            body,
        }),
        _ => None,
    };
    Some(file)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::file::parse_prompt;

    /// What the full parser makes of `text`: `None` when it refuses the file.
    fn full(text: &str) -> Option<PlainFile> {
        parse_prompt(Path::new("prompts/s/p.yaml"), text)
            .ok()
            .map(PlainFile::of)
    }

    /// A file using each key of the prompt schema (by where the key stands): every key the
    /// schema has must be read by the fast reader, or a new key would silently send every
    /// file that uses it to the full parser.
    const SAMPLES: &[(&str, &str, &str)] = &[
        ("prompt", "name", "name: reply\nmodel: m\ntemplate: hi\n"),
        (
            "prompt",
            "service",
            "service: support\nmodel: m\ntemplate: hi\n",
        ),
        (
            "prompt",
            "description",
            "description: Answers.\nmodel: m\ntemplate: hi\n",
        ),
        ("prompt", "model", "model: gpt-4o\ntemplate: hi\n"),
        (
            "prompt",
            "template",
            "model: m\ntemplate: \"Hi {{ x }}\"\nvariables:\n  x: {type: string}\n",
        ),
        (
            "prompt",
            "messages",
            "model: m\nmessages:\n  - role: system\n    content: Be brief.\n  - role: user\n    content: |\n      {{ x }}\nvariables:\n  x: {type: string}\n",
        ),
        (
            "prompt",
            "parameters",
            "model: m\ntemplate: hi\nparameters:\n  temperature: 0.2\n  max_tokens: 100\n  stop: [\"a\", \"b\"]\n",
        ),
        (
            "prompt",
            "variables",
            "model: m\ntemplate: \"{{ x }}\"\nvariables:\n  x:\n    type: string\n",
        ),
        (
            "prompt",
            "tests",
            "model: m\ntemplate: hi\ntests:\n  - name: t\n    assert: [{type: contains, value: hi}]\n",
        ),
        (
            "prompt",
            "monitor",
            "model: m\ntemplate: hi\nmonitor:\n  - {type: not_contains, value: SECRET}\n",
        ),
        (
            "Message",
            "role",
            "model: m\nmessages:\n  - role: user\n    content: hi\n",
        ),
        (
            "Message",
            "content",
            "model: m\nmessages:\n  - role: assistant\n    content: \"hi\"\n",
        ),
        (
            "TestCase",
            "name",
            "model: m\ntemplate: hi\ntests:\n  - name: greets\n",
        ),
        (
            "TestCase",
            "description",
            "model: m\ntemplate: hi\ntests:\n  - description: says hi\n",
        ),
        (
            "TestCase",
            "vars",
            "model: m\ntemplate: \"{{ x }}\"\nvariables:\n  x: {type: string}\ntests:\n  - vars: {x: a}\n",
        ),
        (
            "TestCase",
            "assert",
            "model: m\ntemplate: hi\ntests:\n  - assert:\n      - type: contains\n        value: hi\n",
        ),
        (
            "VariableSpec",
            "type",
            "model: m\ntemplate: \"{{ count }}\"\nvariables:\n  count: {type: integer}\n",
        ),
        (
            "VariableSpec",
            "required",
            "model: m\ntemplate: \"{{ x }}\"\nvariables:\n  x: {type: string, required: true}\n",
        ),
        (
            "VariableSpec",
            "default",
            "model: m\ntemplate: \"{{ x }}\"\nvariables:\n  x: {type: string, default: en}\n",
        ),
        (
            "VariableSpec",
            "description",
            "model: m\ntemplate: \"{{ x }}\"\nvariables:\n  x: {type: string, description: the language}\n",
        ),
        (
            "Assertion",
            "type",
            "model: m\ntemplate: hi\ntests:\n  - assert: [{type: safety_check}]\n",
        ),
        (
            "Assertion",
            "value",
            "model: m\ntemplate: hi\ntests:\n  - assert: [{type: regex, value: \"^h\"}]\n",
        ),
        (
            "Assertion",
            "threshold",
            "model: m\ntemplate: hi\ntests:\n  - assert: [{type: semantic_similarity, value: hello, threshold: 0.8}]\n",
        ),
        (
            "Assertion",
            "schema",
            "model: m\ntemplate: hi\ntests:\n  - assert: [{type: structure_validation, schema: {type: object}}]\n",
        ),
        (
            "Assertion",
            "model",
            "model: m\ntemplate: hi\ntests:\n  - assert: [{type: llm_judge, value: is polite, model: gpt-4o-mini}]\n",
        ),
    ];

    /// Every key of the prompt schema (derived from the loader's types), by where it
    /// stands: `prompt` for the file's top level, else the definition's name.
    fn schema_keys() -> Vec<(String, String)> {
        let schema = crate::schema::prompt_schema();
        let keys = |at: &serde_json::Value, place: &str| {
            at["properties"]
                .as_object()
                .map(|properties| {
                    properties
                        .keys()
                        .map(|key| (place.to_owned(), key.clone()))
                        .collect::<Vec<_>>()
                })
                .unwrap_or_default()
        };
        let mut all = keys(&schema, "prompt");
        for (name, definition) in schema["$defs"].as_object().into_iter().flatten() {
            all.extend(keys(definition, name));
        }
        all
    }

    #[test]
    fn the_fast_reader_reads_every_key_the_schema_has_as_the_full_parser_does() {
        let keys = schema_keys();
        assert!(keys.len() >= 25, "{keys:?}");
        for (place, key) in &keys {
            let Some((_, _, text)) = SAMPLES.iter().find(|(p, k, _)| p == place && k == key) else {
                panic!(
                    "no sample for `{key}` in {place}: add one to SAMPLES, and teach the fast \
                     reader the key (else every file using it takes the slow path)"
                );
            };
            let fast = read(text);
            assert!(
                fast.is_some(),
                "the fast reader gives up on `{key}` in {place}:\n{text}"
            );
            assert_eq!(fast, full(text), "`{key}` in {place}:\n{text}");
        }
    }

    /// Whenever the plain reader answers, the full parser accepts the file and agrees.
    fn agrees(text: &str) -> bool {
        match read(text) {
            None => false,
            Some(plain) => {
                let expected = full(text);
                assert_eq!(Some(&plain), expected.as_ref(), "on:\n{text}");
                true
            }
        }
    }

    #[test]
    fn reads_a_typical_file_as_the_full_parser_does() {
        let text = "# formatted\ndescription: prompt 1\nmodel: gpt-4o-mini\nparameters:\n  temperature: 0.2\n  max_tokens: 800\n  stop: [\"\\n\\n\", end]\nvariables:\n  input: {type: string, required: true}\n  language: {type: string, default: en}\nmessages:\n  - role: system\n    content: |\n      You are assistant 1.\n\n      Answer in {{ language }}.  \n  - role: user\n    content: \"{{ input }}\" # the input\ntests:\n  - name: answers\n    vars: {input: hello}\n    assert: [{type: contains, value: hello}]\n";
        assert!(agrees(text));
        let text = text.replace("[\"\\n\\n\", end]", "['###', \"\\u0041\"]");
        assert!(
            read(&text).is_none(),
            "a rarer escape goes to the full parser"
        );
        let text = text.replace("\"\\u0041\"", "end");
        assert!(agrees(&text));
        let plain = read(&text).expect("reads");
        let definition = plain.definition.expect("complete");
        assert_eq!(definition.model, "gpt-4o-mini");
        match definition.body {
            Body::Messages(messages) => {
                assert_eq!(
                    messages[0].content,
                    "You are assistant 1.\n\nAnswer in {{ language }}.  \n"
                );
                assert_eq!(messages[1].content, "{{ input }}");
            }
            Body::Template(_) => panic!("a chat"),
        }
    }

    #[test]
    fn leaves_everything_outside_the_subset_to_the_full_parser() {
        for text in [
            "model: &m gpt-4o\ntemplate: hi\n",
            "model: !!str gpt\ntemplate: hi\n",
            "model: gpt\ntemplate: >\n  folded\n",
            "model: gpt\ntemplate: hi\n  continued\n",
            "model: gpt\nmodel: gpt\ntemplate: hi\n",
            "model: gpt\ntemplate: hi\nparameters: {stream: yes}\n",
            "model: gpt\ntemplate: hi\nparameters:\n  x: 1e3\n",
            "model: gpt\ntemplate: \"a\\x41b\"\n",
            "model: gpt\ntemplate: 'it''s'\n",
            "model: gpt\r\ntemplate: hi\r\n",
            "---\nmodel: gpt\ntemplate: hi\n",
            "model: gpt\ntemplate: |\n  no final newline",
            "model: gpt\ntemplate: hi\nunknown: x\n",
            "model: 4o\ntemplate: hi\n",
            "model: gpt\ntemplate: hi\ndescription:\n",
            // Found by review: brackets inside flow scalars, keys past serde-saphyr's
            // look-ahead.
            "model: gpt\ntemplate: hi\nparameters: {x: a{b}\n",
            "model: gpt\ntemplate: hi\nparameters:\n  x: [a[b]\n",
            "model: gpt\ntemplate: hi\nparameters:\n  x: [a, a{b]\n",
            "model: m\nmessages: [{role: user, content: hi{---}]\n",
            &format!(
                "model: gpt\ntemplate: hi\nparameters:\n  {}: 1\n",
                "a".repeat(1025)
            ),
            &format!(
                "model: gpt\ntemplate: hi\nparameters: {{{}: 1}}\n",
                "a".repeat(1025)
            ),
            "# only a comment\n",
            "",
        ] {
            assert_eq!(read(text), None, "{text:?}");
        }
    }

    /// A small deterministic generator of random numbers (xorshift), so the generated
    /// files are the same on every run. A clean file (half of them) draws its words and
    /// styles from those the reader takes, so that both sides of the property are
    /// exercised.
    struct Random(u64, bool);

    impl Random {
        fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            let value = (self.0 % n as u64) as usize;
            if self.1 && n > 2 && value == 0 {
                n - 1
            } else {
                value
            }
        }

        fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
            items[self.below(items.len())]
        }
    }

    const WORDS: &[&str] = &[
        "gpt-4o",
        "en",
        "hello world",
        "yes",
        "No",
        "null",
        "~",
        "~x",
        "123",
        "0.5",
        "1e3",
        "0x1F",
        "-3",
        "007",
        ".5",
        "true",
        "false",
        "True",
        "a: b",
        "x #y",
        "x#y",
        "{{ input }}",
        "Ünïcode tëxt",
        "-dash",
        "@at",
        "`tick`",
        "%p",
        "",
        "2024-01-01",
        "1_000",
        "+1",
        "-0",
        "-0.5",
        "3.14159265358979",
        "12345678901234567890",
        "a:b",
        "a,b",
        "[x]",
        "q?",
        "?q",
        "!bang",
        "*star",
        "&amp",
        "|pipe",
        ">gt",
        "x  y",
        "end:",
        "http://x.y/z",
        "1.",
        "1.0",
        "on",
        "OFF",
        "y",
        "N",
        "string",
        "number",
        "integer",
        "boolean",
        "array",
        "object",
        "any",
        "system",
        "user",
        "assistant",
        "tool",
        "contains",
        "Answer in {{ language }}.",
    ];

    /// Words that are strings wherever they stand.
    const CLEAN_WORDS: &[&str] = &[
        "gpt-4o",
        "en",
        "hello world",
        "{{ input }}",
        "Ünïcode tëxt",
        "x#y",
        "a:b",
        "string",
        "system",
        "user",
        "contains",
        "Answer in {{ language }}.",
        "http://x.y/z",
        "x  y",
    ];

    /// Values for free-form places (parameters, variables, test inputs).
    const CLEAN_VALUES: &[&str] = &["123", "0.5", "-3", "true", "false", "1.0", "en", "x y"];

    /// A scalar in one of the styles a person might write.
    fn scalar(random: &mut Random) -> String {
        let word = if random.1 {
            random.pick(CLEAN_WORDS)
        } else {
            random.pick(WORDS)
        };
        match random.below(9) {
            0 => format!("\"{word}\""),
            1 => format!("'{word}'"),
            2 => format!("\"{word}\\n\\\"q\\\" \\t\\/\\\\\""),
            8 if !random.1 => format!("\"{word}\\x41 \\u00e9\""),
            3 => format!("{word} # note"),
            4 => format!("{word}#x"),
            _ => word.to_owned(),
        }
    }

    /// A flow collection of scalars.
    fn flow(random: &mut Random, keys: &[&str]) -> String {
        let mut parts = Vec::new();
        for _ in 0..random.below(4) {
            let value = scalar(random);
            let value = if value.contains(['\'', '"']) && random.below(2) == 0 {
                "x".to_owned()
            } else {
                value
            };
            parts.push(format!("{}: {value}", random.pick(keys)));
        }
        let separator = if random.below(6) == 0 { "," } else { ", " };
        match random.below(10) {
            0 => format!("[{}]", parts.join(separator)),
            1 => format!("{{{}", parts.join(separator)),
            _ => format!("{{{}}}", parts.join(separator)),
        }
    }

    /// A block scalar's header and lines, indented by `indent`.
    fn block_scalar(random: &mut Random, indent: usize) -> String {
        let header = if random.1 {
            random.pick(&["|", "|-"])
        } else {
            random.pick(&["|", "|-", "|+", ">", "|2", "| # c"])
        };
        let pad = " ".repeat(indent + 2);
        let mut out = format!("{header}\n");
        for _ in 0..random.below(5) + 1 {
            let line = match random.below(9) {
                0 => String::new(),
                1 => format!("{pad}  deeper {{{{ x }}}}"),
                2 => format!("{pad}# not a comment"),
                3 if !random.1 => " ".repeat(indent + 4),
                4 => format!("{} less", " ".repeat(indent + 1)),
                5 => format!("{pad}trailing  "),
                _ => format!("{pad}{}", random.pick(WORDS)),
            };
            out.push_str(&line);
            out.push('\n');
        }
        out
    }

    /// A value for a key at `indent`: on the line, or a block below it.
    fn value_of(random: &mut Random, key: &str, indent: usize) -> String {
        let pad = " ".repeat(indent + 2);
        let seq_pad = if random.below(3) == 0 {
            " ".repeat(indent)
        } else {
            pad.clone()
        };
        match key {
            "parameters" | "vars" => match random.below(3) {
                0 => format!(
                    " {}\n",
                    flow(random, &["temperature", "max_tokens", "on", "x"])
                ),
                _ => {
                    let mut out = String::from("\n");
                    for _ in 0..random.below(3) + 1 {
                        let name =
                            random.pick(&["temperature", "max_tokens", "top_p", "stop", "input"]);
                        let value = match random.below(4) {
                            0 => flow(random, &["a", "b"]),
                            1 if random.1 => random.pick(CLEAN_VALUES).to_owned(),
                            _ => scalar(random),
                        };
                        out.push_str(&format!("{pad}{name}: {value}\n"));
                    }
                    out
                }
            },
            "variables" => {
                let mut out = String::from("\n");
                for _ in 0..random.below(3) + 1 {
                    let name = random.pick(&["input", "language", "diff", "input"]);
                    out.push_str(&format!(
                        "{pad}{name}: {}\n",
                        flow(
                            random,
                            &["type", "required", "default", "description", "kind"]
                        )
                    ));
                }
                out
            }
            "messages" => {
                let mut out = String::from("\n");
                for _ in 0..random.below(3) + 1 {
                    let role = random.pick(&["system", "user", "assistant", "sytem", "\"user\""]);
                    out.push_str(&format!("{seq_pad}- role: {role}\n"));
                    let inner = seq_pad.len() + 2;
                    let content = if random.below(2) == 0 {
                        block_scalar(random, inner)
                    } else {
                        format!("{}\n", scalar(random))
                    };
                    if random.below(12) != 0 {
                        out.push_str(&format!("{}content: {content}", " ".repeat(inner)));
                    }
                }
                out
            }
            "tests" | "monitor" => {
                let mut out = String::from("\n");
                for _ in 0..random.below(3) {
                    match random.below(3) {
                        0 => out.push_str(&format!(
                            "{seq_pad}- {}\n",
                            flow(random, &["type", "value", "threshold", "name"])
                        )),
                        _ => {
                            out.push_str(&format!("{seq_pad}- name: {}\n", scalar(random)));
                            let inner = " ".repeat(seq_pad.len() + 2);
                            out.push_str(&format!("{inner}vars: {}\n", flow(random, &["input"])));
                            out.push_str(&format!(
                                "{inner}assert: [{}]\n",
                                flow(random, &["type", "value", "threshold"])
                            ));
                        }
                    }
                }
                if out == "\n" { " []\n".to_owned() } else { out }
            }
            _ => match random.below(5) {
                0 => format!(" {}", block_scalar(random, indent)),
                _ => format!(" {}\n", scalar(random)),
            },
        }
    }

    #[test]
    fn agrees_with_the_full_parser_on_generated_files() {
        let mut random = Random(0x2545_f491_4f6c_dd1d, false);
        // The schema's keys and a misspelt one.
        let keys: Vec<&str> = crate::repo::file::PROMPT_KEYS
            .iter()
            .copied()
            .chain(["modle"])
            .collect();
        let (mut answered, mut complete) = (0, 0);
        for round in 0..4_000 {
            random.1 = round % 2 == 0;
            let mut text = String::new();
            if random.below(3) == 0 {
                text.push_str("# a comment\n\n");
            }
            let mut chosen: Vec<&str> = vec!["model", "messages"];
            for _ in 0..random.below(6) {
                chosen.push(random.pick(&keys));
            }
            if random.below(4) == 0 {
                chosen.retain(|key| *key != "model");
            }
            if random.below(3) == 0 {
                chosen.push("template");
            }
            let mut seen = Vec::new();
            for key in chosen {
                if seen.contains(&key) && random.below(10) != 0 {
                    continue;
                }
                seen.push(key);
                let value = value_of(&mut random, key, 0);
                text.push_str(&format!("{key}:{value}"));
                if random.below(6) == 0 {
                    text.push_str("  # trailing comment\n\n");
                }
            }
            if agrees(&text) {
                answered += 1;
                if read(&text).and_then(|plain| plain.definition).is_some() {
                    complete += 1;
                }
            }
        }
        // The generator must exercise the reader, not only its refusals.
        assert!(answered > 150, "answered {answered} of 4000");
        assert!(complete > 100, "{complete} complete definitions");
    }
}
