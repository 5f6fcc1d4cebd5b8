//! The simulator's deterministic, single-threaded executor.
//!
//! Every task of a simulated world (server processes, workloads, the simulator's own helpers) runs
//! here, on the thread that drives the world. There is no Tokio runtime, no thread, no clock and
//! no hash-ordered iteration inside: what runs next is a function of the seed alone.
//!
//! # Why the pick is random
//!
//! Tokio's run queue is FIFO: for a given sequence of wake-ups it always runs tasks in the same
//! order, so running a test a thousand times explores one interleaving a thousand times. Here
//! [`Executor::run_until_stalled`] picks the next task **uniformly at random among the ready
//! ones**, with the [`ChaCha8Rng`] the executor was built with. The same seed replays the same
//! interleaving bit for bit; different seeds explore different interleavings, which is what
//! finds ordering bugs (a reply processed before the request was recorded, two writers racing).
//!
//! # Design
//!
//! - **Slab.** Tasks live in a `Vec` of slots, reused last-freed-first. Each task has a unique,
//!   ever-increasing [`TaskId`], a name and an owner ([`ProcessId`], or `None` for the
//!   workload/system tasks). A ready queue holds `(slot, id)` pairs. What a wake and a pick
//!   check (the slot's id, whether it is queued or aborted, the instant's poll count) sits in a
//!   dense list of marks beside the slab, so a wake reads no slot of the slab at all.
//! - **Wakers** are safe [`std::task::Wake`] objects, one `Arc` per task made at spawn and reused
//!   for every poll (polling allocates nothing); the same allocation holds the task's join cell,
//!   so a spawn with a handle allocates the boxed future, this cell and the handle's box. On the
//!   world's thread a wake checks the task's `queued` mark; from another thread an atomic
//!   "remote" flag makes repeated wakes push the task once; it is forced on when the task leaves
//!   the slab, so a stale waker (held by a channel after its task finished and its slot was
//!   reused) is inert, and the id stored in the waker is checked against the slot's occupant
//!   besides.
//! - **Drain.** [`Executor::run_until_stalled`] repeatedly draws an index into the ready queue
//!   (Lemire's unbiased multiply-and-reject; **no number is drawn when a single task is ready**),
//!   `swap_remove`s it, takes the future out of its slot, polls it *without holding the state
//!   lock*, then puts it back (or retires the task) in the same lock acquisition that picks the
//!   next one. A poll costs one lock round-trip, plus one per wake.
//! - **Lock discipline.** No user code (poll, `Drop` of a future or of an output, foreign wakers)
//!   ever runs while the executor's lock is held, so futures may spawn, wake, abort or kill from
//!   anywhere, including their own `Drop`.
//! - **Panics.** Each poll runs under `catch_unwind`. A panicking task is retired, its handle
//!   resolves to [`JoinError::Panicked`], its siblings keep running, and the panic is recorded for
//!   [`Executor::take_panics`] (so the simulator can fail the seed even when nobody awaited the
//!   handle). A panic in a future's `Drop` while the executor drops it is recorded the same way.
//! - **Busy loops.** A drain (or, in a world, a simulated instant: see
//!   [`Executor::run_until_stalled_at`]) that would take more than [`Executor::poll_bound`] steps (default
//!   [`DEFAULT_POLL_BOUND`]) stops with [`ExecutorError::PollBoundExceeded`] naming the tasks polled
//!   most in that drain.
//!
//! # Cancellation
//!
//! - [`JoinHandle::abort`] marks the task and queues it; the next drain drops its future instead
//!   of polling it (the pick goes through the seeded RNG like any other), then resolves the handle
//!   with [`JoinError::Cancelled`]. A task aborted during its own poll is dropped when that poll
//!   returns `Pending`; if that poll completes the task, or the task had completed already, the
//!   handle keeps the output (Tokio's semantics).
//! - [`Executor::kill_owner`] (a process crash) drops every task of an owner right away, in spawn
//!   order. Tasks that those `Drop`s spawn **for the same owner are cancelled too** (the killed
//!   process cannot keep running), up to 64 rounds of drop-spawns-task chains; tasks spawned for
//!   other owners are kept and run normally. A task of that owner being polled at that moment (the
//!   process killing itself) is dropped when its poll returns.
//! - [`Executor::shutdown`], which dropping the [`Executor`] calls, closes the executor and drops
//!   every task. Once closed, a spawn (for instance from a `Drop` running during the shutdown)
//!   does not start: its future is dropped at once and its handle resolves to `Cancelled`. Nothing
//!   outlives the executor into the next seed.
//!
//! Handles of tasks dropped by any of these resolve to [`JoinError::Cancelled`] after the future
//! was dropped.

mod ahead;
mod drain;
mod hint;
mod join;
mod mark;
mod names;
mod observe;
mod provider;
mod state;
mod wait;
mod waker;

pub(crate) use hint::with_hint;

use std::fmt;
use std::future::Future;
use std::sync::Arc;
use std::task::Waker;

use moonpool_core::{JoinError, JoinHandle};
use rand_chacha::ChaCha8Rng;

pub use observe::{PollEnd, PollObserver};
pub use provider::{SimTaskProvider, YieldNow, yield_now};
pub use wait::{CLOCK_SPIN_READS, UNSCHEDULED_WAIT, WaitReason};
pub(crate) use wait::{TaskRef, note_clock_read, note_wait, own_task};

use crate::run_lock;
use join::{JoinCell, SimJoin};
use state::{BoxFuture, Mark, Shared, Task};
use waker::{NoJoin, TaskCell, TaskWaker};

/// How many steps (polls and cancellations) one drain may take before it is reported as a busy
/// loop.
pub const DEFAULT_POLL_BOUND: u64 = 1_000_000;

/// Most live tasks in one executor by default (see [`Executor::set_task_limit`]).
pub const DEFAULT_TASK_LIMIT: usize = 100_000;

/// How many tasks a [`ExecutorError::PollBoundExceeded`] names.
const BUSIEST_REPORTED: usize = 5;

/// A simulated process that owns tasks; [`Executor::kill_owner`] drops them all at once.
///
/// Tasks with no owner (`None`) are the workloads' and the simulator's own.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ProcessId(pub u32);

impl fmt::Display for ProcessId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "process#{}", self.0)
    }
}

/// A task's unique id within one executor, in spawn order (never reused).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TaskId(pub u64);

impl fmt::Display for TaskId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "task#{}", self.0)
    }
}

/// A live task, as listed in hang reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskInfo {
    /// Its id.
    pub id: TaskId,
    /// The name given at spawn.
    pub name: String,
    /// The process it belongs to; `None` for workload and system tasks.
    pub owner: Option<ProcessId>,
}

/// A panic caught by the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskPanic {
    /// The task's id.
    pub id: TaskId,
    /// The task's name.
    pub task: String,
    /// The task's owner.
    pub owner: Option<ProcessId>,
    /// The panic message.
    pub message: String,
    /// True when the task's handle had been dropped, so nobody else will see this panic.
    pub detached: bool,
    /// True when the panic came from the future's `Drop` while the executor dropped it (abort,
    /// kill, shutdown) rather than from a poll.
    pub during_drop: bool,
}

/// What one [`Executor::run_until_stalled`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DrainStats {
    /// Futures polled.
    pub polls: u64,
    /// Tasks that completed.
    pub completed: u64,
    /// Tasks that panicked.
    pub panicked: u64,
    /// Aborted tasks whose futures this drain dropped.
    pub cancelled: u64,
    /// Random numbers drawn to pick tasks.
    pub random_draws: u64,
    /// True when panics were recorded and not yet taken ([`Executor::take_panics`]) at the end
    /// of the drain: panicked polls, panicking `Drop`s, and panics whose handle was dropped
    /// unread.
    pub panics_pending: bool,
    /// A hash of the ids of the tasks polled, in order: two drains that ran the same tasks in the
    /// same order have the same hash (folded into the world's run fingerprint).
    pub schedule_hash: u64,
}

/// Why a drain failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ExecutorError {
    /// The drain took more steps than the bound: some tasks keep each other (or themselves) ready
    /// forever, e.g. `loop { yield_now().await }`. The tasks stay in the executor.
    #[error("a drain exceeded its bound of {polls} polls (busy loop?); most polled tasks: {}", format_busiest(.busiest))]
    PollBoundExceeded {
        /// Steps taken by the drain (polls plus cancellations).
        polls: u64,
        /// The tasks polled most during the drain, with their poll counts, most polled first.
        busiest: Vec<(TaskInfo, u64)>,
    },
    /// A spawn would have made more live tasks than the [task limit](Executor::set_task_limit):
    /// something spawns without bound. The spawn was refused (its handle resolves to
    /// `Cancelled`).
    #[error("{0}")]
    TaskLimitExceeded(Box<TaskLimitExceeded>),
    /// `run_until_stalled` was called while a drain was already running (from inside a task).
    #[error("run_until_stalled called while the executor is already draining")]
    AlreadyDraining,
}

/// The details of [`ExecutorError::TaskLimitExceeded`] (boxed: the error travels through the
/// drain's hot path, which must stay small).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a spawn of '{refused}' would exceed the limit of {limit} live tasks; spawned by {}; most common live tasks: {}", spawner.as_ref().map_or("no task (outside a poll)".to_string(), |t| format!("'{}'", t.name)), format_counts(.most_common))]
#[non_exhaustive]
pub struct TaskLimitExceeded {
    /// The limit.
    pub limit: usize,
    /// The name of the task whose spawn was refused.
    pub refused: String,
    /// The task that tried to spawn it, if the spawn came from inside a poll.
    pub spawner: Option<TaskInfo>,
    /// The most common names among the live tasks, with their counts.
    pub most_common: Vec<(String, usize)>,
}

fn format_counts(counts: &[(String, usize)]) -> String {
    counts
        .iter()
        .map(|(name, count)| format!("'{name}' x{count}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn format_busiest(busiest: &[(TaskInfo, u64)]) -> String {
    busiest
        .iter()
        .map(|(task, polls)| format!("'{}' ({polls} polls)", task.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A cheap, cloneable handle that spawns tasks on an [`Executor`] and inspects it.
///
/// `Clone + Send + Sync`; futures hold it (through [`SimTaskProvider`]) to spawn more tasks.
#[derive(Clone)]
pub struct Spawner {
    shared: Arc<Shared>,
}

impl fmt::Debug for Spawner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Spawner")
            .field("tasks", &self.task_count())
            .finish_non_exhaustive()
    }
}

impl Spawner {
    /// Runs `f` with the executor's state leased to the calling thread: spawns, wakes and drains
    /// on this thread meanwhile take no lock (see `run_lock`). A world holds it for a whole run.
    pub(crate) fn with_lease<R>(&self, f: impl FnOnce() -> R) -> R {
        self.shared.with_lease(f)
    }

    /// Spawns `future` as a task named `name` owned by `owner`. It is ready at once.
    ///
    /// After [`Executor::shutdown`] the task does not start: `future` is dropped right away and
    /// the handle resolves to [`JoinError::Cancelled`].
    pub fn spawn_in<F>(
        &self,
        owner: Option<ProcessId>,
        name: &str,
        future: F,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawn_named(owner, self.task_name(name, ""), future)
    }

    /// [`spawn_in`](Self::spawn_in) with a name from [`task_name`](Self::task_name).
    pub(crate) fn spawn_named<F>(
        &self,
        owner: Option<ProcessId>,
        shared_name: Arc<str>,
        future: F,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let name = Arc::clone(&shared_name);
        let build = move |waker: TaskWaker| {
            let cell = Arc::new(TaskCell {
                waker,
                join: JoinCell::new(name),
            });
            let completer = Arc::clone(&cell);
            let future: BoxFuture = Box::pin(async move {
                let output = future.await;
                completer.join.complete(Ok(output));
            });
            let built = Built {
                waker: Waker::from(Arc::clone(&cell)),
                cell: Arc::clone(&cell) as Arc<TaskCell<dyn join::Completer>>,
                future,
            };
            (built, cell)
        };
        let cell = match self.place(owner, Arc::clone(&shared_name), build) {
            Ok(cell) => cell,
            Err((id, build)) => {
                // The user's future (inside `build`) is dropped first, as a refused task's is.
                self.refuse(build, id, &shared_name, owner);
                let cell = Arc::new(TaskCell {
                    waker: TaskWaker::inert(id, Arc::clone(&self.shared)),
                    join: JoinCell::new(Arc::clone(&shared_name)),
                });
                cell.join.complete(Err(JoinError::Cancelled {
                    task: shared_name.to_string(),
                }));
                cell
            }
        };
        JoinHandle::from_raw_shared(shared_name, Box::new(SimJoin { cell, owner }))
    }

    /// Spawns `future`, already boxed, with no handle: the same as [`spawn_in`](Self::spawn_in)
    /// followed by dropping its handle at once (the same task id, slot, pick and verdicts: a
    /// panic is unobserved, a refused or cancelled task tells nobody), without the join cell, the
    /// handle and the second box around the future that those cost. A world's boots and
    /// workloads are spawned so.
    /// Its name comes from [`task_name`](Self::task_name).
    pub(crate) fn spawn_detached(
        &self,
        owner: Option<ProcessId>,
        name: Arc<str>,
        future: BoxFuture,
    ) {
        let build = move |waker: TaskWaker| {
            let cell = Arc::new(TaskCell {
                waker,
                join: NoJoin,
            });
            let built = Built {
                waker: Waker::from(Arc::clone(&cell)),
                cell,
                future,
            };
            (built, ())
        };
        // Spawned or refused, nobody is told: there is no handle.
        if let Err((id, build)) = self.place(owner, Arc::clone(&name), build) {
            self.refuse(build, id, &name, owner);
        }
    }

    /// The task name `name` followed by `suffix` (a process's main task is `<process>#main`),
    /// taken from the executor's recent names when it is one of them (then no string is made).
    pub(crate) fn task_name(&self, name: &str, suffix: &str) -> Arc<str> {
        self.shared.lock().names.get(name, suffix)
    }

    /// Gives a new task a slot and an id, builds it there with `build` (its cell, waker and
    /// future; moves and allocations only, no user code) and queues it; or, when the executor
    /// is shut down or at its task limit, gives `build` back with the id the task would have had
    /// (the caller drops it with [`refuse`](Self::refuse)). The generic part is only the call of
    /// `build`: the checks and the filling of the slot are shared by every spawn.
    fn place<X, B: FnOnce(TaskWaker) -> (Built, X)>(
        &self,
        owner: Option<ProcessId>,
        shared_name: Arc<str>,
        build: B,
    ) -> Result<X, (TaskId, B)> {
        let mut state = self.shared.lock();
        let (slot, id) = match state.reserve(&shared_name) {
            Ok(reserved) => reserved,
            Err(id) => return Err((id, build)),
        };
        let (built, extra) = build(TaskWaker::new(slot, id, Arc::clone(&self.shared)));
        self.install(state, slot, id, owner, shared_name, built);
        Ok(extra)
    }

    /// Drops a refused spawn's future (inside `build`), catching a panicking `Drop`.
    fn refuse<B>(&self, build: B, id: TaskId, name: &str, owner: Option<ProcessId>) {
        if self.shared.lock().closed {
            tracing::debug!(task = name, id = id.0, "spawn after shutdown; cancelled");
        }
        state::drop_guarded(&self.shared, build, id, name, owner, false);
    }

    /// Fills the slot `place` reserved with the task `built`, ready.
    fn install(
        &self,
        mut state: run_lock::Guard<'_, state::State>,
        slot: u32,
        id: TaskId,
        owner: Option<ProcessId>,
        shared_name: Arc<str>,
        built: Built,
    ) {
        let Built {
            cell,
            waker,
            future,
        } = built;
        let task = Task {
            id,
            name: Arc::clone(&shared_name),
            owner,
            parked: Some((future, waker)),
            cell,
            waiting_on: None,
        };
        if let Some(entry) = state.slots.get_mut(slot as usize) {
            entry.task = Some(task);
        }
        if let Some(mark) = state.marks.get_mut(slot as usize) {
            *mark = Mark::spawned(id);
        }
        state.live += 1;
        state.ready.push(ahead::Ready {
            slot,
            id,
            hints: ahead::Hints::default(),
        });
        if let Some(observer) = &state.observer {
            observer.spawned(id, &shared_name, owner);
        }
        drop(state);
        tracing::trace!(task = &*shared_name, id = id.0, owner = ?owner, "spawned");
        self.shared.name_slot(slot, id, shared_name, owner);
    }

    /// Replaces the generator the picks draw from (a split point of an exploration, or its
    /// replay: see `kernel::rng`).
    pub fn reseed(&self, rng: ChaCha8Rng) {
        self.shared.lock().rng = ahead::PickRng::new(rng);
    }

    /// A [`SimTaskProvider`] spawning tasks owned by `owner`.
    pub fn provider(&self, owner: Option<ProcessId>) -> SimTaskProvider {
        SimTaskProvider::new(self.clone(), owner)
    }

    /// Drops every task owned by `owner` (see [`Executor::kill_owner`]).
    pub fn kill_owner(&self, owner: Option<ProcessId>) -> usize {
        let count = self
            .shared
            .cancel_where("kill_owner", |task| task.owner == owner);
        tracing::debug!(owner = ?owner, count, "killed tasks of owner");
        count
    }

    /// True when some task is ready to be polled.
    pub fn has_ready(&self) -> bool {
        !self.shared.lock().ready.is_empty()
    }

    /// How many tasks are alive (ready, waiting or being polled).
    pub fn task_count(&self) -> usize {
        self.shared.lock().live
    }

    /// Every live task, sorted by id.
    pub fn live_tasks(&self) -> Vec<TaskInfo> {
        self.waiting_tasks()
            .into_iter()
            .map(|(task, _)| task)
            .collect()
    }

    /// The owner of the task being polled right now: `None` when no task is being polled,
    /// `Some(None)` for a task without an owner.
    pub fn current_owner(&self) -> Option<Option<ProcessId>> {
        let state = self.shared.lock();
        state
            .current
            .and_then(|(slot, id)| state.task(slot, id).map(|task| task.owner))
    }

    /// Polls started so far and the task being polled now, for a watchdog outside the world: a
    /// count that stops moving while a task stays current means that task spins inside one poll.
    ///
    /// Reads no executor state, only what each poll publishes, so it answers from another thread
    /// while a world runs (and holds its executor's state) without waiting.
    pub fn progress(&self) -> (u64, Option<TaskInfo>) {
        self.shared.progress()
    }

    /// Every live task with what it waited on when its last poll returned `Pending` (`None`: a
    /// wake-up the simulator does not schedule, or never polled yet), sorted by id.
    pub fn waiting_tasks(&self) -> Vec<(TaskInfo, Option<WaitReason>)> {
        let state = self.shared.lock();
        let mut tasks: Vec<(TaskInfo, Option<WaitReason>)> = state
            .slots
            .iter()
            .filter_map(|slot| slot.task.as_ref())
            .map(|task| (task.info(), task.waiting_on))
            .collect();
        drop(state);
        tasks.sort_unstable_by_key(|(task, _)| task.id);
        tasks
    }

    /// The task being polled right now, if called from inside a poll.
    pub fn current_task(&self) -> Option<TaskInfo> {
        let state = self.shared.lock();
        let (slot, id) = state.current?;
        state.task(slot, id).map(Task::info)
    }
}

/// What a spawn builds once its task has a slot (see [`Spawner::place`]).
struct Built {
    cell: Arc<TaskCell<dyn join::Completer>>,
    /// `Waker::from` the cell.
    waker: Waker,
    future: BoxFuture,
}

/// An executor's state kept by a spare (see [`Executor::keep_for_reuse`]).
pub(crate) struct KeptExecutor(Arc<Shared>);

/// Seeded, single-threaded executor (see the [module docs](self)).
///
/// Dropping it drops every task ([`shutdown`](Self::shutdown)).
pub struct Executor {
    spawner: Spawner,
}

impl fmt::Debug for Executor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.spawner.shared.lock();
        f.debug_struct("Executor")
            .field("tasks", &state.live)
            .field("ready", &state.ready.len())
            .field("closed", &state.closed)
            .finish_non_exhaustive()
    }
}

impl Executor {
    /// An empty executor whose picks draw from `rng`.
    pub fn new(rng: ChaCha8Rng) -> Self {
        Self {
            spawner: Spawner {
                shared: Arc::new(Shared::new(rng)),
            },
        }
    }

    /// A reference to this executor's state for a spare kept for the next world of the thread
    /// (see `world::spare`): [`Executor::renewed`] reuses its memory once nothing else refers
    /// to it.
    pub(crate) fn keep_for_reuse(&self) -> KeptExecutor {
        KeptExecutor(Arc::clone(&self.spawner.shared))
    }

    /// An executor the same as [`Executor::new`]`(rng)` in everything but the memory of its task
    /// lists and its identity (the kept executor's), made from `kept` when nothing else refers
    /// to the kept executor any more and it holds no task (see `Shared::renew` for why nothing
    /// of its tasks can reach the new one then), and true; otherwise a new executor (`kept` is
    /// dropped), and false.
    pub(crate) fn renewed(kept: KeptExecutor, rng: ChaCha8Rng) -> (Self, bool) {
        let mut shared = kept.0;
        if let Some(state) = Arc::get_mut(&mut shared)
            && state.can_renew()
        {
            state.renew(rng);
            let executor = Self {
                spawner: Spawner { shared },
            };
            return (executor, true);
        }
        (Self::new(rng), false)
    }

    /// A handle to spawn tasks and inspect the executor from anywhere, including inside tasks.
    pub fn spawner(&self) -> Spawner {
        self.spawner.clone()
    }

    /// A [`SimTaskProvider`] spawning tasks owned by `owner`.
    pub fn task_provider(&self, owner: Option<ProcessId>) -> SimTaskProvider {
        self.spawner.provider(owner)
    }

    /// This executor's identity, as [`TaskRef::executor`] names it.
    pub(crate) fn identity(&self) -> usize {
        self.spawner.shared.identity()
    }

    /// Whether a wake from another thread waits for the next drain (which queues its task).
    pub(crate) fn has_remote_wakes(&self) -> bool {
        self.spawner.shared.has_remote_wakes()
    }

    /// Wakes `task` (the same as waking its own waker); a task of another executor is ignored.
    #[inline]
    pub(crate) fn wake_task(&self, task: TaskRef) {
        self.wake_task_hinted(task, ahead::Hints::default());
    }

    /// [`wake_task`](Self::wake_task), with the addresses the task will read first when it is
    /// polled, which the pick before it prefetches (see `ahead`); any address will do.
    #[inline]
    pub(crate) fn wake_task_hinted(&self, task: TaskRef, hints: ahead::Hints) {
        if task.executor == self.identity() {
            self.spawner.shared.wake_task(task.slot, task.id, hints);
        }
    }

    /// Spawns a task (see [`Spawner::spawn_in`]).
    pub fn spawn_in<F>(
        &self,
        owner: Option<ProcessId>,
        name: &str,
        future: F,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        self.spawner.spawn_in(owner, name, future)
    }

    /// Spawns a boxed future with no handle (see [`Spawner::spawn_detached`]).
    pub(crate) fn spawn_detached(
        &self,
        owner: Option<ProcessId>,
        name: Arc<str>,
        future: BoxFuture,
    ) {
        self.spawner.spawn_detached(owner, name, future);
    }

    /// A task name from the executor's recent names (see [`Spawner::task_name`]).
    pub(crate) fn task_name(&self, name: &str, suffix: &str) -> Arc<str> {
        self.spawner.task_name(name, suffix)
    }

    /// Installs (or with `None` removes) the observer of every later spawn and poll.
    pub fn set_observer(&self, observer: Option<Arc<dyn PollObserver>>) {
        self.spawner.shared.lock().observer = observer;
    }

    /// Sets how many steps (polls plus cancellations) one drain may take.
    pub fn set_poll_bound(&self, bound: u64) {
        self.spawner.shared.lock().poll_bound = bound;
    }

    /// How many steps one drain may take.
    pub fn poll_bound(&self) -> u64 {
        self.spawner.shared.lock().poll_bound
    }

    /// Sets the most live tasks at once (at least 1): a spawn past it is refused (its handle
    /// resolves to `Cancelled`) and the drain fails with [`ExecutorError::TaskLimitExceeded`].
    pub fn set_task_limit(&self, limit: usize) {
        self.spawner.shared.lock().task_limit = limit.max(1);
    }

    /// Polls ready tasks, each picked uniformly at random among the ready ones, until none is
    /// ready.
    ///
    /// Tasks woken or spawned during the drain run in it too. Fails, leaving the remaining tasks
    /// in place, when the drain would exceed the [poll bound](Self::set_poll_bound) or when
    /// called from inside a task of this executor.
    pub fn run_until_stalled(&self) -> Result<DrainStats, ExecutorError> {
        self.drain(None)
    }

    /// Like [`run_until_stalled`](Self::run_until_stalled), for a world whose clock reads
    /// `instant` (any monotonic count, e.g. nanoseconds): the [poll bound](Self::set_poll_bound)
    /// then counts steps since the instant last changed, across drains, so a loop that keeps the
    /// clock still over many drains (a zero sleep re-armed forever) is a busy loop too.
    pub fn run_until_stalled_at(&self, instant: u64) -> Result<DrainStats, ExecutorError> {
        self.drain(Some(instant))
    }

    /// The panics caught since the last call, oldest first.
    pub fn take_panics(&self) -> Vec<TaskPanic> {
        std::mem::take(&mut self.spawner.shared.lock().panics)
    }

    /// Drops every task owned by `owner` right away, as a crash of that process would, and
    /// returns how many tasks were dropped. Their handles resolve to [`JoinError::Cancelled`].
    ///
    /// Futures are dropped in spawn order, without the executor's lock held. Tasks spawned by
    /// those `Drop`s for the same owner are dropped too; tasks spawned for other owners survive.
    /// A task of `owner` being polled right now (a process killing itself) is counted and dropped
    /// as soon as its poll returns.
    pub fn kill_owner(&self, owner: Option<ProcessId>) -> usize {
        self.spawner.kill_owner(owner)
    }

    /// True when some task is ready to be polled.
    pub fn has_ready(&self) -> bool {
        self.spawner.has_ready()
    }

    /// How many tasks are alive.
    pub fn task_count(&self) -> usize {
        self.spawner.task_count()
    }

    /// Every live task, sorted by id (for hang reports).
    pub fn live_tasks(&self) -> Vec<TaskInfo> {
        self.spawner.live_tasks()
    }

    /// The task being polled right now (meaningful from inside a poll).
    pub fn current_task(&self) -> Option<TaskInfo> {
        self.spawner.current_task()
    }

    /// Closes the executor and drops every task; returns how many were dropped.
    ///
    /// Handles resolve to [`JoinError::Cancelled`]. Later spawns (for instance from the `Drop` of
    /// a future being dropped here) do not start: their future is dropped at once and their
    /// handle resolves to `Cancelled`. Idempotent; dropping the executor calls it.
    pub fn shutdown(&self) -> usize {
        let shared: &Shared = &self.spawner.shared;
        shared.lock().closed = true;
        // Spawns are refused from here on, so one round empties the slab (but for a task being
        // polled right now, which goes when its poll returns).
        shared.cancel_where("shutdown", |_| true)
    }

    /// True once [`shutdown`](Self::shutdown) ran.
    pub fn is_shut_down(&self) -> bool {
        self.spawner.shared.lock().closed
    }

    /// How many random numbers task picks have drawn since the executor was built.
    pub fn random_draws(&self) -> u64 {
        self.spawner.shared.lock().random_draws
    }

    /// A copy of the pick RNG in its current state (for diagnostics and tests).
    pub fn rng_snapshot(&self) -> ChaCha8Rng {
        self.spawner.shared.lock().rng.snapshot()
    }
}

impl Drop for Executor {
    fn drop(&mut self) {
        self.shutdown();
    }
}
