//! The seed scheduler: runs the seeds of a plan on worker threads and hands their results on in
//! seed order, so that what the report sees does not depend on the number of threads.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::mpsc::{Receiver, Sender};
use std::sync::{Arc, Condvar, Mutex, PoisonError};
use std::time::{Duration, Instant};

use super::seed::{run_seed, run_twice};
use super::spec::Spec;
use crate::error::SimError;
use crate::world::RunSummary;

/// What one seed gives the report: its summary (if its world was built), its failure (if any) and
/// the wall time it took.
pub(super) type SeedResult = (Option<RunSummary>, Option<SimError>, Duration);

/// The `k`-th seed to run: its index in the global seed sequence and the seed; `None` past the
/// end.
pub(super) type NthSeed<'a> = &'a (dyn Fn(usize) -> Option<(usize, u64)> + Sync);

/// Takes each seed's result, in order; returns `true` to stop. The result stays the scheduler's:
/// it goes back to the thread that made it, to be freed there.
pub(super) type Consume<'a> = &'a mut dyn FnMut(usize, u64, &SeedResult) -> bool;

/// Runs one seed of a spec (the worker's own copy, see [`Spec::for_worker`]) and measures it.
type RunOne<'a> = &'a (dyn Fn(&Arc<Spec>, u64) -> SeedResult + Sync);

/// A finished seed sent by a worker: `(k, index, seed, result, worker)`.
type Finished = (usize, usize, u64, SeedResult, usize);

/// Consumed results on their way back to the worker that made them.
type Returned = Vec<SeedResult>;

/// Runs the seeds `nth(0)`, `nth(1)`, ... on up to `jobs` threads and hands each result to
/// `consume` in order, until `consume` says stop (returns `true`) or `nth` runs out (returns
/// `false` then).
///
/// Workers pull the next seed as soon as they are free and may run at most a window ahead of the
/// results consumed; they send their results in small batches (see [`BATCH`]). Results past a
/// stop are discarded, so what `consume` sees does not depend on the number of threads.
pub(super) fn run_seeds(
    spec: &Arc<Spec>,
    jobs: usize,
    check_determinism: bool,
    nth: NthSeed<'_>,
    consume: Consume<'_>,
) -> bool {
    let run = |spec: &Arc<Spec>, seed: u64| -> SeedResult {
        let started = Instant::now();
        let (summary, error) = if check_determinism {
            run_twice(spec, seed)
        } else {
            run_seed(spec, seed, false)
        };
        (summary, error, started.elapsed())
    };
    if jobs <= 1 {
        return run_serially(spec, &run, nth, consume);
    }
    match run_in_parallel(spec, jobs, &run, nth, consume) {
        Some(stopped) => stopped,
        // No thread could be started: run serially rather than not at all.
        None => run_serially(spec, &run, nth, consume),
    }
}

/// One seed after the other on this thread.
fn run_serially(spec: &Arc<Spec>, run: RunOne<'_>, nth: NthSeed<'_>, consume: Consume<'_>) -> bool {
    let mut k = 0;
    while let Some((index, seed)) = nth(k) {
        k += 1;
        if consume(index, seed, &run(spec, seed)) {
            return true;
        }
    }
    false
}

/// Results a worker keeps before sending them on: the consuming thread then wakes once per
/// batch instead of once per seed (with a wake, a broadcast and a context switch per seed, two
/// threads did about 0.7x the work per CPU-second of one on small seeds; batched, about 0.95x).
/// With 16 a batch, seeds of 30 us woke the consumer 4,000 times a second on a 2-core machine
/// whose both cores run workers: each wake preempts a worker (a context switch there and back,
/// about 3% of the samples of a 2-thread run); 64 wakes it a quarter as often, and
/// [`BATCH_AGE`] still bounds how late a result arrives.
const BATCH: usize = 64;

/// A worker sends what it holds at least this often, so the consumer (progress, a time limit,
/// a stop at the first failure) is never more than this late.
const BATCH_AGE: Duration = Duration::from_millis(20);

/// What the workers and the consuming thread share.
struct Shared {
    /// The next `k` a free worker takes.
    next: AtomicUsize,
    /// Set once `consume` has said stop.
    stop: AtomicBool,
    /// How many results have been consumed (read by workers without a lock).
    consumed: AtomicUsize,
    /// Workers waiting for the window to move; the consumer notifies only when there are some.
    waiters: AtomicUsize,
    /// Where workers wait for the window to move.
    gate: (Mutex<()>, Condvar),
    /// How far ahead of the results consumed a worker may start a seed.
    window: usize,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// True when seed `k` may start: within the window of the results consumed.
    fn in_window(&self, k: usize) -> bool {
        k < self.consumed.load(Ordering::SeqCst) + self.window
    }

    /// Waits until seed `k` is within the window of the results consumed (or a stop).
    fn wait_for_window(&self, k: usize) {
        if self.in_window(k) {
            return;
        }
        let mut guard = self.gate.0.lock().unwrap_or_else(PoisonError::into_inner);
        // Counted before the condition is read again: a consumer that moves the window after
        // that read sees the count (both are sequentially consistent) and notifies under the
        // lock, which this thread releases only inside `wait`.
        self.waiters.fetch_add(1, Ordering::SeqCst);
        while !self.in_window(k) && !self.stopped() {
            guard = self
                .gate
                .1
                .wait(guard)
                .unwrap_or_else(PoisonError::into_inner);
        }
        self.waiters.fetch_sub(1, Ordering::SeqCst);
    }

    fn set_consumed(&self, count: usize) {
        self.consumed.store(count, Ordering::SeqCst);
        if self.waiters.load(Ordering::SeqCst) > 0 {
            let _guard = self.gate.0.lock().unwrap_or_else(PoisonError::into_inner);
            self.gate.1.notify_all();
        }
    }

    fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        let _guard = self.gate.0.lock().unwrap_or_else(PoisonError::into_inner);
        self.gate.1.notify_all();
    }
}

/// `jobs` worker threads; `None` if none could be started.
fn run_in_parallel(
    spec: &Arc<Spec>,
    jobs: usize,
    run: RunOne<'_>,
    nth: NthSeed<'_>,
    consume: Consume<'_>,
) -> Option<bool> {
    let shared = Shared {
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        consumed: AtomicUsize::new(0),
        waiters: AtomicUsize::new(0),
        gate: (Mutex::new(()), Condvar::new()),
        // Room for every worker's batch several times over, so that a worker rarely waits for
        // another's batch to be sent.
        window: jobs * BATCH * 4,
    };
    let (sender, receiver) = std::sync::mpsc::channel::<Vec<Finished>>();
    std::thread::scope(|scope| {
        let mut started_workers = 0;
        let mut returns = Vec::with_capacity(jobs);
        for worker in 0..jobs {
            let (sender, shared) = (sender.clone(), &shared);
            let (give_back, taken_back) = std::sync::mpsc::channel::<Returned>();
            let spawned = std::thread::Builder::new()
                .name(format!("moonpool-seeds-{worker}"))
                .spawn_scoped(scope, move || {
                    let own = Arc::new(spec.for_worker());
                    let home = Home {
                        worker,
                        sender: &sender,
                        returned: &taken_back,
                    };
                    work(shared, &own, run, nth, &home);
                });
            if spawned.is_ok() {
                started_workers += 1;
            }
            returns.push(give_back);
        }
        drop(sender);
        let stopped = consume_in_order(&shared, &receiver, &returns, consume);
        // What is still on its way back is freed here: the workers have ended.
        drop(returns);
        (started_workers > 0).then_some(stopped)
    })
}

/// A worker: takes the next seed, runs it, keeps the result in its batch, until a stop or the end
/// of the plan. The batch is sent when it is full, when it is [`BATCH_AGE`] old, before the
/// worker waits for the window (the results it holds may be the ones the window waits for) and
/// at the end.
/// A worker's links to the consuming thread.
struct Home<'a> {
    worker: usize,
    /// Where its batches go.
    sender: &'a Sender<Vec<Finished>>,
    /// Where its results come back once consumed, to be freed on the thread that allocated them:
    /// freed by the consumer, their memory went back to this thread's allocator arena under that
    /// arena's lock, which this thread takes on its own allocations too.
    returned: &'a Receiver<Returned>,
}

fn work(shared: &Shared, spec: &Arc<Spec>, run: RunOne<'_>, nth: NthSeed<'_>, home: &Home<'_>) {
    let sender = home.sender;
    let mut batch: Vec<Finished> = Vec::with_capacity(BATCH);
    let mut since = Instant::now();
    let send = |batch: &mut Vec<Finished>| -> bool {
        batch.is_empty()
            || sender
                .send(std::mem::replace(batch, Vec::with_capacity(BATCH)))
                .is_ok()
    };
    loop {
        if shared.stopped() {
            break;
        }
        let k = shared.next.fetch_add(1, Ordering::SeqCst);
        if !shared.in_window(k) {
            if !send(&mut batch) {
                return;
            }
            since = Instant::now();
            shared.wait_for_window(k);
        }
        if shared.stopped() {
            break;
        }
        let Some((index, seed)) = nth(k) else { break };
        while let Ok(consumed) = home.returned.try_recv() {
            drop(consumed);
        }
        let result = run(spec, seed);
        batch.push((k, index, seed, result, home.worker));
        if batch.len() >= BATCH || since.elapsed() >= BATCH_AGE {
            if !send(&mut batch) {
                return;
            }
            since = Instant::now();
        }
    }
    // After a stop the results are discarded anyway; at the end of the plan they are the last.
    send(&mut batch);
}

/// Results arrive in any order; hands them on in seed order until `consume` says stop (then
/// returns `true` and discards the rest) or the workers are done.
fn consume_in_order(
    shared: &Shared,
    receiver: &Receiver<Vec<Finished>>,
    returns: &[Sender<Returned>],
    consume: Consume<'_>,
) -> bool {
    let mut pending = BTreeMap::new();
    let mut expected = 0usize;
    let mut stopped = false;
    let mut back: Vec<Returned> = returns.iter().map(|_| Vec::new()).collect();
    for batch in receiver.iter() {
        if stopped {
            continue;
        }
        for (k, index, seed, result, worker) in batch {
            pending.insert(k, (index, seed, result, worker));
        }
        let before = expected;
        while let Some((index, seed, result, worker)) = pending.remove(&expected) {
            expected += 1;
            let stop = consume(index, seed, &result);
            match back.get_mut(worker) {
                Some(returned) => returned.push(result),
                None => drop(result),
            }
            if stop {
                stopped = true;
                shared.request_stop();
                break;
            }
        }
        if expected != before {
            shared.set_consumed(expected);
        }
        for (returned, to) in back.iter_mut().zip(returns) {
            if !returned.is_empty() {
                // A worker that has ended no longer takes them back: they are freed here then.
                let _ = to.send(std::mem::take(returned));
            }
        }
    }
    stopped
}
