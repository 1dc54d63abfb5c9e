//! Phone numbers, validated with libphonenumber's metadata (the `phonenumber` crate, its
//! Rust port): a cheap pattern finds runs of digits and separators, and only runs of 7 to
//! 17 digits set apart from words and longer numbers are parsed.
//!
//! - International numbers (`+44 20 7946 0958`) count for every region when the metadata
//!   says they are valid.
//! - National numbers (`(415) 555-0132`, `09-7625400`, `090-1234-5678`) count when they are
//!   valid for one of the regions scanned (`[test] pii_regions`) and written the way that
//!   region writes them: the digits of the national format, its national prefix included
//!   where the format has it (`030 1234567`, not `30 1234567`), and groups broken only where
//!   the format breaks them (`415 555 0132`, not `41 555 50132`), as libphonenumber's
//!   matcher does at its strict-grouping level.
//! - Digits alone (`13812345678`) are also order numbers and timestamps, so they count only
//!   after a word such as `phone`, `call` or `number`; a label such as `Order` or `#` before
//!   a national number makes it an identifier.
//!
//! Not phone numbers: dates (`2024-01-15`, `15.01.2024`), runs that continue into a longer
//! number, a word or an amount.

use std::sync::LazyLock;

use phonenumber::country::{Id, Source};
use phonenumber::metadata::{DATABASE, Database};
use phonenumber::{Mode, PhoneNumber};
use regex::Regex;

use super::text::{
    char_at, char_before, context_before, continues_with_digit, follows_digit_and, is_word,
    labelled_as_identifier, mask_middle, pattern, push,
};
use super::{Finding, FindingKind};

/// A region (ISO 3166-1 alpha-2 code) whose numbers written in national format are found.
pub type Region = Id;

/// How many of the metadata's compiled patterns stay cached. The crate keeps 100, fewer
/// than the default regions' numbers and formats use, and compiles a pattern again (a
/// fraction of a millisecond each) whenever it was dropped; each compiled pattern holds
/// tens to hundreds of kilobytes, so the cache is not larger either.
const PATTERN_CACHE: usize = 512;

/// The metadata, loaded once, with a pattern cache sized for the regions scanned.
static METADATA: LazyLock<&'static Database> = LazyLock::new(|| {
    let database: &'static Database = &DATABASE;
    if let Ok(mut cache) = database.cache().lock() {
        cache.set_capacity(PATTERN_CACHE);
    }
    database
});

/// The most runs of one text given to the parser: a text listing hundreds of numbers of
/// as many countries is scanned in bounded time (its first 64 candidates).
const MAX_PARSED_RUNS: usize = 64;

/// Words that make digits alone a phone number when they come shortly before them.
const PHONE_CONTEXT: &[&str] = &[
    "phone",
    "telephone",
    "tel",
    "mobile",
    "mob",
    "cell",
    "cellphone",
    "call",
    "number",
    "contact",
    "fax",
    "whatsapp",
    "sms",
    "text",
    "dial",
    "reach",
    "ph",
    "hotline",
    "helpline",
    "telefon",
    "telefono",
    "teléfono",
    "telefone",
    "téléphone",
    "numéro",
    "número",
    "nummer",
    "handy",
    "电话",
    "手机",
    "號碼",
    "号码",
    "電話",
    "携帯",
    "番号",
    "전화",
    "번호",
    "טלפון",
];

/// Phone numbers in `text`; national ones read as numbers of `regions`.
pub(super) fn phones(text: &str, regions: &[Region], out: &mut Vec<Finding>) {
    static RUN: LazyLock<Regex> =
        LazyLock::new(|| pattern(r"\+?\(?\d+\)?(?:(?: - |[ ./-])?\(?\d+\)?)*"));
    let mut budget = MAX_PARSED_RUNS;
    for m in RUN.find_iter(text) {
        let Some((start, end)) = balanced(text, m.start(), m.end()) else {
            continue;
        };
        let digits = text[start..end].bytes().filter(u8::is_ascii_digit).count();
        if (7..=17).contains(&digits)
            && set_apart(text, start, end)
            && is_phone(text, start, end, regions, &mut budget)
        {
            let redacted = mask_middle(&text[start..end], 0, 2);
            push(out, FindingKind::Phone, start, end, redacted);
        }
    }
}

/// The run without an unmatched parenthesis at either end (`(call +1 415 555 0132)`), when
/// its parentheses are then balanced and not nested.
fn balanced(text: &str, mut start: usize, mut end: usize) -> Option<(usize, usize)> {
    let count = |value: &str, c: char| value.matches(c).count();
    let value = &text[start..end];
    if value.ends_with(')') && count(value, ')') > count(value, '(') {
        end -= 1;
    }
    let value = &text[start..end];
    if value.starts_with('(') && count(value, '(') > count(value, ')') {
        start += 1;
    }
    let mut open = false;
    for c in text[start..end].chars() {
        match c {
            '(' if open => return None,
            '(' => open = true,
            ')' if !open => return None,
            ')' => open = false,
            _ => {}
        }
    }
    (!open).then_some((start, end))
}

/// Whether `start..end` is set apart from words, amounts and longer numbers.
fn set_apart(text: &str, start: usize, end: usize) -> bool {
    let glued_before = char_before(text, start)
        .is_some_and(|c| is_word(c) || "+#$€£¥@".contains(c))
        || follows_digit_and(text, start, &['.', ',', ':', '/', '-'])
        || follows_word_and(text, start, &['.', '/', '-', '_']);
    let glued_after = char_at(text, end).is_some_and(|c| is_word(c) || c == '%' || c == '+')
        || continues_with_digit(text, end, &['.', ',', ':', '/', '-'])
        || continues_with_word(text, end, &['.', '/', '-', '_']);
    !glued_before && !glued_after
}

/// Whether the text before `at` is a word character and one of `joiners` (`SN-` in
/// `SN-2024-0001-7788`): the run is then part of a hyphenated or dotted identifier.
fn follows_word_and(text: &str, at: usize, joiners: &[char]) -> bool {
    let mut chars = text.get(..at).unwrap_or("").chars().rev();
    matches!(chars.next(), Some(c) if joiners.contains(&c)) && chars.next().is_some_and(is_word)
}

/// Whether the text at `at` is one of `joiners` and a letter (`-rc1`, `.txt`).
fn continues_with_word(text: &str, at: usize, joiners: &[char]) -> bool {
    let mut chars = text.get(at..).unwrap_or("").chars();
    matches!(chars.next(), Some(c) if joiners.contains(&c))
        && chars.next().is_some_and(|c| c.is_ascii_alphabetic())
}

/// Whether the run at `start..end` is a valid phone number. Each run that reaches the
/// parser takes one of `budget`; none is parsed once it is spent.
fn is_phone(text: &str, start: usize, end: usize, regions: &[Region], budget: &mut usize) -> bool {
    let value = &text[start..end];
    let international = value.starts_with('+');
    if (!international && !could_be_national(text, start, value)) || *budget == 0 {
        return false;
    }
    *budget -= 1;
    // The metadata is loaded on the first run that gets this far, not before.
    let database: &Database = &METADATA;
    if international {
        return phonenumber::parse_with(database, None, value)
            .is_ok_and(|number| number.is_valid_with(database));
    }
    let digits: String = value.chars().filter(char::is_ascii_digit).collect();
    regions
        .iter()
        .any(|&region| plausible(database, region, &digits) && national(database, value, region))
}

/// Whether the run `value` at `start` could be a national number: not a date, not written
/// in another identifier's shape or after its label, and, for digits alone, after a word
/// such as `phone`.
fn could_be_national(text: &str, start: usize, value: &str) -> bool {
    let bare = value.bytes().all(|b| b.is_ascii_digit());
    !(looks_like_date(value)
        || other_shape(value)
        || labelled_as_identifier(text, start)
        || (bare && !context_before(text, start, PHONE_CONTEXT)))
}

/// Whether `digits`, with or without the region's national prefix, could be one of the
/// region's numbers by its general pattern (its lengths first), or start with `00` (an
/// international call prefix): one pattern spares most regions a parse and a dozen more.
fn plausible(database: &Database, region: Region, digits: &str) -> bool {
    let Some(metadata) = database.by_id(region.as_ref()) else {
        return false;
    };
    let general = metadata.descriptors().general();
    let without_prefix = metadata
        .national_prefix()
        .and_then(|prefix| digits.strip_prefix(prefix));
    digits.starts_with("00")
        || general.is_match(digits)
        || without_prefix.is_some_and(|rest| general.is_match(rest))
}

/// Whether `value` is a dotted, dashed or slashed date: `2024-01-15`, `15.01.2024`,
/// `1/15/24`.
fn looks_like_date(value: &str) -> bool {
    let separators: Vec<char> = value.chars().filter(|c| !c.is_ascii_digit()).collect();
    let groups: Vec<usize> = value
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .collect();
    let same = separators.windows(2).all(|pair| pair[0] == pair[1]);
    same && matches!(separators.first(), Some('-' | '.' | '/'))
        && matches!(groups.as_slice(), [4, 1..=2, 1..=2] | [1..=2, 1..=2, 2 | 4])
}

/// Whether `value` is written as something else than a national phone number: with two
/// kinds of joiner (`693-09.4444`), in a social security number's groups (`666-12-3456`,
/// a grouping no region writes its numbers in) or an IPv4 address's (`256.256.256.256`).
fn other_shape(value: &str) -> bool {
    let joiners = ['-', '.', '/']
        .iter()
        .filter(|joiner| value.contains(**joiner))
        .count();
    let groups: Vec<usize> = value
        .split(|c: char| !c.is_ascii_digit())
        .map(str::len)
        .collect();
    let dotted_quad = value.contains('.') && groups.len() == 4 && groups.iter().all(|&n| n <= 3);
    joiners > 1 || groups == [3, 2, 4] || dotted_quad
}

/// Whether `value` is a valid number of `region` written the way the region writes it.
fn national(database: &Database, value: &str, region: Region) -> bool {
    let Ok(number) = phonenumber::parse_with(database, Some(region), value) else {
        return false;
    };
    if !number.is_valid_with(database) {
        return false;
    }
    // Written with an international or country prefix (`0044 20 ...`, `44 20 ...`).
    number.code().source() != Source::Default || written_as_formatted(database, value, &number)
}

/// Whether `value` has the digits of the number's national format (or the national prefix
/// before them, as `1-800-...` in the US) and breaks its groups only where that format does.
fn written_as_formatted(database: &Database, value: &str, number: &PhoneNumber) -> bool {
    let formatted = number
        .format_with(database)
        .mode(Mode::National)
        .to_string();
    let (digits, breaks) = digit_groups(value);
    let (expected, expected_breaks) = digit_groups(&formatted);
    let Some(extra) = digits.strip_suffix(expected.as_str()) else {
        return false;
    };
    let prefix_ok = extra.is_empty()
        || number
            .metadata(database)
            .and_then(|metadata| metadata.national_prefix())
            .is_some_and(|prefix| prefix == extra);
    let shift = extra.len();
    prefix_ok
        && breaks
            .iter()
            .filter(|&&at| at != shift)
            .all(|&at| at > shift && expected_breaks.contains(&(at - shift)))
}

/// The digits of `value`, and the counts of digits before each break between groups.
fn digit_groups(value: &str) -> (String, Vec<usize>) {
    let mut digits = String::with_capacity(value.len());
    let mut breaks = Vec::new();
    for c in value.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
        } else if !digits.is_empty() && breaks.last() != Some(&digits.len()) {
            breaks.push(digits.len());
        }
    }
    if breaks.last() == Some(&digits.len()) {
        breaks.pop();
    }
    (digits, breaks)
}
