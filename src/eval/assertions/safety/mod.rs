//! `safety_check`: personal data and secrets in model outputs.
//!
//! A deterministic detector, with no model and no network: [`scan`] finds e-mail addresses,
//! phone numbers, payment cards, IBANs, US social security numbers, IP addresses, cloud and
//! SaaS credentials, private keys and JWTs. A cheap pass finds candidates and code then
//! validates them with what the field uses: libphonenumber's metadata for phone numbers
//! (`phone.rs`), the standard library's parsers for IP addresses (`ip.rs`), issuer ranges
//! and Luhn for cards (`card.rs`), the ISO 13616 checksum for IBANs, the SSA's rules for
//! SSNs (`ssn.rs`), context for AWS secret keys. So version numbers, dates, times, order numbers
//! and amounts are not reported as phone numbers or addresses.
//!
//! Not here: names and postal addresses, which need a model (`llm_judge`).
//!
//! A [`Finding`] carries a redacted form of what was found, safe to print in a CI log: it
//! never holds the whole value.

mod card;
mod email;
mod iban;
mod ip;
mod phone;
mod secrets;
mod ssn;
mod text;

#[cfg(test)]
mod corpus;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;
use std::fmt;

pub use phone::Region;

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
    /// A phone number valid by libphonenumber's metadata: international (`+CC ...`) for
    /// every region, national for the regions scanned (`[test] pii_regions`).
    Phone,
    /// A payment card number: an issuer's prefix and length, passing the Luhn check.
    CreditCard,
    /// An international bank account number with a valid checksum.
    Iban,
    /// A US social security number (`ddd-dd-dddd`, or with dots, spaces or none).
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

/// Finds the personal data and secrets in `text`; phone numbers written without a country
/// code are read as numbers of `regions`.
///
/// The findings are sorted by `start` and never overlap: where two candidates overlap, the
/// more specific kind wins (a private key block over the key-like strings inside it, a card
/// number over a phone-like run of its digits), then the longer one.
pub fn scan(text: &str, regions: &[Region]) -> Vec<Finding> {
    let mut candidates = Vec::new();
    secrets::private_keys(text, &mut candidates);
    secrets::jwts(text, &mut candidates);
    secrets::api_keys(text, &mut candidates);
    secrets::aws_secret_keys(text, &mut candidates);
    email::emails(text, &mut candidates);
    iban::ibans(text, &mut candidates);
    card::cards(text, &mut candidates);
    ssn::ssns(text, &mut candidates);
    ip::ipv4s(text, &mut candidates);
    ip::ipv6s(text, &mut candidates);
    phone::phones(text, regions, &mut candidates);
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
