//! Exploration against seed sweeping, on the two mazes of `support/mazes.rs` (a planted failure
//! behind `k` events of probability 1/50 each, in order).
//!
//! ```sh
//! cargo run --release -p moonpool-sim --features explorer --example maze_explore
//! cargo run --release -p moonpool-sim --features explorer --example maze_explore -- --roots 3 --sweep-cap 300000
//! ```
//!
//! For each maze and `k` in 3 and 4, over several root seeds (`--roots`, default 5):
//!
//! - **explore**: the stated budget below, sequential (one core), stopping at the first bug:
//!   timelines and wall time to the first failure;
//! - **sweep, same wall time**: plain seeds on one core for as long as the exploration took;
//!   did any fail;
//! - **sweep to the first failure** (k = 3 only; at most `--sweep-cap` seeds, default 1,000,000):
//!   plain seeds, one core, until one fails: seeds and wall time to it.
//!
//! Then the ratio of the medians of timelines to the first failure, sweep over explore.
//!
//! `-- --rates` prints timelines per second instead (the cost of a fork against a fresh seed).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[path = "support/mazes.rs"]
mod mazes;

use std::time::{Duration, Instant};

use moonpool_sim::{ExplorationConfig, IterationControl, SimulationBuilder};

/// The stated budget: at most 20,000 child timelines, 200 per discovery (at least 150 before
/// giving up on a barren one), batches of 10, one core.
fn budget() -> ExplorationConfig {
    ExplorationConfig::default()
        .with_global_energy(20_000)
        .with_per_split(200)
        .with_min_per_split(150)
        .with_batch(10)
        .with_stop_on_first_bug(true)
        .sequential()
}

const ODDS: u64 = 50;

#[derive(Clone, Copy)]
enum Maze {
    Locks,
    Dungeon,
}

impl Maze {
    fn name(self) -> &'static str {
        match self {
            Maze::Locks => "locks",
            Maze::Dungeon => "dungeon",
        }
    }

    fn build(self, k: usize) -> SimulationBuilder {
        let name = format!("{}-{k}", self.name());
        match self {
            Maze::Locks => mazes::lock_maze(&name, k, ODDS),
            Maze::Dungeon => mazes::dungeon(&name, u8::try_from(k).unwrap(), ODDS),
        }
    }
}

struct Explored {
    timelines: Option<u64>,
    wall: Duration,
    recipe: Option<String>,
}

fn explore(maze: Maze, k: usize, base: u64) -> Explored {
    let started = Instant::now();
    let report = maze
        .build(k)
        .base_seed(base)
        .iterations(IterationControl::FixedCount(1_000_000))
        .explore(budget())
        .run()
        .unwrap();
    let wall = started.elapsed();
    let e = report.exploration.as_ref().unwrap();
    Explored {
        timelines: e.first_bug_timeline,
        wall: e.first_bug_wall.unwrap_or(wall),
        recipe: report.explored_bugs().first().map(|b| b.recipe.to_string()),
    }
}

/// Plain seeds from `base` on one core for `wall`; returns (seeds run, failures).
fn sweep_for(maze: Maze, k: usize, base: u64, wall: Duration) -> (usize, usize) {
    let report = maze
        .build(k)
        .base_seed(base)
        .jobs(1)
        .iterations(IterationControl::TimeLimit(
            wall.max(Duration::from_millis(1)),
        ))
        .run()
        .unwrap();
    (report.seeds_run(), report.failed())
}

/// Plain seeds from `base`, one core, until one fails (at most `cap`): (seeds to it, wall).
fn sweep_until_failure(maze: Maze, k: usize, base: u64, cap: u64) -> (Option<u64>, Duration) {
    let chunk = 20_000u64;
    let started = Instant::now();
    let mut done = 0u64;
    while done < cap {
        let n = chunk.min(cap - done);
        let chunk_started = Instant::now();
        let report = maze
            .build(k)
            .seeds(base + done..base + done + n)
            .jobs(1)
            .iterations(IterationControl::FixedCount(usize::try_from(n).unwrap()))
            .run()
            .unwrap();
        if let Some(first) = report.failures().next() {
            let index = report
                .seeds
                .iter()
                .position(|s| s.seed == first.seed)
                .unwrap() as u64;
            // Wall time to the failing seed: whole chunks before, and this one pro rata.
            #[allow(clippy::cast_precision_loss)]
            let part = chunk_started.elapsed().as_secs_f64() * (index + 1) as f64 / n as f64;
            let wall = chunk_started.duration_since(started) + Duration::from_secs_f64(part);
            return (Some(done + index + 1), wall);
        }
        done += n;
    }
    (None, started.elapsed())
}

fn median(values: &mut [u64]) -> Option<u64> {
    values.sort_unstable();
    values.get(values.len() / 2).copied()
}

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Timelines per second: the lock maze explored until 5,000 children are spent, against plain
/// seeds of the same maze for the same wall time, one core each.
fn rates() {
    let config = {
        let mut cfg = budget();
        cfg.global_energy = 5_000;
        cfg.stop_on_first_bug = false;
        cfg
    };
    for parallelism in [1, 2] {
        let started = Instant::now();
        let report = Maze::Locks
            .build(3)
            .base_seed(9_000_000)
            .iterations(IterationControl::FixedCount(1_000_000))
            .explore({
                let mut cfg = config.clone();
                cfg.parallelism = parallelism;
                cfg
            })
            .run()
            .unwrap();
        let wall = started.elapsed();
        let e = report.exploration.as_ref().unwrap();
        #[allow(clippy::cast_precision_loss)]
        let rate = |n: u64| n as f64 / wall.as_secs_f64();
        println!(
            "explore, {parallelism} at once: {} timelines ({} roots, {} children) in {wall:.2?}: {:.0} timelines/s, {:.0} children/s",
            e.timelines,
            e.roots,
            e.children,
            rate(e.timelines),
            rate(e.children)
        );
        if parallelism == 1 {
            let (run, _) = sweep_for(Maze::Locks, 3, 9_000_000, wall);
            #[allow(clippy::cast_precision_loss)]
            let seeds = run as f64 / wall.as_secs_f64();
            println!("sweep, one core, same wall time: {run} seeds: {seeds:.0} seeds/s");
        }
    }
}

fn main() {
    if std::env::args().any(|a| a == "--rates") {
        rates();
        return;
    }
    let roots = arg("--roots", 5);
    let cap = arg("--sweep-cap", 1_000_000);
    let config = budget();
    println!(
        "budget: global_energy {}, per_split {}, min_per_split {}, batch {}, parallelism 1; odds 1/{ODDS} per event",
        config.global_energy, config.per_split, config.min_per_split, config.batch
    );
    for maze in [Maze::Locks, Maze::Dungeon] {
        for k in [3usize, 4] {
            println!("\n== {} k={k} ==", maze.name());
            println!(
                "{:>10} | {:>18} {:>10} | {:>22} | {:>22} {:>10}",
                "root base",
                "explore timelines",
                "wall",
                "sweep, same wall",
                "sweep to 1st failure",
                "wall"
            );
            let mut explored = Vec::new();
            let mut swept = Vec::new();
            for r in 0..roots {
                let base = 1_000_000 * (r + 1);
                let e = explore(maze, k, base);
                let (run, failed) = sweep_for(maze, k, base, e.wall);
                let to_first = if k == 3 {
                    Some(sweep_until_failure(maze, k, base, cap))
                } else {
                    None
                };
                println!(
                    "{base:>10} | {:>18} {:>10.3?} | {:>12} seeds, {} failed | {:>22} {:>10}",
                    e.timelines.map_or("none".to_string(), |t| t.to_string()),
                    e.wall,
                    run,
                    failed,
                    to_first.map_or("-".to_string(), |(n, _)| n
                        .map_or(format!("none in {cap}"), |n| n.to_string())),
                    to_first.map_or("-".to_string(), |(_, w)| format!("{w:.2?}")),
                );
                if let Some(recipe) = &e.recipe {
                    println!("{:>10}   first recipe: {recipe}", "");
                }
                if let Some(t) = e.timelines {
                    explored.push(t);
                }
                if let Some((Some(n), _)) = to_first {
                    swept.push(n);
                }
            }
            let (explore_median, sweep_median) = (median(&mut explored), median(&mut swept));
            println!(
                "found by exploration in {}/{roots} root seeds; median timelines to the first failure: explore {}, sweep {}{}",
                explored.len(),
                explore_median.map_or("-".to_string(), |m| m.to_string()),
                sweep_median.map_or("-".to_string(), |m| m.to_string()),
                match (explore_median, sweep_median) {
                    #[allow(clippy::cast_precision_loss)]
                    (Some(e), Some(s)) => format!(" (ratio {:.0}x)", s as f64 / e as f64),
                    _ => String::new(),
                }
            );
        }
    }
}
