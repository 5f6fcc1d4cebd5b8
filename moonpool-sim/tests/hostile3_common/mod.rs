//! What the third hostile pass's suites (`hostile3_*.rs`) share: quiet worlds, a run whose
//! panic (out of the engine) is caught and returned as text, a byte pattern both ends of a
//! connection compute, and shared records.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_sim::{NetworkConfiguration, RunSummary, SimError, SimWorld, WorldConfig};

/// A world with no faults at all and `network`.
pub fn world_with(seed: u64, network: NetworkConfiguration) -> SimWorld {
    let mut config = WorldConfig::quiet();
    config.network = network;
    config.time_budget = Duration::from_secs(3_600);
    SimWorld::with_config(seed, config).unwrap()
}

/// A world with no faults at all.
pub fn quiet(seed: u64) -> SimWorld {
    SimWorld::with_config(seed, WorldConfig::quiet()).unwrap()
}

/// Runs `world`, turning a panic that escapes `run` into `Err(message)`.
pub fn run_caught(mut world: SimWorld) -> Result<Result<RunSummary, SimError>, String> {
    let outcome = catch_unwind(AssertUnwindSafe(|| world.run()));
    match outcome {
        Ok(result) => Ok(result),
        Err(payload) => Err(moonpool_core::task::panic_message(payload.as_ref())),
    }
}

/// Byte `index` of stream `stream`.
pub fn byte_of(stream: u64, index: u64) -> u8 {
    let mut x = stream
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(index.wrapping_mul(0xBF58_476D_1CE4_E5B9));
    x ^= x >> 31;
    x = x.wrapping_mul(0x94D0_49BB_1331_11EB);
    (x >> 29) as u8
}

/// `len` bytes of stream `stream` from `from`.
pub fn chunk(stream: u64, from: u64, len: usize) -> Vec<u8> {
    (0..len as u64).map(|i| byte_of(stream, from + i)).collect()
}

/// The index of the first byte of `bytes` (stream `stream`, from `from`) that is wrong.
pub fn first_bad(stream: u64, from: u64, bytes: &[u8]) -> Option<u64> {
    bytes
        .iter()
        .enumerate()
        .find(|(i, b)| **b != byte_of(stream, from + *i as u64))
        .map(|(i, _)| from + i as u64)
}

/// A list several tasks push to.
pub type Log<T> = Arc<Mutex<Vec<T>>>;

pub fn log<T>() -> Log<T> {
    Arc::new(Mutex::new(Vec::new()))
}

pub fn taken<T: Clone>(log: &Log<T>) -> Vec<T> {
    log.lock().unwrap().clone()
}
