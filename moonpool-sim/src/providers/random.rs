//! [`SimRandomProvider`]: application randomness from the seed.

use moonpool_core::RandomProvider;
use rand_core::Rng;

use crate::kernel::rng::SharedStream;

/// Draws from the application stream of the world's seed (see [`crate::kernel::rng`]).
#[derive(Clone)]
pub struct SimRandomProvider {
    rng: SharedStream,
}

impl SimRandomProvider {
    pub(crate) fn new(rng: SharedStream) -> Self {
        Self { rng }
    }
}

impl RandomProvider for SimRandomProvider {
    fn next_u64(&self) -> u64 {
        self.rng.lock().next_u64()
    }
}
