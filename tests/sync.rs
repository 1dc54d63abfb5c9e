//! `promptctl sync` and `promptctl get` against a real PostgreSQL.
//!
//! Each test creates its own database (`promptctl_test_<pid>_<n>`) on the server named by
//! `PROMPTCTL_TEST_DATABASE_URL` (default `postgres://postgres@127.0.0.1:5432/postgres`) and
//! drops it at the end, so the tests run in parallel and leave nothing behind. A server
//! that cannot be reached fails the tests: they never skip.

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::db::TestDb;
use common::git::TestRepo;
use serde_json::Value;

/// A prompt file whose definition is `template` (with one declared variable).
fn prompt(template: &str, test_value: &str) -> String {
    format!(
        "model: gpt-4o\nparameters: {{temperature: 0.2}}\nvariables:\n  x: {{type: string}}\ntemplate: \"{template} {{{{ x }}}}\"\ntests:\n  - name: first\n    vars: {{x: a}}\n    assert: [{{type: contains, value: \"{test_value}\"}}]\n"
    )
}

/// `promptctl sync --database-url URL ARGS` in the repository.
fn sync(repo: &TestRepo, db: &TestDb, args: &[&str]) -> (i32, String, String) {
    let mut all = vec!["sync", "--database-url", db.url.as_str()];
    all.extend(args);
    repo.run(&all)
}

/// `sync --format json`, expecting success.
fn sync_json(repo: &TestRepo, db: &TestDb) -> Value {
    let (code, stdout, stderr) = sync(repo, db, &["--format", "json"]);
    assert_eq!(code, 0, "sync failed:\n{stdout}\n{stderr}");
    serde_json::from_str(&stdout).expect("JSON")
}

/// The repository of the first tests: 20 prompts over 5 commits; commit k rewrites the
/// prompts whose index is a multiple of k + 1, then a commit that only edits tests and
/// formatting, then one that deletes a prompt. Returns the number of versions, counted
/// independently of promptctl.
fn build_history(repo: &TestRepo) -> usize {
    let mut versions = 0;
    for k in 0..5 {
        for i in 0..20 {
            if i % (k + 1) == 0 {
                repo.write(
                    &format!("prompts/svc{}/p{i}.yaml", i % 3),
                    &prompt(&format!("v{k} of p{i}"), "a"),
                );
                versions += 1;
            }
        }
        repo.commit(&format!("commit {k}"));
    }
    repo.write(
        "prompts/svc1/p1.yaml",
        &format!("# reformatted\n{}", prompt("v0 of p1", "other expectation")),
    );
    repo.commit("tests only");
    repo.remove("prompts/svc2/p2.yaml");
    repo.commit("delete p2");
    versions
}

#[test]
fn sync_publishes_every_version_and_a_second_sync_changes_nothing() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    let expected = build_history(&repo);
    let summary = sync_json(&repo, &db);
    assert_eq!(summary["versions_added"], expected);
    assert_eq!(
        db.count("SELECT count(*) FROM prompts"),
        i64::try_from(expected).expect("fits")
    );
    // Cross-check with `promptctl log`.
    let mut logged = 0;
    for i in 0..20 {
        let log = repo.json(&["log", &format!("svc{}/p{i}", i % 3)]);
        logged += log.as_array().expect("array").len();
    }
    assert_eq!(logged, expected);
    // Ids are UUID v5; every version of p2 is archived, no other.
    assert_eq!(
        db.count("SELECT count(*) FROM prompts WHERE archived"),
        db.count("SELECT count(*) FROM prompts WHERE name = 'p2'")
    );
    assert_eq!(
        db.count("SELECT count(*) FROM prompts WHERE archived AND name <> 'p2'"),
        0
    );
    // The tip's tests are stored for each present prompt's latest version.
    assert_eq!(db.count("SELECT count(*) FROM prompt_tests"), 19);
    let expected_output: String = db.rows(
        "SELECT t.expected_output FROM prompt_tests t JOIN prompts p ON p.id = t.prompt_id WHERE p.name = 'p1'",
    )[0]
        .get(0);
    assert_eq!(expected_output, "other expectation");
    assert_eq!(
        db.count(
            "SELECT count(*) FROM prompts WHERE created_by = 'Ada Lovelace' AND commit_message LIKE 'commit %'"
        ),
        i64::try_from(expected).expect("fits")
    );
    let head = repo.head();
    let state: String =
        db.rows("SELECT commit_sha FROM sync_state WHERE branch = 'main'")[0].get(0);
    assert_eq!(state, head);

    let before = db.fingerprint();
    let again = sync_json(&repo, &db);
    assert_eq!(again["up_to_date"], true);
    assert_eq!(db.fingerprint(), before, "a second sync changed rows");
}

#[test]
fn one_new_commit_sends_only_its_versions() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    let expected = build_history(&repo);
    sync_json(&repo, &db);
    let untouched = db.fingerprint_of_prompts_except("p5");
    repo.write("prompts/svc2/p5.yaml", &prompt("a new text", "a"));
    let commit = repo.commit("edit p5");
    let summary = sync_json(&repo, &db);
    assert_eq!(summary["versions_added"], 1);
    assert_eq!(summary["sent"].as_array().expect("array").len(), 1);
    assert_eq!(summary["sent"][0]["commit"], commit.as_str());
    assert_eq!(
        db.count("SELECT count(*) FROM prompts"),
        i64::try_from(expected + 1).expect("fits")
    );
    assert_eq!(db.fingerprint_of_prompts_except("p5"), untouched);
    // The new version's tests moved to it.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM prompt_tests t JOIN prompts p ON p.id = t.prompt_id WHERE p.name = 'p5' AND p.commit_sha = (SELECT commit_sha FROM sync_state)"
        ),
        1
    );
}

impl TestDb {
    fn fingerprint_of_prompts_except(&self, name: &str) -> String {
        self.rows(&format!(
            "SELECT md5(string_agg(p::text || p.xmin::text, ',' ORDER BY id)) FROM prompts p WHERE name <> '{name}'"
        ))[0]
            .get(0)
    }
}

#[test]
fn get_reads_latest_a_number_and_an_environment() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write("prompts/billing/invoice.yaml", &prompt("first", "a"));
    repo.commit("v1");
    repo.write("prompts/billing/invoice.yaml", &prompt("second", "a"));
    repo.write(
        "environments.yaml",
        "prompts:\n  invoice:\n    production: {version: 1, model: gpt-4o-mini}\n    canary: {version: latest}\n",
    );
    repo.commit("v2");
    sync_json(&repo, &db);
    let url = db.url.as_str();
    let get = |extra: &[&str]| {
        let mut args = vec!["get", "invoice", "--database-url", url, "--format", "json"];
        args.extend(extra);
        let (code, stdout, stderr) = repo.run(&args);
        assert_eq!(code, 0, "{stdout}\n{stderr}");
        serde_json::from_str::<Value>(&stdout).expect("JSON")
    };
    let latest = get(&[]);
    assert_eq!(latest["version"], 2);
    assert_eq!(latest["definition"]["body"]["template"], "second {{ x }}");
    assert_eq!(latest["model"], "gpt-4o");
    let first = get(&["--version", "1"]);
    assert_eq!(first["definition"]["body"]["template"], "first {{ x }}");
    let production = get(&["--env", "production"]);
    assert_eq!(production["version"], 1);
    assert_eq!(production["model"], "gpt-4o-mini");
    assert_eq!(production["definition"]["model"], "gpt-4o-mini");
    let canary = get(&["--env", "canary"]);
    assert_eq!(canary["version"], 2);
    assert_eq!(canary["model"], "gpt-4o");
    assert_eq!(db.count("SELECT count(*) FROM prompt_environments"), 2);

    let (code, _, stderr) = repo.run(&[
        "get",
        "billing/invoice",
        "--version",
        "9",
        "--database-url",
        url,
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no version 9"), "{stderr}");
    let (code, _, stderr) = repo.run(&["get", "invoic", "--database-url", url]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("did you mean `invoice`"), "{stderr}");
    let (code, stdout, stderr) = repo.run(&["get", "invoice", "--database-url", url]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("billing/invoice v2"), "{stdout}");
}

#[test]
fn a_nasty_hundred_kilobyte_template_round_trips_exactly() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    let mut text = String::new();
    let pieces = [
        "It's a \"quoted\" 'string' ",
        "back\\slash \\\\ \\n not a newline ",
        "'); DROP TABLE prompts; -- ",
        "$1 $$ dollar $$ E'\\x00' ",
        "\ttab\r\ncrlf\n",
        "ünïcødé — 日本語 🎉 ",
        "\u{7}\u{1b}[31mansi\u{1b}[0m ",
        "{\"json\": [1, 2]} ",
        "%s %d \\N \\. ",
    ];
    let mut index = 0;
    while text.len() < 100 * 1024 {
        text.push_str(pieces[index % pieces.len()]);
        index += 1;
    }
    let yaml = format!(
        "model: gpt-4o\ntemplate: {}\n",
        serde_json::to_string(&text).expect("JSON string")
    );
    repo.write("prompts/tricky/nasty.yaml", &yaml);
    repo.commit("a nasty template");
    sync_json(&repo, &db);
    let stored: String = db.rows("SELECT template FROM prompts WHERE name = 'nasty'")[0].get(0);
    assert_eq!(stored.len(), text.len());
    assert!(stored == text, "the template changed on its way");
    let (code, stdout, stderr) = repo.run(&[
        "get",
        "nasty",
        "--database-url",
        db.url.as_str(),
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let value: Value = serde_json::from_str(&stdout).expect("JSON");
    assert!(value["definition"]["body"]["template"] == Value::String(text));
}

#[test]
fn rewritten_history_is_refused_then_replaced_with_allow_rewrite() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write("prompts/s/a.yaml", &prompt("one", "a"));
    repo.commit("one");
    repo.write("prompts/s/a.yaml", &prompt("two", "a"));
    let old = repo.commit("two");
    sync_json(&repo, &db);
    repo.git(&["reset", "-q", "--hard", "HEAD~1"]);
    repo.write("prompts/s/a.yaml", &prompt("two, rewritten", "a"));
    let new = repo.commit("two again");
    let before = db.fingerprint();
    let (code, _, stderr) = sync(&repo, &db, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("rewritten"), "{stderr}");
    assert!(stderr.contains(&old[..12]), "{stderr}");
    assert!(stderr.contains("--allow-rewrite"), "{stderr}");
    assert_eq!(db.fingerprint(), before);
    let (code, stdout, stderr) = sync(&repo, &db, &["--allow-rewrite"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let rows = db.rows("SELECT version, commit_sha, template FROM prompts ORDER BY version");
    assert_eq!(rows.len(), 2);
    let commit: String = rows[1].get(1);
    let template: String = rows[1].get(2);
    assert_eq!(commit, new);
    assert_eq!(template, "two, rewritten {{ x }}");
    assert_eq!(db.count("SELECT count(*) FROM prompt_tests"), 1);
}

#[test]
fn an_unreachable_database_exits_3_quickly() {
    let repo = TestRepo::new();
    repo.write("prompts/s/a.yaml", &prompt("one", "a"));
    repo.commit("one");
    let started = Instant::now();
    let (code, _, stderr) = repo.run(&[
        "sync",
        "--database-url",
        "postgres://postgres@127.0.0.1:1/postgres",
    ]);
    assert_eq!(code, 3, "{stderr}");
    assert!(
        stderr.contains("cannot connect to PostgreSQL at 127.0.0.1:1"),
        "{stderr}"
    );
    assert!(started.elapsed() < Duration::from_secs(10));
    let (code, _, stderr) = repo.run(&[
        "get",
        "a",
        "--database-url",
        "postgres://postgres@127.0.0.1:1/postgres",
    ]);
    assert_eq!(code, 3, "{stderr}");
}

/// Runs `promptctl sync` with the test hook that kills the process just before commit.
fn killed_sync(repo: &TestRepo, db: &TestDb) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_promptctl"))
        .args(["sync", "--database-url", db.url.as_str()])
        .current_dir(repo.path())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("PROMPTCTL_SYNC_FAIL_BEFORE_COMMIT", "1")
        .output()
        .expect("promptctl runs")
}

#[test]
fn a_sync_killed_before_commit_leaves_nothing_and_the_next_completes_it() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    let expected = build_history(&repo);
    let out = killed_sync(&repo, &db);
    assert!(!out.status.success());
    assert_eq!(
        db.count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0,
        "a killed sync left tables behind"
    );
    sync_json(&repo, &db);
    let before = db.fingerprint();
    repo.write("prompts/svc0/p0.yaml", &prompt("after the kill", "a"));
    repo.commit("edit p0");
    let out = killed_sync(&repo, &db);
    assert!(!out.status.success());
    assert_eq!(db.fingerprint(), before, "a killed sync left rows behind");
    let summary = sync_json(&repo, &db);
    assert_eq!(summary["versions_added"], 1);
    assert_eq!(
        db.count("SELECT count(*) FROM prompts"),
        i64::try_from(expected + 1).expect("fits")
    );
}

#[test]
fn check_errors_block_publishing_and_dry_run_writes_nothing() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write("prompts/s/a.yaml", &prompt("one", "a"));
    repo.write(
        "prompts/s/b.yaml",
        "model: m\ntemplate: \"{{ undeclared }}\"\nvariables: {x: {type: string}}\n",
    );
    repo.commit("broken");
    let (code, _, stderr) = sync(&repo, &db, &[]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("nothing was published"), "{stderr}");
    repo.remove("prompts/s/b.yaml");
    repo.commit("fixed");
    let (code, stdout, stderr) = sync(&repo, &db, &["--dry-run"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("+ s/a v1"), "{stdout}");
    assert!(stdout.contains("would sync"), "{stdout}");
    assert_eq!(
        db.count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0,
        "a dry run created tables"
    );
    let (code, _, stderr) = sync(&repo, &db, &[]);
    assert_eq!(code, 0, "{stderr}");
    // b's version from the broken commit is published too, archived.
    assert_eq!(db.count("SELECT count(*) FROM prompts"), 2);
    assert_eq!(
        db.count("SELECT count(*) FROM prompts WHERE archived AND name = 'b'"),
        1
    );
}

#[test]
fn concurrent_syncs_are_serialized() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    let expected = build_history(&repo);
    let url = db.url.clone();
    let path = repo.path().to_path_buf();
    let children: Vec<_> = (0..3)
        .map(|_| {
            Command::new(env!("CARGO_BIN_EXE_promptctl"))
                .args(["sync", "--no-cache", "--database-url", url.as_str()])
                .current_dir(&path)
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .stdout(std::process::Stdio::null())
                .spawn()
                .expect("spawn")
        })
        .collect();
    for mut child in children {
        assert!(child.wait().expect("wait").success());
    }
    assert_eq!(
        db.count("SELECT count(*) FROM prompts"),
        i64::try_from(expected).expect("fits")
    );
    assert_eq!(
        db.count("SELECT count(*) FROM schema_migrations"),
        i64::try_from(promptctl::registry::migrations::MIGRATIONS.len()).expect("fits")
    );
}

#[test]
fn a_thousand_prompts_sync_whole() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    let mut expected = 0;
    for round in 0..3 {
        for i in 0..1100 {
            if round == 0 || i % (round + 1) == 0 {
                repo.write(
                    &format!("prompts/svc{}/p{i}.yaml", i % 12),
                    &prompt(&format!("round {round} of {i}"), "a"),
                );
                expected += 1;
            }
        }
        repo.commit(&format!("round {round}"));
    }
    let summary = sync_json(&repo, &db);
    assert_eq!(summary["versions_added"], expected);
    assert_eq!(db.count("SELECT count(*) FROM prompts"), expected);
    assert_eq!(
        db.count("SELECT count(DISTINCT (service, name)) FROM prompts"),
        1100
    );
    assert_eq!(db.count("SELECT count(*) FROM prompt_tests"), 1100);
    let before = db.fingerprint();
    sync_json(&repo, &db);
    assert_eq!(db.fingerprint(), before);
}

#[test]
fn deleting_and_restoring_a_prompt_flips_its_archived_flag_incrementally() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write("prompts/s/a.yaml", &prompt("one", "a"));
    repo.write("prompts/s/b.yaml", &prompt("bee", "a"));
    repo.commit("one");
    repo.write("prompts/s/a.yaml", &prompt("two", "a"));
    repo.commit("two");
    sync_json(&repo, &db);
    repo.remove("prompts/s/a.yaml");
    repo.commit("delete a");
    let summary = sync_json(&repo, &db);
    assert_eq!(summary["archived_changed"], 2);
    assert_eq!(
        db.count("SELECT count(*) FROM prompts WHERE archived"),
        2,
        "both versions of a are archived, b is not"
    );
    repo.write("prompts/s/a.yaml", &prompt("three", "a"));
    repo.commit("restore a with a new text");
    let summary = sync_json(&repo, &db);
    assert_eq!(summary["versions_added"], 1);
    assert_eq!(db.count("SELECT count(*) FROM prompts WHERE archived"), 0);
    assert_eq!(
        db.count("SELECT max(version)::bigint FROM prompts WHERE name = 'a'"),
        3
    );
}

#[test]
fn a_schema_newer_than_the_binary_is_refused() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write("prompts/s/a.yaml", &prompt("one", "a"));
    repo.commit("one");
    sync_json(&repo, &db);
    db.rows("INSERT INTO schema_migrations (version, name) VALUES (999, 'from the future') RETURNING version");
    repo.write("prompts/s/a.yaml", &prompt("two", "a"));
    repo.commit("two");
    let (code, _, stderr) = sync(&repo, &db, &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("newer than this promptctl"), "{stderr}");
    assert!(stderr.contains("upgrade promptctl"), "{stderr}");
    assert_eq!(db.count("SELECT count(*) FROM prompts"), 1);
    let (code, _, stderr) = repo.run(&["get", "a", "--database-url", db.url.as_str()]);
    assert_eq!(code, 2, "{stderr}");
}

#[test]
fn the_library_registry_returns_a_prompt_ready_to_render_with_its_partials() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write(
        "prompts/support/_partials/tone.j2",
        "Be kind to {{ name }}.",
    );
    repo.write(
        "prompts/support/reply.yaml",
        "model: gpt-4o\nvariables:\n  name: {type: string, required: true}\n  lang: {type: string, default: en}\nmessages:\n  - role: system\n    content: '{% include \"support/_partials/tone.j2\" %} Answer in {{ lang }}.'\n  - role: user\n    content: \"Hello from {{ name }}\"\n",
    );
    repo.commit("reply");
    repo.write(
        "prompts/support/_partials/tone.j2",
        "Be terse with {{ name }}.",
    );
    repo.commit("partial changed, no new version");
    sync_json(&repo, &db);
    let prompt = db.runtime.block_on(async {
        let registry = promptctl::registry::Registry::connect(&db.url)
            .await
            .expect("connect");
        registry
            .get_prompt("support/reply", &promptctl::registry::Selector::Latest)
            .await
            .expect("get")
    });
    assert_eq!(prompt.version, 1);
    let vars = [("name".to_owned(), Value::from("Ada"))]
        .into_iter()
        .collect();
    let messages = prompt
        .renderer()
        .render(&prompt.definition, &vars)
        .expect("renders");
    // The partial as it was at the version's commit.
    assert_eq!(messages[0].content, "Be kind to Ada. Answer in en.");
    assert_eq!(messages[1].content, "Hello from Ada");
}

#[test]
fn a_registry_missing_monitor_assertions_gets_them_from_a_sync_at_the_same_tip() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write(
        "prompts/support/reply.yaml",
        "model: gpt-4o\ntemplate: \"hi\"\nmonitor:\n  - {type: safety_check}\n",
    );
    repo.commit("a monitored prompt");
    let first = sync_json(&repo, &db);
    assert_eq!(first["monitors_changed"], 1);
    // As a registry synced before it held monitor assertions (migration 3) is.
    db.rows("DELETE FROM prompt_monitors");
    let again = sync_json(&repo, &db);
    assert_eq!(again["up_to_date"], true, "{again}");
    assert_eq!(again["monitors_changed"], 1, "{again}");
    assert_eq!(db.count("SELECT count(*) FROM prompt_monitors"), 1);
}

/// Prompt files holding what the registry cannot store, with the line `check` must point
/// at: a NUL character (written `\0`, `\x00` or `\u0000` in a double-quoted YAML string)
/// in any string that goes to a TEXT or JSONB column, and names, services and models over
/// their VARCHAR limits.
fn unstorable_files() -> Vec<(&'static str, String, usize)> {
    let tail = "tests:\n  - name: t\n    vars: {}\n    assert: [{type: contains, value: a}]\n";
    vec![
        (
            "variable default",
            format!("model: gpt-4o\nvariables:\n  x: {{type: string, default: \"a\\0b\"}}\ntemplate: \"hi {{{{ x }}}}\"\n{tail}"),
            3,
        ),
        (
            "variable description",
            format!("model: gpt-4o\nvariables:\n  x:\n    description: \"d\\u0000\"\ntemplate: \"hi {{{{ x }}}}\"\n{tail}"),
            4,
        ),
        (
            "parameter value",
            format!("model: gpt-4o\nparameters:\n  temperature: 0.1\n  stop: [\"ok\", \"\\x00\"]\ntemplate: hi\n{tail}"),
            4,
        ),
        (
            "parameter key",
            format!("model: gpt-4o\nparameters:\n  \"st\\0p\": 1\ntemplate: hi\n{tail}"),
            3,
        ),
        (
            "test name",
            "model: gpt-4o\ntemplate: hi\ntests:\n  - name: ok\n    assert: [{type: contains, value: a}]\n  - name: \"t\\u0000\"\n    assert: [{type: contains, value: a}]\n".to_owned(),
            6,
        ),
        (
            "test assertion",
            "model: gpt-4o\ntemplate: hi\ntests:\n  - name: t\n    assert:\n      - {type: contains, value: a}\n      - {type: contains, value: \"\\0\"}\n".to_owned(),
            7,
        ),
        (
            "monitor assertion",
            format!("model: gpt-4o\ntemplate: hi\nmonitor:\n  - {{type: not_contains, value: [\"x\", \"\\0\"]}}\n{tail}"),
            4,
        ),
        (
            "template",
            format!("model: gpt-4o\n\ntemplate: \"hi\\0\"\n{tail}"),
            3,
        ),
        (
            "message",
            format!("model: gpt-4o\nmessages:\n  - role: system\n    content: fine\n  - role: user\n    content: \"x\\x00\"\n{tail}"),
            6,
        ),
        (
            "name over 255",
            format!("name: {}\nmodel: gpt-4o\ntemplate: hi\n{tail}", "n".repeat(256)),
            1,
        ),
        (
            "service over 100",
            format!("model: gpt-4o\nservice: {}\ntemplate: hi\n{tail}", "é".repeat(101)),
            2,
        ),
        (
            "model over 50",
            format!("template: hi\nmodel: {}\n{tail}", "m".repeat(51)),
            2,
        ),
    ]
}

/// `check` refuses everything `sync` would refuse, at the file's line; `sync` then refuses
/// it as a check error, never with a raw PostgreSQL error.
#[test]
fn check_refuses_what_the_registry_cannot_store_at_its_line() {
    let db = TestDb::new();
    for (what, text, line) in unstorable_files() {
        let repo = TestRepo::new();
        repo.write("prompts/s/p.yaml", &text);
        repo.commit("bad");
        let (code, stdout, stderr) = repo.run(&["check", "--format", "json"]);
        assert_eq!(code, 1, "{what}: check passed\n{stdout}\n{stderr}");
        let json: Value = serde_json::from_str(&stdout).expect("JSON");
        let found = json["diagnostics"].as_array().expect("diagnostics");
        assert!(
            found.iter().any(|d| d["severity"] == "error"
                && d["code"] == "registry-unfit"
                && d["path"] == "prompts/s/p.yaml"
                && d["line"] == line),
            "{what}: no registry-unfit error at line {line}: {stdout}"
        );
        let (code, _, stderr) = repo.run(&["check"]);
        assert_eq!(code, 1, "{what}");
        assert!(
            stderr.contains(&format!("prompts/s/p.yaml:{line}:")),
            "{what}: {stderr}"
        );
        let (code, stdout, stderr) = sync(&repo, &db, &[]);
        assert_eq!(code, 1, "{what}: sync\n{stdout}\n{stderr}");
        assert!(stderr.contains("nothing was published"), "{what}: {stderr}");
        assert!(!stderr.contains("PostgreSQL:"), "{what}: {stderr}");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0
    );
}

/// The environments file: an environment name or a model override longer than its column,
/// or holding a NUL, is refused by `check` at its line, and by `sync` (it is the tip's
/// file, not history) with the same place and reason rather than PostgreSQL's error.
#[test]
fn check_refuses_environment_names_and_models_the_registry_cannot_store() {
    let db = TestDb::new();
    let cases = [
        (
            format!(
                "prompts:\n  s/p:\n    {}: {{version: latest}}\n",
                "e".repeat(101)
            ),
            3,
        ),
        (
            format!(
                "prompts:\n  s/p:\n    production:\n      model: {}\n",
                "m".repeat(101)
            ),
            4,
        ),
        (
            "prompts:\n  s/p:\n    production: {version: latest, model: \"a\\0\"}\n".to_owned(),
            3,
        ),
    ];
    for (text, line) in cases {
        let repo = TestRepo::new();
        repo.write("prompts/s/p.yaml", &prompt("one", "a"));
        repo.write("environments.yaml", &text);
        repo.commit("env");
        let (code, stdout, stderr) = repo.run(&["check", "--format", "json"]);
        assert_eq!(code, 1, "{text}\n{stdout}\n{stderr}");
        let json: Value = serde_json::from_str(&stdout).expect("JSON");
        assert!(
            json["diagnostics"]
                .as_array()
                .expect("list")
                .iter()
                .any(|d| {
                    d["code"] == "registry-unfit"
                        && d["path"] == "environments.yaml"
                        && d["line"] == line
                }),
            "{text}: {stdout}"
        );
        let (code, stdout, stderr) = sync(&repo, &db, &[]);
        assert_eq!(code, 2, "{text}\n{stdout}\n{stderr}");
        assert!(
            stderr.contains(&format!("environments.yaml: {line}:")),
            "{stderr}"
        );
        assert!(!stderr.contains("PostgreSQL:"), "{stderr}");
    }
    assert_eq!(
        db.count("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'"),
        0
    );
}

/// Old versions the registry cannot store do not block publishing the good ones: a NUL
/// template at v2 of `p`, a model over 50 characters at v2 of `r`, a prompt whose name is
/// 256 characters long (archived since). The sync skips them, says so, and exits 0; the
/// later versions keep their history numbers (v3 follows v1 when v2 is skipped).
#[test]
fn old_versions_the_registry_cannot_store_are_skipped_not_blocking() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write("prompts/s/p.yaml", &prompt("one", "a"));
    repo.write("prompts/s/r.yaml", &prompt("r one", "a"));
    repo.commit("good");
    repo.write("prompts/s/p.yaml", &prompt("t\\0wo", "a"));
    repo.write(
        "prompts/s/r.yaml",
        &prompt("r two", "a").replace("gpt-4o", &"m".repeat(51)),
    );
    repo.write(
        "prompts/s/long.yaml",
        &format!("name: {}\n{}", "n".repeat(256), prompt("long", "a")),
    );
    repo.commit("bad");
    repo.write("prompts/s/p.yaml", &prompt("three", "a"));
    repo.write("prompts/s/r.yaml", &prompt("r three", "a"));
    repo.remove("prompts/s/long.yaml");
    repo.commit("fixed");
    let (code, stdout, stderr) = sync(&repo, &db, &[]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let all = format!("{stdout}{stderr}");
    assert!(all.contains("skipped s/p v2"), "{all}");
    assert!(all.contains("NUL"), "{all}");
    assert!(all.contains("skipped s/r v2"), "{all}");
    assert!(all.contains("over the registry's limit of 50"), "{all}");
    assert!(
        all.contains(&format!("skipped s/{}", "n".repeat(256))),
        "{all}"
    );
    let versions = |name: &str| -> Vec<i32> {
        db.rows(&format!(
            "SELECT version FROM prompts WHERE name = '{name}' ORDER BY version"
        ))
        .iter()
        .map(|row| row.get(0))
        .collect()
    };
    assert_eq!(versions("p"), [1, 3]);
    assert_eq!(versions("r"), [1, 3]);
    assert_eq!(db.count("SELECT count(*) FROM prompts"), 4);
    // The tip's tests hang on the latest version.
    assert_eq!(
        db.count(
            "SELECT count(*) FROM prompt_tests t JOIN prompts p ON p.id = t.prompt_id WHERE p.version = 3"
        ),
        2
    );
    // Later syncs go on from there.
    repo.write("prompts/s/p.yaml", &prompt("four", "a"));
    repo.commit("four");
    let summary = sync_json(&repo, &db);
    assert_eq!(summary["versions_added"], 1);
    assert_eq!(summary["skipped"], serde_json::json!([]));
    assert_eq!(versions("p"), [1, 3, 4]);
}

/// The skipped versions in `--format json`, and a registry emptied and synced again
/// (every version sent) skips them again the same way.
#[test]
fn skipped_versions_are_listed_in_json_with_their_reason() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write("prompts/s/p.yaml", &prompt("one", "a"));
    repo.commit("one");
    repo.write(
        "prompts/s/p.yaml",
        &prompt("two", "a").replace("temperature: 0.2", "stop: \"\\u0000\""),
    );
    repo.commit("two");
    repo.write("prompts/s/p.yaml", &prompt("three", "a"));
    repo.commit("three");
    let summary = sync_json(&repo, &db);
    assert_eq!(summary["versions_added"], 2, "{summary}");
    let skipped = summary["skipped"].as_array().expect("skipped");
    assert_eq!(skipped.len(), 1, "{summary}");
    assert_eq!(skipped[0]["service"], "s");
    assert_eq!(skipped[0]["name"], "p");
    assert_eq!(skipped[0]["version"], 2);
    assert!(
        skipped[0]["reason"]
            .as_str()
            .is_some_and(|r| r.contains("parameter `stop`") && r.contains("NUL")),
        "{summary}"
    );
    assert!(skipped[0]["commit"].as_str().is_some_and(|c| c.len() == 40));
    assert!(
        summary["sent"]
            .as_array()
            .expect("sent")
            .iter()
            .all(|v| v["version"] != 2),
        "{summary}"
    );
}

/// What the registry can store passes both: a name, service and model exactly at their
/// limits (counted in characters, not bytes), other control characters anywhere, and a NUL
/// in a test's `vars` (stored as JSON text, where it is escaped).
#[test]
fn values_at_the_limits_and_other_control_characters_publish() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    let name = "n".repeat(255);
    let service = "é".repeat(100);
    repo.write(
        "prompts/s/p.yaml",
        &format!(
            "name: {name}\nservice: {service}\nmodel: {}\nparameters: {{stop: \"\\x01\\x1b\"}}\nvariables:\n  x: {{type: string, default: \"\\x7f\"}}\ntemplate: \"a\\x01\\x1f {{{{ x }}}}\"\ntests:\n  - name: \"t\\x02\"\n    vars: {{x: \"a\\0b\"}}\n    assert: [{{type: contains, value: \"\\x03\"}}]\n",
            "m".repeat(50)
        ),
    );
    repo.commit("limits");
    let (code, stdout, stderr) = repo.run(&["check", "--format", "json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let summary = sync_json(&repo, &db);
    assert_eq!(summary["versions_added"], 1, "{summary}");
    assert_eq!(summary["skipped"], serde_json::json!([]));
    let row = &db.rows("SELECT template, length(name), length(service) FROM prompts")[0];
    assert_eq!(row.get::<_, String>(0), "a\u{1}\u{1f} {{ x }}");
    assert_eq!(row.get::<_, i32>(1), 255);
    assert_eq!(row.get::<_, i32>(2), 100);
    let input: String = db.rows("SELECT test_input FROM prompt_tests")[0].get(0);
    assert!(input.contains(r"a\u0000b"), "{input}");
}

/// Runs promptctl in `repo` with `args`, killed if it has not ended after 30 s: (exit
/// code, stderr, how long it ran).
fn run_bounded(repo: &TestRepo, args: &[&str]) -> (Option<i32>, String, Duration) {
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_promptctl"))
        .args(args)
        .current_dir(repo.path())
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", repo.path())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("NO_COLOR", "1")
        .env("LC_ALL", "C")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promptctl runs");
    let code = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status.code();
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
    }
    (code, stderr, started.elapsed())
}

#[test]
fn a_database_that_accepts_and_never_answers_exits_3_within_seconds() {
    let repo = TestRepo::new();
    repo.write("prompts/s/a.yaml", &prompt("one", "a"));
    repo.commit("one");
    let address = common::db::black_hole();
    let url = format!("postgres://postgres@{address}/postgres");
    for args in [
        vec!["sync", "--database-url", url.as_str()],
        vec!["get", "a", "--database-url", url.as_str()],
        vec!["stats", "--database-url", url.as_str()],
    ] {
        let (code, stderr, took) = run_bounded(&repo, &args);
        assert_eq!(code, Some(3), "{args:?} after {took:?}: {stderr}");
        assert!(took < Duration::from_secs(8), "{args:?} took {took:?}");
        assert!(
            stderr.contains(&format!("cannot connect to PostgreSQL at {address}"))
                && stderr.contains("did not complete the connection within 5 s"),
            "{stderr}"
        );
    }
    // `[database] connect_timeout_s` sets the bound.
    repo.write("promptctl.toml", "[database]\nconnect_timeout_s = 1\n");
    let (code, stderr, took) = run_bounded(&repo, &["sync", "--database-url", &url]);
    assert_eq!(code, Some(3), "{stderr}");
    assert!(took < Duration::from_secs(3), "took {took:?}");
    assert!(stderr.contains("within 1 s"), "{stderr}");
}
