//! The world's seeded randomness.
//!
//! One seed drives everything. It is expanded by ChaCha8 into independent *streams* (ChaCha's
//! 64-bit stream selector, same key), one per consumer:
//!
//! | stream | consumer |
//! |---|---|
//! | 0 | the world's own draws that are not faults: latencies (network, disk), per-pair latency |
//! | 1 | the executor: which ready task runs next |
//! | 2 | `select!` starting branches |
//! | 3 | application code, through `RandomProvider` |
//! | 4 | `buggify!` site activation and firing, `buggify_knob!` values (the `chaos` floor) |
//! | [`FaultKind::stream`] | one stream per fault kind: every draw that decides or shapes that fault |
//!
//! Separate streams keep causes apart: a workload that draws one more random number does not shift
//! the fault schedule, a new fault draw does not reshuffle task order, and one fault kind's draws
//! never move another's. Every draw is still a pure function of the seed, so a seed replays
//! exactly.
//!
//! # Fault independence
//!
//! Every fault kind ([`FaultKind`]) draws only from its own stream, whose number is derived
//! from the kind's *name* (not its position in the enum), so adding a kind renumbers nothing. A
//! fault with probability zero draws nothing ([`StreamRng::chance`]). Together: turning one kind
//! off (or lowering its probability so that it never fires) changes nothing in the run until the
//! first moment that kind would have fired; from then on the run may differ, because the fault
//! changed what the program does. `docs/fault-injection.md` ("Independent fault streams") states
//! exactly what is and is not preserved; `tests/fault_independence.rs` checks it.
//!
//! # Reseeding at a split point
//!
//! Exploration (and the replay of one of its recipes) changes a run's randomness in one way
//! only: at a split point, every stream above is replaced by the same stream of a new seed,
//! `stream(child_seed, n)` ([`reseed`], [`WorldRng::reseed`]). Nothing else of the world changes
//! (clock, events, tasks, buggify sites already decided). A plain run never reseeds. The streams
//! of the runner's own injectors (attrition, random partitions) are not reseeded.

use std::time::Duration;

use moonpool_core::{Random, SampleRange};
use rand_chacha::ChaCha8Rng;
use rand_core::{Rng, SeedableRng};

pub use super::fault::{FaultKind, FaultSet, FaultSetError};

/// The stream used by the world itself (latencies).
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

/// A stream shared by a world and its providers (`select!` offsets, application randomness):
/// free to draw from on the thread that runs the world, which leases it for the run.
pub(crate) type SharedStream = std::sync::Arc<crate::run_lock::RunLock<ChaCha8Rng>>;

/// A new [`SharedStream`]: stream `stream_id` of `seed`.
pub(crate) fn shared_stream(seed: u64, stream_id: u64) -> SharedStream {
    std::sync::Arc::new(crate::run_lock::RunLock::new(stream(seed, stream_id)))
}

/// One stream, with the helpers fault code needs.
pub struct StreamRng {
    rng: ChaCha8Rng,
}

impl StreamRng {
    /// Stream `stream_id` of `seed`.
    pub fn new(seed: u64, stream_id: u64) -> Self {
        Self {
            rng: stream(seed, stream_id),
        }
    }

    /// Wraps an existing generator.
    pub fn from_rng(rng: ChaCha8Rng) -> Self {
        Self { rng }
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

/// The world's generators: the world stream (latencies, dereferenced to) and one stream per fault
/// kind, created at its first draw.
pub struct WorldRng {
    seed: u64,
    world: StreamRng,
    faults: Vec<Option<StreamRng>>,
}

impl WorldRng {
    /// The world stream of `seed`, and its fault streams.
    pub fn new(seed: u64) -> Self {
        Self {
            seed,
            world: StreamRng::new(seed, STREAM_WORLD),
            faults: Vec::new(),
        }
    }

    /// Wraps an existing generator as the world stream (a component that uses only one stream,
    /// such as `buggify!`'s).
    pub fn from_rng(rng: ChaCha8Rng) -> Self {
        Self {
            seed: 0,
            world: StreamRng::from_rng(rng),
            faults: Vec::new(),
        }
    }

    /// The stream of fault kind `kind`: every draw that decides or shapes a fault of that kind
    /// comes from here, and from nowhere else.
    pub fn fault(&mut self, kind: FaultKind) -> &mut StreamRng {
        let index = kind.index();
        if self.faults.len() <= index {
            self.faults.resize_with(index + 1, || None);
        }
        let seed = self.seed;
        self.faults[index].get_or_insert_with(|| StreamRng::new(seed, kind.stream()))
    }

    /// The stream of `kind` when a fault of probability `p` fires, `None` when it does not.
    ///
    /// The same draws as `fault(kind).chance(p)`, but a probability of zero (or NaN) returns
    /// before reaching the stream at all: the hot paths ask several kinds per operation and with
    /// faults off none of them should cost more than a comparison. (A stream is a pure function
    /// of the seed and the kind, so when it is first created never changes what it draws.)
    #[inline]
    pub fn fault_if(&mut self, kind: FaultKind, p: f64) -> Option<&mut StreamRng> {
        if p.is_nan() || p <= 0.0 {
            return None;
        }
        let stream = self.fault(kind);
        stream.chance(p).then_some(stream)
    }

    /// Replaces every stream by the same stream of `seed` (a split point).
    pub fn reseed(&mut self, seed: u64, stream_id: u64) {
        self.seed = seed;
        self.world = StreamRng::new(seed, stream_id);
        self.faults.clear();
    }
}

impl std::ops::Deref for WorldRng {
    type Target = StreamRng;
    fn deref(&self) -> &StreamRng {
        &self.world
    }
}

impl std::ops::DerefMut for WorldRng {
    fn deref_mut(&mut self) -> &mut StreamRng {
        &mut self.world
    }
}
