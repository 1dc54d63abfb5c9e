//! US social security numbers: `ddd-dd-dddd`, `ddd.dd.dddd`, `ddd dd dddd` or nine digits
//! alone, excluding numbers the SSA never issues and the published samples.
//!
//! Nine digits alone are also order numbers, counts and ids, so they count as an SSN only
//! when no label says otherwise (`Order 482913675` is not one, `SSN 482913675` is) and no
//! unit follows (`482913675 bytes`).

use std::sync::LazyLock;

use regex::Regex;

use super::text::{
    char_before, context_before, continues_with_digit, follows_digit_and, follows_version_marker,
    labelled_as_identifier, pattern, push,
};
use super::{Finding, FindingKind};

/// Words that mark a nearby number as an SSN, whatever else labels it.
const SSN_CONTEXT: &[&str] = &["ssn", "ssns", "ss#", "ssn#", "social", "security"];

/// Numbers that are not anyone's: the SSA's advertised samples and the Woolworth wallet
/// card's, and the sequences people type as placeholders.
const SAMPLES: &[&str] = &[
    "078051120",
    "219099999",
    "457555462",
    "123456789",
    "987654321",
];

/// Words after a bare number that make it a quantity.
const UNITS: &[&str] = &[
    "b",
    "bytes",
    "kb",
    "mb",
    "gb",
    "ms",
    "ns",
    "us",
    "s",
    "sec",
    "seconds",
    "times",
    "rows",
    "records",
    "items",
    "users",
    "views",
    "visits",
    "downloads",
    "requests",
    "tokens",
    "people",
    "km",
    "m",
    "miles",
    "usd",
    "eur",
    "dollars",
    "points",
];

/// Whether the digits (area, group, serial) were ever issued: area not 000, 666 or 900-999,
/// group not 00, serial not 0000, not one digit repeated, not a sample.
fn issuable(area: &str, group: &str, serial: &str) -> bool {
    let digits = format!("{area}{group}{serial}");
    area != "000"
        && area != "666"
        && !area.starts_with('9')
        && group != "00"
        && serial != "0000"
        && digits.bytes().any(|b| b != digits.as_bytes()[0])
        && !SAMPLES.contains(&digits.as_str())
}

/// Whether the next word after `end` is a unit (`482913675 bytes`).
fn unit_after(text: &str, end: usize) -> bool {
    let word: String = text
        .get(end..)
        .unwrap_or("")
        .trim_start()
        .chars()
        .take_while(|c| c.is_alphanumeric())
        .collect::<String>()
        .to_lowercase();
    UNITS.contains(&word.as_str())
}

/// Whether the match `start..end` with `separator` stands alone as an SSN: not inside a
/// longer number or list of numbers, not a version, and, for nine bare digits, not labelled
/// as another identifier nor followed by a unit.
fn stands_alone(text: &str, start: usize, end: usize, separator: &str) -> bool {
    let joined = char_before(text, start).is_some_and(|c| matches!(c, '-' | '.' | '/' | '#'))
        || continues_with_digit(text, end, &['-', '.', '/'])
        || follows_digit_and(text, start, &[' ', ',', '+'])
        || continues_with_digit(text, end, &[' ', ','])
        || char_before(text, start).is_some_and(|c| matches!(c, '$' | '€' | '£' | '+'));
    if joined || (separator == "." && follows_version_marker(text, start)) {
        return false;
    }
    if !separator.is_empty() || context_before(text, start, SSN_CONTEXT) {
        return true;
    }
    !labelled_as_identifier(text, start) && !unit_after(text, end)
}

/// US social security numbers.
pub(super) fn ssns(text: &str, out: &mut Vec<Finding>) {
    static SSN: LazyLock<Regex> = LazyLock::new(|| {
        pattern(r"(?-u:\b)([0-9]{3})([-. ]?)([0-9]{2})([-. ]?)([0-9]{4})(?-u:\b)")
    });
    for caps in SSN.captures_iter(text) {
        let (Some(whole), Some(area), Some(first), Some(group), Some(second), Some(serial)) = (
            caps.get(0),
            caps.get(1),
            caps.get(2),
            caps.get(3),
            caps.get(4),
            caps.get(5),
        ) else {
            continue;
        };
        let separator = first.as_str();
        if separator != second.as_str()
            || !issuable(area.as_str(), group.as_str(), serial.as_str())
            || !stands_alone(text, whole.start(), whole.end(), separator)
        {
            continue;
        }
        let redacted = if separator.is_empty() {
            format!("*****{}", serial.as_str())
        } else {
            format!("***{separator}**{separator}{}", serial.as_str())
        };
        push(
            out,
            FindingKind::UsSsn,
            whole.start(),
            whole.end(),
            redacted,
        );
    }
}
