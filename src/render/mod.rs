//! Rendering a definition into the messages sent to a model.
//!
//! The minijinja environment is strict and bounded: an undefined variable is an error (never
//! an empty string), a template runs on a fixed amount of fuel so a runaway loop stops, and
//! `{% include %}` only resolves partials of the snapshot, by their path relative to the
//! prompts folder: `../` and absolute paths are refused and nothing is read from disk.
//! Variables are checked against the declaration before rendering: required ones must be
//! given, unknown ones are refused, types must match, defaults fill the rest.
//!
//! Every render also runs inside a memory limit ([`limits`]): the values and output of one
//! render may not pass `[render] memory_limit_mib` (64 MiB by default), however the template
//! grows them, and a render that tries fails with [`TemplateErrorKind::MemoryLimit`].
//! minijinja's `debug()` function is removed: it would print the whole context.

pub mod limits;

use std::collections::{BTreeMap, BTreeSet};

use minijinja::{Environment, ErrorKind, UndefinedBehavior};
use serde::Serialize;

use crate::diagnostic::closest;
use crate::repo::{Definition, Partials, Role, VariableSpec};

/// How many instructions one template may run before it is stopped.
pub const RENDER_FUEL: u64 = 2_000_000;

/// Which template of a prompt an error is in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "at")]
pub enum TemplatePart {
    /// The `template:` of a single-template prompt.
    Template,
    /// `messages[i].content`.
    Message(usize),
    /// A partial, by its include path.
    Partial(String),
}

impl std::fmt::Display for TemplatePart {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TemplatePart::Template => f.write_str("template"),
            TemplatePart::Message(index) => write!(f, "messages[{index}]"),
            TemplatePart::Partial(name) => write!(f, "partial {name}"),
        }
    }
}

/// What went wrong in a template.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum TemplateErrorKind {
    /// The template does not parse.
    Syntax,
    /// A value was undefined, or an operation failed on it.
    Runtime,
    /// An include names a partial that does not exist, or leaves the prompts folder.
    Include,
    /// The template ran out of fuel: a runaway loop.
    OutOfFuel,
    /// The template's values and output passed the render's memory limit.
    MemoryLimit,
}

impl TemplateErrorKind {
    /// Whether the render was stopped by one of its limits (fuel or memory) rather than by
    /// an error in the template: the `render-limit` of `check` and the API.
    pub fn is_limit(self) -> bool {
        matches!(
            self,
            TemplateErrorKind::OutOfFuel | TemplateErrorKind::MemoryLimit
        )
    }
}

/// Errors rendering a prompt.
#[derive(Debug, Clone, thiserror::Error, Serialize)]
#[serde(rename_all = "snake_case", tag = "error")]
pub enum RenderError {
    /// A required variable was not given.
    #[error("missing required variable `{name}`")]
    MissingVariable {
        /// The variable.
        name: String,
    },
    /// A variable was given that the prompt does not declare.
    #[error("variable `{name}` is not declared by this prompt{}", suggestion.as_ref().map(|s| format!(" (did you mean `{s}`?)")).unwrap_or_default())]
    UnknownVariable {
        /// The variable.
        name: String,
        /// A declared variable with a close name.
        suggestion: Option<String>,
    },
    /// A variable's value has the wrong type.
    #[error("variable `{name}` must be {expected}, got {actual}")]
    WrongType {
        /// The variable.
        name: String,
        /// The declared type.
        expected: &'static str,
        /// What was given.
        actual: &'static str,
    },
    /// The template failed.
    #[error("{part}{}: {message}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Template {
        /// Which template.
        part: TemplatePart,
        /// The line within that template, when known.
        line: Option<usize>,
        /// What kind of failure.
        kind: TemplateErrorKind,
        /// minijinja's description.
        message: String,
    },
}

impl RenderError {
    /// Whether a limit stopped the render (fuel, steps or memory): `render-limit` in `check`,
    /// `render_limit` over HTTP.
    pub fn is_limit(&self) -> bool {
        matches!(self, RenderError::Template { kind, .. } if kind.is_limit())
    }
}

/// One rendered message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RenderedMessage {
    /// Who speaks.
    pub role: Role,
    /// The text.
    pub content: String,
}

/// Renders definitions against one set of partials.
pub struct Renderer {
    env: Environment<'static>,
}

impl std::fmt::Debug for Renderer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Renderer").finish_non_exhaustive()
    }
}

/// Whether an include path stays inside the prompts folder.
pub fn include_path_is_safe(name: &str) -> bool {
    !name.is_empty()
        && !name.starts_with('/')
        && !name.starts_with('\\')
        && !name.contains(':')
        && !name
            .split(['/', '\\'])
            .any(|part| part == ".." || part == ".")
}

impl Renderer {
    /// A renderer whose includes resolve to `partials`.
    pub fn new(partials: Partials) -> Renderer {
        let mut env = Environment::new();
        env.set_undefined_behavior(UndefinedBehavior::Strict);
        env.set_fuel(Some(RENDER_FUEL));
        env.set_auto_escape_callback(|_| minijinja::AutoEscape::None);
        env.remove_global("debug");
        minijinja::limits::set_allocation_check(limits::allocation_check);
        env.set_loader(move |name| {
            if !include_path_is_safe(name) {
                return Err(minijinja::Error::new(
                    ErrorKind::InvalidOperation,
                    format!("include `{name}` leaves the prompts folder; includes are paths relative to it, without `..`"),
                ));
            }
            Ok(partials.get(name).cloned())
        });
        Renderer { env }
    }

    /// Renders a definition's messages with `vars` (defaults applied, declaration enforced).
    pub fn render(
        &self,
        definition: &Definition,
        vars: &BTreeMap<String, serde_json::Value>,
    ) -> Result<Vec<RenderedMessage>, RenderError> {
        let context = resolve_variables(&definition.variables, vars)?;
        let scope = limits::Scope::enter();
        let context = minijinja::Value::from(minijinja::value::Serde(&context));
        let rendered = self.render_messages(definition, context);
        match rendered {
            Err(RenderError::Template { part, line, .. }) if scope.exceeded() => {
                Err(memory_limit_error(part, line))
            }
            Ok(_) if scope.exceeded() => Err(memory_limit_error(TemplatePart::Template, None)),
            other => other,
        }
    }

    fn render_messages(
        &self,
        definition: &Definition,
        context: minijinja::Value,
    ) -> Result<Vec<RenderedMessage>, RenderError> {
        definition
            .body
            .messages()
            .into_iter()
            .enumerate()
            .map(|(index, (role, source))| {
                let part = match definition.body {
                    crate::repo::Body::Template(_) => TemplatePart::Template,
                    crate::repo::Body::Messages(_) => TemplatePart::Message(index),
                };
                let content = self
                    .env
                    .render_str(source, context.clone())
                    .map_err(|err| template_error(part, &err))?;
                Ok(RenderedMessage { role, content })
            })
            .collect()
    }

    /// Renders `source` with an arbitrary context, for checks that render what is not a
    /// definition (such as a partial on its own).
    pub fn compile(&self, source: &str) -> Result<BTreeSet<String>, minijinja::Error> {
        let template = self.env.template_from_str(source)?;
        let globals: BTreeSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        Ok(template
            .undeclared_variables(false)
            .into_iter()
            .filter(|name| {
                !globals.contains(name.as_str()) && !JINJA_SPECIALS.contains(&name.as_str())
            })
            .collect())
    }
}

/// The error of a render stopped by its memory limit.
fn memory_limit_error(part: TemplatePart, line: Option<usize>) -> RenderError {
    RenderError::Template {
        part,
        line,
        kind: TemplateErrorKind::MemoryLimit,
        message: format!(
            "the render used more than {} MiB of memory for its values and output and was stopped ([render] memory_limit_mib)",
            limits::limit().div_ceil(1024 * 1024)
        ),
    }
}

/// Names minijinja provides inside templates that are never user variables.
const JINJA_SPECIALS: &[&str] = &["loop", "self", "super", "caller", "varargs", "kwargs"];

/// Turns a minijinja error into a [`RenderError`], attributing it to the partial it
/// happened in when it came from an include.
pub fn template_error(part: TemplatePart, err: &minijinja::Error) -> RenderError {
    // An error inside an include is wrapped: the innermost source names the partial.
    let mut innermost: &minijinja::Error = err;
    let mut source: Option<&(dyn std::error::Error + 'static)> = std::error::Error::source(err);
    while let Some(next) = source {
        match next.downcast_ref::<minijinja::Error>() {
            Some(inner) => {
                innermost = inner;
                source = std::error::Error::source(inner);
            }
            None => break,
        }
    }
    let part = match innermost.name() {
        Some(name) if name != "<string>" => TemplatePart::Partial(name.to_owned()),
        _ => part,
    };
    let kind = match innermost.kind() {
        ErrorKind::SyntaxError => TemplateErrorKind::Syntax,
        ErrorKind::OutOfFuel => TemplateErrorKind::OutOfFuel,
        ErrorKind::TemplateNotFound | ErrorKind::BadInclude => TemplateErrorKind::Include,
        ErrorKind::InvalidOperation
            if innermost.to_string().contains("leaves the prompts folder") =>
        {
            TemplateErrorKind::Include
        }
        _ => TemplateErrorKind::Runtime,
    };
    let message = match kind {
        TemplateErrorKind::OutOfFuel => format!(
            "the template ran more than {RENDER_FUEL} instructions (or {} steps inside them) and was stopped (a runaway loop?)",
            limits::MAX_STEPS
        ),
        _ => {
            let detail = innermost.detail().map(str::to_owned);
            let headline = innermost.kind().to_string();
            match detail {
                Some(detail) => format!("{headline}: {detail}"),
                None => headline,
            }
        }
    };
    RenderError::Template {
        part,
        line: innermost.line(),
        kind,
        message,
    }
}

/// The JSON type name of a value, for messages.
pub fn json_type_name(value: &serde_json::Value) -> &'static str {
    match value {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "boolean",
        serde_json::Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    }
}

/// Checks `given` against the declaration and fills in defaults.
///
/// A prompt that declares no variables at all accepts any (its templates are then checked
/// only by strict undefined at render time).
pub fn resolve_variables(
    declared: &BTreeMap<String, VariableSpec>,
    given: &BTreeMap<String, serde_json::Value>,
) -> Result<BTreeMap<String, serde_json::Value>, RenderError> {
    if !declared.is_empty()
        && let Some(name) = given.keys().find(|name| !declared.contains_key(*name))
    {
        return Err(RenderError::UnknownVariable {
            name: name.clone(),
            suggestion: closest(name, declared.keys().map(String::as_str)).map(str::to_owned),
        });
    }
    let mut context = given.clone();
    for (name, spec) in declared {
        match given.get(name) {
            Some(value) => {
                if let Some(kind) = spec.kind
                    && !kind.accepts(value)
                {
                    return Err(RenderError::WrongType {
                        name: name.clone(),
                        expected: kind.as_str(),
                        actual: json_type_name(value),
                    });
                }
            }
            None => match &spec.default {
                Some(default) => {
                    context.insert(name.clone(), default.clone());
                }
                None if spec.required => {
                    return Err(RenderError::MissingVariable { name: name.clone() });
                }
                None => {}
            },
        }
    }
    Ok(context)
}

/// Turns a `--var k=v` string into a value of the declared type: numbers, booleans, arrays
/// and objects are parsed (arrays and objects as JSON); strings are taken as they are.
pub fn coerce_cli_value(
    spec: Option<&VariableSpec>,
    raw: &str,
) -> Result<serde_json::Value, String> {
    use crate::repo::VariableType as T;
    let kind = spec.and_then(|spec| spec.kind).unwrap_or(T::String);
    let parsed = || serde_json::from_str::<serde_json::Value>(raw);
    match kind {
        T::String => Ok(serde_json::Value::String(raw.to_owned())),
        T::Any => Ok(parsed().unwrap_or_else(|_| serde_json::Value::String(raw.to_owned()))),
        T::Number | T::Integer | T::Boolean | T::Array | T::Object => match parsed() {
            Ok(value) if kind.accepts(&value) => Ok(value),
            _ => Err(format!(
                "`{raw}` is not {} {}",
                article(kind.as_str()),
                kind.as_str()
            )),
        },
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

/// An `{% include %}`, `{% import %}`, `{% from %}` or `{% extends %}` target in a template.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IncludeRef {
    /// The quoted path.
    pub target: String,
    /// Byte offset of the path (inside the quotes) in the template.
    pub offset: usize,
}

/// Finds the literal include targets of a template, for `check` and for dependency
/// tracking (`test --changed-since`). Dynamic targets (`{% include name %}`) are skipped.
pub fn find_includes(source: &str) -> Vec<IncludeRef> {
    let mut found = Vec::new();
    for (start, tag) in tags(source, "{%", "%}") {
        let body = tag.trim_start_matches(['-', '+']).trim_start();
        let keyword_len = body
            .find(|c: char| !c.is_ascii_alphabetic())
            .unwrap_or(body.len());
        let keyword = &body[..keyword_len];
        if !matches!(keyword, "include" | "import" | "from" | "extends") {
            continue;
        }
        let body_offset =
            start + (tag.len() - tag.trim_start_matches(['-', '+']).trim_start().len());
        let rest = &body[keyword_len..];
        let trimmed = rest.trim_start();
        let Some(quote) = trimmed.chars().next().filter(|c| *c == '"' || *c == '\'') else {
            continue;
        };
        let after_quote = &trimmed[1..];
        let Some(end) = after_quote.find(quote) else {
            continue;
        };
        let offset = body_offset + keyword_len + (rest.len() - trimmed.len()) + 1;
        found.push(IncludeRef {
            target: after_quote[..end].to_owned(),
            offset,
        });
    }
    found
}

/// Byte offset of the first use of variable `name` inside a `{{ }}` or `{% %}` tag.
pub fn find_variable_use(source: &str, name: &str) -> Option<usize> {
    let mut best: Option<usize> = None;
    for (open, close) in [("{{", "}}"), ("{%", "%}")] {
        for (start, tag) in tags(source, open, close) {
            if let Some(index) = find_identifier(tag, name) {
                let at = start + index;
                best = Some(best.map_or(at, |b| b.min(at)));
            }
        }
    }
    best
}

/// The tags of one kind in a template: (byte offset of the tag's inner text, inner text).
fn tags<'a>(source: &'a str, open: &str, close: &str) -> Vec<(usize, &'a str)> {
    let mut result = Vec::new();
    let mut position = 0;
    while let Some(found) = source[position..].find(open) {
        let inner_start = position + found + open.len();
        let Some(length) = source[inner_start..].find(close) else {
            break;
        };
        result.push((inner_start, &source[inner_start..inner_start + length]));
        position = inner_start + length + close.len();
    }
    result
}

/// Offset of `name` in `text` as a whole identifier, outside string literals and not after
/// a `.` (an attribute).
fn find_identifier(text: &str, name: &str) -> Option<usize> {
    let bytes = text.as_bytes();
    let mut quote: Option<u8> = None;
    let mut index = 0;
    while index < bytes.len() {
        let byte = bytes[index];
        match quote {
            Some(q) if byte == q => quote = None,
            Some(_) => {}
            None if byte == b'"' || byte == b'\'' => quote = Some(byte),
            None => {
                let is_ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
                if text[index..].starts_with(name)
                    && (index == 0 || (!is_ident(bytes[index - 1]) && bytes[index - 1] != b'.'))
                    && bytes.get(index + name.len()).is_none_or(|b| !is_ident(*b))
                {
                    return Some(index);
                }
            }
        }
        index += 1;
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::{Body, MessageTemplate, VariableType};
    use std::sync::Arc;

    fn definition(body: Body, variables: &[(&str, VariableSpec)]) -> Definition {
        Definition {
            model: "m".into(),
            parameters: BTreeMap::new(),
            variables: variables
                .iter()
                .map(|(n, s)| ((*n).to_owned(), s.clone()))
                .collect(),
            body,
        }
    }

    fn spec(required: bool, default: Option<serde_json::Value>) -> VariableSpec {
        VariableSpec {
            kind: Some(VariableType::String),
            required,
            default,
            description: None,
        }
    }

    fn renderer(partials: &[(&str, &str)]) -> Renderer {
        Renderer::new(Arc::new(
            partials
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ))
    }

    #[test]
    fn renders_messages_with_defaults_and_includes() {
        let def = definition(
            Body::Messages(vec![
                MessageTemplate {
                    role: Role::System,
                    content: "You speak {{ lang }}. {% include \"s/_p/tone.j2\" %}".into(),
                },
                MessageTemplate {
                    role: Role::User,
                    content: "{{ q }}".into(),
                },
            ]),
            &[
                ("lang", spec(false, Some("en".into()))),
                ("q", spec(true, None)),
            ],
        );
        let vars = BTreeMap::from([("q".to_owned(), serde_json::json!("why?"))]);
        let out = renderer(&[("s/_p/tone.j2", "Be kind.")])
            .render(&def, &vars)
            .expect("renders");
        assert_eq!(out[0].content, "You speak en. Be kind.");
        assert_eq!(out[1].content, "why?");
    }

    #[test]
    fn missing_unknown_and_mistyped_variables_are_errors() {
        let def = definition(Body::Template("{{ q }}".into()), &[("q", spec(true, None))]);
        let r = renderer(&[]);
        assert!(
            matches!(r.render(&def, &BTreeMap::new()), Err(RenderError::MissingVariable { name }) if name == "q")
        );
        let vars = BTreeMap::from([("qq".to_owned(), serde_json::json!("x"))]);
        assert!(
            matches!(r.render(&def, &vars), Err(RenderError::UnknownVariable { suggestion: Some(s), .. }) if s == "q")
        );
        let vars = BTreeMap::from([("q".to_owned(), serde_json::json!(3))]);
        assert!(matches!(
            r.render(&def, &vars),
            Err(RenderError::WrongType { .. })
        ));
    }

    /// The error of rendering `template`, which takes no variables, with `partials`.
    fn render_error(template: &str, partials: &[(&str, &str)]) -> RenderError {
        let def = definition(Body::Template(template.into()), &[]);
        renderer(partials)
            .render(&def, &BTreeMap::new())
            .expect_err("an error")
    }

    /// The kind of a template error.
    fn kind(err: &RenderError) -> Option<&TemplateErrorKind> {
        match err {
            RenderError::Template { kind, .. } => Some(kind),
            _ => None,
        }
    }

    #[test]
    fn includes_cannot_leave_the_prompts_folder() {
        let err = render_error("{% include \"../secrets.txt\" %}", &[]);
        assert!(
            matches!(kind(&err), Some(TemplateErrorKind::Include)),
            "{err:?}"
        );
        assert!(!include_path_is_safe("/etc/passwd"));
        assert!(!include_path_is_safe("a/../../b.j2"));
        assert!(include_path_is_safe("a/_partials/b.j2"));
    }

    #[test]
    fn runaway_loop_runs_out_of_fuel() {
        let started = std::time::Instant::now();
        let err = render_error(
            "{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}",
            &[],
        );
        assert!(
            matches!(kind(&err), Some(TemplateErrorKind::OutOfFuel)),
            "{err:?}"
        );
        assert!(started.elapsed().as_secs() < 5);
    }

    #[test]
    fn errors_in_partials_name_the_partial() {
        match render_error(
            "a\n{% include \"p.j2\" %}",
            &[("p.j2", "line1\n{{ nope }}")],
        ) {
            RenderError::Template { part, line, .. } => {
                assert_eq!(part, TemplatePart::Partial("p.j2".into()));
                assert_eq!(line, Some(2));
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn finds_includes_and_variable_uses() {
        let source =
            "Hi {{ user.name }}\n{%- include 'a/b.j2' %}{% if users %}{{ 'users' }}{% endif %}";
        let includes = find_includes(source);
        assert_eq!(includes.len(), 1);
        assert_eq!(includes[0].target, "a/b.j2");
        assert_eq!(
            &source[includes[0].offset..includes[0].offset + 6],
            "a/b.j2"
        );
        assert_eq!(find_variable_use(source, "user"), Some(6));
        assert_eq!(find_variable_use(source, "users"), source.find("users"));
        assert_eq!(find_variable_use(source, "name"), None);
    }

    #[test]
    fn cli_values_follow_the_declared_type() {
        let number = VariableSpec {
            kind: Some(VariableType::Integer),
            required: false,
            default: None,
            description: None,
        };
        assert_eq!(
            coerce_cli_value(Some(&number), "42"),
            Ok(serde_json::json!(42))
        );
        assert!(coerce_cli_value(Some(&number), "4.5").is_err());
        assert_eq!(coerce_cli_value(None, "42"), Ok(serde_json::json!("42")));
    }
}
