//! GitHub Actions: workflow annotations and the Markdown report of a CI run.
//!
//! An [`Annotation`] is one `::error file=...,line=...,title=...::message` workflow command;
//! GitHub shows only the first 10 error annotations of a step, so [`test_annotations`] puts
//! the most useful first (failing tests by file and line, then cases that could not run).
//! [`markdown_report`] is what goes to `$GITHUB_STEP_SUMMARY` (and `--report FILE`): the
//! changed prompts with their version change, a diff of their rendered messages, the results
//! and the coverage. Everything is built as strings; the command line decides where it goes.

use std::fmt::Write as _;

use super::html::escape;
use super::report::Summary;
use super::selection::{ChangeReason, Coverage, RenderDiff, Shard, VersionChange};
use super::{CaseErrorKind, CaseResult, CaseStatus};
use crate::diagnostic::{Diagnostic, Severity, display_path};
use crate::repo::PromptId;

/// How GitHub shows an annotation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Level {
    /// Fails the look of the check; counts toward the 10 shown per step.
    Error,
    /// A warning.
    Warning,
}

/// Where an annotation points: a line of a file, and the column when known (GitHub takes
/// a column only with a line, and a line only with a file).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AnnotationAt {
    /// The file, relative to the repository root.
    pub file: String,
    /// The 1-based line.
    pub line: usize,
    /// The 1-based column.
    pub column: Option<usize>,
}

/// One workflow annotation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Annotation {
    /// Error, warning or notice.
    pub level: Level,
    /// Where it points (`None`: the run as a whole).
    pub at: Option<AnnotationAt>,
    /// A short title.
    pub title: String,
    /// The message (may span lines).
    pub message: String,
}

/// Escapes a message as GitHub's workflow commands require.
pub fn escape_data(text: &str) -> String {
    text.replace('%', "%25")
        .replace('\r', "%0D")
        .replace('\n', "%0A")
}

/// Escapes a property value (file, title): as a message, plus `:` and `,`.
pub fn escape_property(text: &str) -> String {
    escape_data(text).replace(':', "%3A").replace(',', "%2C")
}

/// One workflow command line, `::NAME KEY=VALUE,...::DATA`, every property value and the
/// data escaped: the one place promptctl writes a workflow command, so nothing untrusted
/// (a test name, a file name, a model's answer) can end it early or start another.
pub fn command(name: &str, properties: &[(&str, String)], data: &str) -> String {
    let properties: Vec<String> = properties
        .iter()
        .map(|(key, value)| format!("{key}={}", escape_property(value)))
        .collect();
    let separator = if properties.is_empty() { "" } else { " " };
    format!(
        "::{name}{separator}{}::{}",
        properties.join(","),
        escape_data(data)
    )
}

/// Free text made inert for GitHub's runner: wrapped in a `::stop-commands::TOKEN` …
/// `::TOKEN::` block, so that no line of it (a test name, a model's answer, a file's line)
/// is run as a workflow command, however it starts. The token is new for every block and
/// drawn from the operating system's random source, so the text cannot end the block
/// itself. The result ends with a line break.
pub fn inert(text: &str) -> String {
    let token = stop_token();
    let newline = if text.ends_with('\n') { "" } else { "\n" };
    format!(
        "{}\n{text}{newline}::{token}::\n",
        command("stop-commands", &[], &token)
    )
}

/// Whether GitHub's runner would take a line of `text` for a workflow command: lines end
/// at a line feed or a carriage return, and leading whitespace is skipped, as the runner
/// reads them; `::` starts a command, and so does `##[` (the older syntax).
pub fn could_run(text: &str) -> bool {
    text.split(['\n', '\r']).any(|line| {
        let line = line.trim_start();
        line.starts_with("::") || line.starts_with("##[")
    })
}

/// 128 random bits from the operating system, as hex. Should the system have no random
/// source, a hash of the clock, the process and a counter stands in: text written before
/// the run still cannot know it.
fn stop_token() -> String {
    let mut bytes = [0u8; 16];
    if getrandom::fill(&mut bytes).is_err() {
        use sha2::Digest as _;
        static COUNTER: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let seed = format!(
            "{:?} {} {}",
            std::time::SystemTime::now(),
            std::process::id(),
            COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let digest = sha2::Sha256::digest(seed.as_bytes());
        bytes.copy_from_slice(&digest[..16]);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

impl Annotation {
    /// The workflow command line, e.g. `::error file=a.yaml,line=3,title=t::message`.
    pub fn command(&self) -> String {
        let level = match self.level {
            Level::Error => "error",
            Level::Warning => "warning",
        };
        let mut properties = Vec::new();
        if let Some(at) = &self.at {
            properties.push(("file", at.file.clone()));
            properties.push(("line", at.line.to_string()));
            if let Some(column) = at.column {
                properties.push(("col", column.to_string()));
            }
        }
        properties.push(("title", self.title.clone()));
        command(level, &properties, &self.message)
    }
}

/// The annotation of a check finding, at its line and column, titled by its code.
pub fn diagnostic_annotation(diagnostic: &Diagnostic) -> Annotation {
    let mut message = diagnostic.message.clone();
    if let Some(help) = &diagnostic.help {
        message.push_str(&format!("\nhelp: {help}"));
    }
    Annotation {
        level: match diagnostic.severity {
            Severity::Error => Level::Error,
            Severity::Warning => Level::Warning,
        },
        at: Some(AnnotationAt {
            file: display_path(&diagnostic.path),
            line: diagnostic.position.line,
            column: Some(diagnostic.position.column),
        }),
        title: diagnostic.code.to_owned(),
        message,
    }
}

/// Annotations for check findings: errors first, each group by file and position.
pub fn diagnostic_annotations(diagnostics: &[Diagnostic]) -> Vec<Annotation> {
    let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
    sorted
        .sort_by(|a, b| (b.severity, &a.path, a.position).cmp(&(a.severity, &b.path, b.position)));
    sorted.into_iter().map(diagnostic_annotation).collect()
}

/// What failed in a case, in one message: each failed assertion with its line and detail,
/// or the error.
pub fn failure_message(result: &CaseResult) -> String {
    if let Some(error) = &result.error {
        return error.message.clone();
    }
    let mut lines: Vec<String> = result
        .assertions
        .iter()
        .filter(|a| !a.outcome.passed)
        .map(|a| format!("{} (line {}): {}", a.outcome.kind, a.line, a.outcome.detail))
        .collect();
    if let Some(output) = &result.output {
        lines.push(format!(
            "output: {}",
            super::assertions::excerpt(output, 300)
        ));
    }
    lines.join("\n")
}

/// One error annotation per case that did not pass, at the test's line: failed tests
/// first (by file and line), then cases that could not be judged (input and configuration
/// errors, then provider errors), so the 10 GitHub shows are the most useful.
pub fn test_annotations<'a>(results: impl IntoIterator<Item = &'a CaseResult>) -> Vec<Annotation> {
    let rank = |result: &CaseResult| match (result.status, result.error.as_ref()) {
        (CaseStatus::Failed, _) => 0,
        (_, Some(error)) if error.kind == CaseErrorKind::Provider => 2,
        _ => 1,
    };
    let mut failing: Vec<&CaseResult> = results
        .into_iter()
        .filter(|r| r.status != CaseStatus::Passed)
        .collect();
    failing.sort_by(|a, b| (rank(a), &a.path, a.line).cmp(&(rank(b), &b.path, b.line)));
    failing
        .into_iter()
        .map(|result| Annotation {
            level: Level::Error,
            at: Some(AnnotationAt {
                file: display_path(&result.path),
                line: result.line,
                column: None,
            }),
            title: format!(
                "{} › {} {} on {}",
                result.prompt,
                result.test,
                if result.status == CaseStatus::Failed {
                    "failed"
                } else {
                    "could not run"
                },
                result.model
            ),
            message: failure_message(result),
        })
        .collect()
}

/// One annotation per test that regressed against the base but still passes (a failing
/// one has its failure's annotation already), at the test's line: an error, or a warning
/// when regressions are `allowed`.
pub fn regression_annotations(
    comparison: &super::baseline::Comparison,
    allowed: bool,
) -> Vec<Annotation> {
    comparison
        .with(super::baseline::Movement::Regression)
        .filter_map(|case| {
            let head = case
                .head
                .as_ref()
                .map(|side| &side.result)
                .filter(|h| h.status == CaseStatus::Passed)?;
            Some(Annotation {
                level: if allowed {
                    Level::Warning
                } else {
                    Level::Error
                },
                at: Some(AnnotationAt {
                    file: display_path(&head.path),
                    line: head.line,
                    column: None,
                }),
                title: format!("{} › {} regressed against the base", case.prompt, case.test),
                message: case.reason.clone(),
            })
        })
        .collect()
}

/// The coverage gate's annotation, when it fails: one error naming the untested prompts.
pub fn coverage_annotation(coverage: &Coverage) -> Option<Annotation> {
    (!coverage.passes()).then(|| Annotation {
        level: Level::Error,
        at: None,
        title: "promptctl test: coverage below the minimum".to_owned(),
        message: format!(
            "{}; untested: {}",
            coverage.describe(),
            coverage.untested.join(", ")
        ),
    })
}

/// A changed prompt as the report shows it.
#[derive(Debug, Clone)]
pub struct ChangedEntry {
    /// The prompt.
    pub id: PromptId,
    /// Its file.
    pub path: String,
    /// How its version moves (`None` without Git history).
    pub version: Option<VersionChange>,
    /// Why it counts as changed.
    pub reasons: Vec<ChangeReason>,
    /// Its rendered messages before and after, per test.
    pub renders: Vec<RenderDiff>,
}

/// Everything the Markdown report shows.
#[derive(Debug, Clone)]
pub struct ReportInput<'a> {
    /// What was selected, for people: `changed since origin/main (merge base 1a2b3c4d5e6f)`.
    pub selection: String,
    /// The base the changes are measured from, when there is one.
    pub base: Option<String>,
    /// The changed prompts (empty without a base).
    pub changed: &'a [ChangedEntry],
    /// Prompts the change deletes.
    pub deleted: &'a [PromptId],
    /// Prompts whose file no longer parses.
    pub unreadable: &'a [PromptId],
    /// The results, in run order.
    pub results: &'a [CaseResult],
    /// Their counts.
    pub summary: &'a Summary,
    /// The coverage, when the gate applies.
    pub coverage: Option<&'a Coverage>,
    /// The shard run, if any.
    pub shard: Option<Shard>,
    /// The comparison with the base, with `test --baseline`.
    pub baseline: Option<&'a super::baseline::Comparison>,
}

/// Beyond this many results, the table lists only the cases that did not pass.
const MAX_TABLE_ROWS: usize = 500;
/// Lines of one rendered-message diff shown.
const MAX_DIFF_LINES: usize = 200;
/// GitHub accepts at most 1 MiB of step summary per step; stay under it.
const MAX_REPORT_BYTES: usize = 1_000_000;

/// Escapes text for a Markdown table cell.
/// Markdown on GitHub takes HTML, and `@name` notifies people: a cell's text is escaped as
/// HTML, and a zero-width space after each `@` keeps it from mentioning anyone.
fn cell(text: &str) -> String {
    escape(&text.replace('\r', ""))
        .replace('\\', "\\\\")
        .replace('|', "\\|")
        .replace('\n', "<br>")
        .replace('@', "@\u{200b}")
}

/// A fence longer than any run of backticks in `text`.
fn fence(text: &str) -> String {
    let mut longest = 0;
    let mut run = 0;
    for c in text.chars() {
        run = if c == '`' { run + 1 } else { 0 };
        longest = longest.max(run);
    }
    "`".repeat((longest + 1).max(3))
}

/// The Markdown report of a CI run.
pub fn markdown_report(input: &ReportInput<'_>) -> String {
    let mut out = String::new();
    let summary = input.summary;
    let gate_failed = input.coverage.is_some_and(|c| !c.passes());
    let ok = summary.failed == 0 && summary.errors == 0 && !gate_failed;
    let _ = writeln!(
        out,
        "## {} promptctl test{}\n",
        if ok { "✅" } else { "❌" },
        input
            .shard
            .map(|s| format!(" (shard {s})"))
            .unwrap_or_default()
    );
    let _ = writeln!(out, "**{}** — {}\n", summary.counts(), input.selection);

    let mut rendered = String::new();
    if let Some(base) = &input.base {
        let _ = writeln!(out, "### Changed prompts\n");
        let _ = writeln!(out, "Compared with {base}.\n");
        if input.changed.is_empty() && input.deleted.is_empty() && input.unreadable.is_empty() {
            let _ = writeln!(out, "No prompt changed.\n");
        } else {
            let _ = writeln!(
                out,
                "| prompt | version | what changed |\n| --- | --- | --- |"
            );
            for entry in input.changed {
                let reasons: Vec<String> = entry.reasons.iter().map(|r| r.to_string()).collect();
                let _ = writeln!(
                    out,
                    "| `{}` | {} | {} |",
                    cell(&entry.id.to_string()),
                    entry
                        .version
                        .map_or_else(|| "—".to_owned(), |v| v.to_string()),
                    cell(&reasons.join(", "))
                );
            }
            for id in input.unreadable {
                let _ = writeln!(
                    out,
                    "| `{}` | — | ❌ the file does not parse (`promptctl check` says why) |",
                    cell(&id.to_string())
                );
            }
            for id in input.deleted {
                let _ = writeln!(
                    out,
                    "| `{}` | deleted (archived) | |",
                    cell(&id.to_string())
                );
            }
            out.push('\n');
        }
        rendered = rendered_section(input.changed);
    }

    let mut rest = String::new();
    if let Some(comparison) = input.baseline {
        baseline_section(&mut rest, comparison);
    }
    results_section(&mut rest, input.results);
    if let Some(coverage) = input.coverage {
        let _ = writeln!(rest, "### Coverage\n");
        let _ = writeln!(
            rest,
            "{} {}\n",
            if coverage.passes() { "✅" } else { "❌" },
            coverage.describe()
        );
        if !coverage.untested.is_empty() {
            let names: Vec<String> = coverage.untested.iter().map(|n| format!("`{n}`")).collect();
            let _ = writeln!(rest, "Untested: {}\n", names.join(", "));
        }
    }
    if out.len() + rendered.len() + rest.len() > MAX_REPORT_BYTES {
        rendered = "### Rendered messages\n\nLeft out: with them the report would pass GitHub's \
            1 MiB limit for a step summary.\n\n"
            .to_owned();
    }
    out.push_str(&rendered);
    out.push_str(&rest);
    out
}

/// The results table (only the cases that did not pass when there are many) and the
/// failures, each in full.
fn results_section(out: &mut String, results: &[CaseResult]) {
    let _ = writeln!(out, "### Results\n");
    if results.is_empty() {
        let _ = writeln!(out, "No tests ran.\n");
    } else {
        let _ = writeln!(
            out,
            "| | prompt | test | model | where |\n| --- | --- | --- | --- | --- |"
        );
        let many = results.len() > MAX_TABLE_ROWS;
        let listed = results
            .iter()
            .filter(|r| !many || r.status != CaseStatus::Passed);
        for result in listed {
            let status = match result.status {
                CaseStatus::Passed => "✅",
                CaseStatus::Failed => "❌",
                CaseStatus::Error => "⚠️",
            };
            let _ = writeln!(
                out,
                "| {status} | `{}` | {} | {} | `{}:{}` |",
                cell(&result.prompt.to_string()),
                cell(&result.test),
                cell(&result.model),
                cell(&display_path(&result.path)),
                result.line
            );
        }
        if many {
            let passed = results
                .iter()
                .filter(|r| r.status == CaseStatus::Passed)
                .count();
            let _ = writeln!(
                out,
                "\n{passed} passing tests are not listed (the JUnit report has every test)."
            );
        }
        out.push('\n');
        let failing: Vec<&CaseResult> = results
            .iter()
            .filter(|r| r.status != CaseStatus::Passed)
            .collect();
        if !failing.is_empty() {
            let _ = writeln!(out, "### Failures\n");
            for result in failing {
                let message = failure_message(result);
                let fence = fence(&message);
                let _ = writeln!(
                    out,
                    "**`{}` › {}** (`{}:{}`, {})\n\n{fence}\n{message}\n{fence}\n",
                    result.prompt,
                    cell(&result.test),
                    display_path(&result.path),
                    result.line,
                    result.model
                );
            }
        }
    }
}

/// Answers whose word diff the report shows.
const MAX_ANSWER_DIFFS: usize = 50;
/// Characters of one answer diff shown.
const MAX_ANSWER_DIFF_CHARS: usize = 4_000;

/// The comparison with the base: counts, a row per case that moved, and the word diffs of
/// the answers that changed, folded.
fn baseline_section(out: &mut String, comparison: &super::baseline::Comparison) {
    use super::baseline::Movement;
    let counts = comparison.counts;
    let _ = writeln!(out, "### Compared with the base\n");
    let _ = writeln!(
        out,
        "{} {} (base `{}`, tolerance {}).\n",
        if counts.regressions == 0 {
            "✅"
        } else {
            "❌"
        },
        counts.describe(),
        comparison.base.get(..12).unwrap_or(&comparison.base),
        comparison.tolerance
    );
    let moved: Vec<_> = comparison
        .cases
        .iter()
        .filter(|c| c.movement != Movement::Unchanged)
        .collect();
    if !moved.is_empty() {
        moved_table(out, &moved);
    }
    answer_diffs(out, comparison);
}

/// A row per case that moved (at most [`MAX_TABLE_ROWS`]): both scores, the delta, why.
fn moved_table(out: &mut String, moved: &[&super::baseline::CaseDelta]) {
    use super::baseline::{Movement, signed};
    let _ = writeln!(
        out,
        "| | prompt | test | base | head | Δ | why |\n| --- | --- | --- | --- | --- | --- | --- |"
    );
    let score = |s: Option<f64>| s.map_or_else(|| "—".to_owned(), |s| format!("{s:.2}"));
    for case in moved.iter().take(MAX_TABLE_ROWS) {
        let mark = match case.movement {
            Movement::Regression => "❌ regression",
            Movement::Improvement => "✅ improvement",
            Movement::Unjudged => "⚠️ no verdict",
            Movement::New => "🆕 new",
            Movement::Removed => "➖ removed",
            Movement::Unchanged => "",
        };
        let side_score = |side: &Option<super::baseline::Side>| side.as_ref().and_then(|s| s.score);
        let (base_score, head_score) = (side_score(&case.base), side_score(&case.head));
        let delta = match (base_score, head_score) {
            (Some(b), Some(h)) => signed(h - b),
            _ => "—".to_owned(),
        };
        let _ = writeln!(
            out,
            "| {mark} | `{}` | {} | {} | {} | {delta} | {} |",
            cell(&case.prompt.to_string()),
            cell(&case.test),
            score(base_score),
            score(head_score),
            cell(&case.reason)
        );
    }
    if moved.len() > MAX_TABLE_ROWS {
        let _ = writeln!(
            out,
            "\n{} more are not listed (the JSON and HTML reports have every case).",
            moved.len() - MAX_TABLE_ROWS
        );
    }
    out.push('\n');
}

/// The word diffs of the changed answers (at most [`MAX_ANSWER_DIFFS`]), those that moved
/// first (the cases are in that order), folded.
fn answer_diffs(out: &mut String, comparison: &super::baseline::Comparison) {
    for case in comparison
        .cases
        .iter()
        .filter(|c| c.diff.is_some())
        .take(MAX_ANSWER_DIFFS)
    {
        let Some(diff) = &case.diff else { continue };
        let mut html = super::html::diff_html(diff);
        if html.chars().count() > MAX_ANSWER_DIFF_CHARS {
            html = "(the diff is too long for this report; the HTML report has it)".to_owned();
        }
        let _ = writeln!(
            out,
            "<details><summary>answer diff: <code>{}</code> › {}</summary>\n\n<pre>{html}</pre>\n\n</details>\n",
            escape(&case.prompt.to_string()),
            escape(&case.test)
        );
    }
}

/// Each changed prompt's rendered messages before and after, folded.
fn rendered_section(changed: &[ChangedEntry]) -> String {
    let mut out = String::new();
    let with_renders: Vec<&ChangedEntry> =
        changed.iter().filter(|e| !e.renders.is_empty()).collect();
    if with_renders.is_empty() {
        return out;
    }
    let _ = writeln!(out, "### Rendered messages\n");
    for entry in with_renders {
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code> ({})</summary>\n",
            escape(&entry.id.to_string()),
            escape(&entry.path)
        );
        for render in &entry.renders {
            let _ = writeln!(out, "**{}**\n", cell(&render.test));
            if render.diff.is_empty() {
                let _ = writeln!(out, "Rendered messages unchanged.\n");
            } else {
                let diff = cap_lines(&render.diff, MAX_DIFF_LINES);
                let fence = fence(&diff);
                let _ = writeln!(out, "{fence}diff\n{diff}{fence}\n");
            }
        }
        let _ = writeln!(out, "</details>\n");
    }
    out
}

/// The first `max` lines of `text`, and how many were left out.
fn cap_lines(text: &str, max: usize) -> String {
    let total = text.lines().count();
    if total <= max {
        return text.to_owned();
    }
    let mut out: String = text.lines().take(max).map(|l| format!("{l}\n")).collect();
    out.push_str(&format!("… {} more lines\n", total - max));
    out
}

/// The Markdown report of `promptctl check`: counts, then every finding.
pub fn check_markdown(prompts: usize, diagnostics: &[Diagnostic], ok: bool) -> String {
    let errors = diagnostics
        .iter()
        .filter(|d| d.severity == Severity::Error)
        .count();
    let mut out = format!(
        "## {} promptctl check\n\n**{prompts} prompt{}: {errors} error{}, {} warning{}**\n\n",
        if ok { "✅" } else { "❌" },
        if prompts == 1 { "" } else { "s" },
        if errors == 1 { "" } else { "s" },
        diagnostics.len() - errors,
        if diagnostics.len() - errors == 1 {
            ""
        } else {
            "s"
        },
    );
    if !diagnostics.is_empty() {
        out.push_str("| | where | code | message |\n| --- | --- | --- | --- |\n");
        let mut sorted: Vec<&Diagnostic> = diagnostics.iter().collect();
        sorted.sort_by(|a, b| {
            (b.severity, &a.path, a.position).cmp(&(a.severity, &b.path, b.position))
        });
        for d in sorted {
            let _ = writeln!(
                out,
                "| {} | `{}` | {} | {} |",
                if d.severity == Severity::Error {
                    "❌"
                } else {
                    "⚠️"
                },
                cell(&d.location()),
                d.code,
                cell(&d.message)
            );
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_escape_data_and_properties() {
        let annotation = Annotation {
            level: Level::Error,
            at: Some(AnnotationAt {
                file: "prompts/a,b.yaml".into(),
                line: 7,
                column: None,
            }),
            title: "s/p › t: failed".into(),
            message: "100% wrong\nsecond line\r".into(),
        };
        assert_eq!(
            annotation.command(),
            "::error file=prompts/a%2Cb.yaml,line=7,title=s/p › t%3A failed::100%25 wrong%0Asecond line%0D"
        );
    }

    fn result(test: &str, status: CaseStatus) -> CaseResult {
        CaseResult {
            prompt: PromptId::new("s", "p"),
            test: test.to_owned(),
            path: "prompts/s/p.yaml".into(),
            line: 3,
            model: "echo".into(),
            status,
            error: None,
            output: Some("out".into()),
            latency_ms: None,
            usage: None,
            cost_usd: None,
            replayed: false,
            assertions: Vec::new(),
        }
    }

    #[test]
    fn large_runs_list_only_what_did_not_pass_and_diffs_are_capped() {
        let mut results: Vec<CaseResult> = (0..600)
            .map(|i| result(&format!("ok {i}"), CaseStatus::Passed))
            .collect();
        results.push(result("broken", CaseStatus::Failed));
        let summary = Summary::of(&results);
        let changed = [ChangedEntry {
            id: PromptId::new("s", "p"),
            path: "prompts/s/p.yaml".into(),
            version: Some(VersionChange::Next { from: 1, to: 2 }),
            reasons: vec![ChangeReason::Definition],
            renders: vec![RenderDiff {
                test: "t".into(),
                diff: (0..300).map(|i| format!("+line {i}\n")).collect(),
            }],
        }];
        let report = markdown_report(&ReportInput {
            selection: "every prompt with tests".into(),
            base: Some("`abc`".into()),
            changed: &changed,
            deleted: &[],
            unreadable: &[],
            results: &results,
            summary: &summary,
            coverage: None,
            shard: Some(Shard { index: 1, count: 2 }),
            baseline: None,
        });
        assert!(
            report.starts_with("## ❌ promptctl test (shard 1/2)"),
            "{report}"
        );
        assert!(
            report.contains("| `s/p` | v1 → v2 | definition |"),
            "{report}"
        );
        assert!(report.contains("| ❌ | `s/p` | broken |"), "{report}");
        assert!(!report.contains("| ✅ |"), "{report}");
        assert!(
            report.contains("600 passing tests are not listed"),
            "{report}"
        );
        assert!(report.contains("+line 199\n… 100 more lines\n"), "{report}");
    }

    #[test]
    fn failures_come_first_then_errors() {
        let mut error = result("error", CaseStatus::Error);
        error.line = 1;
        error.error = Some(crate::eval::CaseError {
            kind: CaseErrorKind::Provider,
            message: "down".into(),
            no_recording: false,
        });
        let mut failed = result("failed", CaseStatus::Failed);
        failed.line = 9;
        let annotations = test_annotations(&[error, result("ok", CaseStatus::Passed), failed]);
        let lines: Vec<Option<usize>> = annotations
            .iter()
            .map(|a| a.at.as_ref().map(|at| at.line))
            .collect();
        assert_eq!(lines, vec![Some(9), Some(1)]);
    }

    #[test]
    fn inert_text_sits_in_a_block_whose_token_it_cannot_know() {
        let text = "::error::forged\n  ::warning::indented";
        let first = inert(text);
        let lines: Vec<&str> = first.lines().collect();
        let token = lines[0]
            .strip_prefix("::stop-commands::")
            .expect("opens a block");
        assert_eq!(token.len(), 32);
        assert_eq!(lines[1..3], ["::error::forged", "  ::warning::indented"]);
        assert_eq!(lines[3], format!("::{token}::"));
        assert_ne!(inert(text), first, "every block has its own token");
        for runs in ["::x", "a\n  ::x", "a\r::x", "\t##[error]x", "\u{a0}::x"] {
            assert!(could_run(runs), "{runs:?}");
        }
        for inert_text in ["a::b", "a\n b ::x", "#[x]"] {
            assert!(!could_run(inert_text), "{inert_text:?}");
        }
    }

    #[test]
    fn fences_outgrow_backticks_in_the_text() {
        assert_eq!(fence("a ``` b"), "````");
        assert_eq!(fence("plain"), "```");
    }
}
