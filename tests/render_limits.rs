//! The limits of every render, driven through the real binary under an address-space limit
//! (`ulimit -v`, or `prlimit` on a running server): a template that grows a value without
//! bound fails with a clear error, and the process lives on. Before the limits, each of
//! these aborted the process (`memory allocation of ... failed`) or ran for minutes.

mod common;

use std::process::Command;

use common::db::TestDb;
use common::git::TestRepo;
use common::server::{READ, Server};
use common::{Outcome, Project};
use serde_json::json;

/// The address space the processes under test get: far below what an unbounded render
/// takes, well above what promptctl needs.
const ADDRESS_SPACE_KIB: u64 = 1024 * 1024;

/// Templates that grow a value exponentially in `n` iterations, each in another way.
const GROWING: &[&str] = &[
    "{% set ns = namespace(l=[1]) %}{% for i in range(n) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|length }}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(n) %}{% set ns.l = ns.l|chain(ns.l) %}{% endfor %}{{ ns.l|length }}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(n) %}{% set ns.l = [ns.l, ns.l] %}{% endfor %}{{ ns.l|tojson|length }}",
    "{% set ns = namespace(d={}) %}{% for i in range(n) %}{% set ns.d = {'a': ns.d, 'b': ns.d} %}{% endfor %}{{ ns.d }}",
    "{% set ns = namespace(s='ab') %}{% for i in range(n) %}{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s|length }}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(n) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ (ns.l ~ '')|length }}",
    "{% set ns = namespace(l=['x']) %}{% for i in range(n) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|join(',')|length }}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(n) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|pprint|length }}",
    "{% set ns = namespace(l=[1]) %}{% for i in range(n) %}{% set ns.l = ns.l + ns.l %}{% endfor %}{{ ns.l|list|length }}",
    "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(n) %}{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ ns.a == ns.b }}",
    "{% set ns = namespace(a=[1], b=[1]) %}{% for i in range(n) %}{% set ns.a = [ns.a, ns.a] %}{% set ns.b = [ns.b, ns.b] %}{% endfor %}{{ [ns.a, ns.b, ns.a]|unique|list|length }}",
    "{% set ns = namespace(a={}, b={}) %}{% for i in range(n) %}{% set ns.a = {'x': ns.a, 'y': ns.a} %}{% set ns.b = {'x': ns.b, 'y': ns.b} %}{% endfor %}{{ [ns.a, ns.b]|sort|length }}",
    "{{ [[n]]|tojson(indent=(n // 60) * 4000000000 + 2)|length }}",
    "{% macro grow(l, k) %}{% if k %}{{ grow(l + l, k - 1) }}{% else %}{{ l|string|length }}{% endif %}{% endmacro %}{{ grow([1], n) }}",
];

/// A prompt file rendering `template` with an integer `n`, and one test case with `n`.
fn prompt(template: &str, n: u32) -> String {
    format!(
        "model: echo\nvariables:\n  n: {{type: integer, required: true}}\ntemplate: \"{template}\"\ntests:\n  - name: grows\n    vars: {{n: {n}}}\n    assert:\n      - {{type: contains, value: \"1\"}}\n"
    )
}

/// `promptctl ARGS` in `project` with its address space limited.
fn limited(project: &Project, args: &[&str]) -> Outcome {
    let mut command = Command::new("sh");
    command
        .args([
            "-c",
            &format!("ulimit -v {ADDRESS_SPACE_KIB} && exec \"$0\" \"$@\""),
        ])
        .arg(assert_cmd::cargo::cargo_bin("promptctl"))
        .args(["--color", "never"])
        .args(args)
        .current_dir(project.root())
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1");
    let output = command.output().expect("run promptctl");
    Outcome {
        code: output.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&output.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&output.stderr).into_owned(),
    }
}

#[test]
fn render_stops_every_way_of_growing_a_value_with_a_clear_error() {
    let project = Project::new();
    for (index, template) in GROWING.iter().enumerate() {
        project.write(&format!("prompts/s/grow{index}.yaml"), &prompt(template, 3));
        let small = limited(
            &project,
            &["render", &format!("s/grow{index}"), "--var", "n=3"],
        );
        assert_eq!(small.code, 0, "{template}: {small:?}");

        let outcome = limited(
            &project,
            &["render", &format!("s/grow{index}"), "--var", "n=60"],
        );
        assert_eq!(outcome.code, 2, "{template}: {outcome:?}");
        assert!(
            outcome.stderr.contains("error[render]")
                && (outcome.stderr.contains("MiB of memory") || outcome.stderr.contains("steps")),
            "{template}: {}",
            outcome.stderr
        );
        assert!(
            outcome
                .stderr
                .contains(&format!("prompts/s/grow{index}.yaml")),
            "the error names the prompt's file: {}",
            outcome.stderr
        );
    }
}

#[test]
fn check_reports_a_test_that_grows_a_value_as_render_limit() {
    let project = Project::new();
    project.write("prompts/s/grow.yaml", &prompt(GROWING[0], 60));
    project.write("prompts/s/tree.yaml", &prompt(GROWING[3], 60));
    let outcome = limited(&project, &["check"]);
    assert_eq!(outcome.code, 1, "{outcome:?}");
    assert_eq!(
        outcome.stderr.matches("error[render-limit]").count(),
        2,
        "{}",
        outcome.stderr
    );
}

#[test]
fn check_gives_the_tests_of_one_file_one_budget() {
    let project = Project::new();
    let mut text = String::from(
        "model: echo\nvariables:\n  n: {type: integer, required: true}\ntemplate: \"{% for i in range(n) %}{% for j in range(n) %}x{% endfor %}{% endfor %}\"\ntests:\n",
    );
    for index in 0..200 {
        text.push_str(&format!(
            "  - name: t{index}\n    vars: {{n: 100000}}\n    assert:\n      - {{type: contains, value: x}}\n"
        ));
    }
    project.write("prompts/s/runaway.yaml", &text);
    let outcome = project.run(["check"]);
    assert_eq!(outcome.code, 1, "{outcome:?}");
    let stopped = outcome.stderr.matches("does not render").count();
    assert!(
        (1..200).contains(&stopped),
        "only the first tests are rendered, {stopped} were: {}",
        outcome.stderr
    );
    assert!(
        outcome
            .stderr
            .contains(&format!("{} of 200 tests were not rendered", 200 - stopped)),
        "{}",
        outcome.stderr
    );
}

#[test]
fn the_memory_limit_is_read_from_promptctl_toml() {
    let project = Project::new();
    project.write(
        "prompts/s/big.yaml",
        "model: echo\ntemplate: \"{{ 'x' * 3000000 }}\"\n",
    );
    project.run(["render", "s/big"]).code(0);
    project.write("promptctl.toml", "[render]\nmemory_limit_mib = 1\n");
    project
        .run(["render", "s/big"])
        .code(2)
        .stderr_has("more than 1 MiB of memory");
    project.write("promptctl.toml", "[render]\nmemory_limit_mib = 0\n");
    project
        .run(["render", "s/big"])
        .code(2)
        .stderr_has("memory_limit_mib");
}

#[test]
fn debug_is_not_available_to_templates() {
    let project = Project::new();
    project.write(
        "prompts/s/dump.yaml",
        "model: echo\nvariables:\n  secret: {type: string, default: hunter2}\ntemplate: \"{{ debug() }}\"\n",
    );
    let outcome = project.run(["render", "s/dump"]);
    assert_eq!(outcome.code, 2, "{outcome:?}");
    assert!(!outcome.stdout.contains("hunter2"), "{}", outcome.stdout);
    assert!(outcome.stderr.contains("debug"), "{}", outcome.stderr);
}

#[test]
fn serve_answers_a_growing_render_with_422_render_limit_and_stays_up() {
    let db = TestDb::new();
    let repo = TestRepo::new();
    repo.write("promptctl.toml", "default_provider = \"echo\"\n");
    repo.write("prompts/s/grow.yaml", &prompt(GROWING[0], 3));
    repo.commit("v1");
    let (code, stdout, stderr) = repo.run(&["sync", "--database-url", &db.url]);
    assert_eq!(code, 0, "{stdout}\n{stderr}");
    let server = Server::start(&repo, &db.url, &[("PROMPTCTL_READ_TOKENS", READ)], &[]);
    let limit = format!("--as={}", ADDRESS_SPACE_KIB * 1024 * 2);
    let status = Command::new("prlimit")
        .args(["--pid", &server.child.id().to_string(), &limit])
        .status()
        .expect("prlimit runs");
    assert!(status.success());

    let path = "/v1/prompts/s/grow/render";
    for _ in 0..3 {
        let message = server
            .post(path, Some(READ), &json!({"vars": {"n": 60}}))
            .error(422, "render_limit");
        assert!(message.contains("s/grow"), "names the prompt: {message}");
    }
    let rendered = server.post(path, Some(READ), &json!({"vars": {"n": 3}}));
    assert_eq!(rendered.status, 200, "{}", rendered.text);
    assert_eq!(rendered.json()["messages"][0]["content"], "8");
    assert_eq!(server.get("/healthz", None).status, 200);
}

#[test]
fn values_nested_as_deep_as_the_fuel_allows_never_overflow_the_stack() {
    let project = Project::new();
    // One list nested 200,000 levels deep, and two nested 100,000 levels each: within the
    // fuel, so every operation below meets the whole depth (and succeeds).
    let one = "{% set ns = namespace(l=[1]) %}{% for j in range(2) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% endfor %}{% endfor %}";
    let two = "{% set ns = namespace(l=[1], m=[1]) %}{% for i in range(100000) %}{% set ns.l = [ns.l] %}{% set ns.m = [ns.m] %}{% endfor %}";
    for (index, (nest, tail, expected)) in [
        (one, "{{ ns.l|length }}", "1"),
        (one, "{{ ns.l|tojson|length }}", "400003"),
        (one, "{{ ns.l|string|length }}", "400003"),
        (two, "{{ ns.l == ns.m }}", "True"),
        (two, "{{ [ns.l, ns.m]|sort|length }}", "2"),
    ]
    .iter()
    .enumerate()
    {
        project.write(
            &format!("prompts/s/deep{index}.yaml"),
            &format!("model: echo\ntemplate: \"{nest}{tail}\"\n"),
        );
        let outcome = limited(&project, &["render", &format!("s/deep{index}")]);
        assert_eq!(outcome.code, 0, "{tail}: {outcome:?}");
        assert!(
            outcome.stdout.trim_end().ends_with(expected),
            "{tail}: {}",
            outcome.stdout
        );
    }
}
