//! The one test harness: a sealed project folder ([`Project`]), a Git repository
//! ([`git::TestRepo`]), a running server ([`server::Server`]) and a database
//! ([`db::TestDb`]), all running the real `promptctl` binary in the one sealed environment
//! ([`seal`]) and killing a run that hangs ([`RUN_TIMEOUT`]).
//!
//! Every test gets its own temporary folder with an empty `promptctl.toml`, so config
//! discovery never walks out of it. Only generic helpers live here; Git-specific ones
//! belong in `git.rs`.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use assert_cmd::Command;

/// A temporary project folder, deleted when dropped.
pub struct Project {
    dir: tempfile::TempDir,
}

impl Project {
    /// An empty project: a folder holding only an empty `promptctl.toml`.
    pub fn new() -> Project {
        let project = Project::bare();
        project.write("promptctl.toml", "");
        project
    }

    /// A folder with nothing in it (not even `promptctl.toml`).
    pub fn bare() -> Project {
        let dir = tempfile::Builder::new()
            .prefix("promptctl-test-")
            .tempdir()
            .expect("create a temporary folder");
        Project { dir }
    }

    /// The project's root folder.
    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Absolute path of `relative` inside the project.
    pub fn path(&self, relative: &str) -> PathBuf {
        self.dir.path().join(relative)
    }

    /// Writes `text` to `relative`, creating parent folders.
    pub fn write(&self, relative: &str, text: &str) -> &Project {
        self.write_bytes(relative, text.as_bytes())
    }

    /// Writes raw bytes to `relative`, creating parent folders.
    pub fn write_bytes(&self, relative: &str, bytes: &[u8]) -> &Project {
        let path = self.path(relative);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("create parent folders");
        }
        std::fs::write(&path, bytes).expect("write file");
        self
    }

    /// Reads a file of the project as text.
    pub fn read(&self, relative: &str) -> String {
        std::fs::read_to_string(self.path(relative)).expect("read file")
    }

    /// `promptctl ARGS` run in the project folder (its HOME too), with a sealed
    /// environment.
    pub fn promptctl<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = sealed_promptctl(self.root());
        command.current_dir(self.root()).args(args);
        command
    }

    /// Runs `promptctl ARGS` and returns what it did.
    pub fn run<I, S>(&self, args: I) -> Outcome
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        Outcome::of(&mut self.promptctl(args))
    }
}

/// The binary under test: the one Cargo built, or `PROMPTCTL_TEST_BIN` when set (to run
/// the tests against another build, e.g. to see a new test fail on the code before a fix).
pub fn binary() -> PathBuf {
    std::env::var_os("PROMPTCTL_TEST_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_promptctl")),
        PathBuf::from,
    )
}

/// How long one run of promptctl may take before the harness kills it and the test
/// fails: a hang fails the test instead of blocking the suite (a bound, not a figure).
pub const RUN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// The environment every child process the tests start gets, and nothing else: `PATH`,
/// `home` as `HOME`, no user or system Git config, a fixed Git identity, colour off, the C
/// locale. (Nothing of the developer's shell: API keys, `DATABASE_URL`, `GITHUB_ACTIONS`,
/// colour variables, proxies.)
pub fn seal(command: &mut std::process::Command, home: &Path) {
    command
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", home)
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Ada Lovelace")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Lovelace")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .env("NO_COLOR", "1")
        .env("TERM", "dumb")
        .env("LC_ALL", "C");
}

/// The `promptctl` binary in the sealed environment (`home` as HOME), colour off, killed
/// after [`RUN_TIMEOUT`].
pub fn sealed_promptctl(home: &Path) -> Command {
    let mut command = std::process::Command::new(binary());
    seal(&mut command, home);
    let mut command = Command::from_std(command);
    command.arg("--color").arg("never").timeout(RUN_TIMEOUT);
    command
}

/// [`sealed_promptctl`] run nowhere in particular (set `current_dir` or pass `-C`), HOME
/// an empty folder of its own.
pub fn promptctl_command() -> Command {
    static HOME: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    let home = HOME.get_or_init(|| tempfile::tempdir().expect("a home folder"));
    sealed_promptctl(home.path())
}

/// What a run of the binary did.
#[derive(Debug)]
pub struct Outcome {
    /// The exit code (`-1` when killed by a signal, which a test should never see).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl Outcome {
    /// Runs `command` and collects its outcome.
    pub fn of(command: &mut Command) -> Outcome {
        let output = command.output().expect("run promptctl");
        Outcome {
            code: output.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
        }
    }

    /// Asserts the exit code, showing both streams when it differs.
    #[track_caller]
    pub fn code(&self, expected: i32) -> &Outcome {
        assert_eq!(
            self.code, expected,
            "unexpected exit code\n--- stdout ---\n{}\n--- stderr ---\n{}",
            self.stdout, self.stderr
        );
        self
    }

    /// Asserts that stderr contains `needle`.
    #[track_caller]
    pub fn stderr_has(&self, needle: &str) -> &Outcome {
        assert!(
            self.stderr.contains(needle),
            "stderr lacks {needle:?}\n--- stderr ---\n{}",
            self.stderr
        );
        self
    }

    /// Asserts that stdout contains `needle`.
    #[track_caller]
    pub fn stdout_has(&self, needle: &str) -> &Outcome {
        assert!(
            self.stdout.contains(needle),
            "stdout lacks {needle:?}\n--- stdout ---\n{}",
            self.stdout
        );
        self
    }

    /// Asserts that the binary did not panic.
    #[track_caller]
    pub fn no_panic(&self) -> &Outcome {
        assert!(
            !self.stderr.contains("panicked") && self.code != 101,
            "promptctl panicked\n--- stderr ---\n{}",
            self.stderr
        );
        self
    }

    /// Stdout parsed as JSON.
    #[track_caller]
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|err| panic!("stdout is not JSON ({err}):\n{}", self.stdout))
    }
}
pub mod browser;
pub mod db;
pub mod git;
pub mod server;

/// Every file under `dir`, recursively (none when it cannot be read).
pub fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let path = entry.path();
        if path.is_dir() {
            found.extend(files_under(&path));
        } else {
            found.push(path);
        }
    }
    found
}
