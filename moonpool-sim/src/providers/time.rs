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
        // Inlined into the caller, with the rare buggified path out of line, and the sleep built
        // on one path from the deadline in a register: a sleep returned through memory from a
        // call (or built on two paths that meet in memory) was copied into the awaiting future
        // with loads wider than its stores, a store-forwarding stall on every sleep.
        let deadline = if self.sleep_delays {
            self.delayed_deadline(duration)
        } else {
            self.clock
                .nanos()
                .saturating_add(saturating_nanos(duration))
        };
        Sleep::at_nanos(&self.world, deadline)
    }
}

impl SimTimeProvider {
    /// The deadline of a sleep that may get a buggified extra delay, in nanoseconds.
    #[inline(never)]
    fn delayed_deadline(&self, duration: Duration) -> u64 {
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
        saturating_nanos(deadline)
    }
}

/// A simulated sleep; completes when the world clock reaches its deadline.
///
/// A sleep made during its world's run (the common case) names the world by its id and reaches
/// it through the thread's current world, without a reference count of its own; one made outside
/// the run holds a handle. A sleep made during a run and polled outside it (after the run, or on
/// another thread) stays pending: the world's clock only moves during its run.
///
/// Four words, each written whole, on one path: the awaiting future builds the sleep in its own
/// state (or copies it there with wide loads that the whole-word stores can serve). With an enum
/// for the world and narrow fields for the timer and the done flag, the sleep was built on the
/// stack, then copied with wide loads over narrow stores: a store-forwarding stall on every sleep.
pub struct Sleep {
    /// A handle, for a sleep made outside its world's run; `None` for one made during the run.
    held: Option<WorldHandle>,
    /// The id of the sleep's world (never 0); 0 once the sleep completed (a completed sleep
    /// polled again stays complete).
    world: u64,
    /// Nanoseconds since the start of the run (past `u64::MAX`, about 584 years: `u64::MAX`,
    /// where the event queue puts "never" too), compared with the world clock's nanoseconds
    /// without converting either.
    deadline: u64,
    /// The timer it waits on ([`TimerKey::to_bits`]), or [`NO_TIMER`].
    timer: u64,
}

/// [`Sleep::timer`] of a sleep without a timer: before its first poll, and once complete.
const NO_TIMER: u64 = TimerKey::NONE_BITS;

impl Sleep {
    #[inline]
    fn new(world: &WorldHandle, deadline: Duration) -> Self {
        Self::at_nanos(world, saturating_nanos(deadline))
    }

    #[inline]
    fn at_nanos(world: &WorldHandle, deadline: u64) -> Self {
        let id = world.id();
        let held = if crate::kernel::clock::is_running(id) {
            None
        } else {
            Some(world.clone())
        };
        Self {
            held,
            world: id,
            deadline,
            timer: NO_TIMER,
        }
    }

    /// Runs `f` with the sleep's world, when it can be reached from here.
    #[inline]
    fn with_world<R>(&self, f: impl FnOnce(&WorldHandle) -> R) -> Option<R> {
        match &self.held {
            None => crate::handle::with_current(self.world, f),
            Some(world) => Some(f(world)),
        }
    }

    /// Marks the sleep complete (it has no timer any more).
    #[inline]
    fn complete(&mut self) -> Poll<()> {
        self.world = 0;
        self.timer = NO_TIMER;
        Poll::Ready(())
    }
}

impl Future for Sleep {
    type Output = ();

    /// Inlined into the awaiting future: the poll after the timer fired (one per sleep) is a
    /// few reads of this sleep and of the thread's running world (see
    /// `kernel::clock::running_now`); registering, and any other case, is out of line.
    #[inline]
    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        if this.world == 0 {
            return Poll::Ready(());
        }
        if this.timer != NO_TIMER && this.held.is_none() {
            match crate::kernel::clock::running_now(this.world) {
                // The timer fired (or an event due at the same instant got here first; then
                // the timer event still fires later and only wakes this task spuriously).
                Some(now) if now >= this.deadline => return this.complete(),
                // Out of reach of its world (made during a run, polled outside it).
                None => return Poll::Pending,
                Some(_) => {}
            }
        }
        this.poll_world(cx)
    }
}

impl Sleep {
    /// A poll with the world at hand: registers the timer, or replaces its waker.
    #[inline(never)]
    fn poll_world(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        let (deadline, timer) = (self.deadline, TimerKey::from_bits(self.timer));
        // Out of reach of its world (made during a run, polled outside it): pending.
        let Some(outcome) = self.with_world(|world| poll_sleep(world, deadline, timer, cx)) else {
            return Poll::Pending;
        };
        match outcome {
            None => self.complete(),
            Some(key) => {
                self.timer = key.to_bits();
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
    /// Inlined: a completed sleep (the common case) has nothing to free.
    #[inline]
    fn drop(&mut self) {
        if self.timer != NO_TIMER {
            self.cancel();
        }
    }
}

impl Sleep {
    /// Frees the slot of a sleep dropped before its timer fired (or before it noticed).
    #[inline(never)]
    fn cancel(&mut self) {
        let Some(key) = TimerKey::from_bits(std::mem::replace(&mut self.timer, NO_TIMER)) else {
            return;
        };
        // Out of reach (dropped outside its world's run): the slot is freed when the timer
        // fires, or with the world.
        let _ = self.with_world(|world| world.with(|state| state.timers.remove(key)));
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
