//! Test reports: the result table and failure details people read, JSON, and JUnit XML.
//!
//! Reports are built as strings; the command line decides where they go.

use serde::Serialize;

use super::{CaseErrorKind, CaseResult, CaseStatus};
use crate::diagnostic::display_path;
use crate::escape::escape_control;
use crate::repo::PromptId;
use crate::style::{Style, paint};

/// Counts over a run.
#[derive(Debug, Clone, Default, Serialize, PartialEq)]
pub struct Summary {
    /// Cases run.
    pub total: usize,
    /// Cases whose assertions all passed.
    pub passed: usize,
    /// Cases with a failed assertion.
    pub failed: usize,
    /// Cases that could not be judged.
    pub errors: usize,
    /// Of the errors, those where the provider failed.
    pub provider_errors: usize,
    /// Of the errors, those caused by input or configuration.
    pub input_errors: usize,
    /// Total price in US dollars of the calls with known prices.
    pub cost_usd: f64,
    /// Cases answered from recordings.
    pub replayed: usize,
}

impl Summary {
    /// "12 tests: 10 passed, 1 failed, 1 error, $0.0042": the counts as reports print them.
    pub fn counts(&self) -> String {
        format!(
            "{} test{}: {} passed, {} failed, {} error{}{}",
            self.total,
            if self.total == 1 { "" } else { "s" },
            self.passed,
            self.failed,
            self.errors,
            if self.errors == 1 { "" } else { "s" },
            if self.cost_usd > 0.0 {
                format!(", ${:.4}", self.cost_usd)
            } else {
                String::new()
            },
        )
    }

    /// Counts `results`.
    pub fn of(results: &[CaseResult]) -> Summary {
        Summary::of_all(results)
    }

    /// Counts every result of `results`.
    pub fn of_all<'a>(results: impl IntoIterator<Item = &'a CaseResult>) -> Summary {
        let mut summary = Summary::default();
        for result in results {
            summary.add(result);
        }
        summary
    }

    /// Counts one more result.
    pub fn add(&mut self, result: &CaseResult) {
        self.total += 1;
        match result.status {
            CaseStatus::Passed => self.passed += 1,
            CaseStatus::Failed => self.failed += 1,
            CaseStatus::Error => {
                self.errors += 1;
                match result.error.as_ref().map(|e| &e.kind) {
                    Some(CaseErrorKind::Provider) => self.provider_errors += 1,
                    _ => self.input_errors += 1,
                }
            }
        }
        self.cost_usd += result.cost_usd.unwrap_or(0.0);
        self.replayed += usize::from(result.replayed);
    }
}

/// `service/name › test`.
pub fn case_label(result: &CaseResult) -> String {
    label(&result.prompt, &result.test)
}

/// `service/name › test`, for a case not run yet.
pub fn label(prompt: &PromptId, test: &str) -> String {
    format!(
        "{} › {}",
        escape_control(&prompt.to_string()),
        escape_control(test)
    )
}

/// The widths of the result table's label and model columns.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Columns {
    label: usize,
    model: usize,
}

impl Columns {
    /// Widens the columns to fit a row of `label` (as [`label`] writes it) and `model`.
    pub fn fit(&mut self, label: &str, model: &str) {
        self.label = self.label.max(label.chars().count());
        self.model = self.model.max(escape_control(model).chars().count());
    }
}

/// One line per case: status, label, model, latency.
pub fn result_table<'a>(
    results: impl IntoIterator<Item = &'a CaseResult> + Clone,
    color: bool,
) -> String {
    let mut columns = Columns::default();
    for result in results.clone() {
        columns.fit(&case_label(result), &result.model);
    }
    results
        .into_iter()
        .map(|result| result_row(result, columns, color))
        .collect()
}

/// The line of one case in a table of `columns`.
pub fn result_row(result: &CaseResult, columns: Columns, color: bool) -> String {
    let status = match result.status {
        CaseStatus::Passed => paint(color, Style::Green, " PASS"),
        CaseStatus::Failed => paint(color, Style::Red, " FAIL"),
        CaseStatus::Error => paint(color, Style::Magenta, "ERROR"),
    };
    let label = case_label(result);
    let timing = match result.latency_ms {
        Some(_) if result.replayed => "replayed".to_owned(),
        Some(ms) => format!("{ms:>6.0} ms"),
        None => String::new(),
    };
    let model = escape_control(&result.model);
    format!(
        "{status}  {label}{}  {model}{}  {timing}\n",
        " ".repeat(columns.label.saturating_sub(label.chars().count())),
        " ".repeat(columns.model.saturating_sub(model.chars().count())),
    )
}

/// The details of every failed or errored case: where, which assertion, expected and
/// actual (a diff for text), the score.
pub fn failure_details<'a>(
    results: impl IntoIterator<Item = &'a CaseResult>,
    color: bool,
) -> String {
    let mut out = String::new();
    for result in results
        .into_iter()
        .filter(|r| r.status != CaseStatus::Passed)
    {
        let heading = match result.status {
            CaseStatus::Error => paint(color, Style::Magenta, "ERROR"),
            _ => paint(color, Style::Red, "FAIL"),
        };
        out.push_str(&format!(
            "\n── {heading} {} ({}:{}) on {}\n",
            case_label(result),
            escape_control(&display_path(&result.path)),
            result.line,
            escape_control(&result.model)
        ));
        if let Some(error) = &result.error {
            out.push_str(&format!("   {}\n", error.message));
            continue;
        }
        for located in result.assertions.iter().filter(|a| !a.outcome.passed) {
            let outcome = &located.outcome;
            out.push_str(&format!(
                "   {} {} (line {}): {}\n",
                paint(color, Style::Red, "✗"),
                outcome.kind,
                located.line,
                outcome.detail
            ));
            out.push_str(&format!(
                "     score {:.2} < threshold {:.2}\n",
                outcome.score, outcome.threshold
            ));
            if let (Some(expected), Some(output)) = (&outcome.expected, &result.output) {
                if outcome.kind == "exact_match" {
                    out.push_str(&text_diff(expected, output, color));
                } else {
                    out.push_str(&format!(
                        "     expected: {}\n",
                        super::assertions::excerpt(expected, 200)
                    ));
                }
            }
        }
        if let Some(output) = &result.output {
            out.push_str("     output:\n");
            for line in output.lines().take(20) {
                out.push_str(&format!("       {line}\n"));
            }
            if output.lines().count() > 20 {
                out.push_str("       …\n");
            }
        }
    }
    out
}

/// A line diff of expected against actual, `-` expected and `+` actual.
pub fn text_diff(expected: &str, actual: &str, color: bool) -> String {
    let diff = similar::TextDiff::from_lines(expected.trim(), actual.trim());
    let mut out = String::from("     diff (- expected, + output):\n");
    for change in diff.iter_all_changes() {
        let (sign, style) = match change.tag() {
            similar::ChangeTag::Delete => ("-", Some(Style::Red)),
            similar::ChangeTag::Insert => ("+", Some(Style::Green)),
            similar::ChangeTag::Equal => (" ", None),
        };
        let line = format!("       {sign} {}", change.value().trim_end_matches('\n'));
        match style {
            Some(style) => out.push_str(&paint(color, style, &line)),
            None => out.push_str(&line),
        }
        out.push('\n');
    }
    out
}

/// The closing line: counts, cost, time.
pub fn summary_line(summary: &Summary, seconds: f64, color: bool) -> String {
    let text = format!(
        "{} in {seconds:.2} s{}",
        summary.counts(),
        if summary.replayed > 0 {
            format!(" ({} replayed)", summary.replayed)
        } else {
            String::new()
        },
    );
    let style = if summary.failed == 0 && summary.errors == 0 {
        Style::BoldGreen
    } else {
        Style::Red
    };
    paint(color, style, &text)
}

/// JUnit XML: one suite per prompt, one case per test.
pub fn junit<'a>(results: impl IntoIterator<Item = &'a CaseResult>, run_name: &str) -> String {
    use quick_junit::{NonSuccessKind, Report, TestCase, TestCaseStatus, TestSuite};
    let mut report = Report::new(run_name);
    let mut suites: std::collections::BTreeMap<String, TestSuite> =
        std::collections::BTreeMap::new();
    for result in results {
        let suite_name = result.prompt.to_string();
        let suite = suites
            .entry(suite_name.clone())
            .or_insert_with(|| TestSuite::new(suite_name.clone()));
        let status = match result.status {
            CaseStatus::Passed => TestCaseStatus::success(),
            CaseStatus::Failed => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Failure);
                let reasons: Vec<String> = result
                    .assertions
                    .iter()
                    .filter(|a| !a.outcome.passed)
                    .map(|a| format!("{} (line {}): {}", a.outcome.kind, a.line, a.outcome.detail))
                    .collect();
                status.set_message(reasons.join("; "));
                status.set_type("assertion");
                if let Some(output) = &result.output {
                    status.set_description(output.clone());
                }
                status
            }
            CaseStatus::Error => {
                let mut status = TestCaseStatus::non_success(NonSuccessKind::Error);
                status.set_message(
                    result
                        .error
                        .as_ref()
                        .map(|e| e.message.clone())
                        .unwrap_or_default(),
                );
                status
            }
        };
        let mut case = TestCase::new(format!("{} [{}]", result.test, result.model), status);
        case.set_classname(suite_name.clone());
        if let Some(ms) = result.latency_ms {
            case.set_time(std::time::Duration::from_secs_f64(ms / 1000.0));
        }
        case.extra
            .insert("file".into(), display_path(&result.path).into());
        case.extra
            .insert("line".into(), result.line.to_string().into());
        suite.add_test_case(case);
    }
    report.add_test_suites(suites.into_values());
    report.to_string().unwrap_or_default()
}

/// One row of a model-swap comparison.
#[derive(Debug, Clone, Serialize)]
pub struct ComparisonRow {
    /// The prompt.
    pub prompt: String,
    /// The test.
    pub test: String,
    /// Status on the prompt's own model.
    pub current: CaseStatus,
    /// Status on the candidate model.
    pub candidate: CaseStatus,
}

/// Pairs the current model's results with the candidate's (same order of cases).
pub fn comparison(current: &[CaseResult], candidate: &[CaseResult]) -> Vec<ComparisonRow> {
    current
        .iter()
        .zip(candidate)
        .map(|(a, b)| ComparisonRow {
            prompt: a.prompt.to_string(),
            test: a.test.clone(),
            current: a.status,
            candidate: b.status,
        })
        .collect()
}

/// The comparison with the base as the terminal shows it: the counts, then each case that
/// moved (regressions first) with why and, when its answer changed, the word diff.
pub fn baseline_text(comparison: &super::baseline::Comparison, color: bool) -> String {
    use super::baseline::Movement;
    let counts = comparison.counts;
    let mut out = format!(
        "\ncompared with the base {}: {} (tolerance {})\n",
        short_commit(&comparison.base),
        counts.describe(),
        comparison.tolerance
    );
    let mut diffs_shown = 0;
    for case in &comparison.cases {
        let (mark, word, style) = match case.movement {
            Movement::Regression => ("✗", "regression", Style::Red),
            Movement::Improvement => ("✓", "improvement", Style::Green),
            Movement::Unjudged => ("!", "no verdict", Style::Red),
            Movement::New => ("+", "new", Style::Blue),
            Movement::Removed => ("-", "removed", Style::Blue),
            Movement::Unchanged if case.diff.is_some() => ("~", "new answer", Style::Blue),
            Movement::Unchanged => continue,
        };
        let head = format!("  {mark} {word:<11} {}", label(&case.prompt, &case.test));
        out.push_str(&paint(color, style, &head));
        if !case.reason.is_empty() {
            out.push_str(&format!("  {}", escape_control(&case.reason)));
        }
        out.push('\n');
        if let Some(diff) = case
            .diff
            .as_deref()
            .filter(|_| diffs_shown < MAX_TERMINAL_DIFFS)
        {
            diffs_shown += 1;
            out.push_str(&word_diff_text(diff, color));
        }
    }
    let diffs = comparison.cases.iter().filter(|c| c.diff.is_some()).count();
    if diffs > diffs_shown {
        out.push_str(&format!(
            "  ({} answer diffs not shown: `--html FILE` and `--format json` have them)\n",
            diffs - diffs_shown
        ));
    }
    out
}

/// Answer diffs the terminal shows, and the characters of each.
const MAX_TERMINAL_DIFFS: usize = 50;
const MAX_TERMINAL_DIFF_CHARS: usize = 4_000;

/// The first 12 characters of a commit id.
fn short_commit(commit: &str) -> &str {
    commit.get(..12).unwrap_or(commit)
}

/// A word diff for the terminal, indented: deletions red and insertions green on a
/// colour terminal, `[-deleted-]{+inserted+}` (as `git diff --word-diff`) otherwise.
pub fn word_diff_text(parts: &[super::baseline::DiffPart], color: bool) -> String {
    labelled_word_diff(parts, color, "base → head")
}

/// [`word_diff_text`] with its own label for the two sides: `answer (LABEL): …`.
fn labelled_word_diff(parts: &[super::baseline::DiffPart], color: bool, sides: &str) -> String {
    use super::baseline::DiffOp;
    let mut text = String::new();
    let mut budget = MAX_TERMINAL_DIFF_CHARS;
    for part in parts {
        if budget == 0 {
            text.push_str(" …");
            break;
        }
        let part = &super::baseline::DiffPart {
            op: part.op,
            text: part.text.chars().take(budget).collect(),
        };
        budget = budget.saturating_sub(part.text.chars().count());
        // Line breaks stay line breaks (indented below); every other control is shown.
        let shown: Vec<String> = part
            .text
            .split('\n')
            .map(|line| escape_control(line).into_owned())
            .collect();
        let shown = shown.join("\n");
        match (part.op, color) {
            (DiffOp::Equal, _) => text.push_str(&shown),
            (DiffOp::Delete, true) => text.push_str(&paint(true, Style::Red, &shown)),
            (DiffOp::Insert, true) => text.push_str(&paint(true, Style::Green, &shown)),
            (DiffOp::Delete, false) => text.push_str(&format!("[-{shown}-]")),
            (DiffOp::Insert, false) => text.push_str(&format!("{{+{shown}+}}")),
        }
    }
    let mut out = format!("      answer ({sides}): ");
    out.push_str(&text.replace('\n', "\n      "));
    out.push('\n');
    out
}

/// A case's verdict in one line, as the editor and the watch show it: `passed, score
/// 1.00`; `failed, score 0.50: contains (line 12): …` with the first failed assertion's
/// reason; `not judged: …` with the error.
pub fn verdict_line(result: &CaseResult) -> String {
    let score = super::baseline::case_score(result)
        .map_or(String::new(), |score| format!(", score {score:.2}"));
    match result.status {
        CaseStatus::Passed => format!("passed{score}"),
        CaseStatus::Failed => {
            let reason = result
                .assertions
                .iter()
                .find(|a| !a.outcome.passed)
                .map(|a| {
                    format!(
                        ": {} (line {}): {}",
                        a.outcome.kind,
                        a.line,
                        escape_control(&a.outcome.detail)
                    )
                })
                .unwrap_or_default();
            format!("failed{score}{reason}")
        }
        CaseStatus::Error => format!(
            "not judged: {}",
            result
                .error
                .as_ref()
                .map_or("no result".into(), |e| escape_control(&e.message))
        ),
    }
}

/// What a re-run changed, as `test --watch` prints it: one line for each test that flipped,
/// whose score moved, that is new or removed, or whose answer changed (with the word
/// diff); nothing for the others. Returns the text and how many tests it names.
pub fn rerun_text(comparison: &super::baseline::Comparison, color: bool) -> (String, usize) {
    use super::baseline::Movement;
    let mut out = String::new();
    let mut shown = 0;
    let mut diffs_shown = 0;
    for case in &comparison.cases {
        let before = case.base.as_ref().map(|side| side.result.status);
        let now = case.head.as_ref().map(|side| side.result.status);
        let flipped = before.is_some() && before != now;
        let error_of = |side: &Option<super::baseline::Side>| {
            side.as_ref()
                .and_then(|s| s.result.error.as_ref())
                .map(|e| e.message.clone())
        };
        let new_error = !flipped && error_of(&case.base) != error_of(&case.head);
        let (mark, style) = match case.movement {
            Movement::Regression => ("✗", Style::Red),
            Movement::Improvement => ("✓", Style::Green),
            Movement::Unjudged if flipped && now == Some(CaseStatus::Passed) => ("✓", Style::Green),
            Movement::Unjudged if flipped || new_error => ("!", Style::Magenta),
            Movement::New | Movement::Removed => ("•", Style::Blue),
            Movement::Unchanged if case.diff.is_some() => ("~", Style::Blue),
            Movement::Unjudged | Movement::Unchanged => continue,
        };
        let change = match (before, now) {
            (Some(before), Some(now)) if before != now => {
                format!("{} → {}", status_word(before), status_word(now))
            }
            (None, Some(_)) => "new".to_owned(),
            _ if new_error => "another error".to_owned(),
            (_, None) => "removed".to_owned(),
            _ if case.movement == Movement::Unchanged => "new answer".to_owned(),
            _ => "score".to_owned(),
        };
        let head = format!("  {mark} {change:<17} {}", label(&case.prompt, &case.test));
        shown += 1;
        out.push_str(&paint(color, style, &head));
        // A flip or a failure says the verdict; a pass whose score moved says which
        // assertion moved and by how much.
        let detail = match &case.head {
            None => case.reason.clone(),
            Some(head)
                if !flipped
                    && head.result.status == CaseStatus::Passed
                    && matches!(case.movement, Movement::Regression | Movement::Improvement) =>
            {
                case.reason.clone()
            }
            Some(head) => verdict_line(&head.result),
        };
        out.push_str(&format!("  {}\n", escape_control(&detail)));
        if let Some(diff) = case
            .diff
            .as_deref()
            .filter(|_| diffs_shown < MAX_TERMINAL_DIFFS)
        {
            diffs_shown += 1;
            out.push_str(&labelled_word_diff(diff, color, "before → now"));
        }
    }
    (out, shown)
}

/// `passed`, `failed`, `error`.
fn status_word(status: CaseStatus) -> &'static str {
    match status {
        CaseStatus::Passed => "passed",
        CaseStatus::Failed => "failed",
        CaseStatus::Error => "error",
    }
}
