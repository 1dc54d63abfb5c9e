//! `promptctl init`: start a prompts repository that passes `check`, with the JSON Schemas
//! of its files wired into editors (YAML language server modelines, `.vscode/settings.json`,
//! Taplo's `#:schema` in promptctl.toml).

use std::path::{Path, PathBuf};

use clap::Args;

use super::{CliError, Context, exit};

/// Arguments of `promptctl init`.
#[derive(Debug, Args)]
pub struct InitArgs {
    /// Where to create the repository (default: the current folder).
    path: Option<PathBuf>,
}

const CONFIG: &str = r#"#:schema ./.promptctl/config.schema.json
# promptctl configuration; every key is optional.
prompts_dir = "prompts"
environments = "environments.yaml"
default_provider = "openai"

[providers.openai]
kind = "openai"
base_url = "https://api.openai.com/v1"
api_key_env = "OPENAI_API_KEY"   # the key is read from this variable, never from a file

[models."gpt-4o-mini"]
provider = "openai"
input_usd_per_mtok = 0.15
output_usd_per_mtok = 0.60

[test]
concurrency = 8
"#;

const ENVIRONMENTS: &str = r#"# yaml-language-server: $schema=.promptctl/environments.schema.json
# Which version and model each environment runs.
prompts:
  greeting:
    production: {version: latest, model: gpt-4o-mini}
    staging: {version: latest, model: gpt-4o-mini}
"#;

const EXAMPLE: &str = r#"# yaml-language-server: $schema=../../.promptctl/prompt.schema.json

description: Greets a user by name in their language.
model: gpt-4o-mini
parameters:
  temperature: 0.3
variables:
  user_name: {type: string, required: true}
  language: {type: string, default: English}
messages:
  - role: system
    content: |
      You are a friendly assistant. Answer in {{ language }}, in one sentence.
  - role: user
    content: "Say hello to {{ user_name }}."
tests:
  - name: greets by name
    vars: {user_name: Ada}
    assert:
      - {type: contains, value: Ada}
      - {type: safety_check}
"#;

const VSCODE_SETTINGS: &str = r#"{
  "yaml.schemas": {
    ".promptctl/prompt.schema.json": ["prompts/**/*.yaml", "prompts/**/*.yml"],
    ".promptctl/environments.schema.json": ["environments.yaml"]
  }
}
"#;

/// Runs `promptctl init`.
pub fn run(context: &Context, args: &InitArgs) -> Result<u8, CliError> {
    let root = match &args.path {
        Some(path) => context.directory.join(path),
        None => context.directory.clone(),
    };
    std::fs::create_dir_all(&root)
        .map_err(|err| CliError::input(format!("cannot create {}: {err}", root.display())))?;
    let schema =
        |value: serde_json::Value| serde_json::to_string_pretty(&value).unwrap_or_default() + "\n";
    let files: [(&str, String); 7] = [
        ("promptctl.toml", CONFIG.to_owned()),
        ("environments.yaml", ENVIRONMENTS.to_owned()),
        ("prompts/example/greeting.yaml", EXAMPLE.to_owned()),
        // The JSON Schemas editors validate against (`promptctl schema` prints them), and
        // VS Code's YAML extension wired to them; other editors read the modelines above.
        (
            ".promptctl/prompt.schema.json",
            schema(crate::schema::prompt_schema()),
        ),
        (
            ".promptctl/environments.schema.json",
            schema(crate::schema::environments_schema()),
        ),
        (
            ".promptctl/config.schema.json",
            schema(crate::schema::config_schema()),
        ),
        (".vscode/settings.json", VSCODE_SETTINGS.to_owned()),
    ];
    let mut written = Vec::new();
    let mut kept = Vec::new();
    for (relative, contents) in &files {
        let path = root.join(relative);
        if path.exists() {
            kept.push(*relative);
            continue;
        }
        write_file(&path, contents)?;
        written.push(*relative);
    }
    let output = &context.output;
    for relative in &written {
        output.note(&format!("created {relative}"));
    }
    for relative in &kept {
        output.note(&format!("kept existing {relative}"));
    }
    if !written.is_empty() {
        output
            .note("next: `promptctl check`, then `promptctl render greeting --var user_name=Ada`");
    }
    Ok(exit::SUCCESS)
}

fn write_file(path: &Path, contents: &str) -> Result<(), CliError> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .map_err(|err| CliError::input(format!("cannot create {}: {err}", parent.display())))?;
    }
    std::fs::write(path, contents)
        .map_err(|err| CliError::input(format!("cannot write {}: {err}", path.display())))
}
