//! IP addresses: candidate tokens found by a cheap pattern, then parsed by the standard
//! library (`std::net::Ipv4Addr`, `Ipv6Addr`); an IPv6 address may carry a zone
//! (`fe80::1%eth0`), and either a prefix length (`10.0.0.0/8`, `2001:db8::/32`).
//!
//! Not addresses: dotted runs of more than four numbers (versions, OIDs: `1.3.6.1.4.1`),
//! numbers after a version marker (`v1.2.3.4`), times and timecodes (`12:30:45:10`),
//! `::` written between spaces after a word (a Haskell signature, `f :: Int`), paths such as `std::io` or
//! `a::b` (an IPv6 candidate needs a digit, or to be `::` alone).

use std::net::{Ipv4Addr, Ipv6Addr};
use std::sync::LazyLock;

use regex::Regex;

use super::text::{
    char_at, char_before, continues_with_digit, follows_version_marker, is_word, pattern, push,
};
use super::{Finding, FindingKind};

/// The end of an optional `/prefix` at `at`, when its length is at most `max`.
fn prefix_end(text: &str, at: usize, max: u8) -> usize {
    let digits: String = text
        .get(at..)
        .and_then(|rest| rest.strip_prefix('/'))
        .unwrap_or("")
        .chars()
        .take_while(char::is_ascii_digit)
        .collect();
    let valid = !digits.is_empty()
        && digits.len() <= 3
        && digits.parse::<u8>().is_ok_and(|length| length <= max)
        && !char_at(text, at + 1 + digits.len()).is_some_and(is_word)
        && !continues_with_digit(text, at + 1 + digits.len(), &['.']);
    if valid { at + 1 + digits.len() } else { at }
}

/// IPv4 addresses: four numbers up to 255 without leading zeros, not inside a longer dotted
/// run or word, not after a version marker.
pub(super) fn ipv4s(text: &str, out: &mut Vec<Finding>) {
    static IPV4: LazyLock<Regex> =
        LazyLock::new(|| pattern(r"[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}"));
    for m in IPV4.find_iter(text) {
        if m.as_str().parse::<Ipv4Addr>().is_err()
            || char_before(text, m.start()).is_some_and(|c| c == '.' || is_word(c))
            || char_at(text, m.end()).is_some_and(is_word)
            || continues_with_digit(text, m.end(), &['.'])
            || follows_version_marker(text, m.start())
        {
            continue;
        }
        let end = prefix_end(text, m.end(), 32);
        let first = m.as_str().split('.').next().unwrap_or("");
        push(
            out,
            FindingKind::IpAddress,
            m.start(),
            end,
            format!("{first}.*.*.*"),
        );
    }
}

/// The end of an optional zone (`%eth0`) at `at`.
fn zone_end(text: &str, at: usize) -> usize {
    let Some(zone) = text.get(at..).and_then(|rest| rest.strip_prefix('%')) else {
        return at;
    };
    let length = zone
        .bytes()
        .take_while(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
        .count()
        .min(64);
    let length = zone[..length].trim_end_matches('.').len();
    if length == 0 { at } else { at + 1 + length }
}

/// Whether `value` (a parsed IPv6 address as written) is one: a digit somewhere (so `a::b`
/// and `dead:beef::` are not), or `::` alone and not infix (`f :: Int`); not a timecode.
fn looks_like_ipv6(text: &str, start: usize, end: usize) -> bool {
    let value = &text[start..end];
    if value == "::" {
        let infix = char_before(text, start) == Some(' ')
            && char_at(text, end) == Some(' ')
            && text[..start]
                .trim_end()
                .chars()
                .next_back()
                .is_some_and(char::is_alphanumeric);
        return !infix;
    }
    let timecode = !value.contains("::")
        && value
            .split(':')
            .all(|group| group.len() <= 2 && group.bytes().all(|b| b.is_ascii_digit()));
    value.bytes().any(|b| b.is_ascii_digit()) && !timecode
}

/// IPv6 addresses, full or compressed (`2001:db8::8a2e:370:7334`, `::1`, `::`,
/// `::ffff:192.0.2.1`), with a zone or a prefix length.
pub(super) fn ipv6s(text: &str, out: &mut Vec<Finding>) {
    static TOKEN: LazyLock<Regex> = LazyLock::new(|| pattern(r"[0-9A-Fa-f.]*:[0-9A-Fa-f:.]*"));
    for m in TOKEN.find_iter(text) {
        // A full stop or colon after the address ends the sentence or starts a port.
        let value = m.as_str().trim_end_matches('.');
        let value = if value.parse::<Ipv6Addr>().is_err() {
            value.trim_end_matches(':')
        } else {
            value
        };
        let (start, end) = (m.start(), m.start() + value.len());
        if value.parse::<Ipv6Addr>().is_err()
            || char_before(text, start).is_some_and(|c| is_word(c) || c == '.')
            || !looks_like_ipv6(text, start, end)
        {
            continue;
        }
        let end = zone_end(text, end);
        if char_at(text, end).is_some_and(is_word) {
            continue;
        }
        let end = prefix_end(text, end, 128);
        let first = value.split(':').next().unwrap_or("");
        push(
            out,
            FindingKind::IpAddress,
            start,
            end,
            format!("{first}:****"),
        );
    }
}
