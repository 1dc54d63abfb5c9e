//! International bank account numbers (ISO 13616): the country's length and the mod-97
//! checksum.

use std::sync::LazyLock;

use regex::Regex;

use super::text::{char_at, char_before, is_word, mask_middle, pattern, push};
use super::{Finding, FindingKind};
/// IBAN lengths by country (ISO 13616 registry).
fn iban_length(country: &str) -> Option<usize> {
    Some(match country {
        "NO" => 15,
        "BE" => 16,
        "DK" | "FI" | "FK" | "FO" | "GL" | "NL" | "SD" => 18,
        "MK" | "SI" => 19,
        "AT" | "BA" | "EE" | "KZ" | "LT" | "LU" | "MN" | "XK" => 20,
        "CH" | "HR" | "LI" | "LV" => 21,
        "BG" | "BH" | "CR" | "DE" | "GB" | "GE" | "IE" | "ME" | "RS" | "VA" => 22,
        "AE" | "GI" | "IL" | "IQ" | "OM" | "SO" | "TL" => 23,
        "AD" | "CZ" | "ES" | "MD" | "PK" | "RO" | "SA" | "SE" | "SK" | "TN" | "VG" => 24,
        "LY" | "PT" | "ST" => 25,
        "IS" | "TR" => 26,
        "BI" | "DJ" | "FR" | "GR" | "IT" | "MC" | "MR" | "SM" => 27,
        "AL" | "AZ" | "BY" | "CY" | "DO" | "GT" | "HU" | "LB" | "NI" | "PL" | "SV" => 28,
        "BR" | "EG" | "PS" | "QA" | "UA" => 29,
        "JO" | "KW" | "MU" | "YE" => 30,
        "MT" | "SC" => 31,
        "LC" => 32,
        "RU" => 33,
        _ => return None,
    })
}

/// Whether an IBAN (uppercase letters and digits only) passes the mod-97 check.
fn iban_checksum_ok(iban: &str) -> bool {
    let (head, tail) = iban.split_at(4.min(iban.len()));
    let mut remainder: u32 = 0;
    for c in tail.chars().chain(head.chars()) {
        let Some(value) = c.to_digit(36) else {
            return false;
        };
        remainder = if value < 10 {
            (remainder * 10 + value) % 97
        } else {
            (remainder * 100 + value) % 97
        };
    }
    remainder == 1
}

/// IBANs, electronic (`GB82WEST12345698765432`) or printed in groups of four
/// (`DE89 3704 0044 0532 0130 00`), with the country's length and a valid checksum.
pub(super) fn ibans(text: &str, out: &mut Vec<Finding>) {
    static START: LazyLock<Regex> = LazyLock::new(|| pattern(r"[A-Z]{2}[0-9]{2}"));
    for m in START.find_iter(text) {
        if char_before(text, m.start()).is_some_and(is_word) {
            continue;
        }
        let Some(length) = iban_length(&m.as_str()[..2]) else {
            continue;
        };
        let mut compact = String::with_capacity(length);
        let mut end = m.start();
        let bytes = text.as_bytes();
        while compact.len() < length {
            match bytes.get(end) {
                Some(b) if b.is_ascii_uppercase() || b.is_ascii_digit() => {
                    compact.push(char::from(*b));
                    end += 1;
                }
                Some(b' ')
                    if compact.len().is_multiple_of(4)
                        && bytes
                            .get(end + 1)
                            .is_some_and(|b| b.is_ascii_uppercase() || b.is_ascii_digit()) =>
                {
                    end += 1;
                }
                _ => break,
            }
        }
        if compact.len() != length
            || char_at(text, end).is_some_and(is_word)
            || !iban_checksum_ok(&compact)
        {
            continue;
        }
        push(
            out,
            FindingKind::Iban,
            m.start(),
            end,
            mask_middle(&text[m.start()..end], 4, 4),
        );
    }
}
