//! Simulated time: [`SimTimeProvider`], clock drift and buggified sleep delays.

use crate::kernel::fault::FaultKind;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use moonpool_core::TimeProvider;

pub use crate::kernel::clock::ClockConfiguration;

use crate::executor::ProcessId;
use crate::handle::WorldHandle;
use crate::kernel::clock::SharedClock;
use crate::kernel::event::Event;
use crate::kernel::timers::TimerKey;

/// The clock of one simulated process.
#[derive(Clone)]
pub struct SimTimeProvider {
    world: WorldHandle,
    process: ProcessId,
    clock: SharedClock,
    /// True when sleeps may get buggified delays (they then need the world's generator).
    sleep_delays: bool,
}

impl SimTimeProvider {
    pub(crate) fn new(world: WorldHandle, process: ProcessId) -> Self {
        let (clock, sleep_delays) = world.with(|state| {
            let config = &state.core.clock;
            (
                state.core.shared_clock.clone(),
                config.sleep_delay_probability > 0.0 && !config.sleep_delay_max.is_zero(),
            )
        });
        Self {
            world,
            process,
            clock,
            sleep_delays,
        }
    }
}

impl TimeProvider for SimTimeProvider {
    fn now(&self) -> Duration {
        crate::executor::note_clock_read();
        self.clock.load()
    }

    /// FDB's drift model: each read moves the local timer a random part of the way towards
    /// `now + drift_max`, never backwards and never behind `now`.
    fn timer(&self) -> Duration {
        crate::executor::note_clock_read();
        self.world.with(|state| {
            let core = &mut state.core;
            let now = core.now;
            let drift_max = core.clock.drift_max;
            let Some(process) = core.processes.get(self.process.0 as usize) else {
                return now;
            };
            let mut timer = process.timer_time.max(now);
            let ceiling = now + drift_max;
            if !drift_max.is_zero() && timer < ceiling {
                let ratio = core.rng.fault(FaultKind::ClockDrift).ratio();
                let step = (ceiling - timer).mul_f64(ratio / 2.0);
                timer += step;
                if step > Duration::ZERO {
                    core.fired(FaultKind::ClockDrift, "clock.drift");
                }
            }
            if let Some(process) = core.processes.get_mut(self.process.0 as usize) {
                process.timer_time = timer;
            }
            timer
        })
    }

    #[inline]
    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        // Inlined into the caller, with the rare buggified path out of line: returned through
        // memory from a call, the sleep (written field by field) is read back as wider loads by
        // the caller, a store-forwarding stall on every sleep.
        if !self.sleep_delays {
            let now = self.clock.nanos();
            return Sleep::at_nanos(&self.world, now.saturating_add(saturating_nanos(duration)));
        }
        self.delayed_sleep(duration)
    }
}

impl SimTimeProvider {
    /// A sleep that may get a buggified extra delay.
    #[inline(never)]
    fn delayed_sleep(&self, duration: Duration) -> Sleep {
        let deadline = self.world.with(|state| {
            let core = &mut state.core;
            let mut deadline = core.now.saturating_add(duration);
            let clock = &core.clock;
            let (probability, max) = (clock.sleep_delay_probability, clock.sleep_delay_max);
            let delay = core.rng.fault(FaultKind::ClockSleepDelay);
            if !max.is_zero() && delay.chance(probability) {
                // Power law: almost always a sliver, occasionally close to the maximum.
                let extra = max.mul_f64(delay.ratio().powi(1000).max(delay.ratio().powi(8)));
                deadline = deadline.saturating_add(extra);
                core.fired(FaultKind::ClockSleepDelay, "clock.sleep_delay");
            }
            deadline
        });
        Sleep::new(&self.world, deadline)
    }
}

/// A simulated sleep; completes when the world clock reaches its deadline.
///
/// A sleep made during its world's run (the common case) names the world by its id and reaches
/// it through the thread's current world, without a reference count of its own; one made outside
/// the run holds a handle. A sleep made during a run and polled outside it (after the run, or on
/// another thread) stays pending: the world's clock only moves during its run.
pub struct Sleep {
    world: SleepWorld,
    /// Nanoseconds since the start of the run (past `u64::MAX`, about 584 years: `u64::MAX`,
    /// where the event queue puts "never" too), compared with the world clock's nanoseconds
    /// without converting either.
    deadline: u64,
    timer: Option<TimerKey>,
    /// Set once the sleep completed (a completed sleep polled again stays complete).
    done: bool,
}

/// How a sleep reaches its world.
enum SleepWorld {
    /// The world running on this thread when the sleep was made.
    Current(u64),
    /// A handle, for a sleep made outside its world's run.
    Held(WorldHandle),
}

impl Sleep {
    #[inline]
    fn new(world: &WorldHandle, deadline: Duration) -> Self {
        Self::at_nanos(world, saturating_nanos(deadline))
    }

    #[inline]
    fn at_nanos(world: &WorldHandle, deadline: u64) -> Self {
        let world = if world.is_current() {
            SleepWorld::Current(world.id())
        } else {
            SleepWorld::Held(world.clone())
        };
        Self {
            world,
            deadline,
            timer: None,
            done: false,
        }
    }

    /// Runs `f` with the sleep's world, when it can be reached from here.
    #[inline]
    fn with_world<R>(&self, f: impl FnOnce(&WorldHandle) -> R) -> Option<R> {
        match &self.world {
            SleepWorld::Current(id) => crate::handle::with_current(*id, f),
            SleepWorld::Held(world) => Some(f(world)),
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(());
        }
        let (deadline, timer) = (this.deadline, this.timer);
        // Out of reach of its world (made during a run, polled outside it): pending.
        let Some(outcome) = this.with_world(|world| poll_sleep(world, deadline, timer, cx)) else {
            return Poll::Pending;
        };
        match outcome {
            None => {
                this.timer = None;
                this.done = true;
                Poll::Ready(())
            }
            Some(key) => {
                this.timer = Some(key);
                Poll::Pending
            }
        }
    }
}

/// One poll of a sleep with its world at hand: `None` when it is done, else the timer it waits on.
///
/// Inlined into the sleep's poll: returned through memory, the key (written as two narrow stores)
/// was read back as one wider load, a store-forwarding stall on every sleep.
#[inline(always)]
fn poll_sleep(
    world: &WorldHandle,
    deadline: u64,
    timer: Option<TimerKey>,
    cx: &mut Context<'_>,
) -> Option<TimerKey> {
    // A sleep goes through the timer at least once, even when its deadline has passed (a zero
    // sleep): as on Tokio it yields, and a loop of zero sleeps is a stream of timer events at one
    // instant, which the world's instant bound reports, instead of a poll that never returns.
    if timer.is_some() && world.clock().nanos() >= deadline {
        // Either the timer fired (and freed its slot) or an event due at the same instant got
        // here first; then the timer event still fires later and only wakes this task
        // spuriously, which is harmless. Either way no lock is needed.
        return None;
    }
    let mut state = world.lock();
    let key = match timer {
        Some(key) => {
            state.timers.update(key, cx.waker());
            key
        }
        None => {
            let key = state.timers.insert(cx.waker());
            // The queue's push directly (inlined), not through `schedule_at`, whose call would
            // pass the event through memory.
            let at = deadline.max(world.clock().nanos());
            state.core.queue.push_nanos(at, Event::Timer(key));
            state.core.note(|| crate::kernel::story::What::TimerSet {
                key: key.fingerprint(),
            });
            key
        }
    };
    crate::executor::note_wait(crate::executor::WaitReason::Timer(deadline));
    Some(key)
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.timer.take() {
            // Out of reach (dropped outside its world's run): the slot is freed when the timer
            // fires, or with the world.
            let _ = self.with_world(|world| world.with(|state| state.timers.remove(key)));
        }
    }
}

/// `duration` in nanoseconds, `u64::MAX` past it.
#[inline]
fn saturating_nanos(duration: Duration) -> u64 {
    u64::try_from(duration.as_nanos()).unwrap_or(u64::MAX)
}

/// A sleep until `deadline` on the world clock, without buggified delays (for the simulator's own
/// latencies).
pub(crate) fn sleep_until(world: &WorldHandle, deadline: Duration) -> Sleep {
    Sleep::new(world, deadline)
}

/// A sleep of `duration` from now, without buggified delays.
pub(crate) fn sleep_for(world: &WorldHandle, duration: Duration) -> Sleep {
    let now = world.clock().load();
    Sleep::new(world, now.saturating_add(duration))
}
