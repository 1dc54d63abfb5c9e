//! Review by effect: a change's test results against its base (`promptctl test
//! --baseline REF`).
//!
//! The head's test cases run twice for each prompt whose definition (or an included
//! partial) differs at the base: on the head's definition and on the base's, each with its
//! own model and parameters, the same variables and the same assertions. [`compare`] pairs
//! the two results of each case and says how the case moved: a *regression* when it passed
//! at the base and fails at the head, or when an assertion's score falls by more than the
//! tolerance although both pass; an *improvement* the other way round. Tests only the head
//! has are *new*, tests only the base has are *removed*. A word diff shows how an answer
//! changed ([`DiffBudget`] bounds how many and how long).

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::Serialize;

use super::selection::{ChangeReason, Changes};
use super::{CaseResult, CaseStatus, Incomplete, TestJob, prompt_jobs, test_name};
use crate::render::Renderer;
use crate::repo::{LoadedPrompt, PromptId, Snapshot};

/// The most characters of each answer the word diff reads; the rest is left out of it.
pub const MAX_DIFF_CHARS: usize = 64 * 1024;
/// The longest a word diff may take before it settles for a coarser one.
const DIFF_DEADLINE: Duration = Duration::from_millis(100);
/// The most word diffs one report makes (regressions first); the other changed answers
/// are in the reports in full, without a diff.
pub const MAX_DIFFS: usize = 1_000;
/// The time one report's word diffs may take together.
pub const DIFFS_TIME: Duration = Duration::from_secs(2);
/// A word diff of more pieces than this says only "all of the old, all of the new": two
/// answers that different are read side by side, and the pieces would cost more memory
/// than the answers.
const MAX_DIFF_PARTS: usize = 1_000;

/// How a test case moved from the base to the head.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Movement {
    /// Passed at the base, fails at the head; or a score fell beyond the tolerance.
    Regression,
    /// Failed at the base, passes at the head; or a score rose beyond the tolerance.
    Improvement,
    /// A side could not be judged (a provider error, a missing recording): no verdict.
    Unjudged,
    /// Only the head has the test.
    New,
    /// Only the base has the test.
    Removed,
    /// Within the tolerance, same status (or the definition is the same at the base).
    Unchanged,
}

/// One assertion's scores on both sides (the same assertion: the head's test case runs on
/// both).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AssertionDelta {
    /// The assertion's line in the head's file.
    pub line: usize,
    /// Its type as written.
    #[serde(rename = "type")]
    pub kind: String,
    /// Its score at the base.
    pub base: f64,
    /// Its score at the head.
    pub head: f64,
    /// `head - base`.
    pub delta: f64,
    /// Whether it passed at the base.
    pub base_passed: bool,
    /// Whether it passed at the head.
    pub head_passed: bool,
}

/// One piece of a word diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiffPart {
    /// `equal`, `delete` (only the base's answer has it) or `insert` (only the head's).
    pub op: DiffOp,
    /// The words and the space between them.
    pub text: String,
}

/// What a [`DiffPart`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DiffOp {
    /// In both answers.
    Equal,
    /// Only in the base's answer.
    Delete,
    /// Only in the head's answer.
    Insert,
}

/// One test case on both sides.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseDelta {
    /// The prompt.
    pub prompt: PromptId,
    /// The test's name.
    pub test: String,
    /// Its place among the head's results (`None`: a removed test).
    #[serde(skip)]
    pub head_index: Option<usize>,
    /// How it moved.
    pub movement: Movement,
    /// Why, in one line (empty when unchanged).
    pub reason: String,
    /// Each assertion's scores, when both sides were judged.
    pub assertions: Vec<AssertionDelta>,
    /// The word diff of the base's answer against the head's, when both answered and the
    /// answers differ.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub diff: Option<Vec<DiffPart>>,
    /// The base's result (`None`: not run there).
    pub base: Option<Side>,
    /// The head's result (`None`: a removed test).
    pub head: Option<Side>,
}

/// A case's result on one side, with its score.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Side {
    /// The mean assertion score (`None`: not judged), as [`case_score`] gives it.
    pub score: Option<f64>,
    /// The result.
    #[serde(flatten)]
    pub result: CaseResult,
}

impl Side {
    fn of(result: CaseResult) -> Side {
        Side {
            score: case_score(&result),
            result,
        }
    }
}

/// Counts of a comparison.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct MovementCounts {
    /// Regressions.
    pub regressions: usize,
    /// Improvements.
    pub improvements: usize,
    /// Cases without a verdict.
    pub unjudged: usize,
    /// New tests.
    pub new: usize,
    /// Removed tests.
    pub removed: usize,
    /// Unchanged cases.
    pub unchanged: usize,
}

impl MovementCounts {
    /// `2 regressions`, `1 improvement`: a count and its noun.
    pub fn count(n: usize, noun: &str) -> String {
        format!("{n} {noun}{}", if n == 1 { "" } else { "s" })
    }

    /// The counts after regressions and improvements: `0 new, 1 removed, 3 unchanged, 0
    /// without a verdict`.
    pub fn rest(&self) -> String {
        format!(
            "{} new, {} removed, {} unchanged, {} without a verdict",
            self.new, self.removed, self.unchanged, self.unjudged
        )
    }

    /// Every count, for people: `2 regressions, 1 improvement, 0 new, ...`.
    pub fn describe(&self) -> String {
        format!(
            "{}, {}, {}",
            Self::count(self.regressions, "regression"),
            Self::count(self.improvements, "improvement"),
            self.rest()
        )
    }
}

/// The comparison of a change's results with its base's.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Comparison {
    /// The base commit.
    pub base: String,
    /// The score drop that counts as a regression (`[test] regression_tolerance`).
    pub tolerance: f64,
    /// The counts.
    pub counts: MovementCounts,
    /// Every case, regressions first, then improvements, unjudged, new, removed and
    /// unchanged; in run order within each.
    pub cases: Vec<CaseDelta>,
}

impl CaseDelta {
    /// Whether both sides answered, differently.
    pub fn answers_differ(&self) -> bool {
        let base = self.base.as_ref().and_then(|s| s.result.output.as_deref());
        let head = self.head.as_ref().and_then(|s| s.result.output.as_deref());
        matches!((base, head), (Some(a), Some(b)) if a != b)
    }
}

impl Comparison {
    /// The counts of the base's results that bear on the run's exit code: a base that
    /// cannot render the head's test (a variable the change added) is not comparable,
    /// which is no error of the run.
    pub fn base_summary(&self) -> super::report::Summary {
        super::report::Summary::of_all(
            self.cases
                .iter()
                .filter_map(|d| d.base.as_ref().map(|s| &s.result))
                .filter(|r| {
                    r.error
                        .as_ref()
                        .is_none_or(|e| e.kind != super::CaseErrorKind::Render)
                }),
        )
    }

    /// The cases that moved `movement`.
    pub fn with(&self, movement: Movement) -> impl Iterator<Item = &CaseDelta> {
        self.cases.iter().filter(move |c| c.movement == movement)
    }
}

/// Each test's identity within its prompt: its name, or for an unnamed test its
/// variables (an unnamed test's line and position move with every edit around it); a
/// name or variables written twice are told apart by their order.
pub fn test_keys(prompt: &LoadedPrompt) -> Vec<String> {
    let mut seen: HashMap<String, usize> = HashMap::new();
    prompt
        .file
        .tests
        .iter()
        .flat_map(|t| t.value.iter())
        .map(|test| {
            let key = match &test.value.name {
                Some(name) => format!("name:{name}"),
                None => format!("vars:{}", serde_json::json!(test.value.vars)),
            };
            let nth = seen.entry(key.clone()).or_default();
            *nth += 1;
            format!("{key}#{nth}")
        })
        .collect()
}

/// The base side's jobs for `head`: the head's test cases that the base's file also has,
/// on `base`'s definition rendered with `base_renderer` (the base's partials). Empty when
/// the base has no definition.
fn base_jobs<'a>(
    settings: &crate::config::Settings,
    head: &'a LoadedPrompt,
    base: &LoadedPrompt,
    base_renderer: &Arc<Renderer>,
) -> Result<Vec<TestJob<'a>>, Incomplete> {
    let Some(definition) = &base.definition else {
        return Ok(Vec::new());
    };
    let at_base: BTreeSet<String> = test_keys(base).into_iter().collect();
    let jobs = prompt_jobs(
        settings,
        head,
        Arc::new(definition.clone()),
        base_renderer,
        None,
    )?;
    Ok(jobs
        .into_iter()
        .zip(test_keys(head))
        .filter(|(_, key)| at_base.contains(key))
        .map(|(job, _)| job)
        .collect())
}

/// The names of the tests the base's file has and the head's lacks (all of them when the
/// head deleted the prompt).
fn removed_tests(head: Option<&LoadedPrompt>, base: &LoadedPrompt) -> Vec<String> {
    let at_head: BTreeSet<String> = head
        .map(test_keys)
        .unwrap_or_default()
        .into_iter()
        .collect();
    base.file
        .tests
        .iter()
        .flat_map(|t| t.value.iter())
        .zip(test_keys(base))
        .filter(|(_, key)| !at_head.contains(key))
        .map(|(test, _)| test_name(&test.value, test.referenced.line() as usize).into_owned())
        .collect()
}

/// The base side of a run: what runs there, and what is known without running.
pub struct BasePlan<'a> {
    /// The jobs: the head's test cases on the base's definitions.
    pub jobs: Vec<TestJob<'a>>,
    /// The test cases not run at the base because their prompt's definition and partials
    /// are the same there (its answers would be the same), by prompt and test name.
    pub same_definition: BTreeSet<(PromptId, String)>,
    /// The tests the base has and the head does not: prompt, test, why.
    pub removed: Vec<(PromptId, String, &'static str)>,
}

/// Plans the base side for the `selected` prompts of the head, given the `base` snapshot
/// and what `changes` the head makes to it: a prompt whose definition or an included
/// partial differs runs there; one whose definition is the same does not (its answers
/// would be the same). With `deleted`, the tests of the prompts the head deletes count as
/// removed.
pub fn plan<'a>(
    settings: &crate::config::Settings,
    selected: &[&'a LoadedPrompt],
    base: &Snapshot,
    changes: &Changes,
    deleted: bool,
) -> Result<BasePlan<'a>, Incomplete> {
    let renderer = Arc::new(Renderer::new(base.partials.clone()));
    let at_base = |id: &PromptId| base.prompts.iter().find(|p| p.id.as_ref() == Some(id));
    let mut plan = BasePlan {
        jobs: Vec::new(),
        same_definition: BTreeSet::new(),
        removed: Vec::new(),
    };
    for head in selected {
        let Some(id) = &head.id else { continue };
        let Some(before) = at_base(id) else { continue };
        let reasons = changes
            .changed
            .iter()
            .find(|c| &c.id == id)
            .map_or(&[][..], |c| c.reasons.as_slice());
        let differs = reasons
            .iter()
            .any(|r| matches!(r, ChangeReason::Definition | ChangeReason::Partial(_)));
        if differs {
            plan.jobs
                .extend(base_jobs(settings, head, before, &renderer)?);
        } else {
            let at_base: BTreeSet<String> = test_keys(before).into_iter().collect();
            let tests = head.file.tests.iter().flat_map(|t| t.value.iter());
            plan.same_definition.extend(
                tests
                    .zip(test_keys(head))
                    .filter(|(_, key)| at_base.contains(key))
                    .map(|(test, _)| {
                        let name = test_name(&test.value, test.referenced.line() as usize);
                        (id.clone(), name.into_owned())
                    }),
            );
        }
        let removed = removed_tests(Some(head), before);
        let why = "removed from the file";
        plan.removed
            .extend(removed.into_iter().map(|test| (id.clone(), test, why)));
    }
    if deleted {
        for id in &changes.deleted {
            if let Some(before) = at_base(id) {
                let removed = removed_tests(None, before);
                let why = "the prompt is deleted";
                plan.removed
                    .extend(removed.into_iter().map(|test| (id.clone(), test, why)));
            }
        }
    }
    Ok(plan)
}

/// What [`compare`] compares the head's results with.
#[derive(Debug, Clone)]
pub struct Sides {
    /// The base commit.
    pub base_commit: String,
    /// The base's results (the cases run there).
    pub base: Vec<CaseResult>,
    /// The cases not run at the base because their definition is the same there, by
    /// prompt and test name.
    pub same_definition: BTreeSet<(PromptId, String)>,
    /// The removed tests: prompt, test, why.
    pub removed: Vec<(PromptId, String, &'static str)>,
}

/// Pairs each of the `head` results (every selected case) with its base result and says
/// how it moved.
pub fn compare(head: &[CaseResult], sides: Sides, tolerance: f64) -> Comparison {
    // Two tests of a prompt may share a name: each takes the next base result of it.
    let mut base: HashMap<(PromptId, String), VecDeque<CaseResult>> = HashMap::new();
    for result in sides.base {
        let key = (result.prompt.clone(), result.test.clone());
        base.entry(key).or_default().push_back(result);
    }
    let paired = head
        .iter()
        .map(|head| {
            let key = (head.prompt.clone(), head.test.clone());
            Paired {
                base: base.get_mut(&key).and_then(VecDeque::pop_front),
                same_definition: sides.same_definition.contains(&key),
                head: head.clone(),
            }
        })
        .collect();
    compare_paired(paired, sides.removed, sides.base_commit, tolerance)
}

/// A head result and the base result it is compared with.
#[derive(Debug, Clone)]
pub struct Paired {
    /// The head's result.
    pub head: CaseResult,
    /// The base's result (`None`: not run there).
    pub base: Option<CaseResult>,
    /// Not run at the base because the definition is the same there.
    pub same_definition: bool,
}

/// Says how each paired case moved (in the order given), with the `removed` tests: the
/// comparison [`compare`] makes once it has paired the results.
pub fn compare_paired(
    paired: Vec<Paired>,
    removed: Vec<(PromptId, String, &'static str)>,
    base_commit: String,
    tolerance: f64,
) -> Comparison {
    let mut cases: Vec<CaseDelta> = paired
        .into_iter()
        .enumerate()
        .map(|(index, pair)| CaseDelta {
            head_index: Some(index),
            ..delta(pair.head, pair.base, pair.same_definition, tolerance)
        })
        .collect();
    cases.extend(removed.into_iter().map(|(prompt, test, why)| CaseDelta {
        prompt,
        test,
        head_index: None,
        movement: Movement::Removed,
        reason: why.to_owned(),
        assertions: Vec::new(),
        diff: None,
        base: None,
        head: None,
    }));
    cases.sort_by_key(|c| c.movement);
    let mut budget = DiffBudget::new();
    for case in cases.iter_mut().filter(|c| c.answers_differ()) {
        if let (Some(base), Some(head)) = (&case.base, &case.head)
            && let (Some(old), Some(new)) = (&base.result.output, &head.result.output)
        {
            case.diff = budget.diff(old, new);
        }
    }
    let mut counts = MovementCounts::default();
    for case in &cases {
        *match case.movement {
            Movement::Regression => &mut counts.regressions,
            Movement::Improvement => &mut counts.improvements,
            Movement::Unjudged => &mut counts.unjudged,
            Movement::New => &mut counts.new,
            Movement::Removed => &mut counts.removed,
            Movement::Unchanged => &mut counts.unchanged,
        } += 1;
    }
    Comparison {
        base: base_commit,
        tolerance,
        counts,
        cases,
    }
}

/// The mean of a judged case's assertion scores (1 or 0 by status without assertions).
pub fn case_score(result: &CaseResult) -> Option<f64> {
    if result.status == CaseStatus::Error {
        return None;
    }
    if result.assertions.is_empty() {
        return Some(if result.status == CaseStatus::Passed {
            1.0
        } else {
            0.0
        });
    }
    let sum: f64 = result.assertions.iter().map(|a| a.outcome.score).sum();
    Some(sum / result.assertions.len() as f64)
}

/// One case's movement.
fn delta(head: CaseResult, base: Option<CaseResult>, same: bool, tolerance: f64) -> CaseDelta {
    let assertions = match &base {
        Some(base) if base.status != CaseStatus::Error && head.status != CaseStatus::Error => base
            .assertions
            .iter()
            .zip(&head.assertions)
            .map(|(b, h)| AssertionDelta {
                line: h.line,
                kind: h.outcome.kind.clone(),
                base: b.outcome.score,
                head: h.outcome.score,
                delta: h.outcome.score - b.outcome.score,
                base_passed: b.outcome.passed,
                head_passed: h.outcome.passed,
            })
            .collect(),
        _ => Vec::new(),
    };
    let (movement, reason) = match &base {
        None if same => (
            Movement::Unchanged,
            "definition unchanged at the base".to_owned(),
        ),
        None => (Movement::New, "new test or prompt".to_owned()),
        Some(base) => verdict(base, &head, &assertions, tolerance),
    };
    let reason = match &base {
        Some(base) if base.model != head.model => {
            let swap = format!("model {} → {}", base.model, head.model);
            if reason.is_empty() {
                swap
            } else {
                format!("{reason}; {swap}")
            }
        }
        _ => reason,
    };
    CaseDelta {
        prompt: head.prompt.clone(),
        test: head.test.clone(),
        head_index: None,
        movement,
        reason,
        assertions,
        diff: None,
        base: base.map(Side::of),
        head: Some(Side::of(head)),
    }
}

/// The movement of a case run on both sides, and why.
fn verdict(
    base: &CaseResult,
    head: &CaseResult,
    assertions: &[AssertionDelta],
    tolerance: f64,
) -> (Movement, String) {
    if let Some(reason) = unjudged_reason(base, head) {
        return (Movement::Unjudged, reason);
    }
    let passed = |r: &CaseResult| r.status == CaseStatus::Passed;
    match (passed(base), passed(head)) {
        (true, false) => (
            Movement::Regression,
            "passed at the base, fails now".to_owned(),
        ),
        (false, true) => (
            Movement::Improvement,
            "failed at the base, passes now".to_owned(),
        ),
        (false, false) => (Movement::Unchanged, "fails on both sides".to_owned()),
        (true, true) => score_verdict(assertions, tolerance),
    }
}

/// Why a case run on both sides has no verdict: a side could not be judged. A base that
/// cannot render the head's test (it lacks a variable the change added) is not comparable.
fn unjudged_reason(base: &CaseResult, head: &CaseResult) -> Option<String> {
    fn error(result: &CaseResult) -> Option<Option<&super::CaseError>> {
        (result.status == CaseStatus::Error).then_some(result.error.as_ref())
    }
    fn message(error: Option<&super::CaseError>) -> &str {
        error.map_or("", |e| e.message.as_str())
    }
    match (error(base), error(head)) {
        (None, None) => None,
        (Some(b), None) if b.is_some_and(|e| e.kind == super::CaseErrorKind::Render) => {
            Some(format!(
                "not comparable: the base version cannot render this test: {}",
                message(b)
            ))
        }
        (Some(b), None) => Some(format!("the base could not be judged: {}", message(b))),
        (None, Some(h)) => Some(format!("the head could not be judged: {}", message(h))),
        (Some(b), Some(h)) => Some(format!(
            "neither side could be judged: base: {}; head: {}",
            message(b),
            message(h)
        )),
    }
}

/// Both sides pass: a score falling beyond the tolerance is a regression (it outweighs a
/// rise elsewhere), one rising beyond it an improvement.
fn score_verdict(assertions: &[AssertionDelta], tolerance: f64) -> (Movement, String) {
    // A margin below the tolerance absorbs the rounding of scores like 0.95 - 0.9.
    let beyond = tolerance + 1e-9;
    let worst = assertions.iter().min_by(|a, b| a.delta.total_cmp(&b.delta));
    if let Some(worst) = worst.filter(|a| a.delta < -beyond) {
        return (Movement::Regression, score_reason(worst));
    }
    let best = assertions.iter().max_by(|a, b| a.delta.total_cmp(&b.delta));
    if let Some(best) = best.filter(|a| a.delta > beyond) {
        return (Movement::Improvement, score_reason(best));
    }
    (Movement::Unchanged, String::new())
}

/// `similar (line 12): 0.93 → 0.71 (−0.22)`.
fn score_reason(assertion: &AssertionDelta) -> String {
    format!(
        "{} (line {}): {:.2} → {:.2} ({})",
        assertion.kind,
        assertion.line,
        assertion.base,
        assertion.head,
        signed(assertion.delta)
    )
}

/// A score difference with its sign: `+0.12`, `−0.22`.
pub fn signed(delta: f64) -> String {
    if delta < 0.0 {
        format!("−{:.2}", -delta)
    } else {
        format!("+{delta:.2}")
    }
}

/// What word diffs one report may still make: at most [`MAX_DIFFS`], within
/// [`DIFFS_TIME`] together, each within 100 ms.
pub struct DiffBudget {
    left: usize,
    until: Instant,
}

impl DiffBudget {
    /// A report's whole allowance, its clock started now.
    pub fn new() -> DiffBudget {
        DiffBudget {
            left: MAX_DIFFS,
            until: Instant::now() + DIFFS_TIME,
        }
    }

    /// The word diff of `old` against `new`, or `None` once the allowance is spent.
    pub fn diff(&mut self, old: &str, new: &str) -> Option<Vec<DiffPart>> {
        let now = Instant::now();
        if self.left == 0 || now >= self.until {
            return None;
        }
        self.left -= 1;
        Some(word_diff(old, new, (now + DIFF_DEADLINE).min(self.until)))
    }
}

impl Default for DiffBudget {
    fn default() -> Self {
        DiffBudget::new()
    }
}

/// The word-level diff of `old` against `new` (the first [`MAX_DIFF_CHARS`] characters of
/// each), adjacent pieces of one kind merged, settling for a coarser diff at `deadline`;
/// answers too different for a readable diff (over 1,000 pieces) are one deletion and one
/// insertion.
fn word_diff(old: &str, new: &str, deadline: Instant) -> Vec<DiffPart> {
    let cut = |text: &str| -> usize {
        text.char_indices()
            .nth(MAX_DIFF_CHARS)
            .map_or(text.len(), |(at, _)| at)
    };
    let (old, new) = (&old[..cut(old)], &new[..cut(new)]);
    let diff = similar::TextDiff::configure()
        .deadline(deadline)
        .diff_words(old, new);
    let mut parts: Vec<DiffPart> = Vec::new();
    for change in diff.iter_all_changes() {
        let op = match change.tag() {
            similar::ChangeTag::Equal => DiffOp::Equal,
            similar::ChangeTag::Delete => DiffOp::Delete,
            similar::ChangeTag::Insert => DiffOp::Insert,
        };
        match parts.last_mut() {
            Some(last) if last.op == op => last.text.push_str(change.value()),
            _ => parts.push(DiffPart {
                op,
                text: change.value().to_owned(),
            }),
        }
        if parts.len() > MAX_DIFF_PARTS {
            let whole = |op, text: &str| DiffPart {
                op,
                text: text.to_owned(),
            };
            return vec![whole(DiffOp::Delete, old), whole(DiffOp::Insert, new)];
        }
    }
    parts
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eval::LocatedOutcome;
    use crate::eval::assertions::AssertionOutcome;

    fn result(test: &str, status: CaseStatus, scores: &[f64], output: &str) -> CaseResult {
        let mut result = CaseResult::unrun(
            PromptId::new("s", "p"),
            test.to_owned(),
            "prompts/s/p.yaml".into(),
            3,
            "m".to_owned(),
        );
        result.status = status;
        result.output = Some(output.to_owned());
        result.assertions = scores
            .iter()
            .enumerate()
            .map(|(i, score)| LocatedOutcome {
                line: 10 + i,
                outcome: AssertionOutcome {
                    kind: "similar".to_owned(),
                    passed: *score >= 0.5,
                    score: *score,
                    threshold: 0.5,
                    expected: None,
                    detail: String::new(),
                    grader: None,
                },
            })
            .collect();
        if status == CaseStatus::Error {
            result.error = Some(super::super::CaseError {
                kind: super::super::CaseErrorKind::Configuration,
                message: "no recording".to_owned(),
                no_recording: false,
            });
        }
        result
    }

    /// How a case moves from `base` (status, scores) to `head`, tolerance 0.05.
    /// A side of a case: its status and assertion scores.
    type Facts = (CaseStatus, &'static [f64]);

    /// How a case moves from `base` to `head`, tolerance 0.05.
    fn moved(base: Facts, head: Facts) -> CaseDelta {
        let base = result("t", base.0, base.1, "a");
        delta(result("t", head.0, head.1, "b"), Some(base), false, 0.05)
    }

    #[test]
    #[rustfmt::skip]
    fn verdicts_follow_status_then_the_largest_score_change() {
        use CaseStatus::*;
        use Movement::*;
        let table: [(Facts, Facts, Movement, &str); 11] = [
            ((Passed, &[0.9]), (Failed, &[0.3]), Regression, "passed at the base, fails now"),
            ((Passed, &[0.9]), (Passed, &[0.8]), Regression, "0.90 → 0.80 (−0.10)"),
            ((Passed, &[0.9]), (Passed, &[0.86]), Unchanged, "within the tolerance"),
            ((Passed, &[0.95]), (Passed, &[0.9]), Unchanged, "exactly the tolerance"),
            ((Failed, &[0.2]), (Passed, &[0.9]), Improvement, "failed at the base"),
            ((Passed, &[0.6]), (Passed, &[0.9]), Improvement, "0.60 → 0.90 (+0.30)"),
            ((Passed, &[0.6, 0.9]), (Passed, &[0.9, 0.6]), Regression, "line 11"),
            ((Error, &[]), (Passed, &[0.9]), Unjudged, "the base could not be judged: no recording"),
            ((Passed, &[0.9]), (Error, &[]), Unjudged, "the head could not be judged"),
            ((Failed, &[0.9, 0.2]), (Passed, &[0.6, 0.9]), Improvement, "failed at the base"),
            ((Failed, &[0.9, 0.2]), (Failed, &[0.4, 0.2]), Unchanged, "fails on both sides"),
        ];
        for (base, head, movement, reason) in table {
            let case = moved(base, head);
            assert_eq!(case.movement, movement, "{base:?} → {head:?}");
            if movement != Unchanged {
                assert!(case.reason.contains(reason), "{}: {reason}", case.reason);
            }
        }
    }

    #[test]
    fn compare_pairs_by_test_and_counts_new_removed_and_same_definitions() {
        use CaseStatus::*;
        let mut other = result("u", Passed, &[1.0], "x");
        other.prompt = PromptId::new("s", "q");
        let head = [
            result("t", Passed, &[0.9], "same"),
            result("fresh", Passed, &[1.0], "n"),
            other,
        ];
        let comparison = compare(
            &head,
            Sides {
                base_commit: "abc".to_owned(),
                base: vec![result("t", Passed, &[0.5], "same")],
                same_definition: [(PromptId::new("s", "q"), "u".to_owned())].into(),
                removed: vec![(PromptId::new("s", "p"), "gone".to_owned(), "removed")],
            },
            0.05,
        );
        let movements: Vec<_> = comparison
            .cases
            .iter()
            .map(|c| (c.test.as_str(), c.movement))
            .collect();
        assert_eq!(
            movements,
            [
                ("t", Movement::Improvement),
                ("fresh", Movement::New),
                ("gone", Movement::Removed),
                ("u", Movement::Unchanged),
            ]
        );
        assert_eq!(comparison.counts.improvements, 1);
        assert!(comparison.cases[0].diff.is_none(), "same answer, no diff");
    }

    fn soon() -> Instant {
        Instant::now() + DIFF_DEADLINE
    }

    #[test]
    fn the_budget_stops_making_diffs_when_spent_or_late() {
        let mut one = DiffBudget {
            left: 1,
            until: Instant::now() + DIFFS_TIME,
        };
        assert!(one.diff("a b", "a c").is_some());
        assert!(one.diff("a b", "a c").is_none(), "only one diff allowed");
        let mut late = DiffBudget {
            left: MAX_DIFFS,
            until: Instant::now(),
        };
        assert!(late.diff("a b", "a c").is_none(), "out of time");
    }

    #[test]
    fn word_diff_merges_runs_and_bounds_its_input() {
        let parts = word_diff("the total is 42 dollars", "the total is 41 euros", soon());
        let ops: Vec<(DiffOp, &str)> = parts.iter().map(|p| (p.op, p.text.as_str())).collect();
        assert_eq!(ops[0], (DiffOp::Equal, "the total is "));
        assert!(ops.contains(&(DiffOp::Delete, "42")), "{ops:?}");
        assert!(ops.contains(&(DiffOp::Insert, "41")), "{ops:?}");
        assert!(ops.contains(&(DiffOp::Insert, "euros")), "{ops:?}");
        let long = "é ".repeat(MAX_DIFF_CHARS);
        let parts = word_diff(&long, "x", soon());
        let chars: usize = parts
            .iter()
            .filter(|p| p.op == DiffOp::Delete)
            .map(|p| p.text.chars().count())
            .sum();
        assert_eq!(chars, MAX_DIFF_CHARS);
        let words = |seed: u64| -> Vec<String> {
            let mut x = seed;
            (0..3000)
                .map(|_| {
                    x = x
                        .wrapping_mul(6364136223846793005)
                        .wrapping_add(1442695040888963407);
                    format!("w{}", (x >> 33) % 50)
                })
                .collect()
        };
        let (old, new) = (words(1), words(2));
        let (old, new) = (old.join(" "), new.join(" "));
        let parts = word_diff(&old, &new, soon());
        let ops: Vec<DiffOp> = parts.iter().map(|p| p.op).collect();
        assert_eq!(
            ops,
            [DiffOp::Delete, DiffOp::Insert],
            "too different: whole"
        );
        assert_eq!(
            (parts[0].text.as_str(), parts[1].text.as_str()),
            (&*old, &*new)
        );
    }
}
