//! `promptctl test --github --comment` end to end, against a stand-in of GitHub's REST API
//! on loopback (the recording server of `support/stub_provider.rs`, answering as GitHub
//! does): the first run posts one comment, later runs update that same comment, found by
//! its marker on any page of the listing; a token GitHub refuses (a fork's pull request),
//! an unreachable API or a run that is not for a pull request is a warning and leaves the
//! exit status as it is; the token appears in no output. Prompts run on the built-in
//! `echo` model, so no provider is involved.

mod common;
#[path = "support/stub_provider.rs"]
mod stub_provider;

use std::sync::{Arc, Mutex};

use serde_json::{Value, json};
use stub_provider::{Reply, SeenRequest, StubProvider};

const TOKEN: &str = "ghs_SECRETTOKEN123";
const MARKER: &str = "<!-- promptctl:test-report -->";
const COMMENTS: &str = "/repos/octo/prompts/issues/7/comments";
const RUN_LINK: &str = "https://github.com/octo/prompts/actions/runs/4242";

const GREETING: &str = r#"model: echo
variables: {name: {type: string, required: true}}
template: "Hello {{ name }}!"
tests:
  - name: greets Ada
    vars: {name: Ada}
    assert: [{type: contains, value: "Hello Ada"}]
"#;

const FAILING: &str = r#"model: echo
template: "Hi there"
tests:
  - name: expects a farewell
    assert: [{type: contains, value: "Goodbye"}]
"#;

/// How the stand-in treats writes, and how many comments a page lists.
#[derive(Clone, Copy)]
struct Behaviour {
    refuse_writes: bool,
    per_page: usize,
}

/// The stand-in: the comments of pull request 7 of `octo/prompts`, and every request.
struct GitHub {
    server: StubProvider,
    comments: Arc<Mutex<Vec<Value>>>,
}

impl GitHub {
    fn start(behaviour: Behaviour, existing: Vec<Value>) -> GitHub {
        let comments = Arc::new(Mutex::new(existing));
        let state = comments.clone();
        let server = StubProvider::start(move |request, _| answer(request, behaviour, &state));
        GitHub { server, comments }
    }

    fn normal() -> GitHub {
        GitHub::start(
            Behaviour {
                refuse_writes: false,
                per_page: 100,
            },
            Vec::new(),
        )
    }

    fn comments(&self) -> Vec<Value> {
        self.comments.lock().expect("lock").clone()
    }

    /// Method and path (with query) of each request, in order.
    fn calls(&self) -> Vec<String> {
        self.server
            .requests()
            .iter()
            .map(|r| format!("{} {}", r.method, r.path))
            .collect()
    }
}

/// GitHub's answer to `request`.
fn answer(request: &SeenRequest, behaviour: Behaviour, comments: &Mutex<Vec<Value>>) -> Reply {
    if request.header("authorization") != Some(&format!("Bearer {TOKEN}")) {
        return Reply::json(401, json!({"message": "Bad credentials"}));
    }
    let (path, query) = request
        .path
        .split_once('?')
        .unwrap_or((request.path.as_str(), ""));
    let mut comments = comments.lock().expect("lock");
    let refused = || {
        Reply::json(
            403,
            json!({"message": "Resource not accessible by integration"}),
        )
    };
    match (request.method.as_str(), path) {
        ("GET", COMMENTS) => {
            let page: usize = query
                .split('&')
                .find_map(|pair| pair.strip_prefix("page="))
                .and_then(|n| n.parse().ok())
                .unwrap_or(1);
            let start = (page - 1) * behaviour.per_page;
            let listed: Vec<Value> = comments
                .iter()
                .skip(start)
                .take(behaviour.per_page)
                .cloned()
                .collect();
            let mut reply = Reply::json(200, Value::Array(listed));
            if start + behaviour.per_page < comments.len() {
                let host = request.header("host").unwrap_or_default();
                let next = format!(
                    "<http://{host}{COMMENTS}?per_page=100&page={}>; rel=\"next\"",
                    page + 1
                );
                reply = reply.with_header("link", &next);
            }
            reply
        }
        ("POST", COMMENTS) if behaviour.refuse_writes => refused(),
        ("POST", COMMENTS) => {
            let comment = json!({
                "id": 9000 + comments.len(),
                "body": request.body["body"],
                "user": {"login": "github-actions[bot]", "type": "Bot"},
            });
            comments.push(comment.clone());
            Reply::json(201, comment)
        }
        ("PATCH", _) if behaviour.refuse_writes => refused(),
        ("PATCH", _) => {
            let id = path.strip_prefix("/repos/octo/prompts/issues/comments/");
            let found = comments
                .iter_mut()
                .find(|c| Some(c["id"].to_string().as_str()) == id);
            match found {
                Some(comment) => {
                    comment["body"] = request.body["body"].clone();
                    Reply::json(200, comment.clone())
                }
                None => Reply::json(404, json!({"message": "Not Found"})),
            }
        }
        _ => Reply::json(404, json!({"message": "Not Found"})),
    }
}

/// A project with `prompts` (path, YAML) and the event file of pull request 7.
fn project(prompts: &[(&str, &str)]) -> common::Project {
    let project = common::Project::new();
    for (path, yaml) in prompts {
        project.write(path, yaml);
    }
    project.write(
        "event.json",
        r#"{"action": "synchronize", "number": 7, "pull_request": {"number": 7}}"#,
    );
    project
}

/// `promptctl ARGS` as on GitHub's runner with `api` as the API; asserts that the token
/// is in neither output stream.
fn run(project: &common::Project, api: &str, args: &[&str]) -> common::Outcome {
    let event = project.path("event.json");
    let outcome = common::Outcome::of(
        project
            .promptctl(args)
            .env("GITHUB_TOKEN", TOKEN)
            .env("GITHUB_API_URL", api)
            .env("GITHUB_REPOSITORY", "octo/prompts")
            .env("GITHUB_EVENT_PATH", &event)
            .env("GITHUB_EVENT_NAME", "pull_request")
            .env("GITHUB_SERVER_URL", "https://github.com")
            .env("GITHUB_RUN_ID", "4242"),
    );
    outcome.no_panic();
    for (name, text) in [("stdout", &outcome.stdout), ("stderr", &outcome.stderr)] {
        assert!(!text.contains(TOKEN), "the token is on {name}:\n{text}");
        assert!(
            !text.contains("SECRETTOKEN"),
            "part of the token is on {name}:\n{text}"
        );
    }
    outcome
}

const TEST: &[&str] = &["test", "--github", "--comment"];

#[test]
fn the_first_run_posts_one_comment_and_later_runs_update_it() {
    let github = GitHub::normal();
    let project = project(&[("prompts/greet/hello.yaml", GREETING)]);
    run(&project, &github.server.url(), TEST)
        .code(0)
        .stderr_has("posted the report to pull request #7 (comment 9000)");
    assert_eq!(
        github.calls(),
        [
            "GET /user".to_owned(),
            format!("GET {COMMENTS}?per_page=100"),
            format!("POST {COMMENTS}")
        ]
    );
    let comments = github.comments();
    assert_eq!(comments.len(), 1);
    let body = comments[0]["body"].as_str().expect("a body");
    assert!(
        body.starts_with(&format!("{MARKER}\n## ✅ promptctl test")),
        "{body}"
    );
    assert!(body.contains("greets Ada"), "{body}");
    assert!(body.ends_with(&format!("({RUN_LINK})")), "{body}");
    for request in github.server.requests() {
        assert_eq!(
            request.header("accept"),
            Some("application/vnd.github+json")
        );
        assert_eq!(request.header("x-github-api-version"), Some("2022-11-28"));
        assert!(
            request
                .header("user-agent")
                .is_some_and(|ua| ua.starts_with("promptctl/"))
        );
    }

    // The next push breaks the prompt: the same comment now says so.
    project.write(
        "prompts/greet/hello.yaml",
        &GREETING.replace("Hello {{", "Bye {{"),
    );
    run(&project, &github.server.url(), TEST)
        .code(1)
        .stderr_has("updated the report on pull request #7 (comment 9000)");
    assert_eq!(
        github.calls()[3..],
        [
            "GET /user".to_owned(),
            format!("GET {COMMENTS}?per_page=100"),
            "PATCH /repos/octo/prompts/issues/comments/9000".to_owned()
        ]
    );
    let comments = github.comments();
    assert_eq!(comments.len(), 1, "{comments:?}");
    let body = comments[0]["body"].as_str().expect("a body");
    assert!(
        body.starts_with(&format!("{MARKER}\n## ❌ promptctl test")),
        "{body}"
    );

    // `check` keeps a comment of its own, and the test report's stays where it is.
    run(&project, &github.server.url(), &["check", "--comment"]).code(0);
    let comments = github.comments();
    assert_eq!(comments.len(), 2);
    let check = comments[1]["body"].as_str().expect("a body");
    assert!(
        check.starts_with("<!-- promptctl:check-report -->\n"),
        "{check}"
    );
    run(&project, &github.server.url(), TEST).code(1);
    assert_eq!(github.comments().len(), 2);
    assert_eq!(
        github.calls().last().map(String::as_str),
        Some("PATCH /repos/octo/prompts/issues/comments/9000")
    );
}

#[test]
fn a_refused_token_is_a_warning_and_the_exit_status_is_unchanged() {
    let github = GitHub::start(
        Behaviour {
            refuse_writes: true,
            per_page: 100,
        },
        Vec::new(),
    );
    let project = project(&[
        ("prompts/greet/hello.yaml", GREETING),
        ("prompts/greet/bye.yaml", FAILING),
    ]);
    let without = run(&project, &github.server.url(), &["test", "--github"]);
    without.code(1);
    assert!(github.calls().is_empty(), "{:?}", github.calls());

    let with = run(&project, &github.server.url(), TEST);
    with.code(without.code)
        .stderr_has("warning:")
        .stderr_has("no pull request comment: GitHub refused posting the comment with 403")
        .stderr_has("Resource not accessible by integration")
        .stderr_has("a pull request from a fork gets a read-only token")
        .stdout_has("::warning title=No pull request comment::GitHub refused");
    // The annotations and the rest of the run are as without --comment.
    assert!(
        with.stdout.contains("::error file=prompts/greet/bye.yaml"),
        "{}",
        with.stdout
    );
    assert_eq!(
        github.calls(),
        [
            "GET /user".to_owned(),
            format!("GET {COMMENTS}?per_page=100"),
            format!("POST {COMMENTS}")
        ]
    );
}

#[test]
fn without_a_pull_request_or_a_reachable_api_the_comment_is_a_warning() {
    let github = GitHub::normal();
    let project = project(&[("prompts/greet/hello.yaml", GREETING)]);
    project.write("event.json", r#"{"ref": "refs/heads/main", "commits": []}"#);
    run(&project, &github.server.url(), TEST)
        .code(0)
        .stderr_has("warning:")
        .stderr_has("this run is not for a pull request");
    assert!(github.calls().is_empty(), "{:?}", github.calls());

    // Nothing listens at the API's address (the port of a server that has stopped).
    project.write("event.json", r#"{"pull_request": {"number": 7}}"#);
    let closed = {
        let gone = GitHub::normal();
        gone.server.url()
    };
    run(&project, &closed, TEST).code(0).stderr_has(
        "no pull request comment: cannot reach GitHub for listing the pull request's comments",
    );
}

#[test]
fn a_marker_on_the_second_page_is_found_and_updated() {
    let existing = vec![
        json!({"id": 1, "body": "Looks good to me", "user": {"login": "ada", "type": "User"}}),
        json!({"id": 2, "body": format!("Quoting it: {MARKER}"), "user": {"login": "bob", "type": "User"}}),
        json!({"id": 3, "body": null, "user": null}),
        // Anyone may write the marker: a stranger's comment is never taken over.
        json!({"id": 6, "body": format!("{MARKER}\nnot ours"), "user": {"login": "mallory", "type": "User"}}),
        json!({"id": 4, "body": format!("{MARKER}\nold report"), "user": {"login": "github-actions[bot]", "type": "Bot"}}),
        json!({"id": 5, "body": "a later remark", "user": {"login": "ada", "type": "User"}}),
    ];
    let github = GitHub::start(
        Behaviour {
            refuse_writes: false,
            per_page: 3,
        },
        existing,
    );
    let project = project(&[("prompts/greet/hello.yaml", GREETING)]);
    run(&project, &github.server.url(), TEST)
        .code(0)
        .stderr_has("updated the report on pull request #7 (comment 4)");
    assert_eq!(
        github.calls(),
        [
            "GET /user".to_owned(),
            format!("GET {COMMENTS}?per_page=100"),
            format!("GET {COMMENTS}?per_page=100&page=2"),
            "PATCH /repos/octo/prompts/issues/comments/4".to_owned(),
        ]
    );
    let comments = github.comments();
    assert_eq!(comments.len(), 6);
    assert_eq!(comments[3]["body"], format!("{MARKER}\nnot ours"));
    assert!(
        comments[4]["body"]
            .as_str()
            .expect("body")
            .contains("greets Ada")
    );
    assert_eq!(comments[1]["body"], format!("Quoting it: {MARKER}"));
}

#[test]
fn an_overlong_report_is_trimmed_below_the_limit_with_the_link_last() {
    // 400 failing tests with long names: the report runs to several hundred kilobytes.
    let mut yaml = String::from("model: echo\ntemplate: \"Hi there\"\ntests:\n");
    for n in 0..400 {
        yaml.push_str(&format!(
            "  - name: \"case {n} whose name is long so the report grows ✓ {}\"\n    assert: [{{type: contains, value: \"Goodbye\"}}]\n",
            "x".repeat(150)
        ));
    }
    let github = GitHub::normal();
    let project = project(&[("prompts/greet/many.yaml", &yaml)]);
    let outcome = run(&project, &github.server.url(), TEST);
    outcome.code(1).stderr_has("posted the report");
    let comments = github.comments();
    let body = comments[0]["body"].as_str().expect("a body");
    assert!(
        body.chars().count() < 65_536,
        "{} characters",
        body.chars().count()
    );
    assert!(body.encode_utf16().count() <= 65_536);
    assert!(
        body.chars().count() > 60_000,
        "cut too much: {}",
        body.chars().count()
    );
    assert!(body.starts_with(&format!("{MARKER}\n## ❌ promptctl test")));
    assert!(body.contains("**The report is cut here**"), "no note");
    assert!(body.ends_with(&format!(
        "\n---\n[The full report and artifacts of this run]({RUN_LINK})"
    )));
}
