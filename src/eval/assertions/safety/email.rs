//! E-mail addresses.

use std::sync::LazyLock;

use regex::Regex;

use super::text::{char_at, char_before, pattern, push};
use super::{Finding, FindingKind};

/// E-mail addresses, internationalised domains (punycode, `xn--`) included.
pub(super) fn emails(text: &str, out: &mut Vec<Finding>) {
    static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
        pattern(
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.(?:xn--[A-Za-z0-9-]{1,59}|[A-Za-z]{2,63})",
        )
    });
    for m in EMAIL.find_iter(text) {
        // The pattern's local part is ASCII; a name like `jürgen` is taken whole, but text in
        // scripts written without spaces (`邮件john@example.com`) is not.
        let mut start = m.start();
        while let Some(c) = char_before(text, start) {
            let latin_like = c.is_alphabetic() && c < '\u{2E80}';
            if !(latin_like || c.is_ascii_alphanumeric() || "._%+-".contains(c)) {
                break;
            }
            start -= c.len_utf8();
        }
        let value = &text[start..m.end()];
        let leading_dots = value.len() - value.trim_start_matches('.').len();
        let start = start + leading_dots;
        let value = &value[leading_dots..];
        let Some((local, domain)) = value.split_once('@') else {
            continue;
        };
        if local.is_empty()
            || local.ends_with('.')
            || char_at(text, m.end()).is_some_and(|c| c.is_ascii_alphanumeric() || c == '@')
        {
            continue;
        }
        let first: String = local.chars().take(1).collect();
        push(
            out,
            FindingKind::Email,
            start,
            m.end(),
            format!("{first}***@{domain}"),
        );
    }
}
