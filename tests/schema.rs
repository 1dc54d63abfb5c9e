//! `promptctl schema` checked by an independent validator: `check-jsonschema` (PyPI) must
//! accept every example file and reject files that `check` rejects for their shape.
//!
//! The validator is found through `CHECK_JSONSCHEMA`, then the virtualenv `.ci/run` installs
//! under the target folder, then `PATH`. Without it the test fails saying how to install it:
//! a schema that nobody validated must not pass silently.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::Project;

fn check_jsonschema() -> PathBuf {
    if let Some(path) = std::env::var_os("CHECK_JSONSCHEMA") {
        return PathBuf::from(path);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR"));
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| manifest.join("target"), PathBuf::from);
    for venv in ["lint-venv", "ci-venv"] {
        let candidate = target.join(venv).join("bin/check-jsonschema");
        if candidate.is_file() {
            return candidate;
        }
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("check-jsonschema");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    panic!(
        "check-jsonschema not found: run `.ci/run` once (it installs it into target/lint-venv), \
         or `pip install check-jsonschema`, or set CHECK_JSONSCHEMA to its path"
    );
}

/// Runs check-jsonschema with `schema` over `files`: (success, output).
fn validate(schema: &Path, files: &[PathBuf]) -> (bool, String) {
    let out = Command::new(check_jsonschema())
        .arg("--schemafile")
        .arg(schema)
        .args(files)
        .output()
        .expect("run check-jsonschema");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Writes `promptctl schema DOCUMENT` into the project and returns its path.
fn schema_file(project: &Project, document: &str) -> PathBuf {
    let outcome = project.run(["schema", document]);
    outcome.code(0);
    let path = project.path(&format!("{document}.schema.json"));
    std::fs::write(&path, &outcome.stdout).expect("write schema");
    path
}

#[test]
fn every_example_file_validates() {
    let project = Project::new();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let prompts: Vec<PathBuf> = walkdir::WalkDir::new(root.join("prompts"))
        .sort_by_file_name()
        .into_iter()
        .filter_map(Result::ok)
        .map(|e| e.path().to_path_buf())
        .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
        .collect();
    assert!(prompts.len() > 5, "the example prompts are missing");
    let (ok, output) = validate(&schema_file(&project, "prompt"), &prompts);
    assert!(ok, "{output}");
    let (ok, output) = validate(
        &schema_file(&project, "environments"),
        &[root.join("environments.yaml")],
    );
    assert!(ok, "{output}");

    // What `init` writes validates too, promptctl.toml included.
    let fresh = Project::bare();
    fresh.run(["init"]).code(0);
    let (ok, output) = validate(
        &schema_file(&project, "config"),
        &[fresh.path("promptctl.toml")],
    );
    assert!(ok, "{output}");
    let (ok, output) = validate(
        &schema_file(&project, "prompt"),
        &[fresh.path("prompts/example/greeting.yaml")],
    );
    assert!(ok, "{output}");
}

#[test]
fn files_check_rejects_for_their_shape_are_rejected() {
    let project = Project::new();
    let schema = schema_file(&project, "prompt");
    let bad = [
        (
            "unknown-key.yaml",
            "model: m\ntemplate: hi\ntemprature: 0.2\n",
        ),
        (
            "wrong-type.yaml",
            "model: m\ntemplate: hi\ntests: {name: t}\n",
        ),
        ("no-model.yaml", "template: hi\n"),
        (
            "both.yaml",
            "model: m\ntemplate: hi\nmessages:\n  - {role: user, content: hi}\n",
        ),
        (
            "bad-role.yaml",
            "model: m\nmessages:\n  - {role: sytem, content: hi}\n",
        ),
        (
            "bad-assertion.yaml",
            "model: m\ntemplate: hi\ntests:\n  - assert: [{type: containz, value: x}]\n",
        ),
        (
            "no-value.yaml",
            "model: m\ntemplate: hi\ntests:\n  - assert: [{type: contains}]\n",
        ),
    ];
    for (name, text) in bad {
        project.write(&format!("prompts/bad/{name}"), text);
        let (ok, output) = validate(&schema, &[project.path(&format!("prompts/bad/{name}"))]);
        assert!(!ok, "{name} validated:\n{output}");
        // `check` rejects it as well (exit 2 for a file that does not parse, 1 for a rule).
        let code = project.run(["check"]).code;
        assert_ne!(code, 0, "check accepted {name}");
        std::fs::remove_file(project.path(&format!("prompts/bad/{name}"))).expect("remove");
    }

    let config = schema_file(&project, "config");
    project.write("bad.toml", "prompt_dir = \"prompts\"\n");
    let (ok, _) = validate(&config, &[project.path("bad.toml")]);
    assert!(!ok, "an unknown promptctl.toml key validated");
    let environments = schema_file(&project, "environments");
    project.write(
        "environments.yaml",
        "prompts:\n  p:\n    production: {version: 0}\n",
    );
    let (ok, _) = validate(&environments, &[project.path("environments.yaml")]);
    assert!(!ok, "version 0 validated");
}
