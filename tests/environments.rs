//! Environments, promotion and rollback, end to end: a real repository with three
//! versions of a prompt whose test (a `contains` on the `echo` model's answer) only some
//! versions pass, and the built binary run over it.

mod common;

use common::git::TestRepo;
use serde_json::Value;

/// Passes the test: the answer mentions the refund.
const V1: &str = "Dear {{ name }}, your refund is on its way.";
/// Fails it.
const V2: &str = "Dear {{ name }}, thanks for writing.";
/// Passes it.
const V3: &str = "Hi {{ name }}! Your refund was sent.";

fn reply(description: &str, template: &str) -> String {
    format!(
        "description: {description}\nmodel: echo\nvariables:\n  name: {{type: string}}\ntemplate: \"{template}\"\n# only some versions pass this\ntests:\n  - name: mentions the refund\n    vars: {{name: Ada}}\n    assert:\n      - {{type: contains, value: refund}}\n"
    )
}

const ENVIRONMENTS: &str = "# Which version and model each environment runs.\nprompts:\n  reply:                                    # support/reply\n    production: {version: 1, model: echo}   # known good\n    staging:    {version: 3}\n";

/// support/reply at versions 1, 2, 3 (v3 in the working tree and HEAD), pinned in
/// production at v1 and in staging at v3; billing/summary unpinned.
fn repository() -> TestRepo {
    let repo = TestRepo::new();
    repo.write(
        "prompts/billing/summary.yaml",
        "model: echo\ntemplate: Summarise the invoice.\ntests:\n  - name: says invoice\n    assert: [{type: contains, value: invoice}]\n",
    );
    repo.write("prompts/support/reply.yaml", &reply("First words.", V1));
    repo.commit("add reply");
    repo.write("prompts/support/reply.yaml", &reply("First words.", V2));
    repo.commit("shorter reply");
    repo.write(
        "prompts/support/reply.yaml",
        &reply("Answers a customer.", V3),
    );
    repo.write("environments.yaml", ENVIRONMENTS);
    repo.commit("friendlier reply, environments");
    repo
}

fn run(repo: &TestRepo, args: &[&str]) -> (i32, String, String) {
    repo.run(args)
}

fn versions(repo: &TestRepo) -> usize {
    repo.json(&["log", "reply"]).as_array().map_or(0, Vec::len)
}

#[test]
fn render_with_env_gives_the_pinned_version_and_model() {
    let repo = repository();
    let (code, stdout, stderr) = run(
        &repo,
        &[
            "render",
            "reply",
            "--env",
            "production",
            "--var",
            "name=Ada",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("support/reply v1 in production, model echo"),
        "{stdout}"
    );
    assert!(
        stdout.contains("Dear Ada, your refund is on its way."),
        "{stdout}"
    );
    let (code, stdout, _) = run(
        &repo,
        &["render", "reply", "--env", "staging", "--var", "name=Ada"],
    );
    assert_eq!(code, 0);
    assert!(stdout.contains("Hi Ada! Your refund was sent."), "{stdout}");
    let json = repo.json(&[
        "render",
        "reply",
        "--env",
        "production",
        "--var",
        "name=Ada",
    ]);
    assert_eq!(json["version"], 1);
    assert_eq!(json["model"], "echo");
    assert_eq!(
        json["messages"][0]["content"],
        "Dear Ada, your refund is on its way."
    );
    // An environment the file does not name for the prompt: its latest version, and a note.
    let (code, stdout, stderr) = run(
        &repo,
        &["render", "reply", "--env", "prod", "--var", "name=Ada"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("v3 in prod"), "{stdout}");
    assert!(stderr.contains("did you mean `production`?"), "{stderr}");
}

#[test]
fn test_with_env_runs_the_pinned_definition_on_the_environments_model() {
    let repo = repository();
    repo.write(
        "promptctl.toml",
        "[models.\"echo-mini\"]\nprovider = \"echo\"\n",
    );
    repo.write(
        "environments.yaml",
        "prompts:\n  reply:\n    production: {version: 2, model: echo-mini}\n    staging: {version: 1}\n",
    );
    let (code, stdout, stderr) = run(
        &repo,
        &["test", "reply", "--env", "production", "--format", "json"],
    );
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let json: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(json["results"][0]["model"], "echo-mini");
    assert_eq!(
        json["results"][0]["output"],
        "Dear Ada, thanks for writing."
    );
    let (code, _, stderr) = run(&repo, &["test", "reply", "--env", "staging"]);
    assert_eq!(code, 0, "{stderr}");
}

#[test]
fn rollback_to_a_failing_version_is_refused_and_nothing_is_written() {
    let repo = repository();
    let head = repo.head();
    let before = std::fs::read(repo.path().join("prompts/support/reply.yaml")).expect("read");
    let (code, stdout, stderr) = run(&repo, &["rollback", "reply", "--to", "2"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert!(stdout.contains("mentions the refund"), "{stdout}");
    assert_eq!(repo.head(), head);
    assert_eq!(
        std::fs::read(repo.path().join("prompts/support/reply.yaml")).expect("read"),
        before
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(versions(&repo), 3);
}

#[test]
fn rollback_to_a_passing_version_commits_it_as_the_next_version() {
    let repo = repository();
    let head = repo.head();
    let (code, stdout, stderr) = run(&repo, &["rollback", "reply", "--to", "1"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("Roll back support/reply to v1 as v4"),
        "{stdout}"
    );
    assert_eq!(
        repo.git(&["log", "-1", "--format=%s%n%an <%ae>"]),
        "Roll back support/reply to v1 as v4\nAda Lovelace <ada@example.com>\n"
    );
    assert_eq!(repo.git(&["rev-parse", "HEAD~1"]).trim(), head);
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(
        repo.git(&["show", "--name-only", "--format=", "HEAD"]),
        "prompts/support/reply.yaml\n"
    );
    let log = repo.json(&["log", "reply"]);
    assert_eq!(log.as_array().map(Vec::len), Some(4));
    let v1 = repo.json(&["show", "reply@1"]);
    let v4 = repo.json(&["show", "reply@4"]);
    assert_eq!(v4["definition"], v1["definition"], "{v4}");
    // The tests and the description are today's, the template v1's.
    let text = repo.path().join("prompts/support/reply.yaml");
    let text = std::fs::read_to_string(text).expect("read");
    assert!(text.contains("description: Answers a customer."), "{text}");
    assert!(
        text.contains("# only some versions pass this\ntests:"),
        "{text}"
    );
    assert!(text.contains("your refund is on its way"), "{text}");
    // Nothing to do a second time.
    let (code, stdout, _) = run(&repo, &["rollback", "reply", "--to", "1"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("nothing to roll back"), "{stdout}");
    assert_eq!(versions(&repo), 4);
}

#[test]
fn rollback_without_tests_needs_skip_tests_and_says_so_in_the_commit() {
    let repo = repository();
    let (code, _, stderr) = run(&repo, &["rollback", "reply", "--to", "2", "--skip-tests"]);
    assert_eq!(code, 0, "{stderr}");
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with("Roll back support/reply to v2 as v4\n"),
        "{message}"
    );
    assert!(
        message.contains("Tests: skipped (--skip-tests)."),
        "{message}"
    );
    let (code, _, stderr) = run(&repo, &["rollback", "reply", "--to", "9"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("has no version 9"), "{stderr}");
}

#[test]
fn pin_to_a_missing_version_is_refused_and_the_file_is_untouched() {
    let repo = repository();
    let path = repo.path().join("environments.yaml");
    let before = std::fs::read(&path).expect("read");
    let (code, _, stderr) = run(
        &repo,
        &["pin", "reply", "--env", "production", "--version", "99"],
    );
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("support/reply has no version 99; its versions are 1 to 3"),
        "{stderr}"
    );
    assert_eq!(std::fs::read(&path).expect("read"), before);
}

#[test]
fn pin_edits_one_value_and_commit_says_what_moved() {
    let repo = repository();
    let head = repo.head();
    let (code, stdout, stderr) = run(
        &repo,
        &["pin", "reply", "--env", "production", "--version", "2"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("v1 (echo) -> v2 (echo)"), "{stdout}");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("environments.yaml")).expect("read"),
        ENVIRONMENTS.replace("{version: 1, model: echo}", "{version: 2, model: echo}")
    );
    assert_eq!(repo.head(), head, "no --commit, no commit");
    repo.git(&["checkout", "--", "environments.yaml"]);
    // A new environment, committed.
    let (code, _, stderr) = run(
        &repo,
        &[
            "pin",
            "reply",
            "--env",
            "canary",
            "--version",
            "latest",
            "--model",
            "echo",
            "--commit",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        repo.git(&["log", "-1", "--format=%s"]),
        "Pin support/reply to latest in canary on echo\n"
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("environments.yaml")).expect("read"),
        format!("{ENVIRONMENTS}    canary: {{version: latest, model: echo}}\n")
    );
    // A prompt the file lacks gets its own block.
    let (code, _, stderr) = run(
        &repo,
        &["pin", "summary", "--env", "production", "--version", "1"],
    );
    assert_eq!(code, 0, "{stderr}");
    let text = std::fs::read_to_string(repo.path().join("environments.yaml")).expect("read");
    assert!(
        text.ends_with("  summary:\n    production: {version: 1}\n"),
        "{text}"
    );
}

#[test]
fn promote_moves_stagings_version_to_production() {
    let repo = repository();
    let (code, stdout, stderr) = run(
        &repo,
        &[
            "promote",
            "reply",
            "--from",
            "staging",
            "--to",
            "production",
            "--commit",
        ],
    );
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("environments.yaml")).expect("read"),
        ENVIRONMENTS.replace("{version: 1, model: echo}", "{version: 3}")
    );
    assert_eq!(
        repo.git(&["log", "-1", "--format=%s"]),
        "Promote support/reply v3 from staging to production\n"
    );
    assert_eq!(repo.git(&["status", "--porcelain"]), "");
    let (_, stdout, _) = run(
        &repo,
        &[
            "render",
            "reply",
            "--env",
            "production",
            "--var",
            "name=Ada",
        ],
    );
    assert!(stdout.contains("Hi Ada! Your refund was sent."), "{stdout}");
}

#[test]
fn status_shows_each_environment_and_flags_what_is_behind() {
    let repo = repository();
    let json = repo.json(&["status"]);
    assert_eq!(
        json["environments"],
        serde_json::json!(["production", "staging"])
    );
    let rows = json["prompts"].as_array().expect("rows");
    let reply = rows
        .iter()
        .find(|r| r["prompt"] == "support/reply")
        .expect("reply");
    assert_eq!(reply["latest"], 3);
    assert_eq!(reply["environments"]["production"]["version"], 1);
    assert_eq!(reply["environments"]["production"]["behind"], true);
    assert_eq!(reply["environments"]["staging"]["version"], 3);
    assert_eq!(reply["environments"]["staging"]["behind"], false);
    assert_eq!(
        reply["flags"],
        serde_json::json!(["production behind (v1 < v3)"])
    );
    let summary = rows
        .iter()
        .find(|r| r["prompt"] == "billing/summary")
        .expect("summary");
    assert_eq!(summary["environments"]["production"]["explicit"], false);
    let (code, stdout, _) = run(&repo, &["status"]);
    assert_eq!(code, 0);
    assert!(stdout.contains("PROMPT"), "{stdout}");
    assert!(stdout.contains("v1! echo"), "{stdout}");
}

#[test]
fn check_reports_environment_problems_at_their_lines() {
    let repo = repository();
    repo.write("prompts/billing/old.yaml", "model: echo\ntemplate: old\n");
    repo.commit("add old");
    repo.remove("prompts/billing/old.yaml");
    repo.commit("archive old");
    repo.write(
        "environments.yaml",
        "prompts:\n  reply:\n    production: {version: 99}\n  replly:\n    production: {version: 1}\n  old:\n    staging: {version: 1}\n",
    );
    let (code, stdout, stderr) = run(&repo, &["check", "--format", "json"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let json: Value = serde_json::from_str(&stdout).expect("json");
    let found: Vec<(String, u64, u64)> = json["diagnostics"]
        .as_array()
        .expect("diagnostics")
        .iter()
        .filter(|d| d["path"] == "environments.yaml")
        .map(|d| {
            (
                d["code"].as_str().unwrap_or("").to_owned(),
                d["line"].as_u64().unwrap_or(0),
                d["column"].as_u64().unwrap_or(0),
            )
        })
        .collect();
    assert_eq!(
        found,
        [
            ("unknown-version".to_owned(), 3, 27),
            ("unknown-prompt".to_owned(), 4, 3),
            ("archived-prompt-pinned".to_owned(), 6, 3),
        ]
    );
    let (_, _, stderr) = run(&repo, &["check"]);
    assert!(stderr.contains("did you mean `reply`?"), "{stderr}");
    let status = repo.json(&["status"]);
    let old = status["prompts"]
        .as_array()
        .expect("rows")
        .iter()
        .find(|r| r["prompt"] == "billing/old")
        .expect("an archived prompt still pinned is listed");
    assert_eq!(old["archived"], true);
    assert_eq!(old["flags"], serde_json::json!(["archived but pinned"]));
    assert!(
        stderr.contains("has no version 99 (pinned in production); its versions are 1 to 3"),
        "{stderr}"
    );
    // An unknown key is a schema error at its line (exit 2).
    repo.write(
        "environments.yaml",
        "prompts:\n  reply:\n    production: {version: 1, modle: x}\n",
    );
    let (code, _, stderr) = run(&repo, &["check"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("environments.yaml:3:"), "{stderr}");
    assert!(stderr.contains("did you mean `model`?"), "{stderr}");
}
