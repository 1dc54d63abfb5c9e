//! `safety_check`: personal data and secrets in model outputs (interim: e-mail only; the
//! full detector lands from the eval-pure branch).

/// One finding.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Finding {
    /// What was found.
    pub kind: &'static str,
    /// Byte offset of the start.
    pub start: usize,
    /// Byte offset of the end.
    pub end: usize,
    /// The finding with most of it hidden.
    pub redacted: String,
}

/// Finds PII and secrets in `text`.
pub fn scan(text: &str) -> Vec<Finding> {
    let Ok(email) = regex::Regex::new(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}") else {
        return Vec::new();
    };
    email
        .find_iter(text)
        .map(|m| Finding { kind: "email", start: m.start(), end: m.end(), redacted: "***".into() })
        .collect()
}
