//! Reading Git objects for the history walk: the first-parent chain, the prompts subtree
//! of each commit, and the prompt files that changed between two subtrees.
//!
//! Speed matters here (a monorepo has 100,000 commits): commits and trees are read raw from
//! the object database and only their headers and entries are decoded; a commit whose root
//! tree or prompts subtree equals its parent's costs one object read; diffs descend only
//! into subtrees whose ids differ.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::path::Path;
use std::rc::Rc;

use git2::{Odb, OdbObject, Oid};

use crate::repo::FileKind;

/// Reads commits of a first-parent chain, remembering the last root tree seen so that a
/// commit with its parent's tree costs no tree read.
pub(crate) struct CommitReader<'a> {
    odb: &'a Odb<'a>,
    prompts_rel: &'a [String],
    last_tree: Option<(Oid, Option<Oid>)>,
}

impl<'a> CommitReader<'a> {
    /// A reader of commits whose prompts folder is at `prompts_rel`.
    pub fn new(odb: &'a Odb<'a>, prompts_rel: &'a [String]) -> CommitReader<'a> {
        CommitReader {
            odb,
            prompts_rel,
            last_tree: None,
        }
    }

    /// The commit's prompts subtree (`None`: no prompts folder), its first parent and the
    /// raw commit object.
    pub fn read(&mut self, id: Oid) -> Result<ReadCommit<'a>, git2::Error> {
        let object = self.odb.read(id)?;
        let (tree, parent) = commit_header(object.data())
            .ok_or_else(|| git2::Error::from_str(&format!("commit {id} cannot be decoded")))?;
        let prompts = match self.last_tree {
            Some((last, prompts)) if last == tree => prompts,
            _ => subtree(self.odb, tree, self.prompts_rel)?,
        };
        self.last_tree = Some((tree, prompts));
        Ok(ReadCommit {
            prompts,
            parent,
            object,
        })
    }
}

/// A commit as the walk read it.
pub(crate) struct ReadCommit<'a> {
    /// Its prompts subtree (`None`: no prompts folder).
    pub prompts: Option<Oid>,
    /// Its first parent.
    pub parent: Option<Oid>,
    /// The raw commit object.
    pub object: OdbObject<'a>,
}

/// The committer's time and time zone (minutes east of UTC), the author's name and email
/// and the message of a commit.
pub(crate) type CommitDetails = (i64, i32, String, String, String);

/// The [`CommitDetails`] of a raw commit object, decoded the way libgit2 decodes them
/// (`None` for anything unusual, for the caller to ask libgit2). Decoding the object the
/// walk already read saves reading every commit that changed a prompt a second time.
pub(crate) fn commit_details(data: &[u8]) -> Option<CommitDetails> {
    let header_end = data.windows(2).position(|pair| pair == b"\n\n");
    let (header, message) = match header_end {
        Some(end) => (&data[..end + 1], &data[end + 2..]),
        None => (data, &data[data.len()..]),
    };
    let mut author = None;
    let mut committer = None;
    for line in header.split(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"author ") {
            author.get_or_insert(rest);
        } else if let Some(rest) = line.strip_prefix(b"committer ") {
            committer.get_or_insert(rest);
        }
    }
    let (author_name, author_email, _, _) = signature(author?)?;
    let (_, _, time, offset) = signature(committer?)?;
    let start = message
        .iter()
        .position(|&b| b != b'\n')
        .unwrap_or(message.len());
    Some((
        time,
        offset,
        String::from_utf8_lossy(author_name).into_owned(),
        String::from_utf8_lossy(author_email).into_owned(),
        String::from_utf8_lossy(&message[start..]).into_owned(),
    ))
}

/// `NAME <EMAIL> SECONDS ZONE` as libgit2's signature parser reads it: name and email
/// trimmed, a zone beyond ±14:59 ignored.
fn signature(line: &[u8]) -> Option<(&[u8], &[u8], i64, i32)> {
    let open = line.iter().rposition(|&b| b == b'<')?;
    let close = line.iter().rposition(|&b| b == b'>')?;
    if close <= open {
        return None;
    }
    let name = line[..open].trim_ascii();
    let email = line[open + 1..close].trim_ascii();
    // libgit2 also trims vertical tabs, which `trim_ascii` keeps: leave such a name to it.
    let vertical_tab = |text: &[u8]| text.first() == Some(&0x0b) || text.last() == Some(&0x0b);
    if vertical_tab(name) || vertical_tab(email) {
        return None;
    }
    let mut fields = std::str::from_utf8(line.get(close + 1..)?).ok()?.split(' ');
    if fields.next() != Some("") {
        return None;
    }
    let time: i64 = fields.next()?.parse().ok()?;
    let zone = fields.next()?;
    if fields.next().is_some() || zone.len() != 5 {
        return None;
    }
    let (sign, digits) = zone.split_at(1);
    if !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let digits: i32 = digits.parse().ok()?;
    let (hours, minutes) = (digits / 100, digits % 100);
    let offset = if hours <= 14 && minutes <= 59 {
        hours * 60 + minutes
    } else {
        0
    };
    match sign {
        "+" => Some((name, email, time, offset)),
        "-" => Some((name, email, time, -offset)),
        _ => None,
    }
}

/// The tree and the first parent named in a raw commit object.
fn commit_header(data: &[u8]) -> Option<(Oid, Option<Oid>)> {
    let mut tree = None;
    let mut parent = None;
    for line in data.split(|&b| b == b'\n') {
        if line.is_empty() {
            break;
        }
        if let Some(hex) = line.strip_prefix(b"tree ") {
            tree = Some(Oid::from_str(std::str::from_utf8(hex).ok()?).ok()?);
        } else if let Some(hex) = line.strip_prefix(b"parent ") {
            if parent.is_none() {
                parent = Some(Oid::from_str(std::str::from_utf8(hex).ok()?).ok()?);
            }
        } else if !line.starts_with(b"parent ") && tree.is_some() {
            // author, committer and the rest: the header fields we need come first.
            break;
        }
    }
    Some((tree?, parent))
}

/// One entry of a raw tree object.
#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    name: &'a [u8],
    mode: u32,
    id: Oid,
}

const MODE_TREE: u32 = 0o040000;
const MODE_BLOB: u32 = 0o100644;
const MODE_EXECUTABLE: u32 = 0o100755;

impl Entry<'_> {
    fn is_tree(&self) -> bool {
        self.mode == MODE_TREE
    }

    fn is_blob(&self) -> bool {
        self.mode == MODE_BLOB || self.mode == MODE_EXECUTABLE
    }
}

/// Decodes a raw tree object: `MODE SP NAME NUL OID(20)` repeated.
fn tree_entries(data: &[u8]) -> Result<Vec<Entry<'_>>, git2::Error> {
    let bad = || git2::Error::from_str("tree object cannot be decoded");
    let mut entries = Vec::new();
    let mut rest = data;
    while !rest.is_empty() {
        let space = rest.iter().position(|&b| b == b' ').ok_or_else(bad)?;
        let mode = std::str::from_utf8(&rest[..space])
            .ok()
            .and_then(|text| u32::from_str_radix(text, 8).ok())
            .ok_or_else(bad)?;
        rest = &rest[space + 1..];
        let nul = rest.iter().position(|&b| b == 0).ok_or_else(bad)?;
        let name = &rest[..nul];
        rest = &rest[nul + 1..];
        if rest.len() < 20 {
            return Err(bad());
        }
        let id = Oid::from_bytes(&rest[..20])?;
        rest = &rest[20..];
        entries.push(Entry { name, mode, id });
    }
    Ok(entries)
}

/// The id of the subtree at `path` (components) under the tree `root`, if it is a folder.
pub(crate) fn subtree(
    odb: &Odb<'_>,
    root: Oid,
    path: &[String],
) -> Result<Option<Oid>, git2::Error> {
    let mut current = root;
    for component in path {
        let object = odb.read(current)?;
        let found = tree_entries(object.data())?
            .into_iter()
            .find(|entry| entry.is_tree() && entry.name == component.as_bytes())
            .map(|entry| entry.id);
        match found {
            Some(id) => current = id,
            None => return Ok(None),
        }
    }
    Ok(Some(current))
}

/// A prompt file that changed between two subtrees: path relative to the prompts folder
/// and the new blob (`None`: gone).
pub(crate) type BlobChange = (String, Option<Oid>);

/// Diffs the prompts subtrees of a first-parent chain read newest first. The trees read
/// for one diff's old side (the parent's) are the next diff's new side, so they are kept
/// from one diff to the next instead of being read and inflated again.
pub(crate) struct ChainDiffer<'a> {
    odb: &'a Odb<'a>,
    /// The trees of the previous diff's old side.
    kept: Vec<(Oid, Rc<OdbObject<'a>>)>,
    /// The trees of this diff's old side.
    old_side: Vec<(Oid, Rc<OdbObject<'a>>)>,
}

impl<'a> ChainDiffer<'a> {
    /// A differ reading from `odb`.
    pub fn new(odb: &'a Odb<'a>) -> ChainDiffer<'a> {
        ChainDiffer {
            odb,
            kept: Vec::new(),
            old_side: Vec::new(),
        }
    }

    /// The prompt files that differ between the subtrees `old` and `new`, sorted by path.
    pub fn diff(
        &mut self,
        old: Option<Oid>,
        new: Option<Oid>,
    ) -> Result<Vec<BlobChange>, git2::Error> {
        self.old_side.clear();
        let mut changes = Vec::new();
        self.diff_into(old, new, "", &mut changes)?;
        self.kept = std::mem::take(&mut self.old_side);
        changes.sort();
        Ok(changes)
    }

    fn read(&mut self, id: Oid, old: bool) -> Result<Rc<OdbObject<'a>>, git2::Error> {
        let object = match self.kept.iter().find(|(kept, _)| *kept == id) {
            Some((_, object)) => object.clone(),
            None => Rc::new(self.odb.read(id)?),
        };
        if old {
            self.old_side.push((id, object.clone()));
        }
        Ok(object)
    }

    fn diff_into(
        &mut self,
        old: Option<Oid>,
        new: Option<Oid>,
        prefix: &str,
        changes: &mut Vec<BlobChange>,
    ) -> Result<(), git2::Error> {
        if old == new {
            return Ok(());
        }
        let old_object = old.map(|id| self.read(id, true)).transpose()?;
        let new_object = new.map(|id| self.read(id, false)).transpose()?;
        let old_entries = match &old_object {
            Some(object) => tree_entries(object.data())?,
            None => Vec::new(),
        };
        let new_entries = match &new_object {
            Some(object) => tree_entries(object.data())?,
            None => Vec::new(),
        };
        for (before, after) in pair_entries(old_entries, new_entries) {
            let Some(name) = before.or(after).map(|entry| entry.name) else {
                continue;
            };
            if name.starts_with(b".") {
                continue;
            }
            let path = format!("{prefix}{}", String::from_utf8_lossy(name));
            let old_tree = before.filter(Entry::is_tree).map(|entry| entry.id);
            let new_tree = after.filter(Entry::is_tree).map(|entry| entry.id);
            if old_tree.is_some() || new_tree.is_some() {
                self.diff_into(old_tree, new_tree, &format!("{path}/"), changes)?;
            }
            let old_blob = before.filter(Entry::is_blob).map(|entry| entry.id);
            let new_blob = after.filter(Entry::is_blob).map(|entry| entry.id);
            if old_blob != new_blob && FileKind::of(Path::new(&path)) == Some(FileKind::Prompt) {
                changes.push((path, new_blob));
            }
        }
        Ok(())
    }
}

/// Git's order of tree entries: by name, a subtree's name compared as if it ended in `/`.
fn git_order(a: &Entry<'_>, b: &Entry<'_>) -> Ordering {
    let common = a.name.len().min(b.name.len());
    a.name[..common].cmp(&b.name[..common]).then_with(|| {
        // After the common part: the next byte of the longer name, `/` after a subtree's
        // name, nothing after a file's (which sorts first).
        let next = |entry: &Entry<'_>| {
            entry
                .name
                .get(common)
                .copied()
                .or(entry.is_tree().then_some(b'/'))
        };
        next(a).cmp(&next(b))
    })
}

/// An entry of the old tree and of the new one under the same name (either may be
/// missing), for every name whose entry differs. Git writes tree entries sorted, so the
/// two lists are merged in one pass; a tree whose entries are not in Git's order (written
/// by a broken tool) is paired through a map instead.
fn pair_entries<'t>(
    old: Vec<Entry<'t>>,
    new: Vec<Entry<'t>>,
) -> Vec<(Option<Entry<'t>>, Option<Entry<'t>>)> {
    let sorted = |entries: &[Entry<'_>]| {
        entries
            .windows(2)
            .all(|pair| git_order(&pair[0], &pair[1]) == Ordering::Less)
    };
    let same = |a: &Entry<'_>, b: &Entry<'_>| a.id == b.id && a.mode == b.mode;
    let mut pairs = Vec::new();
    if !sorted(&old) || !sorted(&new) {
        let mut old_by_name: HashMap<&[u8], Entry<'t>> =
            old.into_iter().map(|entry| (entry.name, entry)).collect();
        for entry in new {
            let previous = old_by_name.remove(entry.name);
            if !previous.is_some_and(|p| same(&p, &entry)) {
                pairs.push((previous, Some(entry)));
            }
        }
        pairs.extend(old_by_name.into_values().map(|entry| (Some(entry), None)));
        return pairs;
    }
    let (mut old, mut new) = (old.into_iter().peekable(), new.into_iter().peekable());
    loop {
        match (old.peek(), new.peek()) {
            (None, None) => break,
            (Some(_), None) => pairs.push((old.next(), None)),
            (None, Some(_)) => pairs.push((None, new.next())),
            (Some(a), Some(b)) => match git_order(a, b) {
                Ordering::Less => pairs.push((old.next(), None)),
                Ordering::Greater => pairs.push((None, new.next())),
                Ordering::Equal => {
                    let (a, b) = (old.next(), new.next());
                    if let (Some(a), Some(b)) = (a, b)
                        && !same(&a, &b)
                    {
                        pairs.push((Some(a), Some(b)));
                    }
                }
            },
        }
    }
    // A name that is a file on one side and a folder on the other sorts apart and comes
    // out as two pairs, which yields the same changes as one.
    pairs
}

/// Every file under the subtree `root` whose kind is `kind`, with its blob.
pub(crate) fn files_of_kind(
    odb: &Odb<'_>,
    root: Oid,
    kind: FileKind,
) -> Result<Vec<(String, Oid)>, git2::Error> {
    let changes = {
        let mut all = Vec::new();
        collect(odb, root, "", kind, &mut all)?;
        all
    };
    Ok(changes)
}

fn collect(
    odb: &Odb<'_>,
    tree: Oid,
    prefix: &str,
    kind: FileKind,
    out: &mut Vec<(String, Oid)>,
) -> Result<(), git2::Error> {
    let object = odb.read(tree)?;
    for entry in tree_entries(object.data())? {
        if entry.name.starts_with(b".") {
            continue;
        }
        let path = format!("{prefix}{}", String::from_utf8_lossy(entry.name));
        if entry.is_tree() {
            collect(odb, entry.id, &format!("{path}/"), kind, out)?;
        } else if entry.is_blob() && FileKind::of(Path::new(&path)) == Some(kind) {
            out.push((path, entry.id));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commit_details_match_libgit2() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let repo = git2::Repository::init(dir.path()).expect("repository");
        let tree = {
            let mut index = repo.index().expect("index");
            repo.find_tree(index.write_tree().expect("tree"))
                .expect("tree")
        };
        let cases = [
            (
                "  Zoë  Ångström ",
                "zoe@example.com",
                1_700_000_000,
                330,
                "\n\nTitle\n\nBody ünïcode\n",
            ),
            ("A", "a@b", 0, -480, "one line"),
            ("Bob", "bob@example.com", 1_234_567_890, 0, ""),
            (
                "Late",
                "late@example.com",
                1_600_000_000,
                14 * 60 + 59,
                "x\n",
            ),
        ];
        for (name, email, time, offset, message) in cases {
            let author = git2::Signature::new(name, email, &git2::Time::new(time, offset))
                .expect("signature");
            let committer =
                git2::Signature::new("C", "c@example.com", &git2::Time::new(time + 60, -offset))
                    .expect("signature");
            let id = repo
                .commit(None, &author, &committer, message, &tree, &[])
                .expect("commit");
            let commit = repo.find_commit(id).expect("commit");
            let odb = repo.odb().expect("odb");
            let object = odb.read(id).expect("object");
            let (time, offset, name, email, message) =
                commit_details(object.data()).expect("decodes");
            assert_eq!(time, commit.time().seconds());
            assert_eq!(offset, commit.time().offset_minutes());
            assert_eq!(name.as_bytes(), commit.author().name_bytes());
            assert_eq!(email.as_bytes(), commit.author().email_bytes());
            assert_eq!(message.as_bytes(), commit.message_bytes());
        }
    }

    #[test]
    fn commit_header_reads_tree_and_first_parent() {
        let data = b"tree 1111111111111111111111111111111111111111\nparent 2222222222222222222222222222222222222222\nparent 3333333333333333333333333333333333333333\nauthor a <a> 1 +0000\n\nmsg\nparent x\n";
        let (tree, parent) = commit_header(data).expect("decodes");
        assert_eq!(tree.to_string(), "1".repeat(40));
        assert_eq!(parent.map(|p| p.to_string()), Some("2".repeat(40)));
        let (_, none) =
            commit_header(b"tree 1111111111111111111111111111111111111111\nauthor a\n\nm")
                .expect("decodes");
        assert!(none.is_none());
    }
}
