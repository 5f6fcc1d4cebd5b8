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

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        if !self.sleep_delays {
            return Sleep::new(
                self.world.clone(),
                self.clock.load().saturating_add(duration),
            );
        }
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
        Sleep::new(self.world.clone(), deadline)
    }
}

/// A simulated sleep; completes when the world clock reaches its deadline.
pub struct Sleep {
    /// The world, and through it the clock (one reference count per sleep, not two).
    world: WorldHandle,
    deadline: Duration,
    timer: Option<TimerKey>,
    /// Set once the sleep completed (a completed sleep polled again stays complete).
    done: bool,
}

impl Sleep {
    fn new(world: WorldHandle, deadline: Duration) -> Self {
        Self {
            world,
            deadline,
            timer: None,
            done: false,
        }
    }
}

impl Future for Sleep {
    type Output = ();

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let this = self.get_mut();
        // A sleep goes through the timer at least once, even when its deadline has passed (a
        // zero sleep): as on Tokio it yields, and a loop of zero sleeps is a stream of timer
        // events at one instant, which the world's instant bound reports, instead of a poll that
        // never returns.
        if this.timer.is_some() && this.world.clock().load() >= this.deadline {
            // Either the timer fired (and freed its slot) or an event due at the same instant got
            // here first; then the timer event still fires later and only wakes this task
            // spuriously, which is harmless. Either way no lock is needed.
            this.timer = None;
            this.done = true;
            return Poll::Ready(());
        }
        if this.done {
            return Poll::Ready(());
        }
        let mut state = this.world.lock();
        match this.timer {
            Some(key) => state.timers.update(key, cx.waker()),
            None => {
                let key = state.timers.insert(cx.waker());
                state.core.schedule_at(this.deadline, Event::Timer(key));
                state.core.note(|| crate::kernel::story::What::TimerSet {
                    key: key.fingerprint(),
                });
                this.timer = Some(key);
            }
        }
        crate::executor::note_wait(crate::executor::WaitReason::Timer(
            u64::try_from(this.deadline.as_nanos()).unwrap_or(u64::MAX),
        ));
        Poll::Pending
    }
}

impl Drop for Sleep {
    fn drop(&mut self) {
        if let Some(key) = self.timer.take() {
            self.world.with(|state| state.timers.remove(key));
        }
    }
}

/// A sleep until `deadline` on the world clock, without buggified delays (for the simulator's own
/// latencies).
pub(crate) fn sleep_until(world: &WorldHandle, deadline: Duration) -> Sleep {
    Sleep::new(world.clone(), deadline)
}

/// A sleep of `duration` from now, without buggified delays.
pub(crate) fn sleep_for(world: &WorldHandle, duration: Duration) -> Sleep {
    let now = world.clock().load();
    Sleep::new(world.clone(), now.saturating_add(duration))
}
