//! Assertions: judging one model output against one assertion of a test or `monitor` list.
//!
//! The pure checks live in their own files (`safety`, `similarity`, `structure`); this file
//! dispatches on the assertion type and adds the two that call a model (`llm_judge`, and
//! `semantic_similarity` with an embedding model). The same code scores test cases and
//! sampled production runs.

pub mod safety;
pub mod similarity;
pub mod structure;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, LazyLock, Mutex};

use regex::Regex;
use serde::Serialize;

use crate::providers::{ChatResponse, Providers};
use crate::render::RenderedMessage;
use crate::repo::Assertion;
use crate::repo::Role;
use crate::repo::file::AssertionKind;

/// The outcome of one assertion.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssertionOutcome {
    /// The assertion type as written.
    #[serde(rename = "type")]
    pub kind: String,
    /// Whether it passed.
    pub passed: bool,
    /// Its score, 0.0 to 1.0 (cosine, grader score, or 1/0).
    pub score: f64,
    /// The lowest passing score.
    pub threshold: f64,
    /// What was expected, shown beside the output on failure.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// Why it passed or failed, in one line.
    pub detail: String,
    /// The grader model's call, for an assertion judged by one (`llm_judge`).
    #[serde(skip)]
    pub grader: Option<GraderCall>,
}

/// A call to a grader model made to judge an output.
#[derive(Debug, Clone, PartialEq)]
pub struct GraderCall {
    /// The grader model.
    pub model: String,
    /// Its token counts.
    pub usage: crate::providers::Usage,
}

/// What is known about the call that produced the output.
#[derive(Debug, Clone, Copy)]
pub struct CallFacts {
    /// Wall time of the call in milliseconds.
    pub latency_ms: f64,
    /// Its price in US dollars, when the model's prices are configured.
    pub cost_usd: Option<f64>,
}

impl CallFacts {
    /// The facts of a provider response.
    pub fn of(response: &ChatResponse, cost_usd: Option<f64>) -> CallFacts {
        CallFacts {
            latency_ms: response.latency_ms,
            cost_usd,
        }
    }
}

/// Why an assertion could not be judged at all (a provider failure, not a fail).
#[derive(Debug, Clone, thiserror::Error)]
#[error("{kind}: {source}")]
pub struct AssertionError {
    /// The assertion type.
    pub kind: String,
    /// The provider error.
    pub source: crate::providers::ProviderError,
    /// The grader model whose call failed, for an assertion judged by one (`llm_judge`).
    pub grader: Option<String>,
}

fn value_text(assertion: &Assertion) -> String {
    match &assertion.value {
        Some(serde_json::Value::String(text)) => text.clone(),
        Some(other) => other.to_string(),
        None => String::new(),
    }
}

fn value_list(assertion: &Assertion) -> Vec<String> {
    match &assertion.value {
        Some(serde_json::Value::Array(items)) => items
            .iter()
            .map(|item| match item {
                serde_json::Value::String(text) => text.clone(),
                other => other.to_string(),
            })
            .collect(),
        _ => vec![value_text(assertion)],
    }
}

fn binary(
    assertion: &Assertion,
    kind: AssertionKind,
    passed: bool,
    expected: Option<String>,
    detail: String,
) -> AssertionOutcome {
    let score = if passed { 1.0 } else { 0.0 };
    scored(assertion, kind, score, expected, detail)
}

fn scored(
    assertion: &Assertion,
    kind: AssertionKind,
    score: f64,
    expected: Option<String>,
    detail: String,
) -> AssertionOutcome {
    let threshold = assertion
        .threshold
        .unwrap_or_else(|| kind.default_threshold());
    AssertionOutcome {
        kind: assertion.kind.clone(),
        passed: score >= threshold,
        score,
        threshold,
        expected,
        detail,
        grader: None,
    }
}

/// Shortens text for one-line details.
pub fn excerpt(text: &str, max: usize) -> String {
    let one_line = text.replace('\n', "⏎");
    if one_line.chars().count() <= max {
        one_line
    } else {
        format!("{}…", one_line.chars().take(max).collect::<String>())
    }
}

/// Line and column (1-based) of a byte offset, for pointing into an output.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let position = crate::config::offset_to_position(text, offset);
    (position.line, position.column)
}

/// Judges the assertions that need no model: everything but `llm_judge` and
/// embedding-based `semantic_similarity`. Returns `None` for those two. `safety_check`
/// reads phone numbers without a country code as numbers of `pii_regions`.
pub fn evaluate_local(
    assertion: &Assertion,
    output: &str,
    facts: Option<CallFacts>,
    lexical_similarity: bool,
    pii_regions: &[safety::Region],
) -> Option<AssertionOutcome> {
    let Some(kind) = AssertionKind::parse(&assertion.kind) else {
        return Some(AssertionOutcome {
            kind: assertion.kind.clone(),
            passed: false,
            score: 0.0,
            threshold: 1.0,
            expected: None,
            detail: format!("unknown assertion type `{}`", assertion.kind),
            grader: None,
        });
    };
    Some(match kind {
        AssertionKind::ExactMatch
        | AssertionKind::Contains
        | AssertionKind::NotContains
        | AssertionKind::Regex => text_outcome(assertion, kind, output),
        AssertionKind::SemanticSimilarity => {
            if !lexical_similarity {
                return None;
            }
            let expected = value_text(assertion);
            let score = similarity::lexical_similarity(output, &expected);
            scored(
                assertion,
                kind,
                score,
                Some(expected),
                format!("lexical similarity {score:.2} (no embedding_model configured)"),
            )
        }
        AssertionKind::StructureValidation => structure_outcome(assertion, kind, output),
        AssertionKind::SafetyCheck => safety_outcome(assertion, kind, output, pii_regions),
        AssertionKind::LatencyMs | AssertionKind::CostUsd => limit_outcome(assertion, kind, facts),
        AssertionKind::LlmJudge => return None,
    })
}

/// `exact_match`, `contains`, `not_contains` and `regex`: the output's text.
fn text_outcome(assertion: &Assertion, kind: AssertionKind, output: &str) -> AssertionOutcome {
    match kind {
        AssertionKind::ExactMatch => {
            let expected = value_text(assertion);
            let equal = output.trim() == expected.trim();
            binary(
                assertion,
                kind,
                equal,
                Some(expected),
                if equal {
                    "output matches".into()
                } else {
                    "output differs".into()
                },
            )
        }
        AssertionKind::Contains => {
            let wanted = value_list(assertion);
            let missing: Vec<&String> = wanted
                .iter()
                .filter(|w| !output.contains(w.as_str()))
                .collect();
            let detail = if missing.is_empty() {
                "output contains it".to_owned()
            } else {
                format!(
                    "output does not contain {}",
                    missing
                        .iter()
                        .map(|m| format!("{m:?}"))
                        .collect::<Vec<_>>()
                        .join(", ")
                )
            };
            binary(
                assertion,
                kind,
                missing.is_empty(),
                Some(wanted.join(", ")),
                detail,
            )
        }
        AssertionKind::NotContains => {
            let unwanted = value_list(assertion);
            let found: Vec<(usize, &String)> = unwanted
                .iter()
                .filter_map(|u| output.find(u.as_str()).map(|at| (at, u)))
                .collect();
            let detail = match found.first() {
                None => "output does not contain it".to_owned(),
                Some((at, text)) => {
                    let (line, column) = line_column(output, *at);
                    format!("output contains {text:?} at {line}:{column}")
                }
            };
            binary(
                assertion,
                kind,
                found.is_empty(),
                Some(format!("not {}", unwanted.join(", "))),
                detail,
            )
        }
        AssertionKind::Regex => {
            let pattern = value_text(assertion);
            match compiled_regex(&pattern) {
                Ok(regex) => {
                    let matched = regex.is_match(output);
                    binary(
                        assertion,
                        kind,
                        matched,
                        Some(format!("/{pattern}/")),
                        if matched {
                            "output matches".into()
                        } else {
                            "output does not match".into()
                        },
                    )
                }
                Err(err) => binary(
                    assertion,
                    kind,
                    false,
                    Some(pattern),
                    format!("invalid regular expression: {err}"),
                ),
            }
        }
        // Only the four text kinds come here.
        _ => binary(assertion, kind, false, None, "not a text assertion".into()),
    }
}

/// How many patterns of `regex` assertions stay compiled. The cases of a suite usually
/// repeat a few patterns, and sampled production runs are judged by the same monitors
/// again and again; compiling a pattern costs far more than matching a short output.
const CACHED_REGEXES: usize = 64;

/// Compiled patterns (or why they do not compile), and the order they came in: once the
/// cache is full the oldest is forgotten.
#[derive(Default)]
struct RegexCache {
    compiled: HashMap<String, Result<Arc<Regex>, String>>,
    order: VecDeque<String>,
}

/// The patterns compiled lately, shared by every run and thread of the process.
static REGEXES: LazyLock<Mutex<RegexCache>> = LazyLock::new(Mutex::default);

/// `pattern` compiled, from the cache when it was compiled lately.
fn compiled_regex(pattern: &str) -> Result<Arc<Regex>, String> {
    let cache = || {
        REGEXES
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    };
    if let Some(known) = cache().compiled.get(pattern) {
        return known.clone();
    }
    let compiled = Regex::new(pattern)
        .map(Arc::new)
        .map_err(|err| err.to_string());
    let mut cache = cache();
    if !cache.compiled.contains_key(pattern) {
        if cache.order.len() >= CACHED_REGEXES
            && let Some(oldest) = cache.order.pop_front()
        {
            cache.compiled.remove(&oldest);
        }
        cache.order.push_back(pattern.to_owned());
        cache.compiled.insert(pattern.to_owned(), compiled.clone());
    }
    compiled
}

/// `structure_validation`: the output is JSON, matching the schema when one is given.
fn structure_outcome(assertion: &Assertion, kind: AssertionKind, output: &str) -> AssertionOutcome {
    match structure::extract_json(output) {
        Err(why) => binary(assertion, kind, false, None, why),
        Ok(value) => match &assertion.schema {
            None => binary(assertion, kind, true, None, "output is JSON".into()),
            Some(schema) => match structure::validate(schema, &value) {
                Ok(()) => binary(
                    assertion,
                    kind,
                    true,
                    None,
                    "output is JSON matching the schema".into(),
                ),
                Err(violations) => binary(
                    assertion,
                    kind,
                    false,
                    Some(schema.to_string()),
                    format!("JSON does not match the schema: {}", violations.join("; ")),
                ),
            },
        },
    }
}

/// `safety_check`: no PII or secret in the output.
fn safety_outcome(
    assertion: &Assertion,
    kind: AssertionKind,
    output: &str,
    regions: &[safety::Region],
) -> AssertionOutcome {
    let findings = safety::scan(output, regions);
    let detail = if findings.is_empty() {
        "no PII or secret found".to_owned()
    } else {
        findings
            .iter()
            .map(|f| {
                let (line, column) = line_column(output, f.start);
                format!("{} at {line}:{column} ({})", f.kind, f.redacted)
            })
            .collect::<Vec<_>>()
            .join(", ")
    };
    binary(
        assertion,
        kind,
        findings.is_empty(),
        None,
        if findings.is_empty() {
            detail
        } else {
            format!("found {detail}")
        },
    )
}

/// `latency_ms` and `cost_usd`: the call's facts under the limit.
fn limit_outcome(
    assertion: &Assertion,
    kind: AssertionKind,
    facts: Option<CallFacts>,
) -> AssertionOutcome {
    let limit = assertion
        .value
        .as_ref()
        .and_then(serde_json::Value::as_f64)
        .unwrap_or(0.0);
    if kind == AssertionKind::LatencyMs {
        return match facts {
            Some(facts) => binary(
                assertion,
                kind,
                facts.latency_ms < limit,
                Some(format!("< {limit} ms")),
                format!("took {:.0} ms", facts.latency_ms),
            ),
            None => binary(assertion, kind, false, None, "no call was measured".into()),
        };
    }
    match facts.and_then(|f| f.cost_usd) {
        Some(cost) => binary(
            assertion,
            kind,
            cost < limit,
            Some(format!("< ${limit}")),
            format!("cost ${cost:.6}"),
        ),
        None => binary(
            assertion,
            kind,
            false,
            Some(format!("< ${limit}")),
            "the model has no prices in [models] (input_usd_per_mtok, output_usd_per_mtok)".into(),
        ),
    }
}

/// Judges one assertion, calling the grader or embedding model when it needs one.
pub async fn evaluate(
    assertion: &Assertion,
    output: &str,
    facts: Option<CallFacts>,
    providers: &Providers,
    default_judge: &str,
) -> Result<AssertionOutcome, AssertionError> {
    let test = &providers.settings().test;
    let embedding_model = test.embedding_model.clone();
    let lexical = embedding_model.is_none();
    if let Some(outcome) = evaluate_local(assertion, output, facts, lexical, &test.pii_regions) {
        return Ok(outcome);
    }
    let failed = |source| AssertionError {
        kind: assertion.kind.clone(),
        source,
        grader: None,
    };
    let kind = AssertionKind::parse(&assertion.kind).unwrap_or(AssertionKind::LlmJudge);
    match kind {
        AssertionKind::SemanticSimilarity => {
            let model = embedding_model.unwrap_or_default();
            let expected = value_text(assertion);
            let vectors = providers
                .embed(&model, vec![output.to_owned(), expected.clone()])
                .await
                .map_err(failed)?;
            let score = match vectors.as_slice() {
                [a, b] => similarity::cosine(a, b).unwrap_or(0.0),
                _ => 0.0,
            };
            Ok(scored(
                assertion,
                kind,
                score,
                Some(expected),
                format!("cosine similarity {score:.3} ({model})"),
            ))
        }
        _ => {
            let rubric = value_text(assertion);
            let judge = assertion
                .model
                .clone()
                .unwrap_or_else(|| default_judge.to_owned());
            let messages = judge_messages(&rubric, output);
            let response = providers
                .chat(
                    &judge,
                    messages,
                    [("temperature".to_owned(), serde_json::json!(0))]
                        .into_iter()
                        .collect(),
                )
                .await
                .map_err(|source| AssertionError {
                    grader: Some(judge.clone()),
                    ..failed(source)
                })?;
            let (score, reason) = parse_judgement(&response.text);
            let mut outcome = scored(
                assertion,
                kind,
                score,
                Some(rubric),
                format!(
                    "{judge} scored {score:.2}{}",
                    reason
                        .map(|r| format!(": {}", excerpt(&r, 160)))
                        .unwrap_or_default()
                ),
            );
            outcome.grader = Some(GraderCall {
                model: judge,
                usage: response.usage,
            });
            Ok(outcome)
        }
    }
}

/// The grader's instructions.
pub fn judge_messages(rubric: &str, output: &str) -> Vec<RenderedMessage> {
    vec![
        RenderedMessage {
            role: Role::System,
            content: "You grade an AI assistant's output against a rubric. Reply with JSON only: {\"score\": <a number from 0.0 to 1.0>, \"reason\": \"<one sentence>\"}. 1.0 means the output fully satisfies the rubric, 0.0 not at all.".into(),
        },
        RenderedMessage {
            role: Role::User,
            content: format!("<rubric>\n{rubric}\n</rubric>\n\n<output>\n{output}\n</output>"),
        },
    ]
}

/// Reads a grader's answer: JSON `{"score": x, "reason": ...}` (fenced or not), else the
/// first number in the text; scores above 1 are read as out of 10 or 100.
pub fn parse_judgement(text: &str) -> (f64, Option<String>) {
    if let Ok(json) = structure::extract_json(text)
        && let Some(score) = json.get("score").and_then(serde_json::Value::as_f64)
    {
        let reason = json
            .get("reason")
            .and_then(|r| r.as_str())
            .map(str::to_owned);
        return (normalise_score(score), reason);
    }
    if let Some(start) = text.find('{')
        && let Some(end) = text.rfind('}')
        && let Ok(json) = serde_json::from_str::<serde_json::Value>(&text[start..=end])
        && let Some(score) = json.get("score").and_then(serde_json::Value::as_f64)
    {
        return (
            normalise_score(score),
            json.get("reason")
                .and_then(|r| r.as_str())
                .map(str::to_owned),
        );
    }
    static NUMBER: LazyLock<Option<Regex>> = LazyLock::new(|| Regex::new(r"\d+(?:\.\d+)?").ok());
    let number = NUMBER
        .as_ref()
        .and_then(|re| re.find(text).and_then(|m| m.as_str().parse::<f64>().ok()));
    match number {
        Some(score) => (normalise_score(score), Some(excerpt(text, 160))),
        None => (
            0.0,
            Some(format!(
                "no score in the grader's answer: {}",
                excerpt(text, 120)
            )),
        ),
    }
}

fn normalise_score(score: f64) -> f64 {
    let score = if score > 10.0 {
        score / 100.0
    } else if score > 1.0 {
        score / 10.0
    } else {
        score
    };
    score.clamp(0.0, 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Judges `assertion` locally, with lexical similarity and no PII regions.
    fn local(
        assertion: &Assertion,
        output: &str,
        facts: Option<CallFacts>,
    ) -> Option<AssertionOutcome> {
        evaluate_local(assertion, output, facts, true, &[])
    }

    fn assertion(kind: &str, value: serde_json::Value) -> Assertion {
        Assertion {
            kind: kind.into(),
            value: Some(value),
            threshold: None,
            schema: None,
            model: None,
        }
    }

    /// Whether `kind` with `value` passes on `output` (`None`: it needs a model).
    fn passes(
        kind: &str,
        value: serde_json::Value,
        output: &str,
        facts: Option<CallFacts>,
    ) -> Option<bool> {
        local(&assertion(kind, value), output, facts).map(|o| o.passed)
    }

    #[test]
    fn text_assertions() {
        let out = "The change builds SQL from user input: SQL injection.";
        let cases = [
            ("contains", "SQL injection".into(), out, Some(true)),
            (
                "contains",
                serde_json::json!(["SQL", "nope"]),
                out,
                Some(false),
            ),
            ("not_contains", "XSS".into(), out, Some(true)),
            ("regex", "(?i)sql\\s+injection".into(), out, Some(true)),
            ("exact_match", "  hi \n".into(), "hi", Some(true)),
            ("llm_judge", "rubric".into(), out, None),
        ];
        for (kind, value, output, expected) in cases {
            assert_eq!(
                passes(kind, value.clone(), output, None),
                expected,
                "{kind} {value}"
            );
        }
    }

    #[test]
    fn regexes_are_compiled_once_and_the_cache_stays_bounded() {
        let pattern = "^case [0-9]+$";
        let first = compiled_regex(pattern).expect("valid");
        let again = compiled_regex(pattern).expect("valid");
        assert!(Arc::ptr_eq(&first, &again), "compiled twice");
        for n in 0..2 * CACHED_REGEXES {
            let verdict = passes(
                "regex",
                format!("^case {n}$").into(),
                &format!("case {n}"),
                None,
            );
            assert_eq!(verdict, Some(true));
        }
        let cache = REGEXES.lock().expect("not poisoned");
        assert_eq!(cache.order.len(), CACHED_REGEXES);
        assert_eq!(cache.compiled.len(), CACHED_REGEXES);
        drop(cache);
        assert_eq!(passes("regex", pattern.into(), "case 7", None), Some(true));
        assert_eq!(
            passes("regex", pattern.into(), "case seven", None),
            Some(false)
        );
        for _ in 0..2 {
            let outcome = local(&assertion("regex", "(".into()), "x", None);
            let detail = outcome.map(|o| o.detail).unwrap_or_default();
            assert!(detail.starts_with("invalid regular expression"), "{detail}");
        }
    }

    #[test]
    fn measured_assertions_use_the_call() {
        let facts = Some(CallFacts {
            latency_ms: 120.0,
            cost_usd: Some(0.002),
        });
        assert_eq!(passes("latency_ms", 200.into(), "", facts), Some(true));
        assert_eq!(passes("latency_ms", 100.into(), "", facts), Some(false));
        assert_eq!(
            passes("cost_usd", serde_json::json!(0.001), "", facts),
            Some(false)
        );
    }

    #[test]
    fn judgements_are_read_leniently() {
        assert_eq!(
            parse_judgement(r#"{"score": 0.9, "reason": "good"}"#),
            (0.9, Some("good".into()))
        );
        assert_eq!(parse_judgement("```json\n{\"score\": 8}\n```").0, 0.8);
        assert_eq!(parse_judgement("Score: 7/10").0, 0.7);
        assert_eq!(parse_judgement("no idea").0, 0.0);
    }
}
