//! The data model of one simulated file: its current and durable images, the unsynced operations
//! between them, and what a crash makes of them.

use std::collections::BTreeSet;
use std::io;

use crate::executor::ProcessId;
use crate::kernel::Core;
use crate::kernel::fault::FaultKind;
use crate::kernel::rng::StreamRng;

/// Sector size: torn writes tear at sector boundaries; misdirected I/O lands on sector-aligned
/// offsets.
pub(crate) const SECTOR: u64 = 512;

/// Largest file the simulator holds in memory (4 GiB).
pub(crate) const MAX_FILE_SIZE: u64 = 1 << 32;

/// Sorted, disjoint, non-adjacent half-open byte ranges: the parts of a file ever written.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Ranges(Vec<(u64, u64)>);

impl Ranges {
    /// Adds `[start, end)`.
    pub(crate) fn insert(&mut self, start: u64, end: u64) {
        if start >= end {
            return;
        }
        // Ranges ending before `start` (and not touching it) stay left of the new one.
        let first = self.0.partition_point(|&(_, e)| e < start);
        // Ranges starting after `end` (and not touching it) stay right of it.
        let last = self.0.partition_point(|&(s, _)| s <= end);
        let mut merged = (start, end);
        if first < last {
            merged.0 = merged.0.min(self.0[first].0);
            merged.1 = merged.1.max(self.0[last - 1].1);
        }
        self.0.splice(first..last, [merged]);
    }

    /// Forgets everything at or past `len`.
    pub(crate) fn truncate(&mut self, len: u64) {
        self.0.retain(|&(s, _)| s < len);
        if let Some(last) = self.0.last_mut() {
            last.1 = last.1.min(len);
        }
    }

    /// The parts of `[start, end)` not covered.
    pub(crate) fn gaps(&self, start: u64, end: u64) -> Vec<(u64, u64)> {
        let mut gaps = Vec::new();
        let mut cursor = start;
        let first = self.0.partition_point(|&(_, e)| e <= start);
        for &(s, e) in &self.0[first..] {
            if s >= end {
                break;
            }
            if s > cursor {
                gaps.push((cursor, s));
            }
            cursor = cursor.max(e);
        }
        if cursor < end {
            gaps.push((cursor, end));
        }
        gaps
    }
}

/// An unsynced change, kept until the next sync (or crash).
#[derive(Debug, Clone)]
pub(crate) enum Pending {
    /// Bytes that landed at `offset` (after any corruption or misdirection).
    Write { offset: u64, data: Vec<u8> },
    /// A size change (`set_len`, or truncation at open).
    SetLen(u64),
}

/// The contents of a file at one point: bytes plus which of them were ever written.
///
/// Only the bytes up to the last one written are stored: a file extended by `set_len` holds its
/// new length, and its zero tail costs no memory until something is written there (as a sparse
/// file on a real file system), so preallocating a large file is cheap.
#[derive(Debug, Clone, Default)]
pub(crate) struct Image {
    /// Bytes `0..data.len()`; `data.len() <= len`.
    data: Vec<u8>,
    /// The file's length; bytes `data.len()..len` are zeros.
    len: u64,
    pub(crate) written: Ranges,
}

impl Image {
    /// Length in bytes.
    pub(crate) fn len(&self) -> u64 {
        self.len
    }

    /// Stores `bytes` at `offset`, extending the file (with a hole of zeros) if needed.
    pub(crate) fn write(&mut self, offset: u64, bytes: &[u8]) {
        let Ok(start) = usize::try_from(offset) else {
            return;
        };
        let end = start.saturating_add(bytes.len());
        if self.data.len() < end {
            self.data.resize(end, 0);
        }
        if let Some(target) = self.data.get_mut(start..end) {
            target.copy_from_slice(bytes);
        }
        let end = offset.saturating_add(bytes.len() as u64);
        self.len = self.len.max(end);
        self.written.insert(offset, end);
    }

    /// Truncates or extends (with never-written zeros, stored only once written).
    pub(crate) fn set_len(&mut self, len: u64) {
        if let Ok(kept) = usize::try_from(len)
            && kept < self.data.len()
        {
            self.data.truncate(kept);
        }
        self.len = len;
        self.written.truncate(len);
    }

    /// Applies an unsynced change.
    pub(crate) fn apply(&mut self, change: &Pending) {
        match change {
            Pending::Write { offset, data } => self.write(*offset, data),
            Pending::SetLen(len) => self.set_len(*len),
        }
    }

    /// `len` bytes from `offset`; bytes past the end read as zeros.
    pub(crate) fn read(&self, offset: u64, len: usize) -> Vec<u8> {
        let mut out = vec![0u8; len];
        let start = usize::try_from(offset).unwrap_or(usize::MAX);
        if let Some(stored) = self.data.get(start..) {
            let available = stored.len().min(len);
            if let (Some(to), Some(from)) = (out.get_mut(..available), stored.get(..available)) {
                to.copy_from_slice(from);
            }
        }
        out
    }

    /// The bytes stored (the file's contents up to its last written byte; the rest are zeros).
    #[cfg(test)]
    pub(crate) fn stored(&self) -> &[u8] {
        &self.data
    }
}

/// One file: what the process sees now, what survives a crash, and the difference.
///
/// Invariant: `current` equals `durable` with every entry of `pending` applied in order.
#[derive(Debug)]
pub(crate) struct Inode {
    /// The process whose disk holds it.
    pub(crate) owner: ProcessId,
    /// The contents the process reads (including unsynced writes).
    pub(crate) current: Image,
    /// The contents as of the last successful sync.
    pub(crate) durable: Image,
    /// Changes since the last sync, in order.
    pub(crate) pending: Vec<Pending>,
    /// Still reachable by a path (false once removed or replaced by a rename).
    pub(crate) linked: bool,
    /// Open handles.
    pub(crate) handles: u32,
}

impl Inode {
    /// A new, empty, linked file.
    pub(crate) fn new(owner: ProcessId) -> Self {
        Self {
            owner,
            current: Image::default(),
            durable: Image::default(),
            pending: Vec::new(),
            linked: true,
            handles: 0,
        }
    }

    /// Records a change: applied to the current image now, durable at the next sync.
    pub(crate) fn change(&mut self, change: Pending) {
        self.current.apply(&change);
        self.pending.push(change);
    }

    /// A successful sync (or the OS flushing its cache): everything becomes durable.
    pub(crate) fn flush(&mut self) {
        for change in self.pending.drain(..) {
            self.durable.apply(&change);
        }
    }

    /// A crash: start over from the durable image and let each unsynced change survive whole,
    /// torn or not at all. The outcome is both current and durable (it is what the disk holds).
    pub(crate) fn crash(&mut self, core: &mut Core, keep: f64, torn: f64) {
        let mut image = std::mem::take(&mut self.durable);
        for change in self.pending.drain(..) {
            match change {
                Pending::Write { offset, data } => {
                    let pieces = sector_pieces(offset, data.len());
                    let tear = core.rng.fault(FaultKind::StorageTornWrite);
                    if pieces.len() >= 2 && tear.chance(torn) {
                        for (start, end) in torn_subset(tear, &pieces) {
                            image.write(offset + start as u64, &data[start..end]);
                        }
                        core.fired(FaultKind::StorageTornWrite, "storage.torn_write");
                    } else if core.rng.fault(FaultKind::StorageUnsyncedKept).chance(keep) {
                        image.write(offset, &data);
                        core.mark(FaultKind::StorageUnsyncedKept);
                    } else {
                        core.fault("storage.crash_lost_write");
                    }
                }
                Pending::SetLen(len) => {
                    if core.rng.fault(FaultKind::StorageUnsyncedKept).chance(keep) {
                        image.set_len(len);
                        core.mark(FaultKind::StorageUnsyncedKept);
                    }
                }
            }
        }
        self.current = image.clone();
        self.durable = image;
    }
}

/// A write of `len` bytes at `offset` cut at absolute sector boundaries, as byte ranges relative
/// to the write's start.
fn sector_pieces(offset: u64, len: usize) -> Vec<(usize, usize)> {
    let mut pieces = Vec::new();
    let mut start = 0usize;
    while start < len {
        let absolute = offset + start as u64;
        let to_boundary = SECTOR - absolute % SECTOR;
        let end = usize::try_from(to_boundary)
            .map_or(len, |step| start.saturating_add(step))
            .min(len);
        pieces.push((start, end));
        start = end;
    }
    pieces
}

/// The sectors of a torn write that reach the disk: a strict prefix, or a random subset that is
/// neither empty nor complete.
fn torn_subset(rng: &mut StreamRng, pieces: &[(usize, usize)]) -> Vec<(usize, usize)> {
    let n = pieces.len();
    if rng.chance(0.5) {
        let kept = rng.range(1..n);
        return pieces[..kept].to_vec();
    }
    let mut keep: Vec<bool> = (0..n).map(|_| rng.chance(0.5)).collect();
    if keep.iter().all(|k| *k) {
        let drop = rng.range(0..n);
        keep[drop] = false;
    } else if keep.iter().all(|k| !*k) {
        let pick = rng.range(0..n);
        keep[pick] = true;
    }
    pieces
        .iter()
        .zip(keep)
        .filter_map(|(piece, kept)| kept.then_some(*piece))
        .collect()
}

/// Flips between 1 and 32 distinct bits of `bytes` (usually one: a power law); never a no-op on
/// a non-empty buffer.
pub(crate) fn flip_bits(rng: &mut StreamRng, bytes: &mut [u8]) {
    if bytes.is_empty() {
        return;
    }
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let wanted = 1 + (32.0 * rng.ratio().powi(4)) as usize;
    let total_bits = bytes.len().saturating_mul(8);
    let wanted = wanted.min(total_bits);
    let mut flipped = BTreeSet::new();
    while flipped.len() < wanted {
        flipped.insert(rng.range(0..total_bits));
    }
    for bit in flipped {
        bytes[bit / 8] ^= 1 << (bit % 8);
    }
}

/// Non-zero garbage, as a disk returns for a block it never wrote.
pub(crate) fn garbage(rng: &mut StreamRng, bytes: &mut [u8]) {
    for chunk in bytes.chunks_mut(8) {
        let word = rng.next_u64().to_le_bytes();
        for (byte, random) in chunk.iter_mut().zip(word) {
            *byte = if random == 0 { 0xA5 } else { random };
        }
    }
}

/// A sector-aligned offset other than `avoid`, below `limit` when there is room.
pub(crate) fn other_offset(rng: &mut StreamRng, avoid: u64, limit: u64) -> u64 {
    let sectors = limit.div_ceil(SECTOR).max(2);
    let target = rng.range(0..sectors) * SECTOR;
    if target != avoid {
        target
    } else if avoid >= SECTOR {
        avoid - SECTOR
    } else {
        avoid + SECTOR
    }
}

/// The error for an access past [`MAX_FILE_SIZE`].
pub(crate) fn too_large(end: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("a file of {end} bytes exceeds the simulator's limit of {MAX_FILE_SIZE} bytes"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_ranges_insert_merges_and_gaps() {
        let mut ranges = Ranges::default();
        ranges.insert(10, 20);
        ranges.insert(30, 40);
        assert_eq!(ranges.gaps(0, 50), vec![(0, 10), (20, 30), (40, 50)]);
        ranges.insert(20, 30);
        assert_eq!(ranges.0, vec![(10, 40)]);
        ranges.insert(0, 5);
        ranges.insert(45, 50);
        ranges.insert(3, 47);
        assert_eq!(ranges.0, vec![(0, 50)]);
        ranges.truncate(25);
        assert_eq!(ranges.0, vec![(0, 25)]);
        assert_eq!(ranges.gaps(20, 30), vec![(25, 30)]);
        assert!(ranges.gaps(5, 25).is_empty());
    }

    #[test]
    fn test_sector_pieces_cut_at_absolute_boundaries() {
        assert_eq!(sector_pieces(0, 1024), vec![(0, 512), (512, 1024)]);
        assert_eq!(sector_pieces(500, 30), vec![(0, 12), (12, 30)]);
        assert_eq!(sector_pieces(512, 10), vec![(0, 10)]);
        assert!(sector_pieces(7, 0).is_empty());
    }

    #[test]
    fn test_torn_subset_is_partial() {
        let mut rng = crate::kernel::rng::WorldRng::new(3);
        let pieces = sector_pieces(0, 4 * 512);
        for _ in 0..200 {
            let kept = torn_subset(&mut rng, &pieces);
            assert!(!kept.is_empty() && kept.len() < pieces.len());
        }
    }

    #[test]
    fn test_flip_bits_always_changes_something() {
        let mut rng = crate::kernel::rng::WorldRng::new(9);
        for _ in 0..200 {
            let mut bytes = [0u8; 3];
            flip_bits(&mut rng, &mut bytes);
            assert_ne!(bytes, [0u8; 3]);
        }
    }

    #[test]
    fn test_image_write_extends_with_hole() {
        let mut image = Image::default();
        image.write(4, b"ab");
        assert_eq!(image.stored(), b"\0\0\0\0ab");
        assert_eq!(image.written.gaps(0, 6), vec![(0, 4)]);
        image.set_len(2);
        assert_eq!(image.len(), 2);
        assert_eq!(image.read(1, 3), vec![0, 0, 0]);
    }

    #[test]
    fn test_image_extended_by_set_len_stores_nothing_until_written() {
        let mut image = Image::default();
        image.write(0, b"head");
        image.set_len(1 << 40);
        assert_eq!(image.len(), 1 << 40);
        assert_eq!(image.stored(), b"head");
        assert_eq!(image.read(2, 4), b"ad\0\0");
        assert_eq!(image.read((1 << 40) - 2, 2), vec![0, 0]);
        image.write(10, b"x");
        assert_eq!(image.len(), 1 << 40);
        assert_eq!(image.stored(), b"head\0\0\0\0\0\0x");
        assert_eq!(image.read(3, 9), b"d\0\0\0\0\0\0x\0");
    }

    #[test]
    fn test_image_truncated_then_extended_reads_zeros_where_bytes_were() {
        let mut image = Image::default();
        image.write(0, b"abcdef");
        image.set_len(2);
        image.set_len(6);
        assert_eq!(image.len(), 6);
        assert_eq!(image.read(0, 6), b"ab\0\0\0\0");
        assert_eq!(image.written.gaps(0, 6), vec![(2, 6)]);
        // Shrinking inside the zero tail keeps the stored bytes.
        image.set_len(1 << 20);
        image.set_len(4);
        assert_eq!(image.read(0, 4), b"ab\0\0");
    }
}
