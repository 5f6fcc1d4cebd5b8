use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::{Arc, Mutex, PoisonError};

use rand_chacha::ChaCha20Rng;
use rand_core::{Rng, SeedableRng};

use crate::RandomProvider;

/// A ChaCha20 generator shared by clones, seeded from the operating system by default.
///
/// [`with_seed`](Self::with_seed) gives a reproducible sequence (for tests that run on Tokio).
#[derive(Debug, Clone)]
pub struct TokioRandomProvider {
    rng: Arc<Mutex<ChaCha20Rng>>,
}

impl TokioRandomProvider {
    /// A generator seeded from the operating system.
    ///
    /// The seed comes from std's `RandomState`, whose keys the standard library draws from the
    /// OS, hashed with the process id and an address so that providers created together differ.
    pub fn new() -> Self {
        let mut seed = [0u8; 32];
        for (index, chunk) in seed.chunks_mut(8).enumerate() {
            let mut hasher = RandomState::new().build_hasher();
            hasher.write_usize(index);
            hasher.write_u32(std::process::id());
            hasher.write_usize(chunk.as_ptr() as usize);
            chunk.copy_from_slice(&hasher.finish().to_le_bytes());
        }
        Self::from_seed_bytes(seed)
    }

    /// A generator with a fixed seed.
    pub fn with_seed(seed: u64) -> Self {
        Self {
            rng: Arc::new(Mutex::new(ChaCha20Rng::seed_from_u64(seed))),
        }
    }

    fn from_seed_bytes(seed: [u8; 32]) -> Self {
        Self {
            rng: Arc::new(Mutex::new(ChaCha20Rng::from_seed(seed))),
        }
    }
}

impl Default for TokioRandomProvider {
    fn default() -> Self {
        Self::new()
    }
}

impl RandomProvider for TokioRandomProvider {
    fn next_u64(&self) -> u64 {
        // A panic while holding this lock cannot leave the generator in a bad state, so a poisoned
        // lock is simply taken over.
        self.rng
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .next_u64()
    }
}
