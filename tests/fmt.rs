//! `promptctl fmt` end to end: over the example repository (idempotent, every comment
//! kept, `check` still passing), `--check` exit codes, and a formatting commit that makes
//! no version (SPEC section 2).

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::Project;
use common::git::TestRepo;

/// Every prompt file under `dir`, relative path to text.
fn prompt_files(dir: &Path) -> BTreeMap<String, String> {
    walkdir::WalkDir::new(dir)
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_file())
        .filter(|e| {
            e.path()
                .extension()
                .is_some_and(|x| x == "yaml" || x == "yml")
        })
        .map(|e| {
            (
                e.path()
                    .strip_prefix(dir)
                    .expect("inside")
                    .display()
                    .to_string(),
                std::fs::read_to_string(e.path()).expect("read"),
            )
        })
        .collect()
}

/// The comments of a text, each trimmed, sorted (a moved comment is still kept).
fn comments(text: &str) -> Vec<String> {
    let mut found: Vec<String> = text
        .lines()
        .filter_map(|line| line.find('#').map(|at| line[at..].trim().to_owned()))
        .collect();
    found.sort();
    found
}

fn copy_examples(project: &Project) {
    let source = Path::new(env!("CARGO_MANIFEST_DIR"));
    for (relative, text) in prompt_files(&source.join("prompts")) {
        project.write(&format!("prompts/{relative}"), &text);
    }
    for entry in walkdir::WalkDir::new(source.join("prompts"))
        .into_iter()
        .filter_map(Result::ok)
        .filter(|e| e.path().extension().is_some_and(|x| x == "j2"))
    {
        let relative = entry
            .path()
            .strip_prefix(source)
            .expect("inside")
            .display()
            .to_string();
        project.write(
            &relative,
            &std::fs::read_to_string(entry.path()).expect("read"),
        );
    }
    // environments.yaml stays out: its pins need the example's Git history.
}

#[test]
fn fmt_over_the_examples_is_idempotent_keeps_comments_and_passes_check() {
    let project = Project::new();
    copy_examples(&project);
    let before = prompt_files(&project.path("prompts"));
    project.run(["check"]).code(0);

    project.run(["fmt"]).code(0);
    let once = prompt_files(&project.path("prompts"));
    assert_eq!(before.len(), once.len());
    for (path, text) in &before {
        assert_eq!(
            comments(text),
            comments(&once[path]),
            "{path}: comments changed"
        );
    }
    project.run(["fmt", "--check"]).code(0);
    project.run(["fmt"]).code(0);
    assert_eq!(
        once,
        prompt_files(&project.path("prompts")),
        "not idempotent"
    );
    project.run(["check"]).code(0);
}

const MESSY: &str = "# The billing team's invoice prompt.

tests:
    -   assert:
          - value: total
            type: contains   # the figure must appear
        name: mentions the total
        vars: {doc: \"x\"}
# which model
model: gpt-4o
template: \"Summarise:\\n{{ doc }}\"
variables:
    doc: {type: string, required: true}
";

#[test]
fn check_names_files_that_would_change_and_fmt_fixes_them() {
    let project = Project::new();
    project.write("prompts/billing/invoice.yaml", MESSY);
    project.write(
        "prompts/billing/tidy.yaml",
        "model: m\ntemplate: hi\ntests:\n  - name: t\n    assert: [{type: contains, value: hi}]\n",
    );
    project
        .run(["fmt", "--check"])
        .code(1)
        .stdout_has("prompts/billing/invoice.yaml");
    assert_eq!(project.read("prompts/billing/invoice.yaml"), MESSY);
    project
        .run(["fmt", "prompts/billing"])
        .code(0)
        .stdout_has("invoice.yaml");
    assert_eq!(
        project.read("prompts/billing/invoice.yaml"),
        "# The billing team's invoice prompt.

# which model
model: gpt-4o
variables:
  doc: {type: string, required: true}
template: |-
  Summarise:
  {{ doc }}
tests:
  - name: mentions the total
    vars: {doc: \"x\"}
    assert:
      - type: contains   # the figure must appear
        value: total
"
    );
    project.run(["fmt", "--check"]).code(0);
}

#[test]
fn a_file_that_does_not_parse_is_reported_and_the_rest_formatted() {
    let project = Project::new();
    project.write("prompts/a/bad.yaml", "modle: x\n");
    project.write("prompts/a/good.yaml", "template: hi\nmodel: m\n");
    project.run(["fmt"]).code(2).stderr_has("bad.yaml");
    assert_eq!(
        project.read("prompts/a/good.yaml"),
        "model: m\ntemplate: hi\n"
    );
    project.write("prompts/a/bad.yaml", "model: &m x\ntemplate: hi\n");
    project.run(["fmt"]).code(0).stderr_has("fmt-unsupported");
    assert_eq!(
        project.read("prompts/a/bad.yaml"),
        "model: &m x\ntemplate: hi\n"
    );
}

#[test]
fn a_formatting_commit_makes_no_version() {
    let repo = TestRepo::new();
    repo.write("prompts/billing/invoice.yaml", MESSY);
    repo.write(
        "prompts/billing/other.yaml",
        "template: \"a\\nb\"\nmodel: m\n",
    );
    repo.commit("add prompts");
    repo.write(
        "prompts/billing/other.yaml",
        "template: \"a\\nc\"\nmodel: m\n",
    );
    repo.commit("change other");
    let before = repo.json(&["list", "--all"]);

    let (code, _, stderr) = repo.run(&["fmt"]);
    assert_eq!(code, 0, "{stderr}");
    assert_ne!(
        repo.git(&["status", "--porcelain"]),
        "",
        "fmt changed nothing"
    );
    repo.commit("promptctl fmt");
    let after = repo.json(&["list", "--all"]);
    assert_eq!(before, after, "a formatting commit changed the versions");
    for row in after.as_array().expect("rows") {
        assert_eq!(row["uncommitted"], false);
    }
}
