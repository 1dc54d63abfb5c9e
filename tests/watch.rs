//! `promptctl test --watch` driven as a prompt author would: the real binary watching a
//! real project, files saved the way editors save them (written in place, or written
//! aside and renamed over), answers replayed from recordings made against a real HTTP
//! server speaking OpenAI's wire format, and Ctrl-C (SIGINT) at the end.

mod common;
#[path = "support/stub_provider.rs"]
mod stub_provider;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, channel};
use std::time::{Duration, Instant};

use common::Project;
use stub_provider::{StubProvider, last_user_message, openai_answer};

/// How long a test waits for a line before it fails (a bound against hangs, not a figure:
/// `scripts/bench-watch.sh` measures the latency).
const WAIT: Duration = Duration::from_secs(20);
/// How long "prints nothing" is watched for.
const QUIET: Duration = Duration::from_millis(1500);

/// The stub model: a polite answer to a polite request, a rude one otherwise.
fn answer(message: &str) -> String {
    if message.contains("politely") {
        format!(
            "Hello {}, how can I help?",
            message.split_whitespace().nth(1).unwrap_or("you")
        )
    } else {
        "Go away.".to_owned()
    }
}

const CONFIG: &str = "default_provider = \"stub\"\n[providers.stub]\nkind = \"openai\"\nbase_url = \"URL\"\napi_key_env = \"TEST_API_KEY\"\n";

fn prompt(template: &str) -> String {
    format!(
        r#"model: gpt-4o
variables:
  name: {{type: string, required: true}}
template: "{template}"
tests:
  - name: greets by name
    vars: {{name: Ada}}
    assert:
      - {{type: contains, value: Hello Ada}}
  - vars: {{name: Grace}}
    assert:
      - {{type: contains, value: a}}
"#
    )
}

const POLITE: &str = "Greet {{ name }} politely.";
const CURT: &str = "Greet {{ name }}.";

/// A project whose prompt's tests are recorded for both templates, the stub gone.
fn recorded_project() -> Project {
    let server =
        StubProvider::start(|request, _| openai_answer(&answer(&last_user_message(&request.body))));
    let project = Project::new();
    project.write("promptctl.toml", &CONFIG.replace("URL", &server.url()));
    for template in [CURT, POLITE] {
        project.write("prompts/support/greet.yaml", &prompt(template));
        let outcome = common::Outcome::of(
            project
                .promptctl(["test", "--record"])
                .env("TEST_API_KEY", "sk-test"),
        );
        assert!(outcome.code <= 1, "{}\n{}", outcome.stdout, outcome.stderr);
    }
    project.write(
        "prompts/support/other.yaml",
        "model: gpt-4o\ntemplate: unrelated\n",
    );
    project
}

/// A running `test --watch` and its stdout lines, read on a thread.
struct Watch {
    child: Child,
    lines: Receiver<String>,
}

impl Watch {
    fn start(project: &Project, args: &[&str]) -> Watch {
        Watch::start_with(Command::new(common::binary()), project, args)
    }

    /// `command` (the binary, maybe with an environment variable) watching `project`.
    fn start_with(mut command: Command, project: &Project, args: &[&str]) -> Watch {
        let extra: Vec<_> = command
            .get_envs()
            .map(|(k, v)| (k.to_owned(), v.map(ToOwned::to_owned)))
            .collect();
        common::seal(&mut command, project.root());
        for (key, value) in extra.into_iter().filter_map(|(k, v)| v.map(|v| (k, v))) {
            command.env(key, value);
        }
        let mut child = command
            .current_dir(project.root())
            .args(["test", "--watch"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn promptctl test --watch");
        let (sender, lines) = channel();
        let stdout = child.stdout.take().expect("stdout");
        let stderr = child.stderr.take().expect("stderr");
        let out = sender.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                let _ = out.send(line);
            }
        });
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = sender.send(format!("stderr: {line}"));
            }
        });
        Watch { child, lines }
    }

    /// Every line up to and including the first that contains `needle`.
    fn until(&self, needle: &str) -> Vec<String> {
        let deadline = Instant::now() + WAIT;
        let mut seen = Vec::new();
        loop {
            match self
                .lines
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let found = line.contains(needle);
                    seen.push(line);
                    if found {
                        return seen;
                    }
                }
                Err(RecvTimeoutError::Timeout) => {
                    panic!("no `{needle}` within {WAIT:?}: {seen:#?}")
                }
                Err(RecvTimeoutError::Disconnected) => panic!("the watch ended: {seen:#?}"),
            }
        }
    }

    /// The lines printed within `QUIET`.
    fn quiet(&self) -> Vec<String> {
        let deadline = Instant::now() + QUIET;
        let mut seen = Vec::new();
        while let Ok(line) = self
            .lines
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            seen.push(line);
        }
        seen
    }

    /// Sends SIGINT (Ctrl-C) and returns the exit code.
    fn interrupt(mut self) -> i32 {
        let status = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .expect("kill");
        assert!(status.success());
        let deadline = Instant::now() + WAIT;
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status.code().unwrap_or(-1);
            }
            assert!(
                Instant::now() < deadline,
                "the watch did not stop on Ctrl-C"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// Saves `text` the way many editors do: written aside, then renamed over the file.
fn save_by_rename(project: &Project, relative: &str, text: &str) {
    let aside = project.path(&format!("{relative}.tmp~"));
    std::fs::write(&aside, text).expect("write");
    std::fs::rename(&aside, project.path(relative)).expect("rename");
}

#[test]
fn a_breaking_save_prints_the_flip_a_fix_flips_back_and_an_unrelated_save_prints_nothing() {
    let project = recorded_project();
    project.write("prompts/support/greet.yaml", &prompt(POLITE));
    let watch = Watch::start(&project, &["--replay"]);
    // The first run prints its whole table; watching began before it read the files.
    let first = watch.until("2 passed").join("\n");
    assert!(
        first.contains("PASS  support/greet › greets by name"),
        "{first}"
    );

    // The break, written in place: the named test flips, the other keeps passing.
    project.write("prompts/support/greet.yaml", &prompt(CURT));
    let lines = watch.until("re-ran").join("\n");
    let lines = format!("{lines}\n{}", watch.quiet().join("\n"));
    assert!(lines.contains("re-ran 2 tests of support/greet"), "{lines}");
    assert!(lines.contains("2 tests changed"), "{lines}");
    assert!(
        lines.contains("✗ passed → failed")
            && lines.contains("support/greet › greets by name")
            && lines.contains("failed, score 0.00: contains"),
        "{lines}"
    );
    assert!(lines.contains("answer (before → now)"), "{lines}");
    // The other test still passes, with another answer.
    assert!(lines.contains("~ new answer"), "{lines}");

    // The fix, saved by rename as editors do.
    save_by_rename(&project, "prompts/support/greet.yaml", &prompt(POLITE));
    let lines = watch.until("re-ran").join("\n");
    let lines = format!("{lines}\n{}", watch.quiet().join("\n"));
    assert!(lines.contains("✓ failed → passed"), "{lines}");
    assert!(lines.contains("support/greet › greets by name"), "{lines}");

    // Unrelated saves: a file promptctl does not read, a prompt without tests, a comment.
    project.write("notes.md", "a note");
    project.write("prompts/support/notes.txt", "more notes");
    project.write(
        "prompts/support/other.yaml",
        "model: gpt-4o\ntemplate: changed\n",
    );
    project.write(
        "prompts/support/greet.yaml",
        &format!("# a comment\n{}", prompt(POLITE)),
    );
    let quiet = watch.quiet();
    assert!(quiet.is_empty(), "{quiet:#?}");

    assert_eq!(watch.interrupt(), 0);
    let leftovers: Vec<_> = common::files_under(&project.path("prompts"))
        .into_iter()
        .filter(|p| p.to_string_lossy().contains(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn a_missing_recording_is_named_and_a_partial_save_reruns_its_includers() {
    let project = recorded_project();
    project.write("prompts/support/greet.yaml", &prompt(POLITE));
    project.write("prompts/support/_partials/tone.j2", "politely");
    let watch = Watch::start(&project, &["support/greet"]);
    watch.until("stderr: watching");
    // The prompt now includes the partial: the same text, so the same recording.
    project.write(
        "prompts/support/greet.yaml",
        &prompt("Greet {{ name }} {% include 'support/_partials/tone.j2' %}."),
    );
    let lines = watch.until("re-ran").join("\n");
    assert!(lines.contains("no change"), "{lines}");
    // A partial's save re-runs the prompt that includes it; no recording answers it.
    project.write("prompts/support/_partials/tone.j2", "kindly");
    // Its lines go to stdout, the note to stderr: either may be read first.
    let lines = watch.until("passed → error").join("\n");
    let lines = format!("{lines}\n{}", watch.quiet().join("\n"));
    assert!(lines.contains("no recording for 2 tests"), "{lines}");
    assert!(lines.contains("--record"), "{lines}");
    assert_eq!(watch.interrupt(), 0);
}

#[test]
fn reading_or_rewriting_files_unchanged_prints_nothing_and_a_recreated_prompts_folder_is_watched() {
    let project = recorded_project();
    project.write("prompts/support/greet.yaml", &prompt(POLITE));
    let watch = Watch::start(&project, &["--replay"]);
    watch.until("2 passed");
    // Reads (as an editor opening a file, or grep, do) and saves that change nothing.
    for file in ["promptctl.toml", "prompts/support/greet.yaml"] {
        let text = project.read(file);
        project.write(file, &text);
    }
    let quiet = watch.quiet();
    assert!(
        quiet.iter().all(|l| l.starts_with("stderr: watching")),
        "{quiet:#?}"
    );
    // A configuration that changes re-runs every selected test, once.
    let config = project.read("promptctl.toml");
    project.write("promptctl.toml", &format!("{config}\n# tuned\n"));
    let lines = watch.until("re-ran").join("\n");
    assert!(lines.contains("2 tests of support/greet"), "{lines}");
    assert!(lines.contains("no change"), "{lines}");
    let quiet = watch.quiet();
    assert!(quiet.is_empty(), "re-ran once: {quiet:#?}");

    // The prompts folder removed (a checkout without it) and written again.
    let saved = project.path("saved-prompts");
    std::fs::rename(project.path("prompts"), &saved).expect("move the folder away");
    watch.until("prompts folder");
    std::fs::rename(&saved, project.path("prompts")).expect("move it back");
    std::thread::sleep(Duration::from_millis(500));
    watch.quiet();
    project.write("prompts/support/greet.yaml", &prompt(CURT));
    let lines = watch.until("passed → failed").join("\n");
    assert!(lines.contains("support/greet › greets by name"), "{lines}");
    assert_eq!(watch.interrupt(), 0);
}

#[test]
fn a_nested_prompts_folder_whose_parent_comes_back_is_watched_live() {
    let server =
        StubProvider::start(|request, _| openai_answer(&answer(&last_user_message(&request.body))));
    let project = Project::new();
    project.write(
        "promptctl.toml",
        &format!(
            "prompts_dir = \"src/prompts\"\n{}",
            CONFIG.replace("URL", &server.url())
        ),
    );
    project.write("src/prompts/support/greet.yaml", &prompt(POLITE));
    let mut command = Command::new(common::binary());
    command.env("TEST_API_KEY", "sk-test");
    let watch = Watch::start_with(command, &project, &["--live"]);
    watch.until("2 passed");
    // A checkout of a branch without `src`, then back.
    let away = project.path("src-away");
    std::fs::rename(project.path("src"), &away).expect("move src away");
    watch.until("prompts folder");
    std::fs::rename(&away, project.path("src")).expect("move it back");
    std::thread::sleep(Duration::from_millis(500));
    watch.quiet();
    project.write("src/prompts/support/greet.yaml", &prompt(CURT));
    let lines = watch.until("passed → failed").join("\n");
    assert!(lines.contains("support/greet › greets by name"), "{lines}");
    assert_eq!(watch.interrupt(), 0);
}

#[test]
fn watch_refuses_what_it_cannot_do() {
    let project = Project::new();
    project.write("prompts/a/b.yaml", "model: echo\ntemplate: hi\n");
    let outcome = project.run(["test", "--watch", "--changed-since", "main"]);
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    let outcome = project.run(["test", "--live"]);
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    let outcome = project.run(["--format", "json", "test", "--watch"]);
    assert_eq!(outcome.code, 2, "{}", outcome.stderr);
    assert!(outcome.stderr.contains("--watch"), "{}", outcome.stderr);
}
