//! The world's seeded randomness.
//!
//! One seed drives everything. It is expanded by ChaCha8 into independent *streams* (ChaCha's
//! 64-bit stream selector, same key), one per consumer:
//!
//! | stream | consumer |
//! |---|---|
//! | 0 | the world: network, storage and clock faults, latencies, buggify |
//! | 1 | the executor: which ready task runs next |
//! | 2 | `select!` starting branches |
//! | 3 | application code, through `RandomProvider` |
//! | 4 | `buggify!` site activation and firing, `buggify_knob!` values |
//!
//! Separate streams keep causes apart: a workload that draws one more random number does not shift
//! the fault schedule, and a new fault draw does not reshuffle task order. Every draw is still a
//! pure function of the seed, so a seed replays exactly.
//!
//! Faults whose probability is zero never draw ([`WorldRng::chance`]), so turning a fault off
//! leaves the rest of a run unchanged.
//!
//! # Reseeding at a split point
//!
//! Exploration (and the replay of one of its recipes) changes a run's randomness in one way
//! only: at a split point, every stream above is replaced by the same stream of a new seed,
//! `stream(child_seed, n)` ([`reseed`], [`WorldRng::reseed`]). Nothing else of the world changes
//! (clock, events, tasks, buggify sites already decided). A plain run never reseeds.

use std::time::Duration;

use moonpool_core::{Random, SampleRange};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

/// The stream used by the world itself.
pub const STREAM_WORLD: u64 = 0;
/// The stream used by the executor's scheduler.
pub const STREAM_SCHEDULER: u64 = 1;
/// The stream used by `select!`.
pub const STREAM_SELECT: u64 = 2;
/// The stream used by application code.
pub const STREAM_APPLICATION: u64 = 3;
/// The stream used by `buggify!` decisions.
pub const STREAM_BUGGIFY: u64 = 4;

/// A ChaCha8 generator on stream `stream` of `seed`.
pub fn stream(seed: u64, stream: u64) -> ChaCha8Rng {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(stream);
    rng
}

/// Replaces `rng` by stream `stream_id` of `seed` (a split point; see the module docs).
pub fn reseed(rng: &mut ChaCha8Rng, seed: u64, stream_id: u64) {
    *rng = stream(seed, stream_id);
}

/// The world's own generator, with the helpers fault code needs.
pub struct WorldRng {
    rng: ChaCha8Rng,
}

impl WorldRng {
    /// The world stream of `seed`.
    pub fn new(seed: u64) -> Self {
        Self {
            rng: stream(seed, STREAM_WORLD),
        }
    }

    /// Wraps an existing generator (another stream).
    pub fn from_rng(rng: ChaCha8Rng) -> Self {
        Self { rng }
    }

    /// Replaces the generator by stream `stream_id` of `seed` (a split point).
    pub fn reseed(&mut self, seed: u64, stream_id: u64) {
        reseed(&mut self.rng, seed, stream_id);
    }

    /// The next raw word.
    pub fn next_u64(&mut self) -> u64 {
        self.rng.next_u64()
    }

    /// `true` with probability `p`; draws nothing when `p <= 0` or `p >= 1`.
    pub fn chance(&mut self, p: f64) -> bool {
        if p.is_nan() || p <= 0.0 {
            false
        } else if p >= 1.0 {
            true
        } else {
            self.ratio() < p
        }
    }

    /// A float in `[0, 1)`.
    #[allow(clippy::cast_precision_loss)]
    pub fn ratio(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
    }

    /// A value in `range`; an empty range yields its start without drawing.
    pub fn range<T, R: SampleRange<T>>(&mut self, range: R) -> T {
        range.sample(&mut || self.next_u64())
    }

    /// A value of any [`Random`] type.
    pub fn random<T: Random>(&mut self) -> T {
        T::random(&mut || self.next_u64())
    }

    /// A duration in `[lo, hi]`; draws nothing when `lo >= hi`.
    pub fn duration(&mut self, lo: Duration, hi: Duration) -> Duration {
        self.range(lo..=hi)
    }
}
