//! Helpers shared by the integration tests: a sealed project folder and a runner for the
//! real `promptctl` binary.
//!
//! Every test gets its own temporary folder with an empty `promptctl.toml`, so config
//! discovery never walks out of it, and runs the binary with an environment cleared of
//! anything that changes its output (colour variables, the user's home and Git config).
//! Only generic helpers live here; Git-specific ones belong in their own module.

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

    /// `promptctl ARGS` run in the project folder, with a sealed environment.
    pub fn promptctl<I, S>(&self, args: I) -> Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<std::ffi::OsStr>,
    {
        let mut command = promptctl_command();
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

/// The `promptctl` binary with a sealed environment and colour off, run nowhere in
/// particular (set `current_dir` or pass `-C`).
pub fn promptctl_command() -> Command {
    let mut command = Command::new(binary());
    command
        .env_remove("NO_COLOR")
        .env_remove("CLICOLOR_FORCE")
        .env_remove("CLICOLOR")
        .env_remove("DATABASE_URL")
        .env_remove("OPENAI_API_KEY")
        .env_remove("ANTHROPIC_API_KEY")
        .env_remove("GITHUB_ACTIONS")
        .env_remove("GITHUB_STEP_SUMMARY")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("TERM", "dumb")
        .arg("--color")
        .arg("never")
        .timeout(std::time::Duration::from_secs(60));
    command
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
pub mod db;
pub mod git;
pub mod server;
