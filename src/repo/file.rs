//! One prompt file as written: the serde types of SPEC section 1, with source positions.
//!
//! Parsing never panics and is bounded: files over [`MAX_FILE_BYTES`], with NUL bytes or
//! invalid UTF-8 are refused before the YAML parser sees them, and serde-saphyr's budgets
//! stop alias bombs and deep nesting in milliseconds. What the file means (identity,
//! definition) lives in `repo::definition`; lint rules live in `check`.

use std::collections::BTreeMap;
use std::path::Path;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use crate::config::quoted_after;
use crate::diagnostic::{Diagnostic, Position, closest};

/// Files larger than this are refused: a prompt is text a person reads.
pub const MAX_FILE_BYTES: usize = 1024 * 1024;

/// The deepest nesting of YAML collections accepted.
const MAX_DEPTH: usize = 64;

/// The most YAML aliases (and anchors) a file may use.
const MAX_ALIASES: usize = 1_000;

/// The most YAML nodes a file may expand to, aliases included: far more than any prompt
/// needs, few enough that an alias bomb is refused in milliseconds.
const MAX_NODES: usize = 100_000;

/// A value with the place in the file it came from.
pub type Located<T> = Spanned<T>;

/// The top-level keys of a prompt file, in canonical order.
pub const PROMPT_KEYS: &[&str] = &[
    "name",
    "service",
    "description",
    "model",
    "parameters",
    "variables",
    "messages",
    "template",
    "monitor",
    "tests",
];

/// The keys of an assertion.
pub const ASSERTION_KEYS: &[&str] = &["type", "value", "threshold", "schema", "model"];

/// The keys of a test case.
pub const TEST_KEYS: &[&str] = &["name", "description", "vars", "assert"];

/// The keys of a variable declaration.
pub const VARIABLE_KEYS: &[&str] = &["type", "required", "default", "description"];

/// A prompt file, as parsed.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "promptctl prompt file")]
pub struct PromptFile {
    /// The prompt's name; the file stem when absent.
    #[schemars(with = "Option<String>")]
    pub name: Option<Located<String>>,
    /// The prompt's service; the first folder under `prompts/` when absent.
    #[schemars(with = "Option<String>")]
    pub service: Option<Located<String>>,
    /// What the prompt is for (not part of the definition).
    pub description: Option<String>,
    /// The model the prompt is written for.
    #[schemars(with = "Option<String>")]
    pub model: Option<Located<String>>,
    /// Provider parameters, passed as they are.
    #[serde(default)]
    pub parameters: Option<BTreeMap<String, serde_json::Value>>,
    /// Declared inputs.
    #[serde(default)]
    #[schemars(with = "Option<BTreeMap<String, VariableSpec>>")]
    pub variables: Option<BTreeMap<String, Located<VariableSpec>>>,
    /// A chat template.
    #[schemars(with = "Option<Vec<Message>>")]
    pub messages: Option<Located<Vec<Message>>>,
    /// A single user message template.
    #[schemars(with = "Option<String>")]
    pub template: Option<Located<String>>,
    /// Assertions that score sampled production outputs.
    #[serde(default)]
    #[schemars(with = "Option<Vec<Assertion>>")]
    pub monitor: Option<Vec<Located<Assertion>>>,
    /// Test cases.
    #[serde(default)]
    #[schemars(with = "Option<Vec<TestCase>>")]
    pub tests: Option<Located<Vec<Located<TestCase>>>>,
}

/// A message role.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions to the model.
    System,
    /// The user's turn.
    User,
    /// The model's turn (for few-shot examples).
    Assistant,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 3] = [Role::System, Role::User, Role::Assistant];

    /// The role a file names (`system`, `user`, `assistant`).
    pub fn parse(name: &str) -> Option<Role> {
        Role::ALL.into_iter().find(|role| role.as_str() == name)
    }

    /// The role's name on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

/// One message of a chat template.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Message {
    /// Who speaks.
    #[schemars(with = "Role")]
    pub role: Located<Role>,
    /// The message's template.
    #[schemars(with = "String")]
    pub content: Located<String>,
}

/// The type a variable's value must have.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize, JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum VariableType {
    /// Text.
    String,
    /// Any number.
    Number,
    /// A whole number.
    Integer,
    /// `true` or `false`.
    Boolean,
    /// A list.
    Array,
    /// A mapping.
    Object,
    /// Anything.
    Any,
}

impl VariableType {
    /// Every type.
    pub const ALL: [VariableType; 7] = [
        VariableType::String,
        VariableType::Number,
        VariableType::Integer,
        VariableType::Boolean,
        VariableType::Array,
        VariableType::Object,
        VariableType::Any,
    ];

    /// The type a file names (`string`, `number`, ...).
    pub fn parse(name: &str) -> Option<VariableType> {
        VariableType::ALL
            .into_iter()
            .find(|kind| kind.as_str() == name)
    }

    /// The type's name as written in files.
    pub fn as_str(self) -> &'static str {
        match self {
            VariableType::String => "string",
            VariableType::Number => "number",
            VariableType::Integer => "integer",
            VariableType::Boolean => "boolean",
            VariableType::Array => "array",
            VariableType::Object => "object",
            VariableType::Any => "any",
        }
    }

    /// Whether `value` has this type.
    pub fn accepts(self, value: &serde_json::Value) -> bool {
        use serde_json::Value as J;
        match self {
            VariableType::String => value.is_string(),
            VariableType::Number => value.is_number(),
            VariableType::Integer => value.is_i64() || value.is_u64(),
            VariableType::Boolean => value.is_boolean(),
            VariableType::Array => value.is_array(),
            VariableType::Object => matches!(value, J::Object(_)),
            VariableType::Any => true,
        }
    }
}

/// A declared input.
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct VariableSpec {
    /// The value's type (`any` when absent).
    #[serde(rename = "type", default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<VariableType>,
    /// Whether every render must give it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub required: bool,
    /// The value used when none is given.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default: Option<serde_json::Value>,
    /// What the variable is for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
}

/// One test case.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct TestCase {
    /// The test's name, shown in reports.
    pub name: Option<String>,
    /// What the test checks.
    pub description: Option<String>,
    /// The variables to render with.
    #[serde(default)]
    pub vars: BTreeMap<String, serde_json::Value>,
    /// What the output must satisfy.
    #[serde(default)]
    #[schemars(with = "Vec<Assertion>")]
    pub assert: Vec<Located<Assertion>>,
}

/// One assertion about a model's output (SPEC section 1, test types).
#[derive(Debug, Clone, PartialEq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Assertion {
    /// The assertion type, e.g. `contains`.
    #[serde(rename = "type")]
    #[schemars(schema_with = "assertion_kind_schema")]
    pub kind: String,
    /// The expected value, rubric or limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<serde_json::Value>,
    /// The lowest passing score, 0.0 to 1.0.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub threshold: Option<f64>,
    /// A JSON Schema, for `structure_validation`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema: Option<serde_json::Value>,
    /// The grader model, for `llm_judge`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
}

/// The JSON Schema of an assertion's `type`: one of the names of [`AssertionKind::NAMES`].
fn assertion_kind_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    let names: Vec<&str> = AssertionKind::NAMES.iter().map(|(name, _)| *name).collect();
    schemars::json_schema!({
        "type": "string",
        "enum": names,
        "description": "The assertion type, e.g. `contains` (SPEC section 1, test types)."
    })
}

/// The assertion types of SPEC section 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AssertionKind {
    /// Output equals `value` after trimming.
    ExactMatch,
    /// Output contains `value`.
    Contains,
    /// Output does not contain `value`.
    NotContains,
    /// Output matches the regular expression `value`.
    Regex,
    /// Output is close in meaning to `value`.
    SemanticSimilarity,
    /// Output is JSON (matching `schema` when given).
    StructureValidation,
    /// Output holds no PII or secret.
    SafetyCheck,
    /// A grader model scores the output against the rubric `value`.
    LlmJudge,
    /// The call took less than `value` milliseconds.
    LatencyMs,
    /// The call cost less than `value` US dollars.
    CostUsd,
}

impl AssertionKind {
    /// Every kind, with the names files use for it (the first is canonical).
    pub const NAMES: &'static [(&'static str, AssertionKind)] = &[
        ("exact_match", AssertionKind::ExactMatch),
        ("contains", AssertionKind::Contains),
        ("not_contains", AssertionKind::NotContains),
        ("regex", AssertionKind::Regex),
        ("semantic_similarity", AssertionKind::SemanticSimilarity),
        ("structure_validation", AssertionKind::StructureValidation),
        ("safety_check", AssertionKind::SafetyCheck),
        ("security_check", AssertionKind::SafetyCheck),
        ("llm_judge", AssertionKind::LlmJudge),
        ("latency_ms", AssertionKind::LatencyMs),
        ("cost_usd", AssertionKind::CostUsd),
    ];

    /// The kind a file names, aliases included.
    pub fn parse(name: &str) -> Option<AssertionKind> {
        Self::NAMES
            .iter()
            .find(|(candidate, _)| *candidate == name)
            .map(|(_, kind)| *kind)
    }

    /// The canonical name.
    pub fn as_str(self) -> &'static str {
        Self::NAMES
            .iter()
            .find(|(_, kind)| *kind == self)
            .map_or("", |(name, _)| name)
    }

    /// Whether the assertion needs a `value`.
    pub fn needs_value(self) -> bool {
        !matches!(
            self,
            AssertionKind::StructureValidation | AssertionKind::SafetyCheck
        )
    }

    /// Whether the assertion may score production outputs (it needs no expected output).
    pub fn allowed_in_monitor(self) -> bool {
        matches!(
            self,
            AssertionKind::StructureValidation
                | AssertionKind::SafetyCheck
                | AssertionKind::Regex
                | AssertionKind::Contains
                | AssertionKind::NotContains
                | AssertionKind::LlmJudge
        )
    }

    /// The default passing threshold: 0.8 for similarity, 1.0 otherwise (SPEC section 1).
    pub fn default_threshold(self) -> f64 {
        match self {
            AssertionKind::SemanticSimilarity => 0.8,
            _ => 1.0,
        }
    }
}

/// Why a file could not be read as a prompt file at all.
#[derive(Debug, Clone, PartialEq)]
pub struct ParseFailure(pub Diagnostic);

/// The problem of a file of `size` bytes, over [`MAX_FILE_BYTES`].
pub fn too_large(path: &Path, size: u64) -> Diagnostic {
    Diagnostic::error(
        "file-too-large",
        path,
        Position::start(),
        format!("file is {size} bytes, over the {MAX_FILE_BYTES} byte limit for prompt files"),
    )
    .with_help("split the prompt, or move large reference text out of the template")
}

/// Checks that raw bytes are text a prompt file could be: size, NUL bytes, UTF-8.
pub fn decode_text(path: &Path, bytes: &[u8]) -> Result<String, Diagnostic> {
    if bytes.len() > MAX_FILE_BYTES {
        return Err(too_large(path, bytes.len() as u64));
    }
    if let Some(offset) = bytes.iter().position(|&b| b == 0) {
        let position = byte_position(bytes, offset);
        return Err(Diagnostic::error(
            "binary-file",
            path,
            position,
            "file contains a NUL byte: it looks binary, not YAML text",
        )
        .with_help(
            "prompt files must be UTF-8 text; remove the file or move it out of the prompts folder",
        ));
    }
    match std::str::from_utf8(bytes) {
        Ok(text) => Ok(text.strip_prefix('\u{feff}').unwrap_or(text).to_owned()),
        Err(err) => {
            let position = byte_position(bytes, err.valid_up_to());
            Err(Diagnostic::error(
                "not-utf8",
                path,
                position,
                format!(
                    "file is not valid UTF-8 (bad byte at offset {})",
                    err.valid_up_to()
                ),
            )
            .with_help("save the file as UTF-8"))
        }
    }
}

fn byte_position(bytes: &[u8], offset: usize) -> Position {
    let before = &bytes[..offset.min(bytes.len())];
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let column = String::from_utf8_lossy(&before[line_start..])
        .chars()
        .count()
        + 1;
    Position::new(line, column)
}

fn yaml_options() -> serde_saphyr::Options {
    let mut budget = serde_saphyr::Budget::default();
    budget.max_depth = MAX_DEPTH;
    budget.max_aliases = MAX_ALIASES;
    budget.max_anchors = MAX_ALIASES;
    budget.max_documents = 1;
    budget.max_nodes = MAX_NODES;
    budget.max_total_scalar_bytes = MAX_FILE_BYTES * 2;
    let mut options = serde_saphyr::Options::default();
    options.budget = Some(budget);
    options
}

/// Parses a prompt file's text. `path` (relative to the project root) names it in errors.
pub fn parse_prompt(path: &Path, text: &str) -> Result<PromptFile, Diagnostic> {
    if has_no_content(text) {
        return Err(Diagnostic::error(
            "empty-file",
            path,
            Position::start(),
            "file is empty",
        )
        .with_help("a prompt file needs at least `model:` and `template:` or `messages:`; run `promptctl init` for an example"));
    }
    parse_yaml::<PromptFile>(path, text, PROMPT_KEYS)
}

/// Whether `text` holds no YAML content: only blank lines, comments and document markers.
fn has_no_content(text: &str) -> bool {
    text.lines().all(|line| {
        let line = line.trim();
        line.is_empty() || line.starts_with('#') || line == "---" || line == "..."
    })
}

/// Parses YAML text into `T`, turning serde-saphyr's errors into a [`Diagnostic`].
/// `known_keys` feeds the "did you mean" hint for unknown top-level keys.
pub fn parse_yaml<T: serde::de::DeserializeOwned>(
    path: &Path,
    text: &str,
    known_keys: &[&str],
) -> Result<T, Diagnostic> {
    serde_saphyr::from_str_with_options::<T>(text, yaml_options())
        .map_err(|err| yaml_error(path, text, &err, known_keys))
}

fn yaml_error(
    path: &Path,
    text: &str,
    err: &serde_saphyr::Error,
    known_keys: &[&str],
) -> Diagnostic {
    let position = err
        .location()
        .filter(|loc| loc.line() > 0)
        .map(|loc| Position::new(loc.line() as usize, loc.column() as usize))
        .unwrap_or_else(Position::start);
    let message = limit_message(&clean_yaml_message(&err.without_snippet().to_string()));
    let code = if message.contains("budget")
        || message.contains("depth")
        || message.contains("alias")
        || message.contains("nest")
    {
        "yaml-limits"
    } else if message.starts_with("unknown field")
        || message.starts_with("missing field")
        || message.starts_with("invalid type")
        || message.starts_with("unknown variant")
    {
        "schema"
    } else {
        "yaml-syntax"
    };
    let mut diagnostic = Diagnostic::error(code, path, position, message.clone()).with_source(text);
    if let Some(unknown) = quoted_after(&message, "unknown field `") {
        let candidates: Vec<&str> = expected_list(&message).unwrap_or_else(|| known_keys.to_vec());
        match closest(unknown, candidates.iter().copied()) {
            Some(suggestion) => {
                diagnostic = diagnostic
                    .with_help(format!("did you mean `{suggestion}`?"))
                    .with_length(unknown.chars().count());
            }
            None => {
                diagnostic = diagnostic
                    .with_help(format!("known keys here: {}", candidates.join(", ")))
                    .with_length(unknown.chars().count());
            }
        }
    } else if let Some(unknown) = quoted_after(&message, "unknown variant `") {
        if let Some(candidates) = expected_list(&message)
            && let Some(suggestion) = closest(unknown, candidates.iter().copied())
        {
            diagnostic = diagnostic.with_help(format!("did you mean `{suggestion}`?"));
        }
    } else if code == "yaml-limits" {
        diagnostic = diagnostic.with_help(format!(
            "prompt files may nest at most {MAX_DEPTH} levels and use a bounded number of aliases; simplify the file"
        ));
    }
    diagnostic
}

/// A readable message for the parser's limits, whose own wording is a debug dump such as
/// `budget breached: Nodes { nodes: 250001 } at line 4 ... (used`.
fn limit_message(message: &str) -> String {
    let Some(breach) = message.strip_prefix("budget breached: ") else {
        if message.contains("recursion limit exceeded") {
            return format!("the YAML nests deeper than {MAX_DEPTH} levels");
        }
        return message.to_owned();
    };
    let kind = breach.split([' ', '{']).next().unwrap_or_default();
    match kind {
        "Nodes" => format!("the YAML expands to more than {MAX_NODES} nodes (an alias bomb?)"),
        "Depth" => format!("the YAML nests deeper than {MAX_DEPTH} levels"),
        "Aliases" => format!("the YAML uses more than {MAX_ALIASES} aliases"),
        "Anchors" => format!("the YAML defines more than {MAX_ALIASES} anchors"),
        "Documents" => "a prompt file holds one YAML document, not several".to_owned(),
        "" => "the YAML exceeds a parser budget".to_owned(),
        other => format!("the YAML exceeds the parser's budget ({other})"),
    }
}

/// The names in serde's "expected one of `a`, `b`" tail.
fn expected_list(message: &str) -> Option<Vec<&str>> {
    let tail = &message[message.find("expected one of ")? + "expected one of ".len()..];
    Some(
        tail.split(", ")
            .map(|item| item.trim().trim_matches('`'))
            .filter(|item| !item.is_empty())
            .collect(),
    )
}

/// serde-saphyr's message without its own " at line X column Y" suffix (we print positions
/// ourselves).
fn clean_yaml_message(message: &str) -> String {
    let first = message.lines().next().unwrap_or(message).trim();
    let first = match first.rfind(" at line ") {
        Some(index) => &first[..index],
        None => first,
    };
    let first = first.strip_prefix("error: ").unwrap_or(first);
    first.to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<PromptFile, Diagnostic> {
        parse_prompt(Path::new("prompts/s/p.yaml"), text)
    }

    #[test]
    fn parses_the_spec_example_shape() {
        let file = parse(
            "model: gpt-4o\nvariables:\n  diff: {type: string, required: true}\nmessages:\n  - role: system\n    content: |\n      Hi {{ diff }}\ntests:\n  - name: t\n    vars: {diff: x}\n    assert:\n      - {type: contains, value: x}\n",
        )
        .expect("parses");
        let model = file.model.expect("model");
        assert_eq!(model.value, "gpt-4o");
        assert_eq!(model.referenced.line(), 1);
        let tests = file.tests.expect("tests");
        assert_eq!(tests.value[0].referenced.line(), 9);
        let messages = file.messages.expect("messages");
        assert_eq!(messages.value[0].content.referenced.line(), 7);
    }

    #[test]
    fn unknown_key_suggests_the_right_one() {
        let err = parse("modle: gpt-4o\ntemplate: hi\n").expect_err("rejects");
        assert_eq!(err.code, "schema");
        assert_eq!(err.position.line, 1);
        assert_eq!(err.help.as_deref(), Some("did you mean `model`?"));
    }

    #[test]
    fn unknown_role_suggests() {
        let err =
            parse("model: m\nmessages:\n  - role: sytem\n    content: hi\n").expect_err("rejects");
        assert_eq!(err.position.line, 3);
        assert_eq!(err.help.as_deref(), Some("did you mean `system`?"));
    }

    #[test]
    fn alias_bomb_is_refused_quickly() {
        let mut text = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..20 {
            let prev = i - 1;
            text.push_str(&format!(
                "a{i}: &a{i} [*a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}, *a{prev}]\n"
            ));
        }
        let started = std::time::Instant::now();
        let err = parse(&text).expect_err("rejects");
        assert!(
            started.elapsed().as_secs() < 2,
            "took {:?}",
            started.elapsed()
        );
        assert!(!err.message.is_empty());
    }

    #[test]
    fn deep_nesting_is_refused() {
        let text = format!("model: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
        let err = parse(&text).expect_err("rejects");
        assert!(!err.message.is_empty());
        for nested in ["[".repeat(100_000), "{a: ".repeat(100_000)] {
            let text = format!("model: m\ntemplate: hi\nparameters:\n  x: {nested}\n");
            let err = parse(&text).expect_err("rejects");
            assert_eq!(err.code, "yaml-limits", "{}", err.message);
            assert_eq!(err.message, "the YAML nests deeper than 64 levels");
            assert_eq!(err.position.line, 4);
        }
    }

    #[test]
    fn alias_bomb_in_free_form_parameters_gets_a_readable_message() {
        let mut text = String::from(
            "model: m\ntemplate: hi\nparameters:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
        );
        for i in 1..20 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            text.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
        }
        let err = parse(&text).expect_err("rejects");
        assert_eq!(err.code, "yaml-limits");
        assert_eq!(
            err.message,
            "the YAML expands to more than 100000 nodes (an alias bomb?)"
        );
    }

    #[test]
    fn a_file_of_only_comments_is_empty() {
        for text in ["", "\n  \n", "# nothing yet\n\n# more\n", "---\n# c\n"] {
            assert_eq!(
                parse(text).expect_err("rejects").code,
                "empty-file",
                "{text:?}"
            );
        }
    }

    #[test]
    fn binary_and_non_utf8_are_refused() {
        let path = Path::new("p.yaml");
        assert_eq!(
            decode_text(path, b"model: x\0").expect_err("nul").code,
            "binary-file"
        );
        let err = decode_text(path, b"model: x\n\xff\xfe").expect_err("utf8");
        assert_eq!(err.code, "not-utf8");
        assert_eq!(err.position.line, 2);
        let big = vec![b'a'; MAX_FILE_BYTES + 1];
        assert_eq!(
            decode_text(path, &big).expect_err("big").code,
            "file-too-large"
        );
    }
}
