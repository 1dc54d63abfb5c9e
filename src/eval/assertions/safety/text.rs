//! What the detectors share: looking around a candidate (the characters and words next to
//! it), masking a finding for a CI log, and compiling the built-in patterns.

use regex::Regex;

use super::{Finding, FindingKind};

/// Compiles a built-in pattern.
pub(super) fn pattern(source: &str) -> Regex {
    #[allow(clippy::expect_used)]
    Regex::new(source).expect("built-in patterns are valid")
}

/// The character before byte offset `at`.
pub(super) fn char_before(text: &str, at: usize) -> Option<char> {
    text.get(..at).and_then(|before| before.chars().next_back())
}

/// The character at byte offset `at`.
pub(super) fn char_at(text: &str, at: usize) -> Option<char> {
    text.get(at..).and_then(|after| after.chars().next())
}

/// Whether `c` is an ASCII word character. Numbers and keys written right after a word in
/// a script without spaces (`電話+81 3-1234-5678`) are still found.
pub(super) fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether the text at `at` is one of `punctuation` followed by a digit, as in `.5` or
/// `-12`: the match before `at` is then part of a longer number-like token.
pub(super) fn continues_with_digit(text: &str, at: usize, punctuation: &[char]) -> bool {
    let mut chars = text.get(at..).unwrap_or("").chars();
    matches!(chars.next(), Some(c) if punctuation.contains(&c))
        && chars.next().is_some_and(|c| c.is_ascii_digit())
}

/// Whether the text before `at` ends with one of `punctuation` preceded by a digit, as in
/// `5.` or `12-`: the match at `at` is then the tail of a longer number-like token.
pub(super) fn follows_digit_and(text: &str, at: usize, punctuation: &[char]) -> bool {
    let mut chars = text.get(..at).unwrap_or("").chars().rev();
    matches!(chars.next(), Some(c) if punctuation.contains(&c))
        && chars.next().is_some_and(|c| c.is_ascii_digit())
}

/// Whether the text before `start` marks what follows as a version or a section number:
/// `v1.2.3.4`, `version 3.11.7`, `Version: 1.2`, `Section 3.2.1.4`, `§ 4.1.2.3`.
pub(super) fn follows_version_marker(text: &str, start: usize) -> bool {
    let section = text
        .get(..start)
        .is_some_and(|before| before.trim_end().ends_with('§'));
    section
        || matches!(
            label_before(text, start).as_deref(),
            Some(
                "v" | "ver"
                    | "version"
                    | "release"
                    | "section"
                    | "sec"
                    | "chapter"
                    | "clause"
                    | "figure"
                    | "fig"
                    | "table"
                    | "step"
                    | "appendix"
                    | "paragraph"
                    | "oid"
            )
        )
}

/// Words that fill the space between a label and its value: `order no. 123`,
/// `invoice number: 123`, `ticket is 123`.
const FILLERS: &[&str] = &["no", "nr", "num", "number", "is", "was", "of", "the", "a"];

/// The word that labels a value starting at `start`, lowercased: the nearest word before
/// it that is not a filler (`order` in `Order no. 482913675`), within three words.
pub(super) fn label_before(text: &str, start: usize) -> Option<String> {
    let before = text.get(..start)?;
    let window = before
        .char_indices()
        .rev()
        .nth(47)
        .map_or(before, |(i, _)| &before[i..]);
    window
        .rsplit(|c: char| !c.is_alphanumeric())
        .filter(|word| !word.is_empty())
        .take(3)
        .map(str::to_lowercase)
        .find(|word| !FILLERS.contains(&word.as_str()))
}

/// Labels of identifiers that are not personal data, before a number that could otherwise
/// be read as a social security or phone number: `Order 482913675`, `ISBN 0306406152`.
const IDENTIFIER_LABELS: &[&str] = &[
    "account",
    "acct",
    "asin",
    "batch",
    "booking",
    "bug",
    "build",
    "case",
    "claim",
    "code",
    "commit",
    "confirmation",
    "customer",
    "doi",
    "ean",
    "id",
    "invoice",
    "isbn",
    "issn",
    "issue",
    "item",
    "job",
    "lot",
    "member",
    "model",
    "order",
    "page",
    "part",
    "pid",
    "pin",
    "po",
    "policy",
    "port",
    "pr",
    "product",
    "receipt",
    "record",
    "ref",
    "reference",
    "release",
    "request",
    "routing",
    "row",
    "run",
    "serial",
    "shipment",
    "sku",
    "task",
    "ticket",
    "tracking",
    "transaction",
    "txn",
    "upc",
    "version",
    "vin",
    "zip",
];

/// Whether the value starting at `start` is labelled as an identifier that is not personal
/// data, or written right after `#`.
pub(super) fn labelled_as_identifier(text: &str, start: usize) -> bool {
    let hash = text
        .get(..start)
        .is_some_and(|before| before.trim_end().ends_with('#'));
    hash || label_before(text, start).is_some_and(|word| IDENTIFIER_LABELS.contains(&&*word))
}

/// Whether one of `words` occurs in the 48 characters before `start` (ASCII words as whole
/// words, case-insensitive; others, such as `電話`, anywhere).
pub(super) fn context_before(text: &str, start: usize, words: &[&str]) -> bool {
    let before = text.get(..start).unwrap_or("");
    let window = before
        .char_indices()
        .rev()
        .nth(47)
        .map_or(before, |(i, _)| &before[i..])
        .to_lowercase();
    words.iter().any(|word| {
        if word.is_ascii() {
            window
                .split(|c: char| !c.is_alphanumeric() && c != '#')
                .any(|token| token == *word)
        } else {
            window.contains(word)
        }
    })
}

/// `prefix` followed by up to 16 stars, one per masked character.
pub(super) fn mask_after(value: &str, prefix_len: usize) -> String {
    let prefix = value.get(..prefix_len).unwrap_or("");
    let hidden = value.get(prefix_len..).unwrap_or("").chars().count();
    format!("{prefix}{}", "*".repeat(hidden.clamp(1, 16)))
}

/// `value` with every alphanumeric character masked except the first `keep_start` and the
/// last `keep_end` of them; other characters (separators) are kept.
pub(super) fn mask_middle(value: &str, keep_start: usize, keep_end: usize) -> String {
    let total = value.chars().filter(|c| c.is_alphanumeric()).count();
    let mut seen = 0;
    value
        .chars()
        .map(|c| {
            if !c.is_alphanumeric() {
                return c;
            }
            seen += 1;
            if seen <= keep_start || seen > total.saturating_sub(keep_end) {
                c
            } else {
                '*'
            }
        })
        .collect()
}

/// Adds a finding.
pub(super) fn push(
    out: &mut Vec<Finding>,
    kind: FindingKind,
    start: usize,
    end: usize,
    redacted: String,
) {
    out.push(Finding {
        kind,
        start,
        end,
        redacted,
    });
}
