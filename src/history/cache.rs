//! The history index cache: the walk's state at the last commit read, kept in the Git
//! folder (`.git/promptctl/history-v2-*.bin`) so that the next run reads only the commits
//! made since.
//!
//! It holds no definition: each version and each current file keeps the blob its
//! definition is parsed from (on demand), the definition's digest (all the numbering rule
//! compares) and its model (all `list` shows). The format is a compact hand-rolled one
//! (integers as base-64 digits, object ids in hex, strings length-prefixed; every byte of
//! the framing is ASCII, so the file is UTF-8 text): a monorepo's history reads and writes
//! in a few milliseconds.
//!
//! The cache is never trusted: it is used only when its format, promptctl's version, the
//! prompts folder and the revision all match, its checksum holds, every index in it is in
//! range, and (checked by the walk) its commit lies on the first-parent chain of the new
//! tip. Anything else rebuilds it. It is written to a temporary file and renamed, so a
//! crash never leaves half a cache.

use std::collections::HashMap;
use std::hash::BuildHasherDefault;
use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use git2::{Oid, Repository};

use super::tracker::{FileEntry, Outcome, ParsedBlob, Tracker};
use super::{CommitInfo, Problem, PromptHistory, StoredDefinition, Version};
use crate::diagnostic::{Diagnostic, Position, Severity};
use crate::repo::PromptId;

/// The first line's magic word and format number.
const MAGIC: &str = "promptctl-history 2";

/// What a cache is for: one prompts folder read at one revision.
#[derive(Debug, Clone)]
pub(crate) struct Key {
    /// The prompts folder inside the repository, `/`-separated.
    pub prompts_dir: String,
    /// The revision as given (`HEAD` by default).
    pub rev: String,
}

impl Key {
    fn file(&self, repo: &Repository) -> PathBuf {
        let hash = crate::fnv::fnv1a(self.prompts_dir.bytes().chain([0]).chain(self.rev.bytes()));
        repo.path()
            .join("promptctl")
            .join(format!("history-v2-{hash:016x}.bin"))
    }

    /// The file of the previous format, removed when the new one is written.
    fn old_file(&self, repo: &Repository) -> PathBuf {
        let file = self.file(repo);
        let name = file
            .file_name()
            .map(|name| {
                name.to_string_lossy()
                    .replace("-v2-", "-v1-")
                    .replace(".bin", ".json")
            })
            .unwrap_or_default();
        file.with_file_name(name)
    }
}

/// The walk's state after the cached tip.
#[derive(Debug)]
pub(crate) struct State {
    /// The last commit read.
    pub tip: Oid,
    /// Its prompts subtree.
    pub tip_prompts: Option<Oid>,
    /// The tracker after it.
    pub tracker: Tracker,
}

/// What reading the cache gave.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// No cache.
    Missing,
    /// A cache that cannot be used, and why.
    Invalid(String),
    /// A usable cache.
    Hit(Box<State>),
}

/// Writes the cache's body.
#[derive(Default)]
struct Writer {
    out: Vec<u8>,
}

impl Writer {
    /// An unsigned integer: six bits a byte, least significant first; a byte with bit 6
    /// set says more follow.
    fn int(&mut self, mut n: u64) {
        loop {
            let low = (n & 0x3f) as u8;
            n >>= 6;
            if n == 0 {
                self.out.push(low);
                return;
            }
            self.out.push(0x40 | low);
        }
    }

    fn index(&mut self, n: usize) {
        self.int(n as u64);
    }

    fn signed(&mut self, n: i64) {
        self.int(((n << 1) ^ (n >> 63)) as u64);
    }

    fn flag(&mut self, flag: bool) {
        self.out.push(u8::from(flag));
    }

    fn text(&mut self, text: &str) {
        self.index(text.len());
        self.out.extend_from_slice(text.as_bytes());
    }

    fn optional_text(&mut self, text: Option<&str>) {
        self.flag(text.is_some());
        if let Some(text) = text {
            self.text(text);
        }
    }

    fn hex(&mut self, bytes: &[u8]) {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut text = [0u8; 40];
        for (pair, byte) in text.chunks_exact_mut(2).zip(bytes) {
            pair[0] = DIGITS[usize::from(byte >> 4)];
            pair[1] = DIGITS[usize::from(byte & 0xf)];
        }
        self.out.extend_from_slice(&text[..2 * bytes.len().min(20)]);
    }

    fn oid(&mut self, id: Oid) {
        self.hex(id.as_bytes());
    }

    fn digest(&mut self, digest: u128) {
        self.hex(&digest.to_be_bytes());
    }

    fn diagnostic(&mut self, diagnostic: &Diagnostic) {
        self.flag(diagnostic.severity == Severity::Error);
        self.text(diagnostic.code);
        self.text(&diagnostic.message);
        self.text(&diagnostic.path.to_string_lossy());
        self.index(diagnostic.position.line);
        self.index(diagnostic.position.column);
        self.index(diagnostic.length);
        self.optional_text(diagnostic.line_text.as_deref());
        self.optional_text(diagnostic.help.as_deref());
    }
}

/// Reads the cache's body; every error is a reason to rebuild.
struct Reader<'a> {
    data: &'a [u8],
    at: usize,
}

const TRUNCATED: &str = "the cache is truncated";

/// The value of each lowercase hex digit; 0xff for any other byte.
const HEX_VALUES: [u8; 256] = {
    let mut values = [0xff; 256];
    let mut digit = 0;
    while digit < 16 {
        values[b"0123456789abcdef"[digit] as usize] = digit as u8;
        digit += 1;
    }
    values
};

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, String> {
        let byte = *self.data.get(self.at).ok_or(TRUNCATED)?;
        self.at += 1;
        Ok(byte)
    }

    fn bytes(&mut self, n: usize) -> Result<&'a [u8], String> {
        let end = self.at.checked_add(n).ok_or(TRUNCATED)?;
        let bytes = self.data.get(self.at..end).ok_or(TRUNCATED)?;
        self.at = end;
        Ok(bytes)
    }

    fn int(&mut self) -> Result<u64, String> {
        let mut n: u64 = 0;
        let mut shift = 0;
        loop {
            let byte = self.byte()?;
            if byte >= 0x80 || shift > 60 {
                return Err("the cache is corrupt: bad integer".to_owned());
            }
            n |= u64::from(byte & 0x3f) << shift;
            if byte & 0x40 == 0 {
                return Ok(n);
            }
            shift += 6;
        }
    }

    fn index(&mut self) -> Result<usize, String> {
        usize::try_from(self.int()?).map_err(|_| "the cache is corrupt: bad index".to_owned())
    }

    fn signed(&mut self) -> Result<i64, String> {
        let n = self.int()?;
        Ok(((n >> 1) as i64) ^ -((n & 1) as i64))
    }

    fn flag(&mut self) -> Result<bool, String> {
        match self.byte()? {
            0 => Ok(false),
            1 => Ok(true),
            _ => Err("the cache is corrupt: bad flag".to_owned()),
        }
    }

    fn text(&mut self) -> Result<&'a str, String> {
        let len = self.index()?;
        std::str::from_utf8(self.bytes(len)?)
            .map_err(|_| "the cache is corrupt: bad text".to_owned())
    }

    fn optional_text(&mut self) -> Result<Option<&'a str>, String> {
        if self.flag()? {
            Ok(Some(self.text()?))
        } else {
            Ok(None)
        }
    }

    fn hex<const N: usize>(&mut self) -> Result<[u8; N], String> {
        let value = |digit: u8| HEX_VALUES[usize::from(digit)];
        let digits = self.bytes(2 * N)?;
        let mut bytes = [0u8; N];
        let mut bad = false;
        for (byte, pair) in bytes.iter_mut().zip(digits.chunks_exact(2)) {
            let (high, low) = (value(pair[0]), value(pair[1]));
            bad |= (high | low) > 0xf;
            *byte = (high << 4) | (low & 0xf);
        }
        if bad {
            return Err("the cache is corrupt: bad hex digit".to_owned());
        }
        Ok(bytes)
    }

    fn oid(&mut self) -> Result<Oid, String> {
        Oid::from_bytes(&self.hex::<20>()?).map_err(|err| err.message().to_owned())
    }

    fn digest(&mut self) -> Result<u128, String> {
        Ok(u128::from_be_bytes(self.hex::<16>()?))
    }

    fn diagnostic(&mut self) -> Result<Diagnostic, String> {
        let error = self.flag()?;
        let code = self.text()?;
        let code = CODES
            .iter()
            .find(|known| **known == code)
            .ok_or_else(|| format!("unknown diagnostic code `{code}`"))?;
        let message = self.text()?;
        let path = self.text()?;
        let line = self.index()?;
        let column = self.index()?;
        let length = self.index()?;
        let mut diagnostic =
            Diagnostic::error(code, path, Position::new(line, column), message).with_length(length);
        if !error {
            diagnostic.severity = Severity::Warning;
        }
        diagnostic.line_text = self.optional_text()?.map(str::to_owned);
        diagnostic.help = self.optional_text()?.map(str::to_owned);
        Ok(diagnostic)
    }
}

/// A fast hash for the cache's own tables (keys come from the repository being read,
/// not from an adversary; the FxHash mixing step).
#[derive(Default, Clone, Copy)]
struct FastHasher(u64);

impl FastHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for FastHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u8(&mut self, n: u8) {
        self.add(u64::from(n));
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

type FastMap<K, V> = HashMap<K, V, BuildHasherDefault<FastHasher>>;

/// Text interned into the cache's string table.
#[derive(Default)]
struct Strings<'a> {
    list: Vec<&'a str>,
    index: FastMap<&'a str, usize>,
}

impl<'a> Strings<'a> {
    fn intern(&mut self, text: &'a str) -> usize {
        *self.index.entry(text).or_insert_with(|| {
            self.list.push(text);
            self.list.len() - 1
        })
    }
}

/// The codes a history diagnostic can have (the cache stores them as text).
const CODES: &[&str] = &[
    "file-too-large",
    "binary-file",
    "not-utf8",
    "empty-file",
    "yaml-limits",
    "schema",
    "yaml-syntax",
    "no-service",
    "incomplete-definition",
    "duplicate-identity",
];

fn checksum(bytes: &[u8]) -> String {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for chunk in bytes.chunks(8) {
        let mut word = [0u8; 8];
        word[..chunk.len()].copy_from_slice(chunk);
        hash ^= u64::from_le_bytes(word);
        hash = hash.wrapping_mul(0x0100_0000_01b3).rotate_left(29);
    }
    format!("{hash:016x}")
}

/// Reads the cache for `key`, if there is a usable one.
pub(crate) fn load(repo: &Repository, key: &Key, prompts_dir: &Path) -> Loaded {
    let data = match std::fs::read(key.file(repo)) {
        Ok(data) => data,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Loaded::Missing,
        Err(err) => return Loaded::Invalid(format!("cannot read the cache: {err}")),
    };
    let git_dir: Arc<Path> = Arc::from(repo.path());
    match decode(&data, key, prompts_dir, &git_dir) {
        Ok(state) => Loaded::Hit(Box::new(state)),
        Err(reason) => Loaded::Invalid(reason),
    }
}

/// The string at `index` of the cache's string table.
fn string_at<'a>(strings: &[&'a str], index: usize) -> Result<&'a str, String> {
    strings
        .get(index)
        .copied()
        .ok_or_else(|| "string index out of range".to_owned())
}

/// The definition at `index` of the cache's definition table.
fn definition_at(
    definitions: &[Arc<StoredDefinition>],
    index: usize,
) -> Result<Arc<StoredDefinition>, String> {
    definitions
        .get(index)
        .cloned()
        .ok_or_else(|| "definition index out of range".to_owned())
}

/// The body of a cache whose header (magic word and checksum) is right.
fn checked_body(data: &[u8]) -> Result<&[u8], String> {
    let newline = data.iter().position(|&b| b == b'\n').ok_or(TRUNCATED)?;
    let (header, body) = (&data[..newline], &data[newline + 1..]);
    let sum = header
        .strip_prefix(MAGIC.as_bytes())
        .and_then(|rest| rest.strip_prefix(b" "))
        .ok_or("the cache has another format")?;
    if sum != checksum(body).as_bytes() {
        return Err("the cache's checksum does not match".to_owned());
    }
    Ok(body)
}

fn decode(
    data: &[u8],
    key: &Key,
    prompts_dir: &Path,
    git_dir: &Arc<Path>,
) -> Result<State, String> {
    let body = checked_body(data)?;
    let mut r = Reader { data: body, at: 0 };
    if r.text()? != env!("CARGO_PKG_VERSION") {
        return Err("the cache was written by another promptctl version".to_owned());
    }
    if r.text()? != key.prompts_dir || r.text()? != key.rev {
        return Err("the cache is for another prompts folder or revision".to_owned());
    }
    let tip = r.oid()?;
    let tip_prompts = if r.flag()? { Some(r.oid()?) } else { None };
    let count = r.index()?;
    let mut strings = Vec::with_capacity(count.min(body.len()));
    for _ in 0..count {
        strings.push(r.text()?);
    }
    let commits = read_commits(&mut r, &strings)?;
    let definitions = read_definitions(&mut r, &strings, git_dir)?;
    let blobs = read_blobs(&mut r, &definitions)?;
    let mut tracker = Tracker::new(prompts_dir);
    read_files(&mut r, &blobs, &mut tracker)?;
    tracker.prompts = read_prompts(&mut r, &strings, &commits, &definitions)?
        .into_iter()
        .collect();
    let count = r.index()?;
    for _ in 0..count {
        let commit = r.optional_text()?.map(str::to_owned);
        let diagnostic = r.diagnostic()?;
        tracker.problems.push(Problem { commit, diagnostic });
    }
    if r.at != body.len() {
        return Err("the cache is corrupt: trailing data".to_owned());
    }
    Ok(State {
        tip,
        tip_prompts,
        tracker,
    })
}

/// The commits' table.
fn read_commits(r: &mut Reader<'_>, strings: &[&str]) -> Result<Vec<Arc<CommitInfo>>, String> {
    let count = r.index()?;
    let mut commits = Vec::with_capacity(count.min(r.data.len()));
    for _ in 0..count {
        let id = r.text()?.to_owned();
        let time = r.signed()?;
        let offset_minutes =
            i32::try_from(r.signed()?).map_err(|_| "the cache is corrupt: bad time zone")?;
        let author_name = string_at(strings, r.index()?)?.to_owned();
        let author_email = string_at(strings, r.index()?)?.to_owned();
        let message = r.text()?.to_owned();
        commits.push(Arc::new(CommitInfo {
            id,
            time,
            offset_minutes,
            author_name,
            author_email,
            message,
        }));
    }
    Ok(commits)
}

/// The definitions' table: blob, digest and model (one `Arc<str>` per model name).
fn read_definitions(
    r: &mut Reader<'_>,
    strings: &[&str],
    git_dir: &Arc<Path>,
) -> Result<Vec<Arc<StoredDefinition>>, String> {
    let mut models: Vec<Option<Arc<str>>> = vec![None; strings.len()];
    let count = r.index()?;
    let mut definitions = Vec::with_capacity(count.min(r.data.len()));
    for _ in 0..count {
        let blob = r.oid()?;
        let digest = r.digest()?;
        let model = r.index()?;
        let model = match models.get_mut(model) {
            Some(Some(text)) => text.clone(),
            Some(slot) => slot.insert(Arc::from(string_at(strings, model)?)).clone(),
            None => return Err("string index out of range".to_owned()),
        };
        definitions.push(Arc::new(StoredDefinition {
            blob,
            digest,
            model,
            git_dir: Some(git_dir.clone()),
            loaded: OnceLock::new(),
        }));
    }
    Ok(definitions)
}

/// The parsed blobs' table.
fn read_blobs(
    r: &mut Reader<'_>,
    definitions: &[Arc<StoredDefinition>],
) -> Result<Vec<(Oid, Arc<ParsedBlob>)>, String> {
    let count = r.index()?;
    let mut blobs = Vec::with_capacity(count.min(r.data.len()));
    for _ in 0..count {
        let id = r.oid()?;
        let name = r.optional_text()?.map(str::to_owned);
        let service = r.optional_text()?.map(str::to_owned);
        let outcome = match r.byte()? {
            0 => Outcome::Incomplete,
            1 => Outcome::Complete(definition_at(definitions, r.index()?)?),
            2 => Outcome::Failed(r.diagnostic()?),
            _ => return Err("the cache is corrupt: bad blob".to_owned()),
        };
        blobs.push((
            id,
            Arc::new(ParsedBlob {
                name,
                service,
                outcome,
            }),
        ));
    }
    Ok(blobs)
}

/// The tracker's files: path, blob and the identity each claims.
fn read_files(
    r: &mut Reader<'_>,
    blobs: &[(Oid, Arc<ParsedBlob>)],
    tracker: &mut Tracker,
) -> Result<(), String> {
    let count = r.index()?;
    tracker.files.reserve(count.min(r.data.len()));
    for _ in 0..count {
        let path = r.text()?.to_owned();
        let (blob, parsed) = blobs
            .get(r.index()?)
            .cloned()
            .ok_or("blob index out of range")?;
        let claims = if r.flag()? {
            Some(PromptId::new(r.text()?, r.text()?))
        } else {
            None
        };
        if let Some(id) = &claims {
            tracker
                .claims
                .entry(id.clone())
                .or_default()
                .insert(path.clone());
        }
        tracker.files.insert(
            path,
            FileEntry {
                blob,
                parsed,
                claims,
            },
        );
    }
    Ok(())
}

/// The prompts with their versions, in order (checked).
fn read_prompts(
    r: &mut Reader<'_>,
    strings: &[&str],
    commits: &[Arc<CommitInfo>],
    definitions: &[Arc<StoredDefinition>],
) -> Result<Vec<(PromptId, PromptHistory)>, String> {
    let count = r.index()?;
    // Written in order: collecting them builds the map in one pass.
    let mut prompts = Vec::with_capacity(count.min(r.data.len()));
    for _ in 0..count {
        let id = PromptId::new(r.text()?, r.text()?);
        let archived = r.flag()?;
        let path = PathBuf::from(string_at(strings, r.index()?)?);
        let count = r.index()?;
        if count == 0 {
            return Err("a cached prompt has no version".to_owned());
        }
        let mut versions = Vec::with_capacity(count.min(r.data.len()));
        for number in 1..=count {
            versions.push(Version {
                number: u32::try_from(number).map_err(|_| "too many versions")?,
                commit: Some(
                    commits
                        .get(r.index()?)
                        .cloned()
                        .ok_or("commit index out of range")?,
                ),
                definition: definition_at(definitions, r.index()?)?,
                path: PathBuf::from(string_at(strings, r.index()?)?),
            });
        }
        prompts.push((
            id.clone(),
            PromptHistory {
                id,
                versions,
                archived,
                path,
            },
        ));
    }
    if prompts.windows(2).any(|pair| pair[0].0 >= pair[1].0) {
        return Err("the cache's prompts are out of order".to_owned());
    }
    Ok(prompts)
}

/// Writes the cache for `key`: the tracker's state after `tip`.
pub(crate) fn store(
    repo: &Repository,
    key: &Key,
    tip: Oid,
    tip_prompts: Option<Oid>,
    tracker: &Tracker,
) -> std::io::Result<()> {
    let Some(body) = encode(key, tip, tip_prompts, tracker) else {
        return Ok(()); // the working tree's state is never cached
    };
    let mut data = format!("{MAGIC} {}\n", checksum(&body)).into_bytes();
    data.extend_from_slice(&body);
    crate::files::replace(&key.file(repo), &data)?;
    // A cache of the previous format is dead weight once this one exists.
    let _ = std::fs::remove_file(key.old_file(repo));
    Ok(())
}

/// The cache's body, or `None` when the tracker holds the working tree's state.
fn encode<'a>(
    key: &Key,
    tip: Oid,
    tip_prompts: Option<Oid>,
    tracker: &'a Tracker,
) -> Option<Vec<u8>> {
    let mut strings: Strings<'a> = Strings::default();
    // Tables first (the definitions and commits in use), then the records that refer to
    // them; written in the order `decode` reads.
    let mut definitions: Vec<&'a StoredDefinition> = Vec::new();
    let mut definition_index: FastMap<*const StoredDefinition, usize> = FastMap::default();
    let mut intern = |stored: &'a Arc<StoredDefinition>,
                      definitions: &mut Vec<&'a StoredDefinition>| {
        *definition_index
            .entry(Arc::as_ptr(stored))
            .or_insert_with(|| {
                definitions.push(stored);
                definitions.len() - 1
            })
    };
    let mut files: Vec<(&String, &FileEntry)> = tracker.files.iter().collect();
    files.sort_by(|a, b| a.0.cmp(b.0));
    let mut blob_list: Vec<(Oid, &ParsedBlob, Option<usize>)> = Vec::new();
    let mut blob_index: FastMap<Oid, usize> = FastMap::default();
    let mut file_records = Vec::with_capacity(files.len());
    for (path, entry) in &files {
        let index = *blob_index.entry(entry.blob).or_insert_with(|| {
            let definition = match &entry.parsed.outcome {
                Outcome::Complete(stored) => Some(intern(stored, &mut definitions)),
                _ => None,
            };
            blob_list.push((entry.blob, &entry.parsed, definition));
            blob_list.len() - 1
        });
        file_records.push((path.as_str(), index, entry.claims.as_ref()));
    }
    let mut commits: Vec<&CommitInfo> = Vec::new();
    let mut commit_index: FastMap<*const CommitInfo, usize> = FastMap::default();
    let mut prompt_records = Vec::with_capacity(tracker.prompts.len());
    for prompt in tracker.prompts.values() {
        let mut versions = Vec::with_capacity(prompt.versions.len());
        for version in &prompt.versions {
            let commit = version.commit.as_ref()?;
            let commit = *commit_index.entry(Arc::as_ptr(commit)).or_insert_with(|| {
                commits.push(commit);
                commits.len() - 1
            });
            versions.push((
                commit,
                intern(&version.definition, &mut definitions),
                strings.intern(version.path.to_str()?),
            ));
        }
        prompt_records.push((prompt, strings.intern(prompt.path.to_str()?), versions));
    }
    let mut w = Writer::default();
    w.out
        .reserve(64 * (definitions.len() + files.len() + commits.len()));
    w.text(env!("CARGO_PKG_VERSION"));
    w.text(&key.prompts_dir);
    w.text(&key.rev);
    w.oid(tip);
    w.flag(tip_prompts.is_some());
    if let Some(id) = tip_prompts {
        w.oid(id);
    }
    let models: Vec<usize> = definitions
        .iter()
        .map(|stored| strings.intern(&stored.model))
        .collect();
    let authors: Vec<(usize, usize)> = commits
        .iter()
        .map(|commit| {
            (
                strings.intern(&commit.author_name),
                strings.intern(&commit.author_email),
            )
        })
        .collect();
    w.index(strings.list.len());
    for text in &strings.list {
        w.text(text);
    }
    w.index(commits.len());
    for (commit, (name, email)) in commits.iter().zip(authors) {
        w.text(&commit.id);
        w.signed(commit.time);
        w.signed(i64::from(commit.offset_minutes));
        w.index(name);
        w.index(email);
        w.text(&commit.message);
    }
    w.index(definitions.len());
    for (stored, model) in definitions.iter().zip(models) {
        w.oid(stored.blob);
        w.digest(stored.digest);
        w.index(model);
    }
    w.index(blob_list.len());
    for (id, parsed, definition) in &blob_list {
        w.oid(*id);
        w.optional_text(parsed.name.as_deref());
        w.optional_text(parsed.service.as_deref());
        match (&parsed.outcome, definition) {
            (Outcome::Complete(_), Some(index)) => {
                w.out.push(1);
                w.index(*index);
            }
            (Outcome::Failed(diagnostic), _) => {
                w.out.push(2);
                w.diagnostic(diagnostic);
            }
            _ => w.out.push(0),
        }
    }
    w.index(file_records.len());
    for (path, blob, claims) in file_records {
        w.text(path);
        w.index(blob);
        w.flag(claims.is_some());
        if let Some(id) = claims {
            w.text(&id.service);
            w.text(&id.name);
        }
    }
    w.index(prompt_records.len());
    for (prompt, path, versions) in prompt_records {
        w.text(&prompt.id.service);
        w.text(&prompt.id.name);
        w.flag(prompt.archived);
        w.index(path);
        w.index(versions.len());
        for (commit, definition, path) in versions {
            w.index(commit);
            w.index(definition);
            w.index(path);
        }
    }
    w.index(tracker.problems.len());
    for problem in &tracker.problems {
        w.optional_text(problem.commit.as_deref());
        w.diagnostic(&problem.diagnostic);
    }
    Some(w.out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::history::tracker::Change;

    fn put(path: &str, text: &str) -> Change {
        let blob = Oid::hash_object(git2::ObjectType::Blob, text.as_bytes()).expect("hash");
        let shown = Path::new("prompts").join(path);
        Change {
            path: path.into(),
            new: Some((
                blob,
                Arc::new(ParsedBlob::parse(&shown, blob, text.as_bytes())),
            )),
        }
    }

    #[test]
    fn a_tracker_round_trips_and_a_changed_byte_is_refused() {
        let mut tracker = Tracker::new(Path::new("prompts"));
        let commit = |n: i64, message: &str| {
            Arc::new(CommitInfo {
                id: format!("{n:040x}"),
                time: 1_700_000_000 + n,
                offset_minutes: -330,
                author_name: "Zoë".into(),
                author_email: "z@example.com".into(),
                message: message.into(),
            })
        };
        tracker.apply(
            Some(&commit(1, "one\n\nbody")),
            vec![
                put("s/a.yaml", "model: m\ntemplate: hi\n"),
                put("s/b.yaml", "model: [unclosed\n"),
                put("s/c.yaml", "model: m\n"),
                put("top.yaml", "model: m\ntemplate: x\n"),
            ],
        );
        tracker.apply(
            Some(&commit(2, "two")),
            vec![put("s/a.yaml", "model: m2\ntemplate: \"été\"\n")],
        );
        assert!(!tracker.problems.is_empty());
        let key = Key {
            prompts_dir: "prompts".into(),
            rev: "HEAD".into(),
        };
        let tip = Oid::hash_object(git2::ObjectType::Blob, b"tip").expect("hash");
        let body = encode(&key, tip, Some(tip), &tracker).expect("encodes");
        let mut data = format!("{MAGIC} {}\n", checksum(&body)).into_bytes();
        data.extend_from_slice(&body);
        assert!(
            std::str::from_utf8(&data).is_ok(),
            "the cache is UTF-8 text"
        );
        let git_dir: Arc<Path> = Arc::from(Path::new("/nonexistent"));
        let state = decode(&data, &key, Path::new("prompts"), &git_dir).expect("decodes");
        assert_eq!((state.tip, state.tip_prompts), (tip, Some(tip)));
        assert_eq!(state.tracker.problems, tracker.problems);
        assert_eq!(state.tracker.claims, tracker.claims);
        let again = encode(&key, tip, Some(tip), &state.tracker).expect("encodes");
        assert!(again == body, "decoding then encoding gives the same bytes");
        let prompt = &state.tracker.prompts[&PromptId::new("s", "a")];
        assert_eq!(prompt.versions.len(), 2);
        assert_eq!(prompt.versions[1].model(), "m2");
        assert_eq!(
            prompt.versions[0].commit.as_deref(),
            Some(&*commit(1, "one\n\nbody"))
        );
        let other = Key {
            prompts_dir: "prompts".into(),
            rev: "main".into(),
        };
        assert!(decode(&data, &other, Path::new("prompts"), &git_dir).is_err());
        let last = data.len() - 1;
        data[last] ^= 1;
        assert!(decode(&data, &key, Path::new("prompts"), &git_dir).is_err());
        data[last] ^= 1;
        data.truncate(data.len() - 3);
        assert!(decode(&data, &key, Path::new("prompts"), &git_dir).is_err());
    }
}
