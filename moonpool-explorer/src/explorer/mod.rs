//! [`Explorer`]: the tree of timelines, its energy, its splits, its bugs.

use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::config::ExplorationConfig;
use crate::error::ExploreError;
use crate::shm::{Region, ZeroValid};
use crate::tables::{
    BucketStats, BucketTable, Bug, BugKind, BugTable, COVERAGE_CAPACITY, Coverage, CoverageSet,
    SiteDelta, SiteInfo, SiteStats, SiteTable, Step,
};

/// Counters shared by every process of the tree.
#[derive(Default)]
struct Counters {
    timelines: AtomicU64,
    roots: AtomicU64,
    children: AtomicU64,
    split_points: AtomicU64,
    fresh_splits: AtomicU64,
    repeat_splits: AtomicU64,
    skipped_depth: AtomicU64,
    skipped_energy: AtomicU64,
    skipped_stopped: AtomicU64,
    energy_left: AtomicU64,
    pool: AtomicU64,
    returned: AtomicU64,
    drawn: AtomicU64,
    slots_free: AtomicU64,
    running: AtomicU64,
    peak_running: AtomicU64,
    stop: AtomicU32,
    hangs: AtomicU64,
    died: AtomicU64,
    fork_failures: AtomicU64,
    bugs_found: AtomicU64,
    /// Timelines started when the first bug was recorded (0: none yet).
    first_bug_timeline: AtomicU64,
    /// Nanoseconds from the start to the first bug, plus one (0: none yet).
    first_bug_nanos: AtomicU64,
    texts_cut: AtomicU64,
    max_depth_reached: AtomicU32,
}

/// Everything in the shared mapping.
struct Shared {
    counters: Counters,
    coverage: CoverageSet,
    sites: SiteTable,
    buckets: BucketTable,
    bugs: BugTable,
}

// SAFETY: `Shared` is made only of atomics and arrays of atomics (directly or through the table
// types, which are the same), for which all-zero bytes are valid values (counters at 0, empty
// tables).
unsafe impl ZeroValid for Shared {}

/// Set in a process that is a child timeline.
static IN_CHILD: AtomicBool = AtomicBool::new(false);

/// True in a process forked as a child timeline (false in the root and outside exploration).
pub fn in_child_timeline() -> bool {
    IN_CHILD.load(Ordering::Acquire)
}

/// A split point: where, and whether what was discovered there is new to every timeline so far.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SplitPoint {
    /// The timeline's count of observations so far (the caller's clock of its timeline; a replay
    /// reseeds at the same count).
    pub position: u64,
    /// The discovery is new to the whole exploration (a fresh split gets the full allowance; a
    /// repeat one batch).
    pub fresh: bool,
}

/// Which side of a split this process is on when [`Explorer::split`] returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Branch {
    /// The timeline that split: its children have all ended; go on with the same randomness.
    Parent,
    /// A new child timeline: reseed every random stream with `seed`, then go on.
    Child {
        /// The child's seed.
        seed: u64,
    },
}

/// How a timeline failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    /// What went wrong.
    pub text: String,
    /// A short description shared by every timeline with the same bug (no times, no seeds).
    pub signature: String,
    /// The failure in the runner's structured form (opaque to the explorer: carried to the
    /// parent as is, cut to fit like the texts; empty when there is none).
    pub structured: String,
}

/// What a timeline tells the explorer when it ends.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TimelineEnd {
    /// Its failure, if it failed.
    pub failure: Option<Failure>,
    /// Its fingerprint (a hash of what happened), replayed runs must reproduce it.
    pub fingerprint: u64,
}

/// What the child timelines of one root seed reported.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TreeReport {
    /// Assertion sites evaluated in child timelines.
    pub sites: Vec<SiteStats>,
    /// `sometimes_each` buckets reached in child timelines.
    pub buckets: Vec<BucketStats>,
    /// Bugs found in the tree (root included), in the order found.
    pub bugs: Vec<Bug>,
}

/// Entries that did not fit in a fixed-size table (never silent).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Overflow {
    /// Coverage keys not stored (the set was full around them).
    pub coverage: u64,
    /// Assertion-site reports lost (the site table was full).
    pub sites: u64,
    /// `sometimes_each` bucket reports lost.
    pub buckets: u64,
    /// Bugs counted but not kept.
    pub bugs: u64,
    /// Texts (messages, failures) cut to fit.
    pub texts_cut: u64,
}

impl Overflow {
    /// The sum of every count.
    pub fn total(&self) -> u64 {
        self.coverage + self.sites + self.buckets + self.bugs + self.texts_cut
    }
}

/// The exploration's figures so far.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExplorationFigures {
    /// Timelines started: root seeds plus children.
    pub timelines: u64,
    /// Root timelines (one per root seed).
    pub roots: u64,
    /// Child timelines forked (the energy used).
    pub children: u64,
    /// Split points that forked.
    pub split_points: u64,
    /// Of those, split points whose discovery was new to every timeline.
    pub fresh_splits: u64,
    /// Of those, split points whose discovery only the timeline's own lineage had not seen.
    pub repeat_splits: u64,
    /// Split points not taken: the timeline was at the depth bound.
    pub skipped_depth: u64,
    /// Split points not taken: no energy left.
    pub skipped_energy: u64,
    /// Split points not taken: the exploration was stopping (a bug found, with
    /// `stop_on_first_bug`).
    pub skipped_stopped: u64,
    /// The global budget.
    pub energy_budget: u64,
    /// Energy not spent yet.
    pub energy_left: u64,
    /// Allowance split points did not use and gave back to the pool.
    pub energy_returned: u64,
    /// Energy productive split points took from the pool.
    pub energy_drawn: u64,
    /// Energy in the pool now.
    pub pool_left: u64,
    /// Coverage keys reached by some timeline.
    pub coverage_keys: u64,
    /// Coverage keys the set can hold.
    pub coverage_capacity: u64,
    /// What did not fit.
    pub overflow: Overflow,
    /// Children killed for running past their wall-clock budget.
    pub hangs: u64,
    /// Children that ended abnormally otherwise.
    pub died: u64,
    /// Forks the system refused.
    pub fork_failures: u64,
    /// Bugs found (kept or not).
    pub bugs_found: u64,
    /// Timelines started when the first bug was found.
    pub first_bug_timeline: Option<u64>,
    /// Wall-clock time from the start to the first bug.
    pub first_bug_wall: Option<Duration>,
    /// The deepest split reached.
    pub max_depth_reached: u32,
    /// Most children running at once.
    pub peak_running: u64,
    /// The bound on children running at once.
    pub parallelism: u64,
}

/// This process's place in the tree.
struct Local {
    child: bool,
    depth: u32,
    root_seed: u64,
    steps: Vec<Step>,
    lineage: u64,
    /// This timeline or one of its descendants reached a new coverage key or found a bug.
    novel: bool,
    /// The parent process (children only).
    parent: i32,
    started: Instant,
    /// The shared count of children when this tree began (a tree without children leaves the
    /// per-tree tables untouched, and draining them is skipped).
    children_at_begin: u64,
}

/// The explorer of one process tree (see the [crate docs](crate)).
///
/// Made once in the root process before its first root seed; every child timeline inherits a
/// copy (its own place in the tree, the same shared memory). Dropped in the root, it releases the
/// shared memory.
pub struct Explorer {
    shared: Region<Shared>,
    config: ExplorationConfig,
    parallelism: u64,
    local: Local,
}

const ROOT_SALT: u64 = 0x6d6f_6f6e_706f_6f6c;

/// Mixes two words into one (SplitMix64's finalizer over a combination of both).
pub fn mix(a: u64, b: u64) -> u64 {
    let mut z = a ^ b.wrapping_mul(0x9e37_79b9_7f4a_7c15).rotate_left(29);
    z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Takes up to `n` from `counter`; returns what was taken.
fn take(counter: &AtomicU64, n: u64) -> u64 {
    let mut taken = 0;
    let _ = counter.fetch_update(Ordering::AcqRel, Ordering::Acquire, |left| {
        taken = left.min(n);
        Some(left - taken)
    });
    taken
}

impl Explorer {
    /// An explorer with `config`: checks it and maps the shared memory. Linux and macOS only.
    pub fn new(config: ExplorationConfig) -> Result<Self, ExploreError> {
        if !cfg!(any(target_os = "linux", target_os = "macos")) {
            return Err(ExploreError::Unsupported {
                platform: std::env::consts::OS,
            });
        }
        config.validate()?;
        let shared: Region<Shared> = Region::new()?;
        let parallelism = config.resolved_parallelism() as u64;
        let counters = &shared.get().counters;
        counters
            .energy_left
            .store(config.global_energy, Ordering::Release);
        // The root holds one running slot itself.
        counters
            .slots_free
            .store(parallelism.saturating_sub(1), Ordering::Release);
        Ok(Self {
            shared,
            config,
            parallelism,
            local: Local {
                child: false,
                depth: 0,
                root_seed: 0,
                steps: Vec::new(),
                lineage: 0,
                novel: false,
                parent: 0,
                started: Instant::now(),
                children_at_begin: 0,
            },
        })
    }

    fn counters(&self) -> &Counters {
        &self.shared.get().counters
    }

    /// The configuration.
    pub fn config(&self) -> &ExplorationConfig {
        &self.config
    }

    /// True in a child timeline.
    pub fn is_child(&self) -> bool {
        self.local.child
    }

    /// Splits between the root seed and this timeline.
    pub fn depth(&self) -> u32 {
        self.local.depth
    }

    /// The root seed of this timeline's tree.
    pub fn root_seed(&self) -> u64 {
        self.local.root_seed
    }

    /// The split points and seeds from the root seed to this timeline (its recipe).
    pub fn steps(&self) -> &[Step] {
        &self.local.steps
    }

    /// True once the exploration is stopping (a bug found with `stop_on_first_bug`).
    pub fn stopping(&self) -> bool {
        self.counters().stop.load(Ordering::Acquire) != 0
    }

    /// Energy not spent yet.
    pub fn energy_left(&self) -> u64 {
        self.counters().energy_left.load(Ordering::Acquire)
    }

    /// Address and length of the shared mapping (to check it is released).
    pub fn shared_memory(&self) -> (usize, usize) {
        (self.shared.address(), self.shared.len())
    }

    /// Starts the root timeline of `root_seed` (root process only).
    pub fn begin_tree(&mut self, root_seed: u64) {
        self.refuse_in_child();
        self.local.depth = 0;
        self.local.root_seed = root_seed;
        self.local.steps.clear();
        self.local.lineage = mix(root_seed, ROOT_SALT);
        self.local.novel = false;
        let counters = self.counters();
        counters.timelines.fetch_add(1, Ordering::AcqRel);
        counters.roots.fetch_add(1, Ordering::AcqRel);
        self.local.children_at_begin = counters.children.load(Ordering::Acquire);
    }

    /// Marks coverage `key` reached by this timeline; says whether any timeline had reached it.
    pub fn cover(&mut self, key: u64) -> Coverage {
        let found = self.shared.get().coverage.insert(key);
        if found == Coverage::New {
            self.local.novel = true;
        }
        found
    }

    /// Adds one evaluation of assertion site `key` to the shared statistics.
    pub fn record_site(&self, key: u64, info: &SiteInfo<'_>, delta: &SiteDelta) {
        let shared = self.shared.get();
        shared
            .sites
            .record(key, info, delta, &shared.counters.texts_cut);
    }

    /// Adds one hit of `sometimes_each` bucket `bucket` of site `site`; `label` names it (called
    /// only the first time the bucket is reported).
    pub fn record_bucket(&self, site: u64, bucket: u64, label: &dyn Fn() -> String) {
        let shared = self.shared.get();
        shared
            .buckets
            .record(site, bucket, label, &shared.counters.texts_cut);
    }

    /// A split point. If the budget allows, forks child timelines in batches and waits for them;
    /// returns [`Branch::Child`] in each child (which must reseed its randomness with the seed and
    /// go on) and [`Branch::Parent`] here once every child has ended.
    pub fn split(&mut self, point: SplitPoint) -> Branch {
        #[cfg(unix)]
        {
            self.split_unix(point)
        }
        #[cfg(not(unix))]
        {
            let _ = point;
            Branch::Parent
        }
    }

    /// Ends this timeline: a failure becomes a bug with this timeline's recipe. In a child, the
    /// process then exits (telling its parent whether it found anything new) and this does not
    /// return; in the root it returns.
    pub fn end_timeline(&mut self, end: &TimelineEnd) {
        if let Some(failure) = &end.failure {
            let steps = self.local.steps.clone();
            self.record_bug(
                BugKind::Failed,
                steps,
                failure.text.clone(),
                failure.signature.clone(),
                failure.structured.clone(),
                Some(end.fingerprint),
            );
        }
        #[cfg(unix)]
        if self.local.child {
            crate::process::exit_now(if self.local.novel {
                crate::process::EXIT_NOVEL
            } else {
                crate::process::EXIT_PLAIN
            });
        }
    }

    /// What the child timelines of the root seed just run reported (root process only, after
    /// [`end_timeline`](Self::end_timeline)); resets the per-tree tables.
    pub fn take_tree(&mut self) -> TreeReport {
        self.refuse_in_child();
        let shared = self.shared.get();
        let children = shared.counters.children.load(Ordering::Acquire);
        if children == self.local.children_at_begin {
            // No child ran: only the root may have recorded (a bug of its own).
            return TreeReport {
                bugs: shared.bugs.drain(),
                ..TreeReport::default()
            };
        }
        TreeReport {
            sites: shared.sites.drain(),
            buckets: shared.buckets.drain(),
            bugs: shared.bugs.drain(),
        }
    }

    /// The figures so far.
    pub fn figures(&self) -> ExplorationFigures {
        let shared = self.shared.get();
        let c = &shared.counters;
        let load = |a: &AtomicU64| a.load(Ordering::Acquire);
        let first_nanos = load(&c.first_bug_nanos);
        let first_timeline = load(&c.first_bug_timeline);
        ExplorationFigures {
            timelines: load(&c.timelines),
            roots: load(&c.roots),
            children: load(&c.children),
            split_points: load(&c.split_points),
            fresh_splits: load(&c.fresh_splits),
            repeat_splits: load(&c.repeat_splits),
            skipped_depth: load(&c.skipped_depth),
            skipped_energy: load(&c.skipped_energy),
            skipped_stopped: load(&c.skipped_stopped),
            energy_budget: self.config.global_energy,
            energy_left: load(&c.energy_left),
            energy_returned: load(&c.returned),
            energy_drawn: load(&c.drawn),
            pool_left: load(&c.pool),
            coverage_keys: shared.coverage.count(),
            coverage_capacity: COVERAGE_CAPACITY as u64,
            overflow: Overflow {
                coverage: shared.coverage.overflow(),
                sites: shared.sites.overflow(),
                buckets: shared.buckets.overflow(),
                bugs: shared.bugs.overflow(),
                texts_cut: load(&c.texts_cut),
            },
            hangs: load(&c.hangs),
            died: load(&c.died),
            fork_failures: load(&c.fork_failures),
            bugs_found: load(&c.bugs_found),
            first_bug_timeline: (first_timeline > 0).then_some(first_timeline),
            first_bug_wall: (first_nanos > 0).then(|| Duration::from_nanos(first_nanos - 1)),
            max_depth_reached: c.max_depth_reached.load(Ordering::Acquire),
            peak_running: load(&c.peak_running),
            parallelism: self.parallelism,
        }
    }

    /// A root-only operation reached in a child means the child left its timeline's code path
    /// without ending it: end the process rather than let it run the root's work twice.
    fn refuse_in_child(&self) {
        #[cfg(unix)]
        if self.local.child {
            crate::process::exit_now(crate::process::EXIT_ESCAPED);
        }
    }

    fn record_bug(
        &mut self,
        kind: BugKind,
        steps: Vec<Step>,
        failure: String,
        signature: String,
        structured: String,
        fingerprint: Option<u64>,
    ) {
        self.local.novel = true;
        let shared = self.shared.get();
        let c = &shared.counters;
        c.bugs_found.fetch_add(1, Ordering::AcqRel);
        let timeline = c.timelines.load(Ordering::Acquire);
        let wall_time = self.local.started.elapsed();
        let _ =
            c.first_bug_timeline
                .compare_exchange(0, timeline, Ordering::AcqRel, Ordering::Acquire);
        #[allow(clippy::cast_possible_truncation)]
        let _ = c.first_bug_nanos.compare_exchange(
            0,
            wall_time.as_nanos() as u64 + 1,
            Ordering::AcqRel,
            Ordering::Acquire,
        );
        shared.bugs.record(
            &Bug {
                kind,
                root_seed: self.local.root_seed,
                steps,
                failure,
                signature,
                structured,
                fingerprint,
                timeline,
                wall_time,
            },
            &c.texts_cut,
        );
        if self.config.stop_on_first_bug {
            c.stop.store(1, Ordering::Release);
        }
    }
}

impl Drop for Explorer {
    fn drop(&mut self) {
        // A child never drops its explorer: it leaves through `end_timeline`.
        self.refuse_in_child();
    }
}

#[cfg(unix)]
mod unix;
