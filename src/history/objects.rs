//! Reading Git objects for the history walk: straight from the repository's pack files
//! when it can, through libgit2 for everything else.
//!
//! A full walk of a monorepo reads a quarter of a million objects, and libgit2 pays for
//! each one in ways the walk does not need: two mutexes, a copy of the data, and a delta
//! chain resolved from its full base every time (its cache keeps only the bases, so a tree
//! fifty deltas deep costs fifty inflates and fifty copies on every read). Git's own reader
//! caches every object a chain resolves through, which is what makes `git log` fast; this
//! reader does the same for version 2 pack indexes and version 2 and 3 packs, the formats
//! Git has written since 2007. An object it cannot find or cannot decode (loose objects,
//! alternates, a base in another pack, anything unusual) is read through libgit2, which
//! also reports the errors. Sizes, offsets and the pack's checksum are checked against
//! the index, so a corrupt pack is left to libgit2 rather than misread.

use std::cell::RefCell;
use std::collections::HashMap;
use std::hash::Hash;
use std::path::Path;
use std::sync::Arc;

use flate2::{Decompress, FlushDecompress, Status};
use git2::{Odb, Oid};

/// An object's content, shared: the delta cache and the walk's own tree cache hold the
/// same bytes, and blobs go to the parser threads without a copy.
pub(crate) type Object = Arc<Vec<u8>>;

/// Reads objects by id; see the module documentation.
pub(crate) struct ObjectReader<'r> {
    odb: &'r Odb<'r>,
    /// The repository's `pack` folder, when its packs may be read.
    pack_dir: Option<std::path::PathBuf>,
    /// How many objects to read through libgit2 before opening the packs.
    open_after: usize,
    /// Objects read so far (counted until the packs are open).
    reads: std::cell::Cell<usize>,
    /// The packs, once open.
    packs: std::cell::OnceCell<Vec<Pack>>,
    /// The pack that held the last object found.
    last_pack: std::cell::Cell<usize>,
    state: RefCell<ReadState>,
}

/// The reader's caches and its reusable inflater.
struct ReadState {
    /// Pack data, by pack and window number.
    windows: TwoGenerations<(usize, u64), Arc<Vec<u8>>>,
    /// Objects resolved through delta chains, and the bases they were resolved from, by
    /// pack and offset of the entry.
    bases: TwoGenerations<(usize, u64), Object>,
    inflater: Decompress,
}

/// The most room reserved up front for an object, whose size a corrupt pack may get wrong.
const INITIAL_ROOM: usize = 1 << 20;

/// How much pack data is read at once.
const WINDOW_BYTES: u64 = 1 << 20;

/// How much pack data is kept in memory (the newest windows).
const WINDOW_BUDGET: usize = 256 << 20;

/// How many bytes of resolved objects the delta cache keeps (the same as Git's default
/// `core.deltaBaseCacheLimit`).
const BASE_BUDGET: usize = 96 << 20;

/// The longest delta chain followed: Git writes chains of at most 50 by default and 4095
/// at most; a longer one (or a cycle of reference deltas) is left to libgit2.
const MAX_CHAIN: usize = 4_096;

impl<'r> ObjectReader<'r> {
    /// A reader that asks libgit2 for every object: for reading a few objects, where
    /// opening the pack indexes would cost more than it saves.
    pub fn libgit2(odb: &'r Odb<'r>) -> ObjectReader<'r> {
        ObjectReader {
            odb,
            pack_dir: None,
            open_after: 0,
            reads: std::cell::Cell::new(0),
            packs: std::cell::OnceCell::new(),
            last_pack: std::cell::Cell::new(0),
            state: RefCell::new(ReadState {
                windows: TwoGenerations::new(WINDOW_BUDGET),
                bases: TwoGenerations::new(BASE_BUDGET),
                inflater: Decompress::new(true),
            }),
        }
    }

    /// A reader of the packs in `objects_dir` (the repository's `objects` folder), opened
    /// once `open_after` objects have been read through libgit2: a walk that turns out to
    /// read a few objects (extending a cache by a commit or two) never pays for opening
    /// the pack indexes, and one that reads many (a rebuild) reads the packs. A pack it
    /// cannot use is left to libgit2.
    pub fn with_packs(odb: &'r Odb<'r>, objects_dir: &Path, open_after: usize) -> ObjectReader<'r> {
        let mut reader = ObjectReader::libgit2(odb);
        reader.pack_dir = Some(objects_dir.join("pack"));
        reader.open_after = open_after;
        reader
    }

    /// The packs: none until they are open.
    fn packs(&self) -> &[Pack] {
        if let Some(packs) = self.packs.get() {
            return packs;
        }
        let Some(pack_dir) = &self.pack_dir else {
            return &[];
        };
        let reads = self.reads.get();
        if reads < self.open_after {
            self.reads.set(reads + 1);
            return &[];
        }
        self.packs.get_or_init(|| Pack::open_all(pack_dir))
    }

    /// Frees the caches (after a full walk, tens of megabytes in many blocks) on a
    /// thread of their own, so that the walk's caller does not wait for it.
    pub fn release(self) {
        let state = self.state.into_inner();
        let freed = std::thread::Builder::new().spawn(move || drop(state));
        // Without a thread, this one frees them.
        drop(freed);
    }

    /// The content of the object `id`.
    pub fn read(&self, id: Oid) -> Result<Object, git2::Error> {
        if let Some(object) = self.read_packed(id.as_bytes()) {
            return Ok(object);
        }
        Ok(Arc::new(self.odb.read(id)?.data().to_vec()))
    }

    /// The object `id`, or at least its first `length` bytes: reading a commit's tree and
    /// parent needs a hundred bytes of it, and a whole object stored as it is in a pack is
    /// inflated only that far (so a stream corrupt further on goes unnoticed here).
    pub fn read_start(&self, id: Oid, length: usize) -> Result<Object, git2::Error> {
        let start = self.locate(id.as_bytes()).and_then(|(pack, offset)| {
            let header = self.entry_header(pack, offset)?;
            match header.base {
                EntryBase::None => Some(Arc::new(self.inflate(
                    pack,
                    header.data,
                    header.size,
                    length,
                )?)),
                _ => self.resolve(pack, offset),
            }
        });
        match start {
            Some(start) => Ok(start),
            None => self.read_loose_start(id, length),
        }
    }

    /// The first `length` bytes of an object libgit2 reads (a loose object is streamed, so
    /// a huge one is never inflated whole), or the whole object when it cannot be streamed.
    fn read_loose_start(&self, id: Oid, length: usize) -> Result<Object, git2::Error> {
        use std::io::Read as _;
        let Ok(mut reader) = self.odb.reader(id).map(|(reader, _, _)| reader) else {
            return self.read(id);
        };
        let mut start = Vec::new();
        let limit = u64::try_from(length).unwrap_or(u64::MAX);
        match reader.by_ref().take(limit).read_to_end(&mut start) {
            Ok(_) => Ok(Arc::new(start)),
            Err(_) => self.read(id),
        }
    }

    /// The object `id` from the packs, or `None` to ask libgit2.
    fn read_packed(&self, id: &[u8]) -> Option<Object> {
        let (pack, offset) = self.locate(id)?;
        self.resolve(pack, offset)
    }

    /// The pack holding `id` and its offset there. The pack that held the last object
    /// found is asked first: objects read one after the other tend to share a pack.
    fn locate(&self, id: &[u8]) -> Option<(usize, u64)> {
        let last = self.last_pack.get();
        let packs = self.packs();
        if let Some(offset) = packs.get(last).and_then(|pack| pack.find(id)) {
            return Some((last, offset));
        }
        let (pack, offset) = packs
            .iter()
            .enumerate()
            .filter(|(pack, _)| *pack != last)
            .find_map(|(pack, index)| Some((pack, index.find(id)?)))?;
        self.last_pack.set(pack);
        Some((pack, offset))
    }

    /// The object at `offset` in pack `pack`, its delta chain applied.
    fn resolve(&self, pack: usize, offset: u64) -> Option<Object> {
        if let Some(hit) = self.state.borrow_mut().bases.get(&(pack, offset)) {
            return Some(hit);
        }
        // Down the chain to a full object or a cached one, then back up applying deltas.
        let mut chain: Vec<(u64, u64, usize)> = Vec::new();
        let mut at = offset;
        let base = loop {
            if !chain.is_empty()
                && let Some(hit) = self.state.borrow_mut().bases.get(&(pack, at))
            {
                break hit;
            }
            if chain.len() > MAX_CHAIN || at >= self.packs()[pack].entries_end {
                return None;
            }
            let header = self.entry_header(pack, at)?;
            match header.base {
                EntryBase::None => {
                    let object =
                        Arc::new(self.inflate(pack, header.data, header.size, usize::MAX)?);
                    if !chain.is_empty() {
                        self.remember(pack, at, &object);
                    }
                    break object;
                }
                EntryBase::Offset(base) => {
                    chain.push((at, header.data, header.size));
                    at = base;
                }
                EntryBase::Id(base_id) => {
                    // Packs on disk are self-contained (fetching completes thin packs
                    // with their bases); a base elsewhere is left to libgit2.
                    chain.push((at, header.data, header.size));
                    at = self.packs()[pack].find(&base_id)?;
                }
            }
        };
        let mut current = base;
        for (entry, data, size) in chain.into_iter().rev() {
            let delta = self.inflate(pack, data, size, usize::MAX)?;
            current = Arc::new(apply_delta(&current, &delta)?);
            self.remember(pack, entry, &current);
        }
        Some(current)
    }

    fn remember(&self, pack: usize, offset: u64, object: &Object) {
        let cost = object.len() + 64;
        self.state
            .borrow_mut()
            .bases
            .insert((pack, offset), object.clone(), cost);
    }

    /// The window of pack data numbered `number`.
    fn window(&self, pack: usize, number: u64) -> Option<Arc<Vec<u8>>> {
        let mut state = self.state.borrow_mut();
        if let Some(window) = state.windows.get(&(pack, number)) {
            return Some(window);
        }
        let window = Arc::new(self.packs()[pack].read_window(number)?);
        state
            .windows
            .insert((pack, number), window.clone(), window.len());
        Some(window)
    }

    /// The `N` bytes of pack `pack` from `offset` (zeros past the end of the pack).
    fn bytes<const N: usize>(&self, pack: usize, offset: u64) -> Option<[u8; N]> {
        let mut out = [0u8; N];
        let mut filled = 0;
        while filled < N {
            let at = offset + filled as u64;
            let window = self.window(pack, at / WINDOW_BYTES)?;
            let start = usize::try_from(at % WINDOW_BYTES).ok()?;
            let available = window.get(start..)?;
            if available.is_empty() {
                break;
            }
            let take = available.len().min(N - filled);
            out[filled..filled + take].copy_from_slice(&available[..take]);
            filled += take;
        }
        Some(out)
    }

    /// Decodes the header of the pack entry at `offset`.
    fn entry_header(&self, pack: usize, offset: u64) -> Option<EntryHeader> {
        // Type and size (at most 10 bytes for a 64-bit size), then a base offset (at most
        // 10 bytes) or a base id (20 bytes). A header cut short by the end of the pack
        // reads zeros, which end it wrongly and fail the inflate after it.
        let bytes: [u8; 32] = self.bytes(pack, offset)?;
        let mut at = 0;
        let first = *bytes.first()?;
        let kind = (first >> 4) & 7;
        let mut size = u64::from(first & 0x0f);
        let mut shift = 4;
        let mut byte = first;
        while byte & 0x80 != 0 {
            at += 1;
            byte = *bytes.get(at)?;
            if shift > 57 {
                return None;
            }
            size |= u64::from(byte & 0x7f) << shift;
            shift += 7;
        }
        at += 1;
        let base = match kind {
            1..=4 => EntryBase::None,
            6 => {
                let mut byte = *bytes.get(at)?;
                at += 1;
                let mut distance = u64::from(byte & 0x7f);
                while byte & 0x80 != 0 {
                    byte = *bytes.get(at)?;
                    at += 1;
                    distance = distance.checked_add(1)?.checked_mul(128)? | u64::from(byte & 0x7f);
                }
                // A base comes before its delta, after the 12-byte pack header.
                let base = offset
                    .checked_sub(distance)
                    .filter(|&base| base >= 12 && distance > 0)?;
                EntryBase::Offset(base)
            }
            7 => {
                let id = bytes.get(at..at + 20)?.try_into().ok()?;
                at += 20;
                EntryBase::Id(id)
            }
            _ => return None,
        };
        Some(EntryHeader {
            size: usize::try_from(size).ok()?,
            data: offset + at as u64,
            base,
        })
    }

    /// Inflates the zlib stream at `offset`, which must give exactly `size` bytes, or only
    /// its first `limit` bytes when that is fewer.
    fn inflate(&self, pack: usize, offset: u64, size: usize, limit: usize) -> Option<Vec<u8>> {
        let partial = limit < size;
        // One byte of room more than expected, so a stream that gives more is caught; the
        // room grows as the stream fills it, so a corrupt size allocates nothing huge.
        let room = if partial { limit } else { size.checked_add(1)? };
        let mut out = Vec::with_capacity(room.min(INITIAL_ROOM));
        let mut at = offset;
        self.state.borrow_mut().inflater.reset(true);
        loop {
            let window = self.window(pack, at / WINDOW_BYTES)?;
            let input = window.get(usize::try_from(at % WINDOW_BYTES).ok()?..)?;
            if out.len() == out.capacity() {
                out.try_reserve_exact((room - out.len()).min(out.len().max(INITIAL_ROOM)))
                    .ok()?;
            }
            let mut state = self.state.borrow_mut();
            let (read_before, written_before) = (state.inflater.total_in(), out.len());
            let status = state
                .inflater
                .decompress_vec(input, &mut out, FlushDecompress::None)
                .ok()?;
            let read = state.inflater.total_in() - read_before;
            at += read;
            match status {
                Status::StreamEnd => break,
                _ if out.len() == room => {
                    // A partial read is done; a whole one has a byte too many.
                    return partial.then_some(out);
                }
                _ if read == 0 && out.len() == written_before => return None,
                _ => {}
            }
        }
        (out.len() == size).then_some(out)
    }
}

/// What a pack entry's data is relative to.
enum EntryBase {
    /// Nothing: a whole object.
    None,
    /// A delta against the entry at this offset of the same pack.
    Offset(u64),
    /// A delta against the object with this id.
    Id([u8; 20]),
}

/// A pack entry's header.
struct EntryHeader {
    /// The size of the inflated data (of the delta, for a delta).
    size: usize,
    /// Where the compressed data starts.
    data: u64,
    base: EntryBase,
}

/// Applies a Git delta (`SOURCE_SIZE TARGET_SIZE` then copy and insert instructions) to
/// `base`; `None` for a delta that does not fit its base.
fn apply_delta(base: &[u8], delta: &[u8]) -> Option<Vec<u8>> {
    fn varint(data: &[u8], at: &mut usize) -> Option<usize> {
        let mut value = 0usize;
        let mut shift = 0;
        loop {
            let byte = *data.get(*at)?;
            *at += 1;
            if shift > 63 {
                return None;
            }
            value |= usize::from(byte & 0x7f).checked_shl(shift)?;
            shift += 7;
            if byte & 0x80 == 0 {
                return Some(value);
            }
        }
    }
    let mut at = 0;
    if varint(delta, &mut at)? != base.len() {
        return None;
    }
    let target_size = varint(delta, &mut at)?;
    let mut out = Vec::with_capacity(target_size.min(INITIAL_ROOM));
    while at < delta.len() {
        let op = delta[at];
        at += 1;
        if op & 0x80 != 0 {
            // Copy from the base: offset and size bytes present per bit, little-endian.
            let mut offset = 0usize;
            let mut size = 0usize;
            for bit in 0..4 {
                if op & (1 << bit) != 0 {
                    offset |= usize::from(*delta.get(at)?) << (8 * bit);
                    at += 1;
                }
            }
            for bit in 0..3 {
                if op & (0x10 << bit) != 0 {
                    size |= usize::from(*delta.get(at)?) << (8 * bit);
                    at += 1;
                }
            }
            if size == 0 {
                size = 0x10000;
            }
            out.extend_from_slice(base.get(offset..offset.checked_add(size)?)?);
        } else if op != 0 {
            let size = usize::from(op);
            out.extend_from_slice(delta.get(at..at + size)?);
            at += size;
        } else {
            return None;
        }
        if out.len() > target_size {
            return None;
        }
    }
    (out.len() == target_size).then_some(out)
}

/// A pack and its version 2 index.
struct Pack {
    /// The whole `.idx` file.
    index: Vec<u8>,
    /// How many objects it holds.
    count: usize,
    file: std::fs::File,
    /// Where the entries end: the pack's 20-byte checksum follows.
    entries_end: u64,
}

/// The version 2 index's header: magic number and version.
const INDEX_V2: [u8; 8] = [0xff, b't', b'O', b'c', 0, 0, 0, 2];

/// Where the sorted object ids start in a version 2 index: header and fan-out table.
const NAMES_START: usize = 8 + 256 * 4;

impl Pack {
    /// Every usable pack in `pack_dir`; none when the folder cannot be read.
    fn open_all(pack_dir: &Path) -> Vec<Pack> {
        let Ok(entries) = std::fs::read_dir(pack_dir) else {
            return Vec::new();
        };
        let mut packs: Vec<(std::time::SystemTime, Pack)> = entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|path| path.extension().is_some_and(|ext| ext == "idx"))
            .filter_map(|index| {
                let pack = Pack::open(&index)?;
                let modified = std::fs::metadata(&index).and_then(|m| m.modified()).ok()?;
                Some((modified, pack))
            })
            .collect();
        // The newest first, as Git and libgit2 search them: recent objects are in them.
        packs.sort_by_key(|(modified, _)| std::cmp::Reverse(*modified));
        packs.into_iter().map(|(_, pack)| pack).collect()
    }

    /// The pack of the index at `index_path`, if both are in a format this reader knows.
    fn open(index_path: &Path) -> Option<Pack> {
        let index = std::fs::read(index_path).ok()?;
        if index.get(..8)? != INDEX_V2 {
            return None;
        }
        let fanout = |byte: usize| -> Option<usize> {
            let at = 8 + byte * 4;
            Some(u32::from_be_bytes(index.get(at..at + 4)?.try_into().ok()?) as usize)
        };
        let count = fanout(255)?;
        // Ids (20 bytes: a SHA-256 index has longer ones and another size), CRCs and
        // 32-bit offsets, whole 64-bit offsets (at most one per object), two checksums.
        let fixed = count
            .checked_mul(28)?
            .checked_add(NAMES_START + 40)
            .filter(|&fixed| fixed <= index.len())?;
        let large = index.len() - fixed;
        if large % 8 != 0 || large / 8 > count {
            return None;
        }
        let mut file = std::fs::File::open(index_path.with_extension("pack")).ok()?;
        let mut header = [0u8; 12];
        std::io::Read::read_exact(&mut file, &mut header).ok()?;
        let version = u32::from_be_bytes(header[4..8].try_into().ok()?);
        let objects = u32::from_be_bytes(header[8..12].try_into().ok()?) as usize;
        if &header[..4] != b"PACK" || !(version == 2 || version == 3) || objects != count {
            return None;
        }
        // The index names the pack it was made for by the pack's checksum, its last 20
        // bytes: a pack replaced under the same name (by a `git gc` running meanwhile, say)
        // is not read through another pack's index.
        let length = file.metadata().ok()?.len();
        let entries_end = length.checked_sub(20).filter(|&end| end >= 12)?;
        let mut checksum = [0u8; 20];
        read_exact_at(&file, &mut checksum, entries_end)?;
        if index.get(index.len() - 40..index.len() - 20)? != checksum {
            return None;
        }
        Some(Pack {
            index,
            count,
            file,
            entries_end,
        })
    }

    /// The offset in the pack of the object `id`, if the pack holds it.
    fn find(&self, id: &[u8]) -> Option<u64> {
        let first = usize::from(*id.first()?);
        let bound = |byte: usize| {
            let at = 8 + byte * 4;
            self.index
                .get(at..at + 4)
                .and_then(|bytes| bytes.try_into().ok())
                .map(|bytes| u32::from_be_bytes(bytes) as usize)
        };
        let mut low = if first == 0 { 0 } else { bound(first - 1)? };
        let mut high = bound(first)?.min(self.count);
        if low >= high {
            return None;
        }
        let name = |i: usize| {
            self.index
                .get(NAMES_START + i * 20..NAMES_START + i * 20 + 20)
        };
        // Ids are uniformly spread, so the id's next bytes say about where it stands in
        // its first byte's range: look there first, then widen the range around that
        // guess until it holds the id, and search it. A guess lands a few dozen entries
        // off, a bisection of the whole range would read a dozen distant cache lines.
        let rest = u64::from_be_bytes(id.get(..8)?.try_into().ok()?) & (u64::MAX >> 8);
        let guess = low + ((u128::from(rest) * (high - low) as u128) >> 56) as usize;
        let guess = guess.min(high - 1);
        let mut step = 16;
        match name(guess)?.cmp(id) {
            std::cmp::Ordering::Equal => return self.offset(guess),
            std::cmp::Ordering::Less => {
                low = guess + 1;
                while low + step < high && name(low + step - 1)? < id {
                    low += step;
                    step *= 2;
                }
                high = high.min(low + step);
            }
            std::cmp::Ordering::Greater => {
                high = guess;
                while high > low + step && name(high - step)? > id {
                    high -= step;
                    step *= 2;
                }
                low = low.max(high.saturating_sub(step));
            }
        }
        while low < high {
            let middle = low + (high - low) / 2;
            match name(middle)?.cmp(id) {
                std::cmp::Ordering::Less => low = middle + 1,
                std::cmp::Ordering::Greater => high = middle,
                std::cmp::Ordering::Equal => return self.offset(middle),
            }
        }
        None
    }

    /// The pack offset of the index's `i`th object.
    fn offset(&self, i: usize) -> Option<u64> {
        let offsets = NAMES_START + self.count * 24;
        let at = offsets + i * 4;
        let small = u32::from_be_bytes(self.index.get(at..at + 4)?.try_into().ok()?);
        if small & 0x8000_0000 == 0 {
            return Some(u64::from(small));
        }
        // Offsets past 2 GiB live in a table of 64-bit offsets after the 32-bit ones.
        let large = offsets + self.count * 4 + (small & 0x7fff_ffff) as usize * 8;
        Some(u64::from_be_bytes(
            self.index.get(large..large + 8)?.try_into().ok()?,
        ))
    }

    /// The window of pack entries numbered `number` (shorter at their end).
    fn read_window(&self, number: u64) -> Option<Vec<u8>> {
        let start = number.checked_mul(WINDOW_BYTES)?;
        let length = self.entries_end.checked_sub(start)?.min(WINDOW_BYTES);
        let mut window = vec![0u8; usize::try_from(length).ok()?];
        read_exact_at(&self.file, &mut window, start)?;
        Some(window)
    }
}

/// Fills `buffer` from `file` at `offset`.
#[cfg(unix)]
fn read_exact_at(file: &std::fs::File, buffer: &mut [u8], offset: u64) -> Option<()> {
    std::os::unix::fs::FileExt::read_exact_at(file, buffer, offset).ok()
}

/// Fills `buffer` from `file` at `offset`.
#[cfg(windows)]
fn read_exact_at(file: &std::fs::File, buffer: &mut [u8], offset: u64) -> Option<()> {
    let mut filled = 0;
    while filled < buffer.len() {
        match std::os::windows::fs::FileExt::seek_read(
            file,
            &mut buffer[filled..],
            offset + filled as u64,
        ) {
            Ok(0) | Err(_) => return None,
            Ok(read) => filled += read,
        }
    }
    Some(())
}

/// Without positioned reads, no pack is read directly: every object goes to libgit2.
#[cfg(not(any(unix, windows)))]
fn read_exact_at(_file: &std::fs::File, _buffer: &mut [u8], _offset: u64) -> Option<()> {
    None
}

/// Hashes a cache key (pack number and offset, both small numbers spread over a range)
/// with one multiplication: SipHash, the standard map's defence against chosen keys, is
/// most of the cost of a lookup here, and these keys come from pack files, not from a
/// network.
#[derive(Default)]
struct OffsetHasher(u64);

impl std::hash::Hasher for OffsetHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &byte in bytes {
            self.write_u64(u64::from(byte));
        }
    }

    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0.rotate_left(5) ^ value).wrapping_mul(0x51_7c_c1_b7_27_22_0a_95);
    }

    fn write_usize(&mut self, value: usize) {
        self.write_u64(value as u64);
    }
}

type OffsetMap<K, V> = HashMap<K, V, std::hash::BuildHasherDefault<OffsetHasher>>;

/// A cache bounded by a cost budget, without bookkeeping per entry: new entries go to the
/// young generation; when it has spent half the budget, the old generation is dropped and
/// the young one becomes old. A hit in the old generation moves back to the young one, so
/// what is in use stays.
struct TwoGenerations<K, V> {
    young: OffsetMap<K, (V, usize)>,
    old: OffsetMap<K, (V, usize)>,
    young_cost: usize,
    budget: usize,
}

impl<K: Eq + Hash + Copy, V: Clone> TwoGenerations<K, V> {
    fn new(budget: usize) -> Self {
        TwoGenerations {
            young: OffsetMap::default(),
            old: OffsetMap::default(),
            young_cost: 0,
            budget,
        }
    }

    fn get(&mut self, key: &K) -> Option<V> {
        if let Some((value, _)) = self.young.get(key) {
            return Some(value.clone());
        }
        let (value, cost) = self.old.remove(key)?;
        self.insert(*key, value.clone(), cost);
        Some(value)
    }

    fn insert(&mut self, key: K, value: V, cost: usize) {
        if self.young_cost + cost > self.budget / 2 {
            self.old = std::mem::take(&mut self.young);
            self.young_cost = 0;
        }
        self.young_cost += cost;
        if let Some((_, replaced)) = self.young.insert(key, (value, cost)) {
            self.young_cost -= replaced;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn deltas_copy_and_insert() {
        let base = b"hello, world";
        // source 12, target 11: copy "hello" (offset 0, size 5), insert "!", copy "world".
        let delta = [12, 11, 0x90, 5, 1, b'!', 0x91, 7, 5];
        assert_eq!(
            apply_delta(base, &delta).as_deref(),
            Some(&b"hello!world"[..])
        );
        // Wrong source size, a copy past the base, an instruction 0, a short result.
        assert_eq!(apply_delta(base, &[11, 5, 0x90, 5]), None);
        assert_eq!(apply_delta(base, &[12, 5, 0x91, 10, 5]), None);
        assert_eq!(apply_delta(base, &[12, 1, 0]), None);
        assert_eq!(apply_delta(base, &[12, 6, 0x90, 5]), None);
    }

    #[test]
    fn the_cache_keeps_what_is_used_within_its_budget() {
        let mut cache = TwoGenerations::new(100);
        cache.insert(1, "one", 40);
        cache.insert(2, "two", 40);
        assert_eq!(cache.get(&1), Some("one"));
        // 1 and 2 move to the old generation; using 1 brings it back.
        cache.insert(3, "three", 40);
        assert_eq!(cache.get(&1), Some("one"));
        cache.insert(4, "four", 40);
        cache.insert(5, "five", 40);
        assert_eq!(cache.get(&2), None);
        assert_eq!(cache.get(&5), Some("five"));
    }

    /// Every object of a repository with packs (deltas included), loose objects and a
    /// second pack reads the same through the packs as through libgit2.
    #[cfg(unix)]
    #[test]
    fn every_object_reads_as_libgit2_reads_it() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let git = |args: &[&str]| {
            let status = std::process::Command::new("git")
                .args(args)
                .current_dir(dir.path())
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_AUTHOR_NAME", "T")
                .env("GIT_AUTHOR_EMAIL", "t@example.com")
                .env("GIT_COMMITTER_NAME", "T")
                .env("GIT_COMMITTER_EMAIL", "t@example.com")
                .status()
                .expect("git runs");
            assert!(status.success(), "git {args:?}");
        };
        git(&["init", "-q", "-b", "main"]);
        let write = |round: usize| {
            for file in 0..20 {
                let mut text = String::new();
                for line in 0..200 {
                    let edited = if line % 37 == round % 37 {
                        "edited"
                    } else {
                        ""
                    };
                    text.push_str(&format!(
                        "file {file} line {line} {edited} r{}\n",
                        round / 5
                    ));
                }
                let folder = dir.path().join(format!("d{}", file % 4));
                std::fs::create_dir_all(&folder).expect("folder");
                std::fs::write(folder.join(format!("f{file}.txt")), text).expect("file");
            }
        };
        for round in 0..30 {
            write(round);
            git(&["add", "-A"]);
            git(&["commit", "-q", "-m", &format!("round {round}")]);
            if round == 20 {
                // Deep chains in one pack, then a second pack and loose objects.
                git(&["repack", "-adq", "--depth=50", "--window=50"]);
            }
            if round == 25 {
                git(&["repack", "-dq"]);
            }
        }
        let repo = git2::Repository::open(dir.path()).expect("repository");
        let odb = repo.odb().expect("odb");
        let packed = ObjectReader::with_packs(&odb, &repo.path().join("objects"), 0);
        assert!(packed.packs().len() >= 2, "{} packs", packed.packs().len());
        let mut ids = Vec::new();
        odb.foreach(|id| {
            ids.push(*id);
            true
        })
        .expect("objects");
        let all = ids.clone();
        let mut from_packs = 0;
        for id in ids {
            let expected = odb.read(id).expect("libgit2 reads it");
            if packed.read_packed(id.as_bytes()).is_some() {
                from_packs += 1;
            }
            let read = packed.read(id).expect("reads");
            assert_eq!(read.as_slice(), expected.data(), "object {id}");
            let start = packed.read_start(id, 100).expect("reads");
            let shared = start.len().min(expected.len());
            assert!(start.len() >= expected.len().min(100), "object {id}");
            assert_eq!(&start[..shared], &expected.data()[..shared], "object {id}");
        }
        assert!(
            from_packs > 500,
            "only {from_packs} objects came from the packs"
        );

        // A reader that opens the packs after ten objects reads the same before and after.
        let later = ObjectReader::with_packs(&odb, &repo.path().join("objects"), 10);
        for (read, id) in all.iter().enumerate() {
            assert_eq!(later.packs.get().is_some(), read > 10, "after {read} reads");
            let expected = odb.read(*id).expect("libgit2 reads it");
            assert_eq!(later.read(*id).expect("reads").as_slice(), expected.data());
        }

        // Bytes flipped all over the packs: no read panics, and whatever is read is what
        // libgit2 reads (a damaged stream fails its checksum and is left to libgit2).
        drop(packed);
        for entry in std::fs::read_dir(repo.path().join("objects/pack")).expect("packs") {
            let path = entry.expect("entry").path();
            if path.extension().is_some_and(|ext| ext == "pack") {
                let mut bytes = std::fs::read(&path).expect("pack");
                for i in 1..60 {
                    let at = 12 + (i * 7919) % (bytes.len() - 32);
                    bytes[at] ^= 0x5a;
                }
                std::fs::remove_file(&path).expect("remove the read-only pack");
                std::fs::write(&path, bytes).expect("write");
            }
        }
        let damaged = ObjectReader::with_packs(&odb, &repo.path().join("objects"), 0);
        let fresh = git2::Repository::open(dir.path()).expect("repository");
        let fresh_odb = fresh.odb().expect("odb");
        for id in &all {
            if let (Ok(read), Ok(expected)) = (damaged.read(*id), fresh_odb.read(*id)) {
                assert_eq!(read.as_slice(), expected.data(), "damaged object {id}");
            }
            let _ = damaged.read_start(*id, 100);
        }
    }
}
