//! Test runs from the editor: the "▶ run" code lenses, and running a prompt's test cases
//! from its unsaved buffer.
//!
//! A lens above each test case runs that case, one above `tests:` runs them all
//! (`workspace/executeCommand` with [`RUN_TEST`] or [`RUN_ALL`]). A run takes a copy of
//! the buffer and the partials and goes to a thread of its own, so diagnostics, completion
//! and hover are answered while it waits for the model; its results come back to the main
//! loop as a message ([`Finished`]) and are shown as diagnostics on the tests (error for a
//! failure, information for a pass, warning when the case could not be judged) and in the
//! hover on a test, with the answer.
//!
//! A run is cancelled when its buffer changes (its answer would describe text that is
//! gone) or when the client cancels the command; at most [`MAX_RUNS`] run at once. Runs
//! replay recorded answers unless `[lsp] live_runs = true`: a test without a recording
//! says so in its diagnostic.

use std::collections::HashMap;
use std::panic::{self, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use lsp_server::RequestId;
use lsp_types::{
    CodeLens, Command, DiagnosticSeverity, Hover, HoverContents, MarkupContent, MarkupKind,
    NumberOrString, Position, Range, Url,
};
use serde_json::Value;

use super::Project;
use super::documents::from_line_column;
use crate::eval::report::verdict_line;
use crate::eval::{CaseResult, Keep, Run, jobs_for, run_tests};
use crate::providers::{Mode, Providers, Recordings};
use crate::render::Renderer;
use crate::repo::Snapshot;
use crate::repo::file::parse_prompt;

/// The command of the lens above a test case: arguments `[uri, index]`.
pub const RUN_TEST: &str = "promptctl.runTest";
/// The command of the lens above `tests:`: arguments `[uri]`.
pub const RUN_ALL: &str = "promptctl.runAllTests";
/// The most runs under way at once; one more is refused until one ends.
pub const MAX_RUNS: usize = 4;
/// The most characters of an answer a hover shows (the rest is counted, not sent).
const MAX_HOVER_ANSWER: usize = 20_000;
/// How often a run looks whether it was cancelled.
const CANCEL_POLL: Duration = Duration::from_millis(10);

/// A test case of a buffer: its index among the tests and its lines (0-based, the end
/// excluded).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct TestSpan {
    index: usize,
    start: u32,
    end: u32,
}

/// The test cases of a prompt buffer and the line of its `tests:` key; empty for a buffer
/// that is not a prompt file with tests.
fn test_spans(path: &std::path::Path, text: &str) -> (Option<u32>, Vec<TestSpan>) {
    let Ok(file) = parse_prompt(path, text) else {
        return (None, Vec::new());
    };
    let Some(tests) = file.tests.as_ref() else {
        return (None, Vec::new());
    };
    let lines: Vec<&str> = text.lines().collect();
    let key_line = lines
        .iter()
        .position(|line| line.starts_with("tests:"))
        .map(|line| line as u32);
    let starts: Vec<u32> = tests
        .value
        .iter()
        .map(|test| (test.referenced.line() as u32).saturating_sub(1))
        .collect();
    // A test ends where the next begins, or at the next top-level key.
    let top_level = |line: &&str| {
        line.chars()
            .next()
            .is_some_and(|c| !c.is_whitespace() && c != '-' && c != '#')
    };
    let spans = starts
        .iter()
        .enumerate()
        .map(|(index, &start)| {
            let next_key = lines
                .iter()
                .skip(start as usize + 1)
                .position(&top_level)
                .map_or(lines.len() as u32, |n| start + 1 + n as u32);
            let end = starts
                .get(index + 1)
                .copied()
                .map_or(next_key, |next| next.min(next_key));
            TestSpan {
                index,
                start,
                end: end.max(start + 1),
            }
        })
        .collect();
    (key_line, spans)
}

/// The lenses of a buffer: "▶ run all" above `tests:` and "▶ run" above each test case.
pub fn code_lenses(uri: &Url, text: &str) -> Vec<CodeLens> {
    let Ok(path) = uri.to_file_path() else {
        return Vec::new();
    };
    let (key_line, spans) = test_spans(&path, text);
    let lens = |line: u32, title: &str, command: &str, arguments: Vec<Value>| CodeLens {
        range: Range::new(Position::new(line, 0), Position::new(line, 0)),
        command: Some(Command {
            title: title.to_owned(),
            command: command.to_owned(),
            arguments: Some(arguments),
        }),
        data: None,
    };
    let uri_value = Value::String(uri.to_string());
    let mut lenses = Vec::with_capacity(spans.len() + 1);
    if let Some(line) = key_line.filter(|_| !spans.is_empty()) {
        lenses.push(lens(line, "▶ run all", RUN_ALL, vec![uri_value.clone()]));
    }
    for span in &spans {
        lenses.push(lens(
            span.start,
            "▶ run",
            RUN_TEST,
            vec![uri_value.clone(), Value::from(span.index)],
        ));
    }
    lenses
}

/// What an `executeCommand` asks to run: the buffer and which of its tests.
#[derive(Debug)]
pub struct Target {
    /// The buffer.
    pub uri: Url,
    /// One test's index, or every test.
    pub index: Option<usize>,
}

/// Reads the arguments of a run command. [`RUN_ALL`] without arguments (as Helix's
/// `:lsp-workspace-command` sends it, having no lenses) runs the document edited last,
/// `last_edited`.
pub fn target(
    command: &str,
    arguments: &[Value],
    last_edited: Option<&Url>,
) -> Result<Target, String> {
    if command != RUN_TEST && command != RUN_ALL {
        return Err(format!("unknown command `{command}`"));
    }
    let uri = match arguments.first() {
        None if command == RUN_ALL => last_edited
            .cloned()
            .ok_or_else(|| "no prompt file has been opened or edited yet".to_owned())?,
        first => first
            .and_then(Value::as_str)
            .and_then(|uri| Url::parse(uri).ok())
            .ok_or_else(|| format!("`{command}` needs the document's URI as its first argument"))?,
    };
    let index = match command {
        RUN_ALL => None,
        RUN_TEST => Some(
            arguments
                .get(1)
                .and_then(Value::as_u64)
                .and_then(|n| usize::try_from(n).ok())
                .ok_or_else(|| {
                    format!("`{RUN_TEST}` needs the test's index as its second argument")
                })?,
        ),
        _ => return Err(format!("unknown command `{command}`")),
    };
    Ok(Target { uri, index })
}

/// One test's result, where it is in the buffer.
#[derive(Debug, Clone)]
pub struct TestResult {
    span: TestSpan,
    result: CaseResult,
}

/// A run that ended, as the run's thread hands it to the main loop.
#[derive(Debug)]
pub struct Finished {
    /// The request to answer.
    pub request: RequestId,
    /// The buffer run.
    pub uri: Url,
    /// The results, or why there are none (`None`: cancelled).
    pub results: Option<Result<Vec<TestResult>, String>>,
}

/// A run under way.
struct Running {
    uri: Url,
    cancel: Arc<AtomicBool>,
}

/// The runs under way and the latest results of each buffer.
#[derive(Default)]
pub struct Runs {
    running: HashMap<RequestId, Running>,
    results: HashMap<Url, Vec<TestResult>>,
}

impl Runs {
    /// Starts running `target` from `text` on a thread of its own; `done` gets the
    /// [`Finished`] run. Refused when [`MAX_RUNS`] are under way or the test does not
    /// exist.
    pub fn start(
        &mut self,
        project: &Project,
        request: RequestId,
        target: Target,
        text: &str,
        done: impl FnOnce(Finished) + Send + 'static,
    ) -> Result<(), String> {
        if self.running.contains_key(&request) {
            return Err("a run with this request id is under way".to_owned());
        }
        if self.running.len() >= MAX_RUNS {
            return Err(format!(
                "{MAX_RUNS} test runs are under way: wait for one to end"
            ));
        }
        let path = target
            .uri
            .to_file_path()
            .map_err(|()| "the document is not a file".to_owned())?;
        let relative = project
            .relative(&path)
            .ok_or_else(|| "the document is not in the prompts folder".to_owned())?;
        let (_, spans) = test_spans(&path, text);
        let spans: Vec<TestSpan> = match target.index {
            Some(index) => vec![*spans.get(index).ok_or_else(|| {
                format!(
                    "the document has no test number {}",
                    index.saturating_add(1)
                )
            })?],
            None if spans.is_empty() => return Err("the document has no tests".to_owned()),
            None => spans,
        };
        let settings = &project.config.settings;
        let job = Job {
            settings: settings.clone(),
            prompts_dir: settings.prompts_dir.clone(),
            relative,
            text: text.to_owned(),
            partials: project.partials.clone(),
            spans,
            recordings: Recordings {
                mode: if settings.lsp.live_runs {
                    Mode::Live
                } else {
                    Mode::Replay
                },
                dir: project.config.root.join(&settings.test.recordings),
            },
        };
        let cancel = Arc::new(AtomicBool::new(false));
        let flag = cancel.clone();
        let (uri, id) = (target.uri.clone(), request.clone());
        std::thread::Builder::new()
            .name("promptctl-lsp-run".to_owned())
            .spawn(move || {
                let results = panic::catch_unwind(AssertUnwindSafe(|| job.run(flag)))
                    .unwrap_or_else(|_| Some(Err("internal error (a bug in promptctl)".into())));
                done(Finished {
                    request: id,
                    uri,
                    results,
                });
            })
            .map_err(|err| format!("cannot start the run: {err}"))?;
        self.running.insert(
            request,
            Running {
                uri: target.uri,
                cancel,
            },
        );
        Ok(())
    }

    /// Takes a finished run's results (kept only when the run was not cancelled) and
    /// returns the answer to its request.
    pub fn finish(&mut self, finished: Finished) -> Result<Value, (i32, String)> {
        let cancelled = self
            .running
            .remove(&finished.request)
            .is_none_or(|running| running.cancel.load(Ordering::Relaxed));
        match finished.results {
            Some(Ok(results)) if !cancelled => {
                let answer = results
                    .iter()
                    .map(|r| {
                        serde_json::json!({
                            "test": r.result.test,
                            "status": r.result.status,
                            "score": crate::eval::baseline::case_score(&r.result),
                            "message": verdict_line(&r.result),
                        })
                    })
                    .collect();
                let kept = self.results.entry(finished.uri).or_default();
                for result in results {
                    kept.retain(|k| k.span.index != result.span.index);
                    kept.push(result);
                }
                kept.sort_by_key(|k| k.span.index);
                Ok(Value::Array(answer))
            }
            Some(Err(message)) if !cancelled => Err((super::codes::REQUEST_FAILED, message)),
            _ => Err((
                super::codes::REQUEST_CANCELLED,
                "cancelled: the document changed, or the client cancelled the run".to_owned(),
            )),
        }
    }

    /// Cancels the runs of `uri` and forgets its results: the buffer changed.
    pub fn changed(&mut self, uri: &Url) {
        for running in self.running.values().filter(|r| &r.uri == uri) {
            running.cancel.store(true, Ordering::Relaxed);
        }
        self.results.remove(uri);
    }

    /// Cancels the run answering `request` (`$/cancelRequest`).
    pub fn cancel(&mut self, request: &RequestId) {
        if let Some(running) = self.running.get(request) {
            running.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// Cancels every run (the session ends).
    pub fn cancel_all(&mut self) {
        for running in self.running.values() {
            running.cancel.store(true, Ordering::Relaxed);
        }
    }

    /// The diagnostics of `uri`'s latest results.
    pub fn diagnostics(&self, uri: &Url, text: &str) -> Vec<lsp_types::Diagnostic> {
        self.results
            .get(uri)
            .into_iter()
            .flatten()
            .map(|r| diagnostic(text, r))
            .collect()
    }

    /// The hover on a line of a test that has a result: its verdict and answer.
    pub fn hover(&self, uri: &Url, position: Position) -> Option<Hover> {
        let found = self
            .results
            .get(uri)?
            .iter()
            .find(|r| (r.span.start..r.span.end).contains(&position.line))?;
        let result = &found.result;
        let mut text = format!("**{}**", verdict_line(result));
        if result.replayed {
            text.push_str(" (replayed)");
        }
        if let Some(answer) = &result.output {
            let answer = clipped(answer);
            let fence = super::hover::code_fence(&answer);
            text.push_str(&format!(
                "\n\nAnswer of `{}`:\n{fence}text\n{answer}\n{fence}\n",
                result.model.replace('`', "'")
            ));
        }
        Some(Hover {
            contents: HoverContents::Markup(MarkupContent {
                kind: MarkupKind::Markdown,
                value: text,
            }),
            range: Some(Range::new(
                Position::new(found.span.start, 0),
                Position::new(found.span.start, 0),
            )),
        })
    }
}

/// An answer as a hover shows it: at most [`MAX_HOVER_ANSWER`] characters, and how
/// many were left out.
fn clipped(answer: &str) -> String {
    let left = answer.chars().count().saturating_sub(MAX_HOVER_ANSWER);
    let shown: String = answer.chars().take(MAX_HOVER_ANSWER).collect();
    if left == 0 {
        shown
    } else {
        format!("{shown}\n… ({left} more characters)")
    }
}

/// A result as a diagnostic on its test's first line.
fn diagnostic(text: &str, result: &TestResult) -> lsp_types::Diagnostic {
    let line = result.span.start;
    let content = text.lines().nth(line as usize).unwrap_or_default();
    let indent = content.len() - content.trim_start().len();
    let start = from_line_column(text, line as usize + 1, indent + 1);
    let end = from_line_column(text, line as usize + 1, content.chars().count() + 1);
    let (severity, hint) = match result.result.status {
        crate::eval::CaseStatus::Passed => (DiagnosticSeverity::INFORMATION, ""),
        crate::eval::CaseStatus::Failed => (DiagnosticSeverity::ERROR, ""),
        crate::eval::CaseStatus::Error if result.result.lacks_recording() => (
            DiagnosticSeverity::WARNING,
            " (this test has no recording: `promptctl test --record` makes one, or set `[lsp] live_runs = true`)",
        ),
        crate::eval::CaseStatus::Error => (DiagnosticSeverity::WARNING, ""),
    };
    lsp_types::Diagnostic {
        range: Range::new(start, end),
        severity: Some(severity),
        code: Some(NumberOrString::String("test-result".to_owned())),
        source: Some("promptctl test".to_owned()),
        message: format!("{}{hint}", verdict_line(&result.result)),
        ..lsp_types::Diagnostic::default()
    }
}

/// A run's copy of everything it needs, owned by its thread.
struct Job {
    settings: crate::config::Settings,
    prompts_dir: PathBuf,
    relative: PathBuf,
    text: String,
    partials: crate::repo::Partials,
    spans: Vec<TestSpan>,
    recordings: Recordings,
}

impl Job {
    /// Renders, calls and judges the job's tests; `None` when `cancel` was set meanwhile.
    fn run(self, cancel: Arc<AtomicBool>) -> Option<Result<Vec<TestResult>, String>> {
        // Every render on this thread (the runtime below is this thread's) stops as soon
        // as `cancel` is set, like the language server's checks.
        let _renders_cancelled_with_the_run =
            crate::render::limits::Scope::with_steps(u64::MAX, Some(cancel.clone()));
        let mut snapshot = Snapshot::from_files(
            &self.prompts_dir,
            vec![(self.relative, self.text.into_bytes())],
        );
        snapshot.partials = self.partials.clone();
        let Some(prompt) = snapshot.prompts.first() else {
            let why = snapshot.problems.first().map_or_else(
                || "the document is not a prompt file".to_owned(),
                |problem| format!("the document cannot be loaded: {}", problem.message),
            );
            return Some(Err(why));
        };
        let renderer = Arc::new(Renderer::new(self.partials));
        let jobs = match jobs_for(&self.settings, &[prompt], &renderer, None) {
            Ok(jobs) => jobs,
            Err(err) => return Some(Err(err.to_string())),
        };
        let jobs: Vec<_> = jobs
            .into_iter()
            .enumerate()
            .filter(|(index, _)| self.spans.iter().any(|s| s.index == *index))
            .map(|(_, job)| job)
            .collect();
        let run = Run {
            providers: Providers::new(&self.settings, self.recordings),
            concurrency: self.settings.test.concurrency.max(1),
            keep: Keep::Everything,
            on_done: Arc::new(|_: &CaseResult| {}),
        };
        let runtime = match tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        {
            Ok(runtime) => runtime,
            Err(err) => return Some(Err(format!("cannot start the async runtime: {err}"))),
        };
        let results = runtime.block_on(async {
            tokio::select! {
                results = run_tests(jobs, run) => Some(results),
                () = cancelled(&cancel) => None,
            }
        })?;
        Some(Ok(self
            .spans
            .into_iter()
            .zip(results)
            .map(|(span, result)| TestResult { span, result })
            .collect()))
    }
}

/// Returns once `cancel` is set.
async fn cancelled(cancel: &AtomicBool) {
    while !cancel.load(Ordering::Relaxed) {
        tokio::time::sleep(CANCEL_POLL).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_long_answer_is_clipped_and_says_how_much_is_left_out() {
        assert_eq!(clipped("short"), "short");
        let long = "é".repeat(MAX_HOVER_ANSWER + 5);
        let shown = clipped(&long);
        assert!(
            shown.ends_with("\n… (5 more characters)"),
            "{}",
            &shown[shown.len() - 40..]
        );
        assert_eq!(
            shown.chars().filter(|c| *c == 'é').count(),
            MAX_HOVER_ANSWER
        );
    }

    #[test]
    fn each_test_spans_its_lines_up_to_the_next_one_or_key() {
        let text = "model: echo\ntemplate: hi\ntests:\n  - name: a\n    vars: {}\n  - vars: {x: 1}\n\n    assert: []\ndescription: after\n";
        let (key, spans) = test_spans(std::path::Path::new("/p/prompts/s/p.yaml"), text);
        assert_eq!(key, Some(2));
        assert_eq!(
            spans,
            [
                TestSpan {
                    index: 0,
                    start: 3,
                    end: 5
                },
                TestSpan {
                    index: 1,
                    start: 5,
                    end: 8
                }
            ]
        );
    }
}
