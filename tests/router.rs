//! The router (`Router::execute`, `promptctl run`, `stats`, `export`) against a real
//! PostgreSQL (a fresh database per test, on the server of `PROMPTCTL_TEST_DATABASE_URL`,
//! default `postgres://postgres@127.0.0.1:5432/postgres`; never skipped) and real HTTP
//! providers on loopback speaking the OpenAI and Anthropic wire formats.

mod common;
#[path = "support/stub_provider.rs"]
mod stub_provider;

use std::collections::BTreeMap;
use std::time::Duration;

use common::db::TestDb;
use common::git::TestRepo;
use promptctl::config::Config;
use promptctl::registry::runs::{RunRecord, RunRecorder};
use promptctl::router::{PromptSource, Router};
use serde_json::Value;
use stub_provider::{Reply, StubProvider, anthropic_answer, openai_answer};

const KEY: &str = "sk-router-test-SECRETKEY-123";
const DOWN_URL: &str = "postgres://postgres@127.0.0.1:1/nothing";

impl TestDb {
    fn execute(&self, sql: &str) {
        self.runtime
            .block_on(self.client.batch_execute(sql))
            .unwrap_or_else(|err| panic!("{sql}: {err:?}"));
    }
}

fn config(primary: &str, backup: &str, sample_rate: f64) -> String {
    format!(
        r#"[providers.primary]
kind = "openai"
base_url = "{primary}/v1"
api_key_env = "ROUTER_TEST_KEY"
max_retries = 1

[providers.backup]
kind = "anthropic"
base_url = "{backup}"
api_key_env = "ROUTER_TEST_KEY"
max_retries = 0

[providers.local]
kind = "openai"
base_url = "{primary}/v1"

[models.main-model]
provider = "primary"
fallbacks = ["backup-model"]
timeout_s = 5
input_usd_per_mtok = 1.0
output_usd_per_mtok = 2.0

[models.backup-model]
provider = "backup"
input_usd_per_mtok = 3.0
output_usd_per_mtok = 15.0

[models.pinned-model]
provider = "primary"

[models.local-model]
provider = "local"

[monitoring]
sample_rate = {sample_rate}

[monitoring.alerts]
max_quality_drop = 0.05
"#
    )
}

fn prompt(model: &str, template: &str) -> String {
    format!(
        "model: {model}\nvariables:\n  x: {{type: string}}\ntemplate: \"{template} {{{{ x }}}}\"\nmonitor:\n  - {{type: not_contains, value: SECRET}}\n"
    )
}

fn repo(config_text: &str, model: &str, environments: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("promptctl.toml", config_text);
    repo.write("environments.yaml", environments);
    repo.write("prompts/support/reply.yaml", &prompt(model, "Version one:"));
    repo.commit("v1");
    repo.write("prompts/support/reply.yaml", &prompt(model, "Version two:"));
    repo.commit("v2");
    repo
}

fn run(repo: &TestRepo, db_url: &str, args: &[&str]) -> (i32, Value, String) {
    let mut all = vec!["run"];
    all.extend(args);
    all.extend(["--database-url", db_url, "--format", "json"]);
    let (code, stdout, stderr) = repo.run_env(&all, &[("ROUTER_TEST_KEY", KEY)]);
    assert!(
        !stdout.contains(KEY) && !stderr.contains(KEY),
        "the key leaked"
    );
    let json = serde_json::from_str(&stdout).unwrap_or(Value::Null);
    (code, json, stderr)
}

fn ok_stub() -> StubProvider {
    StubProvider::start(|request, _| {
        openai_answer(&format!(
            "answer from {}",
            request.body["model"].as_str().unwrap_or("?")
        ))
    })
}

#[test]
fn production_runs_the_pinned_version_and_model_and_is_recorded() {
    let db = TestDb::new();
    let stub = ok_stub();
    let repo = repo(
        &config(&stub.url(), &stub.url(), 0.0),
        "main-model",
        "prompts:\n  support/reply:\n    production: {version: 1, model: pinned-model}\n",
    );
    let (code, json, stderr) = run(
        &repo,
        &db.url,
        &["support/reply", "--env", "production", "--var", "x=hi"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["version"], 1);
    assert_eq!(json["model"], "pinned-model");
    assert_eq!(json["output"], "answer from pinned-model");
    let seen = stub.requests();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].body["model"], "pinned-model");
    assert!(
        stub_provider::last_user_message(&seen[0].body).starts_with("Version one: hi"),
        "{:?}",
        seen[0].body
    );
    let rows = db.rows(
        "SELECT run_id::text, version, model_requested, model_used, environment, error, input_text, output_text FROM prompt_runs",
    );
    assert_eq!(rows.len(), 1);
    assert_eq!(
        rows[0].get::<_, String>(0),
        json["run_id"].as_str().expect("run id")
    );
    assert_eq!(rows[0].get::<_, Option<i32>>(1), Some(1));
    assert_eq!(rows[0].get::<_, String>(2), "pinned-model");
    assert_eq!(
        rows[0].get::<_, Option<String>>(3).as_deref(),
        Some("pinned-model")
    );
    assert_eq!(
        rows[0].get::<_, Option<String>>(4).as_deref(),
        Some("production")
    );
    assert_eq!(rows[0].get::<_, Option<String>>(5), None);
    // Privacy by default: no input or output stored.
    assert_eq!(rows[0].get::<_, Option<String>>(6), None);
    assert_eq!(rows[0].get::<_, Option<String>>(7), None);
    let everything: String =
        db.rows("SELECT string_agg(r::text, ',') FROM prompt_runs r")[0].get(0);
    assert!(!everything.contains(KEY));
}

#[test]
fn a_failing_primary_falls_back_and_the_row_says_so() {
    let db = TestDb::new();
    let primary = StubProvider::start(|_, _| {
        Reply::json(500, serde_json::json!({"error": {"message": "boom"}}))
    });
    let backup = StubProvider::start(|_, _| anthropic_answer("from the backup"));
    let repo = repo(
        &config(&primary.url(), &backup.url(), 0.0),
        "main-model",
        "prompts: {}\n",
    );
    let (code, json, stderr) = run(
        &repo,
        &db.url,
        &["support/reply", "--env", "staging", "--var", "x=hi"],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["output"], "from the backup");
    assert_eq!(json["model_requested"], "main-model");
    assert_eq!(json["model"], "backup-model");
    assert_eq!(primary.requests().len(), 2, "one try and one retry");
    assert_eq!(backup.requests()[0].body["model"], "backup-model");
    let rows = db.rows("SELECT model_requested, model_used, provider, attempt_errors, error, cache_read_tokens, cost_usd FROM prompt_runs");
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].get::<_, String>(0), "main-model");
    assert_eq!(
        rows[0].get::<_, Option<String>>(1).as_deref(),
        Some("backup-model")
    );
    assert_eq!(
        rows[0].get::<_, Option<String>>(2).as_deref(),
        Some("backup")
    );
    let errors: Option<String> = rows[0].get(3);
    assert!(
        errors.as_deref().unwrap_or("").contains("main-model"),
        "{errors:?}"
    );
    assert!(
        errors.as_deref().unwrap_or("").contains("500"),
        "{errors:?}"
    );
    assert_eq!(rows[0].get::<_, Option<String>>(4), None);
    assert_eq!(rows[0].get::<_, Option<i32>>(5), Some(3));
    // 12 input, 3 cache reads at a tenth, 5 output: (12 + 0.3) * 3 + 5 * 15 per million.
    let cost: f64 = rows[0].get::<_, Option<f64>>(6).expect("a cost");
    assert!((cost - (12.3 * 3.0 + 75.0) / 1e6).abs() < 1e-12, "{cost}");
}

#[test]
fn a_401_does_not_fall_back_and_every_model_failing_exits_3() {
    let db = TestDb::new();
    let primary = StubProvider::start(|_, _| {
        Reply::json(401, serde_json::json!({"error": {"message": "bad key"}}))
    });
    let backup = StubProvider::start(|_, _| anthropic_answer("from the backup"));
    let repo = repo(
        &config(&primary.url(), &backup.url(), 0.0),
        "main-model",
        "prompts: {}\n",
    );
    let (code, _, stderr) = run(
        &repo,
        &db.url,
        &["support/reply", "--env", "staging", "--var", "x=hi"],
    );
    assert_ne!(code, 0);
    assert!(stderr.contains("401"), "{stderr}");
    assert_eq!(primary.requests().len(), 1, "a 401 is not retried");
    assert!(backup.requests().is_empty(), "a 401 does not fall back");
    let rows = db.rows("SELECT error FROM prompt_runs");
    assert!(
        rows[0]
            .get::<_, Option<String>>(0)
            .unwrap_or_default()
            .contains("401")
    );

    let down = StubProvider::start(|_, _| Reply::json(503, serde_json::json!({})));
    let repo = repo_with(&config(&down.url(), &down.url(), 0.0));
    let (code, _, stderr) = run(
        &repo,
        &db.url,
        &["support/reply", "--env", "staging", "--var", "x=hi"],
    );
    assert_eq!(code, 3, "{stderr}");
    assert!(stderr.contains("every model failed"), "{stderr}");
}

fn repo_with(config_text: &str) -> TestRepo {
    repo(config_text, "main-model", "prompts: {}\n")
}

/// percentile_cont, computed independently: linear interpolation between ranks.
fn percentile(sorted: &[f64], p: f64) -> f64 {
    let position = p * (sorted.len() - 1) as f64;
    let low = position.floor() as usize;
    let high = position.ceil() as usize;
    sorted[low] + (sorted[high] - sorted[low]) * (position - low as f64)
}

#[test]
fn a_thousand_concurrent_runs_make_a_thousand_rows_and_percentiles_within_one_percent() {
    let db = TestDb::new();
    let stub = StubProvider::start(|_, index| {
        openai_answer("fine").after(Duration::from_micros((index % 7) as u64 * 300))
    });
    let repo = repo(
        &config(&stub.url(), &stub.url(), 0.0),
        "local-model",
        "prompts: {}\n",
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config::discover(repo.path()).expect("config");
    runtime.block_on(async {
        let router = Router::new(
            &config.settings,
            PromptSource::repository(&config, None).expect("source"),
            Some(db.url.clone()),
        );
        let mut tasks = Vec::new();
        for task in 0..50 {
            let router = router.clone();
            tasks.push(tokio::spawn(async move {
                for i in 0..20 {
                    let vars =
                        BTreeMap::from([("x".to_owned(), Value::from(format!("{task}-{i}")))]);
                    router
                        .execute("reply", "staging", &vars)
                        .await
                        .expect("runs");
                }
            }));
        }
        for task in tasks {
            task.await.expect("task");
        }
        let stats = router.shutdown(Duration::from_secs(10)).await;
        assert_eq!(stats.dropped, 0, "{stats:?}");
        assert_eq!(stats.written, 1000);
    });
    let count: i64 = db.rows("SELECT count(*) FROM prompt_runs")[0].get(0);
    assert_eq!(count, 1000);
    let mut latencies: Vec<f64> = db
        .rows("SELECT latency_ms FROM prompt_runs")
        .iter()
        .map(|r| r.get::<_, f64>(0))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let (code, stdout, stderr) = repo.run(&[
        "stats",
        "support/reply",
        "--since",
        "1h",
        "--database-url",
        &db.url,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let json: Value = serde_json::from_str(&stdout).expect("json");
    let row = &json["rows"][0];
    assert_eq!(row["calls"], 1000);
    for (key, p) in [("p50_ms", 0.5), ("p95_ms", 0.95), ("p99_ms", 0.99)] {
        let expected = percentile(&latencies, p);
        let got = row[key].as_f64().expect(key);
        // The latency sketch's stated error (README, "Monitoring at scale").
        assert!(
            (got - expected).abs() <= 0.01 * expected,
            "{key}: {got} vs {expected}"
        );
    }
}

#[test]
fn sampled_runs_are_scored_by_monitor_assertions() {
    let db = TestDb::new();
    let repo = repo(
        &config("http://127.0.0.1:9", "http://127.0.0.1:9", 1.0),
        "echo",
        "prompts: {}\n",
    );
    let (code, leak, stderr) = run(
        &repo,
        &db.url,
        &["support/reply", "--var", "x=the SECRET is out"],
    );
    assert_eq!(code, 0, "{stderr}");
    let (code, clean, stderr) = run(
        &repo,
        &db.url,
        &["support/reply", "--var", "x=nothing to see"],
    );
    assert_eq!(code, 0, "{stderr}");
    let quality = |run_id: &Value| -> (Option<f64>, bool) {
        let rows = db.rows(&format!(
            "SELECT quality_score, sampled FROM prompt_runs WHERE run_id = '{}'",
            run_id.as_str().expect("run id")
        ));
        (rows[0].get(0), rows[0].get(1))
    };
    assert_eq!(quality(&leak["run_id"]), (Some(0.0), true));
    assert_eq!(quality(&clean["run_id"]), (Some(1.0), true));
}

#[test]
fn an_llm_judge_grading_call_is_recorded_as_a_run_of_its_own() {
    let db = TestDb::new();
    let judge = StubProvider::start(|_, _| openai_answer(r#"{"score": 1, "reason": "polite"}"#));
    let repo = repo(
        &config(&judge.url(), &judge.url(), 1.0),
        "echo",
        "prompts: {}\n",
    );
    repo.write(
        "prompts/support/reply.yaml",
        "model: echo\nvariables:\n  x: {type: string}\ntemplate: \"Say {{ x }}\"\nmonitor:\n  - {type: llm_judge, value: Is it polite?, model: local-model}\n",
    );
    repo.commit("judged by a model");
    let (code, out, stderr) = run(&repo, &db.url, &["support/reply", "--var", "x=hello"]);
    assert_eq!(code, 0, "{stderr}");
    let run_id = out["run_id"].as_str().expect("run id");
    let rows = db.rows(
        "SELECT name, model_used, trace_id, quality_score, sampled, error FROM prompt_runs ORDER BY name",
    );
    let row = |i: usize| {
        (
            rows[i].get::<_, String>(0),
            rows[i].get::<_, Option<String>>(1),
            rows[i].get::<_, Option<String>>(2),
            rows[i].get::<_, Option<f64>>(3),
            rows[i].get::<_, bool>(4),
            rows[i].get::<_, Option<String>>(5),
        )
    };
    assert_eq!(rows.len(), 2, "the run and its grading");
    assert_eq!(
        row(0),
        (
            "reply".to_owned(),
            Some("echo".to_owned()),
            None,
            Some(1.0),
            true,
            None
        )
    );
    assert_eq!(
        row(1),
        (
            "reply:judge".to_owned(),
            Some("local-model".to_owned()),
            Some(run_id.to_owned()),
            None,
            false,
            None
        )
    );
}

#[test]
fn a_database_that_is_down_costs_a_warning_not_the_run() {
    let repo = repo(
        &config("http://127.0.0.1:9", "http://127.0.0.1:9", 0.0),
        "echo",
        "prompts: {}\n",
    );
    let (code, json, stderr) = run(&repo, DOWN_URL, &["support/reply", "--var", "x=hello"]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["output"], "Version two: hello");
    assert!(stderr.contains("warning"), "{stderr}");
    assert!(stderr.contains("not written"), "{stderr}");
    // In the library: every call answers, and the records are dropped and counted. (What
    // the database being down costs a call, and how long the shutdown takes, are figures
    // of the benchmark, scripts/bench-router.sh, not assertions here.)
    let config = Config::discover(repo.path()).expect("config");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let down = Router::new(
            &config.settings,
            PromptSource::repository(&config, None).expect("source"),
            Some(DOWN_URL.to_owned()),
        );
        let vars = BTreeMap::from([("x".to_owned(), Value::from("hello"))]);
        for _ in 0..200 {
            down.execute("reply", "", &vars).await.expect("runs");
        }
        // A generous bound that detects a hang, not a figure.
        let stats = tokio::time::timeout(
            Duration::from_secs(30),
            down.shutdown(Duration::from_millis(500)),
        )
        .await
        .expect("shutdown returns");
        assert!(stats.dropped > 0, "{stats:?}");
        assert_eq!(stats.written, 0);
    });
}

#[test]
fn stats_check_flags_a_version_whose_quality_fell() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write(
        "promptctl.toml",
        &config("http://127.0.0.1:9", "http://127.0.0.1:9", 1.0),
    );
    repo.write("environments.yaml", "prompts: {}\n");
    repo.write("prompts/support/reply.yaml", &prompt("echo", "Clean:"));
    repo.commit("v1");
    for _ in 0..3 {
        let (code, _, stderr) = run(&repo, &db.url, &["support/reply", "--var", "x=hi"]);
        assert_eq!(code, 0, "{stderr}");
    }
    // Yesterday's window, for the comparison: runs moved around the recorder are rolled up
    // again, as the README says.
    db.execute("UPDATE prompt_runs SET created_at = created_at - interval '90 minutes'");
    let (code, _, stderr) = repo.run(&["rollup", "--since", "1d", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stderr}");
    for _ in 0..3 {
        run(&repo, &db.url, &["support/reply", "--var", "x=hi"]);
    }
    let check = |repo: &TestRepo| {
        repo.run(&[
            "stats",
            "--check",
            "--since",
            "1h",
            "--database-url",
            &db.url,
        ])
    };
    let (code, stdout, stderr) = check(&repo);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    repo.write(
        "prompts/support/reply.yaml",
        &prompt("echo", "Leaky SECRET:"),
    );
    repo.commit("v2 leaks");
    for _ in 0..3 {
        run(&repo, &db.url, &["support/reply", "--var", "x=hi"]);
    }
    let (code, stdout, stderr) = check(&repo);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stderr.contains("max_quality_drop") && stderr.contains("support/reply"),
        "{stderr}"
    );
    let (code, stdout, _) = repo.run(&[
        "stats",
        "--by",
        "version",
        "--since",
        "1h",
        "--database-url",
        &db.url,
        "--format",
        "json",
    ]);
    assert_eq!(code, 0);
    let json: Value = serde_json::from_str(&stdout).expect("json");
    let rows = json["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2, "{json}");
    assert_eq!(rows[0]["quality"], 1.0);
    assert_eq!(rows[1]["quality"], 0.0);
}

#[test]
fn export_writes_a_bundle_the_router_boots_from() {
    let stub = ok_stub();
    let repo = repo(
        &config(&stub.url(), &stub.url(), 0.0),
        "main-model",
        "prompts:\n  support/reply:\n    production: {version: 1, model: pinned-model}\n",
    );
    let (code, stdout, stderr) = repo.run(&["export"]);
    assert_eq!(code, 0, "{stderr}");
    repo.write("prompts.bundle.json", &stdout);
    let (code, json, stderr) = run(
        &repo,
        DOWN_URL,
        &[
            "support/reply",
            "--env",
            "production",
            "--var",
            "x=hi",
            "--bundle",
            "prompts.bundle.json",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["version"], 1);
    assert_eq!(json["model"], "pinned-model");
}

#[test]
fn runs_from_the_registry_are_scored_by_the_synced_monitor_assertions() {
    let db = TestDb::new();
    let repo = repo(
        &config("http://127.0.0.1:9", "http://127.0.0.1:9", 1.0),
        "echo",
        "prompts:\n  support/reply:\n    production: {version: 2}\n",
    );
    let (code, _, stderr) = repo.run(&["sync", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(db.count("SELECT count(*) FROM prompt_monitors"), 1);
    let (code, leak, stderr) = run(
        &repo,
        &db.url,
        &[
            "support/reply",
            "--var",
            "x=the SECRET is out",
            "--registry",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    let rows = db.rows(&format!(
        "SELECT quality_score, sampled FROM prompt_runs WHERE run_id = '{}'",
        leak["run_id"].as_str().expect("run id")
    ));
    assert_eq!(
        (rows[0].get::<_, Option<f64>>(0), rows[0].get::<_, bool>(1)),
        (Some(0.0), true)
    );

    // The assertions follow the tip: removed there, removed from the registry.
    repo.write(
        "prompts/support/reply.yaml",
        "model: echo\nvariables:\n  x: {type: string}\ntemplate: \"Version two: {{ x }}\"\n",
    );
    repo.commit("no monitor");
    let (code, _, stderr) = repo.run(&["sync", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(db.count("SELECT count(*) FROM prompt_monitors"), 0);
}

#[test]
fn the_registry_source_serves_the_last_good_copy_when_the_database_fails() {
    let db = TestDb::new();
    let repo = repo(
        &config("http://127.0.0.1:9", "http://127.0.0.1:9", 0.0),
        "echo",
        "prompts:\n  support/reply:\n    production: {version: 1}\n",
    );
    let (code, _, stderr) = repo.run(&["sync", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stderr}");
    let (code, json, stderr) = run(
        &repo,
        &db.url,
        &[
            "support/reply",
            "--env",
            "production",
            "--var",
            "x=hi",
            "--registry",
        ],
    );
    assert_eq!(code, 0, "{stderr}");
    assert_eq!(json["version"], 1);
    assert_eq!(json["output"], "Version one: hi");

    let config = Config::discover(repo.path()).expect("config");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let vars = BTreeMap::from([("x".to_owned(), Value::from("hi"))]);
    // A TTL of zero: every call finds its copy stale and refreshes it in the background.
    let router = runtime.block_on(async {
        Router::new(
            &config.settings,
            PromptSource::registry(db.url.clone(), Duration::ZERO),
            None,
        )
    });
    let first = runtime
        .block_on(router.execute("reply", "production", &vars))
        .expect("runs");
    assert_eq!(first.version, Some(1));
    db.execute("ALTER TABLE prompts RENAME TO prompts_gone");
    for _ in 0..3 {
        let again = runtime
            .block_on(router.execute("reply", "production", &vars))
            .expect("the stale copy");
        assert_eq!(again.output, "Version one: hi");
        std::thread::sleep(Duration::from_millis(50));
    }
    db.execute("ALTER TABLE prompts_gone RENAME TO prompts");

    // Booting from a bundle while the database is unreachable.
    let bundle = promptctl::router::Bundle::from_repository(&config, None, None).expect("bundle");
    runtime.block_on(async {
        let router = Router::new(
            &config.settings,
            PromptSource::Registry {
                url: DOWN_URL.to_owned(),
                ttl: Duration::from_secs(60),
                fallback: Some(Box::new(bundle)),
            },
            None,
        );
        let run = router
            .execute("reply", "production", &vars)
            .await
            .expect("from the bundle");
        assert_eq!(run.version, Some(1));
    });
}

/// Seven runs with `store_io = true`, run at once so they share a flush, one of them with a
/// NUL character in its input and in the model's output: PostgreSQL text refuses NUL, and
/// that one row used to make the whole batch's `COPY` fail, dropping the six others
/// silently. Every row must land, the bad one cleaned (NUL → U+FFFD).
#[test]
fn a_run_holding_a_nul_lands_cleaned_and_its_batch_with_it() {
    let db = TestDb::new();
    let stub = StubProvider::start(|request, _| {
        let user = stub_provider::last_user_message(&request.body);
        if user.contains('\0') {
            openai_answer("bad\0output")
        } else {
            openai_answer("fine")
        }
    });
    let text = config(&stub.url(), &stub.url(), 0.0)
        .replace("[monitoring]\n", "[monitoring]\nstore_io = true\n");
    let repo = repo(&text, "local-model", "prompts: {}\n");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let config = Config::discover(repo.path()).expect("config");
    let stats = runtime.block_on(async {
        let router = Router::new(
            &config.settings,
            PromptSource::repository(&config, None).expect("source"),
            Some(db.url.clone()),
        );
        let mut tasks = Vec::new();
        for i in 0..7 {
            let router = router.clone();
            let value = if i == 3 {
                "in\0put".to_owned()
            } else {
                format!("ok-{i}")
            };
            tasks.push(tokio::spawn(async move {
                let vars = BTreeMap::from([("x".to_owned(), Value::from(value))]);
                router.execute("reply", "staging", &vars).await
            }));
        }
        for task in tasks {
            task.await.expect("task").expect("runs");
        }
        router.shutdown(Duration::from_secs(10)).await
    });
    assert_eq!(stats.dropped, 0, "{stats:?}");
    assert_eq!(stats.written, 7, "{stats:?}");
    assert_eq!(stats.cleaned, 1, "{stats:?}");
    let rows =
        db.rows("SELECT input_text, output_text FROM prompt_runs WHERE output_text LIKE 'bad%'");
    assert_eq!(db.count("SELECT count(*) FROM prompt_runs"), 7);
    assert_eq!(rows.len(), 1);
    let input: String = rows[0].get(0);
    let output: String = rows[0].get(1);
    // The input is stored as the messages' JSON, where the NUL is escaped.
    assert!(input.contains(r"in\u0000put"), "{input:?}");
    assert_eq!(output, "bad\u{FFFD}output");
}

/// A log sink for a `tracing` subscriber: what it wrote, as text.
#[derive(Clone, Default)]
struct SharedLog(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl SharedLog {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().expect("log")).into_owned()
    }
}

impl std::io::Write for SharedLog {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("log").extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for SharedLog {
    type Writer = SharedLog;

    fn make_writer(&'a self) -> SharedLog {
        self.clone()
    }
}

fn run_record(run_id: uuid::Uuid, at: std::time::SystemTime) -> RunRecord {
    RunRecord {
        source: String::new(),
        run_id,
        trace_id: Some("trace\0id".to_owned()),
        service: "s".repeat(150),
        name: "reply".to_owned(),
        version: Some(1),
        environment: Some("e\0".repeat(80)),
        side: None,
        model_requested: "m".to_owned(),
        model_used: Some("model\0used".to_owned()),
        provider: Some("p".repeat(60)),
        latency_ms: 1.0,
        input_tokens: 1,
        output_tokens: 1,
        cache_read_tokens: 0,
        cache_write_tokens: 0,
        cost_usd: None,
        error: Some("err\0or".to_owned()),
        attempt_errors: None,
        quality_score: None,
        sampled: false,
        input_text: None,
        output_text: None,
        created_at: at,
    }
}

/// A row no cleaning can save (it repeats another row's primary key) costs only itself:
/// the batch it came in is written again in halves down to single rows, the six others
/// land, and the refused one is counted with PostgreSQL's reason. Every text column holds a
/// NUL and the VARCHAR columns are over their limits: all made to fit.
#[test]
fn a_row_postgres_refuses_is_dropped_alone_and_counted() {
    let db = TestDb::new();
    // The writer task runs on this thread (a current-thread runtime), so a subscriber set
    // for this thread sees its warnings.
    let logged = SharedLog::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(logged.clone())
        .with_ansi(false)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stats = runtime.block_on(async {
        let recorder = RunRecorder::start(
            db.url.clone(),
            &promptctl::config::MonitoringSettings {
                retention_days: 0,
                ..Default::default()
            },
        );
        let at = std::time::SystemTime::now();
        let ids: Vec<uuid::Uuid> = (1..=6).map(uuid::Uuid::from_u128).collect();
        for (index, id) in ids.iter().enumerate() {
            recorder.record(run_record(*id, at));
            if index == 2 {
                recorder.record(run_record(ids[0], at));
            }
        }
        recorder.shutdown(Duration::from_secs(10)).await
    });
    assert_eq!(stats.written, 6, "{stats:?}");
    assert_eq!(stats.dropped, 1, "{stats:?}");
    assert_eq!(stats.rejected, 1, "{stats:?}");
    assert!(
        stats
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("duplicate key")),
        "{stats:?}"
    );
    let log = logged.text();
    assert!(
        log.contains("WARN")
            && log.contains("run record dropped: PostgreSQL refused the row")
            && log.contains(&uuid::Uuid::from_u128(1).to_string())
            && log.contains("duplicate key"),
        "{log}"
    );
    assert_eq!(db.count("SELECT count(*) FROM prompt_runs"), 6);
    let row = &db.rows(
        "SELECT service, environment, provider, trace_id, model_used, error FROM prompt_runs LIMIT 1",
    )[0];
    assert_eq!(row.get::<_, String>(0).chars().count(), 100);
    assert_eq!(row.get::<_, String>(1), "e\u{FFFD}".repeat(50));
    assert_eq!(row.get::<_, String>(2).chars().count(), 50);
    assert_eq!(row.get::<_, String>(3), "trace\u{FFFD}id");
    assert_eq!(row.get::<_, String>(4), "model\u{FFFD}used");
    assert_eq!(row.get::<_, String>(5), "err\u{FFFD}or");
}
