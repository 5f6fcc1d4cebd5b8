//! Nanoseconds per encode and decode of a small RPC-sized message with `JsonCodec` and
//! `BinaryCodec`.
//!
//! ```text
//! cargo run --release -p moonpool-core --example codec_bench
//! ```
//!
//! Measures wall-clock time with `std::time::Instant` (this is a benchmark, not simulated code).

use std::hint::black_box;
use std::time::Instant;

use moonpool_core::{BinaryCodec, CodecError, JsonCodec, MessageCodec};
use serde::{Deserialize, Serialize};

/// Iterations per measurement.
const ITERATIONS: u32 = 2_000_000;

/// A small message, shaped like an RPC request header.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct Small {
    seq: u64,
    name: String,
}

/// Runs `step` [`ITERATIONS`] times after a short warm-up; returns nanoseconds per call.
fn ns_per_call(mut step: impl FnMut() -> Result<(), CodecError>) -> Result<f64, CodecError> {
    for _ in 0..ITERATIONS / 10 {
        step()?;
    }
    let start = Instant::now();
    for _ in 0..ITERATIONS {
        step()?;
    }
    Ok(start.elapsed().as_nanos() as f64 / f64::from(ITERATIONS))
}

/// Measures `encode` (allocating), `encode_into` (reused buffer) and `decode` for one codec.
fn bench<C: MessageCodec>(name: &str, codec: &C, message: &Small) -> Result<(), CodecError> {
    let encoded = codec.encode(message)?;
    let back: Small = codec.decode(&encoded)?;
    assert_eq!(&back, message, "{name} does not round trip");

    let encode = ns_per_call(|| {
        black_box(codec.encode(black_box(message))?);
        Ok(())
    })?;
    let mut buffer = Vec::with_capacity(256);
    let encode_into = ns_per_call(|| {
        buffer.clear();
        codec.encode_into(black_box(message), &mut buffer)?;
        black_box(&buffer);
        Ok(())
    })?;
    let decode = ns_per_call(|| {
        black_box(codec.decode::<Small>(black_box(&encoded))?);
        Ok(())
    })?;
    println!(
        "{name:<12} {:>4} bytes   encode {encode:>6.1} ns   encode_into {encode_into:>6.1} ns   \
         decode {decode:>6.1} ns",
        encoded.len()
    );
    Ok(())
}

fn main() -> Result<(), CodecError> {
    let message = Small {
        seq: 1_234_567,
        name: "get_account_balance".to_string(),
    };
    println!("{ITERATIONS} iterations each, message {message:?}");
    bench("JsonCodec", &JsonCodec, &message)?;
    bench("BinaryCodec", &BinaryCodec, &message)?;
    Ok(())
}
