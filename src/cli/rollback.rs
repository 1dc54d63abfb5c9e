//! `promptctl rollback PROMPT --to N`: write version N's definition back into the
//! prompt's file, keeping its current tests and description, run the tests against it, and
//! commit it as the next version with an audit message.
//!
//! Nothing is written unless the tests pass (or `--skip-tests` says not to run them), and
//! only the prompt's file is committed.

use std::sync::Arc;

use clap::Args;

use super::output::Format;
use super::{CliError, Context, exit};
use crate::diagnostic::display_path;
use crate::eval::report::{self, Summary};
use crate::eval::{CaseResult, run_tests};
use crate::providers::{Mode, Providers, Recordings};
use crate::render::Renderer;
use crate::repo::file::PROMPT_KEYS;
use crate::repo::{Definition, Snapshot};

/// Arguments of `promptctl rollback`.
#[derive(Debug, Args)]
pub struct RollbackArgs {
    /// The prompt: `name` or `service/name`.
    prompt: String,
    /// The version whose definition comes back.
    #[arg(long, value_name = "N")]
    to: u32,
    /// Commit without running the prompt's tests (the commit message says so).
    #[arg(long)]
    skip_tests: bool,
    /// Answer the tests from recordings only (see `promptctl test --replay`).
    #[arg(long)]
    replay: bool,
}

/// The keys of a prompt file that make its definition; the rest is kept from the file.
const DEFINITION_KEYS: &[&str] = &["model", "parameters", "variables", "messages", "template"];

/// Runs `promptctl rollback`.
pub fn run(context: &Context, args: &RollbackArgs) -> Result<u8, CliError> {
    if context.rev.is_some() {
        return Err(CliError::input(
            "rollback commits on the current branch; leave out --rev",
        ));
    }
    let config = context.config()?;
    let history = context.history(&config)?;
    let prompt = history.find(&args.prompt)?;
    if prompt.archived {
        return Err(CliError::input(format!(
            "{} is archived: no file defines it any more",
            prompt.id
        ))
        .hint("restore its file first"));
    }
    let target = prompt.version(args.to).ok_or_else(|| {
        CliError::input(format!(
            "{} has no version {}; its versions are 1 to {}",
            prompt.id,
            args.to,
            prompt.versions.len()
        ))
        .hint(format!("`promptctl log {}` lists them", prompt.id))
    })?;
    let Some(latest) = prompt.latest() else {
        return Err(CliError::input(format!("{} has no version", prompt.id)));
    };
    let snapshot = context.snapshot(&config)?;
    let loaded = super::find_prompt(&snapshot, &prompt.id.to_string())?;
    let full_path = config.root.join(&loaded.path);
    if crate::history::commit::has_changes(&full_path).map_err(super::pin::commit_error)? {
        return Err(CliError::input(format!(
            "{} has uncommitted changes; a rollback would overwrite them",
            display_path(&loaded.path)
        ))
        .hint("commit or discard them first"));
    }
    let output = &context.output;
    let target_definition = target.definition()?;
    if *target_definition == *latest.definition()? {
        let text = format!(
            "{} v{} already has the definition of v{}; nothing to roll back",
            prompt.id, latest.number, args.to
        );
        match output.format {
            Format::Json => output.json(&serde_json::json!({
                "prompt": prompt.id.to_string(), "changed": false, "version": latest.number,
            })),
            Format::Human => output.data(&text),
        }
        return Ok(exit::SUCCESS);
    }
    let text = rolled_back_text(&loaded.source, &target_definition);
    // The new file must be the same prompt with exactly version N's definition.
    let new_snapshot = Snapshot::from_files(
        &snapshot.prompts_dir,
        vec![(loaded.relative.clone(), text.clone().into_bytes())],
    );
    let new_prompt = new_snapshot
        .prompts
        .first()
        .filter(|p| p.id == loaded.id && p.definition.as_ref() == Some(&*target_definition))
        .ok_or_else(|| {
            CliError::input(format!(
                "cannot write v{}'s definition back into {}; the file is unchanged",
                args.to,
                display_path(&loaded.path)
            ))
            .hint("report this as a bug; `promptctl show` prints the old definition")
        })?;
    let new_number = latest.number + 1;
    let mut results: Vec<CaseResult> = Vec::new();
    if !args.skip_tests {
        let renderer = Arc::new(Renderer::new(snapshot.partials.clone()));
        let jobs = super::test::jobs_for(&config, &[new_prompt], &renderer, None)?;
        if jobs.is_empty() {
            return Err(CliError::input(format!(
                "{} has no tests to run against v{}",
                prompt.id, args.to
            ))
            .hint("add tests, or pass --skip-tests to roll back untested"));
        }
        let providers = Providers::new(
            &config.settings,
            Recordings {
                mode: if args.replay {
                    Mode::Replay
                } else {
                    Mode::Live
                },
                dir: config.root.join(&config.settings.test.recordings),
            },
        );
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|err| CliError::external(format!("cannot start the async runtime: {err}")))?;
        let concurrency = config.settings.test.concurrency.max(1);
        results = runtime.block_on(run_tests(
            jobs,
            providers,
            concurrency,
            Arc::new(|_: &CaseResult| {}),
        ));
        let summary = Summary::of(&results);
        let refused = summary.provider_errors + summary.input_errors + summary.failed > 0;
        if refused {
            let code = if summary.provider_errors > 0 {
                exit::EXTERNAL
            } else if summary.input_errors > 0 {
                exit::BAD_INPUT
            } else {
                exit::FAILED
            };
            match output.format {
                Format::Json => output.json(&serde_json::json!({
                    "prompt": prompt.id.to_string(),
                    "to": args.to,
                    "changed": false,
                    "refused": "tests did not pass",
                    "summary": summary,
                    "results": results,
                })),
                Format::Human => {
                    let color = output.stdout_colored();
                    let mut text = report::result_table(&results, color);
                    text.push_str(&report::failure_details(&results, color));
                    output.data(&text);
                }
            }
            output.error(
                &format!(
                    "rollback of {} to v{} refused: its tests do not pass; nothing was written",
                    prompt.id, args.to
                ),
                &[
                    "`promptctl test` shows the same results; --skip-tests rolls back untested"
                        .to_owned(),
                ],
            );
            return Ok(code);
        }
    }
    super::pin::write_atomically(&full_path, &text)?;
    let subject = format!("Roll back {} to v{} as v{new_number}", prompt.id, args.to);
    let from = target
        .commit
        .as_ref()
        .map(|c| format!(" (commit {})", super::short(&c.id)))
        .unwrap_or_default();
    let tests = if args.skip_tests {
        "Tests: skipped (--skip-tests).".to_owned()
    } else {
        format!("Tests: {} passed.", results.len())
    };
    let message = format!(
        "{subject}\n\nRestores the definition of v{}{from}, replacing v{}.\n{tests}\n",
        args.to, latest.number
    );
    let commit = match crate::history::commit::commit_file(&full_path, &message) {
        Ok(commit) => commit,
        Err(err) => {
            // Leave the file as it was: a rollback either lands as a commit or not at all.
            let _ = super::pin::write_atomically(&full_path, &loaded.source);
            return Err(super::pin::commit_error(err));
        }
    };
    match output.format {
        Format::Json => output.json(&serde_json::json!({
            "prompt": prompt.id.to_string(),
            "to": args.to,
            "version": new_number,
            "changed": true,
            "commit": commit,
            "tests_skipped": args.skip_tests,
            "results": results,
        })),
        Format::Human => {
            let mut text = String::new();
            if !results.is_empty() {
                text.push_str(&report::result_table(&results, output.stdout_colored()));
                text.push('\n');
            }
            text.push_str(&format!("{subject}: committed {}", super::short(&commit)));
            output.data(&text);
        }
    }
    Ok(exit::SUCCESS)
}

/// The prompt file `source` with its definition replaced by `definition`: the definition's
/// keys are written anew (in canonical order), every other top-level block (name, service,
/// description, monitor, tests, leading comments) is kept verbatim.
pub fn rolled_back_text(source: &str, definition: &Definition) -> String {
    let kept = top_level_blocks(source);
    let fresh = top_level_blocks(&definition.to_yaml());
    let mut out = String::new();
    if let Some((_, header)) = kept.iter().find(|(key, _)| key.is_empty()) {
        out.push_str(header);
    }
    for key in PROMPT_KEYS {
        let from = if DEFINITION_KEYS.contains(key) {
            &fresh
        } else {
            &kept
        };
        if let Some((_, block)) = from.iter().find(|(k, _)| k == key) {
            out.push_str(block);
            if !out.ends_with('\n') {
                out.push('\n');
            }
        }
    }
    out
}

/// The file cut at its top-level keys: (key, text from the key's line to the next key's),
/// with an empty key for what comes before the first one.
fn top_level_blocks(source: &str) -> Vec<(String, String)> {
    let mut blocks: Vec<(String, String)> = vec![(String::new(), String::new())];
    // Comments and blank lines just above a key belong to that key.
    let mut pending = String::new();
    for line in source.split_inclusive('\n') {
        let trimmed = line.trim();
        if blocks.len() > 1 && (trimmed.is_empty() || line.starts_with('#')) {
            pending.push_str(line);
            continue;
        }
        let starts_key = line
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '"' || c == '\'');
        let key = starts_key
            .then(|| {
                line.split_once(':')
                    .map(|(k, _)| k.trim().trim_matches(['"', '\'']))
            })
            .flatten();
        match key {
            Some(key) => blocks.push((key.to_owned(), std::mem::take(&mut pending) + line)),
            None => {
                if let Some(last) = blocks.last_mut() {
                    last.1.push_str(&std::mem::take(&mut pending));
                    last.1.push_str(line);
                }
            }
        }
    }
    if let Some(last) = blocks.last_mut() {
        last.1.push_str(&pending);
    }
    blocks
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::file::parse_prompt;

    #[test]
    fn keeps_description_and_tests_and_replaces_the_definition() {
        let current = "# support replies\nname: reply\ndescription: |\n  Answers customers.\nmodel: gpt-4o\nparameters: {temperature: 0.1}\ntemplate: \"new {{ x }}\"\nvariables:\n  x: {type: string}\n# the tests\ntests:\n  - name: t\n    vars: {x: a}\n    assert: [{type: contains, value: a}]\n";
        let old = Definition::of(
            &parse_prompt(
                std::path::Path::new("p.yaml"),
                "model: gpt-4o-mini\ntemplate: |\n  old {{ x }}\nvariables: {x: {type: string}}\n",
            )
            .expect("parses"),
        )
        .expect("complete");
        let text = rolled_back_text(current, &old);
        assert!(text.starts_with("# support replies\nname: reply\ndescription: |\n  Answers customers.\nmodel: gpt-4o-mini\n"), "{text}");
        assert!(text.ends_with("# the tests\ntests:\n  - name: t\n    vars: {x: a}\n    assert: [{type: contains, value: a}]\n"), "{text}");
        let file = parse_prompt(std::path::Path::new("p.yaml"), &text).expect("parses");
        assert_eq!(Definition::of(&file), Some(old));
        assert_eq!(file.tests.expect("tests").value.len(), 1);
    }
}
