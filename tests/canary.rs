//! Canary splits end to end: the router sends a share of an environment's calls to its
//! canary (deterministically by routing key) against a real OpenAI-format provider on
//! loopback, records each run's side in a real PostgreSQL, and `promptctl canary status`
//! reads them back and decides; `canary promote` and `abort` edit and commit
//! environments.yaml.

mod common;
#[path = "support/stub_provider.rs"]
mod stub_provider;

use std::collections::BTreeMap;
use std::time::Duration;

use common::db::TestDb;
use common::git::TestRepo;
use promptctl::config::Config;
use promptctl::router::{ExecuteOptions, PromptSource, Router, Side};
use serde_json::Value;
use stub_provider::{Reply, StubProvider, openai_answer};

/// A provider whose `canary-model` errs on `canary_errors` per thousand calls and whose
/// `base-model` on `base_errors`, each call taking `delay` ms (`canary_extra` more for the
/// canary's model); which calls err is a hash of the call's variable, so a run is
/// repeatable.
fn provider(base_errors: u64, canary_errors: u64, delay: u64, canary_extra: u64) -> StubProvider {
    StubProvider::start(move |request, _| {
        let model = request.body["model"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let text = stub_provider::last_user_message(&request.body);
        let hash = text.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
            (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3)
        });
        let canary = model == "canary-model";
        let per_mille = if canary { canary_errors } else { base_errors };
        let jitter = hash % 10;
        let wait = delay + jitter + if canary { canary_extra } else { 0 };
        if hash % 1000 < per_mille {
            return Reply::json(500, serde_json::json!({"error": {"message": "overloaded"}}))
                .after(Duration::from_millis(wait));
        }
        openai_answer(&format!("ok from {model}")).after(Duration::from_millis(wait))
    })
}

fn config(url: &str) -> String {
    format!(
        r#"[providers.stub]
kind = "openai"
base_url = "{url}/v1"
max_retries = 0

[models.base-model]
provider = "stub"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0

[models.canary-model]
provider = "stub"
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0

[monitoring]
sample_rate = 0.0
"#
    )
}

const PROMPT_V1: &str = "model: base-model\nvariables:\n  x: {type: string}\ntemplate: \"One {{ x }}\"\ntests:\n  - vars: {x: a}\n    assert:\n      - {type: contains, value: ok}\n";
const PROMPT_V2: &str = "model: base-model\nvariables:\n  x: {type: string}\ntemplate: \"Two {{ x }}\"\ntests:\n  - vars: {x: a}\n    assert:\n      - {type: contains, value: ok}\n";

/// A repository with two versions of `billing/invoice` and `environments` committed.
fn repo(url: &str, environments: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("promptctl.toml", &config(url));
    repo.write("prompts/billing/invoice.yaml", PROMPT_V1);
    repo.commit("v1");
    repo.write("prompts/billing/invoice.yaml", PROMPT_V2);
    repo.commit("v2");
    repo.write("environments.yaml", environments);
    repo.commit("Split production");
    repo
}

/// Runs `runs` calls of `billing/invoice` in production through a router over `source`,
/// recording into `db`; returns how many took the canary.
fn drive(
    repo: &TestRepo,
    db: &TestDb,
    source: impl Fn(&Config) -> PromptSource,
    runs: usize,
) -> usize {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config::discover(repo.path()).expect("config");
    runtime.block_on(async {
        let router = Router::new(&config.settings, source(&config), Some(db.url.clone()));
        let mut tasks = Vec::new();
        let workers = 32;
        for worker in 0..workers {
            let router = router.clone();
            tasks.push(tokio::spawn(async move {
                let mut canary = 0;
                for i in (worker..runs).step_by(workers) {
                    let vars = BTreeMap::from([("x".to_owned(), Value::from(format!("call-{i}")))]);
                    let side = match router.execute("invoice", "production", &vars).await {
                        Ok(run) => run.side,
                        Err(_) => None,
                    };
                    canary += usize::from(side == Some(Side::Canary));
                }
                canary
            }));
        }
        let mut canary = 0;
        for task in tasks {
            canary += task.await.expect("task");
        }
        let stats = router.shutdown(Duration::from_secs(20)).await;
        assert_eq!(stats.dropped, 0, "{stats:?}");
        canary
    })
}

/// `canary status` as JSON, and its exit code.
fn status(repo: &TestRepo, db: &TestDb) -> (i32, Value, String) {
    let (code, stdout, stderr) = repo.run(&[
        "canary",
        "status",
        "invoice",
        "--env",
        "production",
        "--check",
        "--database-url",
        &db.url,
        "--format",
        "json",
    ]);
    (
        code,
        serde_json::from_str(&stdout).unwrap_or(Value::Null),
        stderr,
    )
}

/// `runs` calls through the repository's split of production (v2, a fifth of the calls on
/// `canary-model`) against `stub`, recorded; then `canary status --check`.
fn model_swap(stub: StubProvider, runs: usize) -> (TestRepo, TestDb, (i32, Value, String)) {
    let db = TestDb::new();
    let repo = repo(
        &stub.url(),
        "prompts:\n  invoice:\n    production: {version: 2, canary: {model: canary-model, weight: 20}}\n",
    );
    drive(
        &repo,
        &db,
        |config| PromptSource::repository(config, None).expect("source"),
        runs,
    );
    let status = status(&repo, &db);
    (repo, db, status)
}

fn verdict(status: &Value, metric: &str) -> String {
    status["analysis"]["metrics"]
        .as_array()
        .and_then(|m| m.iter().find(|m| m["metric"] == metric))
        .map(|m| m["verdict"].as_str().unwrap_or_default().to_owned())
        .unwrap_or_default()
}

#[test]
fn a_canary_erring_more_often_is_caught_on_error_rate_through_the_registry() {
    let stub = provider(10, 80, 2, 0);
    let db = TestDb::new();
    let repo = repo(
        &stub.url(),
        "prompts:\n  invoice:\n    production: {version: 1, canary: {version: 2, model: canary-model, weight: 20}}\n",
    );
    let (code, _, stderr) = repo.run(&["sync", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stderr}");
    let (code, stdout, stderr) = repo.run(&[
        "get",
        "invoice",
        "--env",
        "production",
        "--canary",
        "--database-url",
        &db.url,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let canary: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(
        (canary["version"].as_u64(), canary["model"].as_str()),
        (Some(2), Some("canary-model"))
    );
    assert_eq!(canary["side"], "canary");
    let url = db.url.clone();
    let answered = drive(
        &repo,
        &db,
        |_| PromptSource::registry(url.clone(), Duration::from_secs(60)),
        2000,
    );
    let canary = db.count("SELECT count(*) FROM prompt_runs WHERE side = 'canary'");
    let baseline = db.count("SELECT count(*) FROM prompt_runs WHERE side = 'baseline'");
    assert_eq!(canary + baseline, 2000);
    // 2,000 calls at 20 %: 400 expected, sd 17.9; five sd either way.
    assert!((310..=490).contains(&canary), "{canary} canary runs");
    let failed =
        db.count("SELECT count(*) FROM prompt_runs WHERE side = 'canary' AND error IS NOT NULL");
    assert_eq!(answered as i64, canary - failed);
    let versions = db.count(
        "SELECT count(*) FROM prompt_runs WHERE side = 'canary' AND (version <> 2 OR model_requested <> 'canary-model')",
    );
    assert_eq!(versions, 0, "the canary runs v2 on canary-model");
    let (code, json, stderr) = status(&repo, &db);
    assert_eq!(code, 1, "{json} {stderr}");
    assert_eq!(verdict(&json, "error_rate"), "worse", "{json}");
    assert_eq!(json["worse"], true);
    assert_ne!(verdict(&json, "latency_p95"), "worse", "{json}");
}

#[test]
fn identical_sides_are_not_called_worse() {
    let (_repo, _db, (code, json, stderr)) = model_swap(provider(20, 20, 2, 0), 2000);
    assert_eq!(code, 0, "{json} {stderr}");
    for metric in ["error_rate", "latency_p50", "latency_p95", "cost"] {
        assert_ne!(verdict(&json, metric), "worse", "{metric}: {json}");
        assert_ne!(
            verdict(&json, metric),
            "not_enough_data",
            "{metric}: {json}"
        );
    }
    assert_eq!(verdict(&json, "quality"), "not_enough_data", "{json}");
}

#[test]
fn a_slow_canary_is_caught_on_latency_alone() {
    let (repo, db, (code, json, stderr)) = model_swap(provider(0, 0, 5, 200), 1500);
    assert_eq!(code, 1, "{json} {stderr}");
    assert_eq!(verdict(&json, "latency_p95"), "worse", "{json}");
    assert_ne!(verdict(&json, "error_rate"), "worse", "{json}");
    assert_ne!(verdict(&json, "cost"), "worse", "{json}");
    let (_, text, _) = repo.run(&[
        "canary",
        "status",
        "invoice",
        "--database-url",
        &db.url,
        "--color",
        "never",
    ]);
    assert!(
        text.contains("P95 latency") && text.contains("worse"),
        "{text}"
    );
}

#[test]
fn one_routing_key_always_lands_on_one_side() {
    let stub = provider(0, 0, 0, 0);
    let repo = repo(
        &stub.url(),
        "prompts:\n  invoice:\n    production: {version: 1, canary: {version: 2, weight: 50}}\n",
    );
    let config = Config::discover(repo.path()).expect("config");
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    runtime.block_on(async {
        let router = Router::new(
            &config.settings,
            PromptSource::repository(&config, None).expect("source"),
            None,
        );
        let vars = BTreeMap::from([("x".to_owned(), Value::from("y"))]);
        let mut seen = BTreeMap::new();
        for user in 0..40 {
            for _ in 0..5 {
                let options = ExecuteOptions {
                    key: Some(format!("user-{user}")),
                    ..ExecuteOptions::default()
                };
                let run = router
                    .execute_with("billing/invoice", "production", &vars, options)
                    .await
                    .expect("runs");
                let side = run.side.expect("a side");
                assert_eq!(run.version, Some(if side == Side::Canary { 2 } else { 1 }));
                let first = *seen.entry(user).or_insert(side);
                assert_eq!(first, side, "user-{user} changed sides");
            }
        }
        let canary = seen.values().filter(|s| **s == Side::Canary).count();
        assert!(
            (8..=32).contains(&canary),
            "{canary} of 40 keys on the canary"
        );
        // A chosen version bypasses the split.
        let pinned = ExecuteOptions {
            version: Some(1),
            key: Some("user-1".into()),
            ..ExecuteOptions::default()
        };
        let error = router
            .execute_with("billing/invoice", "production", &vars, pinned)
            .await
            .expect_err("a repository source has no versions to choose from");
        assert!(error.to_string().contains("needs the registry"), "{error}");
        router.shutdown(Duration::from_secs(5)).await;
    });
}

#[test]
fn promote_and_abort_are_minimal_commits_and_a_failing_canary_is_not_promoted() {
    // The canary's model answers without "ok": its test fails.
    let stub = StubProvider::start(|request, _| {
        let model = request.body["model"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        openai_answer(if model == "canary-model" {
            "nope"
        } else {
            "ok"
        })
    });
    let split = "# where each prompt runs\nprompts:\n  invoice:\n    production: {version: 1, model: base-model, canary: {version: 2, model: canary-model, weight: 10}}  # trial\n    staging: {version: 2}\n";
    let repo = repo(&stub.url(), split);
    let head = repo.head();
    let (code, _, stderr) = repo.run(&["canary", "promote", "invoice", "--env", "production"]);
    assert_eq!(code, 1, "{stderr}");
    assert!(stderr.contains("refused"), "{stderr}");
    assert_eq!(repo.head(), head, "nothing committed");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("environments.yaml")).expect("file"),
        split
    );

    let (code, stdout, stderr) = repo.run(&["canary", "abort", "invoice", "--env", "production"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains("Abort the canary of billing/invoice in production"),
        "{stdout}"
    );
    let aborted = split.replace(
        "{version: 1, model: base-model, canary: {version: 2, model: canary-model, weight: 10}}",
        "{version: 1, model: base-model}",
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("environments.yaml")).expect("file"),
        aborted
    );
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(
        message.starts_with("Abort the canary of billing/invoice in production\n"),
        "{message}"
    );
    assert_eq!(
        repo.git(&["show", "--name-only", "--format=", "HEAD"])
            .trim(),
        "environments.yaml"
    );

    // A canary that changes the version only, and whose tests pass, is promoted.
    repo.write(
        "environments.yaml",
        &split.replace(", model: canary-model", ""),
    );
    repo.commit("Split again");
    let (code, stdout, stderr) = repo.run(&["canary", "promote", "invoice", "--env", "production"]);
    assert_eq!(code, 0, "{stdout} {stderr}");
    let promoted = split.replace(
        "{version: 1, model: base-model, canary: {version: 2, model: canary-model, weight: 10}}",
        "{version: 2, model: base-model}",
    );
    assert_eq!(
        std::fs::read_to_string(repo.path().join("environments.yaml")).expect("file"),
        promoted
    );
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(
        message
            .starts_with("Promote the canary of billing/invoice in production: v2 (base-model)\n"),
        "{message}"
    );
    assert!(
        message.contains("Tests: 1 passed on the canary."),
        "{message}"
    );
    let (code, _, stderr) = repo.run(&["canary", "abort", "invoice", "--env", "production"]);
    assert_eq!(code, 2, "no canary left: {stderr}");
    assert!(stderr.contains("has no canary"), "{stderr}");
}

#[test]
fn check_validates_the_split_and_render_shows_the_canary_side() {
    let stub = provider(0, 0, 0, 0);
    let repo = repo(
        &stub.url(),
        "prompts:\n  invoice:\n    production: {version: 1, canary: {version: 2, weight: 10}}\n",
    );
    let (code, stdout, stderr) = repo.run(&[
        "render",
        "invoice",
        "--env",
        "production",
        "--canary",
        "--var",
        "x=hi",
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(json["version"], 2);
    assert_eq!(json["side"], "canary");
    for (bad, needle) in [
        (
            "{version: 1, canary: {version: 2, weight: 150}}",
            "at most 100",
        ),
        ("{version: 1, canary: {version: 2, weight: 0}}", "above 0"),
        (
            "{version: 1, canary: {version: 9, weight: 10}}",
            "no version 9",
        ),
        (
            "{version: 1, canary: {version: 1, weight: 10}}",
            "compares nothing",
        ),
        ("{version: 1, canary: {version: 2}}", "weight"),
        (
            "{version: 1, canary: {version: 2, weight: 5, share: 3}}",
            "share",
        ),
    ] {
        repo.write(
            "environments.yaml",
            &format!("prompts:\n  invoice:\n    production: {bad}\n"),
        );
        let (code, stdout, stderr) = repo.run(&["check", "--color", "never"]);
        assert_ne!(code, 0, "{bad} passed check");
        assert!(
            format!("{stdout}{stderr}").contains(needle),
            "{bad}: {stdout}{stderr}"
        );
    }
}

#[test]
fn serve_routes_by_the_key_in_the_body_and_stats_keep_the_sides_apart() {
    use common::server::{READ, RUN, Server};
    let stub = provider(0, 0, 0, 0);
    let db = TestDb::new();
    let repo = repo(
        &stub.url(),
        "prompts:\n  invoice:\n    production: {version: 1, canary: {version: 2, model: canary-model, weight: 50}}\n",
    );
    let (code, _, stderr) = repo.run(&["sync", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stderr}");
    let server = Server::start(
        &repo,
        &db.url,
        &[
            ("PROMPTCTL_READ_TOKENS", READ),
            ("PROMPTCTL_RUN_TOKENS", RUN),
        ],
        &["--run-rate-limit", "0"],
    );
    let mut sides = BTreeMap::new();
    for user in 0..20 {
        for _ in 0..3 {
            let body = serde_json::json!({"env": "production", "key": format!("user-{user}"), "vars": {"x": "a"}});
            let run = server.post("/v1/prompts/billing/invoice/run", Some(RUN), &body);
            assert_eq!(run.status, 200, "{}", run.text);
            let json = run.json();
            let side = json["side"].as_str().expect("a side").to_owned();
            let expected = if side == "canary" {
                ("canary-model", 2)
            } else {
                ("base-model", 1)
            };
            assert_eq!(
                (
                    json["model"].as_str().unwrap_or_default(),
                    json["version"].as_u64().unwrap_or(0)
                ),
                (expected.0, expected.1)
            );
            assert_eq!(
                sides.entry(user).or_insert_with(|| side.clone()),
                &side,
                "user-{user} changed sides"
            );
            // Rendering with the same key gives the same side.
            let render = server.post("/v1/prompts/billing/invoice/render", Some(READ), &body);
            assert_eq!(render.json()["side"], side.as_str(), "{}", render.text);
        }
    }
    let canary = sides.values().filter(|s| *s == "canary").count();
    assert!(
        (3..=17).contains(&canary),
        "{canary} of 20 keys on the canary"
    );
    // A version bypasses the split.
    let pinned = server.post(
        "/v1/prompts/billing/invoice/run",
        Some(RUN),
        &serde_json::json!({"version": 1, "key": "user-1", "vars": {"x": "a"}}),
    );
    assert_eq!(pinned.status, 200, "{}", pinned.text);
    assert!(pinned.json().get("side").is_none(), "{}", pinned.text);
    let long =
        serde_json::json!({"env": "production", "key": "k".repeat(2000), "vars": {"x": "a"}});
    server
        .post("/v1/prompts/billing/invoice/run", Some(RUN), &long)
        .error(422, "invalid");
    // The recorder writes within a second or so; the rollups follow.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let rolled = "SELECT coalesce(sum(calls), 0)::int8 FROM prompt_rollups WHERE width = 60";
    while (db.count("SELECT count(*) FROM prompt_runs") < 61 || db.count(rolled) < 61)
        && std::time::Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(100));
    }
    let log = server.stop();
    let recorded = db.count("SELECT count(*) FROM prompt_runs WHERE side IS NOT NULL");
    assert_eq!(recorded, 60, "{log}");
    let (code, stdout, stderr) = repo.run(&[
        "stats",
        "invoice",
        "--by",
        "side",
        "--database-url",
        &db.url,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).expect("json");
    let rows = json["rows"].as_array().expect("rows");
    let calls = |group: &str| {
        rows.iter()
            .filter(|r| r["group"] == group)
            .map(|r| r["calls"].as_i64().unwrap_or(0))
            .sum::<i64>()
    };
    assert_eq!(calls("canary"), 3 * canary as i64, "{json}");
    assert_eq!(calls("baseline"), 3 * (20 - canary) as i64, "{json}");
    assert_eq!(
        calls(""),
        1,
        "the chosen version runs outside the split: {json}"
    );
}

#[test]
fn runs_of_an_earlier_split_are_not_compared_and_the_window_is_the_splits_commit() {
    let stub = provider(0, 0, 0, 0);
    let db = TestDb::new();
    let repo = repo(
        &stub.url(),
        "prompts:\n  invoice:\n    production: {version: 1, canary: {version: 2, model: canary-model, weight: 10}}\n",
    );
    // A later commit that leaves the split alone does not move the window.
    repo.write(
        "prompts/billing/other.yaml",
        "model: base-model\ntemplate: Hi\n",
    );
    repo.commit("another prompt");
    let split_commit = repo.git(&["rev-parse", "HEAD~1"]).trim().to_owned();
    let (code, _, stderr) = repo.run(&["sync", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stderr}");
    let split_time: i64 = repo
        .git(&["log", "-1", "--format=%ct", &split_commit])
        .trim()
        .parse()
        .expect("time");
    let since = db.count("SELECT extract(epoch FROM canary_since)::int8 FROM prompt_environments WHERE environment = 'production'");
    assert_eq!(since, split_time, "canary_since is the split's commit time");
    // An earlier canary (v2 on base-model) erred on every fifth call; today's (v2 on
    // canary-model) on none.
    db.rows(
        "INSERT INTO prompt_runs (run_id, service, name, version, environment, side, model_requested, latency_ms, error, created_at)
         SELECT gen_random_uuid(), 'billing', 'invoice', v, 'production', s, m, 100 + i % 7,
           CASE WHEN s = 'canary' AND m = 'base-model' AND i % 5 = 0 THEN 'HTTP 500' END, now() - interval '1 minute'
         FROM generate_series(1, 400) AS i,
           (VALUES (2, 'canary', 'base-model'), (2, 'canary', 'canary-model'), (1, 'baseline', 'base-model'),
                   (1, 'baseline', 'base-model'), (1, 'baseline', 'base-model')) AS sides(v, s, m)",
    );
    let (code, json, stderr) = status(&repo, &db);
    assert_eq!(code, 0, "{json} {stderr}");
    assert_eq!(json["analysis"]["canary_runs"], 400, "{json}");
    assert_eq!(json["analysis"]["baseline_runs"], 1200, "{json}");
    assert_eq!(json["since_commit"], split_commit.as_str());
    assert_eq!(json["analysis"]["sides"][1]["model"], "canary-model");
    // Looking back without the registry's split (aborted since): every canary run counts.
    db.rows("UPDATE prompt_environments SET canary_weight = NULL");
    let (code, stdout, stderr) = repo.run(&[
        "canary",
        "status",
        "invoice",
        "--since",
        "1h",
        "--check",
        "--database-url",
        &db.url,
        "--format",
        "json",
    ]);
    let json: Value = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    assert_eq!(code, 1, "{json} {stderr}");
    assert_eq!(json["analysis"]["canary_runs"], 800, "{json}");
}

#[test]
fn promote_writes_a_latest_canary_as_its_number_and_refuses_what_cannot_run() {
    let stub = provider(0, 0, 0, 0);
    let repo = repo(
        &stub.url(),
        "prompts:\n  invoice:\n    production: {version: 1, canary: {version: latest, weight: 10}}\n",
    );
    // A pin that makes the environment run what its canary runs is refused.
    let (code, _, stderr) = repo.run(&[
        "pin",
        "invoice",
        "--env",
        "production",
        "--version",
        "latest",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("compare nothing"), "{stderr}");
    let (code, _, stderr) = repo.run(&["canary", "promote", "invoice", "--skip-tests"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(
        std::fs::read_to_string(repo.path().join("environments.yaml")).expect("file"),
        "prompts:\n  invoice:\n    production: {version: 2}\n"
    );
    let message = repo.git(&["log", "-1", "--format=%B"]);
    assert!(
        message.contains("Tests: skipped (--skip-tests)."),
        "{message}"
    );
    repo.write(
        "environments.yaml",
        "prompts:\n  invoice:\n    production: {version: 1, canary: {version: 9, weight: 10}}\n",
    );
    repo.commit("a canary of a version that does not exist");
    let head = repo.head();
    let (code, _, stderr) = repo.run(&["canary", "promote", "invoice", "--skip-tests"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("no version 9"), "{stderr}");
    assert_eq!(repo.head(), head);
    // A dirty file is refused, with the way out.
    repo.write(
        "environments.yaml",
        "prompts:\n  invoice:\n    production: {version: 1, canary: {version: 2, weight: 10}}\n",
    );
    let (code, _, stderr) = repo.run(&["canary", "abort", "invoice"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("--no-commit"), "{stderr}");
    let (code, _, stderr) = repo.run(&["canary", "abort", "invoice", "--no-commit"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(repo.head(), head);
    assert_eq!(
        std::fs::read_to_string(repo.path().join("environments.yaml")).expect("file"),
        "prompts:\n  invoice:\n    production: {version: 1}\n"
    );
}
