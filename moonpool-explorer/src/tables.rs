//! The fixed-size tables in shared memory, updated with atomics by every process of the tree.
//!
//! Each table claims an entry with a compare-and-swap on the entry's key at the key's own probe
//! position, so two processes that meet the same key at once end up on the same entry (the loser
//! of the swap sees the winner's key and uses that entry): no duplicate entries, whatever the
//! timing. Each table has a capacity, and each **counts what did not fit** (an entry it could not
//! claim, a text cut short); the report shows those counts, so a full table is never silent.
//!
//! Only the root reads a table whole, and only when none of its children is alive; it then resets
//! the per-tree tables (sites, buckets, bugs) for the next root seed. The coverage set is never
//! reset: it is what the whole exploration has reached.

use std::sync::atomic::{AtomicU8, AtomicU32, AtomicU64, Ordering};
use std::time::Duration;

/// Most nested splits a recipe can hold.
pub const MAX_DEPTH: usize = 64;
/// Coverage keys the exploration can remember.
pub const COVERAGE_CAPACITY: usize = 1 << 16;
/// Assertion sites whose statistics children can report per root seed.
pub const SITE_CAPACITY: usize = 512;
/// `sometimes_each` buckets children can report per root seed.
pub const BUCKET_CAPACITY: usize = 2048;
/// Bugs kept per root seed (more are counted).
pub const BUG_CAPACITY: usize = 128;

/// Probes before a coverage key is given up on.
const COVERAGE_PROBES: usize = 64;
/// Bytes kept of an assertion's message and location.
const SITE_TEXT: usize = 160;
/// Bytes kept of a bucket's label.
const LABEL_TEXT: usize = 120;
/// Bytes kept of a bug's failure text.
const FAILURE_TEXT: usize = 2048;
/// Bytes kept of a bug's signature.
const SIGNATURE_TEXT: usize = 320;
/// Bytes kept of a bug's structured failure.
const STRUCTURED_TEXT: usize = 1024;

/// A short text in shared memory, written once by the process that claimed its entry.
pub(crate) struct Text<const N: usize> {
    len: AtomicU32,
    bytes: [AtomicU8; N],
}

impl<const N: usize> Text<N> {
    /// Stores `text`, cut at a character boundary to fit; returns true if it was cut.
    fn write(&self, text: &str) -> bool {
        let mut end = text.len().min(N);
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        for (slot, byte) in self.bytes.iter().zip(text.as_bytes()[..end].iter()) {
            slot.store(*byte, Ordering::Relaxed);
        }
        #[allow(clippy::cast_possible_truncation)]
        self.len.store(end as u32, Ordering::Release);
        end < text.len()
    }

    fn read(&self) -> String {
        let len = (self.len.load(Ordering::Acquire) as usize).min(N);
        let bytes: Vec<u8> = self.bytes[..len]
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .collect();
        String::from_utf8_lossy(&bytes).into_owned()
    }

    fn clear(&self) {
        self.len.store(0, Ordering::Relaxed);
    }
}

/// What the exploration has reached: a set of 64-bit keys (an assertion site with an outcome).
///
/// A bitmap would merge two keys that hash to the same bit without a trace; this set stores the
/// keys themselves (open addressing, [`COVERAGE_PROBES`] probes) and counts the keys it could not
/// store.
pub(crate) struct CoverageSet {
    keys: [AtomicU64; COVERAGE_CAPACITY],
    count: AtomicU64,
    overflow: AtomicU64,
}

/// What inserting a coverage key found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coverage {
    /// No timeline had reached this key.
    New,
    /// Some timeline had.
    Known,
    /// The set is full around this key: not stored (counted as overflow), treated as known.
    Overflow,
}

impl CoverageSet {
    pub(crate) fn insert(&self, key: u64) -> Coverage {
        let key = key.max(1);
        let mask = COVERAGE_CAPACITY - 1;
        #[allow(clippy::cast_possible_truncation)]
        let start = (key ^ (key >> 29)) as usize;
        for probe in 0..COVERAGE_PROBES {
            let slot = &self.keys[(start + probe) & mask];
            let seen = slot.load(Ordering::Relaxed);
            if seen == key {
                return Coverage::Known;
            }
            if seen == 0 {
                match slot.compare_exchange(0, key, Ordering::AcqRel, Ordering::Relaxed) {
                    Ok(_) => {
                        self.count.fetch_add(1, Ordering::Relaxed);
                        return Coverage::New;
                    }
                    Err(actual) if actual == key => return Coverage::Known,
                    Err(_) => {}
                }
            }
        }
        self.overflow.fetch_add(1, Ordering::Relaxed);
        Coverage::Overflow
    }

    pub(crate) fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub(crate) fn overflow(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }
}

/// Statistics of one assertion site, summed over child timelines.
struct SiteSlot {
    key: AtomicU64,
    ready: AtomicU32,
    kind: AtomicU32,
    higher_is_better: AtomicU32,
    passes: AtomicU64,
    failures: AtomicU64,
    /// The best value, as `f64` bits; 0 means none (a value 0.0 is stored as -0.0).
    watermark: AtomicU64,
    frontier: AtomicU32,
    conditions: AtomicU32,
    message: Text<SITE_TEXT>,
    location: Text<SITE_TEXT>,
}

/// Describes an assertion site the first time a child reports it.
#[derive(Debug, Clone, Copy)]
pub struct SiteInfo<'a> {
    /// The caller's code for the site's kind (opaque to the explorer).
    pub kind: u32,
    /// For watermarks: a higher value is better (else lower).
    pub higher_is_better: bool,
    /// The assertion's message.
    pub message: &'a str,
    /// Where it is (`file:line:column`).
    pub location: &'a str,
}

/// One evaluation of an assertion site.
#[derive(Debug, Clone, Copy, Default)]
pub struct SiteDelta {
    /// The property held (a pass) or not (a failure); `None` counts neither.
    pub holds: Option<bool>,
    /// A numeric value, for the watermark.
    pub value: Option<f64>,
    /// `(conditions true, conditions)` for a `sometimes_all`.
    pub frontier: Option<(u32, u32)>,
}

/// An assertion site's statistics over the child timelines of one root seed.
#[derive(Debug, Clone, PartialEq)]
pub struct SiteStats {
    /// The caller's site key.
    pub key: u64,
    /// The caller's kind code.
    pub kind: u32,
    /// For watermarks: higher is better.
    pub higher_is_better: bool,
    /// Passes.
    pub passes: u64,
    /// Failures.
    pub failures: u64,
    /// The best value seen.
    pub watermark: Option<f64>,
    /// The most conditions true at once.
    pub frontier: u32,
    /// How many conditions.
    pub conditions: u32,
    /// The message (cut to fit).
    pub message: String,
    /// The location (cut to fit).
    pub location: String,
}

pub(crate) struct SiteTable {
    slots: [SiteSlot; SITE_CAPACITY],
    overflow: AtomicU64,
}

fn encode_watermark(value: f64) -> u64 {
    if value == 0.0 {
        (-0.0f64).to_bits()
    } else {
        value.to_bits()
    }
}

impl SiteTable {
    pub(crate) fn record(
        &self,
        key: u64,
        info: &SiteInfo<'_>,
        delta: &SiteDelta,
        texts_cut: &AtomicU64,
    ) {
        let key = key.max(1);
        let Some(slot) = self.claim(key, info, texts_cut) else {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            return;
        };
        match delta.holds {
            Some(true) => {
                slot.passes.fetch_add(1, Ordering::Relaxed);
            }
            Some(false) => {
                slot.failures.fetch_add(1, Ordering::Relaxed);
            }
            None => {}
        }
        if let Some(value) = delta.value.filter(|v| !v.is_nan()) {
            let higher = info.higher_is_better;
            let _ = slot
                .watermark
                .fetch_update(Ordering::AcqRel, Ordering::Relaxed, |current| {
                    let better = current == 0 || {
                        let best = f64::from_bits(current);
                        if higher { value > best } else { value < best }
                    };
                    better.then(|| encode_watermark(value))
                });
        }
        if let Some((count, conditions)) = delta.frontier {
            slot.frontier.fetch_max(count, Ordering::Relaxed);
            slot.conditions.fetch_max(conditions, Ordering::Relaxed);
        }
    }

    fn claim(&self, key: u64, info: &SiteInfo<'_>, texts_cut: &AtomicU64) -> Option<&SiteSlot> {
        #[allow(clippy::cast_possible_truncation)]
        let start = key as usize;
        for probe in 0..SITE_CAPACITY {
            let slot = &self.slots[(start + probe) % SITE_CAPACITY];
            let seen = slot.key.load(Ordering::Acquire);
            if seen == key {
                return Some(slot);
            }
            if seen == 0 {
                match slot
                    .key
                    .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => {
                        slot.kind.store(info.kind, Ordering::Relaxed);
                        slot.higher_is_better
                            .store(u32::from(info.higher_is_better), Ordering::Relaxed);
                        let cut =
                            slot.message.write(info.message) | slot.location.write(info.location);
                        if cut {
                            texts_cut.fetch_add(1, Ordering::Relaxed);
                        }
                        slot.ready.store(1, Ordering::Release);
                        return Some(slot);
                    }
                    Err(actual) if actual == key => return Some(slot),
                    Err(_) => {}
                }
            }
        }
        None
    }

    /// Every site reported since the last drain; resets the table.
    pub(crate) fn drain(&self) -> Vec<SiteStats> {
        let mut out = Vec::new();
        for slot in &self.slots {
            let key = slot.key.load(Ordering::Acquire);
            if key == 0 {
                continue;
            }
            if slot.ready.load(Ordering::Acquire) == 1 {
                let watermark = slot.watermark.load(Ordering::Acquire);
                out.push(SiteStats {
                    key,
                    kind: slot.kind.load(Ordering::Relaxed),
                    higher_is_better: slot.higher_is_better.load(Ordering::Relaxed) == 1,
                    passes: slot.passes.load(Ordering::Relaxed),
                    failures: slot.failures.load(Ordering::Relaxed),
                    watermark: (watermark != 0).then(|| f64::from_bits(watermark)),
                    frontier: slot.frontier.load(Ordering::Relaxed),
                    conditions: slot.conditions.load(Ordering::Relaxed),
                    message: slot.message.read(),
                    location: slot.location.read(),
                });
            }
            slot.ready.store(0, Ordering::Relaxed);
            slot.passes.store(0, Ordering::Relaxed);
            slot.failures.store(0, Ordering::Relaxed);
            slot.watermark.store(0, Ordering::Relaxed);
            slot.frontier.store(0, Ordering::Relaxed);
            slot.conditions.store(0, Ordering::Relaxed);
            slot.message.clear();
            slot.location.clear();
            slot.key.store(0, Ordering::Release);
        }
        out.sort_by_key(|s| s.key);
        out
    }

    pub(crate) fn overflow(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }
}

/// One `sometimes_each` bucket reached by a child timeline.
struct BucketSlot {
    /// `mix(site, bucket)`, the claim key.
    key: AtomicU64,
    ready: AtomicU32,
    site: AtomicU64,
    hits: AtomicU64,
    label: Text<LABEL_TEXT>,
}

/// A `sometimes_each` bucket's hits over the child timelines of one root seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BucketStats {
    /// The caller's site key.
    pub site: u64,
    /// The bucket's label (cut to fit).
    pub label: String,
    /// Hits.
    pub hits: u64,
}

pub(crate) struct BucketTable {
    slots: [BucketSlot; BUCKET_CAPACITY],
    overflow: AtomicU64,
}

impl BucketTable {
    pub(crate) fn record(
        &self,
        site: u64,
        bucket: u64,
        label: &dyn Fn() -> String,
        texts_cut: &AtomicU64,
    ) {
        let key = crate::mix(site, bucket).max(1);
        #[allow(clippy::cast_possible_truncation)]
        let start = key as usize;
        for probe in 0..BUCKET_CAPACITY {
            let slot = &self.slots[(start + probe) % BUCKET_CAPACITY];
            let seen = slot.key.load(Ordering::Acquire);
            let mine = if seen == key {
                true
            } else if seen == 0 {
                match slot
                    .key
                    .compare_exchange(0, key, Ordering::AcqRel, Ordering::Acquire)
                {
                    Ok(_) => {
                        slot.site.store(site, Ordering::Relaxed);
                        if slot.label.write(&label()) {
                            texts_cut.fetch_add(1, Ordering::Relaxed);
                        }
                        slot.ready.store(1, Ordering::Release);
                        true
                    }
                    Err(actual) => actual == key,
                }
            } else {
                false
            };
            if mine {
                slot.hits.fetch_add(1, Ordering::Relaxed);
                return;
            }
        }
        self.overflow.fetch_add(1, Ordering::Relaxed);
    }

    /// Every bucket reported since the last drain; resets the table.
    pub(crate) fn drain(&self) -> Vec<BucketStats> {
        let mut out = Vec::new();
        for slot in &self.slots {
            if slot.key.load(Ordering::Acquire) == 0 {
                continue;
            }
            if slot.ready.load(Ordering::Acquire) == 1 {
                out.push(BucketStats {
                    site: slot.site.load(Ordering::Relaxed),
                    label: slot.label.read(),
                    hits: slot.hits.load(Ordering::Relaxed),
                });
            }
            slot.ready.store(0, Ordering::Relaxed);
            slot.hits.store(0, Ordering::Relaxed);
            slot.site.store(0, Ordering::Relaxed);
            slot.label.clear();
            slot.key.store(0, Ordering::Release);
        }
        out.sort_by(|a, b| (a.site, &a.label).cmp(&(b.site, &b.label)));
        out
    }

    pub(crate) fn overflow(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }
}

/// One step of a recipe: at evaluation `position` of its parent timeline, the child's random
/// streams were reseeded with `seed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Step {
    /// The split point: the parent's count of observations (assertion evaluations) so far.
    pub position: u64,
    /// The child's seed.
    pub seed: u64,
}

/// How a timeline with a bug ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum BugKind {
    /// The timeline ran to its end and its verdict was a failure.
    Failed,
    /// The timeline ran past its wall-clock budget and was killed.
    Hung,
    /// The timeline's process ended abnormally (a signal, an unexpected exit code).
    Died,
}

impl BugKind {
    fn code(self) -> u32 {
        match self {
            BugKind::Failed => 1,
            BugKind::Hung => 2,
            BugKind::Died => 3,
        }
    }

    fn from_code(code: u32) -> Self {
        match code {
            2 => BugKind::Hung,
            3 => BugKind::Died,
            _ => BugKind::Failed,
        }
    }

    /// `failed`, `hung` or `died`.
    pub fn name(self) -> &'static str {
        match self {
            BugKind::Failed => "failed",
            BugKind::Hung => "hung",
            BugKind::Died => "died",
        }
    }
}

/// A timeline that found a bug, and how to get back to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bug {
    /// How it ended.
    pub kind: BugKind,
    /// The root seed.
    pub root_seed: u64,
    /// The split points and child seeds from the root to the timeline.
    pub steps: Vec<Step>,
    /// What went wrong (cut to fit; see the overflow counts).
    pub failure: String,
    /// A short description that is the same for every timeline with the same bug.
    pub signature: String,
    /// The failure in the runner's structured form (see [`Failure::structured`](crate::Failure)).
    pub structured: String,
    /// The timeline's fingerprint, when it ran to its end.
    pub fingerprint: Option<u64>,
    /// Timelines started in the whole exploration when the bug was recorded.
    pub timeline: u64,
    /// Wall-clock time from the start of the exploration to the bug.
    pub wall_time: Duration,
}

struct BugSlot {
    ready: AtomicU32,
    kind: AtomicU32,
    root_seed: AtomicU64,
    depth: AtomicU32,
    steps: [AtomicU64; 2 * MAX_DEPTH],
    fingerprint: AtomicU64,
    has_fingerprint: AtomicU32,
    timeline: AtomicU64,
    wall_nanos: AtomicU64,
    failure: Text<FAILURE_TEXT>,
    signature: Text<SIGNATURE_TEXT>,
    structured: Text<STRUCTURED_TEXT>,
}

pub(crate) struct BugTable {
    claimed: AtomicU64,
    slots: [BugSlot; BUG_CAPACITY],
    overflow: AtomicU64,
}

impl BugTable {
    pub(crate) fn record(&self, bug: &Bug, texts_cut: &AtomicU64) {
        #[allow(clippy::cast_possible_truncation)]
        let index = self.claimed.fetch_add(1, Ordering::AcqRel) as usize;
        let Some(slot) = self.slots.get(index) else {
            self.overflow.fetch_add(1, Ordering::Relaxed);
            return;
        };
        slot.kind.store(bug.kind.code(), Ordering::Relaxed);
        slot.root_seed.store(bug.root_seed, Ordering::Relaxed);
        let depth = bug.steps.len().min(MAX_DEPTH);
        #[allow(clippy::cast_possible_truncation)]
        slot.depth.store(depth as u32, Ordering::Relaxed);
        for (i, step) in bug.steps.iter().take(depth).enumerate() {
            slot.steps[2 * i].store(step.position, Ordering::Relaxed);
            slot.steps[2 * i + 1].store(step.seed, Ordering::Relaxed);
        }
        slot.fingerprint
            .store(bug.fingerprint.unwrap_or(0), Ordering::Relaxed);
        slot.has_fingerprint
            .store(u32::from(bug.fingerprint.is_some()), Ordering::Relaxed);
        slot.timeline.store(bug.timeline, Ordering::Relaxed);
        #[allow(clippy::cast_possible_truncation)]
        slot.wall_nanos
            .store(bug.wall_time.as_nanos() as u64, Ordering::Relaxed);
        let cut = slot.failure.write(&bug.failure)
            | slot.signature.write(&bug.signature)
            | slot.structured.write(&bug.structured);
        if cut {
            texts_cut.fetch_add(1, Ordering::Relaxed);
        }
        slot.ready.store(1, Ordering::Release);
    }

    /// Every bug recorded since the last drain, in the order they were recorded; resets.
    pub(crate) fn drain(&self) -> Vec<Bug> {
        #[allow(clippy::cast_possible_truncation)]
        let claimed = (self.claimed.load(Ordering::Acquire) as usize).min(BUG_CAPACITY);
        let mut out = Vec::with_capacity(claimed);
        for slot in &self.slots[..claimed] {
            if slot.ready.swap(0, Ordering::AcqRel) != 1 {
                continue;
            }
            let depth = (slot.depth.load(Ordering::Relaxed) as usize).min(MAX_DEPTH);
            let steps = (0..depth)
                .map(|i| Step {
                    position: slot.steps[2 * i].load(Ordering::Relaxed),
                    seed: slot.steps[2 * i + 1].load(Ordering::Relaxed),
                })
                .collect();
            out.push(Bug {
                kind: BugKind::from_code(slot.kind.load(Ordering::Relaxed)),
                root_seed: slot.root_seed.load(Ordering::Relaxed),
                steps,
                failure: slot.failure.read(),
                signature: slot.signature.read(),
                structured: slot.structured.read(),
                fingerprint: (slot.has_fingerprint.load(Ordering::Relaxed) == 1)
                    .then(|| slot.fingerprint.load(Ordering::Relaxed)),
                timeline: slot.timeline.load(Ordering::Relaxed),
                wall_time: Duration::from_nanos(slot.wall_nanos.load(Ordering::Relaxed)),
            });
            slot.failure.clear();
            slot.signature.clear();
            slot.structured.clear();
        }
        self.claimed.store(0, Ordering::Release);
        out
    }

    pub(crate) fn overflow(&self) -> u64 {
        self.overflow.load(Ordering::Relaxed)
    }
}
