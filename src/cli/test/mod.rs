//! `promptctl test`: run prompts' test cases against their models and judge the outputs;
//! with `--watch`, again after every save that affects them ([`watch`]).

mod watch;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use clap::Args;

use super::output::Format;
use super::{CliError, Context, ci, exit, find_prompt};
use crate::eval::baseline::{self, Comparison};
use crate::eval::report::{self, Columns, Summary};
use crate::eval::selection::{Coverage, Shard};
use crate::eval::{
    CaseErrorKind, CaseResult, CaseStatus, Keep, Run, TestJob, github, jobs_for, run_each,
    run_tests,
};
use crate::providers::{Mode, Providers, Recordings};
use crate::render::Renderer;
use crate::repo::{LoadedPrompt, Snapshot};

/// Arguments of `promptctl test`.
#[derive(Debug, Args)]
pub struct TestArgs {
    /// Prompts to test (`name` or `service/name`); all prompts with tests when none.
    prompts: Vec<String>,
    /// Run every test against this candidate model instead of each prompt's own, and
    /// compare with the prompt's own model (the model-swap check).
    #[arg(long, value_name = "MODEL")]
    model: Option<String>,
    /// How many model calls run at once (default: `[test] concurrency`).
    #[arg(long, value_name = "N", value_parser = crate::config::parse_concurrency)]
    concurrency: Option<usize>,
    /// Call models live and write each answer to the recordings folder.
    #[arg(long, conflicts_with = "replay")]
    record: bool,
    /// Answer from recordings only; no network, no key needed.
    #[arg(long)]
    replay: bool,
    /// Write a JUnit XML report to FILE.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
    /// Run each prompt's tests against the version and model environment ENV runs.
    #[arg(long, value_name = "ENV")]
    env: Option<String>,
    /// With --env: run them against what the environment's canary runs (`canary:` inside
    /// it).
    #[arg(long, requires = "env")]
    canary: bool,
    /// Test only the prompts affected since the merge base with REF: definition or tests
    /// changed, new, or a partial they include (directly or not) changed.
    #[arg(long, value_name = "REF", conflicts_with = "prompts")]
    changed_since: Option<String>,
    /// Run only shard K of N (e.g. `2/3`): the selected tests split deterministically
    /// across N jobs, each test in exactly one.
    #[arg(long, value_name = "K/N")]
    shard: Option<Shard>,
    /// Write the Markdown report (changed prompts and their version change, rendered
    /// message diffs, results, coverage) to FILE.
    #[arg(long, value_name = "FILE")]
    report: Option<PathBuf>,
    /// Review by effect: test the prompts changed since the merge base with REF (named
    /// prompts narrow them), each on its head version and, when its definition differs,
    /// on its base version too; report regressions (pass → fail, or a score drop beyond
    /// `[test] regression_tolerance`), improvements, new and removed tests. Exit 1 on a
    /// regression.
    #[arg(long, value_name = "REF", conflicts_with_all = ["changed_since", "env", "shard"])]
    baseline: Option<String>,
    /// With `--baseline`: report regressions without failing the run for them.
    #[arg(long, requires = "baseline")]
    allow_regressions: bool,
    /// Write a self-contained HTML report to FILE: the matrix of test cases against the
    /// base, the head and the candidate model, with answers and their diffs.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// Run the selected tests, then watch the prompt files, partials and settings files
    /// and re-run the tests each save affects, printing only what changed: flips, score
    /// changes, new answers. Replays recordings unless `--live` or `--record`.
    #[arg(long, conflicts_with_all = [
        "changed_since", "baseline", "shard", "junit", "report", "html", "model", "env", "comment",
    ])]
    watch: bool,
    /// With `--watch`: call the models live instead of replaying recordings.
    #[arg(long, requires = "watch", conflicts_with_all = ["replay", "record"])]
    live: bool,
    #[command(flatten)]
    github: ci::GithubArgs,
}

impl TestArgs {
    /// Whether GitHub Actions annotations are on (`--github`, or `GITHUB_ACTIONS=true`).
    pub fn github_enabled(&self) -> bool {
        self.github.enabled()
    }
}

/// The results of a run: the prompts' own models (every one, or only the cases that did
/// not pass when their table was printed during the run), the candidate's, and the wall
/// time.
struct Outcome {
    own: Vec<CaseResult>,
    own_summary: Summary,
    streamed: bool,
    candidate: Option<Vec<CaseResult>>,
    comparison: Option<Comparison>,
    seconds: f64,
}

/// The results of the sides run beside the prompts' own: the candidate model's and the
/// base's.
struct Sides {
    candidate: Option<Vec<CaseResult>>,
    base: Option<Vec<CaseResult>>,
}

/// Where the prompts' own results go as they arrive, in job order.
enum Own<'a> {
    /// Kept, every one: the JSON report, JUnit, the CI report and a candidate's comparison
    /// need them all.
    Kept(Vec<CaseResult>),
    /// Printed at once as rows of the table, keeping only the cases that did not pass, so
    /// a plain run's memory does not grow with its number of cases.
    Printed(Table<'a>),
}

impl Own<'_> {
    fn push(&mut self, result: CaseResult) {
        match self {
            Own::Kept(results) => results.push(result),
            Own::Printed(table) => table.push(result),
        }
    }

    fn finish(self, candidate: Option<Vec<CaseResult>>, seconds: f64) -> Outcome {
        let (own, own_summary, streamed) = match self {
            Own::Kept(results) => {
                let summary = Summary::of(&results);
                (results, summary, false)
            }
            Own::Printed(mut table) => {
                table.flush();
                (table.failures, table.summary, true)
            }
        };
        Outcome {
            own,
            own_summary,
            streamed,
            candidate,
            comparison: None,
            seconds,
        }
    }
}

/// The result table, printed as the results arrive: rows are written in chunks (above the
/// progress bar on a terminal), the cases that did not pass kept for their details.
struct Table<'a> {
    output: &'a super::output::Output,
    columns: Columns,
    color: bool,
    pending: String,
    written: Instant,
    progress: Option<indicatif::ProgressBar>,
    failures: Vec<CaseResult>,
    summary: Summary,
}

impl<'a> Table<'a> {
    /// Rows are written once this many bytes wait...
    const CHUNK_BYTES: usize = 64 * 1024;
    /// ...or once the oldest has waited this long.
    const CHUNK_AGE: std::time::Duration = std::time::Duration::from_millis(500);

    /// A table whose columns fit every job's row and every unloadable file's.
    fn new(output: &'a super::output::Output, jobs: &[TestJob<'_>], other: &[CaseResult]) -> Self {
        let mut columns = Columns::default();
        for job in jobs {
            columns.fit(
                &report::label(&job.suite.prompt, &job.name()),
                &job.suite.model,
            );
        }
        for result in other {
            columns.fit(&report::case_label(result), &result.model);
        }
        Table {
            output,
            columns,
            color: output.stdout_colored(),
            pending: String::new(),
            written: Instant::now(),
            progress: None,
            failures: Vec::new(),
            summary: Summary::default(),
        }
    }

    fn push(&mut self, result: CaseResult) {
        self.summary.add(&result);
        if self.pending.is_empty() {
            self.written = Instant::now();
        }
        self.pending
            .push_str(&report::result_row(&result, self.columns, self.color));
        if result.status != CaseStatus::Passed {
            self.failures.push(result);
        }
        if self.pending.len() >= Self::CHUNK_BYTES || self.written.elapsed() >= Self::CHUNK_AGE {
            self.flush();
        }
    }

    fn flush(&mut self) {
        if self.pending.is_empty() {
            return;
        }
        match &self.progress {
            Some(bar) => bar.suspend(|| self.output.data(&self.pending)),
            None => self.output.data(&self.pending),
        }
        self.pending.clear();
    }
}

/// What the run covers: the selection's base (with `--changed-since` or a report) and the
/// coverage gate (when no prompt is named).
struct Scope {
    base: Option<ci::Base>,
    coverage: Option<Coverage>,
    /// The reference the selection is measured from (`--changed-since` or `--baseline`).
    changed_since: Option<String>,
}

/// Runs `promptctl test`.
pub fn run(context: &Context, args: &TestArgs) -> Result<u8, CliError> {
    if args.watch {
        return watch::run(context, args);
    }
    // A test run is a batch job: the transparent huge pages the allocator asks for would
    // only grow its memory in 2 MiB steps (by half for a suite of 10,000 cases). Failing
    // to turn them off changes nothing else.
    #[cfg(any(target_os = "linux", target_os = "android"))]
    let _ = rustix::thread::disable_transparent_huge_pages(true);
    let config = context.config()?;
    let snapshot = context.snapshot(&config)?;
    let want_report = args.github.enabled() || args.report.is_some();
    let (scope, selected) = scope_of(args, &config, &snapshot, want_report)?;
    let output = &context.output;
    let keep_all = output.format == Format::Json || args.baseline.is_some() || args.html.is_some();
    let (jobs, base_plan) = plan_jobs(
        context, &config, &snapshot, args, &selected, &scope, keep_all,
    )?;
    // A file that cannot be loaded fails the run (exit 2) in every selection and shard:
    // its tests cannot run, and a run that skipped it would pass green.
    let unloadable = &snapshot.problems;
    if jobs.own.is_empty()
        && base_plan.as_ref().is_none_or(|p| p.removed.is_empty())
        && scope.coverage.is_none()
        && !want_report
        && args.junit.is_none()
        && unloadable.is_empty()
    {
        match &scope.changed_since {
            Some(reference) => output.note(&format!(
                "no tests to run: no prompt{} with tests changed since {reference}",
                if args.prompts.is_empty() {
                    ""
                } else {
                    " named"
                }
            )),
            None => output.note("no tests to run: add `tests:` to a prompt"),
        }
        return Ok(exit::SUCCESS);
    }
    if output.format == Format::Human {
        for problem in unloadable {
            output.diagnostic(problem);
        }
    }
    let unloadable_results: Vec<CaseResult> = unloadable
        .iter()
        .map(|problem| CaseResult::unloadable(problem, &snapshot.prompts_dir))
        .collect();
    let printed = output.format == Format::Human
        && !keep_all
        && args.model.is_none()
        && args.junit.is_none()
        && !want_report;
    let mut own = if printed {
        Own::Printed(Table::new(output, &jobs.own, &unloadable_results))
    } else {
        Own::Kept(Vec::with_capacity(jobs.own.len()))
    };
    check_outputs(context, args)?;
    let (sides, seconds) = execute(context, &config, args, jobs, &mut own)?;
    for result in unloadable_results {
        own.push(result);
    }
    let mut outcome = own.finish(sides.candidate, seconds);
    if let (Some(base_results), Some(plan), Some(base)) = (sides.base, base_plan, &scope.base) {
        let sides = baseline::Sides {
            base_commit: base.base.commit.clone(),
            base: base_results,
            same_definition: plan.same_definition,
            removed: plan.removed,
        };
        let tolerance = config.settings.test.regression_tolerance;
        outcome.comparison = Some(baseline::compare(&outcome.own, sides, tolerance));
    }
    let run = Finished {
        config: &config,
        snapshot: &snapshot,
        scope: &scope,
        outcome: &outcome,
    };
    report_run(context, args, &run, want_report)
}

/// The base of the run (with `--changed-since`, `--baseline` or a report), the prompts
/// selected, and the coverage gate (when no prompt is named).
fn scope_of<'s>(
    args: &TestArgs,
    config: &crate::config::Config,
    snapshot: &'s Snapshot,
    want_report: bool,
) -> Result<(Scope, Vec<&'s LoadedPrompt>), CliError> {
    let changed_since = args.changed_since.clone().or_else(|| args.baseline.clone());
    let base = ci::find_base(config, snapshot, changed_since.as_deref(), want_report)?;
    let mut selected = select_prompts(snapshot, &args.prompts)?;
    if let (Some(_), Some(base)) = (&changed_since, &base) {
        selected.retain(|p| p.id.as_ref().is_some_and(|id| base.changes.contains(id)));
    }
    // The coverage gate judges the whole tree, so it applies when no prompt is named.
    let coverage = args
        .prompts
        .is_empty()
        .then(|| Coverage::of(snapshot, config.settings.test.min_coverage));
    let scope = Scope {
        base,
        coverage,
        changed_since,
    };
    Ok((scope, selected))
}

/// The jobs of every side (the shard's share with `--shard`), and with `--baseline` the
/// plan of the base side.
fn plan_jobs<'s>(
    context: &Context,
    config: &crate::config::Config,
    snapshot: &'s Snapshot,
    args: &TestArgs,
    selected: &[&'s LoadedPrompt],
    scope: &Scope,
    keep_all: bool,
) -> Result<(Jobs<'s>, Option<baseline::BasePlan<'s>>), CliError> {
    let renderer = Arc::new(Renderer::new(snapshot.partials.clone()));
    let jobs = |model: Option<&str>| match &args.env {
        Some(env) => super::env::test_jobs(
            context,
            config,
            snapshot,
            selected,
            env,
            super::shared::side(args.canary),
            model,
        ),
        None => Ok(jobs_for(&config.settings, selected, &renderer, model)?),
    };
    let own_jobs = jobs(None)?;
    let candidate_jobs = match &args.model {
        Some(model) => Some(jobs(Some(model))?),
        None => None,
    };
    let (own, candidate) = ci::shard_jobs(args.shard, own_jobs, candidate_jobs);
    let mut plan = match (&args.baseline, &scope.base) {
        (Some(_), Some(base)) => Some(baseline::plan(
            &config.settings,
            selected,
            &base.snapshot,
            &base.changes,
            args.prompts.is_empty(),
        )?),
        _ => None,
    };
    let jobs = Jobs {
        own,
        candidate,
        base: plan.as_mut().map(|p| std::mem::take(&mut p.jobs)),
        keep_all,
    };
    Ok((jobs, plan))
}

/// A run that has ended: what the reports read.
struct Finished<'a> {
    config: &'a crate::config::Config,
    snapshot: &'a Snapshot,
    scope: &'a Scope,
    outcome: &'a Outcome,
}

/// Writes every report of a finished run (JUnit, the terminal or JSON, HTML, the CI
/// report) and returns its exit code.
fn report_run(
    context: &Context,
    args: &TestArgs,
    run: &Finished<'_>,
    want_report: bool,
) -> Result<u8, CliError> {
    let (outcome, scope, snapshot) = (run.outcome, run.scope, run.snapshot);
    let unloadable = &snapshot.problems;
    // With a candidate model, the verdict is the candidate's.
    let judged: &[CaseResult] = outcome.candidate.as_deref().unwrap_or(&outcome.own);
    let candidate_summary = outcome.candidate.as_deref().map(Summary::of);
    let summary = candidate_summary
        .clone()
        .unwrap_or_else(|| outcome.own_summary.clone());
    if let Some(path) = &args.junit {
        let all = outcome.own.iter().chain(outcome.candidate.iter().flatten());
        let xml = report::junit(all, "promptctl");
        crate::files::replace(&context.directory.join(path), xml.as_bytes())
            .map_err(|err| CliError::input(format!("cannot write {}: {err}", path.display())))?;
    }
    print_results(context, args, outcome, &summary, scope, unloadable);
    let base_summary = outcome.comparison.as_ref().map(Comparison::base_summary);
    let code = gate(
        context,
        exit_code(
            &outcome.own_summary,
            candidate_summary.as_ref(),
            base_summary.as_ref(),
        ),
        unloadable,
        scope.coverage.as_ref(),
    );
    let code = baseline_gate(
        context,
        args,
        outcome.comparison.as_ref(),
        base_summary,
        code,
    );
    if want_report {
        let report = Report {
            judged,
            summary: &summary,
            comparison: outcome.comparison.as_ref(),
        };
        write_ci_report(context, run.config, args, snapshot, &report, scope)?;
    }
    if let Some(path) = &args.html {
        let selection = selection_text(args, scope, snapshot).replace('`', "");
        write_html(context, args, outcome, selection, path)?;
    }
    Ok(code)
}

/// The jobs of a run: the prompts' own, the candidate model's, the base's.
struct Jobs<'a> {
    own: Vec<TestJob<'a>>,
    candidate: Option<Vec<TestJob<'a>>>,
    base: Option<Vec<TestJob<'a>>>,
    /// Whether passed cases keep their answers and assertion outcomes.
    keep_all: bool,
}

/// Runs the jobs (the candidate's and the base's alongside), with a progress bar on a
/// terminal: the prompts' own results go to `own` as they come, the other sides' are
/// returned with the wall time.
fn execute(
    context: &Context,
    config: &crate::config::Config,
    args: &TestArgs,
    jobs: Jobs<'_>,
    own: &mut Own<'_>,
) -> Result<(Sides, f64), CliError> {
    let mode = if args.replay {
        Mode::Replay
    } else if args.record {
        Mode::Record
    } else {
        Mode::Live
    };
    let providers = Providers::new(
        &config.settings,
        Recordings {
            mode,
            dir: config.root.join(&config.settings.test.recordings),
        },
    );
    let concurrency = context
        .settings(config)
        .concurrency(args.concurrency)
        .max(1);
    let side_len = |side: &Option<Vec<TestJob<'_>>>| side.as_ref().map_or(0, Vec::len);
    let total_calls = jobs.own.len() + side_len(&jobs.candidate) + side_len(&jobs.base);
    let progress = progress_bar(context, total_calls);
    if let Own::Printed(table) = own {
        table.progress = progress.clone();
    }
    let on_done = progress_callback(progress.clone());
    // Only the JSON, HTML and baseline reports show a passed case's answer and assertion
    // outcomes.
    let keep = if jobs.keep_all {
        Keep::Everything
    } else {
        Keep::Failures
    };
    let started = Instant::now();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| CliError::external(format!("cannot start the async runtime: {err}")))?;
    let run = Run {
        providers,
        concurrency,
        keep,
        on_done,
    };
    let sides = runtime.block_on(async {
        let mut sink = |result| own.push(result);
        let own = run_each(jobs.own, run.clone(), &mut sink);
        let ((), candidate, base) = tokio::join!(
            own,
            run_side(jobs.candidate, run.clone()),
            run_side(jobs.base, run.clone())
        );
        Sides { candidate, base }
    });
    if let Own::Printed(table) = own {
        table.flush();
        table.progress = None;
    }
    if let Some(bar) = &progress {
        bar.finish_and_clear();
    }
    Ok((sides, started.elapsed().as_secs_f64()))
}

/// The results of a side's jobs, when it has any.
async fn run_side(jobs: Option<Vec<TestJob<'_>>>, run: Run) -> Option<Vec<CaseResult>> {
    match jobs {
        Some(jobs) => Some(run_tests(jobs, run).await),
        None => None,
    }
}

/// Prints the results: JSON, or the table(s), the failures, the summary and coverage.
fn print_results(
    context: &Context,
    args: &TestArgs,
    outcome: &Outcome,
    summary: &Summary,
    scope: &Scope,
    unloadable: &[crate::diagnostic::Diagnostic],
) {
    let output = &context.output;
    let (own, candidate) = (&outcome.own, &outcome.candidate);
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "summary": summary,
            "seconds": outcome.seconds,
            "results": own,
            "candidate": candidate.as_ref().map(|c| serde_json::json!({
                "model": args.model,
                "results": c,
                "comparison": report::comparison(own, c),
            })),
            "coverage": scope.coverage,
            "unloadable": unloadable,
            "changes": scope.base.as_ref().map(|b| serde_json::json!({
                "base": b.base.commit,
                "changed": b.changes.changed,
                "deleted": b.changes.deleted,
                "unreadable": b.changes.unreadable,
            })),
            "shard": args.shard,
            "baseline": outcome.comparison,
        })),
        Format::Human => {
            let color = output.stdout_colored();
            let mut text = if outcome.streamed {
                String::new()
            } else {
                report::result_table(own, color)
            };
            if outcome.own_summary.total == 0 {
                output.note("no tests to run");
            }
            if let Some(candidate) = candidate {
                text.push_str(&format!(
                    "\ncandidate model {}:\n",
                    args.model.as_deref().unwrap_or_default()
                ));
                text.push_str(&report::result_table(candidate, color));
                text.push_str(&comparison_text(own, candidate));
            }
            if let Some(comparison) = &outcome.comparison {
                text.push_str(&report::baseline_text(comparison, color));
            }
            let all = own.iter().chain(candidate.iter().flatten());
            text.push_str(&report::failure_details(all, color));
            // The table printed during the run ended the same way.
            if !text.is_empty() || (outcome.streamed && outcome.own_summary.total > 0) {
                text.push('\n');
            }
            text.push_str(&report::summary_line(summary, outcome.seconds, color));
            if let Some(coverage) = &scope.coverage {
                text.push_str(&format!("\ncoverage: {}", coverage.describe()));
            }
            output.data(&text);
        }
    }
}

/// The exit code once the gates have spoken: files that could not be loaded and coverage
/// below the minimum are errors (the latter fails the run).
fn gate(
    context: &Context,
    code: u8,
    unloadable: &[crate::diagnostic::Diagnostic],
    coverage: Option<&Coverage>,
) -> u8 {
    let output = &context.output;
    if !unloadable.is_empty() {
        let one = unloadable.len() == 1;
        output.error(
            &format!(
                "{} file{} in the prompts folder could not be loaded, so {} tests did not run",
                unloadable.len(),
                if one { "" } else { "s" },
                if one { "its" } else { "their" }
            ),
            &["`promptctl check` shows every problem; fix or remove the file".to_owned()],
        );
    }
    match coverage.filter(|c| !c.passes()) {
        Some(coverage) => {
            output.error(
                &format!(
                    "test coverage is below the minimum: {}",
                    coverage.describe()
                ),
                &[
                    format!("untested: {}", coverage.untested.join(", ")),
                    "add `tests:` to them, or lower `[test] min_coverage` in promptctl.toml"
                        .to_owned(),
                ],
            );
            code.max(exit::FAILED)
        }
        None => code,
    }
}

/// What the reports say of a run: the results judged (the candidate's with `--model`),
/// their counts, the comparison with the base.
struct Report<'a> {
    judged: &'a [CaseResult],
    summary: &'a Summary,
    comparison: Option<&'a Comparison>,
}

/// The GitHub annotations (with `--github`) and the Markdown report.
fn write_ci_report(
    context: &Context,
    config: &crate::config::Config,
    args: &TestArgs,
    snapshot: &Snapshot,
    report: &Report<'_>,
    scope: &Scope,
) -> Result<(), CliError> {
    let (judged, summary) = (report.judged, report.summary);
    let (base, coverage) = (&scope.base, &scope.coverage);
    if args.github.enabled() {
        // The files that could not be loaded are annotated from their diagnostics.
        let ran = judged.iter().filter(|r| {
            r.error
                .as_ref()
                .is_none_or(|e| e.kind != CaseErrorKind::Load)
        });
        let mut annotations = github::test_annotations(ran);
        annotations.extend(github::diagnostic_annotations(&snapshot.problems));
        annotations.extend(coverage.as_ref().and_then(github::coverage_annotation));
        if let Some(comparison) = report.comparison {
            annotations.extend(github::regression_annotations(
                comparison,
                args.allow_regressions,
            ));
        }
        ci::print_annotations(context, config, &annotations);
    }
    let changed = base
        .as_ref()
        .map(|b| ci::changed_entries(context, config, b, snapshot))
        .unwrap_or_default();
    let selection = selection_text(args, scope, snapshot);
    let markdown = github::markdown_report(&github::ReportInput {
        selection,
        base: base
            .as_ref()
            .map(|b| format!("`{}` ({})", super::short(&b.base.commit), b.base.how)),
        changed: &changed,
        deleted: base.as_ref().map_or(&[], |b| &b.changes.deleted),
        unreadable: base.as_ref().map_or(&[], |b| &b.changes.unreadable),
        results: judged,
        summary,
        coverage: coverage.as_ref(),
        shard: args.shard,
        baseline: report.comparison,
    });
    ci::write_report(
        context,
        &args.github,
        args.report.as_deref(),
        &markdown,
        args.shard,
    )
}

/// What the run selected, for people: `prompts changed since main (merge base `1a2b…`): 2
/// of 9`.
fn selection_text(args: &TestArgs, scope: &Scope, snapshot: &Snapshot) -> String {
    match (&scope.changed_since, &scope.base) {
        (Some(reference), Some(b)) => format!(
            "prompts changed since {reference} (merge base `{}`): {} of {}",
            super::short(&b.base.commit),
            b.changes.changed.len(),
            snapshot.prompts.len()
        ),
        _ if args.prompts.is_empty() => "every prompt with tests".to_owned(),
        _ => format!("prompts {}", args.prompts.join(", ")),
    }
}

/// Refuses, before any model is called, a report path that cannot be written: a folder,
/// or one whose folder does not exist.
fn check_outputs(context: &Context, args: &TestArgs) -> Result<(), CliError> {
    let outputs = [&args.junit, &args.report, &args.html];
    for path in outputs.into_iter().flatten() {
        let full = context.directory.join(path);
        let folder = full.parent().filter(|p| !p.as_os_str().is_empty());
        let why = if full.is_dir() {
            "it is a folder"
        } else if folder.is_some_and(|f| !f.is_dir()) {
            "its folder does not exist"
        } else {
            continue;
        };
        return Err(CliError::input(format!(
            "cannot write {}: {why}",
            path.display()
        )));
    }
    Ok(())
}

/// Writes the HTML report to `path`.
fn write_html(
    context: &Context,
    args: &TestArgs,
    outcome: &Outcome,
    selection: String,
    path: &std::path::Path,
) -> Result<(), CliError> {
    let html = crate::eval::html::html_report(&crate::eval::html::HtmlInput {
        selection,
        summary: &outcome.own_summary,
        seconds: outcome.seconds,
        head: &outcome.own,
        comparison: outcome.comparison.as_ref(),
        candidate: args.model.as_deref().zip(outcome.candidate.as_deref()),
    });
    let path = context.directory.join(path);
    crate::files::replace(&path, html.as_bytes())
        .map_err(|err| CliError::input(format!("cannot write {}: {err}", path.display())))
}

/// Fails the run (exit 1) on a regression against the base, unless
/// `--allow-regressions`; an exit code already worse stays. Says how many cases the base
/// could not judge (their errors count in `code` already).
fn baseline_gate(
    context: &Context,
    args: &TestArgs,
    comparison: Option<&Comparison>,
    base_summary: Option<Summary>,
    code: u8,
) -> u8 {
    if let Some(errors) = base_summary.map(|s| s.errors).filter(|n| *n > 0) {
        context.output.error(
            &format!("{errors} case(s) could not be judged at the base"),
            &["the comparison above names each with its reason".to_owned()],
        );
    }
    let regressions = comparison.map_or(0, |c| c.counts.regressions);
    if regressions == 0 {
        return code;
    }
    if args.allow_regressions {
        context.output.note(&format!(
            "{regressions} regression(s) against the base, allowed by --allow-regressions"
        ));
        return code;
    }
    context.output.error(
        &format!("{regressions} test(s) regressed against the base"),
        &["`--allow-regressions` reports them without failing the run".to_owned()],
    );
    code.max(exit::FAILED)
}

/// Exit 3 when a provider failed, 2 for input or configuration errors, 1 when a test
/// failed, else 0. The base's errors count like the head's (a side without an answer
/// leaves its cases without a verdict).
fn exit_code(own_summary: &Summary, candidate: Option<&Summary>, base: Option<&Summary>) -> u8 {
    let judged = candidate.unwrap_or(own_summary);
    let base = base.cloned().unwrap_or_default();
    let provider_errors =
        own_summary.provider_errors + judged.provider_errors + base.provider_errors;
    if provider_errors > 0 {
        exit::EXTERNAL
    } else if own_summary.input_errors + judged.input_errors + base.input_errors > 0 {
        exit::BAD_INPUT
    } else if judged.failed > 0 {
        exit::FAILED
    } else {
        exit::SUCCESS
    }
}

fn comparison_text(own: &[CaseResult], candidate: &[CaseResult]) -> String {
    let rows = report::comparison(own, candidate);
    let regressions: Vec<_> = rows
        .iter()
        .filter(|r| r.current == CaseStatus::Passed && r.candidate != CaseStatus::Passed)
        .collect();
    let fixes = rows
        .iter()
        .filter(|r| r.current != CaseStatus::Passed && r.candidate == CaseStatus::Passed)
        .count();
    let mut text = format!(
        "\ncomparison: {} test(s) pass on the current model and fail on the candidate, {fixes} fixed by it\n",
        regressions.len()
    );
    for row in regressions {
        text.push_str(&format!("  ✗ {} › {}\n", row.prompt, row.test));
    }
    text
}

/// Counts each result on the bar, and names one case at most every 50 ms: the bar is drawn
/// 20 times a second, and naming every case would take its lock and format a label for
/// each of thousands of fast cases.
fn progress_callback(
    progress: Option<indicatif::ProgressBar>,
) -> Arc<dyn Fn(&CaseResult) + Send + Sync> {
    let shown = Instant::now();
    let next_name_ms = AtomicU64::new(0);
    Arc::new(move |result: &CaseResult| {
        let Some(bar) = &progress else {
            return;
        };
        bar.inc(1);
        let now = u64::try_from(shown.elapsed().as_millis()).unwrap_or(u64::MAX);
        let due = next_name_ms.load(Ordering::Relaxed);
        if now >= due
            && next_name_ms
                .compare_exchange(due, now + 50, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok()
        {
            bar.set_message(report::case_label(result));
        }
    })
}

fn progress_bar(context: &Context, total: usize) -> Option<indicatif::ProgressBar> {
    if !context.output.stderr_is_terminal() || context.output.format == Format::Json {
        return None;
    }
    let bar = indicatif::ProgressBar::new(total as u64);
    if let Ok(style) =
        indicatif::ProgressStyle::with_template("{bar:30} {pos}/{len} {elapsed} {wide_msg}")
    {
        bar.set_style(style);
    }
    Some(bar)
}

/// The prompts named, or every prompt with tests.
fn select_prompts<'a>(
    snapshot: &'a Snapshot,
    names: &[String],
) -> Result<Vec<&'a LoadedPrompt>, CliError> {
    if names.is_empty() {
        return Ok(snapshot
            .prompts
            .iter()
            .filter(|p| p.file.tests.as_ref().is_some_and(|t| !t.value.is_empty()))
            .collect());
    }
    names
        .iter()
        .map(|name| find_prompt(snapshot, name))
        .collect()
}
