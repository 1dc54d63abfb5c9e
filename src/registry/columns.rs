//! What the registry's columns can hold, in one place: the `VARCHAR` limits of the
//! migrations and the one character PostgreSQL refuses in `TEXT` and `JSONB` values, NUL
//! (U+0000, also written `\u0000` in JSON).
//!
//! Three callers ask this module and nothing else: `check` refuses what the registry
//! cannot hold at the file's line, `sync` skips an old version of the history that does
//! not fit (and says so) instead of failing the whole publication, and the run recorder
//! makes each `prompt_runs` row fit ([`clean`], [`clip`]) before sending it. A unit test
//! reads the limits back from the migrations' SQL, so the two cannot drift apart.

use std::fmt;

use crate::environments::{EnvEntry, Place};
use crate::repo::file::{Assertion, TestCase};
use crate::repo::{Body, Definition, PromptId};

/// `prompts.name`, `prompt_environments.name`, `prompt_monitors.name`,
/// `prompt_descriptions.name`, `prompt_runs.name`.
pub const MAX_NAME: usize = 255;
/// `prompts.service` and the other tables' `service`.
pub const MAX_SERVICE: usize = 100;
/// `prompts.model`: the model a version is written for.
pub const MAX_MODEL: usize = 50;
/// `prompts.created_by`: the commit's author (cut to fit, it is not the user's input).
pub const MAX_CREATED_BY: usize = 100;
/// `prompt_environments.environment` and `prompt_runs.environment`.
pub const MAX_ENVIRONMENT: usize = 100;
/// `prompt_environments.model`: an environment's model override.
pub const MAX_ENVIRONMENT_MODEL: usize = 100;
/// `prompt_runs.model_requested` and `prompt_runs.model_used`.
pub const MAX_RUN_MODEL: usize = 100;
/// `prompt_runs.provider`.
pub const MAX_PROVIDER: usize = 50;

/// What the registry cannot hold in a value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Problem {
    /// The text holds a NUL character, which PostgreSQL `TEXT` and `JSONB` refuse.
    Nul,
    /// The text is longer than its `VARCHAR` column.
    TooLong {
        /// Its length in characters.
        chars: usize,
        /// The column's limit in characters.
        limit: usize,
    },
    /// A service holding `:`, which would read as a source (`source:service/name`).
    SourceSeparator,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Problem::Nul => f.write_str(
                "holds a NUL character (U+0000, `\\0`), which the PostgreSQL registry cannot store",
            ),
            Problem::TooLong { chars, limit } => write!(
                f,
                "is {chars} characters long, over the registry's limit of {limit}"
            ),
            Problem::SourceSeparator => f.write_str(
                "holds `:`, which the registry reads as a source (`source:service/name`)",
            ),
        }
    }
}

/// What is wrong with `text` for a column: a NUL character, or more than `limit`
/// characters when the column has one.
pub fn text_problem(text: &str, limit: Option<usize>) -> Option<Problem> {
    if text.contains('\0') {
        return Some(Problem::Nul);
    }
    let limit = limit?;
    // Counting stops one past the limit: a huge value costs no more than a short one.
    let chars = text.chars().take(limit + 1).count();
    (chars > limit).then(|| Problem::TooLong {
        chars: text.chars().count(),
        limit,
    })
}

/// What is wrong with `value` for a `JSONB` column: a NUL character in any string or key.
pub fn json_problem(value: &serde_json::Value) -> Option<Problem> {
    let mut stack = vec![value];
    while let Some(value) = stack.pop() {
        match value {
            serde_json::Value::String(text) if text.contains('\0') => return Some(Problem::Nul),
            serde_json::Value::Array(items) => stack.extend(items),
            serde_json::Value::Object(map) => {
                if map.keys().any(|key| key.contains('\0')) {
                    return Some(Problem::Nul);
                }
                stack.extend(map.values());
            }
            _ => {}
        }
    }
    None
}

/// A field of a prompt version that goes to the registry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Field {
    /// Its name (the identity).
    Name,
    /// Its service (the identity).
    Service,
    /// Its model.
    Model,
    /// Its single template.
    Template,
    /// The content of message N (from 0).
    Message(usize),
    /// A provider parameter, by key.
    Parameter(String),
    /// A declared variable, by name.
    Variable(String),
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Field::Name => f.write_str("the name"),
            Field::Service => f.write_str("the service"),
            Field::Model => f.write_str("the model"),
            Field::Template => f.write_str("the template"),
            Field::Message(index) => write!(f, "message {}", index + 1),
            Field::Parameter(key) => write!(f, "parameter `{}`", key.escape_debug()),
            Field::Variable(name) => write!(f, "variable `{}`", name.escape_debug()),
        }
    }
}

/// A field the registry cannot hold, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfit {
    /// Where.
    pub field: Field,
    /// What.
    pub problem: Problem,
}

impl fmt::Display for Unfit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.field, self.problem)
    }
}

/// What the registry cannot hold in a prompt's identity (`prompts.name`, `.service`).
pub fn identity_problems(id: &PromptId) -> Vec<Unfit> {
    [
        (Field::Name, text_problem(&id.name, Some(MAX_NAME))),
        (
            Field::Service,
            text_problem(&id.service, Some(MAX_SERVICE))
                .or_else(|| id.service.contains(':').then_some(Problem::SourceSeparator)),
        ),
    ]
    .into_iter()
    .filter_map(|(field, problem)| {
        Some(Unfit {
            field,
            problem: problem?,
        })
    })
    .collect()
}

/// What the registry cannot hold in a version's definition: the model (`VARCHAR`), the
/// template or messages (`TEXT`), the parameters and the variables (`JSONB`).
pub fn definition_problems(definition: &Definition) -> Vec<Unfit> {
    let mut found = Vec::new();
    let mut push = |field: Field, problem: Option<Problem>| {
        if let Some(problem) = problem {
            found.push(Unfit { field, problem });
        }
    };
    push(
        Field::Model,
        text_problem(&definition.model, Some(MAX_MODEL)),
    );
    match &definition.body {
        Body::Template(text) => push(Field::Template, text_problem(text, None)),
        Body::Messages(messages) => {
            for (index, message) in messages.iter().enumerate() {
                push(Field::Message(index), text_problem(&message.content, None));
            }
        }
    }
    for (key, value) in &definition.parameters {
        let problem = text_problem(key, None).or_else(|| json_problem(value));
        push(Field::Parameter(key.clone()), problem);
    }
    for (name, spec) in &definition.variables {
        let problem = text_problem(name, None).or_else(|| {
            serde_json::to_value(spec)
                .ok()
                .and_then(|value| json_problem(&value))
        });
        push(Field::Variable(name.clone()), problem);
    }
    found
}

/// What the registry cannot hold in an assertion (`evaluation_criteria` and
/// `prompt_monitors.assertions` are `JSONB`, `expected_output` is `TEXT`).
pub fn assertion_problem(assertion: &Assertion) -> Option<Problem> {
    text_problem(&assertion.kind, None)
        .or_else(|| {
            assertion
                .model
                .as_deref()
                .and_then(|m| text_problem(m, None))
        })
        .or_else(|| assertion.value.as_ref().and_then(json_problem))
        .or_else(|| assertion.schema.as_ref().and_then(json_problem))
}

/// A field of a test case that goes to the registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TestField {
    /// Its name (`prompt_tests.test_name`, `TEXT`).
    Name,
    /// Assertion N (from 0).
    Assertion(usize),
}

/// What the registry cannot hold in a test case. Its `vars` are stored as JSON text, where
/// a NUL is escaped, so they may hold any character; its description is not stored.
pub fn test_problems(test: &TestCase) -> Vec<(TestField, Problem)> {
    let mut found = Vec::new();
    if let Some(problem) = test.name.as_deref().and_then(|n| text_problem(n, None)) {
        found.push((TestField::Name, problem));
    }
    for (index, assertion) in test.assert.iter().enumerate() {
        if let Some(problem) = assertion_problem(&assertion.value) {
            found.push((TestField::Assertion(index), problem));
        }
    }
    found
}

/// What the registry cannot hold in an environment's pin: its name
/// (`prompt_environments.environment`) or its model override (`.model`), each with the
/// place in the environments file and the message.
pub fn pin_problems(env: &EnvEntry) -> Vec<(Place, String, Problem)> {
    let fields = [
        (
            "environment name",
            Some(env.name.as_str()),
            env.key,
            MAX_ENVIRONMENT,
        ),
        (
            "model",
            env.pin.model.as_deref(),
            env.model_at.unwrap_or(env.value),
            MAX_ENVIRONMENT_MODEL,
        ),
    ];
    fields
        .into_iter()
        .filter_map(|(what, value, place, limit)| {
            let problem = text_problem(value?, Some(limit))?;
            Some((place, format!("the {what} {problem}"), problem))
        })
        .collect()
}

/// Replaces every NUL character of `text` with U+FFFD (the replacement character); returns
/// whether there was one.
pub fn clean(text: &mut String) -> bool {
    if !text.contains('\0') {
        return false;
    }
    *text = text.replace('\0', "\u{FFFD}");
    true
}

/// Cuts `text` to `limit` characters; returns whether it was longer.
pub fn clip(text: &mut String, limit: usize) -> bool {
    match text.char_indices().nth(limit) {
        Some((index, _)) => {
            text.truncate(index);
            true
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The `VARCHAR(N)` of `column` in `table`, read from the migrations' SQL.
    fn declared(table: &str, column: &str) -> usize {
        let mut in_table = false;
        for migration in super::super::migrations::MIGRATIONS {
            for line in migration.sql.lines() {
                let line = line.trim();
                if let Some(rest) = line.strip_prefix("CREATE TABLE ") {
                    in_table = rest.split_whitespace().next() == Some(table);
                    continue;
                }
                let words: Vec<&str> = line.split_whitespace().collect();
                let alter = format!("ALTER TABLE {table} ADD COLUMN {column} ");
                let declaration = if in_table && words.first() == Some(&column) {
                    words.get(1).copied()
                } else if line.starts_with(&alter) {
                    line[alter.len()..].split_whitespace().next()
                } else {
                    None
                };
                if let Some(kind) = declaration
                    && let Some(limit) = kind
                        .strip_prefix("VARCHAR(")
                        .and_then(|rest| rest.split(')').next())
                {
                    return limit.parse().expect("a number");
                }
            }
        }
        panic!("no VARCHAR column {table}.{column} in the migrations")
    }

    #[test]
    fn the_limits_are_the_migrations_limits() {
        for (table, column, limit) in [
            ("prompts", "name", MAX_NAME),
            ("prompts", "service", MAX_SERVICE),
            ("prompts", "model", MAX_MODEL),
            ("prompts", "created_by", MAX_CREATED_BY),
            ("prompt_environments", "service", MAX_SERVICE),
            ("prompt_environments", "name", MAX_NAME),
            ("prompt_environments", "environment", MAX_ENVIRONMENT),
            ("prompt_environments", "model", MAX_ENVIRONMENT_MODEL),
            ("prompt_monitors", "service", MAX_SERVICE),
            ("prompt_monitors", "name", MAX_NAME),
            ("prompt_descriptions", "service", MAX_SERVICE),
            ("prompt_descriptions", "name", MAX_NAME),
            ("prompt_runs", "service", MAX_SERVICE),
            ("prompt_runs", "name", MAX_NAME),
            ("prompt_runs", "environment", MAX_ENVIRONMENT),
            ("prompt_runs", "model_requested", MAX_RUN_MODEL),
            ("prompt_runs", "model_used", MAX_RUN_MODEL),
            ("prompt_runs", "provider", MAX_PROVIDER),
        ] {
            assert_eq!(declared(table, column), limit, "{table}.{column}");
        }
    }

    #[test]
    fn nul_is_found_in_any_string_or_key_and_limits_count_characters() {
        assert_eq!(text_problem("a\0b", None), Some(Problem::Nul));
        assert_eq!(text_problem("\u{1}\u{7f}\u{1b}", Some(3)), None);
        assert_eq!(
            text_problem(&"é".repeat(4), Some(3)),
            Some(Problem::TooLong { chars: 4, limit: 3 })
        );
        assert_eq!(text_problem(&"é".repeat(3), Some(3)), None);
        let nested = serde_json::json!({"a": [1, {"b": ["x", "y\u{0}"]}]});
        assert_eq!(json_problem(&nested), Some(Problem::Nul));
        assert_eq!(
            json_problem(&serde_json::json!({"k\u{0}": 1})),
            Some(Problem::Nul)
        );
        assert_eq!(json_problem(&serde_json::json!({"k": "\u{1}"})), None);
    }

    #[test]
    fn cleaning_and_clipping() {
        let mut text = "a\0b\0".to_owned();
        assert!(clean(&mut text));
        assert_eq!(text, "a\u{FFFD}b\u{FFFD}");
        assert!(!clean(&mut text));
        let mut long = "ééé".to_owned();
        assert!(clip(&mut long, 2));
        assert_eq!(long, "éé");
        assert!(!clip(&mut long, 5));
    }
}
