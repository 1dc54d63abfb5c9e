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

use git2::Oid;

use super::objects::{Object, ObjectReader};
use crate::repo::FileKind;

/// Reads commits of a first-parent chain, remembering the last root tree seen so that a
/// commit with its parent's tree costs no tree read.
pub(crate) struct CommitReader<'a> {
    objects: &'a ObjectReader<'a>,
    prompts_rel: &'a [String],
    last_tree: Option<(Oid, Option<Oid>)>,
}

impl<'a> CommitReader<'a> {
    /// A reader of commits whose prompts folder is at `prompts_rel`.
    pub fn new(objects: &'a ObjectReader<'a>, prompts_rel: &'a [String]) -> CommitReader<'a> {
        CommitReader {
            objects,
            prompts_rel,
            last_tree: None,
        }
    }

    /// The commit's prompts subtree (`None`: no prompts folder) and its first parent.
    pub fn read(&mut self, id: Oid) -> Result<ReadCommit, git2::Error> {
        // The tree and the first parent come first, in 94 bytes (a line is cut short at
        // the end of what was read, and a cut `parent` line is not taken for one).
        let start = self.objects.read_start(id, 128)?;
        let header = match commit_header(&start) {
            Some(header) => Some(header),
            None => commit_header(&self.objects.read(id)?),
        };
        let (tree, parent) = header
            .ok_or_else(|| git2::Error::from_str(&format!("commit {id} cannot be decoded")))?;
        let prompts = match self.last_tree {
            Some((last, prompts)) if last == tree => prompts,
            _ => subtree(self.objects, tree, self.prompts_rel)?,
        };
        self.last_tree = Some((tree, prompts));
        Ok(ReadCommit { prompts, parent })
    }
}

/// A commit as the walk read it.
pub(crate) struct ReadCommit {
    /// Its prompts subtree (`None`: no prompts folder).
    pub prompts: Option<Oid>,
    /// Its first parent.
    pub parent: Option<Oid>,
}

/// The committer's time and time zone (minutes east of UTC), the author's name and email
/// and the message of a commit.
pub(crate) type CommitDetails = (i64, i32, String, String, String);

/// The [`CommitDetails`] of a raw commit object, cheaper than libgit2's `find_commit`
/// (which parses every header and copies the object again) and as lenient as Git: a
/// commit Git shows is never refused. Missing or odd fields read as Git shows them (see
/// [`signature`]); a commit without an author or committer line has an empty one.
pub(crate) fn commit_details(data: &[u8]) -> CommitDetails {
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
    let author = signature(author.unwrap_or_default());
    let committer = signature(committer.unwrap_or_default());
    let start = message
        .iter()
        .position(|&b| b != b'\n')
        .unwrap_or(message.len());
    (
        committer.time,
        committer.offset_minutes,
        String::from_utf8_lossy(author.name).into_owned(),
        String::from_utf8_lossy(author.email).into_owned(),
        String::from_utf8_lossy(&message[start..]).into_owned(),
    )
}

/// An author or committer line, decoded.
#[derive(Debug, PartialEq, Eq)]
struct Signature<'a> {
    name: &'a [u8],
    email: &'a [u8],
    time: i64,
    offset_minutes: i32,
}

/// The latest time a commit may carry, 9999-12-31T23:59:59Z: later ones read as 0, as Git
/// shows a date it cannot represent (and as it shows an overflowing one).
const MAX_TIME: i64 = 253_402_300_799;

/// `NAME <EMAIL> SECONDS ZONE` read as leniently as Git reads it (`split_ident_line`):
/// name and email trimmed as libgit2 trims them (vertical tabs included); a line without
/// `<...>` has no name, email or date; a time that is missing, not digits, or past the
/// year 9999 (overflowing ones included) reads as 0; a zone that is missing, not digits
/// or beyond ±14:59 reads as UTC; anything after the zone is ignored.
fn signature(line: &[u8]) -> Signature<'_> {
    let empty = Signature {
        name: &[],
        email: &[],
        time: 0,
        offset_minutes: 0,
    };
    let (Some(open), Some(close)) = (
        line.iter().rposition(|&b| b == b'<'),
        line.iter().rposition(|&b| b == b'>'),
    ) else {
        return empty;
    };
    if close <= open {
        return empty;
    }
    let mut fields = line[close + 1..]
        .split(|&b| b == b' ')
        .filter(|field| !field.is_empty());
    let time = fields
        .next()
        .and_then(digits_value)
        .filter(|time| *time <= MAX_TIME)
        .unwrap_or(0);
    let offset_minutes = fields.next().map_or(0, zone_minutes);
    Signature {
        name: trim(&line[..open]),
        email: trim(&line[open + 1..close]),
        time,
        offset_minutes,
    }
}

/// `text` without the whitespace libgit2 trims around a name or an email (vertical tabs
/// included).
fn trim(text: &[u8]) -> &[u8] {
    let space = |b: &u8| matches!(b, b' ' | b'\t' | b'\n' | 0x0b | 0x0c | b'\r');
    let start = text.iter().position(|b| !space(b)).unwrap_or(text.len());
    let end = text
        .iter()
        .rposition(|b| !space(b))
        .map_or(start, |end| end + 1);
    &text[start..end]
}

/// The value of a run of ASCII digits, `None` for anything else or an overflow.
fn digits_value(digits: &[u8]) -> Option<i64> {
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(digits).ok()?.parse().ok()
}

/// Minutes east of UTC of a zone such as `+0130`; 0 for a zone that is not `±HHMM` with
/// hours up to 14 and minutes up to 59 (libgit2's rule).
fn zone_minutes(zone: &[u8]) -> i32 {
    let (sign, digits) = match zone.split_first() {
        Some((b'+', digits)) => (1, digits),
        Some((b'-', digits)) => (-1, digits),
        _ => return 0,
    };
    let Some(value) = digits_value(digits).filter(|_| digits.len() == 4) else {
        return 0;
    };
    let (hours, minutes) = (value / 100, value % 100);
    if hours <= 14 && minutes <= 59 {
        sign * i32::try_from(hours * 60 + minutes).unwrap_or(0)
    } else {
        0
    }
}

/// The tree and the first parent named in a raw commit object, or in its start.
pub(crate) fn commit_header(data: &[u8]) -> Option<(Oid, Option<Oid>)> {
    let mut tree = None;
    let mut parent = None;
    for line in data.split(|&b| b == b'\n') {
        if line.is_empty() {
            break;
        }
        // libgit2 takes a short id and pads it with zeros: only a whole one is an id here.
        let id = |hex: &[u8]| match hex.len() {
            40 => Oid::from_str(std::str::from_utf8(hex).ok()?).ok(),
            _ => None,
        };
        if let Some(hex) = line.strip_prefix(b"tree ") {
            tree = Some(id(hex)?);
        } else if let Some(hex) = line.strip_prefix(b"parent ") {
            if parent.is_none() {
                parent = Some(id(hex)?);
            }
        } else if !line.starts_with(b"parent ") && tree.is_some() {
            // author, committer and the rest: the header fields we need come first.
            break;
        }
    }
    Some((tree?, parent))
}

/// One entry of a raw tree object, borrowed from the object's bytes.
#[derive(Debug, Clone, Copy)]
struct Entry<'a> {
    name: &'a [u8],
    mode: u32,
    /// The raw 20-byte object id.
    id: &'a [u8],
    /// The whole entry as written (`MODE SP NAME NUL OID`): two entries with equal bytes
    /// have the same name, mode and object.
    raw: &'a [u8],
}

/// The type bits of a tree entry's mode.
const MODE_TYPE: u32 = 0o170000;
const MODE_TREE: u32 = 0o040000;
const MODE_FILE: u32 = 0o100000;

impl Entry<'_> {
    fn is_tree(&self) -> bool {
        self.mode & MODE_TYPE == MODE_TREE
    }

    /// A regular file, whatever its permission bits (old histories hold `100664`), as
    /// Git reads it; not a symbolic link or a submodule.
    fn is_blob(&self) -> bool {
        self.mode & MODE_TYPE == MODE_FILE
    }

    fn oid(&self) -> Result<Oid, git2::Error> {
        Oid::from_bytes(self.id)
    }

    /// Same name, mode and object (the mode compared as a number: `040000` is `40000`).
    fn same(&self, other: &Entry<'_>) -> bool {
        self.raw == other.raw
            || (self.name == other.name && self.mode == other.mode && self.id == other.id)
    }
}

/// The entries of a raw tree object (`MODE SP NAME NUL OID(20)` repeated), decoded one at
/// a time without copying: a diff of two trees that share most entries compares bytes.
#[derive(Clone)]
struct Entries<'a> {
    rest: &'a [u8],
}

impl<'a> Entries<'a> {
    fn of(data: &'a [u8]) -> Entries<'a> {
        Entries { rest: data }
    }
}

impl<'a> Iterator for Entries<'a> {
    type Item = Result<Entry<'a>, git2::Error>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.rest.is_empty() {
            return None;
        }
        let bad = || git2::Error::from_str("tree object cannot be decoded");
        let data = self.rest;
        // Modes and names are short: a plain scan beats a vectorized search's setup.
        let Some(nul) = data.iter().position(|&b| b == 0) else {
            self.rest = &[];
            return Some(Err(bad()));
        };
        let end = nul + 21;
        let space = data[..nul].iter().position(|&b| b == b' ');
        let (Some(space), true) = (space, data.len() >= end) else {
            self.rest = &[];
            return Some(Err(bad()));
        };
        let mode = data[..space].iter().try_fold(0u32, |mode, &digit| {
            matches!(digit, b'0'..=b'7')
                .then(|| mode.checked_mul(8)?.checked_add(u32::from(digit - b'0')))
                .flatten()
        });
        let Some(mode) = mode.filter(|_| space > 0) else {
            self.rest = &[];
            return Some(Err(bad()));
        };
        self.rest = &data[end..];
        Some(Ok(Entry {
            name: &data[space + 1..nul],
            mode,
            id: &data[nul + 1..end],
            raw: &data[..end],
        }))
    }
}

/// The entry named `name` in a raw tree object, if it is a folder.
fn find_subtree(data: &[u8], name: &[u8]) -> Result<Option<Oid>, git2::Error> {
    for entry in Entries::of(data) {
        let entry = entry?;
        if entry.name == name && entry.is_tree() {
            return entry.oid().map(Some);
        }
    }
    Ok(None)
}

/// The id of the subtree at `path` (components) under the tree `root`, if it is a folder.
pub(crate) fn subtree(
    objects: &ObjectReader<'_>,
    root: Oid,
    path: &[String],
) -> Result<Option<Oid>, git2::Error> {
    let mut current = root;
    for component in path {
        let object = objects.read(current)?;
        match find_subtree(&object, component.as_bytes())? {
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
    objects: &'a ObjectReader<'a>,
    /// The trees of the previous diff's old side.
    kept: Vec<(Oid, Object)>,
    /// The trees of this diff's old side.
    old_side: Vec<(Oid, Object)>,
}

impl<'a> ChainDiffer<'a> {
    /// A differ reading from `objects`.
    pub fn new(objects: &'a ObjectReader<'a>) -> ChainDiffer<'a> {
        ChainDiffer {
            objects,
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

    fn read(&mut self, id: Oid, old: bool) -> Result<Object, git2::Error> {
        let object = match self.kept.iter().find(|(kept, _)| *kept == id) {
            Some((_, object)) => object.clone(),
            None => self.objects.read(id)?,
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
        let empty: &[u8] = &[];
        let old_data = old_object
            .as_ref()
            .map_or(empty, |object| object.as_slice());
        let new_data = new_object
            .as_ref()
            .map_or(empty, |object| object.as_slice());
        for (before, after) in pair_entries(old_data, new_data)? {
            let Some(name) = before.or(after).map(|entry| entry.name) else {
                continue;
            };
            if name.starts_with(b".") {
                continue;
            }
            let path = format!("{prefix}{}", String::from_utf8_lossy(name));
            let old_tree = before.filter(Entry::is_tree).map(|e| e.oid()).transpose()?;
            let new_tree = after.filter(Entry::is_tree).map(|e| e.oid()).transpose()?;
            if old_tree.is_some() || new_tree.is_some() {
                self.diff_into(old_tree, new_tree, &format!("{path}/"), changes)?;
            }
            let old_blob = before.filter(Entry::is_blob).map(|entry| entry.id);
            let new_blob = after.filter(Entry::is_blob);
            if old_blob != new_blob.map(|entry| entry.id)
                && FileKind::of(Path::new(&path)) == Some(FileKind::Prompt)
            {
                changes.push((path, new_blob.map(|entry| entry.oid()).transpose()?));
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

/// An entry of the old tree and of the new one under the same name.
type EntryPair<'t> = (Option<Entry<'t>>, Option<Entry<'t>>);

/// An entry of the old tree and of the new one under the same name (either may be
/// missing), for every name whose entry differs. Git writes tree entries sorted, so the
/// two trees are merged in one pass, and the entries the two share (most of them) cost a
/// byte comparison; a tree whose entries are not in Git's order (written by a broken tool)
/// is paired through a map instead.
fn pair_entries<'t>(old: &'t [u8], new: &'t [u8]) -> Result<Vec<EntryPair<'t>>, git2::Error> {
    match merge_sorted(old, new)? {
        Some(pairs) => Ok(pairs),
        None => pair_by_name(old, new),
    }
}

/// The length of the entries two raw trees start with byte for byte.
fn shared_entries_len(old: &[u8], new: &[u8]) -> usize {
    const BLOCK: usize = 64;
    let length = old.len().min(new.len());
    let mut same = 0;
    while same + BLOCK <= length && old[same..same + BLOCK] == new[same..same + BLOCK] {
        same += BLOCK;
    }
    same += old[same..length]
        .iter()
        .zip(&new[same..length])
        .take_while(|(a, b)| a == b)
        .count();
    // Back to the end of the last entry wholly inside the shared bytes.
    let mut end = 0;
    while let Some(nul) = old[end..same].iter().position(|&b| b == 0) {
        let next = end + nul + 21;
        if next > same {
            break;
        }
        end = next;
    }
    end
}

/// [`pair_entries`] for two trees in Git's order; `None` when either is not. A diff
/// usually changes one entry of a tree of a hundred: the entries before it are skipped
/// as bytes, and the merge stops once the rest of both trees is the same bytes. (Skipped
/// entries are not decoded or checked for order: equal on both sides, they pair with
/// each other whatever the order, unless a broken tree repeats a name.)
fn merge_sorted<'t>(
    old: &'t [u8],
    new: &'t [u8],
) -> Result<Option<Vec<EntryPair<'t>>>, git2::Error> {
    let mut pairs = Vec::new();
    let start = shared_entries_len(old, new);
    let (mut old, mut new) = (Entries::of(&old[start..]), Entries::of(&new[start..]));
    let (mut a, mut b) = (old.next().transpose()?, new.next().transpose()?);
    let mut after_change = false;
    loop {
        if after_change
            && let (Some(x), Some(y)) = (a, b)
            && x.raw == y.raw
            && old.rest == new.rest
        {
            return Ok(Some(pairs));
        }
        after_change = !matches!((a, b), (Some(x), Some(y)) if x.raw == y.raw);
        let (next_a, next_b) = match (a, b) {
            (None, None) => return Ok(Some(pairs)),
            (Some(_), None) => {
                pairs.push((a, None));
                (true, false)
            }
            (None, Some(_)) => {
                pairs.push((None, b));
                (false, true)
            }
            // Entries the two trees share (most of them) are equal byte for byte.
            (Some(x), Some(y)) if x.raw == y.raw => (true, true),
            (Some(x), Some(y)) => match git_order(&x, &y) {
                Ordering::Less => {
                    pairs.push((a, None));
                    (true, false)
                }
                Ordering::Greater => {
                    pairs.push((None, b));
                    (false, true)
                }
                Ordering::Equal => {
                    if !x.same(&y) {
                        pairs.push((a, b));
                    }
                    (true, true)
                }
            },
        };
        if next_a {
            let Some(following) = following(&mut old, a)? else {
                return Ok(None);
            };
            a = following;
        }
        if next_b {
            let Some(following) = following(&mut new, b)? else {
                return Ok(None);
            };
            b = following;
        }
    }
    // A name that is a file on one side and a folder on the other sorts apart and comes
    // out as two pairs, which yields the same changes as one.
}

/// The entry after `current` in `entries` (`Some(None)` at the end); `None` when it does
/// not sort after `current`: the tree is not in Git's order.
fn following<'t>(
    entries: &mut Entries<'t>,
    current: Option<Entry<'t>>,
) -> Result<Option<Option<Entry<'t>>>, git2::Error> {
    let next = entries.next().transpose()?;
    if let (Some(x), Some(y)) = (current, next)
        && git_order(&x, &y) != Ordering::Less
    {
        return Ok(None);
    }
    Ok(Some(next))
}

/// [`pair_entries`] for trees in any order, through a map of the old tree's names.
fn pair_by_name<'t>(old: &'t [u8], new: &'t [u8]) -> Result<Vec<EntryPair<'t>>, git2::Error> {
    let mut old_by_name = HashMap::new();
    for entry in Entries::of(old) {
        let entry = entry?;
        old_by_name.insert(entry.name, entry);
    }
    let mut pairs = Vec::new();
    for entry in Entries::of(new) {
        let entry = entry?;
        let previous = old_by_name.remove(entry.name);
        if !previous.is_some_and(|p| p.same(&entry)) {
            pairs.push((previous, Some(entry)));
        }
    }
    pairs.extend(old_by_name.into_values().map(|entry| (Some(entry), None)));
    Ok(pairs)
}

/// Every file under the subtree `root` whose kind is one of `kinds`, with its blob, in
/// one pass over the trees.
pub(crate) fn files_of_kinds(
    objects: &ObjectReader<'_>,
    root: Oid,
    kinds: &[FileKind],
) -> Result<Vec<(String, Oid)>, git2::Error> {
    let mut files = Vec::new();
    collect(objects, root, "", kinds, &mut files)?;
    Ok(files)
}

fn collect(
    objects: &ObjectReader<'_>,
    tree: Oid,
    prefix: &str,
    kinds: &[FileKind],
    out: &mut Vec<(String, Oid)>,
) -> Result<(), git2::Error> {
    let object = objects.read(tree)?;
    for entry in Entries::of(&object) {
        let entry = entry?;
        if entry.name.starts_with(b".") {
            continue;
        }
        let path = format!("{prefix}{}", String::from_utf8_lossy(entry.name));
        if entry.is_tree() {
            collect(objects, entry.oid()?, &format!("{path}/"), kinds, out)?;
        } else if entry.is_blob()
            && FileKind::of(Path::new(&path)).is_some_and(|kind| kinds.contains(&kind))
        {
            out.push((path, entry.oid()?));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

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
            let (time, offset, name, email, message) = commit_details(object.data());
            assert_eq!(time, commit.time().seconds());
            assert_eq!(offset, commit.time().offset_minutes());
            assert_eq!(name.as_bytes(), commit.author().name_bytes());
            assert_eq!(email.as_bytes(), commit.author().email_bytes());
            assert_eq!(message.as_bytes(), commit.message_bytes());
        }
    }

    /// A raw tree of `(mode, name, id byte)` entries, in the order given.
    fn raw_tree(entries: &[(&str, String, u8)]) -> Vec<u8> {
        let mut out = Vec::new();
        for (mode, name, id) in entries {
            out.extend_from_slice(format!("{mode} {name}\0").as_bytes());
            out.extend_from_slice(&[*id; 20]);
        }
        out
    }

    /// The raw entries before and after, by name.
    type ByName = BTreeMap<Vec<u8>, (Option<Vec<u8>>, Option<Vec<u8>>)>;

    /// Pairs by name, a name whose file became a folder (two pairs) joined into one.
    fn by_name(pairs: Vec<EntryPair<'_>>) -> ByName {
        let mut out = ByName::new();
        for (before, after) in pairs {
            let name = before.or(after).expect("a side").name.to_vec();
            let slot = out.entry(name).or_default();
            if let Some(before) = before {
                slot.0 = Some(before.raw.to_vec());
            }
            if let Some(after) = after {
                slot.1 = Some(after.raw.to_vec());
            }
        }
        out
    }

    #[test]
    fn merging_sorted_trees_pairs_as_a_map_of_names_does() {
        let mut random = 0x9e37_79b9_7f4a_7c15_u64;
        let mut below = |n: u64| {
            random ^= random << 13;
            random ^= random >> 7;
            random ^= random << 17;
            random % n
        };
        // Git's order: by name, a folder's name followed by `/`.
        let git_sorted = |mut entries: Vec<(&'static str, String, u8)>| {
            entries.sort_by_key(|(mode, name, _)| {
                format!("{name}{}", if *mode == "40000" { "/" } else { "" })
            });
            entries
        };
        for _ in 0..2_000 {
            let count = below(40) as usize;
            let mut old = Vec::new();
            for i in 0..count {
                let mode = if below(4) == 0 { "40000" } else { "100644" };
                let name = format!("{}{}", ["a", "a.b", "a-b", "ab", "b"][below(5) as usize], i);
                old.push((mode, name, below(3) as u8));
            }
            let mut new = old.clone();
            for _ in 0..below(4) {
                let at = below(new.len() as u64 + 1) as usize;
                match below(4) {
                    0 if at < new.len() => {
                        new.remove(at);
                    }
                    1 if at < new.len() => new[at].2 = new[at].2.wrapping_add(1),
                    2 if at < new.len() => {
                        // A file becomes a folder of the same name, or back.
                        new[at].0 = if new[at].0 == "40000" {
                            "100644"
                        } else {
                            "40000"
                        };
                    }
                    _ => new.push(("100644", format!("new{}", below(1000)), 7)),
                }
            }
            let mut names = std::collections::HashSet::new();
            new.retain(|entry| names.insert(entry.1.clone()));
            let (old, new) = (raw_tree(&git_sorted(old)), raw_tree(&git_sorted(new)));
            let merged = merge_sorted(&old, &new).expect("valid").expect("sorted");
            let mapped = pair_by_name(&old, &new).expect("valid");
            assert_eq!(by_name(merged), by_name(mapped));
        }
    }

    #[test]
    fn unsorted_trees_and_equal_modes_are_paired_by_name() {
        let name = |text: &str| text.to_owned();
        let old = raw_tree(&[("100644", name("b"), 1), ("100644", name("a"), 1)]);
        let new = raw_tree(&[("100644", name("b"), 2), ("100644", name("a"), 1)]);
        assert!(merge_sorted(&old, &new).expect("valid").is_none());
        let pairs = pair_entries(&old, &new).expect("valid");
        assert_eq!(pairs.len(), 1);
        assert_eq!(pairs[0].1.expect("new side").name, b"b");
        // `040000` (written by old tools) and `40000` are the same mode.
        let old = raw_tree(&[("040000", name("d"), 1)]);
        let new = raw_tree(&[("40000", name("d"), 1)]);
        assert!(pair_entries(&old, &new).expect("valid").is_empty());
        // Any regular file is a blob, a symbolic link or a submodule is not.
        for (mode, blob) in [
            ("100664", true),
            ("100755", true),
            ("120000", false),
            ("160000", false),
        ] {
            let raw = raw_tree(&[(mode, name("f"), 1)]);
            let entry = Entries::of(&raw).next().expect("one").expect("valid");
            assert_eq!(entry.is_blob(), blob, "{mode}");
        }
        // A tree cut short is an error, not a panic.
        assert!(pair_entries(&old[..old.len() - 3], &new).is_err());
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
