//! Hostile input from the hardening issue, end to end: workflow-command injection in GitHub
//! mode, files that are not regular files, odd but real Git data, overflowing numbers and
//! control characters. Every test drives the built binary over a real Git repository, and
//! every run is killed (failing the test) if it hangs.

mod common;

use common::git::TestRepo;

const PROMPT: &str = "model: echo\nvariables:\n  x: {type: string}\ntemplate: \"Hi {{ x }}\"\ntests:\n  - name: says hi\n    vars: {x: a}\n    assert: [{type: contains, value: Hi}]\n";

/// A repository with one committed prompt, `svc/good`.
fn repo_with_prompt() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("promptctl.toml", "");
    repo.write("prompts/svc/good.yaml", PROMPT);
    repo.commit("add good");
    repo
}

#[cfg(unix)]
fn symlink(target: &std::path::Path, link: &std::path::Path) {
    std::os::unix::fs::symlink(target, link).expect("symlink");
}

#[cfg(unix)]
fn mkfifo(path: &std::path::Path) {
    let status = std::process::Command::new("mkfifo")
        .arg(path)
        .status()
        .expect("mkfifo runs");
    assert!(status.success(), "mkfifo failed");
}

/// Uncommitted symbolic links to `/dev/zero` and to a prompt outside the repository, and
/// FIFOs, named as prompt files and partials: no command follows, reads or hangs on them,
/// or lists what they point to; the commands that load every file (`check`, `fmt`, `test`)
/// report each one as `not-a-file` (exit 2), as `check` does, and the others go on with
/// the one real prompt.
#[cfg(unix)]
#[test]
fn non_regular_prompt_files_and_partials_are_reported_and_never_read() {
    let repo = repo_with_prompt();
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        outside.path().join("secret.yaml"),
        "name: leaked\nmodel: echo\ntemplate: SECRET\n",
    )
    .expect("write");
    let dir = repo.path().join("prompts/svc");
    symlink(std::path::Path::new("/dev/zero"), &dir.join("zero.yaml"));
    symlink(
        &outside.path().join("secret.yaml"),
        &dir.join("elsewhere.yaml"),
    );
    symlink(outside.path(), &repo.path().join("prompts/linked"));
    mkfifo(&dir.join("pipe.yaml"));
    symlink(std::path::Path::new("/dev/zero"), &dir.join("zero.j2"));
    mkfifo(&dir.join("pipe.jinja"));

    let listed = repo.json(&["list", "--all"]);
    let names: Vec<&str> = listed
        .as_array()
        .expect("array")
        .iter()
        .filter_map(|row| row["name"].as_str())
        .collect();
    assert_eq!(names, ["good"], "{listed}");

    for (args, expected) in [
        (&["list"][..], 0),
        (&["list", "--all"], 0),
        (&["log", "good"], 0),
        (&["render", "good", "--var", "x=1"], 0),
        (&["show", "good"], 0),
        (&["status"], 0),
        (&["diff", "good", "1"], 0),
        (&["check"], 2),
        (&["fmt", "--check"], 2),
        (&["test", "--model", "echo"], 2),
    ] {
        let (code, stdout, stderr) = repo.run(args);
        assert_eq!(code, expected, "{args:?}\n{stdout}\n{stderr}");
        let all = format!("{stdout}{stderr}");
        assert!(
            !all.contains("SECRET") && !all.contains("leaked"),
            "{args:?} read the file outside the repository\n{all}"
        );
        if expected == 2 {
            let partials = if args[0] == "fmt" {
                &[][..]
            } else {
                &["zero.j2", "pipe.jinja"][..]
            };
            for link in ["zero.yaml", "elsewhere.yaml", "pipe.yaml"]
                .iter()
                .chain(partials)
            {
                assert!(all.contains(link), "{args:?} does not report {link}\n{all}");
            }
        }
    }
    let (code, _, stderr) = repo.run(&["log", "leaked"]);
    assert_eq!(code, 2, "{stderr}");
    // Named on the command line, a link is refused rather than followed.
    let (code, _, stderr) = repo.run(&["fmt", "prompts/svc/zero.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    // Committed, the links are still no prompt files: history skips them as Git stores
    // them (mode 120000), and the working tree reads none of them.
    repo.git(&[
        "add",
        "prompts/svc/zero.yaml",
        "prompts/svc/elsewhere.yaml",
        "prompts/svc/zero.j2",
        "prompts/linked",
    ]);
    repo.git(&["commit", "-q", "-m", "links"]);
    for args in [&["list", "--all"][..], &["log", "good"], &["status"]] {
        let (code, stdout, stderr) = repo.run(args);
        assert_eq!(code, 0, "{args:?}\n{stdout}\n{stderr}");
        assert!(!stdout.contains("leaked"), "{args:?}\n{stdout}");
    }
}

/// `environments.yaml` and `promptctl.toml` that are a link to `/dev/zero`, a FIFO, a link to
/// a file outside the repository or a huge file: a clear error (exit 2), never a hang or a
/// read without end.
#[cfg(unix)]
#[test]
fn settings_files_that_are_not_regular_files_are_refused() {
    let outside = tempfile::tempdir().expect("tempdir");
    let elsewhere = outside.path().join("environments.yaml");
    std::fs::write(&elsewhere, "environments: {}\n").expect("write");
    for file in ["environments.yaml", "promptctl.toml"] {
        for kind in ["zero", "fifo", "outside", "huge"] {
            let repo = repo_with_prompt();
            let path = repo.path().join(file);
            let _ = std::fs::remove_file(&path);
            match kind {
                "zero" => symlink(std::path::Path::new("/dev/zero"), &path),
                "fifo" => mkfifo(&path),
                "outside" => symlink(&elsewhere, &path),
                _ => std::fs::write(&path, "#".repeat(2 * 1024 * 1024)).expect("write"),
            }
            for args in [&["status"][..], &["check"]] {
                let (code, stdout, stderr) = repo.run(args);
                // `check` may report a bad environments file as a finding (exit 1).
                let lenient = args == ["check"] && file == "environments.yaml";
                assert!(
                    code == 2 || (lenient && code == 1),
                    "{file} ({kind}): {args:?} exited {code}\n{stdout}\n{stderr}"
                );
                let expected = if kind == "huge" {
                    "limit"
                } else {
                    "not a regular file"
                };
                assert!(
                    stderr.contains(expected) || stdout.contains(expected),
                    "{file} ({kind}): {args:?}\n{stdout}\n{stderr}"
                );
            }
        }
    }
}

/// A prompts folder that is a link to a folder elsewhere is refused, not followed.
#[cfg(unix)]
#[test]
fn a_linked_prompts_folder_is_refused() {
    let repo = repo_with_prompt();
    let outside = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(outside.path().join("svc")).expect("mkdir");
    std::fs::write(
        outside.path().join("svc/secret.yaml"),
        "model: echo\ntemplate: SECRET\n",
    )
    .expect("write");
    repo.write("promptctl.toml", "prompts_dir = \"linked\"\n");
    symlink(outside.path(), &repo.path().join("linked"));
    for args in [&["check"][..], &["fmt", "--check"], &["render", "secret"]] {
        let (code, stdout, stderr) = repo.run(args);
        assert_eq!(code, 2, "{args:?}\n{stdout}\n{stderr}");
        assert!(stderr.contains("symbolic link"), "{args:?}\n{stderr}");
        assert!(!stdout.contains("SECRET"), "{args:?}\n{stdout}");
    }
}

#[test]
fn a_prompts_folder_outside_the_project_is_refused() {
    let parent = tempfile::tempdir().expect("tempdir");
    let outside = parent.path().join("outside");
    std::fs::create_dir_all(outside.join("svc")).expect("mkdir");
    std::fs::write(
        outside.join("svc/secret.yaml"),
        "model: echo\ntemplate: SECRET\n",
    )
    .expect("write");
    let repo = repo_with_prompt();
    let relative = pathdiff(&outside, repo.path());
    repo.write("promptctl.toml", &format!("prompts_dir = \"{relative}\"\n"));
    for args in [
        &["check"][..],
        &["render", "secret"],
        &["test", "--model", "echo"],
    ] {
        let (code, stdout, stderr) = repo.run(args);
        assert_eq!(code, 2, "{args:?}\n{stdout}\n{stderr}");
        assert!(stderr.contains("outside the project"), "{args:?}\n{stderr}");
        assert!(!stdout.contains("SECRET"), "{args:?}\n{stdout}");
    }
}

/// `target` relative to `base`, through `..` (both absolute).
fn pathdiff(target: &std::path::Path, base: &std::path::Path) -> String {
    let base = base.canonicalize().expect("base");
    let target = target.canonicalize().expect("target");
    let ups = base.components().count();
    let mut relative = "../".repeat(ups - 1);
    relative.push_str(&target.to_string_lossy()[1..]);
    relative
}

/// A 300 MB prompt file and partial in history are read only to the size limit: `list`,
/// `log` and `check` run in 342 MiB of address space, less than one of the files and the
/// debug binary's own mapping (about 170 MB) take together (they needed twice the file
/// before). 250 MB left the debug binary too little room for its threads and libgit2.
#[cfg(unix)]
#[test]
fn huge_committed_files_are_read_only_to_the_limit() {
    let repo = repo_with_prompt();
    let huge = "#".repeat(300 * 1024 * 1024);
    repo.write("prompts/svc/huge.yaml", &huge);
    repo.write("prompts/svc/huge.j2", &huge);
    drop(huge);
    repo.commit("huge");
    for args in [
        "--no-cache list",
        "log good",
        "render good --version 1 --var x=1",
    ] {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -v 350000; exec \"$0\" {args}",))
            .arg(common::binary())
            .current_dir(repo.path())
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .output()
            .expect("sh runs");
        assert!(
            out.status.success(),
            "{args}: {}\n{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

/// A partial, prompt or vars file of `/dev/zero` size is cut at the limit.
#[cfg(unix)]
#[test]
fn vars_file_reads_are_bounded() {
    let repo = repo_with_prompt();
    let (code, _, stderr) = repo.run(&["render", "good", "--vars-file", "/dev/zero"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("limit"), "{stderr}");
    // A vars file committed as a link to a secret outside the repository is refused (its
    // content would show in a parse error); a link the user makes outside it is theirs.
    let outside = tempfile::tempdir().expect("tempdir");
    let secret = outside.path().join("secret");
    std::fs::write(&secret, "x: [SECRET\n").expect("write");
    symlink(&secret, &repo.path().join("vars.yaml"));
    let (code, stdout, stderr) = repo.run(&["render", "good", "--vars-file", "vars.yaml"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("not a regular file"), "{stderr}");
    assert!(
        !stdout.contains("SECRET") && !stderr.contains("SECRET"),
        "{stderr}"
    );
    std::fs::write(outside.path().join("vars.yaml"), "x: hello\n").expect("write");
    symlink(
        &outside.path().join("vars.yaml"),
        &outside.path().join("link.yaml"),
    );
    let link = outside.path().join("link.yaml");
    let (code, stdout, stderr) = repo.run(&[
        "render",
        "good",
        "--vars-file",
        link.to_str().expect("utf-8"),
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("hello"), "{stdout}");
}

/// Commits `tree` on top of `HEAD` with the raw `author` and `committer` lines given, as
/// only a broken or old tool writes them, and moves `main` to it; returns its id.
fn raw_commit(repo: &TestRepo, author: &str, committer: &str, message: &str) -> String {
    repo.git(&["add", "-A"]);
    let tree = repo.git(&["write-tree"]).trim().to_owned();
    let parent = repo.head();
    let object = format!(
        "tree {tree}\nparent {parent}\nauthor {author}\ncommitter {committer}\n\n{message}\n"
    );
    let file = repo.path().join(".git/raw-commit");
    std::fs::write(&file, object).expect("write");
    let id = repo
        .git(&[
            "hash-object",
            "-t",
            "commit",
            "-w",
            "--literally",
            ".git/raw-commit",
        ])
        .trim()
        .to_owned();
    repo.git(&["update-ref", "refs/heads/main", &id]);
    id
}

/// Author and committer lines Git shows although they break the rules (no email, an
/// overflowing or missing time, a bad time zone, trailing fields): `list`, `log`, `show`
/// and `render --version` read them as Git does, with the author Git shows and the time
/// Git shows (0 for a time Git cannot show, UTC for a zone it cannot use).
#[test]
fn odd_but_real_commits_are_read_as_git_reads_them() {
    // (author line, committer line, expected author name, email, committer timestamp).
    let cases = [
        (
            "A 1700000000 +0000",
            "C <c@d> 1700000000 +0000",
            "",
            "",
            1_700_000_000,
        ),
        (
            "A <a@b> 99999999999999999999 +0000",
            "C <c@d> 99999999999999999999 +0000",
            "A",
            "a@b",
            0,
        ),
        (
            "A <a@b> 1700000000 +9999",
            "C <c@d> 1700000100 +9999",
            "A",
            "a@b",
            1_700_000_100,
        ),
        (
            "A <a@b> 1700000000 bogus",
            "C <c@d> 1700000200 x",
            "A",
            "a@b",
            1_700_000_200,
        ),
        ("A <a@b>", "C <c@d>", "A", "a@b", 0),
        ("<> 1 +0000", "C <c@d> 12abc +0000", "", "", 0),
        (
            "A <a@b 1700000000 +0000",
            "C <c@d> 9223372036854775807 -0130",
            "",
            "",
            0,
        ),
        (
            "A <a@b> 1700000000 +0100 extra",
            "C <c@d> 1700000300 +0100 more",
            "A",
            "a@b",
            1_700_000_300,
        ),
    ];
    let repo = repo_with_prompt();
    for (index, (author, committer, _, _, _)) in cases.iter().enumerate() {
        repo.write(
            "prompts/svc/good.yaml",
            &PROMPT.replace("Hi", &format!("Hello{index}")),
        );
        raw_commit(&repo, author, committer, &format!("odd {index}"));
    }
    let short_id = repo
        .git(&["rev-parse", "--short=7", "main~1"])
        .trim()
        .to_owned();
    let git_log = repo.git(&["log", "--format=%H %an"]);
    assert_eq!(git_log.lines().count(), cases.len() + 1, "{git_log}");

    let list = repo.json(&["list"]);
    assert_eq!(list[0]["version"], cases.len() + 1, "{list}");
    let log = repo.json(&["log", "good"]);
    let versions = log.as_array().expect("array");
    assert_eq!(versions.len(), cases.len() + 1, "{log}");
    for (index, (_, _, name, email, time)) in cases.iter().enumerate() {
        let version = &versions[index + 1];
        assert_eq!(version["author"], *name, "case {index}: {version}");
        assert_eq!(version["author_email"], *email, "case {index}: {version}");
        assert_eq!(version["timestamp"], *time, "case {index}: {version}");
    }
    for args in [
        &["list"][..],
        &["log", "good"],
        &["show", "good@3"],
        &["render", "good", "--version", "4", "--var", "x=1"],
        &["status"],
        &["diff", "good", "2", "5"],
        &["--no-cache", "list"],
        &["--rev", "main", "log", "good"],
        &["--rev", "main~2", "list"],
        &["--rev", "main^^1~1", "log", "good"],
        &["--rev", &short_id, "show", "good"],
    ] {
        let (code, stdout, stderr) = repo.run(args);
        assert_eq!(code, 0, "{args:?}\n{stdout}\n{stderr}");
    }
    // A rollback commits on top of them, as Git would.
    let (code, stdout, stderr) = repo.run(&["rollback", "good", "--to", "1", "--skip-tests"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let raw = repo.git(&["cat-file", "commit", "HEAD"]);
    let header: Vec<&str> = raw.lines().take_while(|l| !l.is_empty()).collect();
    assert_eq!(header.len(), 4, "{raw}");
    assert!(
        header[0].starts_with("tree ") && header[1].starts_with("parent "),
        "{raw}"
    );
    for (line, role) in header[2..].iter().zip(["author", "committer"]) {
        let rest = line
            .strip_prefix(&format!("{role} Ada Lovelace <ada@example.com> "))
            .unwrap_or_else(|| panic!("{raw}"));
        let (seconds, zone) = rest.split_once(' ').expect("time and zone");
        assert!(seconds.parse::<i64>().is_ok() && zone.len() == 5, "{raw}");
    }
    assert_eq!(
        repo.git(&["log", "-1", "--format=%an <%ae>|%P"]).trim(),
        format!(
            "Ada Lovelace <ada@example.com>|{}",
            repo.git(&["rev-parse", "HEAD~1"]).trim()
        )
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    let log = repo.json(&["log", "good"]);
    assert_eq!(log.as_array().map(Vec::len), Some(cases.len() + 2), "{log}");
    // A pull request on top of them: its merge base is found all the same.
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("prompts/svc/good.yaml", PROMPT);
    repo.commit("back to Hi");
    let (code, stdout, stderr) = repo.run(&["test", "--changed-since", "main"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("svc/good › says hi"), "{stdout}");
}

/// In a repository without commits, `log`, `show` and `render --version` find the prompt
/// `list` shows, as its uncommitted version 1.
#[test]
fn without_commits_log_shows_what_list_shows() {
    let repo = TestRepo::new();
    repo.write("promptctl.toml", "");
    repo.write("prompts/svc/fresh.yaml", PROMPT);
    let list = repo.json(&["list"]);
    assert_eq!(list[0]["name"], "fresh", "{list}");
    assert_eq!(list[0]["version"], 1, "{list}");
    assert_eq!(list[0]["uncommitted"], true, "{list}");
    let log = repo.json(&["log", "fresh"]);
    assert_eq!(log[0]["number"], 1, "{log}");
    assert_eq!(log[0]["uncommitted"], true, "{log}");
    for args in [
        &["log", "fresh"][..],
        &["show", "fresh"],
        &["render", "fresh", "--version", "1", "--var", "x=1"],
    ] {
        let (code, stdout, stderr) = repo.run(args);
        assert_eq!(code, 0, "{args:?}\n{stdout}\n{stderr}");
    }
    // After a first commit, a second new prompt is found the same way.
    repo.commit("first");
    repo.write("prompts/svc/newer.yaml", PROMPT);
    let log = repo.json(&["log", "newer"]);
    assert_eq!(log[0]["uncommitted"], true, "{log}");
    let (code, _, stderr) = repo.run(&["log", "nothing"]);
    assert_eq!(code, 2, "{stderr}");
}

/// A workflow command as GitHub's runner would run it: name, properties and data, each
/// decoded.
#[derive(Debug)]
struct RunnerCommand {
    name: String,
    properties: Vec<(String, String)>,
    data: String,
}

/// Undoes the escaping of workflow commands.
fn unescape(text: &str) -> String {
    text.replace("%0D", "\r")
        .replace("%0A", "\n")
        .replace("%3A", ":")
        .replace("%2C", ",")
        .replace("%25", "%")
}

/// The commands GitHub's runner would run from one output stream, read as it reads them:
/// lines split at `\n`, `\r` or `\r\n`, leading whitespace trimmed, `::NAME PROPS::DATA`
/// (or the legacy `##[NAME PROPS]DATA`) outside `::stop-commands::TOKEN` … `::TOKEN::`.
fn runner_commands(stream: &str) -> Vec<RunnerCommand> {
    let mut commands = Vec::new();
    let mut stopped: Option<String> = None;
    for line in stream.split(['\n', '\r']) {
        let line = line.trim_start();
        if let Some(token) = &stopped {
            if line == format!("::{token}::") {
                stopped = None;
            }
            continue;
        }
        if line.starts_with("##[") {
            commands.push(RunnerCommand {
                name: "legacy".into(),
                properties: Vec::new(),
                data: line.into(),
            });
            continue;
        }
        let Some(rest) = line.strip_prefix("::") else {
            continue;
        };
        let Some((head, data)) = rest.split_once("::") else {
            continue;
        };
        let (name, properties) = head.split_once(' ').unwrap_or((head, ""));
        if name == "stop-commands" {
            stopped = Some(data.to_owned());
            continue;
        }
        commands.push(RunnerCommand {
            name: name.to_owned(),
            properties: properties
                .split(',')
                .filter(|p| !p.is_empty())
                .map(|p| {
                    let (key, value) = p.split_once('=').unwrap_or((p, ""));
                    (key.to_owned(), unescape(value))
                })
                .collect(),
            data: unescape(data),
        });
    }
    commands
}

/// Test names, assertion values, prompt names, file names and model answers that carry
/// workflow commands (`::error ...`, indented, after a carriage return, legacy `##[...]`)
/// in `check --github` and `test --github`: the runner would run only promptctl's own
/// annotations, each naming a real file and decoding back to the intended text, and the
/// hostile text is still shown to people, as text.
#[test]
fn untrusted_text_cannot_forge_workflow_commands() {
    let repo = TestRepo::new();
    repo.write("promptctl.toml", "");
    let name = "x\n::error file=INJ,line=1::INJECTED-NAME";
    let answer = "answer\n::error file=OUT,line=2::INJECTED-OUTPUT\n  ::warning::INJECTED-INDENT\r::notice::INJECTED-CR\n##[error]INJECTED-LEGACY";
    repo.write(
        "prompts/svc/good.yaml",
        &format!(
            "model: echo\nvariables:\n  x: {{type: string}}\ntemplate: \"{{{{ x }}}}\"\ntests:\n  - name: {}\n    vars: {{x: {}}}\n    assert:\n      - {{type: contains, value: \"\\n::error::INJECTED-VALUE\"}}\n",
            serde_json::to_string(name).expect("json"),
            serde_json::to_string(answer).expect("json"),
        ),
    );
    repo.write(
        "prompts/svc/named.yaml",
        "name: \"n\\n::error file=NAME::INJECTED-PROMPT-NAME\"\nmodel: echo\ntemplate: \"{{ undeclared }}\"\n",
    );
    repo.write(
        "prompts/svc/f\n::error file=FILE::INJECTED-FILE,a:b.yaml",
        "model: echo\ntemplate: \"{{ also_undeclared }}\"\n",
    );
    repo.write(
        "prompts/::error file=SVC::INJECTED-SERVICE/p.yaml",
        "model: echo\ntemplate: \"hi\"\n",
    );
    repo.commit("hostile prompts");
    let summary = repo.path().join("summary.md");
    let summary = summary.to_string_lossy().into_owned();
    let env = [
        ("GITHUB_ACTIONS", "true"),
        ("GITHUB_STEP_SUMMARY", summary.as_str()),
    ];
    let title = format!("svc/good › {name} failed on echo");
    // Commands without annotations, in GitHub Actions, print names at the start of lines.
    for args in [
        &["list"][..],
        &["log", "p"],
        &["status"],
        &["render", "good", "--var", "x=\n::error::INJECTED-VAR"],
    ] {
        let (code, stdout, stderr) = repo.run_env(args, &env);
        assert_eq!(code, 0, "{args:?}\n{stdout}\n{stderr}");
        for stream in [&stdout, &stderr] {
            let commands = runner_commands(stream);
            assert!(
                commands.is_empty(),
                "{args:?}: the runner would run {commands:?}\n{stream}"
            );
        }
    }
    for args in [
        &["test"][..],
        &["test", "--format", "json"],
        &["check"],
        &["check", "--format", "json"],
    ] {
        let (code, stdout, stderr) = repo.run_env(args, &env);
        assert!(
            code == 1 || code == 2,
            "{args:?} exited {code}\n{stdout}\n{stderr}"
        );
        let mut annotations = Vec::new();
        for stream in [&stdout, &stderr] {
            for command in runner_commands(stream) {
                assert!(
                    ["error", "warning", "notice"].contains(&command.name.as_str()),
                    "{args:?}: the runner would run {command:?}\n--- stdout ---\n{stdout}\n--- stderr ---\n{stderr}"
                );
                for (key, value) in &command.properties {
                    assert!(
                        ["file", "line", "col", "title"].contains(&key.as_str()),
                        "{command:?}"
                    );
                    if key == "file" {
                        assert!(
                            std::fs::symlink_metadata(repo.path().join(value)).is_ok(),
                            "{args:?}: an annotation names a file that does not exist: {command:?}"
                        );
                    }
                }
                annotations.push(command);
            }
        }
        assert!(
            !annotations.is_empty(),
            "{args:?}: no annotation\n{stdout}\n{stderr}"
        );
        if args[0] == "test" {
            let ours: Vec<&RunnerCommand> = annotations
                .iter()
                .filter(|c| {
                    c.properties
                        .iter()
                        .any(|(k, v)| k == "title" && v.starts_with("svc/good"))
                })
                .collect();
            assert_eq!(ours.len(), 1, "{annotations:?}");
            let title_of = |c: &RunnerCommand| {
                c.properties
                    .iter()
                    .find(|(k, _)| k == "title")
                    .map(|(_, v)| v.clone())
            };
            assert_eq!(title_of(ours[0]).as_deref(), Some(title.as_str()));
            assert!(
                ours[0]
                    .data
                    .contains("::error file=OUT,line=2::INJECTED-OUTPUT"),
                "{:?}",
                ours[0]
            );
            if args.len() == 1 {
                // People still see the answer as it was.
                assert!(
                    stdout.contains("::error file=OUT,line=2::INJECTED-OUTPUT"),
                    "{stdout}"
                );
            }
        }
    }
}

/// Numbers that overflow or make no sense, on the command line and in `promptctl.toml`:
/// a clear error, exit 2, never a panic.
#[test]
fn overflowing_numbers_are_clear_errors() {
    let repo = repo_with_prompt();
    for args in [
        &[
            "stats",
            "--since",
            "999999999999999999999h",
            "--database-url",
            "postgres://127.0.0.1:1/none",
        ][..],
        &[
            "stats",
            "--since",
            "1e400d",
            "--database-url",
            "postgres://127.0.0.1:1/none",
        ],
        &[
            "stats",
            "--since",
            "36500000d",
            "--database-url",
            "postgres://127.0.0.1:1/none",
        ],
        &["test", "--concurrency", "18446744073709551615"],
        &["test", "--concurrency", "0"],
        &["test", "--shard", "1/99999999999999999999999"],
        &["render", "good", "--version", "99999999999999999999"],
        &["show", "good@99999999999999999999"],
    ] {
        let (code, stdout, stderr) = repo.run(args);
        assert_eq!(code, 2, "{args:?}\n{stdout}\n{stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}\n{stderr}");
    }
    for config in [
        "[test]\nconcurrency = 9223372036854775807\n",
        "[providers.openai]\nkind = \"openai\"\nrate_limit_per_s = 0\n",
        "[providers.openai]\nkind = \"openai\"\ntimeout_s = 1e300\n",
        "[models.echo]\ntimeout_s = inf\n",
        "[providers.openai]\nkind = \"openai\"\nmax_retries = 4000000000\n",
        "[monitoring]\nsample_rate = nan\n",
        "[serve]\ncache_ttl_s = 18446744073709551615\n",
    ] {
        repo.write("promptctl.toml", config);
        let (code, stdout, stderr) = repo.run(&["test", "--model", "echo"]);
        assert_eq!(code, 2, "{config}\n{stdout}\n{stderr}");
        assert!(stderr.contains("out of range"), "{config}\n{stderr}");
    }
}

/// File names, prompt and test names, authors, commit messages and model answers holding
/// escape sequences, bells, carriage returns and bidirectional overrides reach the
/// terminal escaped (`\u{1b}`) in every human output; JSON keeps them exact.
#[test]
fn control_characters_reach_the_terminal_escaped() {
    let repo = TestRepo::new();
    repo.write("promptctl.toml", "");
    let hostile = "\u{1b}]0;pwned\u{7}\u{1b}[2J\u{202e}";
    repo.write(
        &format!("prompts/svc/file{hostile}.yaml"),
        "model: echo\ntemplate: \"hi\"\n",
    );
    repo.write(
        "prompts/svc/named.yaml",
        &format!(
            "name: {}\nmodel: echo\nvariables:\n  x: {{type: string}}\ntemplate: \"{{{{ x }}}}\"\ntests:\n  - name: {}\n    vars: {{x: {}}}\n    assert: [{{type: contains, value: zzz}}]\n",
            serde_json::to_string(&format!("n{hostile}")).expect("json"),
            serde_json::to_string(&format!("t{hostile}\rFAKE PASS")).expect("json"),
            serde_json::to_string(&format!("out{hostile}\rline")).expect("json"),
        ),
    );
    repo.write(
        "prompts/svc/nl\nFAKE-LINE.yaml",
        "model: echo\ntemplate: \"{{ undeclared }}\"\n",
    );
    repo.git(&["add", "-A"]);
    repo.git(&[
        "-c",
        &format!("user.name=Eve{hostile}"),
        "commit",
        "-q",
        "-m",
        &format!("msg{hostile}\rfake"),
    ]);
    let raw = |text: &str| {
        text.contains('\u{1b}')
            || text.contains('\u{7}')
            || text.contains('\u{202e}')
            || text.replace("\r\n", "\n").contains('\r')
    };
    let mut seen_escaped = false;
    for args in [
        &["list"][..],
        &["log", "named"],
        &["show", "named"],
        &["status"],
        &["check"],
        &["test", "--model", "echo"],
        &["render", "named", "--var", "x=\u{1b}[2Jy"],
    ] {
        let (code, stdout, stderr) = repo.run(args);
        assert!(code <= 2, "{args:?} exited {code}\n{stdout}\n{stderr}");
        assert!(
            !raw(&stdout) && !raw(&stderr),
            "{args:?} printed control characters raw\n{stdout:?}\n{stderr:?}"
        );
        seen_escaped |= stdout.contains("\\u{1b}") || stderr.contains("\\u{1b}");
        assert!(
            !stdout
                .lines()
                .chain(stderr.lines())
                .any(|l| l.starts_with("FAKE")),
            "{args:?}: a name forged a line\n{stdout}\n{stderr}"
        );
    }
    assert!(seen_escaped, "the escapes are shown");
    let list = repo.json(&["list"]);
    assert!(
        list.as_array()
            .expect("array")
            .iter()
            .any(|row| row["name"] == format!("n{hostile}")),
        "{list}"
    );
}
