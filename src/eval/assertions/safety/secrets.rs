//! Secrets: PEM private keys, JSON Web Tokens, API keys recognised by their prefix, and AWS
//! secret access keys next to their label.

use std::sync::LazyLock;

use regex::Regex;

use super::text::{char_at, mask_after, pattern, push};
use super::{Finding, FindingKind};

/// PEM private key blocks, `-----BEGIN ... PRIVATE KEY-----` to the matching end line; a
/// block cut short runs to the end of its base64 lines.
pub(super) fn private_keys(text: &str, out: &mut Vec<Finding>) {
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
pub(super) fn jwts(text: &str, out: &mut Vec<Finding>) {
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
pub(super) fn api_keys(text: &str, out: &mut Vec<Finding>) {
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
pub(super) fn aws_secret_keys(text: &str, out: &mut Vec<Finding>) {
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
