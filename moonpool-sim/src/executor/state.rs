//! The executor's shared state: a slab of tasks, the ready queue, the RNG.

use std::future::Future;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use crate::run_lock::{Guard, RunLock};
use std::task::Waker;

use moonpool_core::JoinError;
use moonpool_core::task::panic_message;
use rand_chacha::ChaCha8Rng;

use super::ahead::{Hints, PickRng, Ready};
use super::join::Completer;
pub(crate) use super::mark::Mark;
pub(crate) use super::names::NameCache;
use super::waker::{TaskCell, TaskWaker};
use super::{DEFAULT_POLL_BOUND, ProcessId, TaskId, TaskInfo, TaskPanic};

/// A spawned future, wrapped so that finishing stores its output in the join cell.
pub(crate) type BoxFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// One live task's body, in its slot of the slab (what a pick takes out and a settle puts back).
///
/// `repr(C)`, in a 64-byte-aligned slot: a pick and a settle touch only the first line (the
/// future, the waker, what the poll waits on). What a wake reads (the id, occupancy, `queued`)
/// and what a pick counts (the drain's polls) live apart, in the dense [`Mark`] list: among
/// 1,000 connections a wake found the slot's line out of cache, and the pick then read the
/// drain's poll count from a second line of it (`sim_bench pp:1000x10` under cachegrind: most of
/// the executor's misses); 2.6 marks share a line, so the marks of a busy world stay in cache.
#[repr(C)]
pub(crate) struct Task {
    // Line 1: what a pick and a settle read and write.
    /// The future and `Waker::from` its cell (built once): taken out together while the task
    /// is polled (`None` then), put back together (so a settle drops no placeholder waker).
    pub(crate) parked: Option<(BoxFuture, Waker)>,
    /// What the last poll said it waits on.
    pub(crate) waiting_on: Option<super::WaitReason>,
    pub(crate) owner: Option<ProcessId>,
    // Line 2: what a spawn, a retirement and the reports read.
    pub(crate) id: TaskId,
    pub(crate) name: Arc<str>,
    /// Its waker and where its result goes (a `NoJoin` for a task spawned without a handle, see
    /// `Spawner::spawn_detached`, which is detached from the start).
    pub(crate) cell: Arc<TaskCell<dyn Completer>>,
}

impl Task {
    /// True once nobody can read the task's result: its handle was dropped, or it never had one.
    pub(crate) fn is_detached(&self) -> bool {
        self.cell.join.is_detached()
    }
}

impl Task {
    pub(crate) fn info(&self) -> TaskInfo {
        TaskInfo {
            id: self.id,
            name: self.name.to_string(),
            owner: self.owner,
        }
    }
}

/// How a task that left the slab must be resolved.
pub(crate) enum Resolution {
    /// It completed: its output is already in the join cell.
    Completed,
    /// It was aborted or killed.
    Cancelled,
    /// It panicked with this message.
    Panicked(String),
}

/// A task taken out of the slab, to be dropped and resolved *outside* the state lock (dropping a
/// future runs arbitrary `Drop` code that may spawn, wake or abort).
pub(crate) struct Removed {
    pub(crate) task: Task,
    pub(crate) resolution: Resolution,
}

impl Removed {
    /// Drops the future (catching a panicking `Drop`), then resolves the handle.
    ///
    /// Must be called without the state lock held.
    pub(crate) fn finish(self, shared: &Shared) {
        let Removed {
            mut task,
            resolution,
        } = self;
        if let Some((future, waker)) = task.parked.take() {
            let detached = task.is_detached();
            drop_guarded(shared, future, task.id, &task.name, task.owner, detached);
            drop(waker);
        }
        let join = &task.cell.join;
        if !join.has_handle() {
            // No handle: nobody to tell.
            return;
        }
        match resolution {
            Resolution::Completed => {}
            Resolution::Cancelled => join.cancel(&task.name),
            Resolution::Panicked(message) => join.fail(JoinError::Panicked {
                task: task.name.to_string(),
                message: super::hint::with_hint(message),
            }),
        }
        // `task` (its join cell, hence possibly an unread output) is dropped here, unlocked.
    }
}

/// Drops `future`; a panic in its `Drop` is recorded instead of unwinding into the simulator.
///
/// Must be called without the state lock held.
pub(crate) fn drop_guarded<T>(
    shared: &Shared,
    future: T,
    id: TaskId,
    name: &str,
    owner: Option<ProcessId>,
    detached: bool,
) {
    if let Err(payload) = catch_unwind(AssertUnwindSafe(move || drop(future))) {
        let message = panic_message(&*payload);
        discard_payload(payload);
        tracing::warn!(task = name, id = id.0, %message, "task panicked while being dropped");
        shared.lock().panics.push(TaskPanic {
            id,
            task: name.to_string(),
            owner,
            message,
            detached,
            during_drop: true,
        });
    }
}

/// Drops a panic payload, whose own `Drop` could panic too (then it is leaked, not re-raised).
pub(crate) fn discard_payload(payload: Box<dyn std::any::Any + Send>) {
    if let Err(nested) = catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(nested);
    }
}

/// One slab slot: two cache lines (see [`Task`]).
#[repr(align(64))]
pub(crate) struct Slot {
    pub(crate) task: Option<Task>,
}

/// Everything behind the executor's lock.
pub(crate) struct State {
    pub(crate) slots: Vec<Slot>,
    /// One mark per slot, at the same index (see [`Mark`]).
    pub(crate) marks: Vec<Mark>,
    /// Free slot indices, reused last-freed first.
    pub(crate) free: Vec<u32>,
    /// Ready tasks as (slot, id); order matters only through the seeded pick.
    pub(crate) ready: Vec<Ready>,
    pub(crate) live: usize,
    pub(crate) next_id: u64,
    /// The task being polled now.
    pub(crate) current: Option<(u32, TaskId)>,
    pub(crate) rng: PickRng,
    /// Random numbers drawn by the pick since the executor was built.
    pub(crate) random_draws: u64,
    pub(crate) draining: bool,
    /// Set by `shutdown`: spawns are cancelled at once.
    pub(crate) closed: bool,
    pub(crate) poll_bound: u64,
    /// Instant counter (each drain, or each simulated instant of a world), for per-instant poll counts.
    pub(crate) epoch: u64,
    pub(crate) panics: Vec<TaskPanic>,
    /// Steps (polls and cancellations) since the current instant began; bounded by `poll_bound`.
    pub(crate) instant_steps: u64,
    /// The instant of the last `run_until_stalled_at` (`None`: every drain is its own instant).
    pub(crate) instant: Option<u64>,
    /// Most live tasks at once; a spawn past it is refused and fails the drain.
    pub(crate) task_limit: usize,
    /// Set by a refused spawn: (the refused task's name, the task that spawned it).
    pub(crate) task_limit_hit: Option<(String, Option<TaskInfo>)>,
    /// Sees every spawn and poll, when a trace is recorded.
    pub(crate) observer: Option<Arc<dyn super::PollObserver>>,
    /// The names of recent spawns, shared by the next spawns of the same name.
    pub(crate) names: NameCache,
    /// Scratch lists of `remove_where` and `Shared::cancel_where`, empty between calls (only
    /// their memory is kept, at most `MAX_KEPT_CANCELLED` entries).
    pub(crate) cancel_keys: Vec<(TaskId, u32)>,
    pub(crate) cancelled: Vec<Removed>,
}

impl State {
    /// Starts a new instant: per-instant poll counts restart.
    pub(crate) fn begin_instant(&mut self) {
        self.epoch += 1;
        self.instant_steps = 0;
        if self.epoch as u32 == 0 {
            // The marks keep the instant's low 32 bits: when they wrap, every count restarts, so
            // that a mark last counted 2^32 instants ago cannot pass for one of this instant.
            // (A count of 0 in this instant is what a task not polled yet in it has.)
            for mark in &mut self.marks {
                mark.epoch = 0;
                mark.drain_polls = 0;
            }
        }
    }

    /// An id and a slot for a new task, or the id alone when the spawn is refused (the executor
    /// is shut down, or at its task limit: then the refusal is recorded for the drain).
    pub(crate) fn reserve(&mut self, name: &str) -> Result<(u32, TaskId), TaskId> {
        let id = TaskId(self.next_id);
        self.next_id += 1;
        if self.closed {
            return Err(id);
        }
        if self.live >= self.task_limit {
            if self.task_limit_hit.is_none() {
                let spawner = self
                    .current
                    .and_then(|(slot, id)| self.task(slot, id).map(Task::info));
                self.task_limit_hit = Some((name.to_string(), spawner));
            }
            return Err(id);
        }
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None => {
                self.slots.push(Slot { task: None });
                self.marks.push(Mark::default());
                (self.slots.len() - 1) as u32
            }
        };
        Ok((slot, id))
    }

    /// The mark of the slot holding task `id`, if it does.
    #[inline(always)]
    pub(crate) fn mark_mut(&mut self, slot: u32, id: TaskId) -> Option<&mut Mark> {
        self.marks
            .get_mut(slot as usize)
            .filter(|mark| mark.holds(id))
    }

    /// The mark and the body of the slot holding task `id`, if it does.
    #[inline(always)]
    pub(crate) fn entry(&mut self, slot: u32, id: TaskId) -> Option<(&mut Mark, &mut Task)> {
        let index = slot as usize;
        let mark = self.marks.get_mut(index).filter(|mark| mark.holds(id))?;
        let task = self.slots.get_mut(index)?.task.as_mut()?;
        Some((mark, task))
    }

    pub(crate) fn task(&self, slot: u32, id: TaskId) -> Option<&Task> {
        self.marks
            .get(slot as usize)
            .filter(|mark| mark.holds(id))?;
        self.slots.get(slot as usize).and_then(|s| s.task.as_ref())
    }

    /// The live tasks with their marks, in slot order.
    pub(crate) fn live(&self) -> impl Iterator<Item = (&Task, &Mark)> {
        self.slots
            .iter()
            .zip(&self.marks)
            .filter_map(|(slot, mark)| slot.task.as_ref().map(|task| (task, mark)))
    }

    /// Takes a task out of the slab, frees its slot and unqueues it. Its waker becomes inert.
    pub(crate) fn remove(&mut self, slot: u32, id: TaskId) -> Option<Task> {
        let (task, queued) = self.take_out(slot, id)?;
        if queued {
            self.ready.retain(|entry| entry.id != id);
        }
        Some(task)
    }

    /// [`remove`](Self::remove) without the unqueueing: the caller removes every entry of a
    /// task no longer queued from the ready queue afterwards, in one pass for many tasks (one
    /// pass per task made tearing down 100,000 queued tasks quadratic). Returns the task and
    /// whether it was queued.
    fn take_out(&mut self, slot: u32, id: TaskId) -> Option<(Task, bool)> {
        let mark = self.marks.get_mut(slot as usize)?;
        if !mark.holds(id) {
            return None;
        }
        let queued = mark.queued;
        let task = self.slots.get_mut(slot as usize)?.task.take()?;
        if let Some(mark) = self.marks.get_mut(slot as usize) {
            mark.live = false;
            mark.queued = false;
            mark.abort_requested = false;
        }
        self.free.push(slot);
        self.live -= 1;
        if self.current == Some((slot, id)) {
            self.current = None;
        }
        // From now on a remote wake through this waker queues nothing (a local one finds the
        // slot empty); the caller unqueues it.
        task.cell.waker.remote.store(true, Ordering::Release);
        Some((task, queued))
    }

    /// Queues the task unless it is queued already (or gone): a read of its mark.
    #[inline(always)]
    pub(crate) fn schedule(&mut self, slot: u32, id: TaskId) {
        self.schedule_hinted(slot, id, Hints::default());
    }

    /// [`schedule`](Self::schedule), with the addresses the task will read first when it is
    /// polled (see `ahead`: only ever prefetched).
    #[inline(always)]
    pub(crate) fn schedule_hinted(&mut self, slot: u32, id: TaskId, hints: Hints) {
        if let Some(mark) = self.mark_mut(slot, id)
            && !mark.queued
        {
            mark.queued = true;
            self.ready.push(Ready { slot, id, hints });
        }
    }

    /// A uniform index in `0..len`, without modulo bias (Lemire's multiply-and-reject).
    ///
    /// The common case (the low half of the product is at least `len`, so no rejection is
    /// possible) is inlined into the pick; the rejection test is out of line. As one function
    /// it was a call with six registers saved and restored, 34 instructions a pick of which 16
    /// were the call's (`sim_bench timers1` under callgrind). The draws are the same.
    #[inline(always)]
    pub(crate) fn random_index(&mut self, len: usize) -> usize {
        let range = len as u64;
        let product = u128::from(self.rng.next_u64()) * u128::from(range);
        self.random_draws += 1;
        if product as u64 >= range {
            // `threshold = 2^64 mod range` is below `range`: nothing to reject.
            return (product >> 64) as usize;
        }
        self.random_index_rejecting(range, product)
    }

    /// The rest of [`random_index`](Self::random_index) when the first draw may be rejected.
    #[cold]
    #[inline(never)]
    fn random_index_rejecting(&mut self, range: u64, mut product: u128) -> usize {
        let threshold = range.wrapping_neg() % range;
        let mut low = product as u64;
        while low < threshold {
            product = u128::from(self.rng.next_u64()) * u128::from(range);
            self.random_draws += 1;
            low = product as u64;
        }
        (product >> 64) as usize
    }

    /// Takes every task matching `select` out of the slab, in spawn order, into `removed`. A
    /// task being polled is only marked: the executor drops it when its poll returns. Returns how
    /// many running tasks were newly marked.
    pub(crate) fn remove_where(
        &mut self,
        mut select: impl FnMut(&Task) -> bool,
        removed: &mut Vec<Removed>,
    ) -> usize {
        // The keys' list is the state's own, kept between calls (a world's shutdown runs this
        // once a seed): only its memory is reused, emptied before and after.
        let mut keys = std::mem::take(&mut self.cancel_keys);
        keys.clear();
        let mut marked = 0;
        for (index, (slot, mark)) in self.slots.iter().zip(&mut self.marks).enumerate() {
            if let Some(task) = slot.task.as_ref()
                && select(task)
            {
                if task.parked.is_some() {
                    keys.push((task.id, index as u32));
                } else if !mark.abort_requested {
                    // Being polled right now (killed from inside itself or from a Drop).
                    mark.abort_requested = true;
                    marked += 1;
                }
            }
        }
        keys.sort_unstable();
        let mut unqueued = false;
        for &(id, slot) in &keys {
            if let Some((task, queued)) = self.take_out(slot, id) {
                unqueued |= queued;
                removed.push(Removed {
                    task,
                    resolution: Resolution::Cancelled,
                });
            }
        }
        if unqueued {
            // One pass keeps the queued tasks in their order: the same queue as unqueueing
            // each removed task in turn (nothing ran in between to queue another).
            let marks = &self.marks;
            self.ready.retain(|entry| {
                marks
                    .get(entry.slot as usize)
                    .is_some_and(|mark| mark.holds(entry.id) && mark.queued)
            });
        }
        keys.clear();
        self.cancel_keys = keys;
        marked
    }
}

/// Who lives in a slot: the task's id, name and owner.
type SlotName = (TaskId, Arc<str>, Option<ProcessId>);

/// State shared by the executor, its spawners, wakers and join handles.
pub(crate) struct Shared {
    state: RunLock<State>,
    /// Wakes that came from another thread while the state was leased to the world's thread:
    /// queued here rather than blocking the waking thread until the run ends.
    remote_wakes: Mutex<Vec<(u32, TaskId)>>,
    /// Set when `remote_wakes` has entries: the drain reads this flag (a plain load) and takes
    /// the queue only when it is set.
    remote_pending: AtomicBool,
    /// Polls started so far (counted here only) and the task being polled (its
    /// slot and id plus one, 0 between polls), readable by a watchdog on another thread while the
    /// state is leased. Written only by the draining thread (plain stores, no read-modify-write).
    progress_polls: AtomicU64,
    progress_slot: AtomicU64,
    progress_id: AtomicU64,
    /// Who lives in each slot (written at spawn), so a watchdog can name the task it sees stuck
    /// without the state.
    slot_names: Mutex<Vec<Option<SlotName>>>,
}

/// Task slots an executor starts with room for: a small world (a few processes, a task or two
/// each) then grows its task lists once or not at all, where growing from empty took three or
/// four reallocations a seed (room for more made the first allocation dearer than the growth).
const INITIAL_SLOTS: usize = 8;

/// Most task slots a finished executor may have for its memory to be kept for the next one (see
/// [`Shared::can_renew`]): a spare is held by its thread until the next world, so a huge world's
/// slab is freed rather than kept.
const MAX_KEPT_SLOTS: usize = 4_096;

/// Most cancelled tasks whose list a state keeps between cancellations (see `State::cancelled`).
const MAX_KEPT_CANCELLED: usize = 64;

impl Shared {
    pub(crate) fn new(rng: ChaCha8Rng) -> Self {
        Self::with_lists(
            rng,
            Vec::with_capacity(INITIAL_SLOTS),
            Vec::with_capacity(INITIAL_SLOTS),
            Vec::with_capacity(INITIAL_SLOTS),
            Vec::with_capacity(INITIAL_SLOTS),
            Vec::with_capacity(INITIAL_SLOTS),
        )
    }

    /// True when [`renew`](Self::renew) may reuse this state: no task is left in its slab and
    /// its lists are no larger than a spare may keep.
    pub(crate) fn can_renew(&mut self) -> bool {
        let state = self.state.get_mut();
        state.live == 0
            && state.slots.capacity() <= MAX_KEPT_SLOTS
            && state.slots.iter().all(|slot| slot.task.is_none())
    }

    /// Makes this state exactly what [`Shared::new`]`(rng)` makes, keeping only the memory of
    /// its task lists (emptied). Meant for a state that [`can_renew`](Self::can_renew).
    ///
    /// The caller reaches the state by `&mut` (through `Arc::get_mut`), so nothing else refers to
    /// it: no spawner, waker, join handle or watchdog probe of the old executor is left anywhere,
    /// and so nothing of the old executor's tasks can reach the renewed one. (What the old world
    /// kept of its tasks by slot and id, its timers and connection halves, belonged to its own
    /// world state, and each of those keeps the task's waker too, which would have held the
    /// state.) Every field but the lists' capacity is built anew, by the same constructor.
    pub(crate) fn renew(&mut self, rng: ChaCha8Rng) {
        let state = self.state.get_mut();
        let mut slots = std::mem::take(&mut state.slots);
        let mut marks = std::mem::take(&mut state.marks);
        let mut free = std::mem::take(&mut state.free);
        let mut ready = std::mem::take(&mut state.ready);
        let names = self
            .slot_names
            .get_mut()
            .unwrap_or_else(PoisonError::into_inner);
        let mut names = std::mem::take(names);
        // The name cache holds only immutable text (see `NameCache`): kept as it is.
        let cache = std::mem::take(&mut state.names);
        let mut cancel_keys = std::mem::take(&mut state.cancel_keys);
        let mut cancelled = std::mem::take(&mut state.cancelled);
        slots.clear();
        marks.clear();
        free.clear();
        ready.clear();
        names.clear();
        cancel_keys.clear();
        cancelled.clear();
        *self = Self::with_lists(rng, slots, marks, free, ready, names);
        let state = self.state.get_mut();
        state.names = cache;
        state.cancel_keys = cancel_keys;
        state.cancelled = cancelled;
    }

    /// A new state with these (empty) lists.
    fn with_lists(
        rng: ChaCha8Rng,
        slots: Vec<Slot>,
        marks: Vec<Mark>,
        free: Vec<u32>,
        ready: Vec<Ready>,
        slot_names: Vec<Option<SlotName>>,
    ) -> Self {
        Self {
            remote_wakes: Mutex::new(Vec::new()),
            remote_pending: AtomicBool::new(false),
            progress_polls: AtomicU64::new(0),
            progress_slot: AtomicU64::new(0),
            progress_id: AtomicU64::new(0),
            slot_names: Mutex::new(slot_names),
            state: RunLock::new(State {
                slots,
                marks,
                free,
                ready,
                live: 0,
                next_id: 0,
                current: None,
                rng: PickRng::new(rng),
                random_draws: 0,
                draining: false,
                closed: false,
                poll_bound: DEFAULT_POLL_BOUND,
                epoch: 0,
                panics: Vec::new(),
                instant_steps: 0,
                instant: None,
                task_limit: super::DEFAULT_TASK_LIMIT,
                task_limit_hit: None,
                observer: None,
                names: NameCache::default(),
                cancel_keys: Vec::new(),
                cancelled: Vec::new(),
            }),
        }
    }

    /// Locks the state. Nothing user-supplied ever runs under this lock, so poisoning cannot
    /// leave it inconsistent; a poisoned lock is recovered.
    #[inline]
    pub(crate) fn lock(&self) -> Guard<'_, State> {
        self.state.lock()
    }

    /// Runs `f` with the state leased to the calling thread (see [`RunLock`]): a world holds it
    /// for the whole of a run, so spawns, wakes and drains on its thread take no lock.
    pub(crate) fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R {
        self.state.with_lease(f)
    }

    /// Queues task `(slot, id)` if it is still live. From the world's thread (or when nobody
    /// holds the state) this is immediate; from another thread during a run, where waiting for
    /// the state would block that thread until the run ends, the wake is queued for the next
    /// drain instead. Such a wake comes from outside the simulation, so its timing is not
    /// deterministic (the determinism check reports a seed whose course it changes).
    #[inline]
    pub(crate) fn wake(&self, waker: &TaskWaker) {
        let (slot, id) = (waker.slot, waker.id);
        if let Some(mut state) = self.state.try_lock() {
            state.schedule(slot, id);
            return;
        }
        if !waker.claim_remote() {
            return;
        }
        self.remote_wakes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((slot, id));
        self.remote_pending.store(true, Ordering::Release);
    }

    /// This executor's identity: the address of its shared state, unique among live executors.
    #[inline]
    pub(crate) fn identity(&self) -> usize {
        std::ptr::from_ref(self) as usize
    }

    /// Queues task `(slot, id)` if it is still live and not queued: the same as waking its waker
    /// (see [`TaskWaker`]), for a caller that kept the task's [`TaskRef`](super::TaskRef).
    ///
    /// Always inlined: with two callers (a timer's and a delivery's wake) the compiler made it a
    /// call, about 1% more instructions per timer event (`sim_bench timers` under cachegrind).
    #[inline(always)]
    pub(crate) fn wake_task(&self, slot: u32, id: TaskId, hints: Hints) {
        if let Some(mut state) = self.state.try_lock() {
            state.schedule_hinted(slot, id, hints);
            return;
        }
        // Another thread holds the state: queue it like a remote wake (through the task's waker,
        // whose flag keeps the remote queue free of duplicates), when the task is still known.
        self.remote_wakes
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((slot, id));
        self.remote_pending.store(true, Ordering::Release);
    }

    /// Records that task `(slot, id)` is about to be polled (the watchdog's view).
    #[inline]
    pub(crate) fn publish_poll(&self, slot: u32, id: TaskId) {
        let polls = self.progress_polls.load(Ordering::Relaxed);
        self.progress_polls
            .store(polls.wrapping_add(1), Ordering::Relaxed);
        self.progress_slot.store(u64::from(slot), Ordering::Relaxed);
        self.progress_id
            .store(id.0.wrapping_add(1), Ordering::Relaxed);
    }

    /// Records that no task is being polled.
    #[inline]
    pub(crate) fn publish_idle(&self) {
        self.progress_id.store(0, Ordering::Relaxed);
    }

    /// Records who now lives in `slot`.
    pub(crate) fn name_slot(
        &self,
        slot: u32,
        id: TaskId,
        name: Arc<str>,
        owner: Option<ProcessId>,
    ) {
        let mut names = self
            .slot_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let index = slot as usize;
        if names.len() <= index {
            names.resize(index + 1, None);
        }
        if let Some(entry) = names.get_mut(index) {
            *entry = Some((id, name, owner));
        }
    }

    /// Polls started and the task being polled, without the state (for a watchdog).
    pub(crate) fn progress(&self) -> (u64, Option<TaskInfo>) {
        let polls = self.progress_polls.load(Ordering::Relaxed);
        let Some(id) = self.progress_id.load(Ordering::Relaxed).checked_sub(1) else {
            return (polls, None);
        };
        let slot = self.progress_slot.load(Ordering::Relaxed);
        let names = self
            .slot_names
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let info = usize::try_from(slot)
            .ok()
            .and_then(|index| names.get(index))
            .and_then(Option::as_ref)
            .filter(|(known, _, _)| known.0 == id)
            .map(|(id, name, owner)| TaskInfo {
                id: *id,
                name: name.to_string(),
                owner: *owner,
            });
        (polls, info)
    }

    /// Whether a wake from another thread waits for the next drain.
    pub(crate) fn has_remote_wakes(&self) -> bool {
        self.remote_pending.load(Ordering::Acquire)
    }

    /// Moves the wakes queued by other threads into `state`'s ready queue.
    ///
    /// Called twice per poll of a drain; the check is inlined into the drain and the rare move
    /// is not (as one function it was a call of about twenty instructions per check).
    #[inline(always)]
    pub(crate) fn take_remote_wakes(&self, state: &mut State) {
        if self.remote_pending.load(Ordering::Relaxed) {
            self.move_remote_wakes(state);
        }
    }

    #[cold]
    #[inline(never)]
    fn move_remote_wakes(&self, state: &mut State) {
        self.remote_pending.store(false, Ordering::Relaxed);
        let wakes = std::mem::take(
            &mut *self
                .remote_wakes
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        for (slot, id) in wakes {
            // The flag is cleared before the task is queued: a remote wake that saw it still set
            // (and so queued nothing) is answered by this queueing, which comes after it.
            if let Some(task) = state.task(slot, id) {
                task.cell.waker.remote.store(false, Ordering::Release);
            }
            state.schedule(slot, id);
        }
    }

    /// Marks a task for cancellation and queues it, so the next drain drops it.
    pub(crate) fn request_abort(&self, slot: u32, id: TaskId) {
        let mut state = self.lock();
        if let Some(mark) = state.mark_mut(slot, id) {
            mark.abort_requested = true;
            state.schedule(slot, id);
        }
    }

    /// Removes every task matching `select`, dropping futures outside the lock, until none is
    /// left (tasks spawned by those drops that also match are removed too). Returns how many
    /// tasks were removed, or marked for removal when their current poll returns.
    pub(crate) fn cancel_where(&self, what: &str, select: impl Fn(&Task) -> bool) -> usize {
        /// Bound on drop-spawns-a-task-whose-drop-spawns-a-task chains.
        const MAX_ROUNDS: usize = 64;
        let mut total = 0;
        // The state's scratch list (a `Drop` that cancels again, from inside `finish`, finds it
        // taken and uses a new one).
        let mut removed = std::mem::take(&mut self.lock().cancelled);
        for _ in 0..MAX_ROUNDS {
            let marked = self.lock().remove_where(&select, &mut removed);
            total += marked + removed.len();
            if removed.is_empty() {
                if removed.capacity() <= MAX_KEPT_CANCELLED {
                    let mut state = self.lock();
                    if state.cancelled.capacity() < removed.capacity() {
                        state.cancelled = removed;
                    }
                }
                return total;
            }
            for task in removed.drain(..) {
                task.finish(self);
            }
        }
        let left = self
            .lock()
            .slots
            .iter()
            .filter_map(|slot| slot.task.as_ref())
            .filter(|task| select(task) && task.parked.is_some())
            .count();
        if left > 0 {
            tracing::warn!(
                left,
                "{what}: dropped tasks kept spawning matching tasks; {left} left alive"
            );
        }
        total
    }
}

#[cfg(test)]
#[path = "state_tests.rs"]
mod tests;
