//! The self-contained HTML report of a test run (`promptctl test --html FILE`): one file,
//! no network and no external assets (inline CSS and a few lines of inline script), with
//! the matrix of test cases (rows) against the sides run (columns: the base with
//! `--baseline`, the head, the candidate model with `--model`). Each cell shows the
//! status as a colour, the score, latency and cost, the full answer (folded) and its word
//! diff against the row's first side. Filters: only failures, only changed, by prompt.

use std::collections::BTreeSet;
use std::fmt::Write as _;

use super::baseline::{self, Comparison, DiffBudget, DiffOp, DiffPart, Movement, MovementCounts};
use super::report::Summary;
use super::{CaseResult, CaseStatus};
use crate::repo::PromptId;

/// The longest answer shown in full in a cell; a longer one is cut there, with a note.
pub const MAX_OUTPUT_CHARS: usize = 64 * 1024;
/// The most rows the matrix lists; beyond it only the rows that failed or changed.
pub const MAX_ROWS: usize = 5_000;
/// Once the document is this large, answers are cut at [`SHORT_OUTPUT_CHARS`] and no more
/// diffs are made, so a run of many long answers still makes a page a browser opens.
pub const MAX_DOCUMENT_BYTES: usize = 32 * 1024 * 1024;
/// The answer shown in a cell once the document is at [`MAX_DOCUMENT_BYTES`].
const SHORT_OUTPUT_CHARS: usize = 1_000;

/// Everything the HTML report shows.
#[derive(Debug, Clone)]
pub struct HtmlInput<'a> {
    /// What was selected, for people.
    pub selection: String,
    /// The head's counts.
    pub summary: &'a Summary,
    /// Wall time of the run in seconds.
    pub seconds: f64,
    /// The head's results, in run order.
    pub head: &'a [CaseResult],
    /// The comparison with the base, with `--baseline`.
    pub comparison: Option<&'a Comparison>,
    /// The candidate model and its results (same cases as the head, same order).
    pub candidate: Option<(&'a str, &'a [CaseResult])>,
}

/// One row of the matrix: a test case and its result on each side.
struct Row<'a> {
    prompt: &'a PromptId,
    test: &'a str,
    movement: Option<Movement>,
    reason: &'a str,
    cells: Vec<Option<&'a CaseResult>>,
    /// The word diff of the base's answer against the head's, made by the comparison.
    head_diff: Option<&'a [DiffPart]>,
}

impl Row<'_> {
    fn failed(&self) -> bool {
        self.cells
            .iter()
            .flatten()
            .any(|r| r.status != CaseStatus::Passed)
    }

    /// Whether the row moved, or an answer differs between its sides.
    fn changed(&self) -> bool {
        let moved = self
            .movement
            .is_some_and(|m| !matches!(m, Movement::Unchanged));
        let outputs: BTreeSet<Option<&str>> = self
            .cells
            .iter()
            .flatten()
            .map(|r| r.output.as_deref())
            .collect();
        moved || outputs.len() > 1
    }
}

/// The columns and rows of the matrix.
fn matrix<'a>(input: &HtmlInput<'a>) -> (Vec<String>, Vec<Row<'a>>) {
    let mut columns = Vec::new();
    if input.comparison.is_some() {
        columns.push("base".to_owned());
    }
    columns.push("head".to_owned());
    if let Some((model, _)) = input.candidate {
        columns.push(format!("candidate: {model}"));
    }
    // Each head result's delta, by its place among the head's results.
    let mut deltas: Vec<Option<&'a baseline::CaseDelta>> = vec![None; input.head.len()];
    for delta in input.comparison.iter().flat_map(|c| &c.cases) {
        if let Some(slot) = delta.head_index.and_then(|i| deltas.get_mut(i)) {
            *slot = Some(delta);
        }
    }
    let mut rows: Vec<Row<'a>> = input
        .head
        .iter()
        .enumerate()
        .map(|(index, head)| {
            let delta = deltas[index];
            let mut cells = Vec::new();
            if input.comparison.is_some() {
                cells.push(delta.and_then(|d| d.base.as_ref()).map(|s| &s.result));
            }
            cells.push(Some(head));
            if let Some((_, candidate)) = input.candidate {
                cells.push(candidate.get(index));
            }
            Row {
                prompt: &head.prompt,
                test: &head.test,
                movement: delta.map(|d| d.movement),
                reason: delta.map_or("", |d| d.reason.as_str()),
                cells,
                head_diff: delta.and_then(|d| d.diff.as_deref()),
            }
        })
        .collect();
    if let Some(comparison) = input.comparison {
        rows.extend(comparison.with(Movement::Removed).map(|d| Row {
            prompt: &d.prompt,
            test: &d.test,
            movement: Some(Movement::Removed),
            reason: &d.reason,
            cells: vec![None; columns.len()],
            head_diff: None,
        }));
    }
    (columns, rows)
}

/// Escapes text for HTML content and attribute values (the crate's one HTML escaper).
pub use crate::escape::html as escape;

const STYLE: &str = "body{font:14px system-ui,sans-serif;margin:1.5em;color:#1f2328}\
h1{font-size:1.4em}table{border-collapse:collapse;width:100%}\
th,td{border:1px solid #d0d7de;padding:.4em;vertical-align:top;text-align:left}\
td.passed{background:#dafbe1}td.failed{background:#ffebe9}td.error{background:#fff8c5}\
td.none{background:#f6f8fa;color:#57606a}.meta{color:#57606a;font-size:.9em}\
pre{white-space:pre-wrap;word-break:break-word;margin:.3em 0;max-height:30em;overflow:auto}\
del{background:#ffcecb;text-decoration:line-through}ins{background:#aceebb;text-decoration:none}\
.regression{color:#cf222e;font-weight:600}.improvement{color:#1a7f37;font-weight:600}\
.summary span{margin-right:1.2em}.filters{margin:1em 0}.filters label{margin-right:1em}";

const SCRIPT: &str = "function promptctlFilter(){\
var f=document.getElementById('only-failures').checked,\
c=document.getElementById('only-changed').checked,\
p=document.getElementById('prompt-filter').value;\
document.querySelectorAll('#matrix tbody tr').forEach(function(r){\
r.hidden=(f&&r.dataset.failed!=='1')||(c&&r.dataset.changed!=='1')||(p!==''&&r.dataset.prompt!==p);});}";

/// The report as one HTML document.
pub fn html_report(input: &HtmlInput<'_>) -> String {
    let (columns, rows) = matrix(input);
    let mut out = String::with_capacity(16 * 1024);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <meta name=\"viewport\" content=\"width=device-width\">\
         <title>promptctl test report</title><style>{STYLE}</style>\
         <script>{SCRIPT}</script></head><body>\n"
    );
    summary_section(&mut out, input, &rows);
    filters(&mut out, &rows);
    let _ = write!(out, "<table id=\"matrix\"><thead><tr><th>test</th>");
    for column in &columns {
        let _ = write!(out, "<th>{}</th>", escape(column));
    }
    out.push_str("</tr></thead><tbody>\n");
    let many = rows.len() > MAX_ROWS;
    let mut budget = DiffBudget::new();
    let mut left_out = 0usize;
    for row in &rows {
        if many && !row.failed() && !row.changed() {
            left_out += 1;
            continue;
        }
        row_html(&mut out, row, &mut budget);
    }
    out.push_str("</tbody></table>\n");
    if left_out > 0 {
        let _ = writeln!(
            out,
            "<p class=\"meta\">{left_out} unchanged passing rows are not listed (over {MAX_ROWS} rows).</p>"
        );
    }
    out.push_str("</body></html>\n");
    out
}

/// The heading and counts: the head's, the comparison's, the cost of every side's calls.
fn summary_section(out: &mut String, input: &HtmlInput<'_>, rows: &[Row<'_>]) {
    let summary = input.summary;
    let ok = summary.failed == 0 && summary.errors == 0;
    let cost = rows
        .iter()
        .flat_map(|r| r.cells.iter().flatten())
        .filter_map(|r| r.cost_usd)
        .fold(0.0, |sum, cost| sum + cost);
    let _ = write!(
        out,
        "<h1>{} promptctl test</h1><p>{}</p><p class=\"summary\" id=\"summary\">\
         <span>{}</span><span>cost of the run: ${cost:.4}</span><span>{:.2} s</span>",
        if ok { "✅" } else { "❌" },
        escape(&input.selection),
        escape(&summary.counts()),
        input.seconds
    );
    if let Some(comparison) = input.comparison {
        let counts = comparison.counts;
        let _ = write!(
            out,
            "<span class=\"regression\">{}</span><span class=\"improvement\">{}</span>\
             <span>{}</span><span class=\"meta\">base <code>{}</code>, tolerance {}</span>",
            MovementCounts::count(counts.regressions, "regression"),
            MovementCounts::count(counts.improvements, "improvement"),
            counts.rest(),
            escape(&comparison.base),
            comparison.tolerance
        );
    }
    out.push_str("</p>\n");
}

/// The filter controls: only failures, only changed, one prompt.
fn filters(out: &mut String, rows: &[Row<'_>]) {
    let prompts: BTreeSet<String> = rows.iter().map(|r| r.prompt.to_string()).collect();
    out.push_str(
        "<div class=\"filters\">\
         <label><input type=\"checkbox\" id=\"only-failures\" onchange=\"promptctlFilter()\"> only failures</label>\
         <label><input type=\"checkbox\" id=\"only-changed\" onchange=\"promptctlFilter()\"> only changed</label>\
         <label>prompt <select id=\"prompt-filter\" onchange=\"promptctlFilter()\"><option value=\"\">all</option>",
    );
    for prompt in prompts {
        let prompt = escape(&prompt);
        let _ = write!(out, "<option value=\"{prompt}\">{prompt}</option>");
    }
    out.push_str("</select></label></div>\n");
}

/// One row: the test's label and movement, then a cell per side.
fn row_html(out: &mut String, row: &Row<'_>, budget: &mut DiffBudget) {
    let prompt = escape(&row.prompt.to_string());
    let _ = write!(
        out,
        "<tr data-prompt=\"{prompt}\" data-failed=\"{}\" data-changed=\"{}\"><td><code>{prompt}</code> › {}",
        u8::from(row.failed()),
        u8::from(row.changed()),
        escape(row.test)
    );
    if let Some(movement) = row.movement {
        let name = serde_json::to_value(movement)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .unwrap_or_default();
        let _ = write!(
            out,
            "<div class=\"{name}\">{}</div><div class=\"meta\">{}</div>",
            escape(&name.replace('_', " ")),
            escape(row.reason)
        );
    }
    out.push_str("</td>");
    let first = row.cells.iter().flatten().next().copied();
    for (index, cell) in row.cells.iter().enumerate() {
        let against = if index == 0 { None } else { first };
        // The head's cell (second with a base) shows the comparison's diff.
        let diff = (index == 1).then_some(row.head_diff).flatten();
        let diff = Diff { made: diff, budget };
        cell_html(out, *cell, against, diff);
    }
    out.push_str("</tr>\n");
}

/// One side's cell: status colour, score, latency, cost, the answer (folded) and its diff
/// against `against` (the row's first side): `made` when the comparison made it.
fn cell_html(
    out: &mut String,
    result: Option<&CaseResult>,
    against: Option<&CaseResult>,
    made: Diff<'_>,
) {
    let Some(result) = result else {
        out.push_str("<td class=\"none\">not run</td>");
        return;
    };
    let class = match result.status {
        CaseStatus::Passed => "passed",
        CaseStatus::Failed => "failed",
        CaseStatus::Error => "error",
    };
    let mut facts = vec![class.to_owned()];
    if let Some(score) = baseline::case_score(result) {
        facts.push(format!("score {score:.2}"));
    }
    if let Some(ms) = result.latency_ms {
        facts.push(format!("{ms:.0} ms"));
    }
    if let Some(cost) = result.cost_usd {
        facts.push(format!("${cost:.5}"));
    }
    if result.replayed {
        facts.push("replayed".to_owned());
    }
    let _ = write!(
        out,
        "<td class=\"{class}\"><div><b>{}</b> <span class=\"meta\">{}</span></div>",
        escape(&facts[0]),
        escape(&facts[1..].join(" · "))
    );
    if let Some(error) = &result.error {
        let _ = write!(out, "<pre>{}</pre>", escape(&error.message));
    }
    for assertion in result.assertions.iter().filter(|a| !a.outcome.passed) {
        let _ = write!(
            out,
            "<div class=\"meta\">✗ {} (line {}): {}</div>",
            escape(&assertion.outcome.kind),
            assertion.line,
            escape(&assertion.outcome.detail)
        );
    }
    if let Some(output) = &result.output {
        answer_html(out, output, against.and_then(|a| a.output.as_deref()), made);
    }
    out.push_str("</td>");
}

/// An answer, folded, and its diff against `old`; shorter once the document is large.
fn answer_html(out: &mut String, output: &str, old: Option<&str>, made: Diff<'_>) {
    let roomy = out.len() < MAX_DOCUMENT_BYTES;
    let limit = if roomy {
        MAX_OUTPUT_CHARS
    } else {
        SHORT_OUTPUT_CHARS
    };
    let (shown, cut) = match output.char_indices().nth(limit) {
        Some((at, _)) => (&output[..at], true),
        None => (output, false),
    };
    let _ = write!(
        out,
        "<details class=\"output\"><summary>answer ({} characters)</summary><pre>{}{}</pre></details>",
        output.chars().count(),
        escape(shown),
        if cut { "\n… cut here" } else { "" }
    );
    let Some(old) = old.filter(|old| *old != output) else {
        return;
    };
    let diff = match made {
        _ if !roomy => return,
        Diff {
            made: Some(parts), ..
        } => diff_html(parts),
        Diff { made: None, budget } => match budget.diff(old, output) {
            Some(parts) => diff_html(&parts),
            None => return,
        },
    };
    let _ = write!(
        out,
        "<details class=\"diff\" open><summary>diff against the first column</summary><pre>{diff}</pre></details>"
    );
}

/// A cell's word diff: the one the comparison made, else one made now from `budget`.
struct Diff<'a> {
    made: Option<&'a [DiffPart]>,
    budget: &'a mut DiffBudget,
}

/// A word diff as HTML: deletions in `<del>`, insertions in `<ins>`.
pub fn diff_html(parts: &[DiffPart]) -> String {
    let mut out = String::new();
    for part in parts {
        let text = escape(&part.text);
        match part.op {
            DiffOp::Equal => out.push_str(&text),
            DiffOp::Delete => {
                let _ = write!(out, "<del>{text}</del>");
            }
            DiffOp::Insert => {
                let _ = write!(out, "<ins>{text}</ins>");
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_leaves_no_markup_and_shows_control_characters() {
        assert_eq!(
            escape("<script>a&b\"'\u{1b}</script>"),
            "&lt;script&gt;a&amp;b&quot;&#39;\\u{1b}&lt;/script&gt;"
        );
    }

    #[test]
    fn a_report_without_results_is_a_whole_document() {
        let summary = Summary::default();
        let html = html_report(&HtmlInput {
            selection: "every prompt".to_owned(),
            summary: &summary,
            seconds: 0.0,
            head: &[],
            comparison: None,
            candidate: None,
        });
        assert!(html.starts_with("<!DOCTYPE html>"));
        assert!(html.ends_with("</body></html>\n"));
        assert!(!html.contains("http://") && !html.contains("https://"));
    }
}
