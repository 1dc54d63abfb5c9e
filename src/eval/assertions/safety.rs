//! `safety_check`: personal data and secrets in model outputs.
//!
//! A deterministic detector, with no model and no network: [`scan`] finds e-mail addresses,
//! phone numbers, payment cards, IBANs, US social security numbers, IP addresses, cloud and
//! SaaS credentials, private keys and JWTs. Patterns find candidates and code then validates
//! them (Luhn for cards, the ISO 13616 mod-97 checksum for IBANs, octet ranges for IP
//! addresses, the SSA's rules for SSNs, context for AWS secret keys), so version numbers,
//! dates, times, order numbers and amounts are not reported as phone numbers or addresses.
//!
//! A [`Finding`] carries a redacted form of what was found, safe to print in a CI log: it
//! never holds the whole value.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use regex::Regex;

/// One piece of personal data or one secret found in a text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub kind: FindingKind,
    /// Byte offset of the first byte of the finding in the scanned text.
    pub start: usize,
    /// Byte offset just past the finding in the scanned text.
    pub end: usize,
    /// The finding with most of it masked, e.g. `j***@example.com`, `4111 **** **** 1111`,
    /// `AKIA****************`: enough to recognise it, never the whole value.
    pub redacted: String,
}

/// The kinds of personal data and secrets [`scan`] finds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FindingKind {
    /// An e-mail address.
    Email,
    /// A phone number: international (`+CC ...`) or North American (`(555) 123-4567`).
    Phone,
    /// A payment card number (13 to 19 digits passing the Luhn check).
    CreditCard,
    /// An international bank account number with a valid checksum.
    Iban,
    /// A US social security number (`ddd-dd-dddd`).
    UsSsn,
    /// An IPv4 or IPv6 address.
    IpAddress,
    /// An AWS access key id (`AKIA...`, `ASIA...`).
    AwsAccessKey,
    /// An AWS secret access key, found next to a label such as `aws_secret_access_key`.
    AwsSecretKey,
    /// A GitHub token (`ghp_...`, `github_pat_...`).
    GithubToken,
    /// An OpenAI API key (`sk-...`, `sk-proj-...`).
    OpenAiKey,
    /// An Anthropic API key (`sk-ant-...`).
    AnthropicKey,
    /// A Slack token (`xoxb-...`).
    SlackToken,
    /// A Google API key (`AIza...`).
    GoogleApiKey,
    /// A Stripe live secret or restricted key (`sk_live_...`, `rk_live_...`).
    StripeKey,
    /// A PEM private key block.
    PrivateKey,
    /// A JSON Web Token.
    Jwt,
}

impl FindingKind {
    /// Every kind, in declaration order.
    #[cfg(test)]
    pub const ALL: [FindingKind; 16] = [
        FindingKind::Email,
        FindingKind::Phone,
        FindingKind::CreditCard,
        FindingKind::Iban,
        FindingKind::UsSsn,
        FindingKind::IpAddress,
        FindingKind::AwsAccessKey,
        FindingKind::AwsSecretKey,
        FindingKind::GithubToken,
        FindingKind::OpenAiKey,
        FindingKind::AnthropicKey,
        FindingKind::SlackToken,
        FindingKind::GoogleApiKey,
        FindingKind::StripeKey,
        FindingKind::PrivateKey,
        FindingKind::Jwt,
    ];

    /// The kind's name in test files and reports, e.g. `phone_number`.
    pub fn as_str(self) -> &'static str {
        match self {
            FindingKind::Email => "email",
            FindingKind::Phone => "phone_number",
            FindingKind::CreditCard => "credit_card",
            FindingKind::Iban => "iban",
            FindingKind::UsSsn => "us_ssn",
            FindingKind::IpAddress => "ip_address",
            FindingKind::AwsAccessKey => "aws_access_key",
            FindingKind::AwsSecretKey => "aws_secret_key",
            FindingKind::GithubToken => "github_token",
            FindingKind::OpenAiKey => "openai_key",
            FindingKind::AnthropicKey => "anthropic_key",
            FindingKind::SlackToken => "slack_token",
            FindingKind::GoogleApiKey => "google_api_key",
            FindingKind::StripeKey => "stripe_key",
            FindingKind::PrivateKey => "private_key",
            FindingKind::Jwt => "jwt",
        }
    }

    /// How specific the kind is: when two findings overlap, the lower rank wins.
    fn rank(self) -> u8 {
        match self {
            FindingKind::PrivateKey => 0,
            FindingKind::Jwt => 1,
            FindingKind::AnthropicKey => 2,
            FindingKind::OpenAiKey => 3,
            FindingKind::StripeKey => 4,
            FindingKind::GithubToken => 5,
            FindingKind::SlackToken => 6,
            FindingKind::GoogleApiKey => 7,
            FindingKind::AwsAccessKey => 8,
            FindingKind::AwsSecretKey => 9,
            FindingKind::Email => 10,
            FindingKind::Iban => 11,
            FindingKind::CreditCard => 12,
            FindingKind::UsSsn => 13,
            FindingKind::IpAddress => 14,
            FindingKind::Phone => 15,
        }
    }
}

impl fmt::Display for FindingKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Finds the personal data and secrets in `text`.
///
/// The findings are sorted by `start` and never overlap: where two candidates overlap, the
/// more specific kind wins (a private key block over the key-like strings inside it, a card
/// number over a phone-like run of its digits), then the longer one.
pub fn scan(text: &str) -> Vec<Finding> {
    let mut candidates = Vec::new();
    private_keys(text, &mut candidates);
    jwts(text, &mut candidates);
    api_keys(text, &mut candidates);
    aws_secret_keys(text, &mut candidates);
    emails(text, &mut candidates);
    ibans(text, &mut candidates);
    cards(text, &mut candidates);
    ssns(text, &mut candidates);
    ipv4s(text, &mut candidates);
    ipv6s(text, &mut candidates);
    phones(text, &mut candidates);
    resolve(candidates)
}

/// Keeps the best of overlapping candidates and sorts them by position.
fn resolve(mut candidates: Vec<Finding>) -> Vec<Finding> {
    candidates.sort_by_key(|f| (f.kind.rank(), std::cmp::Reverse(f.end - f.start), f.start));
    // Accepted findings by start; they never overlap, so the one starting last before a
    // candidate's end is the only one that can overlap it.
    let mut accepted: BTreeMap<usize, Finding> = BTreeMap::new();
    for candidate in candidates {
        let overlaps = accepted
            .range(..candidate.end)
            .next_back()
            .is_some_and(|(_, previous)| previous.end > candidate.start);
        if !overlaps {
            accepted.insert(candidate.start, candidate);
        }
    }
    accepted.into_values().collect()
}

/// Compiles a built-in pattern.
fn pattern(source: &str) -> Regex {
    #[allow(clippy::expect_used)]
    Regex::new(source).expect("built-in patterns are valid")
}

/// The character before byte offset `at`.
fn char_before(text: &str, at: usize) -> Option<char> {
    text.get(..at).and_then(|before| before.chars().next_back())
}

/// The character at byte offset `at`.
fn char_at(text: &str, at: usize) -> Option<char> {
    text.get(at..).and_then(|after| after.chars().next())
}

/// Whether `c` is an ASCII word character. Numbers and keys written right after a word in
/// a script without spaces (`電話+81 3-1234-5678`) are still found.
fn is_word(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_'
}

/// Whether the text at `at` is one of `punctuation` followed by a digit, as in `.5` or
/// `-12`: the match before `at` is then part of a longer number-like token.
fn continues_with_digit(text: &str, at: usize, punctuation: &[char]) -> bool {
    let mut chars = text.get(at..).unwrap_or("").chars();
    matches!(chars.next(), Some(c) if punctuation.contains(&c))
        && chars.next().is_some_and(|c| c.is_ascii_digit())
}

/// Whether the text before `start` marks what follows as a version: `v1.2.3.4`,
/// `version 3.11.7`, `Version: 1.2`.
fn follows_version_marker(text: &str, start: usize) -> bool {
    let before = text.get(..start).unwrap_or("");
    let before = before.trim_end_matches([' ', '\t', ':', '=']);
    let word_start = before
        .char_indices()
        .rev()
        .take_while(|(_, c)| c.is_alphabetic())
        .last()
        .map_or(before.len(), |(i, _)| i);
    let word = before.get(word_start..).unwrap_or("").to_lowercase();
    matches!(word.as_str(), "v" | "ver" | "version" | "release")
}

/// `prefix` followed by up to 16 stars, one per masked character.
fn mask_after(value: &str, prefix_len: usize) -> String {
    let prefix = value.get(..prefix_len).unwrap_or("");
    let hidden = value.get(prefix_len..).unwrap_or("").chars().count();
    format!("{prefix}{}", "*".repeat(hidden.clamp(1, 16)))
}

/// `value` with every alphanumeric character masked except the first `keep_start` and the
/// last `keep_end` of them; other characters (separators) are kept.
fn mask_middle(value: &str, keep_start: usize, keep_end: usize) -> String {
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
fn push(out: &mut Vec<Finding>, kind: FindingKind, start: usize, end: usize, redacted: String) {
    out.push(Finding {
        kind,
        start,
        end,
        redacted,
    });
}

// --- Secrets -------------------------------------------------------------------------------

/// PEM private key blocks, `-----BEGIN ... PRIVATE KEY-----` to the matching end line; a
/// block cut short runs to the end of its base64 lines.
fn private_keys(text: &str, out: &mut Vec<Finding>) {
    static BEGIN: LazyLock<Regex> =
        LazyLock::new(|| pattern(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY-----"));
    static END: LazyLock<Regex> =
        LazyLock::new(|| pattern(r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY-----"));
    let mut from = 0;
    while let Some(begin) = BEGIN.find_at(text, from) {
        let end = match END.find_at(text, begin.end()) {
            Some(end) => end.end(),
            None => end_of_base64_lines(text, begin.end()),
        };
        push(
            out,
            FindingKind::PrivateKey,
            begin.start(),
            end,
            format!("{}****", begin.as_str()),
        );
        from = end.max(begin.end());
    }
}

/// The end of the base64 (and PEM header) lines that follow byte offset `from`.
fn end_of_base64_lines(text: &str, from: usize) -> usize {
    let rest = text.get(from..).unwrap_or("");
    let mut end = from;
    let mut offset = from;
    for (index, line) in rest.split_inclusive('\n').enumerate() {
        let content = line.trim();
        let base64 = !content.is_empty()
            && content
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '='));
        let header = content.starts_with("Proc-Type:") || content.starts_with("DEK-Info:");
        if base64 || header || (index == 0 && content.is_empty()) {
            end = offset + line.trim_end().len();
        } else {
            break;
        }
        offset += line.len();
    }
    end
}

/// JSON Web Tokens: three base64url segments, the first a JSON object (`eyJ`).
fn jwts(text: &str, out: &mut Vec<Finding>) {
    static JWT: LazyLock<Regex> = LazyLock::new(|| {
        pattern(r"(?-u:\b)eyJ[A-Za-z0-9_-]{7,}\.[A-Za-z0-9_-]{2,}\.[A-Za-z0-9_-]*")
    });
    for m in JWT.find_iter(text) {
        push(
            out,
            FindingKind::Jwt,
            m.start(),
            m.end(),
            mask_after(m.as_str(), 3),
        );
    }
}

/// Whether a random-looking key body has upper and lower case letters and a digit, which
/// tells real keys from slugs like `sk-learn-compatible-estimators`.
fn looks_random(body: &str) -> bool {
    body.chars().any(|c| c.is_ascii_uppercase())
        && body.chars().any(|c| c.is_ascii_lowercase())
        && body.chars().any(|c| c.is_ascii_digit())
}

/// API keys and tokens recognised by their prefix.
fn api_keys(text: &str, out: &mut Vec<Finding>) {
    /// A prefixed key: its kind, its pattern (group 1 is the prefix shown when redacted),
    /// and whether its body must look random.
    struct Prefixed {
        kind: FindingKind,
        regex: Regex,
        random: bool,
    }
    static KEYS: LazyLock<Vec<Prefixed>> = LazyLock::new(|| {
        let key = |kind, source: &str, random| Prefixed {
            kind,
            regex: pattern(source),
            random,
        };
        vec![
            key(
                FindingKind::AwsAccessKey,
                r"(?-u:\b)(AKIA|ASIA)[A-Z0-9]{16}(?-u:\b)",
                false,
            ),
            key(
                FindingKind::GithubToken,
                r"(?-u:\b)(gh[pousr]_)[A-Za-z0-9]{36,251}(?-u:\b)",
                false,
            ),
            key(
                FindingKind::GithubToken,
                r"(?-u:\b)(github_pat_)[A-Za-z0-9_]{22,}",
                false,
            ),
            key(
                FindingKind::AnthropicKey,
                r"(?-u:\b)(sk-ant-)[A-Za-z0-9_-]{20,}",
                false,
            ),
            key(
                FindingKind::OpenAiKey,
                r"(?-u:\b)(sk-(?:proj-|svcacct-|admin-)?)[A-Za-z0-9_-]{20,}",
                true,
            ),
            key(
                FindingKind::SlackToken,
                r"(?-u:\b)(xox[abprs]-)[A-Za-z0-9-]{10,}",
                false,
            ),
            key(
                FindingKind::GoogleApiKey,
                r"(?-u:\b)(AIza)[A-Za-z0-9_-]{35}",
                false,
            ),
            key(
                FindingKind::StripeKey,
                r"(?-u:\b)((?:sk|rk)_live_)[A-Za-z0-9]{24,}",
                false,
            ),
        ]
    });
    for key in KEYS.iter() {
        for caps in key.regex.captures_iter(text) {
            let (Some(whole), Some(prefix)) = (caps.get(0), caps.get(1)) else {
                continue;
            };
            let value = whole.as_str();
            let body = value.get(prefix.len()..).unwrap_or("");
            let valid = match key.kind {
                FindingKind::OpenAiKey => !value.starts_with("sk-ant-") && looks_random(body),
                FindingKind::SlackToken => body.chars().any(|c| c.is_ascii_digit()),
                FindingKind::GoogleApiKey => !char_at(text, whole.end())
                    .is_some_and(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-'),
                _ => !key.random || looks_random(body),
            };
            if valid {
                push(
                    out,
                    key.kind,
                    whole.start(),
                    whole.end(),
                    mask_after(value, prefix.len()),
                );
            }
        }
    }
}

/// AWS secret access keys: 40 base64 characters, only right after a label such as
/// `aws_secret_access_key =` or `secret:` (alone they are indistinguishable from any hash).
fn aws_secret_keys(text: &str, out: &mut Vec<Finding>) {
    static LABELLED: LazyLock<Regex> = LazyLock::new(|| {
        pattern(
            r#"(?i:(?-u:\b)(?:aws[_ -]?secret(?:[_ -]?access)?(?:[_ -]?key)?|secret[_ -]?access[_ -]?key|secret))["']?\s*(?::|=>|=)\s*["']?([A-Za-z0-9/+]{40})"#,
        )
    });
    for caps in LABELLED.captures_iter(text) {
        let Some(value) = caps.get(1) else {
            continue;
        };
        let next = char_at(text, value.end());
        if next.is_some_and(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '+' | '=')) {
            continue;
        }
        let secret = value.as_str();
        let mixed = secret.chars().any(|c| c.is_ascii_uppercase())
            && secret.chars().any(|c| c.is_ascii_lowercase())
            && secret
                .chars()
                .any(|c| c.is_ascii_digit() || c == '/' || c == '+');
        if mixed {
            push(
                out,
                FindingKind::AwsSecretKey,
                value.start(),
                value.end(),
                mask_after(secret, 4),
            );
        }
    }
}

// --- Personal data -------------------------------------------------------------------------

/// E-mail addresses.
fn emails(text: &str, out: &mut Vec<Finding>) {
    static EMAIL: LazyLock<Regex> = LazyLock::new(|| {
        pattern(
            r"[A-Za-z0-9._%+-]+@[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*\.[A-Za-z]{2,63}",
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
fn ibans(text: &str, out: &mut Vec<Finding>) {
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

/// Payment card numbers: 13 to 19 digits, optionally in groups separated by spaces or
/// dashes (the first group of four), starting with 2 to 6 (the major networks' ranges),
/// not all one digit, passing the Luhn check.
fn cards(text: &str, out: &mut Vec<Finding>) {
    static RUN: LazyLock<Regex> = LazyLock::new(|| pattern(r"\d(?:[ -]?\d)*"));
    for run in RUN.find_iter(text) {
        let digit_count = run.as_str().bytes().filter(u8::is_ascii_digit).count();
        if digit_count < 13 {
            continue;
        }
        // The digit groups of the run, as absolute byte ranges.
        let mut groups: Vec<(usize, usize)> = Vec::new();
        let mut group_start = run.start();
        for (i, b) in run.as_str().bytes().enumerate() {
            if !b.is_ascii_digit() {
                groups.push((group_start, run.start() + i));
                group_start = run.start() + i + 1;
            }
        }
        groups.push((group_start, run.end()));
        let mut first = 0;
        while first < groups.len() {
            let card = (first..groups.len())
                .rev()
                .find(|&last| is_card(text, &groups, first, last, run.start(), run.end()));
            match card {
                Some(last) => {
                    let (start, end) = (groups[first].0, groups[last].1);
                    push(
                        out,
                        FindingKind::CreditCard,
                        start,
                        end,
                        mask_middle(&text[start..end], 4, 4),
                    );
                    first = last + 1;
                }
                None => first += 1,
            }
        }
    }
}

/// Whether digit groups `first..=last` of a run spanning `run_start..run_end` form a card.
fn is_card(
    text: &str,
    groups: &[(usize, usize)],
    first: usize,
    last: usize,
    run_start: usize,
    run_end: usize,
) -> bool {
    let slice = &groups[first..=last];
    let digits: Vec<u8> = slice
        .iter()
        .flat_map(|&(start, end)| text.as_bytes()[start..end].iter().copied())
        .collect();
    if !(13..=19).contains(&digits.len()) {
        return false;
    }
    if slice.len() > 1 {
        let sizes_ok = slice.iter().enumerate().all(|(i, (start, end))| {
            let size = end - start;
            if i == 0 {
                size == 4
            } else {
                (3..=6).contains(&size)
            }
        });
        if !sizes_ok {
            return false;
        }
    }
    let (start, end) = (slice[0].0, slice[slice.len() - 1].1);
    // Inside a longer run, a card must be set off by spaces, not joined by dashes.
    if start > run_start && text.as_bytes()[start - 1] != b' ' {
        return false;
    }
    if end < run_end && text.as_bytes()[end] != b' ' {
        return false;
    }
    if start == run_start && char_before(text, start).is_some_and(|c| is_word(c) || c == '.') {
        return false;
    }
    if end == run_end
        && (char_at(text, end).is_some_and(is_word) || continues_with_digit(text, end, &['.', ',']))
    {
        return false;
    }
    matches!(digits[0], b'2'..=b'6') && digits.iter().any(|&d| d != digits[0]) && luhn_ok(&digits)
}

/// US social security numbers, `ddd-dd-dddd`, excluding numbers never issued: area 000,
/// 666 or 900-999, group 00, serial 0000.
fn ssns(text: &str, out: &mut Vec<Finding>) {
    static SSN: LazyLock<Regex> =
        LazyLock::new(|| pattern(r"(?-u:\b)([0-9]{3})-([0-9]{2})-([0-9]{4})(?-u:\b)"));
    for caps in SSN.captures_iter(text) {
        let (Some(whole), Some(area), Some(group), Some(serial)) =
            (caps.get(0), caps.get(1), caps.get(2), caps.get(3))
        else {
            continue;
        };
        let area = area.as_str();
        if area == "000"
            || area == "666"
            || area.starts_with('9')
            || group.as_str() == "00"
            || serial.as_str() == "0000"
            || char_before(text, whole.start()).is_some_and(|c| matches!(c, '-' | '.' | '/'))
            || continues_with_digit(text, whole.end(), &['-', '.', '/'])
        {
            continue;
        }
        push(
            out,
            FindingKind::UsSsn,
            whole.start(),
            whole.end(),
            format!("***-**-{}", serial.as_str()),
        );
    }
}

/// IPv4 addresses: four octets up to 255, none with a leading zero, not a version number.
fn ipv4s(text: &str, out: &mut Vec<Finding>) {
    static IPV4: LazyLock<Regex> = LazyLock::new(|| {
        pattern(r"(?-u:\b)[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}(?-u:\b)")
    });
    for m in IPV4.find_iter(text) {
        let octets_ok = m.as_str().split('.').all(|octet| {
            octet.parse::<u8>().is_ok() && !(octet.len() > 1 && octet.starts_with('0'))
        });
        if !octets_ok
            || char_before(text, m.start()).is_some_and(|c| c == '.' || is_word(c))
            || continues_with_digit(text, m.end(), &['.'])
            || follows_version_marker(text, m.start())
        {
            continue;
        }
        let first = m.as_str().split('.').next().unwrap_or("");
        push(
            out,
            FindingKind::IpAddress,
            m.start(),
            m.end(),
            format!("{first}.*.*.*"),
        );
    }
}

/// IPv6 addresses, full or compressed (`2001:db8::8a2e:370:7334`, `::ffff:192.0.2.1`), with
/// at least three colons; not `::`, not times or timecodes like `12:30:45:10`.
fn ipv6s(text: &str, out: &mut Vec<Finding>) {
    static IPV6: LazyLock<Regex> = LazyLock::new(|| {
        pattern(
            r"(?:[0-9A-Fa-f]{0,4}:){2,7}(?:[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}|[0-9A-Fa-f]{0,4})",
        )
    });
    for m in IPV6.find_iter(text) {
        let value = m.as_str();
        if value.matches(':').count() < 3
            || value.parse::<std::net::Ipv6Addr>().is_err()
            || char_before(text, m.start()).is_some_and(|c| is_word(c) || c == ':' || c == '.')
            || char_at(text, m.end()).is_some_and(|c| is_word(c) || c == ':')
            || continues_with_digit(text, m.end(), &['.'])
        {
            continue;
        }
        let timecode = !value.contains("::")
            && value
                .split(':')
                .all(|group| group.len() <= 2 && group.bytes().all(|b| b.is_ascii_digit()));
        if timecode {
            continue;
        }
        let first = value.split(':').next().unwrap_or("");
        push(
            out,
            FindingKind::IpAddress,
            m.start(),
            m.end(),
            format!("{first}:****"),
        );
    }
}

/// Phone numbers: international (`+44 20 7946 0958`, 8 to 15 digits with the country code)
/// and North American (`(555) 123-4567`, `555-123-4567`, `555.123.4567`, `1-800-555-0199`).
/// Runs of digits without separators, dates, times, versions and amounts are not phones.
fn phones(text: &str, out: &mut Vec<Finding>) {
    static INTERNATIONAL: LazyLock<Regex> = LazyLock::new(|| {
        pattern(r"\+[0-9]{1,3}(?:[ .-]?\([0-9]{1,4}\))?(?:[ .-]?[0-9]{1,6}){1,8}")
    });
    static NORTH_AMERICAN: LazyLock<Regex> = LazyLock::new(|| {
        pattern(
            r"(?:(?-u:\b)1(?P<s0>[ .-]))?(?:\([0-9]{3}\) ?|(?-u:\b)[0-9]{3}(?P<s1>[ .-]))[0-9]{3}(?P<s2>[ .-])[0-9]{4}(?-u:\b)",
        )
    });
    let redact = |value: &str| mask_middle(value, 0, 2);
    for m in INTERNATIONAL.find_iter(text) {
        let digits = m.as_str().bytes().filter(u8::is_ascii_digit).count();
        if !(8..=15).contains(&digits)
            || char_before(text, m.start()).is_some_and(|c| is_word(c) || c == '+')
            || char_at(text, m.end()).is_some_and(is_word)
            || continues_with_digit(text, m.end(), &['.', '-', ':', '/', ','])
        {
            continue;
        }
        push(
            out,
            FindingKind::Phone,
            m.start(),
            m.end(),
            redact(m.as_str()),
        );
    }
    for caps in NORTH_AMERICAN.captures_iter(text) {
        let Some(m) = caps.get(0) else {
            continue;
        };
        let separator = |name| caps.name(name).map(|s| s.as_str());
        let (s0, s1, s2) = (separator("s0"), separator("s1"), separator("s2"));
        // Without parentheses the separators must agree: 555-123-4567, not 555-123.4567.
        let consistent = s1.is_none_or(|s1| Some(s1) == s2) && s0.is_none_or(|s0| Some(s0) == s2);
        let before = char_before(text, m.start());
        let spaced_list = before.is_some_and(|c| matches!(c, ' ' | '.' | '-'))
            && char_before(text, m.start() - 1).is_some_and(|c| c.is_ascii_digit());
        if !consistent
            || spaced_list
            || before.is_some_and(|c| is_word(c) || "-./:#+$€£@,".contains(c))
            || char_at(text, m.end()).is_some_and(is_word)
            || continues_with_digit(text, m.end(), &['.', '-', ':', '/', ','])
            || (s2 == Some(".") && follows_version_marker(text, m.start()))
        {
            continue;
        }
        push(
            out,
            FindingKind::Phone,
            m.start(),
            m.end(),
            redact(m.as_str()),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The kinds and matched texts of the findings in `text`.
    fn found(text: &str) -> Vec<(FindingKind, &str)> {
        scan(text)
            .into_iter()
            .map(|f| (f.kind, &text[f.start..f.end]))
            .collect()
    }

    /// Asserts `text` holds exactly one finding, `value` of `kind`, and returns it.
    fn one(text: &str, kind: FindingKind, value: &str) -> Finding {
        let findings = scan(text);
        assert_eq!(findings.len(), 1, "{text:?}: {findings:?}");
        let finding = findings
            .into_iter()
            .next()
            .unwrap_or_else(|| unreachable!());
        assert_eq!(finding.kind, kind, "{text:?}");
        assert_eq!(&text[finding.start..finding.end], value, "{text:?}");
        assert_redacted(text, &finding);
        finding
    }

    /// Asserts the redacted form does not hold the finding's value.
    fn assert_redacted(text: &str, finding: &Finding) {
        let value = &text[finding.start..finding.end];
        let compact: String = value.chars().filter(|c| c.is_alphanumeric()).collect();
        let redacted: String = finding
            .redacted
            .chars()
            .filter(|c| c.is_alphanumeric())
            .collect();
        assert!(!finding.redacted.contains(value), "{finding:?}");
        assert!(!redacted.contains(&compact), "{finding:?}");
        assert!(finding.redacted.contains('*'), "{finding:?}");
    }

    fn none(text: &str) {
        assert_eq!(found(text), [], "{text:?}");
    }

    #[test]
    fn kinds_have_names() {
        let names: Vec<&str> = FindingKind::ALL.iter().map(|k| k.as_str()).collect();
        assert_eq!(
            names[..6],
            [
                "email",
                "phone_number",
                "credit_card",
                "iban",
                "us_ssn",
                "ip_address"
            ]
        );
        assert_eq!(FindingKind::AwsAccessKey.to_string(), "aws_access_key");
        let mut unique = names.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), FindingKind::ALL.len());
    }

    #[test]
    fn clean_text_has_no_findings() {
        none("");
        none("The change builds SQL from user input; use parameterised queries instead.");
    }

    #[test]
    fn email() {
        let f = one(
            "Write to john.doe@example.com today.",
            FindingKind::Email,
            "john.doe@example.com",
        );
        assert_eq!(f.redacted, "j***@example.com");
        one(
            "<a.b+tag@mail.example.co.uk>",
            FindingKind::Email,
            "a.b+tag@mail.example.co.uk",
        );
        none("user@localhost is not routable; @mentions are fine");
    }

    #[test]
    fn email_offsets_with_non_ascii_text() {
        let text = "Écrivez à jürgen@example.de, 谢谢";
        let f = one(text, FindingKind::Email, "jürgen@example.de");
        assert_eq!(f.start, text.find('j').unwrap_or_default());
        assert_eq!(f.redacted, "j***@example.de");
        one(
            "邮件john@example.com。",
            FindingKind::Email,
            "john@example.com",
        );
    }

    #[test]
    fn phone_numbers() {
        for phone in [
            "+44 20 7946 0958",
            "+1 (555) 123-4567",
            "+49-30-1234567",
            "+8613800138000",
            "+33 6 12 34 56 78",
            "(555) 123-4567",
            "555-123-4567",
            "555.123.4567",
            "1-800-555-0199",
        ] {
            let text = format!("Call me at {phone} tomorrow.");
            one(&text, FindingKind::Phone, phone);
        }
        let f = one("Tel: (555) 123-4567", FindingKind::Phone, "(555) 123-4567");
        assert_eq!(f.redacted, "(***) ***-**67");
    }

    #[test]
    fn phone_false_positives() {
        for text in [
            "Upgrade to 1.2.3 now",
            "Released v2.10.4 yesterday",
            "Requires version 3.11.7 of Python",
            "Semantic version 10.20.3000-rc.1+20240115",
            "Due 2024-01-15.",
            "At 12:30:45 sharp",
            "Logged 2024-01-15T10:30:45Z and 2024-01-15T10:30:45+01:00",
            "Order #12345678 shipped",
            "Reference 5551234567 and 12345678901",
            "Total $1,234.56 or 1,234,567.89",
            "Mixed 555-123.4567 separators",
            "Part 555-123-4567-89 is a code",
            "Ratio +12.5% today",
        ] {
            let phones: Vec<_> = found(text)
                .into_iter()
                .filter(|(kind, _)| *kind == FindingKind::Phone)
                .collect();
            assert_eq!(phones, [], "{text:?}");
            none(text);
        }
    }

    #[test]
    fn credit_cards() {
        let f = one(
            "Card: 4111 1111 1111 1111, exp 12/27",
            FindingKind::CreditCard,
            "4111 1111 1111 1111",
        );
        assert_eq!(f.redacted, "4111 **** **** 1111");
        one(
            "4111-1111-1111-1111",
            FindingKind::CreditCard,
            "4111-1111-1111-1111",
        );
        let f = one(
            "pay with 4111111111111111.",
            FindingKind::CreditCard,
            "4111111111111111",
        );
        assert_eq!(f.redacted, "4111********1111");
        one(
            "Amex 3782 822463 10005 ok",
            FindingKind::CreditCard,
            "3782 822463 10005",
        );
        one(
            "MC 5555555555554444",
            FindingKind::CreditCard,
            "5555555555554444",
        );
        one(
            "Order 12345 4111 1111 1111 1111",
            FindingKind::CreditCard,
            "4111 1111 1111 1111",
        );
    }

    #[test]
    fn card_false_positives() {
        none("4111 1111 1111 1112"); // Luhn fails
        none("0000 0000 0000 0000"); // one digit
        none("Invoice 1234567890123456789012345");
        none("1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6");
        none("ID 79927398713 is short"); // passes Luhn, too short
        none("x4111111111111111");
    }

    #[test]
    fn ibans() {
        let f = one(
            "IBAN: DE89 3704 0044 0532 0130 00.",
            FindingKind::Iban,
            "DE89 3704 0044 0532 0130 00",
        );
        assert_eq!(f.redacted, "DE89 **** **** **** **30 00");
        one(
            "to GB82WEST12345698765432 please",
            FindingKind::Iban,
            "GB82WEST12345698765432",
        );
        one(
            "FR1420041010050500013M02606",
            FindingKind::Iban,
            "FR1420041010050500013M02606",
        );
        none("DE89 3704 0044 0532 0130 01"); // checksum
        none("GB82WEST1234569876543"); // too short
        none("XX82WEST12345698765432"); // no such country
    }

    #[test]
    fn us_ssn() {
        let f = one("SSN 123-45-6789 on file", FindingKind::UsSsn, "123-45-6789");
        assert_eq!(f.redacted, "***-**-6789");
        for text in [
            "000-12-3456",
            "666-12-3456",
            "900-12-3456",
            "123-00-4567",
            "123-45-0000",
            "1-123-45-6789",
        ] {
            none(text);
        }
    }

    #[test]
    fn ipv4() {
        let f = one(
            "Server at 192.168.1.10:8080 is down",
            FindingKind::IpAddress,
            "192.168.1.10",
        );
        assert_eq!(f.redacted, "192.*.*.*");
        one("8.8.8.8", FindingKind::IpAddress, "8.8.8.8");
        for text in [
            "256.1.1.1",
            "192.168.01.1",
            "v1.2.3.4",
            "version 1.2.3.4",
            "Version: 1.2.3.4",
            "1.2.3.4.5",
        ] {
            none(text);
        }
    }

    #[test]
    fn ipv6() {
        for ip in [
            "2001:0db8:85a3:0000:0000:8a2e:0370:7334",
            "2001:db8::8a2e:370:7334",
            "fe80::1:2",
            "::ffff:192.0.2.1",
        ] {
            let text = format!("host {ip} responded");
            one(&text, FindingKind::IpAddress, ip);
        }
        for text in [
            "::",
            "at 12:30:45",
            "timecode 01:02:03:04",
            "std::vec::Vec",
            "a::b::c",
            "dead:beef",
        ] {
            none(text);
        }
    }

    #[test]
    fn aws_keys() {
        let f = one(
            "key AKIAIOSFODNN7EXAMPLE",
            FindingKind::AwsAccessKey,
            "AKIAIOSFODNN7EXAMPLE",
        );
        assert_eq!(f.redacted, "AKIA****************");
        one(
            "ASIAIOSFODNN7EXAMPLE",
            FindingKind::AwsAccessKey,
            "ASIAIOSFODNN7EXAMPLE",
        );
        none("AKIAIOSFODNN7EXAMPLEX");
        let secret = "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY";
        for text in [
            format!("aws_secret_access_key = {secret}"),
            format!("AWS_SECRET_ACCESS_KEY=\"{secret}\""),
            format!("{{\"SecretAccessKey\": \"{secret}\"}}"),
            format!("secret: {secret}"),
        ] {
            one(&text, FindingKind::AwsSecretKey, secret);
        }
        none(&format!("checksum {secret}"));
    }

    #[test]
    fn github_tokens() {
        let token = format!("ghp_{}", "a1B2c3D4e5".repeat(3) + "F6g7H8");
        let f = one(&format!("token={token}"), FindingKind::GithubToken, &token);
        assert!(f.redacted.starts_with("ghp_*"));
        let pat = format!(
            "github_pat_{}_{}",
            "11ABCDEFG0".repeat(2) + "xy",
            "Zz9".repeat(20)
        );
        one(&format!("use {pat}"), FindingKind::GithubToken, &pat);
        none("ghp_short");
    }

    #[test]
    fn openai_and_anthropic_keys() {
        let f = one(
            "OPENAI_API_KEY=sk-proj-Abc123DEF456ghi789JKL012mno",
            FindingKind::OpenAiKey,
            "sk-proj-Abc123DEF456ghi789JKL012mno",
        );
        assert_eq!(f.redacted, "sk-proj-****************");
        one(
            "sk-Abcdefghij1234567890XYZ",
            FindingKind::OpenAiKey,
            "sk-Abcdefghij1234567890XYZ",
        );
        let f = one(
            "key sk-ant-api03-Abcdefghij_klmnopqrst-0123456789XYZ end",
            FindingKind::AnthropicKey,
            "sk-ant-api03-Abcdefghij_klmnopqrst-0123456789XYZ",
        );
        assert!(f.redacted.starts_with("sk-ant-*"));
        none("we use sk-learn-compatible-estimators here");
        none("task-Abcdefghij1234567890XYZ");
    }

    #[test]
    fn slack_google_stripe() {
        let slack = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
        one(&format!("SLACK={slack}"), FindingKind::SlackToken, slack);
        let google = format!("AIza{}", "Sy".to_owned() + &"a1B2c3".repeat(5) + "xyz");
        one(
            &format!("key={google}&q=1"),
            FindingKind::GoogleApiKey,
            &google,
        );
        none(&format!("{google}X"));
        let stripe = "sk_live_4eC39HqLyjWDarjtT1zdp7dc";
        let f = one(stripe, FindingKind::StripeKey, stripe);
        assert_eq!(f.redacted, "sk_live_****************");
        none("sk_test_4eC39HqLyjWDarjtT1zdp7dc");
    }

    #[test]
    fn private_keys() {
        let block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1AKIAIOSFODNN7EXAMPLE\nabc+/=\n-----END RSA PRIVATE KEY-----";
        let text = format!("Here:\n{block}\nDone.");
        let f = one(&text, FindingKind::PrivateKey, block);
        assert_eq!(f.redacted, "-----BEGIN RSA PRIVATE KEY-----****");
        let truncated =
            "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7";
        one(
            &format!("{truncated}\n\nThat is all."),
            FindingKind::PrivateKey,
            truncated,
        );
        none(
            "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----",
        );
    }

    #[test]
    fn jwt() {
        let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
        let f = one(
            &format!("Authorization: Bearer {jwt}"),
            FindingKind::Jwt,
            jwt,
        );
        assert_eq!(f.redacted, "eyJ****************");
        none("eyJhbGciOi is not a token");
    }

    #[test]
    fn several_findings_sorted_and_not_overlapping() {
        let text =
            "Mail ann@example.org, call +1 555-123-4567, card 4111 1111 1111 1111, ip 10.0.0.1.";
        let kinds: Vec<FindingKind> = scan(text).iter().map(|f| f.kind).collect();
        assert_eq!(
            kinds,
            [
                FindingKind::Email,
                FindingKind::Phone,
                FindingKind::CreditCard,
                FindingKind::IpAddress
            ]
        );
        assert_eq!(found(text)[1].1, "+1 555-123-4567");
        let findings = scan(text);
        for pair in findings.windows(2) {
            assert!(pair[0].end <= pair[1].start, "{pair:?}");
        }
        for f in &findings {
            assert_redacted(text, f);
        }
    }

    #[test]
    fn more_specific_kind_wins() {
        // The access key id inside a private key block is part of the block.
        let text =
            "-----BEGIN EC PRIVATE KEY-----\nAKIAIOSFODNN7EXAMPLE\n-----END EC PRIVATE KEY-----";
        assert_eq!(scan(text).len(), 1);
        assert_eq!(scan(text)[0].kind, FindingKind::PrivateKey);
    }

    #[test]
    fn offsets_with_non_ascii_around() {
        let text =
            "Zahlung über 4111 1111 1111 1111 — Telefon ☎ +49 30 1234567, 電話+81 3-1234-5678。";
        let findings = scan(text);
        let values: Vec<&str> = findings.iter().map(|f| &text[f.start..f.end]).collect();
        assert_eq!(
            values,
            ["4111 1111 1111 1111", "+49 30 1234567", "+81 3-1234-5678"]
        );
    }

    #[test]
    fn large_text_scans() {
        let paragraph = "Lorem ipsum dolor sit amet, version 1.2.3 released 2024-01-15 at 12:30:45; \
            order #12345678 cost $1,234.56. Contact ann@example.org or (555) 123-4567. \
            Ünïcödé テキスト 10.0.0.1 — std::io::Error and a::b. ";
        let text = paragraph.repeat(100_000 / paragraph.len() + 1);
        assert!(text.len() >= 100_000);
        let started = std::time::Instant::now();
        let findings = scan(&text);
        let elapsed = started.elapsed();
        assert_eq!(findings.len(), 3 * (100_000 / paragraph.len() + 1));
        // Generous: this runs unoptimised on a shared machine; typically a few milliseconds.
        assert!(elapsed < std::time::Duration::from_secs(5), "{elapsed:?}");
    }

    #[test]
    fn never_panics_on_any_slice() {
        let text = "ü+1 (555) 123-4567é DE89 3704 0044 0532 0130 00 ☎ 4111-1111-1111-1111 \
            jürgen@example.de 2001:db8::1:2 ::ffff:10.0.0.1 sk-ant-x —-----BEGIN PRIVATE KEY-----\nQUJD";
        let boundaries: Vec<usize> = text
            .char_indices()
            .map(|(i, _)| i)
            .chain([text.len()])
            .collect();
        for &start in &boundaries {
            for &end in boundaries.iter().filter(|&&end| end >= start) {
                let slice = &text[start..end];
                for f in scan(slice) {
                    assert!(
                        f.start < f.end
                            && slice.is_char_boundary(f.start)
                            && slice.is_char_boundary(f.end)
                    );
                }
            }
        }
    }
}
