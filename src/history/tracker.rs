//! The numbering rule of SPEC section 2, applied one commit at a time.
//!
//! The tracker knows nothing of Git: the walk hands it, commit by commit oldest first, the
//! prompt files that changed with their parsed content, and the tracker keeps which file
//! stands for which identity and each prompt's versions. This is where the rule lives:
//!
//! - a prompt's definition at a commit is that of the first file by path that stands for
//!   its identity and has a complete definition;
//! - version 1 is the first commit where it has one; each later commit whose definition
//!   differs from the latest version's makes the next version;
//! - a prompt no file stands for any more is archived; when a file stands for it again it
//!   is live again, with a new version only if its definition differs from its latest;
//! - a file that does not parse (or parses without a model and a template) is reported,
//!   and the prompt its path stood for is *unchanged* at that commit, not archived: a
//!   broken edit must not look like a deletion. (Version numbers come out the same as if
//!   it had been skipped altogether, since neither archiving nor a return with an equal
//!   definition makes a version; only the `archived` flag in between differs.)

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use git2::Oid;

use super::{CommitInfo, Problem, PromptHistory, StoredDefinition, Version};
use crate::diagnostic::{Diagnostic, Position};
use crate::repo::PromptId;

/// What one blob says, parsed once whatever path and commit it appears at.
#[derive(Debug)]
pub(crate) struct ParsedBlob {
    /// The explicit `name:`, if any.
    pub name: Option<String>,
    /// The explicit `service:`, if any.
    pub service: Option<String>,
    /// The definition, or why there is none.
    pub outcome: Outcome,
}

/// What parsing a blob gave.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// A complete definition.
    Complete(Arc<StoredDefinition>),
    /// The file parses but lacks a model or a template.
    Incomplete,
    /// The file does not parse.
    Failed(Diagnostic),
}

impl ParsedBlob {
    /// A file that could not be read, for the reason `diagnostic` gives.
    pub fn failed(diagnostic: Diagnostic) -> ParsedBlob {
        ParsedBlob {
            name: None,
            service: None,
            outcome: Outcome::Failed(diagnostic),
        }
    }

    /// Parses the bytes of `blob`; `path` (relative to the project root) names it in
    /// problems.
    pub fn parse(path: &Path, blob: Oid, bytes: &[u8]) -> ParsedBlob {
        match crate::repo::plain_yaml::read_or_parse(path, bytes) {
            Ok(file) => ParsedBlob {
                outcome: match file.definition {
                    Some(definition) => {
                        Outcome::Complete(Arc::new(StoredDefinition::parsed(blob, definition)))
                    }
                    None => Outcome::Incomplete,
                },
                name: file.name,
                service: file.service,
            },
            Err(diagnostic) => ParsedBlob::failed(diagnostic),
        }
    }
}

/// One prompt file at the current commit.
#[derive(Debug, Clone)]
pub(crate) struct FileEntry {
    /// Its blob.
    pub blob: Oid,
    /// The blob, parsed.
    pub parsed: Arc<ParsedBlob>,
    /// The identity this path stands for at the current commit.
    pub claims: Option<PromptId>,
}

/// A prompt file that changed at a commit: its path relative to the prompts folder (forward
/// slashes) and its new blob, `None` when it was deleted.
#[derive(Debug)]
pub(crate) struct Change {
    /// Relative to the prompts folder.
    pub path: String,
    /// The new content.
    pub new: Option<(Oid, Arc<ParsedBlob>)>,
}

/// The state of the walk after some commit.
#[derive(Debug, Clone, Default)]
pub(crate) struct Tracker {
    /// The prompts folder relative to the project root, to name files in problems.
    pub prompts_dir: PathBuf,
    /// Every prompt file, by path relative to the prompts folder.
    pub files: HashMap<String, FileEntry>,
    /// The paths standing for each identity.
    pub claims: HashMap<PromptId, BTreeSet<String>>,
    /// Every prompt that ever had a version.
    pub prompts: BTreeMap<PromptId, PromptHistory>,
    /// Files that could not be read, per commit.
    pub problems: Vec<Problem>,
}

impl Tracker {
    /// A tracker before the first commit.
    pub fn new(prompts_dir: &Path) -> Tracker {
        Tracker {
            prompts_dir: prompts_dir.to_path_buf(),
            ..Tracker::default()
        }
    }

    /// Applies one commit's changes (`commit` is `None` for the working tree).
    pub fn apply(&mut self, commit: Option<&Arc<CommitInfo>>, changes: Vec<Change>) {
        let mut affected: BTreeSet<PromptId> = BTreeSet::new();
        for change in changes {
            let old_claim = self
                .files
                .remove(&change.path)
                .and_then(|entry| entry.claims);
            if let Some(id) = &old_claim {
                if let Some(paths) = self.claims.get_mut(id) {
                    paths.remove(&change.path);
                    if paths.is_empty() {
                        self.claims.remove(id);
                    }
                }
                affected.insert(id.clone());
            }
            let Some((blob, parsed)) = change.new else {
                continue;
            };
            let relative = Path::new(&change.path);
            let path = self.prompts_dir.join(relative);
            let claims = match &parsed.outcome {
                Outcome::Failed(diagnostic) => {
                    let mut diagnostic = diagnostic.clone();
                    diagnostic.path.clone_from(&path);
                    self.report(commit, diagnostic);
                    old_claim
                }
                Outcome::Incomplete | Outcome::Complete(_) => {
                    let id = PromptId::from_parts(
                        parsed.name.as_deref(),
                        parsed.service.as_deref(),
                        relative,
                    );
                    if id.is_none() {
                        self.report(
                            commit,
                            Diagnostic::error(
                                "no-service",
                                &path,
                                Position::start(),
                                "prompt file sits directly in the prompts folder and sets no `service`",
                            )
                            .with_help("move it into a service folder or set `service:`"),
                        );
                    } else if matches!(parsed.outcome, Outcome::Incomplete) {
                        self.report(
                            commit,
                            Diagnostic::error(
                                "incomplete-definition",
                                &path,
                                Position::start(),
                                "prompt file has no `model` or no `template`/`messages`; it makes no version",
                            ),
                        );
                    }
                    id
                }
            };
            if let Some(id) = &claims {
                self.claims
                    .entry(id.clone())
                    .or_default()
                    .insert(change.path.clone());
                affected.insert(id.clone());
            }
            self.files.insert(
                change.path,
                FileEntry {
                    blob,
                    parsed,
                    claims,
                },
            );
        }
        for id in affected {
            self.settle(commit, &id);
        }
    }

    fn report(&mut self, commit: Option<&Arc<CommitInfo>>, diagnostic: Diagnostic) {
        self.problems.push(Problem {
            commit: commit.map(|commit| commit.id.clone()),
            diagnostic,
        });
    }

    /// Decides what a commit did to one identity whose files changed.
    fn settle(&mut self, commit: Option<&Arc<CommitInfo>>, id: &PromptId) {
        let Some(paths) = self.claims.get(id) else {
            if let Some(prompt) = self.prompts.get_mut(id) {
                prompt.archived = true;
            }
            return;
        };
        let mut complete =
            paths
                .iter()
                .filter_map(|path| match &self.files.get(path)?.parsed.outcome {
                    Outcome::Complete(definition) => Some((path.clone(), definition.clone())),
                    _ => None,
                });
        let first = complete.next();
        let duplicates: Vec<String> = complete.map(|(path, _)| path).collect();
        if let Some((kept, _)) = &first {
            for duplicate in duplicates {
                let diagnostic = Diagnostic::error(
                    "duplicate-identity",
                    self.prompts_dir.join(&duplicate),
                    Position::start(),
                    format!(
                        "prompt {id} is also defined in {}; that file is kept and this one ignored",
                        crate::diagnostic::display_path(&self.prompts_dir.join(kept))
                    ),
                )
                .with_help("give one of them another `name:`, or remove one");
                self.report(commit, diagnostic);
            }
        }
        match (first, self.prompts.get_mut(id)) {
            (None, None) => {}
            (None, Some(prompt)) => prompt.archived = false,
            (Some((path, definition)), existing) => {
                let path = self.prompts_dir.join(&path);
                let prompt = match existing {
                    Some(prompt) => prompt,
                    None => self
                        .prompts
                        .entry(id.clone())
                        .or_insert_with(|| PromptHistory {
                            id: id.clone(),
                            versions: Vec::new(),
                            archived: false,
                            path: path.clone(),
                        }),
                };
                prompt.archived = false;
                prompt.path.clone_from(&path);
                let changed = prompt
                    .versions
                    .last()
                    .is_none_or(|latest| latest.definition.digest != definition.digest);
                if changed {
                    let number = u32::try_from(prompt.versions.len() + 1).unwrap_or(u32::MAX);
                    prompt.versions.push(Version {
                        number,
                        commit: commit.cloned(),
                        definition,
                        path,
                    });
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn blob(text: &str) -> (Oid, Arc<ParsedBlob>) {
        let oid = Oid::hash_object(git2::ObjectType::Blob, text.as_bytes()).expect("hash");
        (
            oid,
            Arc::new(ParsedBlob::parse(
                Path::new("prompts/x.yaml"),
                oid,
                text.as_bytes(),
            )),
        )
    }

    fn commit(n: u32) -> Arc<CommitInfo> {
        Arc::new(CommitInfo {
            id: format!("{n:040}"),
            time: i64::from(n),
            offset_minutes: 0,
            author_name: "a".into(),
            author_email: "a@x".into(),
            message: format!("c{n}"),
        })
    }

    fn put(path: &str, text: &str) -> Change {
        Change {
            path: path.into(),
            new: Some(blob(text)),
        }
    }

    fn delete(path: &str) -> Change {
        Change {
            path: path.into(),
            new: None,
        }
    }

    fn numbers(tracker: &Tracker, service: &str, name: &str) -> Vec<String> {
        tracker
            .prompts
            .get(&PromptId::new(service, name))
            .map(|prompt| {
                prompt
                    .versions
                    .iter()
                    .map(|v| format!("{}@{}", v.number, v.commit.as_ref().map_or(0, |c| c.time)))
                    .collect()
            })
            .unwrap_or_default()
    }

    fn tracker() -> Tracker {
        Tracker::new(Path::new("prompts"))
    }

    /// A tracker whose first commit (time 1) adds `s/p.yaml` as [`A`].
    fn tracker_after_a() -> Tracker {
        let mut t = tracker();
        t.edit_p(&[(1, A)]);
        t
    }

    /// The prompt `s/p`.
    fn prompt_p(t: &Tracker) -> &PromptHistory {
        &t.prompts[&PromptId::new("s", "p")]
    }

    impl Tracker {
        /// Applies the changes of commit `n` (its time: `n`).
        fn commit(&mut self, n: u32, changes: Vec<Change>) {
            self.apply(Some(&commit(n)), changes);
        }

        /// Commits each `(n, text)` in order: commit `n` writes `text` to `s/p.yaml`.
        fn edit_p(&mut self, edits: &[(u32, &str)]) {
            for (n, text) in edits {
                self.commit(*n, vec![put("s/p.yaml", text)]);
            }
        }
    }

    const A: &str = "model: m\ntemplate: hi\n";
    const A_REFORMATTED: &str =
        "# note\ntemplate: \"hi\"\ndescription: d\nmodel: m\ntests: [{name: t}]\n";
    const B: &str = "model: m\ntemplate: bye\n";

    #[test]
    fn formatting_makes_no_version_and_edits_do() {
        let mut t = tracker_after_a();
        t.edit_p(&[(2, A_REFORMATTED), (3, B)]);
        assert_eq!(numbers(&t, "s", "p"), ["1@1", "2@3"]);
    }

    #[test]
    fn a_move_keeps_versions_and_deletion_archives_then_restores() {
        let mut t = tracker_after_a();
        t.commit(2, vec![delete("s/p.yaml"), put("s/sub/p.yaml", A)]);
        assert_eq!(numbers(&t, "s", "p"), ["1@1"]);
        assert_eq!(prompt_p(&t).path, Path::new("prompts/s/sub/p.yaml"));
        t.commit(3, vec![delete("s/sub/p.yaml")]);
        assert!(prompt_p(&t).archived);
        t.commit(4, vec![put("s/p.yaml", A_REFORMATTED)]);
        assert!(!prompt_p(&t).archived);
        assert_eq!(numbers(&t, "s", "p"), ["1@1"]);
        t.commit(5, vec![delete("s/p.yaml")]);
        t.edit_p(&[(6, B)]);
        assert_eq!(numbers(&t, "s", "p"), ["1@1", "2@6"]);
    }

    #[test]
    fn an_unparsable_file_is_reported_and_leaves_the_prompt_unchanged() {
        let mut t = tracker_after_a();
        t.commit(2, vec![put("s/p.yaml", "model: [unclosed\n")]);
        assert_eq!(t.problems.len(), 1);
        assert_eq!(t.problems[0].diagnostic.path, Path::new("prompts/s/p.yaml"));
        assert!(!prompt_p(&t).archived);
        t.edit_p(&[(3, A), (4, "nonsense: 1\n"), (5, B)]);
        assert_eq!(numbers(&t, "s", "p"), ["1@1", "2@5"]);
    }

    #[test]
    fn an_incomplete_file_makes_no_version_until_complete() {
        let mut t = tracker();
        t.edit_p(&[(1, "model: m\n")]);
        assert!(t.prompts.is_empty());
        t.edit_p(&[(2, A)]);
        assert_eq!(numbers(&t, "s", "p"), ["1@2"]);
    }

    #[test]
    fn two_files_with_one_identity_keep_the_first_by_path() {
        let mut t = tracker();
        t.commit(
            1,
            vec![
                put("s/b.yaml", &format!("name: a\n{B}")),
                put("s/a.yaml", A),
            ],
        );
        assert_eq!(numbers(&t, "s", "a"), ["1@1"]);
        assert_eq!(t.problems.len(), 1);
        assert_eq!(t.problems[0].diagnostic.code, "duplicate-identity");
        // Removing the first leaves the second's definition: a new version.
        t.commit(2, vec![delete("s/a.yaml")]);
        assert_eq!(numbers(&t, "s", "a"), ["1@1", "2@2"]);
    }

    #[test]
    fn explicit_identity_survives_a_rename_of_the_file() {
        let mut t = tracker();
        let text = format!("name: fixed\nservice: svc\n{A}");
        t.commit(1, vec![put("x/one.yaml", &text)]);
        t.commit(2, vec![delete("x/one.yaml"), put("y/two.yaml", &text)]);
        assert_eq!(numbers(&t, "svc", "fixed"), ["1@1"]);
        assert!(!t.prompts[&PromptId::new("svc", "fixed")].archived);
    }
}
