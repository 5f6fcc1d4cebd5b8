//! One drain of the executor: pick a ready task at random (seeded), poll it without the lock,
//! settle the outcome under the lock that picks the next one; bounds, cancellations, panics.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::task::{Context, Poll, Waker};

use moonpool_core::task::panic_message;

use super::ahead::{Ready, guess_index};
use super::state::{self, BoxFuture, Removed, Resolution, Shared, State, Task};
use super::{
    BUSIEST_REPORTED, DrainStats, Executor, ExecutorError, PollEnd, TaskId, TaskInfo,
    TaskLimitExceeded, TaskPanic, WaitReason, wait,
};
use crate::prefetch::prefetch;

/// The result of a poll, applied under the lock that picks the next task.
struct Polled {
    slot: u32,
    id: TaskId,
    future: BoxFuture,
    /// The task's waker, moved out of its slot for the poll.
    waker: Waker,
    outcome: Outcome,
    /// What the poll said it waits on, when it returned `Pending`.
    waiting_on: Option<WaitReason>,
}

enum Outcome {
    Pending,
    Completed,
    /// Boxed: a panic is rare, and a `String` would make every poll's outcome a word longer.
    Panicked(Box<str>),
}

/// What a drain does next.
enum Next {
    Poll {
        slot: u32,
        id: TaskId,
        future: BoxFuture,
        waker: Waker,
    },
    /// Boxed: a cancellation is rare, and a large variant would make every pick copy it.
    Cancel(Box<Removed>),
}

/// Clears the draining state on every exit from a drain.
struct DrainGuard<'a> {
    shared: &'a Shared,
    armed: bool,
}

impl Drop for DrainGuard<'_> {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = self.shared.lock();
        state.draining = false;
        state.current = None;
    }
}

impl Executor {
    pub(super) fn drain(&self, instant: Option<u64>) -> Result<DrainStats, ExecutorError> {
        let shared: &Shared = &self.spawner.shared;
        let mut stats = DrainStats::default();
        // The first lock starts the drain and picks the first task; when nothing is ready the
        // drain ends there without touching the draining flag at all.
        let (epoch, draws_before, first, observer) = {
            let mut state = shared.lock();
            if state.draining {
                return Err(ExecutorError::AlreadyDraining);
            }
            shared.take_remote_wakes(&mut state);
            if state.ready.is_empty() {
                return Ok(stats);
            }
            state.draining = true;
            match instant {
                None => state.begin_instant(),
                Some(at) if state.instant != Some(at) => {
                    state.instant = Some(at);
                    state.begin_instant();
                }
                Some(_) => {}
            }
            let (epoch, draws_before) = (state.epoch, state.random_draws);
            let first = pick(&mut state, epoch);
            stats.random_draws = state.random_draws - draws_before;
            (epoch, draws_before, first, state.observer.clone())
        };
        // Resets the draining state on an error or a panic; the normal end resets it under the
        // lock of the last pick and disarms the guard.
        let mut guard = DrainGuard {
            shared,
            armed: true,
        };
        let mut next = first;
        loop {
            // Set when a poll's task retired and was finished after the next pick.
            let mut retired = false;
            let leftover = match next? {
                None => return Ok(stats),
                Some(Next::Cancel(removed)) => {
                    // Finished before the next pick, which then sees whatever it woke.
                    stats.cancelled += 1;
                    next = cancel_then_pick(shared, *removed, epoch, draws_before, &mut stats);
                    if matches!(next, Ok(None)) {
                        guard.armed = false;
                    }
                    None
                }
                Some(Next::Poll {
                    slot,
                    id,
                    mut future,
                    waker,
                }) => {
                    stats.polls += 1;
                    stats.schedule_hash =
                        (stats.schedule_hash ^ id.0).wrapping_mul(0x0000_0100_0000_01b3);
                    shared.publish_poll(slot, id);
                    let mut cx = Context::from_waker(&waker);
                    if let Some(observer) = &observer {
                        observer.poll_begin(id);
                    }
                    wait::begin_poll(
                        wait::TaskRef {
                            executor: shared.identity(),
                            slot,
                            id,
                        },
                        &waker,
                    );
                    let outcome =
                        match catch_unwind(AssertUnwindSafe(|| future.as_mut().poll(&mut cx))) {
                            Ok(Poll::Pending) => Outcome::Pending,
                            Ok(Poll::Ready(())) => Outcome::Completed,
                            Err(payload) => {
                                let message = panic_message(&*payload);
                                state::discard_payload(payload);
                                Outcome::Panicked(message.into_boxed_str())
                            }
                        };
                    shared.publish_idle();
                    if let Some(observer) = &observer {
                        observer.poll_end(
                            id,
                            match outcome {
                                Outcome::Pending => PollEnd::Pending,
                                Outcome::Completed => PollEnd::Completed,
                                Outcome::Panicked(_) => PollEnd::Panicked,
                            },
                        );
                    }
                    let waiting_on = wait::end_poll();
                    // Settle the poll and pick the next task under one lock, straight from the
                    // poll's values; a task that retired is dropped and resolved after it,
                    // outside the lock.
                    let mut state = shared.lock();
                    let leftover = settle(
                        &mut state,
                        Polled {
                            slot,
                            id,
                            future,
                            waker,
                            outcome,
                            waiting_on,
                        },
                        &mut stats,
                    );
                    next = pick_next(shared, &mut state, epoch, draws_before, &mut stats);
                    if matches!(next, Ok(None)) {
                        guard.armed = false;
                    }
                    leftover
                }
            };
            if let Some(leftover) = leftover {
                leftover.finish(shared);
                retired = true;
            }
            if retired && matches!(next, Ok(None)) {
                // Retiring a task outside the lock ran code after the final pick: its future's
                // `Drop` may have panicked, and resolving its handle (a panic, a cancellation) may
                // have woken a task, which this drain must still run.
                let mut state = shared.lock();
                stats.panics_pending |= !state.panics.is_empty();
                // That code may also have woken a task from another thread (a `Drop` that joins
                // a thread which wakes): those wakes wait in the remote queue.
                shared.take_remote_wakes(&mut state);
                if state.ready.is_empty() {
                    return Ok(stats);
                }
                state.draining = true;
                guard.armed = true;
                next = pick(&mut state, epoch);
                stats.random_draws = state.random_draws - draws_before;
                if matches!(next, Ok(None)) {
                    state.draining = false;
                    state.current = None;
                    guard.armed = false;
                    return Ok(stats);
                }
            }
        }
    }
}

/// After a poll's settle (or a cancellation): takes the remote wakes and picks the next task;
/// when none is left, ends the drain's draining state (the caller then disarms its guard).
#[inline(always)]
fn pick_next(
    shared: &Shared,
    state: &mut State,
    epoch: u64,
    draws_before: u64,
    stats: &mut DrainStats,
) -> Result<Option<Next>, ExecutorError> {
    shared.take_remote_wakes(state);
    let next = pick(state, epoch);
    stats.random_draws = state.random_draws - draws_before;
    if matches!(next, Ok(None)) {
        stats.panics_pending = !state.panics.is_empty();
        state.draining = false;
        state.current = None;
    }
    next
}

/// A cancelled task finished (outside the lock), then the next pick: out of line, as a
/// cancellation is rare and the poll's path keeps the one inlined lock and pick.
#[cold]
#[inline(never)]
fn cancel_then_pick(
    shared: &Shared,
    removed: Removed,
    epoch: u64,
    draws_before: u64,
    stats: &mut DrainStats,
) -> Result<Option<Next>, ExecutorError> {
    removed.finish(shared);
    let mut state = shared.lock();
    pick_next(shared, &mut state, epoch, draws_before, stats)
}

/// What a poll left to do outside the lock.
enum Leftover {
    /// The task retired: drop its future, resolve its handle.
    ///
    /// Boxed: a task retires once, but a poll's leftover is moved out of the block that settles
    /// it on every poll, and with the task inline (150 bytes) that move was a `memcpy` call per
    /// poll even when there was nothing to move.
    Retired(Box<Removed>),
    /// The polled task vanished from its slot (unreachable: nothing removes a task while it is
    /// polled); its future (and its waker, which may hold the last reference to the task's
    /// unread output) is still dropped outside the lock.
    Orphan(BoxFuture, Waker),
}

impl Leftover {
    fn finish(self, shared: &Shared) {
        match self {
            Leftover::Retired(removed) => removed.finish(shared),
            Leftover::Orphan(future, waker) => {
                drop(future);
                drop(waker);
            }
        }
    }
}

/// Applies the outcome of a poll: the future goes back into its slot, or the task retires.
///
/// Inlined into its one caller: passed by pointer, the poll's small values (written word by
/// word) are read back as wider loads, a store-forwarding stall on every poll.
#[inline(always)]
fn settle(state: &mut State, polled: Polled, stats: &mut DrainStats) -> Option<Leftover> {
    let Polled {
        slot,
        id,
        future,
        waker,
        outcome,
        waiting_on,
    } = polled;
    state.current = None;
    let Some((mark, task)) = state.entry(slot, id) else {
        return Some(Leftover::Orphan(future, waker));
    };
    let resolution = match outcome {
        Outcome::Pending if !mark.abort_requested => {
            task.parked = Some((future, waker));
            task.waiting_on = waiting_on;
            return None;
        }
        Outcome::Pending => Resolution::Cancelled,
        Outcome::Completed => {
            stats.completed += 1;
            Resolution::Completed
        }
        Outcome::Panicked(message) => {
            stats.panicked += 1;
            Resolution::Panicked(message.into_string())
        }
    };
    let Some(mut task) = state.remove(slot, id) else {
        return Some(Leftover::Orphan(future, waker));
    };
    if let Resolution::Panicked(message) = &resolution {
        tracing::debug!(task = %task.name, id = id.0, %message, "task panicked");
        state.panics.push(TaskPanic {
            id,
            task: task.name.to_string(),
            owner: task.owner,
            message: message.clone(),
            detached: task.is_detached(),
            during_drop: false,
        });
    }
    task.parked = Some((future, waker));
    Some(Leftover::Retired(Box::new(Removed { task, resolution })))
}

/// Picks the next ready task, or `None` when nothing is ready.
///
/// Inlined: returned through memory, the pick (written field by field) is read back as wider
/// loads by the caller, a store-forwarding stall on every poll. The errors are built out of line.
#[inline(always)]
fn pick(state: &mut State, epoch: u64) -> Result<Option<Next>, ExecutorError> {
    if state.task_limit_hit.is_some() {
        return Err(task_limit_error(state));
    }
    loop {
        let len = state.ready.len();
        if len == 0 {
            return Ok(None);
        }
        let steps = state.instant_steps;
        if steps >= state.poll_bound {
            return Err(poll_bound_error(state, epoch));
        }
        let index = if len == 1 { 0 } else { state.random_index(len) };
        let Ready { slot, id, .. } = state.ready.swap_remove(index);
        let Some((mark, task)) = state.entry(slot, id) else {
            // A stale entry; removal unqueues tasks, so this does not happen.
            continue;
        };
        mark.queued = false;
        if mark.abort_requested {
            state.instant_steps += 1;
            return Ok(state.remove(slot, id).map(|task| {
                Next::Cancel(Box::new(Removed {
                    task,
                    resolution: Resolution::Cancelled,
                }))
            }));
        }
        let Some((future, waker)) = task.parked.take() else {
            // Being polled (only possible from a nested drain, which is refused).
            continue;
        };
        let epoch = epoch as u32;
        if mark.epoch != epoch {
            mark.epoch = epoch;
            mark.drain_polls = 0;
        }
        mark.drain_polls += 1;
        state.current = Some((slot, id));
        state.instant_steps += 1;
        prefetch_ahead(state);
        return Ok(Some(Next::Poll {
            slot,
            id,
            future,
            waker,
        }));
    }
}

/// Fewer live tasks than this and the drain does not prefetch: their slots, marks and futures
/// (and the halves they read) mostly stay in the caches between their polls, so a prefetch
/// would only cost its instructions, about 100 a pick (`sim_bench timers1`, 100 sleeping
/// tasks, took 15% more instructions with prefetching from 64 tasks up).
const PREFETCH_MIN_LIVE: usize = 512;

/// Before a poll in a world of many tasks: prefetches what the next picks will read.
#[inline(always)]
fn prefetch_ahead(state: &mut State) {
    if state.live >= PREFETCH_MIN_LIVE {
        prefetch_picks(state);
    }
}

/// Guesses the next two picks from the draws they will use (see `ahead`) and starts loading
/// what they will read: the future of the next one (its slot was prefetched one pick ago), and
/// the slot, the mark and the hinted memory of the one after. Reads nothing a pick decides on.
#[inline(never)]
fn prefetch_picks(state: &mut State) {
    let len = state.ready.len();
    if len == 0 {
        return;
    }
    let first = if len == 1 {
        0
    } else {
        guess_index(state.rng.peek(0), len)
    };
    if let Some(&Ready { slot, .. }) = state.ready.get(first)
        && let Some(Some(task)) = state.slots.get(slot as usize).map(|s| s.task.as_ref())
        && let Some((future, _)) = &task.parked
    {
        prefetch_two_lines(std::ptr::from_ref(&**future).cast::<u8>() as usize);
    }
    if len < 2 {
        return;
    }
    // The pick of `first` moves the last entry into its place.
    let rest = len - 1;
    let second = if rest == 1 {
        0
    } else {
        guess_index(state.rng.peek(1), rest)
    };
    let second = if second == first { len - 1 } else { second };
    if let Some(&Ready { slot, hints, .. }) = state.ready.get(second) {
        for hint in hints {
            if hint != 0 {
                prefetch_two_lines(hint);
            }
        }
        if let Some(s) = state.slots.get(slot as usize) {
            prefetch(s);
        }
        if let Some(m) = state.marks.get(slot as usize) {
            prefetch(m);
        }
    }
}

/// Prefetches the line at `address` and the one after it.
#[inline(always)]
fn prefetch_two_lines(address: usize) {
    prefetch(address as *const u8);
    prefetch(address.wrapping_add(64) as *const u8);
}

/// The refused spawn that ends the drain (see `State::task_limit_hit`).
#[cold]
#[inline(never)]
fn task_limit_error(state: &mut State) -> ExecutorError {
    let (refused, spawner) = state.task_limit_hit.take().unwrap_or_default();
    ExecutorError::TaskLimitExceeded(Box::new(TaskLimitExceeded {
        limit: state.task_limit,
        refused,
        spawner,
        most_common: most_common_names(state),
    }))
}

/// The poll bound of this instant was reached.
#[cold]
#[inline(never)]
fn poll_bound_error(state: &State, epoch: u64) -> ExecutorError {
    ExecutorError::PollBoundExceeded {
        polls: state.instant_steps,
        busiest: busiest(state, epoch),
    }
}

/// The most common names among live tasks, most common first.
fn most_common_names(state: &State) -> Vec<(String, usize)> {
    let mut counts: std::collections::BTreeMap<&str, usize> = std::collections::BTreeMap::new();
    for (task, _) in state.live() {
        *counts.entry(&task.name).or_insert(0) += 1;
    }
    let mut counts: Vec<(String, usize)> = counts
        .into_iter()
        .map(|(name, count)| (name.to_string(), count))
        .collect();
    counts.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    counts.truncate(BUSIEST_REPORTED);
    counts
}

/// The tasks polled most in drain `epoch`, most polled first.
fn busiest(state: &State, epoch: u64) -> Vec<(TaskInfo, u64)> {
    let epoch = epoch as u32;
    let mut polled: Vec<(&Task, u64)> = state
        .live()
        .filter(|(_, mark)| mark.epoch == epoch && mark.drain_polls > 0)
        .map(|(task, mark)| (task, mark.drain_polls))
        .collect();
    polled.sort_unstable_by(|a, b| b.1.cmp(&a.1).then(a.0.id.cmp(&b.0.id)));
    polled
        .into_iter()
        .take(BUSIEST_REPORTED)
        .map(|(task, polls)| (task.info(), polls))
        .collect()
}
