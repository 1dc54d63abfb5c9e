//! The definitions store: the definition parsed from each prompt blob, kept in the Git
//! folder (`.git/promptctl/definitions-v1.bin`) by blob id, so that a blob's YAML is parsed
//! once and not again on every run that needs whole definitions of many versions (`sync`
//! publishing a history). The history cache itself keeps only each definition's digest
//! and model, which is all `list` and the numbering need.
//!
//! The file is a first line `promptctl-definitions 1 VERSION`, then one record per
//! definition: `BLOB LEN\n` (the blob id in hex, the length in bytes) followed by the
//! definition's canonical JSON and a newline. New records are appended, one write per
//! batch; a full walk rewrites the file (a temporary file renamed over it).
//!
//! The store is never trusted: a record is used only when the SHA-256 of its JSON is the
//! digest the history holds for that blob, and it then parses back to the very definition
//! (serde_json's `float_roundtrip` makes numbers exact). A torn or corrupt record ends the
//! reading; what was not read is parsed from the blobs again.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use git2::Oid;

use crate::repo::Definition;
use crate::repo::definition::digest_of_json;

/// The first line's magic word and format number (the promptctl version follows).
const MAGIC: &str = "promptctl-definitions 1";

/// The store's file in the Git folder `git_dir`.
fn file(git_dir: &Path) -> PathBuf {
    git_dir.join("promptctl").join("definitions-v1.bin")
}

fn header() -> String {
    format!("{MAGIC} {}\n", env!("CARGO_PKG_VERSION"))
}

/// Adds the definitions of `blobs` to the store; `fresh` replaces what it held. Errors
/// only cost a later run the parsing, so callers may ignore them.
pub(crate) fn store<'a>(
    git_dir: &Path,
    blobs: impl IntoIterator<Item = (Oid, &'a Definition)>,
    fresh: bool,
) -> std::io::Result<()> {
    let mut records = Vec::new();
    for (blob, definition) in blobs {
        let json = definition.canonical_json();
        records.extend_from_slice(format!("{blob} {}\n", json.len()).as_bytes());
        records.extend_from_slice(json.as_bytes());
        records.push(b'\n');
    }
    let path = file(git_dir);
    let current = !fresh && has_current_header(&path);
    if current {
        if records.is_empty() {
            return Ok(());
        }
        // One write on a file opened for appending: concurrent runs do not interleave
        // within a batch, and a torn batch is caught by the digests when read.
        let mut out = std::fs::OpenOptions::new().append(true).open(&path)?;
        return out.write_all(&records);
    }
    let mut data = header().into_bytes();
    data.extend_from_slice(&records);
    crate::files::replace(&path, &data)
}

fn has_current_header(path: &Path) -> bool {
    use std::io::Read as _;
    let expected = header();
    let mut start = vec![0u8; expected.len()];
    std::fs::File::open(path)
        .and_then(|mut file| file.read_exact(&mut start))
        .is_ok()
        && start == expected.as_bytes()
}

/// The definitions the store holds for the blobs of `wanted` (blob → the digest the
/// history holds for it); a blob missing from the answer is to be parsed. The records are
/// split first (their headers only), then checked and decoded on every core.
pub(crate) fn load(git_dir: &Path, wanted: &HashMap<Oid, u128>) -> HashMap<Oid, Definition> {
    let Ok(data) = std::fs::read(file(git_dir)) else {
        return HashMap::new();
    };
    let Some(mut rest) = data.strip_prefix(header().as_bytes()) else {
        return HashMap::new();
    };
    let mut records = Vec::new();
    // Runs that each appended what they parsed can leave a blob's record more than once;
    // a store mostly made of repeats is written again with each record once.
    let mut first_records: Vec<&[u8]> = Vec::new();
    let mut seen: HashSet<Oid> = HashSet::new();
    let mut repeats = 0usize;
    while !rest.is_empty() {
        let Some((blob, json, after)) = record(rest) else {
            break;
        };
        let whole = &rest[..rest.len() - after.len()];
        rest = after;
        if !seen.insert(blob) {
            repeats += 1;
            continue;
        }
        first_records.push(whole);
        if let Some(&digest) = wanted.get(&blob) {
            records.push((blob, digest, json));
        }
    }
    if repeats > first_records.len() {
        let _ = rewrite(git_dir, &first_records);
    }
    let decoded = crate::parallel::map(&records, |&(blob, digest, json)| {
        (digest_of_json(json) == digest)
            .then(|| serde_json::from_slice::<Definition>(json).ok())
            .flatten()
            .map(|definition| (blob, definition))
    });
    // Each blob was taken once (`seen`), so no two results share a key.
    decoded.into_iter().flatten().collect()
}

/// Replaces the store with `records` (whole records, as read).
fn rewrite(git_dir: &Path, records: &[&[u8]]) -> std::io::Result<()> {
    let mut data = header().into_bytes();
    for record in records {
        data.extend_from_slice(record);
    }
    crate::files::replace(&file(git_dir), &data)
}

/// Splits one record off the front of `data`: its blob, its JSON and what follows.
fn record(data: &[u8]) -> Option<(Oid, &[u8], &[u8])> {
    let newline = data.iter().position(|&b| b == b'\n')?;
    let head = std::str::from_utf8(&data[..newline]).ok()?;
    let (blob, length) = head.split_once(' ')?;
    let blob = Oid::from_str(blob).ok()?;
    let length: usize = length.parse().ok()?;
    let body = &data[newline + 1..];
    let json = body.get(..length)?;
    let after = body.get(length..)?.strip_prefix(b"\n")?;
    Some((blob, json, after))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::repo::Body;

    fn definition(model: &str, text: &str) -> Definition {
        Definition {
            model: model.to_owned(),
            parameters: [("temperature".to_owned(), serde_json::json!(0.1 + 0.2))]
                .into_iter()
                .collect(),
            variables: Default::default(),
            body: Body::Template(text.to_owned()),
        }
    }

    fn blob(n: u8) -> Oid {
        Oid::from_bytes(&[n; 20]).expect("20 bytes")
    }

    /// What `load` is asked for: each definition's digest, the first as blob 1.
    fn digests(definitions: &[&Definition]) -> HashMap<Oid, u128> {
        (1..)
            .zip(definitions)
            .map(|(n, definition)| (blob(n), definition.digest()))
            .collect()
    }

    /// A new store in `dir` holding two definitions, as blobs 1 and 2.
    fn store_two(dir: &Path) -> [Definition; 2] {
        let pair = [definition("gpt-4o", "one"), definition("gpt-4o", "two")];
        store(dir, [(blob(1), &pair[0]), (blob(2), &pair[1])], true).expect("writes");
        pair
    }

    #[test]
    fn stored_definitions_come_back_exactly_and_only_with_their_digest() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let one = definition("gpt-4o", "Say \"hi\" to {{ name }}\n\\ and ünïcödé");
        let two = definition("claude", "two");
        store(dir.path(), [(blob(1), &one)], true).expect("writes");
        store(dir.path(), [(blob(2), &two)], false).expect("appends");
        let mut wanted = digests(&[&one]);
        wanted.insert(blob(2), 7);
        let found = load(dir.path(), &wanted);
        assert_eq!(found.get(&blob(1)), Some(&one));
        // A digest that does not match the record's JSON: not used.
        assert!(!found.contains_key(&blob(2)));
    }

    #[test]
    fn a_torn_record_ends_the_reading_without_losing_what_came_before() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let [one, two] = store_two(dir.path());
        let path = file(dir.path());
        let data = std::fs::read(&path).expect("reads");
        std::fs::write(&path, &data[..data.len() - 5]).expect("truncates");
        let found = load(dir.path(), &digests(&[&one, &two]));
        assert_eq!(found.len(), 1);
        assert_eq!(found.get(&blob(1)), Some(&one));
    }

    #[test]
    fn a_store_mostly_of_repeats_is_compacted_when_read() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let [one, two] = store_two(dir.path());
        let once = std::fs::metadata(file(dir.path())).expect("file").len();
        for _ in 0..3 {
            store(dir.path(), [(blob(1), &one), (blob(2), &two)], false).expect("appends");
        }
        let wanted = digests(&[&one, &two]);
        assert_eq!(load(dir.path(), &wanted).len(), 2);
        assert_eq!(
            std::fs::metadata(file(dir.path())).expect("file").len(),
            once
        );
        assert_eq!(load(dir.path(), &wanted).len(), 2);
    }

    #[test]
    fn a_store_of_another_version_is_replaced_not_appended_to() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let path = file(dir.path());
        std::fs::create_dir_all(path.parent().expect("parent")).expect("folder");
        std::fs::write(&path, "promptctl-definitions 1 0.0.0-old\ngarbage").expect("writes");
        let one = definition("gpt-4o", "one");
        store(dir.path(), [(blob(1), &one)], false).expect("writes");
        let text = std::fs::read_to_string(&path).expect("reads");
        assert!(text.starts_with(&header()), "{text}");
        assert!(!text.contains("garbage"));
    }
}
