//! End-to-end tests of the `promptctl` binary over fixture repositories: what a new user
//! sees from `init`, `check` and `render`, bad input files, and every lint rule.
//!
//! Human output that matters is snapshotted with insta (tests/snapshots/); the rest is
//! asserted through `--format json`.

mod common;

use common::{Outcome, Project, promptctl_command};

/// A complete, clean prompt: variables declared and used, a partial, a test.
const GOOD: &str = r#"description: Says hello.
model: gpt-4o
variables:
  name: {type: string, required: true}
  tone: {type: string, default: friendly}
messages:
  - role: system
    content: |
      Be {{ tone }}.
      {% include "shared/_partials/sign.j2" %}
  - role: user
    content: "Say hello to {{ name }}."
tests:
  - name: greets
    vars: {name: Ada}
    assert:
      - {type: contains, value: Ada}
"#;

/// A project with one good prompt (`app/hello`) and its partial.
fn good_project() -> Project {
    let project = Project::new();
    project
        .write("prompts/app/hello.yaml", GOOD)
        .write("prompts/shared/_partials/sign.j2", "Sign as the team.\n");
    project
}

/// The diagnostics of `check --format json`, as (code, severity, path, line, column).
fn findings(outcome: &Outcome) -> Vec<(String, String, String, u64, u64)> {
    let json = outcome.json();
    json["diagnostics"]
        .as_array()
        .expect("diagnostics array")
        .iter()
        .map(|d| {
            (
                d["code"].as_str().unwrap_or_default().to_owned(),
                d["severity"].as_str().unwrap_or_default().to_owned(),
                d["path"].as_str().unwrap_or_default().to_owned(),
                d["line"].as_u64().unwrap_or_default(),
                d["column"].as_u64().unwrap_or_default(),
            )
        })
        .collect()
}

/// The one diagnostic of `check --format json` with `code`.
#[track_caller]
fn finding(outcome: &Outcome, code: &str) -> serde_json::Value {
    let json = outcome.json();
    let matching: Vec<serde_json::Value> = json["diagnostics"]
        .as_array()
        .expect("diagnostics array")
        .iter()
        .filter(|d| d["code"] == code)
        .cloned()
        .collect();
    assert_eq!(
        matching.len(),
        1,
        "expected one `{code}` finding in {}",
        outcome.stdout
    );
    matching.into_iter().next().expect("one finding")
}

// ---------------------------------------------------------------------------------------
// The new user's path

#[test]
fn check_passes_on_the_repository_example_prompts() {
    let outcome = Outcome::of(promptctl_command().args([
        "-C",
        env!("CARGO_MANIFEST_DIR"),
        "check",
        "--strict",
    ]));
    outcome
        .code(0)
        .stderr_has("0 errors, 0 warnings")
        .no_panic();
}

#[test]
fn example_repository_renders_the_readme_prompt() {
    let outcome = Outcome::of(promptctl_command().args([
        "-C",
        env!("CARGO_MANIFEST_DIR"),
        "render",
        "support_reply",
        "--var",
        "customer_name=Ada",
        "--var",
        "message=hi",
    ]));
    outcome
        .code(0)
        .stdout_has("── system ──")
        .stdout_has("Message from Ada:");
}

#[test]
fn init_then_check_then_render() {
    let project = Project::bare();
    project.run(["init"]).code(0);
    assert!(project.path("promptctl.toml").is_file());
    assert!(project.path("environments.yaml").is_file());
    project.run(["check"]).code(0).stderr_has("0 errors");
    project.run(["check", "--strict"]).code(0);
    let outcome = project.run(["render", "greeting", "--var", "user_name=Ada"]);
    outcome.code(0).stdout_has("Say hello to Ada.");
    insta::assert_snapshot!("init_render_greeting", outcome.stdout);
}

#[test]
fn good_project_checks_clean_in_json() {
    let outcome = good_project().run(["check", "--format", "json"]);
    outcome.code(0);
    let json = outcome.json();
    assert_eq!(json["ok"], true);
    assert_eq!(json["prompts"], 1);
    assert_eq!(json["partials"], 1);
    assert_eq!(json["errors"], 0);
    assert_eq!(json["warnings"], 0);
}

// ---------------------------------------------------------------------------------------
// Bad input files: exit 2, a clear message naming the file, never a panic or a hang

/// `check` over a project holding only `prompts/bad/<file>` with `bytes`.
fn check_bad(file: &str, bytes: &[u8]) -> Outcome {
    let project = good_project();
    project.write_bytes(&format!("prompts/bad/{file}"), bytes);
    let started = std::time::Instant::now();
    let outcome = project.run(["check"]);
    assert!(
        started.elapsed() < std::time::Duration::from_secs(10),
        "check took {:?}",
        started.elapsed()
    );
    outcome.no_panic();
    outcome
}

#[test]
fn empty_file_is_bad_input() {
    let outcome = check_bad("empty.yaml", b"");
    outcome
        .code(2)
        .stderr_has("error[empty-file]: file is empty")
        .stderr_has("prompts/bad/empty.yaml:1:1");
    let blank = check_bad("blank.yaml", b"\n  \n# only a comment\n");
    blank.code(2);
}

#[test]
fn binary_file_is_bad_input() {
    let outcome = check_bad("image.yaml", b"model: m\n\x89PNG\r\n\x1a\n\0\0\0\rIHDR");
    outcome
        .code(2)
        .stderr_has("error[binary-file]")
        .stderr_has("prompts/bad/image.yaml:4:1");
}

#[test]
fn file_over_one_mebibyte_is_bad_input() {
    let mut text = String::from("model: m\ntemplate: |\n");
    while text.len() <= 1024 * 1024 {
        text.push_str("  a line of a very long prompt that nobody should write\n");
    }
    let outcome = check_bad("huge.yaml", text.as_bytes());
    outcome
        .code(2)
        .stderr_has("error[file-too-large]")
        .stderr_has("prompts/bad/huge.yaml:1:1")
        .stderr_has("1048576 byte limit");
}

#[test]
fn non_utf8_is_bad_input_at_the_bad_byte() {
    let outcome = check_bad("latin1.yaml", b"model: m\ntemplate: \"caf\xe9\"\n");
    outcome
        .code(2)
        .stderr_has("error[not-utf8]")
        .stderr_has("prompts/bad/latin1.yaml:2:15");
}

#[test]
fn yaml_syntax_error_points_at_its_line() {
    let outcome = check_bad(
        "broken.yaml",
        b"model: m\nvariables:\n  x: {type: string]\ntemplate: \"{{ x }}\"\n",
    );
    outcome
        .code(2)
        .stderr_has("error[yaml-syntax]")
        .stderr_has("prompts/bad/broken.yaml:3:6");
    insta::assert_snapshot!("yaml_syntax_error", outcome.stderr);
}

#[test]
fn alias_bomb_is_rejected_in_milliseconds() {
    let mut text = String::from(
        "model: m\ntemplate: hi\nparameters:\n  a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n",
    );
    for i in 1..20 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        text.push_str(&format!("  a{i}: &a{i} [{refs}]\n"));
    }
    let started = std::time::Instant::now();
    let outcome = check_bad("bomb.yaml", text.as_bytes());
    let elapsed = started.elapsed();
    outcome
        .code(2)
        .stderr_has("error[yaml-limits]")
        .stderr_has("prompts/bad/bomb.yaml:");
    assert!(elapsed.as_secs() < 3, "took {elapsed:?}");
    insta::assert_snapshot!("alias_bomb", outcome.stderr);
}

#[test]
fn deep_nesting_is_rejected_in_milliseconds() {
    for (file, open, close) in [("flow.yaml", "[", "]"), ("maps.yaml", "{a: ", "}")] {
        let text = format!(
            "model: m\ntemplate: hi\nparameters:\n  x: {}{}\n",
            open.repeat(100_000),
            close.repeat(100_000)
        );
        let started = std::time::Instant::now();
        let outcome = check_bad(file, text.as_bytes());
        let elapsed = started.elapsed();
        outcome
            .code(2)
            .stderr_has("error[yaml-limits]")
            .stderr_has(&format!("prompts/bad/{file}:4:"))
            .stderr_has("nest");
        assert!(elapsed.as_secs() < 3, "took {elapsed:?}");
    }
}

#[test]
fn deep_nesting_in_a_strict_field_is_still_bad_input() {
    let text = format!("model: {}{}\n", "[".repeat(100_000), "]".repeat(100_000));
    check_bad("deep_model.yaml", text.as_bytes())
        .code(2)
        .stderr_has("prompts/bad/deep_model.yaml:1:");
}

#[test]
fn missing_prompts_folder_is_bad_input() {
    let project = Project::new();
    project
        .run(["check"])
        .code(2)
        .no_panic()
        .stderr_has("does not exist")
        .stderr_has("promptctl init");
}

#[test]
fn missing_prompts_folder_in_json_is_an_error_object() {
    let project = Project::new();
    let outcome = project.run(["check", "--format", "json"]);
    outcome.code(2);
    assert_eq!(outcome.json()["error"]["exit_code"], 2);
}

#[test]
fn a_bad_file_does_not_hide_findings_in_the_others() {
    let project = good_project();
    project.write("prompts/bad/empty.yaml", "").write(
        "prompts/app/undeclared.yaml",
        "model: m\ntemplate: \"{{ who }}\"\ntests: [{vars: {}, assert: [{type: safety_check}]}]\n",
    );
    let outcome = project.run(["check", "--format", "json"]);
    outcome.code(2);
    let codes: Vec<String> = findings(&outcome).into_iter().map(|f| f.0).collect();
    assert!(codes.contains(&"empty-file".to_owned()), "{codes:?}");
    assert!(
        codes.contains(&"undeclared-variable".to_owned()),
        "{codes:?}"
    );
}

// ---------------------------------------------------------------------------------------
// Lint findings

/// A project with `prompts/app/p.yaml` holding `text` (and the good prompt beside it).
fn lint(text: &str) -> Project {
    let project = good_project();
    project.write("prompts/app/p.yaml", text);
    project
}

const UNDECLARED: &str = r#"model: m
variables:
  name: {type: string, required: true}
messages:
  - role: system
    content: |
      Hello {{ name }}, you are {{ persona }}.
  - role: user
    content: "Hi {{ nmae }}"
tests:
  - vars: {name: Ada}
    assert: [{type: safety_check}]
"#;

#[test]
fn undeclared_variable_in_block_and_quoted_scalars() {
    let project = lint(UNDECLARED);
    let outcome = project.run(["check"]);
    outcome
        .code(1)
        .stderr_has("prompts/app/p.yaml:7:36")
        .stderr_has("prompts/app/p.yaml:9:21")
        .stderr_has("did you mean `name`?");
    insta::assert_snapshot!("undeclared_variable", outcome.stderr);
    let json = project.run(["check", "--format", "json"]);
    json.code(1);
    let found = findings(&json);
    assert_eq!(found.len(), 2, "no cascade into test renders: {found:?}");
    assert!(found.contains(&(
        "undeclared-variable".into(),
        "error".into(),
        "prompts/app/p.yaml".into(),
        7,
        36
    )));
    assert!(found.contains(&(
        "undeclared-variable".into(),
        "error".into(),
        "prompts/app/p.yaml".into(),
        9,
        21
    )));
}

#[test]
fn unused_variable_is_a_warning_that_fails_only_strict() {
    let text = "model: m\nvariables:\n  used: {type: string}\n  spare: {type: string}\ntemplate: \"{{ used }}\"\ntests: [{vars: {used: x}, assert: [{type: safety_check}]}]\n";
    let project = lint(text);
    let outcome = project.run(["check"]);
    outcome.code(0).stderr_has("warning[unused-variable]");
    insta::assert_snapshot!("unused_variable", outcome.stderr);
    project.run(["check", "--strict"]).code(1);
    let json = project.run(["check", "--format", "json"]);
    let d = finding(&json, "unused-variable");
    assert_eq!(d["severity"], "warning");
    assert_eq!(d["line"], 4);
    assert!(
        d["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`spare`")
    );
}

#[test]
fn missing_include_suggests_the_partial() {
    let text = "model: m\ntemplate: |\n  {% include \"shared/_partials/sing.j2\" %}\ntests: [{assert: [{type: safety_check}]}]\n";
    let outcome = lint(text).run(["check"]);
    outcome
        .code(1)
        .stderr_has("error[missing-include]")
        .stderr_has("prompts/app/p.yaml:3:")
        .stderr_has("did you mean `shared/_partials/sign.j2`?");
    insta::assert_snapshot!("missing_include", outcome.stderr);
}

#[test]
fn include_escaping_the_prompts_folder_is_an_error() {
    let project = lint(
        "model: m\ntemplate: |\n  {% include \"../promptctl.toml\" %}\ntests: [{assert: [{type: safety_check}]}]\n",
    );
    let outcome = project.run(["check"]);
    outcome
        .code(1)
        .stderr_has("error[include-escapes]")
        .stderr_has("prompts/app/p.yaml:3:")
        .stderr_has("leaves the prompts folder");
    insta::assert_snapshot!("include_escapes", outcome.stderr);
    let absolute = lint(
        "model: m\ntemplate: '{% include \"/etc/passwd\" %}'\ntests: [{assert: [{type: safety_check}]}]\n",
    );
    let json = absolute.run(["check", "--format", "json"]);
    json.code(1);
    assert_eq!(finding(&json, "include-escapes")["line"], 2);
}

#[test]
fn include_escaping_from_a_partial_is_an_error() {
    let project = good_project();
    project.write(
        "prompts/shared/_partials/sign.j2",
        "Sign.\n{% include \"../../../promptctl.toml\" %}\n",
    );
    let json = project.run(["check", "--format", "json"]);
    json.code(1);
    let d = finding(&json, "include-escapes");
    assert_eq!(d["path"], "prompts/shared/_partials/sign.j2");
    assert_eq!(d["line"], 2);
}

#[test]
fn template_syntax_error_is_reported_at_its_line_in_the_yaml_file() {
    let text = "model: m\nvariables:\n  name: {type: string}\nmessages:\n  - role: system\n    content: |\n      Line one {{ name }}\n      Line two {% if name %}\n      Line three\n  - role: user\n    content: \"{{ name }}\"\ntests: [{assert: [{type: safety_check}]}]\n";
    let project = lint(text);
    let outcome = project.run(["check"]);
    outcome
        .code(1)
        .stderr_has("error[template-syntax]")
        .stderr_has("messages[0]");
    insta::assert_snapshot!("template_syntax", outcome.stderr);
    let json = project.run(["check", "--format", "json"]);
    let d = finding(&json, "template-syntax");
    let line = d["line"].as_u64().unwrap_or_default();
    assert!((8..=10).contains(&line), "reported at line {line}: {d}");
}

#[test]
fn duplicate_identity_is_an_error() {
    let project = good_project();
    project.write(
        "prompts/app/other/hello.yaml",
        "model: m\ntemplate: hi\ntests: [{assert: [{type: safety_check}]}]\n",
    );
    project.write(
        "prompts/app/renamed.yaml",
        "name: hello\nmodel: m\ntemplate: hi\ntests: [{assert: [{type: safety_check}]}]\n",
    );
    let json = project.run(["check", "--format", "json"]);
    json.code(1);
    let duplicates: Vec<_> = findings(&json)
        .into_iter()
        .filter(|f| f.0 == "duplicate-prompt")
        .collect();
    assert_eq!(duplicates.len(), 2, "{}", json.stdout);
    let renamed = duplicates
        .iter()
        .find(|f| f.2 == "prompts/app/renamed.yaml")
        .expect("renamed.yaml is reported");
    assert_eq!((renamed.3, renamed.4), (1, 7));
    let human = project.run(["check"]);
    human
        .code(1)
        .stderr_has("prompt `app/hello` is also defined in");
}

#[test]
fn prompt_without_tests_is_a_warning() {
    let project = lint("model: m\ntemplate: hi\n");
    let json = project.run(["check", "--format", "json"]);
    json.code(0);
    let d = finding(&json, "no-tests");
    assert_eq!(d["severity"], "warning");
    assert_eq!(d["path"], "prompts/app/p.yaml");
    project
        .run(["check", "--strict"])
        .code(1)
        .stderr_has("warning[no-tests]: prompt has no tests");
}

#[test]
fn test_vars_missing_a_required_variable() {
    let text = "model: m\nvariables:\n  name: {type: string, required: true}\ntemplate: \"{{ name }}\"\ntests:\n  - name: forgets the name\n    vars: {}\n    assert: [{type: safety_check}]\n";
    let project = lint(text);
    let outcome = project.run(["check"]);
    outcome
        .code(1)
        .stderr_has("error[test-vars]")
        .stderr_has("prompts/app/p.yaml:6:")
        .stderr_has("add `name` to the test's `vars`");
    insta::assert_snapshot!("test_vars_missing", outcome.stderr);
}

#[test]
fn unknown_field_suggests_the_right_one() {
    let project = lint("model: m\ntemplate: hi\ntets: []\n");
    let outcome = project.run(["check"]);
    outcome
        .code(2)
        .stderr_has("error[schema]")
        .stderr_has("prompts/app/p.yaml:3:1")
        .stderr_has("did you mean `tests`?");
    insta::assert_snapshot!("unknown_field", outcome.stderr);
    let nested =
        lint("model: m\ntemplate: \"{{ x }}\"\nvariables:\n  x: {type: string, requird: true}\n");
    let json = nested.run(["check", "--format", "json"]);
    json.code(2);
    let d = finding(&json, "schema");
    assert_eq!(d["line"], 4);
    assert_eq!(d["help"], "did you mean `required`?");
}

#[test]
fn mistyped_field_is_bad_input() {
    let json = lint("model: [a, b]\ntemplate: hi\n").run(["check", "--format", "json"]);
    json.code(2);
    let found = findings(&json);
    assert_eq!(found.len(), 1, "{}", json.stdout);
    assert_eq!((found[0].2.as_str(), found[0].3), ("prompts/app/p.yaml", 1));
}

#[test]
fn unknown_assertion_type_suggests() {
    let text = "model: m\ntemplate: hi\ntests:\n  - assert:\n      - {type: contians, value: x}\n";
    let json = lint(text).run(["check", "--format", "json"]);
    json.code(1);
    let d = finding(&json, "unknown-assertion");
    assert_eq!(d["line"], 5);
    assert_eq!(d["help"], "did you mean `contains`?");
    assert!(
        d["message"]
            .as_str()
            .unwrap_or_default()
            .contains("`contians`")
    );
}

#[test]
fn monitor_assertion_needing_an_expected_output_is_refused() {
    let text = "model: m\ntemplate: hi\nmonitor:\n  - {type: safety_check}\n  - {type: exact_match, value: hi}\ntests: [{assert: [{type: safety_check}]}]\n";
    let json = lint(text).run(["check", "--format", "json"]);
    json.code(1);
    let d = finding(&json, "monitor-assertion");
    assert_eq!(d["line"], 5);
    assert!(
        d["message"]
            .as_str()
            .unwrap_or_default()
            .contains("exact_match")
    );
}

#[test]
fn runaway_loop_in_a_test_fails_check() {
    let text = "model: m\ntemplate: \"{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}\"\ntests:\n  - name: loops\n    assert: [{type: safety_check}]\n";
    let started = std::time::Instant::now();
    let json = lint(text).run(["check", "--format", "json"]);
    json.code(1).no_panic();
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
    let d = finding(&json, "render-limit");
    assert_eq!(d["line"], 4);
    assert!(
        d["message"]
            .as_str()
            .unwrap_or_default()
            .contains("runaway loop"),
        "{d}"
    );
}

// ---------------------------------------------------------------------------------------
// render

/// A project with one prompt whose variables have types and defaults.
fn render_project() -> Project {
    let project = Project::new();
    project.write(
        "prompts/app/typed.yaml",
        r#"model: m
variables:
  name: {type: string, required: true}
  count: {type: integer, default: 1}
  greeting: {type: string, default: Hello}
messages:
  - role: system
    content: "{{ greeting }}, {{ name }}!"
  - role: user
    content: "{{ count + 1 }} {{ count is integer }}"
tests:
  - vars: {name: Ada}
    assert: [{type: safety_check}]
"#,
    );
    project
}

#[test]
fn render_applies_defaults() {
    let outcome = render_project().run(["render", "typed", "--var", "name=Ada"]);
    outcome.code(0);
    insta::assert_snapshot!("render_defaults", outcome.stdout);
}

#[test]
fn render_coerces_an_integer_var() {
    let outcome = render_project().run([
        "render",
        "app/typed",
        "--var",
        "name=Ada",
        "--var",
        "count=41",
    ]);
    outcome.code(0).stdout_has("42 True");
    render_project()
        .run([
            "render",
            "typed",
            "--var",
            "name=Ada",
            "--var",
            "count=many",
        ])
        .code(2)
        .stderr_has("`--var count`: `many` is not an integer");
}

#[test]
fn render_reads_a_yaml_vars_file_and_var_overrides_it() {
    let project = render_project();
    project.write("vars.yaml", "name: Grace\ncount: 9\ngreeting: Hi\n");
    let outcome = project.run(["render", "typed", "--vars-file", "vars.yaml"]);
    outcome
        .code(0)
        .stdout_has("Hi, Grace!")
        .stdout_has("10 True");
    let overridden = project.run([
        "render",
        "typed",
        "--vars-file",
        "vars.yaml",
        "--var",
        "name=Ada",
    ]);
    overridden.code(0).stdout_has("Hi, Ada!");
}

#[test]
fn render_json_is_a_list_of_messages() {
    let outcome =
        render_project().run(["render", "typed", "--var", "name=Ada", "--format", "json"]);
    outcome.code(0);
    assert_eq!(
        outcome.json(),
        serde_json::json!([
            {"role": "system", "content": "Hello, Ada!"},
            {"role": "user", "content": "2 True"},
        ])
    );
}

#[test]
fn render_missing_variable_names_it() {
    render_project()
        .run(["render", "typed"])
        .code(2)
        .no_panic()
        .stderr_has("missing required variable `name`")
        .stderr_has("--var name=");
}

#[test]
fn render_refuses_an_undeclared_var_with_a_suggestion() {
    render_project()
        .run(["render", "typed", "--var", "name=Ada", "--var", "cuont=2"])
        .code(2)
        .stderr_has("variable `cuont` is not declared")
        .stderr_has("did you mean `count`?");
}

#[test]
fn render_runaway_loop_runs_out_of_fuel() {
    let project = Project::new();
    project.write(
        "prompts/app/loop.yaml",
        "model: m\ntemplate: |\n  start\n  {% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}\n",
    );
    let started = std::time::Instant::now();
    let outcome = project.run(["render", "loop"]);
    outcome
        .code(2)
        .no_panic()
        .stderr_has("prompts/app/loop.yaml:")
        .stderr_has("steps inside them) and was stopped (a runaway loop?)");
    assert!(
        started.elapsed().as_secs() < 10,
        "took {:?}",
        started.elapsed()
    );
    insta::assert_snapshot!("render_runaway_loop", outcome.stderr);
}

#[test]
fn render_include_escaping_is_refused() {
    let project = Project::new();
    project.write("secret.j2", "TOP SECRET\n");
    project.write(
        "prompts/app/escape.yaml",
        "model: m\ntemplate: |\n  {% include \"../secret.j2\" %}\n",
    );
    let outcome = project.run(["render", "escape"]);
    outcome
        .code(2)
        .no_panic()
        .stderr_has("leaves the prompts folder");
    assert!(!outcome.stdout.contains("TOP SECRET"));
    assert!(!outcome.stderr.contains("TOP SECRET"));
}

#[test]
fn render_unknown_prompt_suggests() {
    render_project()
        .run(["render", "typd"])
        .code(2)
        .stderr_has("no prompt named `typd`")
        .stderr_has("did you mean");
}

#[test]
fn render_vars_file_problems_are_bad_input() {
    let project = render_project();
    project
        .run(["render", "typed", "--vars-file", "missing.yaml"])
        .code(2)
        .stderr_has("cannot read vars file missing.yaml");
    project.write("broken.yaml", "name: [Ada\n");
    project
        .run(["render", "typed", "--vars-file", "broken.yaml"])
        .code(2)
        .stderr_has("broken.yaml:1:");
    project.write("typed.yaml", "name: Ada\ncount: lots\n");
    project
        .run(["render", "typed", "--vars-file", "typed.yaml"])
        .code(2)
        .stderr_has("variable `count` must be integer, got string");
    project
        .run(["render", "typed", "--var", "name"])
        .code(2)
        .stderr_has("is not NAME=VALUE");
}
