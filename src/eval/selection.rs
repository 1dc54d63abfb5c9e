//! Which tests a CI run executes, and what a change did to the prompts.
//!
//! - [`changed_prompts`]: the prompts a change affects, comparing two snapshots (the base of
//!   a pull request and the working tree): a new prompt, a changed definition or tests, or a
//!   changed partial that the prompt includes, directly or through another partial.
//! - [`Shard`]: splits the selected tests deterministically across N jobs of a matrix.
//! - [`Coverage`]: the share of prompts with at least one test, for the coverage gate.
//! - [`VersionChange`] and [`rendered_diffs`]: what the report shows for a changed prompt.
//!
//! Nothing here reads Git or calls a model; the snapshots and the history come in.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::Serialize;

use crate::history::History;
use crate::render::{Renderer, find_includes};
use crate::repo::{Definition, LoadedPrompt, Partials, PromptId, Snapshot};

/// Why a prompt counts as changed.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "partial")]
pub enum ChangeReason {
    /// The prompt does not exist at the base.
    New,
    /// Its definition (what reaches the model) differs.
    Definition,
    /// Its test cases differ.
    Tests,
    /// A partial it includes (directly or through another partial) differs; its path
    /// relative to the prompts folder.
    Partial(String),
}

impl fmt::Display for ChangeReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ChangeReason::New => f.write_str("new prompt"),
            ChangeReason::Definition => f.write_str("definition"),
            ChangeReason::Tests => f.write_str("tests"),
            ChangeReason::Partial(path) => write!(f, "partial {path}"),
        }
    }
}

/// A prompt a change affects, and why.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChangedPrompt {
    /// The prompt.
    pub id: PromptId,
    /// Every reason, in order: new, definition, tests, partials.
    pub reasons: Vec<ChangeReason>,
}

/// What a change does to the prompts between `base` and `head`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Changes {
    /// Prompts of `head` that the change affects, sorted by identity.
    pub changed: Vec<ChangedPrompt>,
    /// Prompts of `base` that `head` no longer has (they are not tested).
    pub deleted: Vec<PromptId>,
    /// Prompts of `base` whose file in `head` does not parse (`check` says why).
    pub unreadable: Vec<PromptId>,
}

impl Changes {
    /// Whether `id` is affected.
    pub fn contains(&self, id: &PromptId) -> bool {
        self.changed.iter().any(|c| &c.id == id)
    }
}

/// The test cases of a prompt as canonical JSON (names, variables, assertions), so that
/// re-formatting the file is no change.
pub fn tests_json(prompt: &LoadedPrompt) -> String {
    let tests: Vec<serde_json::Value> = prompt
        .file
        .tests
        .iter()
        .flat_map(|tests| tests.value.iter())
        .map(|test| {
            serde_json::json!({
                "name": test.value.name,
                "vars": test.value.vars,
                "assert": test.value.assert.iter().map(|a| &a.value).collect::<Vec<_>>(),
            })
        })
        .collect();
    serde_json::Value::Array(tests).to_string()
}

/// The partials `definition` includes, directly or through other partials (literal include
/// paths only; a partial that does not exist is part of the closure too, so that adding it
/// counts as a change).
pub fn include_closure(definition: &Definition, partials: &Partials) -> BTreeSet<String> {
    let mut seen = BTreeSet::new();
    let mut queue: Vec<String> = definition
        .body
        .messages()
        .iter()
        .flat_map(|(_, source)| find_includes(source))
        .map(|include| include.target)
        .collect();
    while let Some(name) = queue.pop() {
        if !seen.insert(name.clone()) {
            continue;
        }
        if let Some(text) = partials.get(&name) {
            queue.extend(find_includes(text).into_iter().map(|i| i.target));
        }
    }
    seen
}

/// The prompts of `head` that differ from `base`: new, a different definition or tests, or
/// a partial in their include closure that differs (in either tree's closure). Prompts are
/// matched by identity, so a moved file is not a change by itself.
pub fn changed_prompts(base: &Snapshot, head: &Snapshot) -> Changes {
    let base_by_id: BTreeMap<&PromptId, &LoadedPrompt> = base
        .prompts
        .iter()
        .filter_map(|p| Some((p.id.as_ref()?, p)))
        .collect();
    let mut changed = Vec::new();
    let mut seen = BTreeSet::new();
    for prompt in &head.prompts {
        let Some(id) = &prompt.id else { continue };
        seen.insert(id);
        let mut reasons = Vec::new();
        let Some(before) = base_by_id.get(id) else {
            changed.push(ChangedPrompt {
                id: id.clone(),
                reasons: vec![ChangeReason::New],
            });
            continue;
        };
        let json = |p: &LoadedPrompt| p.definition.as_ref().map(Definition::canonical_json);
        if json(prompt) != json(before) {
            reasons.push(ChangeReason::Definition);
        }
        if tests_json(prompt) != tests_json(before) {
            reasons.push(ChangeReason::Tests);
        }
        let mut closure = BTreeSet::new();
        if let Some(definition) = &prompt.definition {
            closure.extend(include_closure(definition, &head.partials));
        }
        if let Some(definition) = &before.definition {
            closure.extend(include_closure(definition, &base.partials));
        }
        for partial in closure {
            if head.partials.get(&partial) != base.partials.get(&partial) {
                reasons.push(ChangeReason::Partial(partial));
            }
        }
        if !reasons.is_empty() {
            changed.push(ChangedPrompt {
                id: id.clone(),
                reasons,
            });
        }
    }
    changed.sort_by(|a, b| a.id.cmp(&b.id));
    let broken: BTreeSet<&std::path::Path> =
        head.problems.iter().map(|d| d.path.as_path()).collect();
    let (unreadable, deleted): (Vec<_>, Vec<_>) = base_by_id
        .iter()
        .filter(|(id, _)| !seen.contains(*id))
        .partition(|(_, prompt)| broken.contains(prompt.path.as_path()));
    Changes {
        changed,
        deleted: deleted.into_iter().map(|(id, _)| (*id).clone()).collect(),
        unreadable: unreadable
            .into_iter()
            .map(|(id, _)| (*id).clone())
            .collect(),
    }
}

/// Shard `index` (1-based) of `count`: `--shard 2/3`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Shard {
    /// Which shard, 1 to `count`.
    pub index: usize,
    /// How many shards.
    pub count: usize,
}

impl FromStr for Shard {
    type Err = String;

    fn from_str(text: &str) -> Result<Shard, String> {
        let bad = || format!("`{text}` is not a shard: write K/N with 1 ≤ K ≤ N, e.g. 2/3");
        let (index, count) = text.split_once('/').ok_or_else(bad)?;
        let index: usize = index.trim().parse().map_err(|_| bad())?;
        let count: usize = count.trim().parse().map_err(|_| bad())?;
        if index == 0 || count == 0 || index > count {
            return Err(bad());
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

/// A label's place in the deal: FNV-1a, stable across runs, platforms and Rust versions.
fn fnv1a(text: &str) -> u64 {
    crate::fnv::fnv1a(text.bytes())
}

impl Shard {
    /// Which of `labels` (one per test, e.g. `service/name › test`) fall in this shard, as a
    /// mask in the same order. The tests are ordered by a stable hash of their label (ties
    /// by label, then position) and dealt round-robin: every shard gets its share, each
    /// test exactly one shard, and the same labels always deal the same way.
    pub fn select(&self, labels: &[String]) -> Vec<bool> {
        let mut order: Vec<usize> = (0..labels.len()).collect();
        order.sort_by(|&a, &b| {
            (fnv1a(&labels[a]), &labels[a], a).cmp(&(fnv1a(&labels[b]), &labels[b], b))
        });
        let mut mask = vec![false; labels.len()];
        for (position, &job) in order.iter().enumerate() {
            mask[job] = position % self.count == self.index - 1;
        }
        mask
    }
}

/// The share of prompts with at least one test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Coverage {
    /// Prompts (with an identity) in the tree.
    pub prompts: usize,
    /// Of them, those with at least one test.
    pub tested: usize,
    /// The others, as `service/name`, sorted.
    pub untested: Vec<String>,
    /// The share required (`[test] min_coverage`).
    pub minimum: f64,
}

impl Coverage {
    /// The coverage of every prompt of `snapshot` against `minimum`. A prompt file that
    /// could not be loaded counts as a prompt without tests, named by its path.
    pub fn of(snapshot: &Snapshot, minimum: f64) -> Coverage {
        let mut coverage = Coverage {
            prompts: 0,
            tested: 0,
            untested: Vec::new(),
            minimum,
        };
        for prompt in &snapshot.prompts {
            let Some(id) = &prompt.id else { continue };
            coverage.prompts += 1;
            if prompt
                .file
                .tests
                .as_ref()
                .is_some_and(|t| !t.value.is_empty())
            {
                coverage.tested += 1;
            } else {
                coverage.untested.push(id.to_string());
            }
        }
        let unloadable: BTreeSet<&std::path::Path> = snapshot
            .problems
            .iter()
            .map(|problem| problem.path.as_path())
            .filter(|path| {
                let relative = path.strip_prefix(&snapshot.prompts_dir).unwrap_or(path);
                crate::repo::FileKind::of(relative) == Some(crate::repo::FileKind::Prompt)
            })
            .collect();
        for path in unloadable {
            coverage.prompts += 1;
            coverage
                .untested
                .push(crate::diagnostic::display_path(path));
        }
        coverage.untested.sort();
        coverage
    }

    /// The share of prompts with tests, 1.0 when there are no prompts.
    pub fn ratio(&self) -> f64 {
        if self.prompts == 0 {
            1.0
        } else {
            self.tested as f64 / self.prompts as f64
        }
    }

    /// Whether the share reaches the minimum (with a little room for rounding).
    pub fn passes(&self) -> bool {
        self.ratio() + 1e-9 >= self.minimum
    }

    /// `10/11 prompts have tests (91%, minimum 100%)`.
    pub fn describe(&self) -> String {
        format!(
            "{}/{} prompt{} {} tests ({:.0}%, minimum {:.0}%)",
            self.tested,
            self.prompts,
            if self.prompts == 1 { "" } else { "s" },
            if self.prompts == 1 { "has" } else { "have" },
            self.ratio() * 100.0,
            self.minimum * 100.0
        )
    }
}

/// How a change moves a prompt's version.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum VersionChange {
    /// No version at the base: merging makes version 1.
    New,
    /// The definition differs from the base's latest version: merging makes the next one.
    Next {
        /// The base's latest version.
        from: u32,
        /// The version merging makes.
        to: u32,
    },
    /// The definition equals the base's latest version (only tests or partials changed).
    Same {
        /// The base's latest version.
        version: u32,
    },
}

impl fmt::Display for VersionChange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VersionChange::New => f.write_str("new (v1)"),
            VersionChange::Next { from, to } => write!(f, "v{from} → v{to}"),
            VersionChange::Same { version } => write!(f, "v{version} (unchanged)"),
        }
    }
}

/// The version change of prompt `id`, whose definition is now `definition`, against the
/// history read at the base commit. A pull request merged into the base is one version,
/// however many commits it has (SPEC section 2), so the next version is the base's plus one.
pub fn version_change(base: &History, id: &PromptId, definition: &Definition) -> VersionChange {
    match base.prompts.get(id).and_then(|p| p.latest()) {
        None => VersionChange::New,
        Some(latest) if latest.definition().ok().as_deref() == Some(definition) => {
            VersionChange::Same {
                version: latest.number,
            }
        }
        Some(latest) => VersionChange::Next {
            from: latest.number,
            to: latest.number + 1,
        },
    }
}

/// The rendered messages of one test case before and after a change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RenderDiff {
    /// The test whose variables were used.
    pub test: String,
    /// A unified diff of the rendered messages (empty when they are equal).
    pub diff: String,
}

/// Rendered messages as text: each message under a `[role]` line.
pub fn messages_text(messages: &[crate::render::RenderedMessage]) -> String {
    let mut text = String::new();
    for message in messages {
        text.push_str(&format!("[{}]\n{}", message.role.as_str(), message.content));
        if !message.content.ends_with('\n') {
            text.push('\n');
        }
    }
    text
}

/// For each test of `head` (a changed prompt, rendered with the working tree's partials),
/// a unified diff of its rendered messages against the same variables rendered with the
/// `base` prompt and the base's partials (`None`: a new prompt, diffed against nothing).
/// A side that does not render shows its error instead of messages. Only the first `limit`
/// tests are rendered.
pub fn rendered_diffs(
    base: Option<(&Definition, &Renderer)>,
    head: (&Definition, &Renderer),
    prompt: &LoadedPrompt,
    limit: usize,
) -> Vec<RenderDiff> {
    let render = |definition: &Definition, renderer: &Renderer, vars| match renderer
        .render(definition, vars)
    {
        Ok(messages) => messages_text(&messages),
        Err(err) => format!("(does not render: {err})\n"),
    };
    prompt
        .file
        .tests
        .iter()
        .flat_map(|tests| tests.value.iter())
        .take(limit)
        .map(|test| {
            let vars = &test.value.vars;
            let before = base.map_or_else(String::new, |(d, r)| render(d, r, vars));
            let after = render(head.0, head.1, vars);
            let diff = if before == after {
                String::new()
            } else {
                similar::TextDiff::from_lines(&before, &after)
                    .unified_diff()
                    .context_radius(3)
                    .header("base", "head")
                    .to_string()
            };
            RenderDiff {
                test: test
                    .value
                    .name
                    .clone()
                    .unwrap_or_else(|| format!("test at line {}", test.referenced.line())),
                diff,
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    fn snapshot(files: &[(&str, &str)]) -> Snapshot {
        Snapshot::from_files(
            Path::new("prompts"),
            files
                .iter()
                .map(|(path, text)| (PathBuf::from(path), text.as_bytes().to_vec()))
                .collect(),
        )
    }

    const A: &str = "model: m\ntemplate: 'A {% include \"s/_p/outer.j2\" %}'\ntests:\n  - name: t\n    assert: [{type: contains, value: x}]\n";
    const B: &str =
        "model: m\ntemplate: B\ntests:\n  - name: t\n    assert: [{type: contains, value: x}]\n";

    #[test]
    fn partials_count_through_other_partials() {
        let base = snapshot(&[
            ("s/a.yaml", A),
            ("s/b.yaml", B),
            ("s/_p/outer.j2", "{% include 's/_p/inner.j2' %}"),
            ("s/_p/inner.j2", "old"),
        ]);
        let head = snapshot(&[
            ("s/a.yaml", A),
            ("s/b.yaml", B),
            ("s/_p/outer.j2", "{% include 's/_p/inner.j2' %}"),
            ("s/_p/inner.j2", "new"),
        ]);
        let changes = changed_prompts(&base, &head);
        assert_eq!(
            changes.changed,
            vec![ChangedPrompt {
                id: PromptId::new("s", "a"),
                reasons: vec![ChangeReason::Partial("s/_p/inner.j2".into())],
            }]
        );
    }

    #[test]
    fn formatting_is_no_change_but_tests_and_new_prompts_are() {
        let base = snapshot(&[("s/a.yaml", B), ("s/gone.yaml", B)]);
        let reformatted = B.replace("template: B", "template:   \"B\"  # same");
        let with_tests = B.replace("value: x", "value: y");
        let head = snapshot(&[
            ("s/a.yaml", &reformatted),
            ("s/c.yaml", B),
            ("t/a.yaml", &with_tests),
        ]);
        let changes = changed_prompts(&base, &head);
        let summary: Vec<(String, Vec<ChangeReason>)> = changes
            .changed
            .iter()
            .map(|c| (c.id.to_string(), c.reasons.clone()))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("s/c".to_owned(), vec![ChangeReason::New]),
                ("t/a".to_owned(), vec![ChangeReason::New]),
            ]
        );
        assert_eq!(changes.deleted, vec![PromptId::new("s", "gone")]);
        let broken = snapshot(&[("s/a.yaml", B), ("s/gone.yaml", "model: [")]);
        let changes = changed_prompts(&base, &broken);
        assert_eq!(changes.unreadable, vec![PromptId::new("s", "gone")]);
        assert!(changes.deleted.is_empty());
        let head = snapshot(&[("s/a.yaml", &with_tests), ("s/gone.yaml", B)]);
        assert_eq!(
            changed_prompts(&base, &head).changed[0].reasons,
            vec![ChangeReason::Tests]
        );
    }

    #[test]
    fn shards_cover_every_test_once_and_are_balanced() {
        let labels: Vec<String> = (0..10).map(|i| format!("s/p › test {i}")).collect();
        let shards: Vec<Vec<bool>> = (1..=3)
            .map(|index| Shard { index, count: 3 }.select(&labels))
            .collect();
        for job in 0..labels.len() {
            assert_eq!(shards.iter().filter(|mask| mask[job]).count(), 1);
        }
        let sizes: Vec<usize> = shards
            .iter()
            .map(|mask| mask.iter().filter(|x| **x).count())
            .collect();
        assert_eq!(sizes.iter().sum::<usize>(), 10);
        assert!(
            sizes.iter().all(|&size| (3..=4).contains(&size)),
            "{sizes:?}"
        );
        assert_eq!(Shard { index: 2, count: 3 }.select(&labels), shards[1]);
    }

    #[test]
    fn shard_parses_k_of_n() {
        assert_eq!("2/3".parse(), Ok(Shard { index: 2, count: 3 }));
        for bad in ["0/3", "4/3", "3", "a/b", "1/0"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }

    #[test]
    fn coverage_names_untested_prompts() {
        let untested = "model: m\ntemplate: x\n";
        let coverage = Coverage::of(&snapshot(&[("s/a.yaml", B), ("s/b.yaml", untested)]), 1.0);
        assert_eq!(coverage.untested, vec!["s/b".to_owned()]);
        assert!(!coverage.passes());
        assert_eq!(
            coverage.describe(),
            "1/2 prompts have tests (50%, minimum 100%)"
        );
        assert!(
            Coverage {
                minimum: 0.5,
                ..coverage
            }
            .passes()
        );
    }
}
