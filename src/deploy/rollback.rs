//! `rollback`: version N's definition written back into the prompt's file (its current
//! tests, description and comments kept), tested, and committed as the next version with
//! an audit message. [`plan`] checks and computes the new file; [`Rollback::test`] runs the
//! prompt's tests against it; [`Rollback::commit`] writes and commits it (or puts the file
//! back). Nothing is written before the commit step.

use std::path::PathBuf;
use std::sync::Arc;

use super::{DeployError, Overwrite};
use crate::config::Config;
use crate::eval::{CaseResult, Keep, Run, TestJob, jobs_for, run_tests};
use crate::history::History;
use crate::providers::{Mode, Providers, Recordings};
use crate::render::Renderer;
use crate::repo::file::PROMPT_KEYS;
use crate::repo::{Definition, LoadedPrompt, PromptId, Snapshot};

/// The keys of a prompt file that make its definition; the rest is kept from the file.
const DEFINITION_KEYS: &[&str] = &["model", "parameters", "variables", "messages", "template"];

/// What a rollback would do.
#[derive(Debug)]
pub enum Plan {
    /// The latest version already has the definition asked for.
    Unchanged {
        /// The prompt.
        prompt: PromptId,
        /// Its latest version.
        latest: u32,
    },
    /// A new file, checked, ready to test and commit.
    Ready(Box<Rollback>),
}

/// A checked rollback, not written yet.
#[derive(Debug)]
pub struct Rollback {
    /// The prompt.
    pub prompt: PromptId,
    /// The version whose definition comes back.
    pub to: u32,
    /// The version it replaces.
    pub latest: u32,
    /// The commit that made version `to`.
    pub from_commit: Option<String>,
    /// The file on disk.
    file: PathBuf,
    /// Its text now.
    source: String,
    /// Its text after the rollback.
    text: String,
    /// The new file, loaded (what the tests run).
    candidate: LoadedPrompt,
    /// The partials its templates may include.
    partials: crate::repo::Partials,
}

/// Plans rolling `query` (`name` or `service/name`) back to version `to`: refuses an
/// archived prompt, a version it does not have and a file with uncommitted changes, and
/// checks that the new file parses to the same prompt with exactly version `to`'s
/// definition.
pub fn plan(
    config: &Config,
    history: &History,
    snapshot: &Snapshot,
    query: &str,
    to: u32,
) -> Result<Plan, DeployError> {
    let prompt = history.find(query).map_err(|error| DeployError::Lookup {
        error,
        unreadable: 0,
    })?;
    super::validate(prompt, crate::environments::VersionRef::Latest, false)?;
    let target = prompt
        .version(to)
        .ok_or_else(|| DeployError::NoSuchVersion {
            prompt: prompt.id.clone(),
            version: to,
            count: prompt.versions.len(),
        })?;
    let Some(latest) = prompt.latest() else {
        return Err(DeployError::NoVersion {
            prompt: prompt.id.clone(),
        });
    };
    let loaded = snapshot
        .find(&prompt.id.to_string())
        .map_err(|error| DeployError::Lookup {
            error,
            unreadable: snapshot.problems.len(),
        })?;
    let file = config.root.join(&loaded.path);
    super::refuse_uncommitted(&file, &loaded.path, Overwrite::Rollback)?;
    let definition = target.definition()?;
    if *definition == *latest.definition()? {
        return Ok(Plan::Unchanged {
            prompt: prompt.id.clone(),
            latest: latest.number,
        });
    }
    let text = rolled_back_text(&loaded.source, &definition);
    // The new file must be the same prompt with exactly version N's definition.
    let new_snapshot = Snapshot::from_files(
        &snapshot.prompts_dir,
        vec![(loaded.relative.clone(), text.clone().into_bytes())],
    );
    let candidate = new_snapshot
        .prompts
        .into_iter()
        .next()
        .filter(|p| p.id == loaded.id && p.definition.as_ref() == Some(&*definition))
        .ok_or_else(|| DeployError::Unwritable {
            version: to,
            path: loaded.path.clone(),
        })?;
    Ok(Plan::Ready(Box::new(Rollback {
        prompt: prompt.id.clone(),
        to,
        latest: latest.number,
        from_commit: target.commit.as_ref().map(|c| c.id.clone()),
        file,
        source: loaded.source.clone(),
        text,
        candidate,
        partials: snapshot.partials.clone(),
    })))
}

impl Rollback {
    /// The number the rolled-back definition gets.
    pub fn new_version(&self) -> u32 {
        self.latest + 1
    }

    /// `Roll back service/name to vN as vM`.
    pub fn subject(&self) -> String {
        format!(
            "Roll back {} to v{} as v{}",
            self.prompt,
            self.to,
            self.new_version()
        )
    }

    /// The prompt's tests, bound to the rolled-back definition; none is an error.
    pub fn jobs(&self, config: &Config) -> Result<Vec<TestJob<'_>>, DeployError> {
        let renderer = Arc::new(Renderer::new(self.partials.clone()));
        let jobs = jobs_for(&config.settings, &[&self.candidate], &renderer, None)?;
        if jobs.is_empty() {
            return Err(DeployError::NoTests {
                prompt: self.prompt.clone(),
                version: self.to,
            });
        }
        Ok(jobs)
    }

    /// Runs the prompt's tests against the rolled-back definition (answered from
    /// recordings only under [`Mode::Replay`]).
    pub async fn test(&self, config: &Config, mode: Mode) -> Result<Vec<CaseResult>, DeployError> {
        let jobs = self.jobs(config)?;
        let providers = Providers::new(
            &config.settings,
            Recordings {
                mode,
                dir: config.root.join(&config.settings.test.recordings),
            },
        );
        let concurrency = config.settings.test.concurrency.max(1);
        let run = Run {
            providers,
            concurrency,
            keep: Keep::Everything,
            on_done: Arc::new(|_: &CaseResult| {}),
        };
        Ok(run_tests(jobs, run).await)
    }

    /// Writes the file and commits it alone, the message naming the version restored,
    /// the one replaced and the tests (`passed`: how many passed; `None`: skipped). The
    /// file is put back when the commit fails. Returns the commit's id.
    pub fn commit(&self, passed: Option<usize>) -> Result<String, DeployError> {
        let from = self
            .from_commit
            .as_deref()
            .map(|id| format!(" (commit {})", id.get(..12).unwrap_or(id)))
            .unwrap_or_default();
        let tests = match passed {
            None => "Tests: skipped (--skip-tests).".to_owned(),
            Some(count) => format!("Tests: {count} passed."),
        };
        let message = format!(
            "{}\n\nRestores the definition of v{}{from}, replacing v{}.\n{tests}\n",
            self.subject(),
            self.to,
            self.latest
        );
        super::write_and_commit(&self.file, Some(&self.source), &self.text, &message)
    }
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
