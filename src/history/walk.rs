//! Reading Git objects for the history walk: the first-parent chain, the prompts subtree
//! of each commit, and the prompt files that changed between two subtrees.
//!
//! Speed matters here (a monorepo has 100,000 commits): commits and trees are read raw from
//! the object database and only their headers and entries are decoded; a commit whose root
//! tree or prompts subtree equals its parent's costs one object read; diffs descend only
//! into subtrees whose ids differ.

use std::collections::HashMap;
use std::path::Path;

use git2::{Odb, Oid};

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

    /// The commit's prompts subtree (`None`: no prompts folder) and its first parent.
    pub fn read(&mut self, id: Oid) -> Result<(Option<Oid>, Option<Oid>), git2::Error> {
        let object = self.odb.read(id)?;
        let (tree, parent) = commit_header(object.data())
            .ok_or_else(|| git2::Error::from_str(&format!("commit {id} cannot be decoded")))?;
        let prompts = match self.last_tree {
            Some((last, prompts)) if last == tree => prompts,
            _ => subtree(self.odb, tree, self.prompts_rel)?,
        };
        self.last_tree = Some((tree, prompts));
        Ok((prompts, parent))
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

/// The prompt files that differ between the subtrees `old` and `new`, sorted by path.
pub(crate) fn diff_subtrees(
    odb: &Odb<'_>,
    old: Option<Oid>,
    new: Option<Oid>,
) -> Result<Vec<BlobChange>, git2::Error> {
    let mut changes = Vec::new();
    diff_into(odb, old, new, "", &mut changes)?;
    changes.sort();
    Ok(changes)
}

fn diff_into(
    odb: &Odb<'_>,
    old: Option<Oid>,
    new: Option<Oid>,
    prefix: &str,
    changes: &mut Vec<BlobChange>,
) -> Result<(), git2::Error> {
    if old == new {
        return Ok(());
    }
    let old_object = old.map(|id| odb.read(id)).transpose()?;
    let new_object = new.map(|id| odb.read(id)).transpose()?;
    let old_entries = match &old_object {
        Some(object) => tree_entries(object.data())?,
        None => Vec::new(),
    };
    let new_entries = match &new_object {
        Some(object) => tree_entries(object.data())?,
        None => Vec::new(),
    };
    let mut old_by_name: HashMap<&[u8], Entry<'_>> = old_entries
        .into_iter()
        .filter(|entry| !entry.name.starts_with(b"."))
        .map(|entry| (entry.name, entry))
        .collect();
    let mut pairs: Vec<(Option<Entry<'_>>, Option<Entry<'_>>)> = Vec::new();
    for entry in new_entries {
        if entry.name.starts_with(b".") {
            continue;
        }
        let previous = old_by_name.remove(entry.name);
        if previous.is_some_and(|p| p.id == entry.id && p.mode == entry.mode) {
            continue;
        }
        pairs.push((previous, Some(entry)));
    }
    pairs.extend(old_by_name.into_values().map(|entry| (Some(entry), None)));
    for (before, after) in pairs {
        let Some(name) = before.or(after).map(|entry| entry.name) else {
            continue;
        };
        let path = format!("{prefix}{}", String::from_utf8_lossy(name));
        let old_tree = before.filter(Entry::is_tree).map(|entry| entry.id);
        let new_tree = after.filter(Entry::is_tree).map(|entry| entry.id);
        if old_tree.is_some() || new_tree.is_some() {
            diff_into(odb, old_tree, new_tree, &format!("{path}/"), changes)?;
        }
        let old_blob = before.filter(Entry::is_blob).map(|entry| entry.id);
        let new_blob = after.filter(Entry::is_blob).map(|entry| entry.id);
        if old_blob != new_blob && FileKind::of(Path::new(&path)) == Some(FileKind::Prompt) {
            changes.push((path, new_blob));
        }
    }
    Ok(())
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
