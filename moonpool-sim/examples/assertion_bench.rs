//! What an assertion evaluation costs in a plain run (no exploration, no recipe): the hot path the
//! explorer's split-point notification must not slow down.
//!
//! ```sh
//! cargo run --release -p moonpool-sim --example assertion_bench
//! cargo run --release -p moonpool-sim --features explorer --example assertion_bench
//! ```
//!
//! One task evaluates a `sometimes`, an `always`, a numeric `always` and a `sometimes_each`,
//! 2,000,000 times each, in one world; prints the best of five runs in nanoseconds per evaluation.
#![allow(clippy::unwrap_used, missing_docs)]

use std::time::Instant;

use moonpool_core::{
    assert_always, assert_always_less_than, assert_sometimes, assert_sometimes_each,
};
use moonpool_sim::{SimWorld, WorldConfig};

fn main() {
    let n: u64 = 2_000_000;
    let mut best = f64::MAX;
    for _ in 0..5 {
        let mut world = SimWorld::with_config(1, WorldConfig::quiet()).unwrap();
        world
            .add_workload("w", "10.0.0.1", move |_providers| async move {
                for i in 0..n {
                    assert_sometimes!(i % 7 == 0, "seven");
                    assert_always!(i < u64::MAX, "bounded");
                    assert_always_less_than!(i, u64::MAX, "less");
                    assert_sometimes_each!("bucket", [("b", i % 4)]);
                }
            })
            .unwrap();
        let started = Instant::now();
        world.run().unwrap();
        #[allow(clippy::cast_precision_loss)]
        let ns = started.elapsed().as_nanos() as f64 / (4 * n) as f64;
        best = best.min(ns);
    }
    println!("assertions: {best:.1} ns per evaluation (best of 5 runs of 4 x {n})");
}
