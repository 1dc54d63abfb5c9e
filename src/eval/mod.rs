//! Running test cases against models and judging the outputs.
//!
//! A [`TestJob`] is one test case of one prompt bound to a model; [`run_each`] renders,
//! calls the provider and judges every assertion, many jobs at once, and hands over one
//! [`CaseResult`] per job in job order as the jobs end ([`run_tests`] collects them). A
//! failure of the provider is an error of the case, never a pass or a fail. Reports
//! (table, JSON, JUnit) live in `report`.
//!
//! Large suites stay lean: a job borrows its test case from the loaded prompt until it
//! starts, only `concurrency` jobs are alive at once, a passed case can drop its output
//! and assertion details ([`Keep`]), and a caller that prints results as they come keeps
//! nothing else.

pub mod assertions;
pub mod baseline;
pub mod github;
pub mod html;
pub mod pr_comment;
pub mod report;
pub mod rerun;
pub mod selection;

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::providers::{ProviderError, Providers, Usage};
use crate::render::Renderer;
use crate::repo::file::Located;
use crate::repo::{Definition, PromptId, TestCase};
use assertions::{AssertionOutcome, CallFacts};

/// A prompt that cannot be tested: it lacks a service, `model`, or `template` or
/// `messages`.
#[derive(Debug, thiserror::Error)]
#[error("{} is incomplete: it needs a service, `model` and `template` or `messages`", crate::diagnostic::display_path(.path))]
pub struct Incomplete {
    /// The prompt's file.
    pub path: PathBuf,
}

/// One job per test case of each of `prompts`, on `model` or the prompt's own model,
/// rendered by `renderer`; `llm_judge` grades with `[test] judge_model`, else the
/// prompt's model. The jobs borrow the test cases from the prompts.
pub fn jobs_for<'a>(
    settings: &crate::config::Settings,
    prompts: &[&'a crate::repo::LoadedPrompt],
    renderer: &Arc<Renderer>,
    model: Option<&str>,
) -> Result<Vec<TestJob<'a>>, Incomplete> {
    let cases = prompts
        .iter()
        .flat_map(|p| &p.file.tests)
        .map(|t| t.value.len());
    let mut jobs = Vec::with_capacity(cases.sum());
    for prompt in prompts {
        let Some(definition) = &prompt.definition else {
            return Err(Incomplete {
                path: prompt.path.clone(),
            });
        };
        let definition = Arc::new(definition.clone());
        jobs.extend(prompt_jobs(settings, prompt, definition, renderer, model)?);
    }
    Ok(jobs)
}

/// One job per test case of `prompt`, rendering `definition` (the prompt's own, or the one
/// an environment pins) with `renderer`, on `model` or the definition's model.
pub fn prompt_jobs<'a>(
    settings: &crate::config::Settings,
    prompt: &'a crate::repo::LoadedPrompt,
    definition: Arc<Definition>,
    renderer: &Arc<Renderer>,
    model: Option<&str>,
) -> Result<Vec<TestJob<'a>>, Incomplete> {
    let Some(id) = &prompt.id else {
        return Err(Incomplete {
            path: prompt.path.clone(),
        });
    };
    let suite = Arc::new(Suite {
        prompt: id.clone(),
        path: prompt.path.clone(),
        model: model.unwrap_or(&definition.model).to_owned(),
        judge_model: settings
            .test
            .judge_model
            .clone()
            .unwrap_or_else(|| definition.model.clone()),
        definition,
        renderer: renderer.clone(),
    });
    Ok(prompt
        .file
        .tests
        .iter()
        .flat_map(|t| t.value.iter())
        .map(|test| TestJob {
            suite: suite.clone(),
            test,
        })
        .collect())
}

/// What the test cases of one prompt share when they run on one model.
#[derive(Debug)]
pub struct Suite {
    /// The prompt.
    pub prompt: PromptId,
    /// The prompt file, relative to the project root.
    pub path: PathBuf,
    /// The model to call.
    pub model: String,
    /// What to render.
    pub definition: Arc<Definition>,
    /// The renderer holding the partials of the definition's tree.
    pub renderer: Arc<Renderer>,
    /// The grader model for `llm_judge` assertions without their own `model`.
    pub judge_model: String,
}

/// One test case of one prompt, bound to the model it runs on. The test case is borrowed
/// from the loaded prompt until the job runs, so a suite of many thousand cases is not
/// copied before it starts.
#[derive(Debug, Clone)]
pub struct TestJob<'a> {
    /// The prompt, model and definition.
    pub suite: Arc<Suite>,
    /// The test case: variables and assertions, where it is in the file.
    pub test: &'a Located<TestCase>,
}

impl TestJob<'_> {
    /// The test's line in the file.
    pub fn line(&self) -> usize {
        self.test.referenced.line() as usize
    }

    /// The test's name, or where it is when it has none.
    pub fn name(&self) -> Cow<'_, str> {
        test_name(&self.test.value, self.line())
    }

    /// The job with its own copy of the test case, to run on another task.
    fn case(&self) -> Case {
        Case {
            suite: self.suite.clone(),
            line: self.line(),
            test: self.test.value.clone(),
        }
    }
}

/// A job as it runs on its own task, with its own copy of the test case.
struct Case {
    suite: Arc<Suite>,
    line: usize,
    test: TestCase,
}

/// A test's name, or where it is (`line`) when it has none.
fn test_name(test: &TestCase, line: usize) -> Cow<'_, str> {
    match &test.name {
        Some(name) => Cow::Borrowed(name),
        None => Cow::Owned(format!("test at line {line}")),
    }
}

/// How a case ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum CaseStatus {
    /// Every assertion passed.
    Passed,
    /// Some assertion failed.
    Failed,
    /// The case could not be judged: the prompt did not render or the provider failed.
    Error,
}

/// Why a case could not be judged.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CaseErrorKind {
    /// The prompt did not render with the test's variables (bad input).
    Render,
    /// The configuration is missing something (a key, a provider, a recording).
    Configuration,
    /// The provider failed after its retries.
    Provider,
    /// A prompt file or partial could not be loaded, so its tests could not run at all.
    Load,
}

/// An error of a case.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CaseError {
    /// What kind.
    pub kind: CaseErrorKind,
    /// The message.
    pub message: String,
    /// Whether replaying found no recording of the request.
    #[serde(skip)]
    pub no_recording: bool,
}

/// One assertion's outcome with its line in the file.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LocatedOutcome {
    /// The assertion's line.
    pub line: usize,
    /// The outcome.
    #[serde(flatten)]
    pub outcome: AssertionOutcome,
}

/// The result of one test case.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct CaseResult {
    /// The prompt.
    pub prompt: PromptId,
    /// The test's name.
    pub test: String,
    /// The prompt file.
    pub path: PathBuf,
    /// The test's line.
    pub line: usize,
    /// The model called.
    pub model: String,
    /// Passed, failed or error.
    pub status: CaseStatus,
    /// Why it could not be judged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<CaseError>,
    /// The model's output.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub output: Option<String>,
    /// Wall time of the call in milliseconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    /// Token usage.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub usage: Option<Usage>,
    /// Price in US dollars.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cost_usd: Option<f64>,
    /// Whether the answer came from a recording.
    pub replayed: bool,
    /// Each assertion's outcome.
    pub assertions: Vec<LocatedOutcome>,
}

impl CaseResult {
    fn new(case: &Case) -> CaseResult {
        CaseResult::unrun(
            case.suite.prompt.clone(),
            test_name(&case.test, case.line).into_owned(),
            case.suite.path.clone(),
            case.line,
            case.suite.model.clone(),
        )
    }

    /// The result as `keep` wants it kept: a passed case without its output and
    /// assertion outcomes when only failures are shown in full.
    fn kept(mut self, keep: Keep) -> CaseResult {
        if keep == Keep::Failures && self.status == CaseStatus::Passed {
            self.output = None;
            self.assertions = Vec::new();
        }
        self
    }

    /// A case not run yet: an error until it has an outcome.
    fn unrun(
        prompt: PromptId,
        test: String,
        path: PathBuf,
        line: usize,
        model: String,
    ) -> CaseResult {
        CaseResult {
            prompt,
            test,
            path,
            line,
            model,
            status: CaseStatus::Error,
            error: None,
            output: None,
            latency_ms: None,
            usage: None,
            cost_usd: None,
            replayed: false,
            assertions: Vec::new(),
        }
    }

    /// The case standing for a file of the prompts folder that could not be loaded (too
    /// large, not UTF-8, not YAML, not a file...): an error of kind
    /// [`CaseErrorKind::Load`] at the problem's line, so every report counts and shows it.
    /// `prompts_dir` (relative to the project root) gives the file its identity.
    pub fn unloadable(problem: &crate::diagnostic::Diagnostic, prompts_dir: &Path) -> CaseResult {
        let relative = problem
            .path
            .strip_prefix(prompts_dir)
            .unwrap_or(&problem.path);
        let prompt = PromptId::from_parts(None, None, relative)
            .unwrap_or_else(|| PromptId::new("", crate::diagnostic::display_path(relative)));
        CaseResult::unrun(
            prompt,
            "(file could not be loaded)".to_owned(),
            problem.path.clone(),
            problem.position.line,
            "-".to_owned(),
        )
        .fail_with(
            CaseErrorKind::Load,
            format!("{} [{}]", problem.message, problem.code),
        )
    }

    /// Whether the case could not run because replaying found no recording of its request
    /// ([`ProviderError::NoRecording`]).
    pub fn lacks_recording(&self) -> bool {
        self.error.as_ref().is_some_and(|e| e.no_recording)
    }

    fn fail_with(mut self, kind: CaseErrorKind, message: String) -> CaseResult {
        self.status = CaseStatus::Error;
        self.error = Some(CaseError {
            kind,
            message,
            no_recording: false,
        });
        self
    }

    /// The case failed on a provider error `err` (the model's call, or a grader's), told
    /// by `message`.
    fn fail_on_provider(self, err: &ProviderError, message: String) -> CaseResult {
        let kind = if err.is_configuration() {
            CaseErrorKind::Configuration
        } else {
            CaseErrorKind::Provider
        };
        let mut result = self.fail_with(kind, message);
        if let Some(error) = &mut result.error {
            error.no_recording = matches!(err, ProviderError::NoRecording { .. });
        }
        result
    }
}

/// What the results of passed cases keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Keep {
    /// Everything: the output and every assertion's outcome (the JSON report prints them).
    Everything,
    /// What tables, summaries and JUnit show of a passed case (its identity, status,
    /// latency, usage and cost); failed and errored cases keep everything.
    Failures,
}

/// Runs one case: render, call, judge.
async fn run_case(case: &Case, providers: &Providers) -> CaseResult {
    let result = CaseResult::new(case);
    let suite = &case.suite;
    let messages = match suite.renderer.render(&suite.definition, &case.test.vars) {
        Ok(messages) => messages,
        Err(err) => return result.fail_with(CaseErrorKind::Render, err.to_string()),
    };
    let response = match providers
        .chat(&suite.model, messages, suite.definition.parameters.clone())
        .await
    {
        Ok(response) => response,
        Err(err) => return result.fail_on_provider(&err, err.to_string()),
    };
    let cost = providers.cost_usd(&suite.model, &response.usage);
    let facts = CallFacts::of(&response, cost);
    let mut result = CaseResult {
        latency_ms: Some(response.latency_ms),
        usage: Some(response.usage),
        cost_usd: cost,
        replayed: response.replayed,
        ..result
    };
    for assertion in &case.test.assert {
        match assertions::evaluate(
            &assertion.value,
            &response.text,
            Some(facts),
            providers,
            &suite.judge_model,
        )
        .await
        {
            Ok(outcome) => result.assertions.push(LocatedOutcome {
                line: assertion.referenced.line() as usize,
                outcome,
            }),
            Err(err) => {
                result.output = Some(response.text);
                return result.fail_on_provider(&err.source, err.to_string());
            }
        }
    }
    result.output = Some(response.text);
    result.status = if result.assertions.iter().all(|a| a.outcome.passed) {
        CaseStatus::Passed
    } else {
        CaseStatus::Failed
    };
    result
}

/// Runs `jobs` as `run` says; the results come back in job order.
pub async fn run_tests(jobs: Vec<TestJob<'_>>, run: Run) -> Vec<CaseResult> {
    let mut results = Vec::with_capacity(jobs.len());
    run_each(jobs, run, &mut |result| results.push(result)).await;
    results
}

/// How [`run_each`] runs its jobs.
#[derive(Clone)]
pub struct Run {
    /// The providers to call.
    pub providers: Providers,
    /// The most jobs running at once (at least one).
    pub concurrency: usize,
    /// What the results of passed cases keep.
    pub keep: Keep,
    /// Sees each result as it ends, in the order they end.
    pub on_done: Arc<dyn Fn(&CaseResult) + Send + Sync>,
}

/// The most results held back for an earlier job still running: a job is started only
/// while fewer wait, so a slow case delays the others rather than pile up their results.
pub const MAX_AHEAD: usize = 1024;

/// Runs `jobs` as `run` says and hands each result to `sink` in job order, as soon as its
/// job and every job before it have ended. A job is started only when a running one has
/// ended, and only running jobs hold their own copy of their test case, so memory grows
/// with what `sink` keeps, not with the number of jobs.
pub async fn run_each(jobs: Vec<TestJob<'_>>, run: Run, sink: &mut dyn FnMut(CaseResult)) {
    let concurrency = run.concurrency.max(1);
    let mut ahead = Ahead::default();
    let mut running = tokio::task::JoinSet::new();
    for (index, job) in jobs.into_iter().enumerate() {
        while !running.is_empty()
            && (running.len() >= concurrency || index >= ahead.next + MAX_AHEAD)
        {
            ahead.store(running.join_next_with_id().await, sink);
        }
        let case = job.case();
        let providers = run.providers.clone();
        let on_done = run.on_done.clone();
        let keep = run.keep;
        let task = running.spawn(async move {
            let result = run_case(&case, &providers).await;
            on_done(&result);
            result.kept(keep)
        });
        ahead.started.insert(task.id(), index);
    }
    while !running.is_empty() {
        ahead.store(running.join_next_with_id().await, sink);
    }
}

/// The jobs running, and the results that ended before an earlier job did.
#[derive(Default)]
struct Ahead {
    /// The index of the next result to hand over.
    next: usize,
    /// Each running job's index, by task.
    started: HashMap<tokio::task::Id, usize>,
    /// Ended jobs by index; `None` for a job cancelled without a result.
    waiting: BTreeMap<usize, Option<CaseResult>>,
}

impl Ahead {
    /// Takes a finished job's result and hands over every result now in order; a job that
    /// panicked panics here.
    fn store(
        &mut self,
        joined: Option<Result<(tokio::task::Id, CaseResult), tokio::task::JoinError>>,
        sink: &mut dyn FnMut(CaseResult),
    ) {
        let (id, result) = match joined {
            Some(Ok((id, result))) => (id, Some(result)),
            Some(Err(err)) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            // Cancelled (the runtime shutting down): the job has no result.
            Some(Err(err)) => (err.id(), None),
            None => return,
        };
        if let Some(index) = self.started.remove(&id) {
            self.waiting.insert(index, result);
        }
        while let Some(result) = self.waiting.remove(&self.next) {
            if let Some(result) = result {
                sink(result);
            }
            self.next += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;
    use crate::providers::Recordings;
    use crate::repo::Snapshot;

    /// A snapshot of one echo prompt with `cases` tests, the even ones passing.
    fn suite(cases: usize) -> Snapshot {
        let mut yaml = String::from(
            "model: echo\nvariables: {n: {type: integer, required: true}}\ntemplate: \"case {{ n }}\"\ntests:\n",
        );
        for n in 0..cases {
            let wanted = if n % 2 == 0 {
                format!("case {n}")
            } else {
                "never".to_owned()
            };
            yaml.push_str(&format!(
                "  - vars: {{n: {n}}}\n    assert: [{{type: contains, value: \"{wanted}\"}}]\n"
            ));
        }
        Snapshot::from_files(
            Path::new("prompts"),
            vec![(PathBuf::from("svc/p.yaml"), yaml.into_bytes())],
        )
    }

    fn run(snapshot: &Snapshot, concurrency: usize, keep: Keep) -> (Vec<CaseResult>, usize) {
        let settings = crate::config::Settings::default();
        let renderer = Arc::new(Renderer::new(snapshot.partials.clone()));
        let prompts: Vec<_> = snapshot.prompts.iter().collect();
        let jobs = jobs_for(&settings, &prompts, &renderer, None).expect("complete prompt");
        let providers = Providers::new(&settings, Recordings::live());
        let most_alive = Arc::new(AtomicUsize::new(0));
        let on_done: Arc<dyn Fn(&CaseResult) + Send + Sync> = {
            let most_alive = most_alive.clone();
            Arc::new(move |_: &CaseResult| {
                let alive = tokio::runtime::Handle::current()
                    .metrics()
                    .num_alive_tasks();
                most_alive.fetch_max(alive, Ordering::Relaxed);
            })
        };
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .build()
            .expect("runtime");
        let run = Run {
            providers,
            concurrency,
            keep,
            on_done,
        };
        let results = runtime.block_on(run_tests(jobs, run));
        (results, most_alive.load(Ordering::Relaxed))
    }

    #[test]
    fn only_as_many_jobs_as_the_concurrency_are_alive_at_once() {
        let snapshot = suite(200);
        let (results, most_alive) = run(&snapshot, 4, Keep::Everything);
        assert_eq!(results.len(), 200);
        // A finished task leaves the runtime's list a moment after its result is taken, so
        // each of the two workers may hold one more (before: all 200 were spawned at once).
        assert!(
            most_alive <= 4 + 2,
            "{most_alive} tasks were alive at once, with concurrency 4"
        );
    }

    #[test]
    fn results_come_back_in_job_order() {
        let snapshot = suite(50);
        let (results, _) = run(&snapshot, 8, Keep::Everything);
        let names: Vec<&str> = results.iter().map(|r| r.test.as_str()).collect();
        let lines: Vec<usize> = results.iter().map(|r| r.line).collect();
        assert!(lines.windows(2).all(|pair| pair[0] < pair[1]), "{names:?}");
        for (n, result) in results.iter().enumerate() {
            let passed = n % 2 == 0;
            assert_eq!(result.status == CaseStatus::Passed, passed, "{result:?}");
            assert_eq!(result.output.as_deref(), Some(format!("case {n}").as_str()));
            assert_eq!(result.assertions.len(), 1);
        }
    }

    #[test]
    fn passed_cases_drop_their_details_when_only_failures_are_kept() {
        let snapshot = suite(4);
        let (results, _) = run(&snapshot, 2, Keep::Failures);
        let passed = &results[0];
        assert_eq!(passed.status, CaseStatus::Passed);
        assert_eq!(
            (passed.output.as_deref(), passed.assertions.len()),
            (None, 0)
        );
        assert!(passed.latency_ms.is_some());
        let failed = &results[1];
        assert_eq!(failed.status, CaseStatus::Failed);
        assert_eq!(failed.output.as_deref(), Some("case 1"));
        assert_eq!(failed.assertions.len(), 1);
    }
}
