//! Re-running tests after a save (`promptctl test --watch`): each prompt's last results,
//! and what a new run of some of them changed.
//!
//! A test is the same test across runs when it has the same identity within its prompt
//! ([`super::baseline::test_keys`]: its name, or an unnamed test's variables), so adding a
//! line above it does not make it a new test. The comparison is the one `--baseline`
//! makes ([`super::baseline::compare_paired`]), with the previous run as the base.

use std::collections::{HashMap, HashSet};

use super::CaseResult;
use super::baseline::{Comparison, Paired, compare_paired};
use crate::repo::PromptId;

/// One prompt's part of a run: each result with its test's identity, in file order.
#[derive(Debug, Clone)]
pub struct PromptRun {
    /// The prompt.
    pub prompt: PromptId,
    /// Its results, each with its test's identity.
    pub results: Vec<(String, CaseResult)>,
}

/// The latest result of every test run so far, by prompt.
#[derive(Debug, Default)]
pub struct LastResults {
    by_prompt: HashMap<PromptId, Vec<(String, CaseResult)>>,
}

impl LastResults {
    /// Whether `prompt` has results.
    pub fn has(&self, prompt: &PromptId) -> bool {
        self.by_prompt.contains_key(prompt)
    }

    /// How many results are kept.
    #[cfg(test)]
    fn len(&self) -> usize {
        self.by_prompt.values().map(Vec::len).sum()
    }

    /// Whether nothing has run yet.
    #[cfg(test)]
    fn is_empty(&self) -> bool {
        self.by_prompt.is_empty()
    }

    /// Compares `runs` with the results kept for their prompts, keeps the new ones instead,
    /// and forgets the `deleted` prompts (their tests are reported removed). Any score
    /// change counts (a tolerance of 0).
    pub fn compare(&mut self, runs: Vec<PromptRun>, deleted: &[PromptId]) -> Comparison {
        let mut paired = Vec::new();
        let mut removed = Vec::new();
        for run in runs {
            let mut before: HashMap<String, CaseResult> = self
                .by_prompt
                .remove(&run.prompt)
                .unwrap_or_default()
                .into_iter()
                .collect();
            let now: HashSet<&str> = run.results.iter().map(|(key, _)| key.as_str()).collect();
            let mut gone: Vec<(String, CaseResult)> = before
                .iter()
                .filter(|(key, _)| !now.contains(key.as_str()))
                .map(|(key, result)| (key.clone(), result.clone()))
                .collect();
            gone.sort_by_key(|(_, result)| result.line);
            removed.extend(
                gone.into_iter()
                    .map(|(_, r)| (r.prompt, r.test, "no longer in the file")),
            );
            for (key, result) in &run.results {
                paired.push(Paired {
                    head: result.clone(),
                    base: before.remove(key),
                    same_definition: false,
                });
            }
            self.by_prompt.insert(run.prompt, run.results);
        }
        for prompt in deleted {
            let mut gone = self.by_prompt.remove(prompt).unwrap_or_default();
            gone.sort_by_key(|(_, result)| result.line);
            removed.extend(
                gone.into_iter()
                    .map(|(_, r)| (r.prompt, r.test, "the prompt was deleted")),
            );
        }
        compare_paired(paired, removed, String::new(), 0.0)
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use super::*;
    use crate::eval::CaseStatus;
    use crate::eval::baseline::Movement;

    fn result(test: &str, line: usize, status: CaseStatus, output: &str) -> CaseResult {
        CaseResult {
            status,
            output: Some(output.to_owned()),
            ..CaseResult::unrun(
                PromptId::new("svc", "p"),
                test.to_owned(),
                PathBuf::from("prompts/svc/p.yaml"),
                line,
                "echo".to_owned(),
            )
        }
    }

    fn run(results: Vec<(&str, CaseResult)>) -> PromptRun {
        PromptRun {
            prompt: PromptId::new("svc", "p"),
            results: results
                .into_iter()
                .map(|(key, r)| (key.to_owned(), r))
                .collect(),
        }
    }

    fn scored(test: &str, score: f64, error: Option<&str>) -> CaseResult {
        let mut result = result(test, 5, CaseStatus::Passed, "same answer");
        result.assertions = vec![crate::eval::LocatedOutcome {
            line: 9,
            outcome: crate::eval::assertions::AssertionOutcome {
                kind: "similar".to_owned(),
                passed: true,
                score,
                threshold: 0.5,
                expected: None,
                detail: String::new(),
                grader: None,
            },
        }];
        if let Some(message) = error {
            result.status = CaseStatus::Error;
            result.error = Some(crate::eval::CaseError {
                kind: crate::eval::CaseErrorKind::Render,
                message: message.to_owned(),
                no_recording: false,
            });
        }
        result
    }

    #[test]
    fn a_moved_score_and_another_error_are_printed_and_nothing_else() {
        let mut last = LastResults::default();
        let before = vec![
            ("name:a#1", scored("a", 0.93, None)),
            ("name:b#1", scored("b", 0.8, Some("undefined variable `x`"))),
            ("name:c#1", scored("c", 0.7, None)),
        ];
        last.compare(vec![run(before)], &[]);
        let now = vec![
            ("name:a#1", scored("a", 0.71, None)),
            ("name:b#1", scored("b", 0.8, Some("unknown filter `nope`"))),
            ("name:c#1", scored("c", 0.7, None)),
        ];
        let comparison = last.compare(vec![run(now)], &[]);
        let (text, shown) = crate::eval::report::rerun_text(&comparison, false);
        assert_eq!(shown, 2, "{text}");
        assert!(
            text.contains("✗ score") && text.contains("similar (line 9): 0.93 → 0.71 (−0.22)"),
            "{text}"
        );
        assert!(
            text.contains("! another error") && text.contains("unknown filter `nope`"),
            "{text}"
        );
        assert!(!text.contains("svc/p › c"), "{text}");
    }

    #[test]
    fn a_test_moved_down_the_file_is_the_same_test() {
        let mut last = LastResults::default();
        let first = last.compare(
            vec![run(vec![
                (
                    "vars:{}#1",
                    result("test at line 5", 5, CaseStatus::Passed, "a"),
                ),
                ("name:b#1", result("b", 9, CaseStatus::Passed, "b")),
            ])],
            &[],
        );
        assert_eq!(first.counts.new, 2);
        let second = last.compare(
            vec![run(vec![(
                "vars:{}#1",
                result("test at line 7", 7, CaseStatus::Failed, "x"),
            )])],
            &[],
        );
        assert_eq!(second.counts.regressions, 1);
        assert_eq!(second.counts.removed, 1);
        assert_eq!(second.cases[0].movement, Movement::Regression);
        assert_eq!(second.cases[1].test, "b");
        assert_eq!(last.len(), 1);
        let third = last.compare(Vec::new(), &[PromptId::new("svc", "p")]);
        assert_eq!(third.counts.removed, 1);
        assert!(last.is_empty());
    }
}
