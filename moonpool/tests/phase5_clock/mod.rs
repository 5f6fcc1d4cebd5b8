//! The clocks of phase 5 (`actors_phase5.rs`): a node's clock that swings across the drift
//! bound, and the providers that carry it. Only that suite includes this module: its
//! `sometimes` site must not appear in the other suites' reports.
#![allow(dead_code)]

use std::future::Future;
use std::time::Duration;

use moonpool::sim::SimProviders;
use moonpool::{Providers, RandomProvider, TimeProvider, assert_sometimes};

/// How far the simulator lets a clock run ahead of real time (`ClockConfiguration::drift_max`).
pub const DRIFT: Duration = Duration::from_millis(200);

/// A node's clock for one boot, drawn when it starts. Most boots get a clock that swings
/// between real time and the drift bound ahead of it (a triangle wave of random period and
/// phase: for half a period it runs fast, then slow, never backwards). A constant offset cancels
/// out of every duration measured on one clock; a clock that runs fast while an owner holds a
/// grant, next to one that runs slow while its host processes under it, is what a missing drift
/// margin needs to show. The other boots drift as the simulator's clocks do.
#[derive(Clone)]
pub struct SkewedTime {
    inner: <SimProviders as Providers>::Time,
    /// `Some((period, phase))`: the swing; `None`: the simulator's drift.
    swing: Option<(Duration, Duration)>,
}

impl TimeProvider for SkewedTime {
    fn now(&self) -> Duration {
        self.inner.now()
    }

    fn timer(&self) -> Duration {
        let now = self.inner.now();
        let Some((period, phase)) = self.swing else {
            return self.inner.timer();
        };
        let period = period.as_nanos();
        let at = (now + phase).as_nanos() % period;
        // 0 at the start of a period, 1 at its middle, back to 0 at its end.
        let height = 1.0 - (2.0 * at as f64 / period as f64 - 1.0).abs();
        now + DRIFT.mul_f64(height)
    }

    fn sleep(&self, duration: Duration) -> impl Future<Output = ()> + Send + 'static {
        self.inner.sleep(duration)
    }
}

/// A node's providers: the simulator's, with a [`SkewedTime`] clock.
#[derive(Clone)]
pub struct Skewed {
    inner: SimProviders,
    time: SkewedTime,
}

impl Skewed {
    /// 80% of boots swing (a period of 2 to 6 s: 200 ms of drift gained or lost over a second
    /// at least, so the clock never goes backwards), 20% drift as the simulator's clocks do.
    pub fn draw(inner: SimProviders) -> Self {
        let random = inner.random();
        let swing = (random.random_range(0..10u32) < 8).then(|| {
            assert_sometimes!(true, "a node's clock swings across the drift bound");
            let period = Duration::from_millis(random.random_range(2000..6000));
            let phase = Duration::from_millis(random.random_range(0..6000));
            (period, phase)
        });
        let time = SkewedTime {
            inner: inner.time().clone(),
            swing,
        };
        Self { inner, time }
    }
}

impl Providers for Skewed {
    type Time = SkewedTime;
    type Task = <SimProviders as Providers>::Task;
    type Random = <SimProviders as Providers>::Random;
    type Network = <SimProviders as Providers>::Network;
    type Storage = <SimProviders as Providers>::Storage;

    fn time(&self) -> &Self::Time {
        &self.time
    }

    fn task(&self) -> &Self::Task {
        self.inner.task()
    }

    fn random(&self) -> &Self::Random {
        self.inner.random()
    }

    fn network(&self) -> &Self::Network {
        self.inner.network()
    }

    fn storage(&self) -> &Self::Storage {
        self.inner.storage()
    }
}
