//! The payload of `sync`'s `NOTIFY` on [`super::cache::CHANNEL`]: which source synced and
//! which prompts changed, so that a reader's cache drops only those (README, "Sources").
//!
//! One notification is a JSON object: `source`, `branch`, `commit`, `previous`,
//! `versions_added`, `part` and `parts` (1-based; a long list is split over several
//! notifications, each a whole object), and `prompts`: the `[service, name]` pairs whose
//! versions, archived flags, tests, environment pins or monitor assertions changed, or
//! `null` for "everything" (a migration, an adoption of legacy rows, more prompts than
//! [`MAX_PARTS`] payloads hold). Each payload stays under [`MAX_PAYLOAD_BYTES`], below
//! PostgreSQL's 8000-byte limit.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// The largest payload sent, in bytes (PostgreSQL refuses 8000 and more).
pub const MAX_PAYLOAD_BYTES: usize = 7_900;

/// The most notifications one sync sends; past them it sends one that says everything
/// changed.
pub const MAX_PARTS: usize = 64;

/// What every part of a sync's notification repeats.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct NoticeHead {
    /// The source synced.
    pub source: String,
    /// The branch synced.
    pub branch: String,
    /// The commit synced.
    pub commit: String,
    /// The commit synced before, if any.
    pub previous: Option<String>,
    /// Version rows inserted.
    pub versions_added: u64,
}

/// One notification as sent and read.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Notice {
    /// The sync's identity.
    #[serde(flatten)]
    pub head: NoticeHead,
    /// The changed prompts in this part; `None`: everything may have changed.
    pub prompts: Option<Vec<(String, String)>>,
    /// This part's number, from 1.
    pub part: usize,
    /// How many parts.
    pub parts: usize,
}

/// The payloads announcing `changed` (`None`: everything), each a [`Notice`] under
/// [`MAX_PAYLOAD_BYTES`]; at most [`MAX_PARTS`] of them, else one saying everything.
pub fn notice_payloads(
    head: &NoticeHead,
    changed: Option<&BTreeSet<(String, String)>>,
) -> Vec<String> {
    let everything = || vec![encode(head, None, 1, 1)];
    let Some(changed) = changed else {
        return everything();
    };
    let empty = encode(head, Some(&[]), MAX_PARTS, MAX_PARTS).len();
    let mut parts: Vec<Vec<(String, String)>> = vec![Vec::new()];
    let mut size = empty;
    for pair in changed {
        let cost = serde_json::to_string(pair).map_or(usize::MAX, |t| t.len() + 1);
        if empty.saturating_add(cost) > MAX_PAYLOAD_BYTES {
            return everything();
        }
        if size.saturating_add(cost) > MAX_PAYLOAD_BYTES {
            parts.push(Vec::new());
            size = empty;
        }
        size += cost;
        if let Some(part) = parts.last_mut() {
            part.push(pair.clone());
        }
    }
    if parts.len() > MAX_PARTS {
        return everything();
    }
    let count = parts.len();
    parts
        .iter()
        .enumerate()
        .map(|(index, part)| encode(head, Some(part), index + 1, count))
        .collect()
}

/// One payload.
fn encode(
    head: &NoticeHead,
    prompts: Option<&[(String, String)]>,
    part: usize,
    parts: usize,
) -> String {
    let notice = Notice {
        head: head.clone(),
        prompts: prompts.map(<[_]>::to_vec),
        part,
        parts,
    };
    serde_json::to_string(&notice).unwrap_or_default()
}

/// What a payload asks a cache to drop: the listed prompts, or everything when it says
/// so, does not parse, or is over the size a sync sends.
pub fn parse(payload: &str) -> Option<Vec<(String, String)>> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return None;
    }
    serde_json::from_str::<Notice>(payload).ok()?.prompts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn head() -> NoticeHead {
        NoticeHead {
            source: "payments".into(),
            branch: "main".into(),
            commit: "a".repeat(40),
            previous: None,
            versions_added: 3,
        }
    }

    #[test]
    fn a_long_list_is_split_under_the_limit_and_reads_back_whole() {
        let changed: BTreeSet<(String, String)> = (0..2000)
            .map(|i| {
                (
                    format!("service{}", i % 7),
                    format!("prompt_{i}_{}", "x".repeat(40)),
                )
            })
            .collect();
        let payloads = notice_payloads(&head(), Some(&changed));
        assert!(payloads.len() > 1);
        let mut read = BTreeSet::new();
        for payload in &payloads {
            assert!(payload.len() <= MAX_PAYLOAD_BYTES);
            read.extend(parse(payload).expect("a list"));
        }
        assert_eq!(read, changed);
    }

    #[test]
    fn too_many_or_unparsable_means_everything() {
        let changed: BTreeSet<(String, String)> = (0..50_000)
            .map(|i| ("s".to_owned(), format!("p{i}_{}", "y".repeat(60))))
            .collect();
        let payloads = notice_payloads(&head(), Some(&changed));
        assert_eq!(payloads.len(), 1);
        assert_eq!(parse(&payloads[0]), None);
        assert_eq!(parse("{not json"), None);
        assert_eq!(parse(&"x".repeat(9000)), None);
        let none = notice_payloads(&head(), Some(&BTreeSet::new()));
        assert_eq!(parse(&none[0]), Some(Vec::new()));
    }
}
