//! Helpers shared by the simulation tests.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::time::Duration;

use moonpool_sim::{ClockConfiguration, NetworkConfiguration, RunSummary, SimWorld, WorldConfig};
use moonpool_transport::ReplyError;

/// FDB-like chaos with fault rates raised so that short runs see every fault family.
pub fn chaos_network() -> NetworkConfiguration {
    let mut cfg = NetworkConfiguration::default();
    cfg.clog_probability = 0.004;
    cfg.partition_probability = 0.000_5;
    cfg.partition_duration = (Duration::from_millis(100), Duration::from_secs(2));
    cfg.random_close_probability = 0.004;
    cfg.random_close_cooldown = Duration::from_millis(300);
    cfg.cut_probability = 0.001;
    cfg.cut_duration = (Duration::from_millis(50), Duration::from_secs(1));
    cfg.black_hole_probability = 0.02;
    cfg.bit_flip_probability = 0.002;
    cfg.bit_flip_cooldown = Duration::from_millis(500);
    cfg.connect_refuse_probability = 0.02;
    cfg.connect_hang_probability = 0.01;
    cfg
}

/// A world configuration with chaos on the network and the clocks.
pub fn chaos_world() -> WorldConfig {
    let mut cfg = WorldConfig::default();
    cfg.network = chaos_network();
    cfg.clock = ClockConfiguration::default();
    cfg.time_budget = Duration::from_secs(600);
    cfg.record_trace = std::env::var("MOONPOOL_TRANSPORT_TRACE").is_ok();
    cfg
}

/// [`chaos_world`] plus the simulator's TCP-layer faults, drawn per seed (loss as retransmission,
/// loss bursts, read-side clogs, random closes on reads, asymmetric delay, bandwidth-delay send
/// buffers): each family on or off and its rate varied by `seed`.
pub fn chaos_world_with_tcp_faults(seed: u64) -> WorldConfig {
    let mut config = chaos_world();
    config.network = config.network.with_random_tcp_faults(seed);
    config
}

/// Seeds for a `slow_simulation_*` run: `full` in the `sim` profile, `ci` when `CI` is set;
/// `MOONPOOL_TRANSPORT_SEEDS` overrides both.
pub fn slow_seeds(full: u64, ci: u64) -> std::ops::Range<u64> {
    let default = if std::env::var_os("CI").is_some() {
        ci
    } else {
        full
    };
    seeds(default)
}

/// Runs the world built by `build` for `seed` twice and checks both runs agree.
pub fn run_twice<T: PartialEq + std::fmt::Debug>(
    seed: u64,
    build: impl Fn(u64) -> (SimWorld, Box<dyn Fn() -> T>),
) -> (RunSummary, T) {
    let (mut first, observe_first) = build(seed);
    let summary = first
        .run()
        .unwrap_or_else(|error| panic!("seed {seed}: {error}"));
    let observed = observe_first();
    drop(first);
    let (mut second, observe_second) = build(seed);
    let again = second
        .run()
        .unwrap_or_else(|error| panic!("seed {seed} (second run): {error}"));
    if summary != again {
        let first_diff = summary
            .trace
            .iter()
            .zip(&again.trace)
            .position(|(a, b)| a != b);
        if let Some(index) = first_diff {
            panic!(
                "seed {seed}: the two runs diverged at event {index}: {:?} vs {:?} (previous {:?})",
                summary.trace[index],
                again.trace[index],
                index.checked_sub(1).map(|i| summary.trace[i])
            );
        }
        panic!("seed {seed}: the two runs diverged: {summary:?} vs {again:?}");
    }
    assert_eq!(
        observed,
        observe_second(),
        "seed {seed}: the two runs observed different outcomes"
    );
    (summary, observed)
}

/// Outcome names, for counting.
pub fn outcome_name<T>(result: &Result<T, ReplyError>) -> &'static str {
    match result {
        Ok(_) => "ok",
        Err(ReplyError::BrokenPromise { .. }) => "broken_promise",
        Err(ReplyError::ConnectionFailed { .. }) => "connection_failed",
        Err(ReplyError::MaybeDelivered { .. }) => "maybe_delivered",
        Err(ReplyError::Timeout { .. }) => "timeout",
        Err(ReplyError::Serialization { .. }) => "serialization",
        Err(ReplyError::EndpointNotFound { .. }) => "endpoint_not_found",
        Err(ReplyError::Overloaded { .. }) => "overloaded",
        Err(ReplyError::BoundExceeded { .. }) => "bound_exceeded",
        Err(ReplyError::SendFailed { .. }) => "send_failed",
        Err(ReplyError::TransportClosed) => "transport_closed",
        Err(_) => "other",
    }
}

/// Adds `other` into `total`.
pub fn merge(total: &mut BTreeMap<String, u64>, other: &BTreeMap<String, u64>) {
    for (key, value) in other {
        *total.entry(key.clone()).or_insert(0) += value;
    }
}

/// Seeds to run: `MOONPOOL_TRANSPORT_SEEDS` overrides the default count.
pub fn seeds(default: u64) -> std::ops::Range<u64> {
    let count = std::env::var("MOONPOOL_TRANSPORT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    1..1 + count
}

/// Asserts every name in `names` was counted at least once in `counts`.
pub fn assert_seen<K: Ord + std::borrow::Borrow<str> + std::fmt::Debug>(
    counts: &BTreeMap<K, u64>,
    names: &[&str],
) {
    for name in names {
        assert!(
            counts.get(*name).copied().unwrap_or(0) > 0,
            "never saw {name}: {counts:#?}"
        );
    }
}
