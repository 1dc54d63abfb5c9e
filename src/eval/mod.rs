//! Running test cases against models and judging the outputs.
//!
//! A [`TestJob`] is one test case of one prompt bound to a model; [`run_tests`] renders,
//! calls the provider and judges every assertion, many jobs at once, and returns one
//! [`CaseResult`] per job in job order. A failure of the provider is an error of the case,
//! never a pass or a fail. Reports (table, JSON, JUnit) live in `report`.

pub mod assertions;
pub mod github;
pub mod report;
pub mod selection;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Serialize;

use crate::providers::{ProviderError, Providers, Usage};
use crate::render::Renderer;
use crate::repo::{Assertion, Definition, PromptId};
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
/// prompt's model.
pub fn jobs_for(
    settings: &crate::config::Settings,
    prompts: &[&crate::repo::LoadedPrompt],
    renderer: &Arc<Renderer>,
    model: Option<&str>,
) -> Result<Vec<TestJob>, Incomplete> {
    let mut jobs = Vec::new();
    for prompt in prompts {
        let (Some(id), Some(definition)) = (&prompt.id, &prompt.definition) else {
            return Err(Incomplete {
                path: prompt.path.clone(),
            });
        };
        let definition = Arc::new(definition.clone());
        for test in prompt.file.tests.iter().flat_map(|t| t.value.iter()) {
            let line = test.referenced.line() as usize;
            jobs.push(TestJob {
                prompt: id.clone(),
                path: prompt.path.clone(),
                line,
                name: test
                    .value
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("test at line {line}")),
                model: model.unwrap_or(&definition.model).to_owned(),
                definition: definition.clone(),
                vars: test.value.vars.clone(),
                assertions: test
                    .value
                    .assert
                    .iter()
                    .map(|a| (a.value.clone(), a.referenced.line() as usize))
                    .collect(),
                renderer: renderer.clone(),
                judge_model: settings
                    .test
                    .judge_model
                    .clone()
                    .unwrap_or_else(|| definition.model.clone()),
            });
        }
    }
    Ok(jobs)
}

/// One test case of one prompt, bound to the model it runs on.
#[derive(Debug, Clone)]
pub struct TestJob {
    /// The prompt.
    pub prompt: PromptId,
    /// The prompt file, relative to the project root.
    pub path: PathBuf,
    /// The test's line in the file.
    pub line: usize,
    /// The test's name.
    pub name: String,
    /// The model to call.
    pub model: String,
    /// What to render.
    pub definition: Arc<Definition>,
    /// The test's variables.
    pub vars: BTreeMap<String, serde_json::Value>,
    /// The assertions, with their lines in the file.
    pub assertions: Vec<(Assertion, usize)>,
    /// The renderer holding the partials of the definition's tree.
    pub renderer: Arc<Renderer>,
    /// The grader model for `llm_judge` assertions without their own `model`.
    pub judge_model: String,
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
    fn new(job: &TestJob) -> CaseResult {
        CaseResult::unrun(
            job.prompt.clone(),
            job.name.clone(),
            job.path.clone(),
            job.line,
            job.model.clone(),
        )
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

    fn fail_with(mut self, kind: CaseErrorKind, message: String) -> CaseResult {
        self.status = CaseStatus::Error;
        self.error = Some(CaseError { kind, message });
        self
    }
}

fn provider_error_kind(err: &ProviderError) -> CaseErrorKind {
    if err.is_configuration() {
        CaseErrorKind::Configuration
    } else {
        CaseErrorKind::Provider
    }
}

/// Runs one job: render, call, judge.
pub async fn run_job(job: &TestJob, providers: &Providers) -> CaseResult {
    let result = CaseResult::new(job);
    let messages = match job.renderer.render(&job.definition, &job.vars) {
        Ok(messages) => messages,
        Err(err) => return result.fail_with(CaseErrorKind::Render, err.to_string()),
    };
    let response = match providers
        .chat(&job.model, messages, job.definition.parameters.clone())
        .await
    {
        Ok(response) => response,
        Err(err) => return result.fail_with(provider_error_kind(&err), err.to_string()),
    };
    let cost = providers.cost_usd(&job.model, &response.usage);
    let facts = CallFacts::of(&response, cost);
    let mut result = CaseResult {
        output: Some(response.text.clone()),
        latency_ms: Some(response.latency_ms),
        usage: Some(response.usage),
        cost_usd: cost,
        replayed: response.replayed,
        ..result
    };
    for (assertion, line) in &job.assertions {
        match assertions::evaluate(
            assertion,
            &response.text,
            Some(facts),
            providers,
            &job.judge_model,
        )
        .await
        {
            Ok(outcome) => result.assertions.push(LocatedOutcome {
                line: *line,
                outcome,
            }),
            Err(err) => {
                let kind = provider_error_kind(&err.source);
                return result.fail_with(kind, err.to_string());
            }
        }
    }
    result.status = if result.assertions.iter().all(|a| a.outcome.passed) {
        CaseStatus::Passed
    } else {
        CaseStatus::Failed
    };
    result
}

/// Runs `jobs` with at most `concurrency` at once; `on_done` sees each result as it ends.
/// Results come back in job order.
pub async fn run_tests(
    jobs: Vec<TestJob>,
    providers: Providers,
    concurrency: usize,
    on_done: Arc<dyn Fn(&CaseResult) + Send + Sync>,
) -> Vec<CaseResult> {
    let semaphore = Arc::new(tokio::sync::Semaphore::new(concurrency.max(1)));
    let mut set = tokio::task::JoinSet::new();
    let total = jobs.len();
    for (index, job) in jobs.into_iter().enumerate() {
        let semaphore = semaphore.clone();
        let providers = providers.clone();
        let on_done = on_done.clone();
        set.spawn(async move {
            let _permit = semaphore.acquire_owned().await;
            let result = run_job(&job, &providers).await;
            on_done(&result);
            (index, result)
        });
    }
    let mut results: Vec<Option<CaseResult>> = vec![None; total];
    while let Some(joined) = set.join_next().await {
        match joined {
            Ok((index, result)) => results[index] = Some(result),
            Err(err) if err.is_panic() => std::panic::resume_unwind(err.into_panic()),
            Err(_) => {}
        }
    }
    results.into_iter().flatten().collect()
}
