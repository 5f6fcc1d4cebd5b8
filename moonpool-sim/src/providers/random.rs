//! [`SimRandomProvider`]: application randomness from the seed.

use std::sync::{Arc, Mutex, PoisonError};

use moonpool_core::RandomProvider;
use rand_chacha::ChaCha8Rng;
use rand_core::Rng;

/// Draws from the application stream of the world's seed (see [`crate::kernel::rng`]).
#[derive(Clone)]
pub struct SimRandomProvider {
    rng: Arc<Mutex<ChaCha8Rng>>,
}

impl SimRandomProvider {
    pub(crate) fn new(rng: Arc<Mutex<ChaCha8Rng>>) -> Self {
        Self { rng }
    }
}

impl RandomProvider for SimRandomProvider {
    fn next_u64(&self) -> u64 {
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_u64()
    }
}
