//! `promptctl test --watch`: run the selected tests, then re-run those each save affects
//! and print only what changed.
//!
//! A save is measured against the last saved state, with the selection `--changed-since`
//! makes ([`crate::eval::selection::changed_prompts`]): a prompt whose definition or tests
//! changed, that is new, or that includes a changed partial. A save of the configuration
//! or the environments file re-runs every selected prompt. A save that changes what a run
//! under way runs abandons it, and the next run covers both saves; a save of other prompts
//! waits for the run to end. Ctrl-C (or SIGTERM) drops the run
//! under way: its model calls are aborted, a recording is either written whole or not at
//! all ([`crate::files::replace`]), and the runtime's threads are stopped before the
//! process exits 0.

use std::collections::{BTreeSet, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::TestArgs;
use crate::cli::output::Format;
use crate::cli::{CliError, Context, exit, find_prompt};
use crate::config::Config;
use crate::eval::baseline::{MovementCounts, test_keys};
use crate::eval::report::{self, Summary};
use crate::eval::rerun::{LastResults, PromptRun};
use crate::eval::{CaseResult, Keep, Run, jobs_for, run_tests};
use crate::providers::{Mode, Providers, Recordings};
use crate::render::Renderer;
use crate::repo::{LoadedPrompt, PromptId, Snapshot};
use crate::watch::{Saved, Watched, Watcher};

/// How long the runtime may take to stop its threads once the watch ends.
const SHUTDOWN: Duration = Duration::from_secs(2);

/// The calls a watch makes: recordings unless `--live` or `--record` asks for the model.
fn mode(args: &TestArgs) -> Mode {
    if args.record {
        Mode::Record
    } else if args.live {
        Mode::Live
    } else {
        Mode::Replay
    }
}

/// A watch session: what it runs and what it has seen.
struct Session<'c> {
    context: &'c Context,
    args: &'c TestArgs,
    config: Config,
    /// The prompts named on the command line (`None`: every prompt with tests).
    named: Option<HashSet<PromptId>>,
    /// Each test's latest result.
    last: LastResults,
    /// The problems of files that could not be loaded, as last printed.
    problems: BTreeSet<String>,
    /// The text of `promptctl.toml` and `environments.yaml` as last read, so that a save
    /// that changes neither re-runs nothing.
    settings_text: [Option<String>; 2],
}

/// Runs `promptctl test --watch` until Ctrl-C.
pub fn run(context: &Context, args: &TestArgs) -> Result<u8, CliError> {
    if context.output.format == Format::Json {
        return Err(CliError::input(
            "`--watch` prints for people: it cannot be combined with `--format json`",
        ));
    }
    let config = context.config()?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|err| CliError::external(format!("cannot start the async runtime: {err}")))?;
    let mut stop = {
        let _entered = runtime.enter();
        Stop::new().map_err(|err| CliError::external(format!("cannot catch Ctrl-C: {err}")))?
    };
    // Watching starts before the first run reads the files, so no save is missed.
    let mut watcher = Watcher::start(&watched(&config)).map_err(|err| {
        CliError::external(err.to_string()).hint(
            "on Linux a large folder tree may need a higher `fs.inotify.max_user_watches` (sysctl)",
        )
    })?;
    let mut snapshot = context.snapshot(&config)?;
    let named = if args.prompts.is_empty() {
        None
    } else {
        let found: Result<HashSet<PromptId>, CliError> = args
            .prompts
            .iter()
            .map(|name| find_prompt(&snapshot, name).map(|p| p.id.clone()))
            .filter_map(Result::transpose)
            .collect();
        Some(found?)
    };
    let mut session = Session {
        settings_text: settings_text(&config),
        context,
        args,
        config,
        named,
        last: LastResults::default(),
        problems: BTreeSet::new(),
    };
    session.print_new_problems(&snapshot);
    let mut owed = Owed::default();
    for id in session.selected(&snapshot) {
        owed.changed(id);
    }
    let mut first = true;
    if owed.is_empty() {
        context
            .output
            .note("no tests to run yet: add `tests:` to a prompt, and save it");
        session.say_watching();
        first = false;
    }
    loop {
        if !owed.is_empty() {
            let turn = session.run_turn(&runtime, &mut stop, &watcher, &snapshot, &owed);
            snapshot = turn.newer.unwrap_or(snapshot);
            session.follow(&mut watcher, turn.rewatch);
            match turn.step {
                Step::Stop => break,
                Step::Abandoned => owed.merge(turn.more),
                Step::Ran(ran) => {
                    session.print(ran, &owed, first);
                    if first {
                        session.say_watching();
                        first = false;
                    }
                    owed = turn.more;
                }
            }
            continue;
        }
        let saved = runtime.block_on(async {
            tokio::select! {
                () = stop.wait() => None,
                saved = watcher.saved() => Some(saved),
            }
        });
        let Some(saved) = saved else { break };
        let reloaded = session.reload(&snapshot, saved, &mut owed, &Owed::default());
        snapshot = reloaded.snapshot.unwrap_or(snapshot);
        session.follow(&mut watcher, saved.prompts_folder);
    }
    drop(watcher);
    runtime.shutdown_timeout(SHUTDOWN);
    Ok(exit::SUCCESS)
}

/// The files of `config`'s project a watch watches.
fn watched(config: &Config) -> Watched {
    Watched {
        prompts: config.prompts_dir(),
        config: config.file.clone(),
        environments: config.environments_file(),
    }
}

/// The text of the configuration and environments files (`None`: unreadable or absent).
fn settings_text(config: &Config) -> [Option<String>; 2] {
    /// Both files are refused beyond 1 MiB when loaded.
    const LIMIT: u64 = 1024 * 1024 + 1;
    let read = |path: &std::path::Path| crate::files::read_regular_text(path, LIMIT).ok();
    [
        config.file.as_deref().and_then(read),
        read(&config.environments_file()),
    ]
}

/// What reading the project again after a save found.
#[derive(Default)]
struct Reloaded {
    /// The project now (`None`: it could not be read; the error is printed).
    snapshot: Option<Snapshot>,
    /// The prompts the save changed or deleted, of those the watch runs.
    touched: BTreeSet<PromptId>,
    /// Whether the settings' text changed.
    settings: bool,
}

/// A run of what is owed, and the saves read while it ran.
struct Turn {
    step: Step,
    /// The project as the last save left it, when one was read.
    newer: Option<Snapshot>,
    /// What the saves read during the run owe.
    more: Owed,
    /// Whether the prompts folder must be watched again.
    rewatch: bool,
}

/// What one turn of the loop ended with.
enum Step {
    Stop,
    /// A save changed what the run was running.
    Abandoned,
    Ran(Ran),
}

/// The prompts whose tests must run again, and those deleted since their last run; a
/// prompt is in one or the other, as its latest save left it.
#[derive(Default)]
struct Owed {
    prompts: BTreeSet<PromptId>,
    deleted: BTreeSet<PromptId>,
}

impl Owed {
    fn is_empty(&self) -> bool {
        self.prompts.is_empty() && self.deleted.is_empty()
    }

    fn changed(&mut self, id: PromptId) {
        self.deleted.remove(&id);
        self.prompts.insert(id);
    }

    fn deleted(&mut self, id: PromptId) {
        self.prompts.remove(&id);
        self.deleted.insert(id);
    }

    /// Adds what `later` owes, later saves winning.
    fn merge(&mut self, later: Owed) {
        for id in later.prompts {
            self.changed(id);
        }
        for id in later.deleted {
            self.deleted(id);
        }
    }
}

/// A finished run: each prompt's results, the prompts that could not run and why, the
/// wall time.
struct Ran {
    runs: Vec<PromptRun>,
    unrunnable: Vec<String>,
    seconds: f64,
}

/// What a run needs of the session, owned, so that the session can read saves while it
/// runs.
struct Plan {
    settings: crate::config::Settings,
    recordings: Recordings,
    concurrency: usize,
}

/// Runs the tests of the `owed` prompts found in `snapshot`.
async fn run_owed(plan: &Plan, snapshot: &Snapshot, owed: &Owed) -> Ran {
    let started = Instant::now();
    let renderer = Arc::new(Renderer::new(snapshot.partials.clone()));
    let mut jobs = Vec::new();
    let mut planned: Vec<(&LoadedPrompt, Vec<String>)> = Vec::new();
    let mut unrunnable = Vec::new();
    for prompt in &snapshot.prompts {
        if !prompt
            .id
            .as_ref()
            .is_some_and(|id| owed.prompts.contains(id))
        {
            continue;
        }
        match jobs_for(&plan.settings, &[prompt], &renderer, None) {
            Ok(prompt_jobs) => {
                jobs.extend(prompt_jobs);
                planned.push((prompt, test_keys(prompt)));
            }
            Err(err) => unrunnable.push(err.to_string()),
        }
    }
    let run = Run {
        providers: Providers::new(&plan.settings, plan.recordings.clone()),
        concurrency: plan.concurrency,
        keep: Keep::Everything,
        on_done: Arc::new(|_: &CaseResult| {}),
    };
    let mut results = run_tests(jobs, run).await.into_iter();
    let runs = planned
        .into_iter()
        .filter_map(|(prompt, keys)| {
            let id = prompt.id.clone()?;
            let results = keys.into_iter().zip(results.by_ref()).collect();
            Some(PromptRun {
                prompt: id,
                results,
            })
        })
        .collect();
    Ran {
        runs,
        unrunnable,
        seconds: started.elapsed().as_secs_f64(),
    }
}

impl Session<'_> {
    /// The selected prompts of `snapshot`: the named ones, or every one with tests.
    fn selected<'s>(&'s self, snapshot: &'s Snapshot) -> impl Iterator<Item = PromptId> + 's {
        snapshot
            .prompts
            .iter()
            .filter_map(|p| p.id.clone().map(|id| (p, id)))
            .filter(move |(p, id)| match &self.named {
                Some(named) => named.contains(id),
                None => p.file.tests.as_ref().is_some_and(|t| !t.value.is_empty()),
            })
            .map(|(_, id)| id)
    }

    /// Runs what `owed` owes in `snapshot`, reading the saves that arrive meanwhile: one
    /// that changes what runs (or the settings, or moves the prompts folder) abandons the
    /// run; the others are owed to the next.
    fn run_turn(
        &mut self,
        runtime: &tokio::runtime::Runtime,
        stop: &mut Stop,
        watcher: &Watcher,
        snapshot: &Snapshot,
        owed: &Owed,
    ) -> Turn {
        let plan = self.plan();
        let mut newer: Option<Snapshot> = None;
        let mut more = Owed::default();
        let mut rewatch = false;
        let step = runtime.block_on(async {
            let run = run_owed(&plan, snapshot, owed);
            tokio::pin!(run);
            loop {
                tokio::select! {
                    () = stop.wait() => break Step::Stop,
                    ran = &mut run => break Step::Ran(ran),
                    saved = watcher.saved() => {
                        rewatch |= saved.prompts_folder;
                        let base = newer.as_ref().unwrap_or(snapshot);
                        let reloaded = self.reload(base, saved, &mut more, owed);
                        if let Some(fresh) = reloaded.snapshot {
                            newer = Some(fresh);
                        }
                        if reloaded.settings
                            || saved.prompts_folder
                            || reloaded.touched.iter().any(|id| owed.prompts.contains(id))
                        {
                            break Step::Abandoned;
                        }
                    }
                }
            }
        });
        Turn {
            step,
            newer,
            more,
            rewatch,
        }
    }

    /// What the next run needs.
    fn plan(&self) -> Plan {
        let settings = self.config.settings.clone();
        Plan {
            recordings: Recordings {
                mode: mode(self.args),
                dir: self.config.root.join(&settings.test.recordings),
            },
            concurrency: self
                .context
                .settings(&self.config)
                .concurrency(self.args.concurrency)
                .max(1),
            settings,
        }
    }

    /// Follows the files where they went: the prompts folder watched again after it was
    /// created, removed or moved (`rewatch`), every file watched anew when the
    /// configuration moved them.
    fn follow(&self, watcher: &mut Watcher, rewatch: bool) {
        let now = watched(&self.config).canonical();
        let result = if &now != watcher.watched() {
            Watcher::start(&now).map(|fresh| *watcher = fresh)
        } else if rewatch {
            watcher.rewatch_prompts()
        } else {
            Ok(())
        };
        if let Err(err) = result {
            self.context.output.error(&err.to_string(), &[]);
        }
    }

    /// Reads the project again after `saved` (against `base`, the state last read) and
    /// adds what the saves affect to `owed`; `running` is what a run under way runs.
    fn reload(
        &mut self,
        base: &Snapshot,
        saved: Saved,
        owed: &mut Owed,
        running: &Owed,
    ) -> Reloaded {
        let mut settings_changed = false;
        if saved.settings {
            let text = settings_text(&self.config);
            if text != self.settings_text {
                settings_changed = true;
                self.settings_text = text;
                match self.context.config() {
                    Ok(config) => self.config = config,
                    Err(err) => {
                        let err =
                            err.hint("the watch goes on with the last configuration it could read");
                        crate::cli::report_error(&self.context.output, &err);
                    }
                }
            }
        }
        let fresh = match Snapshot::load_working_tree(&self.config) {
            Ok(fresh) => fresh,
            Err(err) => {
                self.context.output.error(
                    &err.to_string(),
                    &["the watch goes on: the next save that fixes it runs the tests".to_owned()],
                );
                return Reloaded::default();
            }
        };
        self.print_new_problems(&fresh);
        let changes = crate::eval::selection::changed_prompts(base, &fresh);
        let selected: HashSet<PromptId> = self.selected(&fresh).collect();
        let mut touched = BTreeSet::new();
        if settings_changed {
            touched.extend(selected.iter().cloned());
        }
        // A prompt whose tests were all removed is run too: its results go.
        let known = |id: &PromptId| {
            self.last.has(id) || owed.prompts.contains(id) || running.prompts.contains(id)
        };
        for changed in &changes.changed {
            if selected.contains(&changed.id) || known(&changed.id) {
                touched.insert(changed.id.clone());
            }
        }
        let deleted: Vec<PromptId> = changes
            .deleted
            .iter()
            .filter(|id| known(id))
            .cloned()
            .collect();
        for id in &touched {
            owed.changed(id.clone());
        }
        for id in deleted {
            owed.deleted(id.clone());
            touched.insert(id);
        }
        Reloaded {
            snapshot: Some(fresh),
            touched,
            settings: settings_changed,
        }
    }

    /// Prints the problems of files that could not be loaded which were not printed yet.
    fn print_new_problems(&mut self, snapshot: &Snapshot) {
        let mut now = BTreeSet::new();
        for problem in &snapshot.problems {
            let key = format!("{}:{}", problem.path.display(), problem.message);
            if !self.problems.contains(&key) {
                self.context.output.diagnostic(problem);
            }
            now.insert(key);
        }
        self.problems = now;
    }

    /// Prints a run: the whole table the first time, only what changed afterwards.
    fn print(&mut self, ran: Ran, owed: &Owed, first: bool) {
        let output = &self.context.output;
        let color = output.stdout_colored();
        for why in &ran.unrunnable {
            output.error(why, &[]);
        }
        let results = || {
            ran.runs
                .iter()
                .flat_map(|run| run.results.iter().map(|(_, r)| r))
        };
        let missing: Vec<String> = results()
            .filter(|r| r.lacks_recording())
            .map(report::case_label)
            .collect();
        let summary = Summary::of_all(results());
        if first {
            let mut text = report::result_table(results(), color);
            text.push_str(&report::failure_details(results(), color));
            if !text.is_empty() {
                text.push('\n');
            }
            text.push_str(&report::summary_line(&summary, ran.seconds, color));
            output.data(&text);
        }
        let names: Vec<String> = ran.runs.iter().map(|r| r.prompt.to_string()).collect();
        let deleted: Vec<PromptId> = owed.deleted.iter().cloned().collect();
        let comparison = self.last.compare(ran.runs, &deleted);
        if !first {
            let (changes, changed) = report::rerun_text(&comparison, color);
            let what = match names.as_slice() {
                [] => "the deleted prompts".to_owned(),
                [one] => format!("{} of {one}", MovementCounts::count(summary.total, "test")),
                many => format!(
                    "{} of {} prompts",
                    MovementCounts::count(summary.total, "test"),
                    many.len()
                ),
            };
            let verdict = match changed {
                0 => "no change".to_owned(),
                n => format!("{} changed", MovementCounts::count(n, "test")),
            };
            output.data(&format!(
                "── re-ran {what} ({:.2} s): {verdict}\n{changes}",
                ran.seconds
            ));
        }
        if !missing.is_empty() {
            output.note(&format!(
                "no recording for {}: {}\n  record them with `promptctl test --record`, or watch with `--live`",
                MovementCounts::count(missing.len(), "test"),
                missing.join(", ")
            ));
        }
    }

    fn say_watching(&self) {
        let live = match mode(self.args) {
            Mode::Replay => "replaying recorded answers (`--live` calls the models)",
            Mode::Record => "calling the models and recording their answers",
            Mode::Live => "calling the models live",
        };
        self.context.output.note(&format!(
            "watching {} and the settings files, {live}; a save re-runs the tests it affects (Ctrl-C stops)",
            crate::diagnostic::display_path(&self.config.settings.prompts_dir)
        ));
    }
}

/// Ctrl-C and SIGTERM, caught for the whole session so that none is lost between two
/// waits.
struct Stop {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Stop {
    /// Starts catching the signals; must be called inside the runtime.
    fn new() -> std::io::Result<Stop> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Stop {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        Ok(Stop {})
    }

    /// Waits for either signal.
    async fn wait(&mut self) {
        #[cfg(unix)]
        tokio::select! {
            _ = self.interrupt.recv() => {}
            _ = self.terminate.recv() => {}
        }
        #[cfg(not(unix))]
        let _ = tokio::signal::ctrl_c().await;
    }
}
