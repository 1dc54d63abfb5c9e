//! Review by effect (`promptctl test --baseline REF`), end to end over real Git
//! repositories: which tests regressed against the base (a pass that fails, a score that
//! fell beyond the tolerance although it still passes), improvements, new and removed
//! tests, the word diff of changed answers, the HTML report in headless Chromium, the
//! Markdown report, and `--replay` answering both sides from recordings made against a real
//! HTTP server speaking OpenAI's wire format.

mod common;
#[path = "support/stub_provider.rs"]
mod stub_provider;

use common::browser::check_page;
use common::git::TestRepo;
use stub_provider::{StubProvider, last_user_message, openai_answer};

/// Scored by lexical similarity (no embedding model): the echo model answers with the
/// rendered message, so a rewording lowers the score while it still passes.
const INVOICE: &str = r#"model: echo
variables:
  id: {type: string, required: true}
template: "Summarize invoice {{ id }} for the customer in two short lines."
tests:
  - name: summary stays close
    vars: {id: "42"}
    assert:
      - {type: semantic_similarity, value: "Summarize invoice 42 for the customer in two short lines.", threshold: 0.3}
  - name: names the invoice
    vars: {id: "7"}
    assert:
      - {type: contains, value: "invoice 7"}
"#;

const REPLY: &str = r#"model: echo
variables:
  message: {type: string, required: true}
template: "Customer asks: {{ message }}"
tests:
  - name: keeps the question
    vars: {message: "Where is my order?"}
    assert:
      - {type: contains, value: "Where is my order?"}
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

/// `main` with three prompts, and a branch `feature` checked out that changes two of them
/// as `invoice` and `reply` say (the third is left alone).
fn branch(invoice: &str, reply: &str) -> TestRepo {
    let repo = TestRepo::new();
    repo.write("prompts/billing/invoice.yaml", INVOICE);
    repo.write("prompts/support/reply.yaml", REPLY);
    repo.write("prompts/search/query.yaml", QUERY);
    repo.commit("Add prompts");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write("prompts/billing/invoice.yaml", invoice);
    repo.write("prompts/support/reply.yaml", reply);
    repo.commit("Reword the prompts");
    repo
}

/// The invoice summary reworded (still passing, scored lower) and the reply prompt broken.
fn worse_and_broken() -> TestRepo {
    branch(
        &INVOICE.replace(
            "Summarize invoice {{ id }} for the customer in two short lines.",
            "Please summarize invoice {{ id }} for the customer in two lines.",
        ),
        &REPLY.replace("Customer asks: {{ message }}", "A customer wrote in."),
    )
}

fn movements(json: &serde_json::Value) -> Vec<(String, String, String)> {
    json["baseline"]["cases"]
        .as_array()
        .expect("baseline cases")
        .iter()
        .map(|case| {
            (
                case["movement"].as_str().unwrap_or_default().to_owned(),
                format!(
                    "{}/{}",
                    case["prompt"]["service"].as_str().unwrap_or_default(),
                    case["prompt"]["name"].as_str().unwrap_or_default()
                ),
                case["test"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect()
}

#[test]
fn baseline_names_the_regression_and_the_failure_and_skips_the_unchanged_prompt() {
    let repo = worse_and_broken();
    let (code, stdout, stderr) = repo.run(&["test", "--baseline", "main"]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    assert!(stdout.contains("2 regressions"), "{stdout}");
    assert!(
        stdout.contains("billing/invoice › summary stays close"),
        "{stdout}"
    );
    assert!(
        stdout.contains("support/reply › keeps the question"),
        "{stdout}"
    );
    assert!(stdout.contains("passed at the base, fails now"), "{stdout}");
    assert!(
        !stdout.contains("search/query"),
        "the unchanged prompt is skipped:\n{stdout}"
    );
    // The word diff of the answer that changed, plain without a terminal.
    assert!(stdout.contains("[-Summarize-]"), "{stdout}");
    assert!(stdout.contains("{+Please"), "{stdout}");

    let (code, stdout, stderr) = repo.run(&["test", "--baseline", "main", "--format", "json"]);
    assert_eq!(code, 1, "{stderr}");
    let json: serde_json::Value = serde_json::from_str(&stdout).expect("json");
    let moved: Vec<_> = movements(&json)
        .into_iter()
        .filter(|(movement, ..)| movement != "unchanged")
        .collect();
    assert_eq!(
        moved,
        [
            (
                "regression".to_owned(),
                "billing/invoice".to_owned(),
                "summary stays close".to_owned()
            ),
            (
                "regression".to_owned(),
                "support/reply".to_owned(),
                "keeps the question".to_owned()
            ),
        ]
    );
    let invoice = &json["baseline"]["cases"][0];
    assert_eq!(invoice["head"]["status"], "passed", "still passes");
    let delta = invoice["assertions"][0]["delta"].as_f64().expect("delta");
    assert!(delta < -0.05, "{invoice}");
    assert_eq!(json["baseline"]["counts"]["regressions"], 2);
    assert_eq!(json["baseline"]["tolerance"], 0.05);
    assert!(invoice["diff"].is_array(), "{invoice}");
}

#[test]
fn allow_regressions_passes_a_regression_alone_and_the_tolerance_is_configurable() {
    let repo = branch(
        &INVOICE.replace(
            "Summarize invoice {{ id }} for the customer in two short lines.",
            "Please summarize invoice {{ id }} for the customer in two lines.",
        ),
        REPLY,
    );
    let (code, stdout, stderr) = repo.run(&["test", "--baseline", "main"]);
    assert_eq!(code, 1, "the regression fails the run:\n{stdout}\n{stderr}");
    assert!(stderr.contains("regressed against the base"), "{stderr}");
    let (code, stdout, stderr) = repo.run(&["test", "--baseline", "main", "--allow-regressions"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("1 regression"), "{stdout}");
    // In GitHub Actions the regression is annotated at its test's line: an error, or a
    // warning when allowed.
    let github = [("GITHUB_ACTIONS", "true")];
    let (code, stdout, _) = repo.run_env(&["test", "--baseline", "main"], &github);
    assert_eq!(code, 1);
    assert!(
        stdout.contains("::error file=prompts/billing/invoice.yaml,line=6,title=billing/invoice › summary stays close regressed against the base::semantic_similarity (line 9)"),
        "{stdout}"
    );
    let args = ["test", "--baseline", "main", "--allow-regressions"];
    let (code, stdout, _) = repo.run_env(&args, &github);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("::warning file=prompts/billing/invoice.yaml,line=6"),
        "{stdout}"
    );

    // A tolerance wider than the drop: no regression.
    repo.write("promptctl.toml", "[test]\nregression_tolerance = 1.0\n");
    let (code, stdout, stderr) = repo.run(&["test", "--baseline", "main"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("0 regressions"), "{stdout}");
}

#[test]
fn new_removed_and_improved_tests_are_told_apart() {
    let broken = REPLY.replace("Customer asks: {{ message }}", "A customer wrote in.");
    let repo = TestRepo::new();
    repo.write("prompts/support/reply.yaml", &broken);
    repo.write("prompts/billing/invoice.yaml", INVOICE);
    repo.commit("Add prompts");
    repo.git(&["checkout", "-q", "-b", "fix"]);
    repo.write("prompts/support/reply.yaml", REPLY);
    let with_new = INVOICE.replace(
        "  - name: names the invoice",
        "  - name: brand new\n    vars: {id: \"9\"}\n    assert:\n      - {type: contains, value: \"9\"}\n  - name: names the invoice renamed",
    );
    repo.write("prompts/billing/invoice.yaml", &with_new);
    repo.commit("Fix the reply, rename a test");
    let json = repo.json(&["test", "--baseline", "main"]);
    let moved = movements(&json);
    let find = |test: &str| {
        moved
            .iter()
            .find(|(_, _, t)| t == test)
            .map(|(m, ..)| m.as_str())
            .unwrap_or("absent")
    };
    assert_eq!(find("keeps the question"), "improvement", "{moved:?}");
    assert_eq!(find("brand new"), "new", "{moved:?}");
    assert_eq!(find("names the invoice renamed"), "new", "{moved:?}");
    assert_eq!(find("names the invoice"), "removed", "{moved:?}");
    assert_eq!(find("summary stays close"), "unchanged", "{moved:?}");
}

#[test]
fn the_html_report_shows_the_matrix_both_sides_and_the_diff_in_chromium() {
    let repo = worse_and_broken();
    let (code, stdout, stderr) = repo.run(&[
        "test",
        "--baseline",
        "main",
        "--model",
        "echo",
        "--html",
        "report.html",
    ]);
    assert_eq!(code, 1, "{stdout}\n{stderr}");
    let html = std::fs::read_to_string(repo.path().join("report.html")).expect("report");
    for external in ["http://", "https://", "src=", "<link"] {
        assert!(!html.contains(external), "self-contained: {external}");
    }
    let url = format!("file://{}", repo.path().join("report.html").display());
    let profile = tempfile::tempdir().expect("profile");
    check_page(
        profile.path(),
        &url,
        "test-report.png",
        &[
            "id=\"matrix\"",
            "<th>base</th>",
            "<th>head</th>",
            "<th>candidate: echo</th>",
            "class=\"regression\"",
            "<del>Summarize</del>",
            "<ins>Please",
            "id=\"only-failures\"",
            "id=\"only-changed\"",
            "<option value=\"billing/invoice\">",
            "2 regressions",
            "Where is my order?",
        ],
    );
}

#[test]
fn the_markdown_report_has_the_comparison_and_the_answer_diff() {
    let repo = worse_and_broken();
    let (code, _, stderr) = repo.run(&["test", "--baseline", "main", "--report", "report.md"]);
    assert_eq!(code, 1, "{stderr}");
    let report = std::fs::read_to_string(repo.path().join("report.md")).expect("report");
    assert!(report.contains("### Compared with the base"), "{report}");
    assert!(
        report.contains("❌ 2 regressions, 0 improvements"),
        "{report}"
    );
    assert!(
        report.contains("❌ regression | `billing/invoice`"),
        "{report}"
    );
    assert!(report.contains("<del>Summarize</del>"), "{report}");
}

#[test]
fn replay_answers_both_sides_from_recordings_and_names_the_side_without_one() {
    let repo = TestRepo::new();
    let server = StubProvider::start(|request, _| {
        let asked = last_user_message(&request.body);
        openai_answer(&format!("Answer to: {asked}"))
    });
    let config = |url: &str| {
        format!(
            "default_provider = \"stub\"\n[providers.stub]\nkind = \"openai\"\nbase_url = \"{url}\"\napi_key_env = \"TEST_API_KEY\"\n"
        )
    };
    repo.write("promptctl.toml", &config(&server.url()));
    repo.write(
        "prompts/support/reply.yaml",
        &REPLY.replace("model: echo", "model: gpt-test"),
    );
    repo.commit("Add the reply prompt");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    repo.write(
        "prompts/support/reply.yaml",
        &REPLY
            .replace("model: echo", "model: gpt-test")
            .replace("Customer asks:", "A customer asks:"),
    );
    repo.commit("Reword");

    // Only the head recorded: the base side has no answer, and says so.
    let key = [("TEST_API_KEY", "sk-test")];
    let (code, _, stderr) = repo.run_env(&["test", "--record"], &key);
    assert_eq!(code, 0, "{stderr}");
    drop(server);
    let (code, stdout, stderr) = repo.run(&["test", "--baseline", "main", "--replay"]);
    assert_eq!(
        code, 2,
        "a missing recording is a configuration error:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("the base could not be judged"), "{stdout}");

    // Both sides recorded: no key, no server, same verdict every time.
    let server = StubProvider::start(|request, _| {
        let asked = last_user_message(&request.body);
        openai_answer(&format!("Answer to: {asked}"))
    });
    repo.write("promptctl.toml", &config(&server.url()));
    let (code, _, stderr) = repo.run_env(&["test", "--baseline", "main", "--record"], &key);
    assert_eq!(code, 0, "{stderr}");
    let requests = server.requests().len();
    drop(server);
    assert_eq!(requests, 2, "one call per side");
    let json = repo.json(&["test", "--baseline", "main", "--replay"]);
    let case = &json["baseline"]["cases"][0];
    assert_eq!(case["base"]["replayed"], true, "{case}");
    assert_eq!(case["head"]["replayed"], true, "{case}");
    assert_eq!(case["movement"], "unchanged", "{case}");
    assert!(case["diff"].is_array(), "the answers differ: {case}");
}

#[test]
fn a_variable_the_change_adds_makes_the_case_not_comparable_not_an_error() {
    let with_tone = r#"model: echo
variables:
  message: {type: string, required: true}
  tone: {type: string, required: true}
template: "Customer asks ({{ tone }}): {{ message }}"
tests:
  - name: keeps the question
    vars: {message: "Where is my order?", tone: "calm"}
    assert:
      - {type: contains, value: "Where is my order?"}
"#;
    let repo = branch(INVOICE, with_tone);
    let (code, stdout, stderr) = repo.run(&["test", "--baseline", "main"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(
        stdout.contains("not comparable: the base version cannot render this test"),
        "{stdout}"
    );
    assert!(
        !stderr.contains("could not be judged at the base"),
        "{stderr}"
    );
}

#[test]
fn unnamed_tests_are_paired_by_their_variables_and_same_names_in_order() {
    let unnamed = r#"model: echo
variables:
  q: {type: string, required: true}
template: "Rewrite: {{ q }}"
tests:
  - vars: {q: "cats"}
    assert:
      - {type: semantic_similarity, value: "Rewrite: cats", threshold: 0.1}
  - name: twin
    vars: {q: "dogs"}
    assert:
      - {type: contains, value: "dogs"}
  - name: twin
    vars: {q: "birds"}
    assert:
      - {type: contains, value: "birds"}
"#;
    let repo = TestRepo::new();
    repo.write("prompts/search/query.yaml", unnamed);
    repo.commit("Add");
    repo.git(&["checkout", "-q", "-b", "feature"]);
    // A named test on top moves the unnamed one; the template change lowers its score.
    let head = unnamed
        .replace(
            "tests:\n",
            "tests:\n  - name: first\n    vars: {q: \"fish\"}\n    assert:\n      - {type: contains, value: \"fish\"}\n",
        )
        .replace("Rewrite: {{ q }}", "Please rewrite the query {{ q }}");
    repo.write("prompts/search/query.yaml", &head);
    repo.commit("Reword");
    let json = repo.json(&["test", "--baseline", "main", "--allow-regressions"]);
    let moved = movements(&json);
    let unnamed_test = moved
        .iter()
        .find(|(_, _, test)| test.starts_with("test at line"))
        .expect("the unnamed test");
    assert_eq!(unnamed_test.0, "regression", "{moved:?}");
    assert!(!moved.iter().any(|(m, ..)| m == "removed"), "{moved:?}");
    assert_eq!(
        moved.iter().filter(|(m, ..)| m == "new").count(),
        1,
        "{moved:?}"
    );

    // Two tests named alike keep their own base answers in the HTML page.
    let (_, _, stderr) = repo.run(&["test", "--baseline", "main", "--html", "r.html"]);
    let html = std::fs::read_to_string(repo.path().join("r.html")).expect("page");
    let rows: Vec<&str> = html
        .split("<tr ")
        .filter(|r| r.contains("› twin"))
        .collect();
    assert_eq!(rows.len(), 2, "{stderr}");
    assert!(
        rows[0].contains("Rewrite: dogs") && !rows[0].contains("birds"),
        "{}",
        rows[0]
    );
    assert!(
        rows[1].contains("Rewrite: birds") && !rows[1].contains("dogs"),
        "{}",
        rows[1]
    );
}

#[test]
fn an_answer_that_changed_without_moving_has_its_diff_and_bad_paths_stop_before_any_call() {
    let repo = branch(
        INVOICE,
        &REPLY.replace(
            "Customer asks: {{ message }}",
            "Customer wrote: {{ message }}",
        ),
    );
    let (code, stdout, stderr) = repo.run(&["test", "--baseline", "main", "--report", "r.md"]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    assert!(stdout.contains("~ new answer"), "{stdout}");
    assert!(stdout.contains("[-asks:-]{+wrote:+}"), "{stdout}");
    let report = std::fs::read_to_string(repo.path().join("r.md")).expect("report");
    assert!(
        report.contains("<del>asks:</del><ins>wrote:</ins>"),
        "{report}"
    );

    std::fs::create_dir(repo.path().join("folder")).expect("folder");
    for bad in ["folder", "missing/r.html"] {
        let (code, _, stderr) = repo.run(&["test", "--baseline", "main", "--html", bad]);
        assert_eq!(code, 2, "{bad}: {stderr}");
        assert!(stderr.contains(&format!("cannot write {bad}")), "{stderr}");
    }
}
