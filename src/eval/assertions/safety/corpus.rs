//! The PII corpus (`tests/data/pii_corpus.tsv`): every case's expected kind, or none, against
//! what [`scan`] finds with the default regions.

use super::{FindingKind, scan};

/// One case of the corpus.
struct Case {
    line: usize,
    expected: Option<FindingKind>,
    text: String,
    span: Option<String>,
}

/// The corpus's cases.
fn cases() -> Vec<Case> {
    let corpus = include_str!("../../../../tests/data/pii_corpus.tsv");
    corpus
        .lines()
        .enumerate()
        .filter(|(_, line)| !line.starts_with('#') && !line.trim().is_empty())
        .map(|(index, line)| {
            let mut fields = line.split('\t');
            let kind = fields.next().unwrap_or_default();
            let expected = FindingKind::ALL.into_iter().find(|k| k.as_str() == kind);
            assert!(
                expected.is_some() || kind == "none",
                "line {}: {kind}",
                index + 1
            );
            Case {
                line: index + 1,
                expected,
                text: fields.next().unwrap_or_default().replace("\\n", "\n"),
                span: fields.next().map(str::to_owned),
            }
        })
        .collect()
}

/// Whether `scan` agrees with the case: nothing found in a clean text; a finding of the
/// expected kind (with the expected span, when given) in the others.
fn agrees(case: &Case) -> bool {
    let regions = crate::config::default_pii_regions();
    let findings = scan(&case.text, &regions);
    match case.expected {
        None => findings.is_empty(),
        Some(kind) => findings.iter().any(|f| {
            f.kind == kind
                && case
                    .span
                    .as_deref()
                    .is_none_or(|span| &case.text[f.start..f.end] == span)
        }),
    }
}

#[test]
fn the_corpus_agrees_and_clean_texts_stay_clean() {
    let cases = cases();
    assert!(cases.len() >= 200, "{} cases", cases.len());
    let disagreements: Vec<String> = cases
        .iter()
        .filter(|case| !agrees(case))
        .map(|case| {
            let regions = crate::config::default_pii_regions();
            let found: Vec<(FindingKind, &str)> = scan(&case.text, &regions)
                .iter()
                .map(|f| (f.kind, &case.text[f.start..f.end]))
                .collect();
            format!("line {}: {:?} found {found:?}", case.line, case.text)
        })
        .collect();
    let false_positives = cases
        .iter()
        .filter(|case| case.expected.is_none() && !agrees(case))
        .count();
    let agreement = 1.0 - disagreements.len() as f64 / cases.len() as f64;
    assert!(
        false_positives == 0 && agreement >= 0.95,
        "agreement {:.1} % on {} cases, {false_positives} false positives:\n{}",
        agreement * 100.0,
        cases.len(),
        disagreements.join("\n")
    );
    assert!(disagreements.is_empty(), "{}", disagreements.join("\n"));
}

/// `text` without the `vars:` blocks of its test cases: the inputs given to the model (one
/// holds a card number on purpose, to check that the reply does not echo it).
fn without_inputs(text: &str) -> String {
    let mut inputs_indent: Option<usize> = None;
    let mut kept = String::with_capacity(text.len());
    for line in text.lines() {
        let indent = line.len() - line.trim_start().len();
        if inputs_indent.is_some_and(|at| indent > at || line.trim().is_empty()) {
            continue;
        }
        inputs_indent = (line.trim() == "vars:").then_some(indent);
        kept.push_str(line);
        kept.push('\n');
    }
    kept
}

/// The example prompts (their templates, partials and expected outputs) hold no personal
/// data; the secrets some of them name on purpose (`not_contains` a leaked key) are not
/// this corpus's concern.
#[test]
fn the_example_prompts_are_clean() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("prompts");
    let regions = crate::config::default_pii_regions();
    let mut files = 0;
    for entry in walkdir::WalkDir::new(&root).into_iter().flatten() {
        let Ok(text) = std::fs::read_to_string(entry.path()) else {
            continue;
        };
        files += 1;
        let text = without_inputs(&text);
        let found: Vec<(FindingKind, &str)> = scan(&text, &regions)
            .iter()
            .filter(|f| FindingKind::ALL[..6].contains(&f.kind))
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect();
        assert_eq!(found, [], "{}", entry.path().display());
    }
    assert!(files >= 10, "{files} files under {}", root.display());
    assert!(!without_inputs("vars:\n  card: 4111 1111 1111 1111\nassert:\n").contains("4111"));
}
