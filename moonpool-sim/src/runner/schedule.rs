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

/// Takes each seed's result, in order; returns `true` to stop.
pub(super) type Consume<'a> = &'a mut dyn FnMut(usize, u64, SeedResult) -> bool;

/// Runs one seed and measures it.
type RunOne<'a> = &'a (dyn Fn(u64) -> SeedResult + Sync);

/// A finished seed sent by a worker: `(k, index, seed, result)`.
type Finished = (usize, usize, u64, SeedResult);

/// Runs the seeds `nth(0)`, `nth(1)`, ... on up to `jobs` threads and hands each result to
/// `consume` in order, until `consume` says stop (returns `true`) or `nth` runs out (returns
/// `false` then).
///
/// Workers pull the next seed as soon as they are free and may run at most a small window ahead
/// of the results consumed; results past a stop are discarded, so what `consume` sees does not
/// depend on the number of threads.
pub(super) fn run_seeds(
    spec: &Arc<Spec>,
    jobs: usize,
    check_determinism: bool,
    nth: NthSeed<'_>,
    consume: Consume<'_>,
) -> bool {
    let run = |seed: u64| -> SeedResult {
        let started = Instant::now();
        let (summary, error) = if check_determinism {
            run_twice(spec, seed)
        } else {
            run_seed(spec, seed, false)
        };
        (summary, error, started.elapsed())
    };
    if jobs <= 1 {
        return run_serially(&run, nth, consume);
    }
    match run_in_parallel(jobs, &run, nth, consume) {
        Some(stopped) => stopped,
        // No thread could be started: run serially rather than not at all.
        None => run_serially(&run, nth, consume),
    }
}

/// One seed after the other on this thread.
fn run_serially(run: RunOne<'_>, nth: NthSeed<'_>, consume: Consume<'_>) -> bool {
    let mut k = 0;
    while let Some((index, seed)) = nth(k) {
        k += 1;
        if consume(index, seed, run(seed)) {
            return true;
        }
    }
    false
}

/// What the workers and the consuming thread share.
struct Shared {
    /// The next `k` a free worker takes.
    next: AtomicUsize,
    /// Set once `consume` has said stop.
    stop: AtomicBool,
    /// How many results have been consumed; workers wait on it to stay within the window.
    consumed: (Mutex<usize>, Condvar),
    /// How far ahead of the results consumed a worker may start a seed.
    window: usize,
}

impl Shared {
    fn stopped(&self) -> bool {
        self.stop.load(Ordering::SeqCst)
    }

    /// Waits until seed `k` is within the window of the results consumed (or a stop).
    fn wait_for_window(&self, k: usize) {
        let mut done = self
            .consumed
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        while k >= *done + self.window && !self.stopped() {
            done = self
                .consumed
                .1
                .wait(done)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    fn set_consumed(&self, count: usize) {
        *self
            .consumed
            .0
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = count;
        self.consumed.1.notify_all();
    }

    fn request_stop(&self) {
        self.stop.store(true, Ordering::SeqCst);
        self.consumed.1.notify_all();
    }
}

/// `jobs` worker threads; `None` if none could be started.
fn run_in_parallel(
    jobs: usize,
    run: RunOne<'_>,
    nth: NthSeed<'_>,
    consume: Consume<'_>,
) -> Option<bool> {
    let shared = Shared {
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        consumed: (Mutex::new(0), Condvar::new()),
        window: jobs * 8,
    };
    let (sender, receiver) = std::sync::mpsc::channel::<Finished>();
    std::thread::scope(|scope| {
        let mut started_workers = 0;
        for worker in 0..jobs {
            let (sender, shared) = (sender.clone(), &shared);
            let spawned = std::thread::Builder::new()
                .name(format!("moonpool-seeds-{worker}"))
                .spawn_scoped(scope, move || work(shared, run, nth, &sender));
            if spawned.is_ok() {
                started_workers += 1;
            }
        }
        drop(sender);
        let stopped = consume_in_order(&shared, &receiver, consume);
        (started_workers > 0).then_some(stopped)
    })
}

/// A worker: takes the next seed, runs it, sends the result, until a stop or the end of the plan.
fn work(shared: &Shared, run: RunOne<'_>, nth: NthSeed<'_>, sender: &Sender<Finished>) {
    loop {
        if shared.stopped() {
            break;
        }
        let k = shared.next.fetch_add(1, Ordering::SeqCst);
        shared.wait_for_window(k);
        if shared.stopped() {
            break;
        }
        let Some((index, seed)) = nth(k) else { break };
        let result = run(seed);
        if sender.send((k, index, seed, result)).is_err() {
            break;
        }
    }
}

/// Results arrive in any order; hands them on in seed order until `consume` says stop (then
/// returns `true` and discards the rest) or the workers are done.
fn consume_in_order(shared: &Shared, receiver: &Receiver<Finished>, consume: Consume<'_>) -> bool {
    let mut pending = BTreeMap::new();
    let mut expected = 0usize;
    let mut stopped = false;
    for (k, index, seed, result) in receiver.iter() {
        if stopped {
            continue;
        }
        pending.insert(k, (index, seed, result));
        while let Some((index, seed, result)) = pending.remove(&expected) {
            expected += 1;
            shared.set_consumed(expected);
            if consume(index, seed, result) {
                stopped = true;
                shared.request_stop();
                break;
            }
        }
    }
    stopped
}
