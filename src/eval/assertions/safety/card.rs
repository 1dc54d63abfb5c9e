//! Payment card numbers: 13 to 19 digits, alone or in groups (the first of four) separated
//! by spaces or dashes, whose first digits and length are those of an issuer's range, not
//! all one digit, passing the Luhn check.

use std::sync::LazyLock;

use regex::Regex;

use super::text::{
    char_at, char_before, continues_with_digit, is_word, mask_middle, pattern, push,
};
use super::{Finding, FindingKind};

/// An issuer's range: card numbers whose first digits, read as a number of as many digits
/// as `low`, are from `low` to `high`, with one of `lengths` digits.
struct IssuerRange {
    low: u32,
    high: u32,
    lengths: &'static [usize],
}

const fn range(low: u32, high: u32, lengths: &'static [usize]) -> IssuerRange {
    IssuerRange { low, high, lengths }
}

const SIXTEEN: &[usize] = &[16];
const SIXTEEN_UP: &[usize] = &[16, 17, 18, 19];
const FOURTEEN_UP: &[usize] = &[14, 15, 16, 17, 18, 19];
const THIRTEEN_UP: &[usize] = &[13, 14, 15, 16, 17, 18, 19];

/// The issuers' ranges (ISO/IEC 7812 issuer identification numbers), after the networks'
/// published tables.
const ISSUERS: &[IssuerRange] = &[
    range(1, 1, &[15]),             // UATP
    range(4, 4, &[13, 16, 19]),     // Visa, Visa Electron, Dankort co-branded
    range(51, 55, SIXTEEN),         // Mastercard
    range(2221, 2720, SIXTEEN),     // Mastercard 2-series
    range(34, 34, &[15]),           // American Express
    range(37, 37, &[15]),           // American Express
    range(6011, 6011, SIXTEEN_UP),  // Discover
    range(644, 649, SIXTEEN_UP),    // Discover
    range(65, 65, SIXTEEN_UP),      // Discover, RuPay, Troy
    range(300, 305, FOURTEEN_UP),   // Diners Club International
    range(3095, 3095, FOURTEEN_UP), // Diners Club International
    range(36, 36, FOURTEEN_UP),     // Diners Club International
    range(38, 39, FOURTEEN_UP),     // Diners Club
    range(3528, 3589, SIXTEEN_UP),  // JCB
    range(62, 62, SIXTEEN_UP),      // UnionPay, Discover co-branded
    range(81, 82, SIXTEEN_UP),      // UnionPay, RuPay
    range(2200, 2204, SIXTEEN_UP),  // Mir
    range(5019, 5019, SIXTEEN),     // Dankort
    range(50, 50, THIRTEEN_UP),     // Maestro, Verve, RuPay (508)
    range(56, 69, THIRTEEN_UP),     // Maestro, RuPay (60), InterPayment (636)
    range(9792, 9792, SIXTEEN),     // Troy
    range(8600, 8600, SIXTEEN),     // UzCard
    range(9860, 9860, SIXTEEN),     // Humo
];

/// Whether `digits` (ASCII) fall in an issuer's range with its length.
fn has_issuer(digits: &[u8]) -> bool {
    ISSUERS.iter().any(|issuer| {
        let width = issuer.low.to_string().len();
        let prefix = digits
            .iter()
            .take(width)
            .fold(0u32, |n, d| n * 10 + u32::from(d - b'0'));
        issuer.lengths.contains(&digits.len()) && (issuer.low..=issuer.high).contains(&prefix)
    })
}

/// Whether a card number's digits pass the Luhn check.
fn luhn_ok(digits: &[u8]) -> bool {
    let sum: u32 = digits
        .iter()
        .rev()
        .enumerate()
        .map(|(i, d)| {
            let d = u32::from(d - b'0');
            if i % 2 == 1 {
                let doubled = d * 2;
                if doubled > 9 { doubled - 9 } else { doubled }
            } else {
                d
            }
        })
        .sum();
    sum.is_multiple_of(10)
}

/// A run of digits with single spaces or dashes between them, and its digit groups as
/// absolute byte ranges.
struct Run<'a> {
    text: &'a str,
    start: usize,
    end: usize,
    groups: Vec<(usize, usize)>,
}

impl Run<'_> {
    /// Whether groups `first..=last` form a card number.
    fn is_card(&self, first: usize, last: usize) -> bool {
        let slice = &self.groups[first..=last];
        let digits: Vec<u8> = slice
            .iter()
            .flat_map(|&(start, end)| self.text.as_bytes()[start..end].iter().copied())
            .collect();
        (13..=19).contains(&digits.len())
            && grouped_like_a_card(slice)
            && self.set_off(slice[0].0, slice[slice.len() - 1].1)
            && has_issuer(&digits)
            && digits.iter().any(|&d| d != digits[0])
            && luhn_ok(&digits)
    }

    /// Whether `start..end` stands apart: inside the run, by spaces (not joined by dashes);
    /// at the run's ends, from words and from longer numbers (`1.4111...`, `...1111,5`).
    fn set_off(&self, start: usize, end: usize) -> bool {
        let bytes = self.text.as_bytes();
        if start > self.start && bytes[start - 1] != b' ' {
            return false;
        }
        if end < self.end && bytes[end] != b' ' {
            return false;
        }
        let glued_before = start == self.start
            && char_before(self.text, start).is_some_and(|c| is_word(c) || c == '.');
        let glued_after = end == self.end
            && (char_at(self.text, end).is_some_and(is_word)
                || continues_with_digit(self.text, end, &['.', ',']));
        !glued_before && !glued_after
    }
}

/// Whether digit groups look like a printed card: one group, or a first group of four and
/// others of three to six.
fn grouped_like_a_card(groups: &[(usize, usize)]) -> bool {
    groups.len() == 1
        || groups.iter().enumerate().all(|(i, (start, end))| {
            let size = end - start;
            if i == 0 {
                size == 4
            } else {
                (3..=6).contains(&size)
            }
        })
}

/// Payment card numbers.
pub(super) fn cards(text: &str, out: &mut Vec<Finding>) {
    static RUN: LazyLock<Regex> = LazyLock::new(|| pattern(r"\d(?:[ -]?\d)*"));
    for found in RUN.find_iter(text) {
        if found.as_str().bytes().filter(u8::is_ascii_digit).count() < 13 {
            continue;
        }
        let mut groups = Vec::new();
        let mut group_start = found.start();
        for (i, b) in found.as_str().bytes().enumerate() {
            if !b.is_ascii_digit() {
                groups.push((group_start, found.start() + i));
                group_start = found.start() + i + 1;
            }
        }
        groups.push((group_start, found.end()));
        let run = Run {
            text,
            start: found.start(),
            end: found.end(),
            groups,
        };
        let mut first = 0;
        while first < run.groups.len() {
            // A card has at most 19 digits, so at most 19 groups.
            let lasts = first..run.groups.len().min(first + 19);
            match lasts.rev().find(|&last| run.is_card(first, last)) {
                Some(last) => {
                    let (start, end) = (run.groups[first].0, run.groups[last].1);
                    let redacted = mask_middle(&text[start..end], 4, 4);
                    push(out, FindingKind::CreditCard, start, end, redacted);
                    first = last + 1;
                }
                None => first += 1,
            }
        }
    }
}
