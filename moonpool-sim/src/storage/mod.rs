//! The simulated disks.
//!
//! # Model
//! Every process has its own disk: a flat namespace of paths (normalized with
//! [`Path::components`]; there are no directories to create) mapping to files. A process sees
//! only its own files. Each file keeps three things:
//!
//! - its **current** contents, which reads see;
//! - its **durable** contents, as of the last successful `sync_all` / `sync_data`;
//! - the **unsynced changes** in between, in order: writes (offset and the bytes that actually
//!   landed) and size changes.
//!
//! ## Durability rule
//! - Data writes and size changes (`set_len`, and truncation by `OpenOptions::truncate`) are
//!   durable only after a successful sync of the file (`sync_data` and `sync_all` behave alike).
//! - Namespace operations (create, `remove`, `rename`) are durable at once, as on a file system
//!   that journals metadata synchronously. A renamed file carries its unsynced changes along, so
//!   "write a temporary file, rename it over the old one, never sync" loses the data on a crash,
//!   as it does on real disks.
//! - Open handles keep a removed or replaced file alive (POSIX semantics) until they are dropped.
//!
//! ## Reboots
//! - [`RebootKind::Graceful`]: the OS flushes its cache; everything written survives.
//! - [`RebootKind::Crash`]: every file falls back to its durable contents, then each unsynced
//!   change independently survives whole (`crash_keep_unsynced_probability`), torn
//!   (`torn_write_probability`: only a prefix of its 512-byte sectors, or a random subset) or not
//!   at all. With both probabilities at zero exactly the synced contents survive.
//! - [`RebootKind::CrashAndWipe`]: the whole disk is deleted, and its state (failure, stall and
//!   throttle episodes) with it: the process comes back on a fresh disk.
//!
//! A [`SimFile`](crate::SimFile) remembers the process generation it was opened in; after a reboot every
//! operation on it fails (`NotConnected`) and never touches the new incarnation's files.
//!
//! ## One latency and fault path
//! Every operation (open, read, write, sync, set_len, size, exists, remove, rename) goes through
//! one function, `begin`:
//!
//! ```text
//! start      = max(now, disk busy-until, stall episode end)
//! transfer   = bytes / bandwidth
//! latency    = (sample(latency distribution of the operation) + transfer) * throttle
//! occupancy  = (1 / iops + transfer) * throttle
//! completion = start + latency;   disk busy-until = start + occupancy
//! ```
//!
//! where `throttle` is the factor of a throttle episode in force at `start` (else 1). A
//! `StorageEvent::Complete` is scheduled at the completion time; the operation's future parks
//! its waker in the storage state, the event wakes it, and the next poll performs the transfer
//! (so a read sees the data as of its completion) and returns. Stall and throttle episodes are
//! per process disk, start at random per operation and are counted as faults. A failed disk never
//! completes anything: the future stays pending forever, so a missing timeout shows up as the
//! world's deadlock or time-budget verdict.
//!
//! Data faults (read and write corruption, misdirected reads and writes, phantom writes, sync
//! failures, uninitialized reads) are decided when the operation completes. Each fault is off at
//! probability zero without drawing randomness, and each firing is counted as
//! `storage.<name>`. See `docs/fault-injection-storage.md` for the catalog.

mod config;
pub(crate) mod disk;
pub(crate) mod path;
mod swarm;

use crate::kernel::fault::FaultKind;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::task::Waker;

use crate::kernel::clock::scaled;
use crate::kernel::timers::Waiter;
use std::time::Duration;

pub use config::StorageConfiguration;

pub(crate) use crate::kernel::event::StorageEvent;

use crate::executor::ProcessId;
use crate::kernel::Core;
use crate::kernel::event::Event;
use crate::kernel::process::{ProcessRole, RebootKind};
use disk::Inode;

/// The kinds of disk operation, each with its latency distribution.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IoKind {
    Open,
    Read,
    Write,
    Sync,
    SetLen,
    Size,
    Exists,
    Remove,
    Rename,
}

/// The disk of one process.
#[derive(Debug)]
pub(crate) struct Disk {
    /// Path to inode.
    pub(crate) paths: BTreeMap<PathBuf, u64>,
    /// The disk is busy until then (IOPS and bandwidth accounting).
    pub(crate) busy_until: Duration,
    /// No operation starts before this (stall episode).
    pub(crate) stall_until: Duration,
    /// Operations starting before this are slowed by `throttle_factor`.
    pub(crate) throttle_until: Duration,
    pub(crate) throttle_factor: f64,
    /// Decided at the first operation: the disk never completes anything.
    pub(crate) failed: Option<bool>,
}

impl Disk {
    pub(crate) fn new() -> Self {
        Self {
            paths: BTreeMap::new(),
            busy_until: Duration::ZERO,
            stall_until: Duration::ZERO,
            throttle_until: Duration::ZERO,
            throttle_factor: 1.0,
            failed: None,
        }
    }
}

/// An operation in flight.
#[derive(Debug, Default)]
pub(crate) struct OpSlot {
    pub(crate) done: bool,
    /// Who the completion wakes: the polling task by slot and id, or its waker.
    pub(crate) waiter: Option<Waiter>,
    pub(crate) owner: Option<ProcessId>,
}

impl StorageState {
    /// The process that started operation `op` (for traces).
    pub(crate) fn op_owner(&self, op: u64) -> Option<ProcessId> {
        self.ops.get(&op).and_then(|slot| slot.owner)
    }
}

/// All storage state of a world.
pub(crate) struct StorageState {
    pub(crate) config: StorageConfiguration,
    pub(crate) disks: BTreeMap<ProcessId, Disk>,
    pub(crate) inodes: BTreeMap<u64, Inode>,
    pub(crate) next_inode: u64,
    pub(crate) ops: BTreeMap<u64, OpSlot>,
    pub(crate) next_op: u64,
}

impl StorageState {
    pub(crate) fn new(config: StorageConfiguration) -> Self {
        Self {
            config,
            disks: BTreeMap::new(),
            inodes: BTreeMap::new(),
            next_inode: 0,
            ops: BTreeMap::new(),
            next_op: 0,
        }
    }

    pub(crate) fn disk(&mut self, process: ProcessId) -> &mut Disk {
        self.disks.entry(process).or_insert_with(Disk::new)
    }

    /// The inode at `path` on `process`'s disk.
    pub(crate) fn lookup(&self, process: ProcessId, path: &Path) -> Option<u64> {
        self.disks
            .get(&process)
            .and_then(|disk| disk.paths.get(path).copied())
    }

    pub(crate) fn inode(&self, id: u64) -> Option<&Inode> {
        self.inodes.get(&id)
    }

    pub(crate) fn inode_mut(&mut self, id: u64) -> Option<&mut Inode> {
        self.inodes.get_mut(&id)
    }

    /// Creates an empty file at `path`.
    pub(crate) fn create(&mut self, process: ProcessId, path: PathBuf) -> u64 {
        let id = self.next_inode;
        self.next_inode += 1;
        self.inodes.insert(id, Inode::new(process));
        self.disk(process).paths.insert(path, id);
        id
    }

    /// Removes `path` from the namespace; the file lives on while handles hold it.
    pub(crate) fn unlink(&mut self, process: ProcessId, path: &Path) -> bool {
        let Some(id) = self.disk(process).paths.remove(path) else {
            return false;
        };
        if let Some(inode) = self.inodes.get_mut(&id) {
            inode.linked = false;
        }
        self.collect(id);
        true
    }

    /// Moves `from` to `to`, replacing `to`. False when `from` does not exist.
    pub(crate) fn rename(&mut self, process: ProcessId, from: &Path, to: PathBuf) -> bool {
        let Some(id) = self.lookup(process, from) else {
            return false;
        };
        if from == to.as_path() {
            return true;
        }
        self.unlink(process, &to);
        let disk = self.disk(process);
        disk.paths.remove(from);
        disk.paths.insert(to, id);
        true
    }

    /// Drops an inode nothing refers to any more.
    pub(crate) fn collect(&mut self, id: u64) {
        if self
            .inodes
            .get(&id)
            .is_some_and(|inode| !inode.linked && inode.handles == 0)
        {
            self.inodes.remove(&id);
        }
    }

    /// Forgets an operation (its future was dropped or abandoned).
    pub(crate) fn cancel(&mut self, op: u64) {
        self.ops.remove(&op);
    }

    /// Polls an operation: true (and forgotten) once completed; otherwise parks the waker (by
    /// slot and id when it is the polling task's own, `executor` being the world's executor).
    pub(crate) fn poll_op(&mut self, op: u64, waker: &Waker, executor: usize) -> bool {
        match self.ops.get_mut(&op) {
            Some(slot) if slot.done => {
                self.ops.remove(&op);
                true
            }
            Some(slot) => {
                if !slot.waiter.as_ref().is_some_and(|w| w.wakes_as(waker)) {
                    slot.waiter = Some(Waiter::of(waker, executor));
                }
                false
            }
            // Unknown: already forgotten; nothing will complete it, so do not wait.
            None => true,
        }
    }

    /// Paths on `process`'s disk, sorted.
    pub(crate) fn paths(&self, process: ProcessId) -> Vec<PathBuf> {
        self.disks
            .get(&process)
            .map(|disk| disk.paths.keys().cloned().collect())
            .unwrap_or_default()
    }
}

/// Applies one storage event: marks the operation complete and returns who waits on it, for the
/// caller to wake (a waker that is not a task's own once it has let go of the world's state: its
/// `wake`, or the drop of what it holds, may reach the world).
pub(crate) fn apply(storage: &mut StorageState, event: StorageEvent) -> Option<Waiter> {
    match event {
        StorageEvent::Complete { op } => {
            let slot = storage.ops.get_mut(&op)?;
            slot.done = true;
            slot.waiter.take()
        }
    }
}

/// How an operation proceeds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Begin {
    /// It completes with the event of this operation id.
    Scheduled(u64),
    /// The disk has failed: it never completes.
    Never,
}

fn nanos(nanos: u128) -> Duration {
    let secs = u64::try_from(nanos / 1_000_000_000).unwrap_or(u64::MAX);
    #[allow(clippy::cast_possible_truncation)]
    let sub = (nanos % 1_000_000_000) as u32;
    Duration::new(secs, sub)
}

/// The one latency and fault path every disk operation takes: decides disk failure and episodes,
/// computes the completion time and schedules the completion event.
pub(crate) fn begin(
    storage: &mut StorageState,
    core: &mut Core,
    process: ProcessId,
    kind: IoKind,
    bytes: u64,
) -> Begin {
    let now = core.now;
    let server = core
        .process(process)
        .is_some_and(|p| p.role == ProcessRole::Server);
    let config = &storage.config;
    let disk = storage.disks.entry(process).or_insert_with(Disk::new);
    let failed = match disk.failed {
        Some(failed) => failed,
        None => {
            let failed = server
                && core
                    .rng
                    .fault(FaultKind::StorageFailedDisk)
                    .chance(config.failed_disk_probability);
            if failed {
                core.fired(FaultKind::StorageFailedDisk, "storage.failed_disk");
            }
            disk.failed = Some(failed);
            failed
        }
    };
    if failed {
        return Begin::Never;
    }
    let stall = core.rng.fault(FaultKind::StorageStall);
    if disk.stall_until <= now && stall.chance(config.stall_probability) {
        let (lo, hi) = config.stall_duration;
        disk.stall_until = now.saturating_add(stall.duration(lo, hi));
        core.fired(FaultKind::StorageStall, "storage.stall");
    }
    let throttle = core.rng.fault(FaultKind::StorageThrottle);
    if disk.throttle_until <= now && throttle.chance(config.throttle_probability) {
        let (lo, hi) = config.throttle_duration;
        disk.throttle_until = now.saturating_add(throttle.duration(lo, hi));
        let (lo, hi) = config.throttle_factor;
        disk.throttle_factor = throttle.range(lo..=hi);
        core.fired(FaultKind::StorageThrottle, "storage.throttle");
    }
    let start = now.max(disk.busy_until).max(disk.stall_until);
    let distribution = match kind {
        IoKind::Read => &config.read_latency,
        IoKind::Write => &config.write_latency,
        IoKind::Sync => &config.sync_latency,
        IoKind::Open
        | IoKind::SetLen
        | IoKind::Size
        | IoKind::Exists
        | IoKind::Remove
        | IoKind::Rename => &config.metadata_latency,
    };
    let base = distribution.sample(&mut core.rng);
    let transfer = match config.bandwidth_bytes_per_second {
        0 => Duration::ZERO,
        bandwidth => nanos(u128::from(bytes) * 1_000_000_000 / u128::from(bandwidth)),
    };
    let per_op = match config.iops {
        0 => Duration::ZERO,
        iops => nanos(1_000_000_000 / u128::from(iops)),
    };
    let factor = if start < disk.throttle_until {
        disk.throttle_factor
    } else {
        1.0
    };
    let (latency, occupancy) = if factor > 1.0 {
        (
            scaled(base.saturating_add(transfer), factor),
            scaled(per_op.saturating_add(transfer), factor),
        )
    } else {
        (
            base.saturating_add(transfer),
            per_op.saturating_add(transfer),
        )
    };
    disk.busy_until = start.saturating_add(occupancy);
    let op = storage.next_op;
    storage.next_op += 1;
    storage.ops.insert(
        op,
        OpSlot {
            owner: Some(process),
            ..OpSlot::default()
        },
    );
    core.schedule_at(
        start.saturating_add(latency),
        Event::Storage(StorageEvent::Complete { op }),
    );
    Begin::Scheduled(op)
}

/// A process went down: graceful keeps everything written, a crash keeps the synced contents
/// plus whatever unsynced changes survive, a wipe deletes the disk and its episode state.
pub(crate) fn process_down(
    storage: &mut StorageState,
    core: &mut Core,
    process: ProcessId,
    kind: RebootKind,
) {
    let owned: Vec<u64> = storage
        .inodes
        .iter()
        .filter(|(_, inode)| inode.owner == process)
        .map(|(id, _)| *id)
        .collect();
    if kind == RebootKind::CrashAndWipe {
        for id in owned {
            storage.inodes.remove(&id);
        }
        storage.disks.remove(&process);
        return;
    }
    let keep = storage.config.crash_keep_unsynced_probability;
    let torn = storage.config.torn_write_probability;
    for id in owned {
        let Some(inode) = storage.inodes.get_mut(&id) else {
            continue;
        };
        if !inode.linked {
            // Only the dead incarnation's handles could reach it.
            storage.inodes.remove(&id);
            continue;
        }
        match kind {
            RebootKind::Graceful => inode.flush(),
            RebootKind::Crash | RebootKind::CrashAndWipe => inode.crash(core, keep, torn),
        }
    }
}
