//! Simulated time at its root: the world clock readable without a lock, the clock of the world
//! running on this thread (for log lines), and the clock's configuration (drift, buggified
//! sleeps). The providers' `TimeProvider` reads these; nothing here knows about processes,
//! networks or tasks.

use std::cell::Cell;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

/// 100 years of 365 days: the longest duration a configuration may give (a latency, a drift
/// bound), far past any time budget and low enough that no instant plus it overflows.
pub(crate) const HUNDRED_YEARS: Duration = Duration::from_secs(100 * 365 * 24 * 3600);

/// The largest `drift_max` accepted.
const MAX_DRIFT: Duration = HUNDRED_YEARS;

/// `duration * factor` as `Duration::mul_f64` computes it (the same value wherever that does not
/// panic), but `Duration::MAX` where the product is too large and zero where it is negative or
/// NaN: a throttle factor of `1e300` or an exponential draw on a huge mean saturates.
pub(crate) fn scaled(duration: Duration, factor: f64) -> Duration {
    let seconds = factor * duration.as_secs_f64();
    if seconds > 0.0 {
        Duration::try_from_secs_f64(seconds).unwrap_or(Duration::MAX)
    } else {
        Duration::ZERO
    }
}

/// Clock behaviour of a world.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct ClockConfiguration {
    /// How far a process's `timer()` may run ahead of the world clock (FDB: 100 ms). Zero turns
    /// drift off.
    pub drift_max: Duration,
    /// Probability that a sleep gets a buggified extra delay. Zero turns it off.
    pub sleep_delay_probability: f64,
    /// Largest buggified extra delay.
    pub sleep_delay_max: Duration,
}

impl Default for ClockConfiguration {
    /// FDB-like: up to 100 ms of drift; 25% of sleeps get up to 100 ms extra, usually far less.
    fn default() -> Self {
        Self {
            drift_max: Duration::from_millis(100),
            sleep_delay_probability: 0.25,
            sleep_delay_max: Duration::from_millis(100),
        }
    }
}

impl ClockConfiguration {
    /// No drift and no extra delays.
    pub fn disabled() -> Self {
        Self {
            drift_max: Duration::ZERO,
            sleep_delay_probability: 0.0,
            sleep_delay_max: Duration::ZERO,
        }
    }

    /// Checks the configuration; the error names the field and its bad value.
    pub fn validate(&self) -> Result<(), String> {
        let p = self.sleep_delay_probability;
        if !(0.0..=1.0).contains(&p) {
            return Err(format!(
                "sleep_delay_probability is {p}, expected a probability in [0, 1]"
            ));
        }
        // (A huge `sleep_delay_max` is fine: a buggified sleep's deadline saturates.)
        if self.drift_max > MAX_DRIFT {
            return Err(format!(
                "drift_max is {:?}, over the {MAX_DRIFT:?} (100-year) limit",
                self.drift_max
            ));
        }
        Ok(())
    }
}

thread_local! {
    static CURRENT_CLOCK: std::cell::RefCell<Option<SharedClock>> =
        const { std::cell::RefCell::new(None) };
}

pub(crate) struct ClockGuard(Option<SharedClock>);

impl Drop for ClockGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT_CLOCK.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                *slot = previous;
            }
        });
    }
}

pub(crate) fn install_current_clock(clock: SharedClock) -> ClockGuard {
    ClockGuard(CURRENT_CLOCK.with(|slot| slot.borrow_mut().replace(clock)))
}

/// The simulated time of the world running on this thread, or `None` outside a run. For log
/// timestamps (see `SimTime`) and debugging; simulated code should use its `TimeProvider`.
pub fn sim_now() -> Option<Duration> {
    CURRENT_CLOCK
        .try_with(|slot| {
            slot.try_borrow()
                .ok()
                .and_then(|c| c.as_ref().map(SharedClock::load))
        })
        .ok()
        .flatten()
}

thread_local! {
    /// The world running on this thread (its id, never 0; 0 when none) and its clock in
    /// nanoseconds: a copy of that world's [`SharedClock`] kept by its run loop, so that a sleep
    /// polled in a task of the run checks its deadline with two plain reads of a thread-local
    /// that has no destructor (no lazy registration, no `RefCell`, no pointer to follow).
    static RUNNING: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// Restores the thread's previous running world (usually none) when a run ends, on every exit
/// path, also when unwinding.
pub(crate) struct RunningGuard((u64, u64));

impl Drop for RunningGuard {
    fn drop(&mut self) {
        RUNNING.with(|running| running.set(self.0));
    }
}

/// Makes world `id` (never 0), whose clock reads `nanos`, the world running on this thread
/// until the guard drops.
pub(crate) fn install_running(id: u64, nanos: u64) -> RunningGuard {
    RunningGuard(RUNNING.with(|running| running.replace((id, nanos))))
}

/// The clock of world `id` in nanoseconds, when it is the world running on this thread.
#[inline]
pub(crate) fn running_now(id: u64) -> Option<u64> {
    let (running, nanos) = RUNNING.with(Cell::get);
    (running == id && id != 0).then_some(nanos)
}

/// True when world `id` is the world running on this thread.
#[inline]
pub(crate) fn is_running(id: u64) -> bool {
    running_now(id).is_some()
}

/// World `id`'s clock moved to `nanos`: its copy follows when it is the world running here.
#[inline]
pub(crate) fn advance_running(id: u64, nanos: u64) {
    RUNNING.with(|running| {
        if running.get().0 == id {
            running.set((id, nanos));
        }
    });
}

/// The world clock, readable without the world lock (nanoseconds since the start of the run).
#[derive(Clone, Default)]
pub(crate) struct SharedClock(Arc<std::sync::atomic::AtomicU64>);

impl SharedClock {
    #[inline]
    pub(crate) fn load(&self) -> Duration {
        Duration::from_nanos(self.nanos())
    }

    /// The clock in nanoseconds.
    #[inline]
    pub(crate) fn nanos(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    /// Sets the clock to `nanos` nanoseconds since the start of the run.
    #[inline]
    pub(crate) fn store_nanos(&self, nanos: u64) {
        self.0.store(nanos, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_scaled_is_mul_f64_where_that_works_and_saturates_elsewhere() {
        for (d, f) in [
            (Duration::from_millis(3), 2.5),
            (Duration::from_nanos(7), 0.3),
            (Duration::from_secs(12_345), 9.75),
            (Duration::from_micros(1), 1.0),
        ] {
            assert_eq!(scaled(d, f), d.mul_f64(f));
        }
        assert_eq!(scaled(Duration::MAX, 1e300), Duration::MAX);
        assert_eq!(scaled(Duration::from_secs(1), f64::INFINITY), Duration::MAX);
        assert_eq!(scaled(Duration::from_secs(1), f64::NAN), Duration::ZERO);
        assert_eq!(scaled(Duration::from_secs(1), -2.0), Duration::ZERO);
        assert_eq!(scaled(Duration::from_secs(1), -0.0), Duration::ZERO);
    }

    #[test]
    fn test_the_running_clock_follows_its_world_and_nests() {
        assert_eq!(running_now(0), None, "no world is 0");
        assert!(!is_running(5));
        {
            let _outer = install_running(5, 10);
            assert_eq!(running_now(5), Some(10));
            assert_eq!(running_now(6), None);
            advance_running(6, 99);
            assert_eq!(
                running_now(5),
                Some(10),
                "another world's clock moves nothing"
            );
            advance_running(5, 20);
            assert_eq!(running_now(5), Some(20));
            {
                // A world run inside a task of another one.
                let _inner = install_running(6, 0);
                assert!(is_running(6) && !is_running(5));
                advance_running(6, 7);
                assert_eq!(running_now(6), Some(7));
            }
            assert_eq!(
                running_now(5),
                Some(20),
                "the outer world and its clock are back"
            );
            assert_eq!(running_now(6), None);
        }
        assert!(!is_running(5));
        // Restored also when the run unwinds.
        let unwound = std::panic::catch_unwind(|| {
            let _guard = install_running(8, 1);
            panic!("the run panicked");
        });
        assert!(unwound.is_err());
        assert!(!is_running(8));
    }
}
