//! Unit tests of the detectors: redaction, secrets, regions, overlaps, offsets and hostile
//! input. The personal-data cases and their clean look-alikes are in the corpus
//! (`corpus.rs`).

use super::*;

fn regions() -> Vec<Region> {
    crate::config::default_pii_regions()
}

/// The kinds and matched texts of the findings in `text`.
fn found(text: &str) -> Vec<(FindingKind, &str)> {
    scan(text, &regions())
        .into_iter()
        .map(|f| (f.kind, &text[f.start..f.end]))
        .collect()
}

/// Asserts `text` holds exactly one finding, `value` of `kind`, and returns it.
fn one(text: &str, kind: FindingKind, value: &str) -> Finding {
    let findings = scan(text, &regions());
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

/// Each kind's redacted form: (text, kind, value found, redacted).
const REDACTED: &[(&str, FindingKind, &str, &str)] = &[
    (
        "Write to john.doe@example.com today.",
        FindingKind::Email,
        "john.doe@example.com",
        "j***@example.com",
    ),
    (
        "Tel: (415) 555-0132",
        FindingKind::Phone,
        "(415) 555-0132",
        "(***) ***-**32",
    ),
    (
        "Card: 4111 1111 1111 1111, exp 12/27",
        FindingKind::CreditCard,
        "4111 1111 1111 1111",
        "4111 **** **** 1111",
    ),
    (
        "pay with 4111111111111111.",
        FindingKind::CreditCard,
        "4111111111111111",
        "4111********1111",
    ),
    (
        "IBAN: DE89 3704 0044 0532 0130 00.",
        FindingKind::Iban,
        "DE89 3704 0044 0532 0130 00",
        "DE89 **** **** **** **30 00",
    ),
    (
        "SSN 536-22-1234 on file",
        FindingKind::UsSsn,
        "536-22-1234",
        "***-**-1234",
    ),
    (
        "SSN 536221234",
        FindingKind::UsSsn,
        "536221234",
        "*****1234",
    ),
    (
        "Server at 192.168.1.10:8080 is down",
        FindingKind::IpAddress,
        "192.168.1.10",
        "192.*.*.*",
    ),
    (
        "via fe80::1%eth0",
        FindingKind::IpAddress,
        "fe80::1%eth0",
        "fe80:****",
    ),
    (
        "key AKIAIOSFODNN7EXAMPLE",
        FindingKind::AwsAccessKey,
        "AKIAIOSFODNN7EXAMPLE",
        "AKIA****************",
    ),
    (
        "OPENAI_API_KEY=sk-proj-Abc123DEF456ghi789JKL012mno",
        FindingKind::OpenAiKey,
        "sk-proj-Abc123DEF456ghi789JKL012mno",
        "sk-proj-****************",
    ),
    (
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        FindingKind::StripeKey,
        "sk_live_4eC39HqLyjWDarjtT1zdp7dc",
        "sk_live_****************",
    ),
];

#[test]
fn findings_are_redacted() {
    for &(text, kind, value, redacted) in REDACTED {
        assert_eq!(one(text, kind, value).redacted, redacted, "{text:?}");
    }
}

#[test]
fn email_offsets_with_non_ascii_text() {
    let text = "Écrivez à jürgen@example.de, 谢谢";
    let f = one(text, FindingKind::Email, "jürgen@example.de");
    assert_eq!(f.start, text.find('j').unwrap_or_default());
    assert_eq!(f.redacted, "j***@example.de");
}

#[test]
fn national_numbers_follow_the_regions() {
    let israeli = "My Israeli number is 09-7625400";
    let international = "My Israeli number is +972 9-762-5400";
    let found_with = |text: &str, regions: &[Region]| {
        scan(text, regions)
            .iter()
            .any(|f| f.kind == FindingKind::Phone)
    };
    assert!(found_with(israeli, &[Region::IL]));
    assert!(!found_with(israeli, &[Region::US, Region::GB]));
    assert!(found_with(international, &[]));
    // Digits alone need a word such as "number" before them.
    assert!(found_with("My CN number is 13812345678", &[Region::CN]));
    assert!(!found_with("Batch 13812345678 done", &[Region::CN]));
}

#[test]
fn aws_keys() {
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
fn prefixed_tokens() {
    let github = format!("ghp_{}", "a1B2c3D4e5".repeat(3) + "F6g7H8");
    let pat = format!(
        "github_pat_{}_{}",
        "11ABCDEFG0".repeat(2) + "xy",
        "Zz9".repeat(20)
    );
    let slack = "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx";
    let google = format!("AIza{}", "Sy".to_owned() + &"a1B2c3".repeat(5) + "xyz");
    let anthropic = "sk-ant-api03-Abcdefghij_klmnopqrst-0123456789XYZ";
    let cases = [
        (
            format!("token={github}"),
            FindingKind::GithubToken,
            github.as_str(),
        ),
        (format!("use {pat}"), FindingKind::GithubToken, pat.as_str()),
        (format!("SLACK={slack}"), FindingKind::SlackToken, slack),
        (
            format!("key={google}&q=1"),
            FindingKind::GoogleApiKey,
            google.as_str(),
        ),
        (
            format!("key {anthropic} end"),
            FindingKind::AnthropicKey,
            anthropic,
        ),
        (
            "sk-Abcdefghij1234567890XYZ".to_owned(),
            FindingKind::OpenAiKey,
            "sk-Abcdefghij1234567890XYZ",
        ),
    ];
    for (text, kind, value) in &cases {
        one(text, *kind, value);
    }
    for text in [
        "ghp_short".to_owned(),
        format!("{google}X"),
        "sk_test_4eC39HqLyjWDarjtT1zdp7dc".to_owned(),
        "we use sk-learn-compatible-estimators here".to_owned(),
        "task-Abcdefghij1234567890XYZ".to_owned(),
    ] {
        none(&text);
    }
}

#[test]
fn private_keys_and_jwts() {
    let block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEowIBAAKCAQEA1AKIAIOSFODNN7EXAMPLE\nabc+/=\n-----END RSA PRIVATE KEY-----";
    let truncated =
        "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\nBKcwggSjAgEAAoIBAQC7";
    let jwt = "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIiwiaWF0IjoxNTE2MjM5MDIyfQ.SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c";
    let cases = [
        (
            format!("Here:\n{block}\nDone."),
            FindingKind::PrivateKey,
            block,
            "-----BEGIN RSA PRIVATE KEY-----****",
        ),
        (
            format!("{truncated}\n\nThat is all."),
            FindingKind::PrivateKey,
            truncated,
            "-----BEGIN PRIVATE KEY-----****",
        ),
        (
            format!("Authorization: Bearer {jwt}"),
            FindingKind::Jwt,
            jwt,
            "eyJ****************",
        ),
    ];
    for (text, kind, value, redacted) in &cases {
        assert_eq!(one(text, *kind, value).redacted, *redacted, "{text:?}");
    }
    none("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----");
    none("eyJhbGciOi is not a token");
}

#[test]
fn several_findings_sorted_and_not_overlapping() {
    let text = "Mail ann@example.org, call +1 415-555-0132, card 4111 1111 1111 1111, ip 10.0.0.1.";
    let findings = scan(text, &regions());
    let kinds: Vec<FindingKind> = findings.iter().map(|f| f.kind).collect();
    assert_eq!(
        kinds,
        [
            FindingKind::Email,
            FindingKind::Phone,
            FindingKind::CreditCard,
            FindingKind::IpAddress
        ]
    );
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
    let text = "-----BEGIN EC PRIVATE KEY-----\nAKIAIOSFODNN7EXAMPLE\n-----END EC PRIVATE KEY-----";
    assert_eq!(found(text).len(), 1);
    assert_eq!(found(text)[0].0, FindingKind::PrivateKey);
    // An IPv4-mapped IPv6 address is one finding, not two.
    assert_eq!(
        found("at ::ffff:192.0.2.1"),
        [(FindingKind::IpAddress, "::ffff:192.0.2.1")]
    );
}

#[test]
fn offsets_with_non_ascii_around() {
    let text = "Zahlung über 4111 1111 1111 1111 — Telefon ☎ +49 30 1234567, 電話+81 3-1234-5678。";
    let values: Vec<&str> = found(text).into_iter().map(|(_, value)| value).collect();
    assert_eq!(
        values,
        ["4111 1111 1111 1111", "+49 30 1234567", "+81 3-1234-5678"]
    );
}

#[test]
fn large_text_scans() {
    let paragraph = "Lorem ipsum dolor sit amet, version 1.2.3 released 2024-01-15 at 12:30:45; \
        order #12345678 cost $1,234.56. Contact ann@example.org or (415) 555-0132. \
        Ünïcödé テキスト 10.0.0.1 — std::io::Error and a::b. ";
    let repeats = 100_000 / paragraph.len() + 1;
    let text = paragraph.repeat(repeats);
    let findings = scan(&text, &regions());
    let phones = findings
        .iter()
        .filter(|f| f.kind == FindingKind::Phone)
        .count();
    // Phone-like runs beyond the first 64 of a text are not parsed (a bound on time).
    assert!(repeats > 64);
    assert_eq!((findings.len(), phones), (2 * repeats + 64, 64));
}

#[test]
fn hostile_runs_stay_bounded() {
    for text in [
        "1-".repeat(50_000),
        "(1)".repeat(30_000),
        "+".repeat(50_000) + "1",
        ":".repeat(100_000),
        "1.".repeat(50_000),
        "ff:".repeat(30_000),
        "9 ".repeat(50_000),
    ] {
        for f in scan(&text, &regions()) {
            assert!(f.start < f.end && f.end <= text.len());
        }
    }
}

#[test]
fn never_panics_on_any_slice() {
    let text = "ü+1 (415) 555-0132é DE89 3704 0044 0532 0130 00 ☎ 4111-1111-1111-1111 \
        jürgen@example.de 2001:db8::1:2 ::ffff:10.0.0.1%é sk-ant-x —-----BEGIN PRIVATE KEY-----\nQUJD";
    let boundaries: Vec<usize> = text
        .char_indices()
        .map(|(i, _)| i)
        .chain([text.len()])
        .collect();
    for &start in &boundaries {
        for &end in boundaries.iter().filter(|&&end| end >= start) {
            let slice = &text[start..end];
            for f in scan(slice, &[Region::US]) {
                assert!(
                    f.start < f.end
                        && slice.is_char_boundary(f.start)
                        && slice.is_char_boundary(f.end)
                );
            }
        }
    }
}
