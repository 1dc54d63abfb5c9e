//! promptctl as the check on a pull request: `test --changed-since`, GitHub annotations
//! and step summary, sharding, and the coverage gate, end to end over real Git
//! repositories. Every prompt runs on the built-in `echo` model (it answers with the
//! rendered last user message), so results are deterministic and need no network.

mod common;

use std::collections::BTreeSet;

use common::git::TestRepo;

const INVOICE_V1: &str = r#"model: echo
variables:
  id: {type: string, required: true}
template: "Summarize invoice {{ id }}."
tests:
  - name: names the invoice
    vars: {id: "42"}
    assert:
      - {type: contains, value: "invoice 42"}
"#;

const REPLY: &str = r#"model: echo
variables:
  message: {type: string, required: true}
messages:
  - role: system
    content: You answer customers.
  - role: user
    content: "{{ message }} {% include 'support/_partials/tone.j2' %}"
tests:
  - name: keeps the question
    vars: {message: "Where is my order?"}
    assert:
      - {type: contains, value: "Where is my order?"}
"#;

const ESCALATE: &str = r#"model: echo
template: "Escalate. {% include 'support/_partials/handoff.j2' %}"
tests:
  - name: hands off
    assert:
      - {type: contains, value: "Escalate"}
"#;

const QUERY: &str = r#"model: echo
variables:
  q: {type: string, required: true}
template: "Rewrite: {{ q }}"
tests:
  - name: keeps the query
    vars: {q: "rust async"}
    assert:
      - {type: contains, value: "rust async"}
"#;

/// `main` with four prompts and two partials (invoice at v2), and a pull request that
/// breaks the invoice prompt and changes the partial the reply prompt includes (which the
/// escalate prompt includes through another partial), merged as GitHub does: HEAD is a
/// merge commit whose first parent is `main`.
fn pull_request() -> TestRepo {
    let repo = TestRepo::new();
    repo.write("prompts/billing/invoice.yaml", INVOICE_V1);
    repo.write("prompts/support/reply.yaml", REPLY);
    repo.write("prompts/support/escalate.yaml", ESCALATE);
    repo.write("prompts/support/_partials/tone.j2", "Be kind.");
    repo.write(
        "prompts/support/_partials/handoff.j2",
        "{% include 'support/_partials/tone.j2' %} A human will follow up.",
    );
    repo.write("prompts/search/query.yaml", QUERY);
    repo.commit("Add prompts");
    repo.write(
        "prompts/billing/invoice.yaml",
        &INVOICE_V1.replace("Summarize invoice", "Please summarize invoice"),
    );
    repo.commit("Invoice: be polite");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write(
        "prompts/billing/invoice.yaml",
        &INVOICE_V1.replace("Summarize invoice", "Summarize bill"),
    );
    repo.commit("Invoice: say bill");
    repo.write("prompts/support/_partials/tone.j2", "Be kind and brief.");
    repo.commit("Tone: brief");
    repo.git(&["checkout", "-q", "main"]);
    repo.git(&["checkout", "-q", "-b", "pr-merge"]);
    repo.git(&["merge", "-q", "--no-ff", "-m", "Merge feature", "feature"]);
    repo
}

fn run_on_github(repo: &TestRepo, args: &[&str]) -> (i32, String, String, String) {
    let summary = repo.path().join("step-summary.md");
    std::fs::write(&summary, "# earlier step\n").expect("write summary");
    let summary_path = summary.to_string_lossy().into_owned();
    let (code, stdout, stderr) = repo.run_env(
        args,
        &[
            ("GITHUB_ACTIONS", "true"),
            ("GITHUB_STEP_SUMMARY", &summary_path),
        ],
    );
    let summary = std::fs::read_to_string(&summary).expect("read summary");
    (code, stdout, stderr, summary)
}

#[test]
fn pull_request_check_fails_at_the_broken_test_and_tests_only_what_changed() {
    let repo = pull_request();
    let (code, stdout, stderr, summary) =
        run_on_github(&repo, &["test", "--changed-since", "main"]);
    assert_eq!(code, 1, "stdout:\n{stdout}\nstderr:\n{stderr}");

    // The annotation sits at the failing test's line, and it is the first one.
    let first = stdout
        .lines()
        .find(|line| line.starts_with("::error"))
        .expect("an annotation");
    assert_eq!(
        first,
        "::error file=prompts/billing/invoice.yaml,line=6,title=billing/invoice › names the invoice failed on echo::\
         contains (line 9): output does not contain \"invoice 42\"%0Aoutput: Summarize bill 42.",
        "stdout:\n{stdout}"
    );
    assert_eq!(stdout.matches("::error").count(), 1, "stdout:\n{stdout}");

    // The prompts that include the changed partial, directly or not, are tested; the
    // untouched prompt is not.
    assert!(
        stdout.contains("support/reply › keeps the question"),
        "{stdout}"
    );
    assert!(stdout.contains("support/escalate › hands off"), "{stdout}");
    assert!(!stdout.contains("search/query"), "{stdout}");
    assert!(stdout.contains("3 tests: 2 passed, 1 failed"), "{stdout}");

    // The step summary is appended to, and names each changed prompt with its version
    // change relative to the merge commit's first parent (main).
    assert!(summary.starts_with("# earlier step\n"), "{summary}");
    assert!(summary.contains("## ❌ promptctl test"), "{summary}");
    assert!(
        summary.contains("| `billing/invoice` | v2 → v3 | definition |"),
        "{summary}"
    );
    assert!(
        summary
            .contains("| `support/reply` | v1 (unchanged) | partial support/_partials/tone.j2 |"),
        "{summary}"
    );
    assert!(
        summary.contains(
            "| `support/escalate` | v1 (unchanged) | partial support/_partials/tone.j2 |"
        ),
        "{summary}"
    );
    assert!(!summary.contains("search/query"), "{summary}");
    // The rendered messages, before and after, for the test's inputs.
    assert!(
        summary.contains(" [user]\n-Please summarize invoice 42.\n+Summarize bill 42.\n"),
        "{summary}"
    );
    assert!(
        summary.contains("-Where is my order? Be kind."),
        "{summary}"
    );
    assert!(
        summary.contains("+Where is my order? Be kind and brief."),
        "{summary}"
    );
    // The results table and coverage.
    assert!(
        summary.contains(
            "| ❌ | `billing/invoice` | names the invoice | echo | `prompts/billing/invoice.yaml:6` |"
        ),
        "{summary}"
    );
    assert!(
        summary.contains("✅ 4/4 prompts have tests (100%, minimum 100%)"),
        "{summary}"
    );

    // The same report anywhere with --report, without GitHub.
    let (code, _, stderr) = repo.run(&["test", "--changed-since", "main", "--report", "report.md"]);
    assert_eq!(code, 1, "{stderr}");
    let report = std::fs::read_to_string(repo.path().join("report.md")).expect("report");
    assert!(
        report.contains("| `billing/invoice` | v2 → v3 | definition |"),
        "{report}"
    );
}

#[test]
fn on_the_branch_itself_changed_since_uses_the_merge_base() {
    let repo = pull_request();
    repo.git(&["checkout", "-q", "feature"]);
    // main moves on after the branch was cut: its new prompt is not the branch's change.
    repo.git(&["checkout", "-q", "main"]);
    repo.write(
        "prompts/search/other.yaml",
        &QUERY.replace("Rewrite", "Other"),
    );
    repo.commit("Another prompt on main");
    repo.git(&["checkout", "-q", "feature"]);
    let (code, stdout, stderr) = repo.run(&["test", "--changed-since", "main", "--format", "json"]);
    assert_eq!(code, 1, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let tested: BTreeSet<String> = json["results"]
        .as_array()
        .expect("results")
        .iter()
        .map(|r| {
            format!(
                "{}/{}",
                r["prompt"]["service"].as_str().unwrap_or_default(),
                r["prompt"]["name"].as_str().unwrap_or_default()
            )
        })
        .collect();
    assert_eq!(
        tested,
        ["billing/invoice", "support/escalate", "support/reply"]
            .map(String::from)
            .into()
    );
    // Nothing changed since the branch itself: nothing to test, and that passes.
    let (code, stdout, stderr) = repo.run(&["test", "--changed-since", "feature"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stderr.contains("no tests to run"), "{stderr}");
    let (code, _, stderr) = repo.run(&["test", "--changed-since", "no-such-branch"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no-such-branch"), "{stderr}");
}

#[test]
fn check_annotates_findings_at_their_line() {
    let repo = TestRepo::new();
    repo.write(
        "prompts/a/p.yaml",
        "model: echo\ntemplate: \"Hi {{ who }}\"\ntests:\n  - name: t\n    assert: [{type: contains, value: Hi}]\n",
    );
    let (code, stdout, _, summary) = run_on_github(&repo, &["check"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(summary.contains("## ❌ promptctl check"), "{summary}");
    assert!(
        summary.contains("| ❌ | `prompts/a/p.yaml:2:18` | undeclared-variable | variable `who` is used but not declared |"),
        "{summary}"
    );
    // GITHUB_ACTIONS=false (or unset) prints no annotations.
    let (_, off, _) = repo.run_env(&["check"], &[("GITHUB_ACTIONS", "false")]);
    assert!(!off.contains("::error"), "{off}");
    assert!(
        stdout.starts_with(
            "::error file=prompts/a/p.yaml,line=2,col=18,title=undeclared-variable::variable `who` is used but not declared"
        ),
        "{stdout}"
    );
}

fn sharded_repo() -> TestRepo {
    let repo = TestRepo::new();
    let mut many = String::from(
        "model: echo\ntemplate: \"Say {{ x }}\"\nvariables:\n  x: {type: string, required: true}\ntests:\n",
    );
    for index in 0..9 {
        many.push_str(&format!(
            "  - name: case {index}\n    vars: {{x: \"v{index}\"}}\n    assert: [{{type: contains, value: \"v{index}\"}}]\n"
        ));
    }
    repo.write("prompts/a/many.yaml", &many);
    repo.write("prompts/b/few.yaml", &many.replace("case", "other"));
    repo.commit("prompts");
    repo
}

fn junit_names(xml: &str) -> Vec<String> {
    xml.split("<testcase name=\"")
        .skip(1)
        .filter_map(|rest| rest.split('"').next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn shards_together_run_every_test_once() {
    let repo = sharded_repo();
    let (code, _, stderr) = repo.run(&["test", "--junit", "all.xml"]);
    assert_eq!(code, 0, "{stderr}");
    let all = junit_names(&std::fs::read_to_string(repo.path().join("all.xml")).expect("xml"));
    assert_eq!(all.len(), 18);
    let mut union = Vec::new();
    for index in 1..=3 {
        let file = format!("shard{index}.xml");
        let (code, _, stderr) =
            repo.run(&["test", "--shard", &format!("{index}/3"), "--junit", &file]);
        assert_eq!(code, 0, "{stderr}");
        let names = junit_names(&std::fs::read_to_string(repo.path().join(&file)).expect("xml"));
        assert_eq!(names.len(), 6, "balanced shards: {names:?}");
        union.extend(names);
    }
    let (unique, all): (BTreeSet<String>, BTreeSet<String>) =
        (union.iter().cloned().collect(), all.into_iter().collect());
    assert_eq!(union.len(), unique.len(), "a test ran in two shards");
    assert_eq!(unique, all);
    // The same shard selects the same tests every time.
    repo.run(&["test", "--shard", "2/3", "--junit", "again.xml"]);
    assert_eq!(
        junit_names(&std::fs::read_to_string(repo.path().join("again.xml")).expect("xml")),
        junit_names(&std::fs::read_to_string(repo.path().join("shard2.xml")).expect("xml"))
    );
    let (code, _, stderr) = repo.run(&["test", "--shard", "4/3"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("1 ≤ K ≤ N"), "{stderr}");
}

#[test]
fn coverage_gate_names_untested_prompts() {
    let repo = sharded_repo();
    repo.write("prompts/c/untested.yaml", "model: echo\ntemplate: hello\n");
    let (code, stdout, stderr, summary) = run_on_github(&repo, &["test"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains(
            "test coverage is below the minimum: 2/3 prompts have tests (67%, minimum 100%)"
        ),
        "{stderr}"
    );
    assert!(stderr.contains("untested: c/untested"), "{stderr}");
    assert!(
        stdout.contains("::error title=promptctl test%3A coverage below the minimum::2/3 prompts have tests (67%25, minimum 100%25); untested: c/untested"),
        "{stdout}"
    );
    assert!(summary.contains("❌ 2/3 prompts have tests"), "{summary}");
    assert!(summary.contains("Untested: `c/untested`"), "{summary}");

    // Naming prompts runs just them: the gate judges whole runs only.
    let (code, _, stderr) = repo.run(&["test", "a/many"]);
    assert_eq!(code, 0, "{stderr}");

    repo.write("promptctl.toml", "[test]\nmin_coverage = 0.6\n");
    let (code, stdout, stderr) = repo.run(&["test"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("coverage: 2/3 prompts have tests (67%, minimum 60%)"),
        "{stdout}"
    );
}

#[test]
fn annotation_paths_are_relative_to_the_repository() {
    let repo = TestRepo::new();
    repo.write("team/promptctl.toml", "");
    repo.write(
        "team/prompts/a/p.yaml",
        "model: echo\ntemplate: hi\ntests:\n  - name: t\n    assert: [{type: contains, value: bye}]\n",
    );
    repo.commit("a prompt in a subfolder");
    let (code, stdout, stderr, _) = run_on_github(&repo, &["-C", "team", "test"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(
        stdout.contains("::error file=team/prompts/a/p.yaml,line=4,title=a/p › t failed on echo::"),
        "{stdout}"
    );
}

/// A way to break `prompts/s/bad.yaml` under a project root.
type Breaker = Box<dyn Fn(&std::path::Path)>;

/// Ways a prompt file can fail to load, each set up in `prompts/s/bad.yaml` (which exists
/// in no other form): over the 1 MiB limit, invalid UTF-8, a YAML syntax error, an unknown
/// key, an empty file, a directory named like a prompt file, a symbolic link, and (when the
/// tests do not run as root, who reads any file) a file nobody may read.
fn unloadable_cases() -> Vec<(&'static str, Breaker)> {
    let file = |root: &std::path::Path| root.join("prompts/s/bad.yaml");
    let mut cases: Vec<(&'static str, Breaker)> = vec![
        (
            "over the size limit",
            Box::new(move |root| {
                let mut text = String::from("model: echo\ntemplate: hi\n");
                while text.len() <= 1024 * 1024 {
                    text.push_str("# padding padding padding padding padding padding\n");
                }
                std::fs::write(file(root), text).expect("write");
            }),
        ),
        (
            "invalid UTF-8",
            Box::new(move |root| {
                std::fs::write(file(root), b"model: echo\ntemplate: \"h\xffi\"\n").expect("write")
            }),
        ),
        (
            "a YAML syntax error",
            Box::new(move |root| {
                std::fs::write(file(root), "model: echo\ntemplate: [unclosed\n").expect("write")
            }),
        ),
        (
            "an unknown key",
            Box::new(move |root| {
                std::fs::write(file(root), "model: echo\ntempalte: hi\n").expect("write")
            }),
        ),
        (
            "an empty file",
            Box::new(move |root| std::fs::write(file(root), "\n").expect("write")),
        ),
        (
            "a directory",
            Box::new(move |root| std::fs::create_dir_all(file(root)).expect("mkdir")),
        ),
        (
            "a symbolic link",
            Box::new(move |root| {
                std::fs::write(root.join("elsewhere.yaml"), "model: echo\ntemplate: hi\n")
                    .expect("write");
                std::os::unix::fs::symlink(root.join("elsewhere.yaml"), file(root))
                    .expect("symlink");
            }),
        ),
    ];
    let probe = tempfile::NamedTempFile::new().expect("probe");
    std::fs::set_permissions(
        probe.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o000),
    )
    .expect("chmod");
    if std::fs::read(probe.path()).is_err() {
        cases.push((
            "unreadable",
            Box::new(move |root| {
                std::fs::write(file(root), "model: echo\ntemplate: hi\n").expect("write");
                std::fs::set_permissions(
                    file(root),
                    std::os::unix::fs::PermissionsExt::from_mode(0o000),
                )
                .expect("chmod");
            }),
        ));
    }
    cases
}

/// A prompt file that cannot be loaded fails `test` with exit 2, whatever else passes: the
/// file and the reason are printed (human, JSON, JUnit, GitHub annotations), it counts as
/// an untested prompt in the coverage figure, and `--changed-since` and every `--shard`
/// fail the same way. It used to be a "warning: skipped" and a green run of 0 tests.
#[test]
fn a_prompt_file_that_cannot_be_loaded_fails_test() {
    for (what, break_it) in unloadable_cases() {
        let repo = TestRepo::new();
        repo.write("prompts/s/query.yaml", QUERY);
        repo.commit("main");
        repo.git(&["checkout", "-q", "-b", "feature"]);
        break_it(repo.path());
        let (code, stdout, stderr) = repo.run(&["test"]);
        assert_eq!(code, 2, "{what}: test\n{stdout}\n{stderr}");
        assert!(stderr.contains("prompts/s/bad.yaml"), "{what}: {stderr}");
        assert!(
            stdout.contains("coverage: 1/2 prompts have tests (50%"),
            "{what}: {stdout}"
        );
        let (code, stdout, stderr) = repo.run(&["test", "--format", "json", "--junit", "j.xml"]);
        assert_eq!(code, 2, "{what}: json\n{stdout}\n{stderr}");
        let json: serde_json::Value = serde_json::from_str(&stdout).expect("JSON");
        let unloadable = json["unloadable"].as_array().expect("unloadable");
        assert_eq!(unloadable.len(), 1, "{what}: {json}");
        assert_eq!(unloadable[0]["path"], "prompts/s/bad.yaml", "{what}");
        assert!(
            unloadable[0]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{what}"
        );
        assert_eq!(json["coverage"]["prompts"], 2, "{what}: {json}");
        assert_eq!(json["coverage"]["tested"], 1, "{what}");
        let xml = std::fs::read_to_string(repo.path().join("j.xml")).expect("junit");
        assert!(
            xml.contains("prompts/s/bad.yaml") && xml.contains("errors=\"1\""),
            "{what}: {xml}"
        );
        let (code, stdout, stderr, _) = run_on_github(&repo, &["test"]);
        assert_eq!(code, 2, "{what}: github\n{stderr}");
        assert!(
            stdout.contains("::error file=prompts/s/bad.yaml"),
            "{what}: {stdout}"
        );
        let (code, stdout, stderr) = repo.run(&["test", "--changed-since", "main"]);
        assert_eq!(code, 2, "{what}: changed-since\n{stdout}\n{stderr}");
        for shard in ["1/2", "2/2"] {
            let (code, stdout, stderr) = repo.run(&["test", "--shard", shard]);
            assert_eq!(code, 2, "{what}: shard {shard}\n{stdout}\n{stderr}");
            assert!(stderr.contains("prompts/s/bad.yaml"), "{what}: {stderr}");
        }
        let (code, _, stderr) = repo.run(&["test", "query"]);
        assert_eq!(code, 2, "{what}: a named prompt\n{stderr}");
        let (code, _, stderr) = repo.run(&["check"]);
        assert_eq!(code, 2, "{what}: check\n{stderr}");
        assert!(stderr.contains("prompts/s/bad.yaml"), "{what}: {stderr}");
    }
}
