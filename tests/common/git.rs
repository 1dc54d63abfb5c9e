//! A real Git repository in a temporary folder, driven with the git CLI in a sealed
//! environment (no user or system Git config, fixed identities, a clock that ticks one
//! minute per commit), and the built `promptctl` binary run inside it.

#![allow(dead_code)]

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::process::Command;

/// The first commit's time; each commit is one minute later.
const EPOCH: u64 = 1_700_000_000;

/// A Git repository in a temporary folder.
pub struct TestRepo {
    dir: tempfile::TempDir,
    clock: Cell<u64>,
}

/// Runs `command` to its end, killed after [`super::RUN_TIMEOUT`] (which fails the test):
/// (exit code, stdout, stderr).
fn finish(command: Command) -> (i32, String, String) {
    let output = assert_cmd::Command::from_std(command)
        .timeout(super::RUN_TIMEOUT)
        .output()
        .unwrap_or_else(|err| panic!("promptctl did not finish: {err}"));
    (
        output.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&output.stdout).into_owned(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

impl TestRepo {
    /// An empty repository on branch `main`.
    pub fn new() -> TestRepo {
        let repo = TestRepo::bare_folder();
        repo.git(&["init", "-q", "-b", "main", "."]);
        repo
    }

    /// An empty folder, not a repository.
    pub fn bare_folder() -> TestRepo {
        TestRepo {
            dir: tempfile::tempdir().expect("tempdir"),
            clock: Cell::new(0),
        }
    }

    /// The repository's folder.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Runs git; panics when it fails. Returns stdout.
    pub fn git(&self, args: &[&str]) -> String {
        self.git_in(self.path(), args)
    }

    /// Runs git in `dir`; panics when it fails. Returns stdout.
    pub fn git_in(&self, dir: &Path, args: &[&str]) -> String {
        let date = format!("{} +0000", EPOCH + self.clock.get() * 60);
        let mut command = Command::new("git");
        command.args(args).current_dir(dir);
        super::seal(&mut command, self.path());
        command
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date);
        let out = command.output().expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Writes a file (creating folders).
    pub fn write(&self, path: &str, text: &str) {
        let full = self.path().join(path);
        if let Some(parent) = full.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(full, text).expect("write");
    }

    /// Deletes a file.
    pub fn remove(&self, path: &str) {
        std::fs::remove_file(self.path().join(path)).expect("remove");
    }

    /// Stages everything and commits; returns the commit id.
    pub fn commit(&self, message: &str) -> String {
        self.git(&["add", "-A"]);
        self.git(&["commit", "-q", "--allow-empty", "-m", message]);
        self.tick();
        self.head()
    }

    /// Moves the clock one minute on.
    pub fn tick(&self) {
        self.clock.set(self.clock.get() + 1);
    }

    /// The id of HEAD.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// Runs promptctl in the repository: (exit code, stdout, stderr).
    pub fn run(&self, args: &[&str]) -> (i32, String, String) {
        self.run_in(self.path(), args)
    }

    /// Runs promptctl in `dir`: (exit code, stdout, stderr).
    pub fn run_in(&self, dir: &Path, args: &[&str]) -> (i32, String, String) {
        let mut command = Command::new(super::binary());
        command.args(args).current_dir(dir);
        super::seal(&mut command, self.path());
        finish(command)
    }

    /// Runs promptctl in the repository with extra environment variables (on top of the
    /// sealed environment): (exit code, stdout, stderr).
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
        let mut command = Command::new(super::binary());
        command.args(args).current_dir(self.path());
        super::seal(&mut command, self.path());
        command.envs(env.iter().copied());
        finish(command)
    }

    /// Runs promptctl with `--format json`, expecting success, and parses stdout.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut all = args.to_vec();
        all.extend(["--format", "json"]);
        let (code, stdout, stderr) = self.run(&all);
        assert_eq!(code, 0, "promptctl {all:?} failed:\n{stdout}\n{stderr}");
        serde_json::from_str(&stdout).unwrap_or_else(|err| panic!("not JSON ({err}):\n{stdout}"))
    }

    /// The Git folder.
    pub fn git_dir(&self) -> PathBuf {
        self.path().join(".git")
    }
}
