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
