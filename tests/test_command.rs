//! `promptctl test` end to end: the built binary against real HTTP servers on loopback
//! speaking the OpenAI and Anthropic wire formats, and the built-in echo provider.

mod common;
#[path = "support/stub_provider.rs"]
mod stub_provider;

use std::path::Path;
use std::time::Duration;

use stub_provider::{Reply, StubProvider, anthropic_answer, last_user_message, openai_answer};

const KEY: &str = "sk-test-0123456789abcdefghijklmnop";

/// A project of the common harness with `config` as its `promptctl.toml`, run with the
/// test's API key (or without it).
struct Project(common::Project);

impl Project {
    fn new(config: &str) -> Project {
        let project = common::Project::new();
        project.write("promptctl.toml", config);
        Project(project)
    }

    fn path(&self) -> &Path {
        self.0.root()
    }

    fn write(&self, relative: &str, text: &str) -> &Project {
        self.0.write(relative, text);
        self
    }

    fn promptctl(&self, args: &[&str]) -> (i32, String, String) {
        let outcome = common::Outcome::of(self.0.promptctl(args).env("TEST_API_KEY", KEY));
        (outcome.code, outcome.stdout, outcome.stderr)
    }

    fn promptctl_without_key(&self, args: &[&str]) -> (i32, String, String) {
        let outcome = common::Outcome::of(&mut self.0.promptctl(args));
        (outcome.code, outcome.stdout, outcome.stderr)
    }
}

fn config(kind: &str, url: &str, extra: &str) -> String {
    format!(
        "default_provider = \"stub\"\n[providers.stub]\nkind = \"{kind}\"\nbase_url = \"{url}\"\napi_key_env = \"TEST_API_KEY\"\n{extra}\n"
    )
}

const REVIEW_PROMPT: &str = r#"model: gpt-4o
parameters: {temperature: 0.2}
variables:
  diff: {type: string, required: true}
messages:
  - role: system
    content: You review diffs.
  - role: user
    content: "Review: {{ diff }}"
tests:
  - name: flags sql injection
    vars: {diff: "query = 'SELECT ' + id"}
    assert:
      - {type: contains, value: "SQL injection"}
      - {type: safety_check}
"#;

#[test]
fn openai_wire_format_passes_and_the_provider_sees_the_request() {
    let server = StubProvider::start(|_, _| {
        openai_answer("Danger: SQL injection via string concatenation.")
    });
    let project = Project::new(&config("openai", &format!("{}/v1", server.url()), ""));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, stdout, stderr) = project.promptctl(&["test"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("PASS"), "{stdout}");
    assert!(
        stdout.contains("1 test: 1 passed, 0 failed, 0 errors"),
        "{stdout}"
    );
    let requests = server.requests();
    assert_eq!(requests.len(), 1);
    let request = &requests[0];
    assert_eq!(request.path, "/v1/chat/completions");
    assert_eq!(
        request.header("authorization"),
        Some(format!("Bearer {KEY}").as_str())
    );
    assert_eq!(request.body["model"], "gpt-4o");
    assert_eq!(request.body["temperature"], 0.2);
    assert_eq!(
        last_user_message(&request.body),
        "Review: query = 'SELECT ' + id"
    );
}

#[test]
fn anthropic_wire_format_with_key_and_version_headers() {
    let server = StubProvider::start(|request, _| {
        if request.header("x-api-key") != Some(KEY) {
            return Reply::json(
                401,
                serde_json::json!({"type": "error", "error": {"type": "authentication_error", "message": "invalid x-api-key"}}),
            );
        }
        assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
        assert_eq!(request.body["system"], "You review diffs.");
        anthropic_answer("This is a SQL injection.")
    });
    let project = Project::new(&config("anthropic", &server.url(), ""));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, stdout, stderr) = project.promptctl(&["test", "--format", "json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(json["summary"]["passed"], 1);
    assert_eq!(json["results"][0]["usage"]["cache_read_tokens"], 3);
    assert_eq!(server.requests()[0].path, "/v1/messages");
}

#[test]
fn a_wrong_key_is_a_provider_error_exit_3_without_retries() {
    let server = StubProvider::start(|_, _| {
        Reply::json(
            401,
            serde_json::json!({"error": {"message": "Incorrect API key provided: sk-test-0123456789abcdefghijklmnop"}}),
        )
    });
    let project = Project::new(&config("openai", &server.url(), ""));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, stdout, stderr) = project.promptctl(&["test"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stdout.contains("HTTP 401"), "{stdout}");
    assert!(
        !stdout.contains(KEY) && !stderr.contains(KEY),
        "the key leaked:\n{stdout}\n{stderr}"
    );
    assert_eq!(server.requests().len(), 1, "a 401 must not be retried");
}

#[test]
fn rate_limited_then_success_honours_retry_after() {
    let server = StubProvider::start(|_, index| {
        if index == 0 {
            Reply::json(429, serde_json::json!({"error": {"message": "slow down"}}))
                .with_header("retry-after", "1")
        } else {
            openai_answer("SQL injection")
        }
    });
    let project = Project::new(&config("openai", &server.url(), ""));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, stdout, stderr) = project.promptctl(&["test"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    // The wait itself is checked on a paused clock (retry::tests), not on the wall here.
    assert_eq!(server.requests().len(), 2);
}

#[test]
fn server_errors_are_retried_until_success() {
    let server = StubProvider::start(|_, index| {
        if index < 2 {
            Reply::raw(500, "internal error")
        } else {
            openai_answer("SQL injection")
        }
    });
    let project = Project::new(&config("openai", &server.url(), ""));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, stdout, stderr) = project.promptctl(&["test"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn a_slow_provider_times_out_and_exits_3() {
    let server =
        StubProvider::start(|_, _| openai_answer("SQL injection").after(Duration::from_secs(3)));
    let project = Project::new(&format!(
        "default_provider = \"stub\"\n[providers.stub]\nkind = \"openai\"\nbase_url = \"{}\"\ntimeout_s = 0.3\nmax_retries = 1\n",
        server.url()
    ));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, stdout, stderr) = project.promptctl(&["test"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stdout.contains("did not answer within 0.3 s"), "{stdout}");
    assert_eq!(server.requests().len(), 2, "one retry");
}

#[test]
fn a_malformed_answer_is_a_provider_error() {
    let server = StubProvider::start(|_, _| Reply::raw(200, "{\"choices\": \"nope\""));
    let project = Project::new(&config("openai", &server.url(), ""));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, stdout, _) = project.promptctl(&["test"]);
    assert_eq!(code, 3, "{stdout}");
    assert!(stdout.contains("malformed answer"), "{stdout}");
}

#[test]
fn a_provider_that_is_down_exits_3_even_with_recordings() {
    let server = StubProvider::start(|_, _| openai_answer("SQL injection"));
    let url = server.url();
    let project = Project::new(&config("openai", &url, "max_retries = 0"));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, _, _) = project.promptctl(&["test", "--record"]);
    assert_eq!(code, 0);
    // Dropping the stub closes its port before it returns.
    drop(server);
    let (code, stdout, stderr) = project.promptctl(&["test"]);
    assert_eq!(code, 3, "{stdout}\n{stderr}");
    assert!(stdout.contains("cannot reach stub"), "{stdout}");
}

#[test]
fn record_then_replay_with_the_provider_down_and_no_key() {
    let server = StubProvider::start(|_, _| openai_answer("It is a SQL injection."));
    let project = Project::new(&config("openai", &server.url(), ""));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, stdout, stderr) = project.promptctl(&["test", "--record"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    drop(server);
    let recordings: Vec<_> = common::files_under(&project.path().join("prompts/.recordings"));
    assert_eq!(recordings.len(), 1, "{recordings:?}");
    let text = std::fs::read_to_string(&recordings[0]).expect("read");
    assert!(!text.contains(KEY), "a recording holds the key");
    assert!(
        text.contains("\"text\": \"It is a SQL injection.\""),
        "{text}"
    );
    let (code, stdout, stderr) = project.promptctl_without_key(&["test", "--replay"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("replayed"), "{stdout}");
}

#[test]
fn replay_without_a_recording_says_how_to_record() {
    let project = Project::new(&config("openai", "http://127.0.0.1:9", ""));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, stdout, stderr) = project.promptctl_without_key(&["test", "--replay"]);
    assert_eq!(code, 2, "{stdout}\n{stderr}");
    assert!(stdout.contains("no recording"), "{stdout}");
    assert!(stdout.contains("--record"), "{stdout}");
}

#[test]
fn a_leak_fails_safety_check_with_the_finding_named() {
    let server = StubProvider::start(|_, _| {
        openai_answer("SQL injection. Contact jane.doe@example.com or use key AKIAIOSFODNN7EXAMPLE")
    });
    let project = Project::new(&config("openai", &server.url(), ""));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, stdout, _) = project.promptctl(&["test"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(stdout.contains("FAIL"), "{stdout}");
    assert!(stdout.contains("safety_check (line 15)"), "{stdout}");
    assert!(stdout.contains("email"), "{stdout}");
    assert!(stdout.contains("prompts/review/review.yaml:11"), "{stdout}");
}

#[test]
fn echo_provider_runs_offline_and_junit_is_written() {
    let project = Project::new("");
    project.write(
        "prompts/greet/hello.yaml",
        "model: echo\nvariables: {name: {type: string, required: true}}\ntemplate: \"Hello {{ name }}!\"\ntests:\n  - name: says hello\n    vars: {name: Ada}\n    assert:\n      - {type: exact_match, value: \"Hello Ada!\"}\n      - {type: semantic_similarity, value: \"hello Ada\", threshold: 0.5}\n  - name: wrong greeting\n    vars: {name: Bob}\n    assert:\n      - {type: exact_match, value: \"Goodbye Bob!\"}\n",
    );
    let (code, stdout, stderr) = project.promptctl(&["test", "--junit", "report.xml"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("- Goodbye Bob!") && stdout.contains("+ Hello Bob!"),
        "a diff for text:\n{stdout}"
    );
    let (_, json, _) = project.promptctl(&["test", "hello", "--format", "json"]);
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    let detail = json["results"][0]["assertions"][1]["detail"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    assert!(detail.contains("lexical similarity"), "{detail}");
    let xml = std::fs::read_to_string(project.path().join("report.xml")).expect("junit");
    assert!(
        xml.contains("<testsuite name=\"greet/hello\" tests=\"2\""),
        "{xml}"
    );
    assert!(xml.contains("failures=\"1\""), "{xml}");
}

/// The summary line without its timing (`... in 0.03 s`).
/// `stdout` without what depends on the machine's speed: the run's time after " in " and
/// each row's latency (`0 ms` on an idle machine, `1 ms` on a loaded one).
fn without_timing(stdout: &str) -> String {
    stdout
        .lines()
        .map(|line| {
            let line = line.split(" in ").next().unwrap_or(line);
            match line.strip_suffix(" ms") {
                Some(rest) => rest.trim_end_matches(|c: char| c.is_ascii_digit() || c == '.'),
                None => line,
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn a_large_suite_prints_its_table_as_it_runs_the_same_as_when_kept() {
    let project = Project::new("");
    let mut yaml = String::from(
        "model: echo\nvariables: {n: {type: integer, required: true}}\ntemplate: \"case {{ n }}\"\ntests:\n",
    );
    // More rows than one chunk of the printed table (64 KiB), every 500th failing.
    for n in 1..=1500 {
        let wanted = if n % 500 == 0 { "never" } else { "case" };
        yaml.push_str(&format!(
            "  - name: case {n}\n    vars: {{n: {n}}}\n    assert: [{{type: contains, value: {wanted}}}]\n"
        ));
    }
    project.write("prompts/svc/big.yaml", &yaml);
    let (code, printed, stderr) = project.promptctl(&["test", "--concurrency", "16"]);
    assert_eq!(code, 1, "{stderr}");
    let rows: Vec<&str> = printed
        .lines()
        .filter(|line| line.starts_with(" PASS") || line.starts_with(" FAIL"))
        .collect();
    assert_eq!(rows.len(), 1500);
    for (n, row) in (1..=1500).zip(&rows) {
        let label = format!("svc/big › case {n} ");
        assert!(row.contains(&label), "row {n} is {row:?}");
        assert_eq!(row.starts_with(" FAIL"), n % 500 == 0, "{row}");
        assert_eq!(row.find("echo"), rows[0].find("echo"), "columns: {row}");
    }
    assert_eq!(printed.matches("── FAIL").count(), 3, "{printed}");
    assert!(
        printed.contains("\n1500 tests: 1497 passed, 3 failed, 0 errors in "),
        "{printed}"
    );
    // Every result kept (as JUnit needs) prints the same table, details and summary.
    let (code, kept, _) = project.promptctl(&["test", "--concurrency", "16", "--junit", "r.xml"]);
    assert_eq!(code, 1);
    assert_eq!(without_timing(&printed), without_timing(&kept));
}

#[test]
fn model_swap_compares_the_candidate_with_the_current_model() {
    let server = StubProvider::start(|request, _| {
        if request.body["model"] == "gpt-4o" {
            openai_answer("SQL injection found")
        } else {
            openai_answer("looks fine")
        }
    });
    let project = Project::new(&config("openai", &server.url(), ""));
    project.write("prompts/review/review.yaml", REVIEW_PROMPT);
    let (code, stdout, _) = project.promptctl(&["test", "--model", "cheap-model"]);
    assert_eq!(code, 1, "{stdout}");
    assert!(
        stdout.contains("1 test(s) pass on the current model and fail on the candidate"),
        "{stdout}"
    );
    assert!(
        stdout.contains("✗ review/review › flags sql injection"),
        "{stdout}"
    );
}

#[test]
fn llm_judge_asks_the_grader_and_uses_its_score() {
    let server = StubProvider::start(|request, _| {
        let system = request.body["messages"][0]["content"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        if system.contains("grade") {
            openai_answer("{\"score\": 0.9, \"reason\": \"polite and correct\"}")
        } else {
            openai_answer("Thanks for reaching out!")
        }
    });
    let project = Project::new(&config(
        "openai",
        &server.url(),
        "[test]\njudge_model = \"grader\"\n",
    ));
    project.write(
        "prompts/support/reply.yaml",
        "model: gpt-4o\ntemplate: Reply politely.\ntests:\n  - name: polite\n    assert:\n      - {type: llm_judge, value: \"The reply is polite.\", threshold: 0.8}\n",
    );
    let (code, stdout, stderr) = project.promptctl(&["test", "--format", "json"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    assert_eq!(json["results"][0]["assertions"][0]["score"], 0.9);
    assert!(
        server
            .requests()
            .iter()
            .any(|r| r.body["model"] == "grader")
    );
}

#[test]
fn safety_check_reads_national_numbers_of_the_configured_regions() {
    let prompt = "model: echo\ntemplate: \"Call me on 09-7625400 or +44 20 7946 0958\"\ntests:\n  - name: no phone\n    assert: [{type: safety_check}]\n";
    let found = |config: &str| {
        let project = Project::new(config);
        project.write("prompts/p/call.yaml", prompt);
        let (code, json, stderr) = project.promptctl(&["test", "--format", "json"]);
        assert_eq!(code, 1, "{json}\n{stderr}");
        let json: serde_json::Value = serde_json::from_str(&json).expect("json");
        json["results"][0]["assertions"][0]["detail"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    // Israel is among the default regions; the British number has its country code.
    let detail = found("");
    assert_eq!(detail.matches("phone_number").count(), 2, "{detail}");
    let detail = found("[test]\npii_regions = [\"US\", \"JP\"]\n");
    assert_eq!(detail.matches("phone_number").count(), 1, "{detail}");
    assert!(detail.contains("at 1:26"), "{detail}");
    let project = Project::new("[test]\npii_regions = [\"Israel\"]\n");
    project.write("prompts/p/call.yaml", prompt);
    let (code, _, stderr) = project.promptctl(&["test"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("unknown region `Israel`"), "{stderr}");
}
