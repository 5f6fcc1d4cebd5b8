//! The cost of a timeline: child timelines per second when every child does almost nothing
//! (a fork, a few steps, an exit, a wait), for a parent with more and more memory touched (fork
//! copies the page tables of what is mapped), one at a time and on every core.
//!
//! ```sh
//! cargo run --release -p moonpool-explorer --example fork_bench
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Instant;

use moonpool_explorer::{
    Branch, Coverage, ExplorationConfig, Explorer, SplitPoint, TimelineEnd, mix,
};

/// One exploration of `children` trivial child timelines: a root whose every step is a fresh
/// discovery, so each step splits until the budget is spent.
fn timelines_per_second(children: u64, parallelism: usize) -> f64 {
    let config = ExplorationConfig::default()
        .with_global_energy(children)
        .with_per_split(children)
        .with_min_per_split(children)
        .with_batch(32)
        .with_max_depth(1)
        .with_parallelism(parallelism);
    let mut explorer = Explorer::new(config).unwrap();
    let started = Instant::now();
    explorer.begin_tree(1);
    let mut rng = 1u64;
    for position in 1..=4u64 {
        rng = mix(rng, position);
        let fresh = explorer.cover(mix(position, rng)) == Coverage::New;
        if let Branch::Child { seed } = explorer.split(SplitPoint { position, fresh }) {
            rng = seed;
        }
    }
    explorer.end_timeline(&TimelineEnd {
        failure: None,
        fingerprint: rng,
    });
    let _ = explorer.take_tree();
    let figures = explorer.figures();
    #[allow(clippy::cast_precision_loss)]
    let rate = figures.children as f64 / started.elapsed().as_secs_f64();
    rate
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    println!("trivial child timelines per second (fork + a few steps + _exit + waitpid)");
    println!(
        "{:>22} | {:>12} | {:>12}",
        "parent memory touched",
        "sequential",
        format!("{cores} at once")
    );
    let mut ballast: Vec<u8> = Vec::new();
    for megabytes in [0usize, 64, 256, 1024] {
        // Touch the memory so it is resident: fork copies the page tables of what is mapped.
        ballast.resize(megabytes << 20, 1);
        for page in ballast.chunks_mut(4096) {
            page[0] = 2;
        }
        let children = 2_000;
        let sequential = timelines_per_second(children, 1);
        let parallel = timelines_per_second(children, cores);
        println!(
            "{:>18} MiB | {sequential:>12.0} | {parallel:>12.0}",
            megabytes
        );
    }
    std::hint::black_box(&ballast);
}
