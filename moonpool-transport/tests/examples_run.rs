//! The transport's examples, run as tests in both of their modes: on Tokio over loopback TCP
//! and in simulation with a chaotic network (a few seeds). Each example file is compiled here
//! as a module (its `main` unused), so `cargo nextest` builds and runs exactly the code that
//! `cargo run --example` does, without a nested cargo.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
// Each example declares `mod common;` as a standalone program does, so the shared helpers are
// compiled once per example here: the same code as `cargo run --example` builds.
#![allow(clippy::duplicate_mod)]

#[allow(dead_code)]
#[path = "../examples/ping_pong.rs"]
mod ping_pong;

#[allow(dead_code)]
#[path = "../examples/calculator.rs"]
mod calculator;

#[allow(dead_code)]
#[path = "../examples/calculator_raw.rs"]
mod calculator_raw;

/// Seeds each example runs in simulation (the examples default to seed 1); a run takes a few
/// milliseconds.
const SEEDS: std::ops::RangeInclusive<u64> = 1..=16;

#[test]
fn test_ping_pong_example_on_tokio() {
    ping_pong::run_on_tokio().unwrap();
}

#[test]
fn test_ping_pong_example_in_simulation() {
    for seed in SEEDS.clone() {
        ping_pong::run_in_simulation(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn test_calculator_example_on_tokio() {
    calculator::run_on_tokio().unwrap();
}

#[test]
fn test_calculator_example_in_simulation() {
    for seed in SEEDS.clone() {
        calculator::run_in_simulation(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

#[test]
fn test_calculator_raw_example_on_tokio() {
    calculator_raw::run_on_tokio().unwrap();
}

#[test]
fn test_calculator_raw_example_in_simulation() {
    for seed in SEEDS.clone() {
        calculator_raw::run_in_simulation(seed).unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}
