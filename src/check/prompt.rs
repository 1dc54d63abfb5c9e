//! The rules for one prompt file: identity, model, body, template syntax, variables,
//! includes, tests and monitor assertions.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

use serde_saphyr::Location;

use super::{PartialAnalysis, error_position_in_text, line_column};
use crate::diagnostic::{Diagnostic, Position, Severity, closest};
use crate::registry::columns::{self, Field, TestField};
use crate::render::{
    RenderError, Renderer, TemplatePart, find_includes, find_variable_use, include_path_is_safe,
    resolve_variables,
};
use crate::repo::file::{AssertionKind, Located};
use crate::repo::{Assertion, LoadedPrompt, Snapshot, locate_in_scalar};

fn position(location: &Location) -> Position {
    Position::new(location.line() as usize, location.column() as usize)
}

/// One template of the prompt with where it sits in the file.
struct Part<'a> {
    part: TemplatePart,
    source: &'a str,
    location: Location,
}

struct PromptChecker<'a> {
    loaded: &'a LoadedPrompt,
    found: Vec<Diagnostic>,
}

impl PromptChecker<'_> {
    fn error(&mut self, code: &'static str, at: Position, message: String, help: Option<String>) {
        self.report(Severity::Error, code, at, message, help);
    }

    fn warning(&mut self, code: &'static str, at: Position, message: String, help: Option<String>) {
        self.report(Severity::Warning, code, at, message, help);
    }

    fn report(
        &mut self,
        severity: Severity,
        code: &'static str,
        at: Position,
        message: String,
        help: Option<String>,
    ) {
        let mut diagnostic = Diagnostic::new(severity, code, &self.loaded.path, at, message)
            .with_source(&self.loaded.source);
        if let Some(help) = help {
            diagnostic = diagnostic.with_help(help);
        }
        self.found.push(diagnostic);
    }

    /// The file position of a byte offset inside a template part.
    fn in_part(&self, part: &Part<'_>, offset: usize) -> Position {
        let (line, column) = line_column(part.source, offset);
        locate_in_scalar(
            &self.loaded.source,
            part.location.line() as usize,
            part.location.column() as usize,
            line,
            column,
        )
    }
}

/// Checks one prompt file.
pub(super) fn check_prompt(
    loaded: &LoadedPrompt,
    renderer: &Renderer,
    snapshot: &Snapshot,
    partials: &PartialAnalysis,
    cancel: Option<&Arc<AtomicBool>>,
) -> Vec<Diagnostic> {
    let mut checker = PromptChecker {
        loaded,
        found: Vec::new(),
    };
    let file = &loaded.file;
    checker.check_identity_and_model();
    let parts = checker.template_parts();
    let declared: BTreeMap<&str, Position> = file
        .variables
        .iter()
        .flatten()
        .map(|(name, spec)| (name.as_str(), position(&spec.referenced)))
        .collect();
    let uses = checker.check_uses(&parts, renderer, snapshot, partials, &declared);
    checker.check_declarations(&declared, &uses);
    check_tests(
        &mut checker,
        renderer,
        uses.templates_ok && !uses.undeclared,
        cancel,
    );
    for assertion in file.monitor.iter().flatten() {
        check_assertion(&mut checker, assertion, true);
    }
    check_storable(&mut checker);
    checker.found
}

/// What the templates use, as [`PromptChecker::check_uses`] found it.
struct Uses {
    /// Every variable a template or an included partial uses.
    used: BTreeSet<String>,
    /// Whether every template compiled and every include resolved.
    templates_ok: bool,
    /// Whether some variable is used but not declared (every test's render would fail:
    /// reported once).
    undeclared: bool,
}

impl<'a> PromptChecker<'a> {
    /// The prompt's service, and its `model`.
    fn check_identity_and_model(&mut self) {
        let (loaded, file, start) = (self.loaded, &self.loaded.file, Position::start());
        if loaded.id.is_none() {
            self.error(
                "no-service",
                start,
                "cannot tell this prompt's service: the file is not inside a service folder".into(),
                Some(
                    "move it into a folder such as `prompts/<service>/`, or set `service:`".into(),
                ),
            );
        }
        if file.model.is_none() {
            self.error(
                "missing-model",
                start,
                "missing required field `model`".into(),
                Some("add `model: <name>`, e.g. `model: gpt-4o`".into()),
            );
        } else if let Some(model) = &file.model
            && model.value.trim().is_empty()
        {
            self.error(
                "missing-model",
                position(&model.referenced),
                "`model` is empty".into(),
                None,
            );
        }
    }

    /// The templates to render: `template`, or each message's content (none, with an
    /// error, when the file has both or neither).
    fn template_parts(&mut self) -> Vec<Part<'a>> {
        let (file, start) = (&self.loaded.file, Position::start());
        let mut parts: Vec<Part<'_>> = Vec::new();
        match (&file.template, &file.messages) {
            (Some(_), Some(messages)) => self.error(
                "template-and-messages",
                position(&messages.referenced),
                "a prompt has either `template` or `messages`, not both".into(),
                Some(
                    "keep `messages` for a chat prompt, or `template` for a single user message"
                        .into(),
                ),
            ),
            (None, None) => self.error(
                "missing-template",
                start,
                "missing `template` or `messages`".into(),
                Some("add `template: \"...\"` (one user message) or a `messages:` list".into()),
            ),
            (Some(template), None) => parts.push(Part {
                part: TemplatePart::Template,
                source: &template.value,
                location: template.referenced,
            }),
            (None, Some(messages)) => {
                if messages.value.is_empty() {
                    self.error(
                        "empty-messages",
                        position(&messages.referenced),
                        "`messages` is empty".into(),
                        Some("add at least one `- role: user` message".into()),
                    );
                }
                for (index, message) in messages.value.iter().enumerate() {
                    parts.push(Part {
                        part: TemplatePart::Message(index),
                        source: &message.content.value,
                        location: message.content.referenced,
                    });
                }
            }
        }
        parts
    }

    /// Compiles every part, resolves its includes, and finds the variables they use
    /// (errors for undeclared ones).
    fn check_uses(
        &mut self,
        parts: &[Part<'_>],
        renderer: &Renderer,
        snapshot: &Snapshot,
        partials: &PartialAnalysis,
        declared: &BTreeMap<&str, Position>,
    ) -> Uses {
        let loaded = self.loaded;
        let mut used: BTreeSet<String> = BTreeSet::new();
        let mut templates_ok = true;
        // An undeclared variable would also fail every test's render: report it once.
        let mut undeclared = false;
        for part in parts {
            match renderer.compile(part.source) {
                Ok(variables) => {
                    for name in variables {
                        if !declared.contains_key(name.as_str()) {
                            undeclared = true;
                            let offset = find_variable_use(part.source, &name).unwrap_or(0);
                            let at = self.in_part(part, offset);
                            self.found.push(
                                Diagnostic::error(
                                    "undeclared-variable",
                                    &loaded.path,
                                    at,
                                    format!("variable `{name}` is used but not declared"),
                                )
                                .with_length(name.chars().count())
                                .with_source(&loaded.source)
                                .with_help(undeclared_help(&name, declared)),
                            );
                        }
                        used.insert(name);
                    }
                }
                Err(err) => {
                    templates_ok = false;
                    let inner = error_position_in_text(part.source, &err);
                    let at = locate_in_scalar(
                        &loaded.source,
                        part.location.line() as usize,
                        part.location.column() as usize,
                        inner.line,
                        inner.column,
                    );
                    let message =
                        crate::render::template_error(part.part.clone(), &err).to_string();
                    self.error("template-syntax", at, message, None);
                }
            }
            for include in find_includes(part.source) {
                let at = self.in_part(part, include.offset);
                match include_problem(&include.target, snapshot) {
                    Some((code, message, help)) => {
                        templates_ok = false;
                        self.found.push(
                            Diagnostic::error(code, &loaded.path, at, message)
                                .with_length(include.target.chars().count())
                                .with_source(&loaded.source)
                                .with_help(help),
                        );
                    }
                    None => {
                        for name in partials
                            .variables
                            .get(&include.target)
                            .into_iter()
                            .flatten()
                        {
                            if !declared.contains_key(name.as_str()) {
                                undeclared = true;
                                self.error(
                                "undeclared-variable",
                                at,
                                format!(
                                    "variable `{name}` is used by partial `{}` but not declared",
                                    include.target
                                ),
                                Some(undeclared_help(name, declared)),
                            );
                            }
                            used.insert(name.clone());
                        }
                    }
                }
            }
        }

        Uses {
            used,
            templates_ok,
            undeclared,
        }
    }

    /// Declared variables no template uses (when every template compiled), and defaults
    /// of the wrong type.
    fn check_declarations(&mut self, declared: &BTreeMap<&str, Position>, uses: &Uses) {
        let file = &self.loaded.file;
        for (name, at) in declared {
            if !uses.used.contains(*name) && uses.templates_ok {
                self.warning(
                    "unused-variable",
                    *at,
                    format!("variable `{name}` is declared but never used"),
                    Some("use it in a template or remove the declaration".into()),
                );
            }
        }
        if let Some(variables) = &file.variables {
            for (name, spec) in variables {
                if let (Some(kind), Some(default)) = (spec.value.kind, &spec.value.default)
                    && !kind.accepts(default)
                {
                    self.error(
                        "bad-default",
                        position(&spec.referenced),
                        format!(
                            "the default of `{name}` is {}, but the variable is declared {}",
                            crate::render::json_type_name(default),
                            kind.as_str()
                        ),
                        None,
                    );
                }
            }
        }
    }
}

/// What the registry could not store (`registry::columns` decides, as it does for `sync`):
/// a NUL character in a string that goes to a TEXT or JSONB column, a name, service or
/// model longer than its VARCHAR column. Each at its field's line.
fn check_storable(checker: &mut PromptChecker<'_>) {
    let loaded = checker.loaded;
    let file = &loaded.file;
    let start = Position::start();
    let at_located = |located: Option<Location>| located.as_ref().map_or(start, position);
    let mut unfit: Vec<(Position, String, columns::Problem)> = Vec::new();
    for problem in loaded.id.iter().flat_map(columns::identity_problems) {
        let at = match problem.field {
            Field::Name => at_located(file.name.as_ref().map(|n| n.referenced)),
            _ => at_located(file.service.as_ref().map(|s| s.referenced)),
        };
        unfit.push((at, problem.to_string(), problem.problem));
    }
    for problem in loaded
        .definition
        .iter()
        .flat_map(columns::definition_problems)
    {
        let at = match &problem.field {
            Field::Model => at_located(file.model.as_ref().map(|m| m.referenced)),
            Field::Template => at_located(file.template.as_ref().map(|t| t.referenced)),
            Field::Message(index) => at_located(
                file.messages
                    .as_ref()
                    .and_then(|m| m.value.get(*index))
                    .map(|m| m.content.referenced),
            ),
            Field::Variable(name) => at_located(
                file.variables
                    .as_ref()
                    .and_then(|v| v.get(name))
                    .map(|v| v.referenced),
            ),
            Field::Parameter(key) => parameter_position(&loaded.source, key),
            Field::Name | Field::Service => start,
        };
        unfit.push((at, problem.to_string(), problem.problem));
    }
    for test in file.tests.iter().flat_map(|tests| tests.value.iter()) {
        for (field, problem) in columns::test_problems(&test.value) {
            let (at, what) = match field {
                TestField::Name => (position(&test.referenced), "the test's name".to_owned()),
                TestField::Assertion(index) => (
                    test.value
                        .assert
                        .get(index)
                        .map_or(position(&test.referenced), |a| position(&a.referenced)),
                    "the assertion".to_owned(),
                ),
            };
            unfit.push((at, format!("{what} {problem}"), problem));
        }
    }
    for assertion in file.monitor.iter().flatten() {
        if let Some(problem) = columns::assertion_problem(&assertion.value) {
            let message = format!("the monitor assertion {problem}");
            unfit.push((position(&assertion.referenced), message, problem));
        }
    }
    for (at, message, problem) in unfit {
        let help = match problem {
            columns::Problem::Nul => {
                "remove the `\\0` (`\\x00`, `\\u0000`) escape: PostgreSQL text cannot hold it, so `sync` could not publish this"
            }
            columns::Problem::TooLong { .. } => {
                "shorten it: the registry's column holds no more, so `sync` could not publish this"
            }
            columns::Problem::SourceSeparator => {
                "rename the service (its folder, or `service:`) without `:`, so `sync` can publish it"
            }
        };
        checker.error("registry-unfit", at, message, Some(help.to_owned()));
    }
}

/// Where parameter `key` is written: the first line from `parameters:` on that mentions
/// it (up to a NUL it holds, which the file writes as an escape); `parameters:` itself
/// when none does. Parameters are free-form, so the parser keeps no positions for them.
fn parameter_position(source: &str, key: &str) -> Position {
    let needle = key.split('\0').next().unwrap_or_default();
    let mut lines = source
        .lines()
        .enumerate()
        .skip_while(|(_, line)| !line.starts_with("parameters:"));
    let Some((first, line)) = lines.next() else {
        return Position::start();
    };
    let after = &line["parameters:".len()..];
    if !needle.is_empty()
        && let Some(offset) = after.find(needle)
    {
        let column = line[..("parameters:".len() + offset)].chars().count() + 1;
        return Position::new(first + 1, column);
    }
    for (index, line) in lines {
        if !line.starts_with([' ', '\t'])
            && !line.trim().is_empty()
            && !line.trim_start().starts_with('#')
        {
            break;
        }
        if !needle.is_empty()
            && let Some(offset) = line.find(needle)
        {
            return Position::new(index + 1, line[..offset].chars().count() + 1);
        }
    }
    Position::new(first + 1, 1)
}

fn undeclared_help(name: &str, declared: &BTreeMap<&str, Position>) -> String {
    match closest(name, declared.keys().copied()) {
        Some(suggestion) => {
            format!("did you mean `{suggestion}`? Otherwise declare it under `variables:`")
        }
        None => format!(
            "declare it under `variables:`, e.g. `{name}: {{type: string, required: true}}`"
        ),
    }
}

/// What is wrong with an include target, if anything: (code, message, help).
pub(super) fn include_problem(
    target: &str,
    snapshot: &Snapshot,
) -> Option<(&'static str, String, String)> {
    if !include_path_is_safe(target) {
        return Some((
            "include-escapes",
            format!("include `{target}` leaves the prompts folder"),
            "includes are paths relative to the prompts folder, without `..` or a leading `/`"
                .into(),
        ));
    }
    if snapshot.partials.contains_key(target) {
        return None;
    }
    let help = match closest(target, snapshot.partials.keys().map(String::as_str)) {
        Some(suggestion) => format!("did you mean `{suggestion}`?"),
        None if snapshot.partials.is_empty() => {
            "partials are `.j2` or `.jinja` files under the prompts folder; there are none".into()
        }
        None => format!(
            "partials are named by their path relative to the prompts folder, e.g. `{}`",
            snapshot.partials.keys().next().map_or("", String::as_str)
        ),
    };
    Some((
        "missing-include",
        format!("include `{target}` does not exist"),
        help,
    ))
}

/// The steps the test renders of one prompt file may take together in one check: two
/// renders' worth ([`crate::render::limits::MAX_STEPS`] each), so a file of many runaway
/// tests costs a second or two, not minutes.
pub const CHECK_FILE_STEPS: u64 = 2 * crate::render::limits::MAX_STEPS;

fn check_tests(
    checker: &mut PromptChecker<'_>,
    renderer: &Renderer,
    templates_ok: bool,
    cancel: Option<&Arc<AtomicBool>>,
) {
    let loaded = checker.loaded;
    let tests = loaded.file.tests.as_ref();
    let Some(tests) = tests.filter(|tests| !tests.value.is_empty()) else {
        checker.warning(
            "no-tests",
            Position::start(),
            "prompt has no tests".into(),
            Some("add a `tests:` list; `promptctl test` runs them against the model".into()),
        );
        return;
    };
    let budget = crate::render::limits::Scope::with_steps(CHECK_FILE_STEPS, cancel.cloned());
    let mut unrendered = 0;
    let mut names = BTreeSet::new();
    for test in &tests.value {
        let at = position(&test.referenced);
        let label = test
            .value
            .name
            .clone()
            .unwrap_or_else(|| format!("test at line {}", at.line));
        if let Some(name) = &test.value.name
            && !names.insert(name.clone())
        {
            checker.warning(
                "duplicate-test",
                at,
                format!("two tests are named `{name}`"),
                Some("give each test its own name so reports can tell them apart".into()),
            );
        }
        if test.value.assert.is_empty() {
            checker.warning(
                "no-assertions",
                at,
                format!("`{label}` has no assertions, so it always passes"),
                Some("add an `assert:` list".into()),
            );
        }
        for assertion in &test.value.assert {
            check_assertion(checker, assertion, false);
        }
        let Some(definition) = &loaded.definition else {
            continue;
        };
        match resolve_variables(&definition.variables, &test.value.vars) {
            Err(err) => {
                let help = match &err {
                    RenderError::MissingVariable { name } => {
                        format!("add `{name}` to the test's `vars`")
                    }
                    _ => "fix the test's `vars` to match the prompt's `variables`".into(),
                };
                checker.error("test-vars", at, format!("`{label}`: {err}"), Some(help));
            }
            Ok(_) if templates_ok && budget.exhausted() => unrendered += 1,
            Ok(_) if templates_ok => {
                if let Err(err) = renderer.render(definition, &test.value.vars) {
                    checker.error(
                        if err.is_limit() {
                            "render-limit"
                        } else {
                            "render-failed"
                        },
                        at,
                        format!("`{label}` does not render: {err}"),
                        None,
                    );
                }
            }
            Ok(_) => {}
        }
    }
    if unrendered > 0 {
        checker.error(
            "render-limit",
            position(&tests.referenced),
            format!(
                "{unrendered} of {} tests were not rendered: this file's tests used the {CHECK_FILE_STEPS} steps one check gives a file",
                tests.value.len()
            ),
            Some("fix the tests above that ran out of fuel or memory first".into()),
        );
    }
}

fn check_assertion(checker: &mut PromptChecker<'_>, assertion: &Located<Assertion>, monitor: bool) {
    let at = position(&assertion.referenced);
    let value = &assertion.value;
    let Some(kind) = AssertionKind::parse(&value.kind) else {
        let names = AssertionKind::NAMES.iter().map(|(name, _)| *name);
        let help = match closest(&value.kind, names) {
            Some(suggestion) => format!("did you mean `{suggestion}`?"),
            None => format!(
                "known types: {}",
                AssertionKind::NAMES
                    .iter()
                    .map(|(n, _)| *n)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        };
        checker.error(
            "unknown-assertion",
            at,
            format!("unknown assertion type `{}`", value.kind),
            Some(help),
        );
        return;
    };
    if monitor && !kind.allowed_in_monitor() {
        checker.error(
            "monitor-assertion",
            at,
            format!("`{}` cannot score production outputs: it needs an expected output or a measured call", kind.as_str()),
            Some("monitor assertions are structure_validation, safety_check, regex, contains, not_contains and llm_judge".into()),
        );
    }
    if kind.needs_value() && value.value.is_none() {
        checker.error(
            "assertion-value",
            at,
            format!("`{}` needs a `value`", kind.as_str()),
            None,
        );
    }
    if let Some(threshold) = value.threshold
        && !(0.0..=1.0).contains(&threshold)
    {
        checker.error(
            "assertion-threshold",
            at,
            format!("threshold {threshold} is outside 0.0 to 1.0"),
            None,
        );
    }
    if let (AssertionKind::StructureValidation, Some(schema)) = (kind, &value.schema)
        && let Err(why) = crate::eval::assertions::structure::check_schema(schema)
    {
        checker.error(
            "assertion-schema",
            at,
            format!("`schema` is not a valid JSON Schema: {why}"),
            None,
        );
    }
    if value.schema.is_some() && kind != AssertionKind::StructureValidation {
        checker.error(
            "assertion-schema",
            at,
            format!(
                "`schema` applies to structure_validation, not `{}`",
                kind.as_str()
            ),
            None,
        );
    }
    match (kind, &value.value) {
        (AssertionKind::Regex, Some(serde_json::Value::String(pattern))) => {
            if let Some(why) = regex_problem(pattern) {
                checker.error(
                    "assertion-regex",
                    at,
                    format!("invalid regular expression: {why}"),
                    None,
                );
            }
        }
        (AssertionKind::LatencyMs | AssertionKind::CostUsd, Some(limit)) if !limit.is_number() => {
            checker.error(
                "assertion-value",
                at,
                format!("`{}` needs a number as `value`", kind.as_str()),
                None,
            );
        }
        (
            AssertionKind::Contains
            | AssertionKind::NotContains
            | AssertionKind::Regex
            | AssertionKind::ExactMatch
            | AssertionKind::SemanticSimilarity
            | AssertionKind::LlmJudge,
            Some(v),
        ) if !(v.is_string() || (list_allowed(kind) && v.is_array())) => {
            checker.error(
                "assertion-value",
                at,
                format!("`{}` needs text as `value`", kind.as_str()),
                None,
            );
        }
        _ => {}
    }
}

/// Whether the assertion accepts a list of texts as `value` (any or none of them).
fn list_allowed(kind: AssertionKind) -> bool {
    matches!(kind, AssertionKind::Contains | AssertionKind::NotContains)
}

/// Why `pattern` is not a valid regular expression, if it is not. Compiling is costly and
/// large repositories repeat the same few patterns, so each thread remembers its answers.
fn regex_problem(pattern: &str) -> Option<String> {
    thread_local! {
        static SEEN: std::cell::RefCell<std::collections::HashMap<String, Option<String>>> =
            std::cell::RefCell::default();
    }
    SEEN.with(|seen| {
        if let Some(answer) = seen.borrow().get(pattern) {
            return answer.clone();
        }
        let answer = regex::Regex::new(pattern).err().map(|err| {
            err.to_string()
                .lines()
                .last()
                .unwrap_or_default()
                .trim()
                .to_owned()
        });
        seen.borrow_mut().insert(pattern.to_owned(), answer.clone());
        answer
    })
}
