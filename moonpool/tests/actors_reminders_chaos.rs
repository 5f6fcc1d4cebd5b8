//! Durable reminders and timers under chaos (the cluster, the nodes and the `Alarm` actor are
//! in `reminders_common`).
//!
//! `slow_simulation_reminders_chaos`: four nodes and the cluster process; crashes, partitions,
//! cluster process crashes, graceful reboots, reminders registered and unregistered and timers
//! started while chaos lasts, every buggify point on, clocks drifting. Invariants after every
//! event: no tick of a registration is claimed after its unregister was acknowledged (checked by
//! the table's wrapper, across restarts of the cluster process); no two turns of one identity
//! at once; no timer tick outside its activation. After the heal and `RECOVERY`, every
//! registered reminder fires in every window of `period + LATENESS`.
//!
//! 1,000 seeds under the `sim` nextest profile (`MOONPOOL_ACTOR_SEEDS` changes the count), a
//! bounded count when `CI` is set. `test_reminders_simulation_is_deterministic`: two chaos seeds
//! run twice give the same fingerprints.
#![cfg(feature = "actors")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

mod reminders_common;
mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use moonpool::sim::{
    Chaos, ClockConfiguration, IterationControl, RebootKind, SimulationBuilder, SimulationReport,
    WorkloadContext, WorkloadError,
};
use moonpool::{Providers, RandomProvider, TimeProvider, assert_always, assert_sometimes};
use reminders_common::*;

fn seeds(default: usize) -> usize {
    std::env::var("MOONPOOL_ACTOR_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// The chaos driver: registers reminders, crashes and partitions while chaos lasts, unregisters
/// some, then checks that every registered reminder fires in every window after recovery.
async fn chaos_driver(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let d = Driver::new(ctx)?;
    let random = d.ctx.providers.random().clone();
    let nodes = d.ctx.topology.ips_of("node");
    let cluster_ip = d.ctx.topology.ips_of("cluster")[0];
    let names: Vec<String> = (0..nodes.len()).map(|i| format!("node-{i}")).collect();
    // (key, name) -> period, for the reminders registered and not unregistered.
    let mut registered: BTreeMap<(i64, String), u64> = BTreeMap::new();
    let mut next = 0u64;
    // Three reminders registered before the faults do much (each retried until acknowledged).
    for key in 0..3i64 {
        let period = random.random_range(1_000..4_000u64);
        let name = format!("base{key}");
        let armed = d
            .ctx
            .providers
            .time()
            .timeout(
                Duration::from_secs(10),
                d.until_ok(10_000, || {
                    AlarmRef::new(key).arm(&d.client, name.clone(), 0, Some(period))
                }),
            )
            .await;
        if let Ok(Some(Ok(_))) = armed {
            registered.insert((key, name), period);
        }
    }
    while d.ctx.chaos_active() {
        let roll = random.random_range(0..100u32);
        match roll {
            0..=29 => {
                let key = random.random_range(0..10i64);
                let period = random.random_range(1_000..4_000u64);
                next += 1;
                let name = format!("r{next}");
                let delay = random.random_range(0..3_000u64);
                let armed = d
                    .ctx
                    .providers
                    .time()
                    .timeout(
                        Duration::from_secs(20),
                        AlarmRef::new(key).arm(&d.client, name.clone(), delay, Some(period)),
                    )
                    .await;
                match armed {
                    Ok(Ok(Ok(_))) => {
                        assert_sometimes!(true, "a reminder is registered under chaos");
                        registered.insert((key, name), period);
                    }
                    // Not acknowledged: it may or may not be stored; it is not checked.
                    _ => assert_sometimes!(true, "a registration is not acknowledged"),
                }
            }
            30..=39 if !registered.is_empty() => {
                let index = random.random_range(0..registered.len());
                let (key, name) = registered.keys().nth(index).cloned().unwrap();
                registered.remove(&(key, name.clone()));
                let disarmed = d
                    .ctx
                    .providers
                    .time()
                    .timeout(
                        Duration::from_secs(20),
                        AlarmRef::new(key).disarm(&d.client, name.clone()),
                    )
                    .await;
                if let Ok(Ok(Ok(true))) = disarmed {
                    assert_sometimes!(true, "a reminder is unregistered under chaos");
                }
            }
            40..=49 => {
                let name = &names[random.random_range(0..names.len())];
                let process = d.control().process(name).unwrap();
                if d.control().is_alive(process) {
                    assert_sometimes!(true, "a node crashes");
                    let restart = random.random_range(300..5_000);
                    d.crash(name, Some(restart));
                }
            }
            50..=54 => {
                let process = d.control().process("cluster-0").unwrap();
                if d.control().is_alive(process) {
                    assert_sometimes!(true, "the cluster process crashes");
                    d.crash("cluster-0", Some(random.random_range(200..3_000)));
                }
            }
            55..=69 => {
                let a = random.random_range(0..nodes.len());
                let b = (a + random.random_range(1..nodes.len())) % nodes.len();
                let duration = Duration::from_millis(random.random_range(500..5_000));
                d.control().partition(nodes[a], nodes[b], duration);
            }
            70..=74 => {
                let node = nodes[random.random_range(0..nodes.len())];
                let duration = Duration::from_millis(random.random_range(500..5_000));
                d.control().partition(node, cluster_ip, duration);
            }
            75..=84 => d.control().heal_partitions(),
            85..=89 => {
                let name = &names[random.random_range(0..names.len())];
                let process = d.control().process(name).unwrap();
                if d.control().is_alive(process) {
                    let restart = Duration::from_millis(random.random_range(500..4_000));
                    d.control()
                        .reboot(process, RebootKind::Graceful, Some(restart));
                }
            }
            90..=94 => {
                // A timer on some activation (its ticks are checked by the invariant).
                let key = random.random_range(0..10i64);
                let started = d
                    .ctx
                    .providers
                    .time()
                    .timeout(
                        Duration::from_secs(10),
                        AlarmRef::new(key).timer(&d.client, "t".into(), 50, Some(200)),
                    )
                    .await;
                if let Ok(Ok(Ok(_))) = started {
                    assert_sometimes!(true, "a timer starts under chaos");
                }
            }
            _ => {}
        }
        d.sleep(random.random_range(50..800)).await;
    }
    d.control().heal_partitions();
    d.ctx.chaos_ended().await;
    d.sleep(RECOVERY.as_millis() as u64).await;
    let from = d.now();
    let longest = registered.values().copied().max().unwrap_or(0);
    let window = longest + LATENESS.as_millis() as u64;
    d.sleep(3 * window).await;
    let to = d.now();
    for ((key, name), period) in &registered {
        let fired: Vec<u64> = d
            .fired(*key, name)
            .into_iter()
            .map(|fire| fire.at)
            .filter(|at| *at >= from)
            .collect();
        let bound = period + LATENESS.as_millis() as u64;
        let mut last = from;
        let mut gaps = Vec::new();
        for at in fired.iter().copied().chain([to]) {
            gaps.push(at - last);
            last = at;
        }
        let widest = gaps.iter().copied().max().unwrap_or(0);
        assert_always!(
            widest <= bound,
            "after recovery every registered reminder fires within period + LATENESS",
            (key, name, period, widest, &fired)
        );
        assert_sometimes!(
            !fired.is_empty(),
            "a registered reminder fires after recovery"
        );
    }
    Ok(())
}

fn chaos(name: &str, expect: bool) -> SimulationBuilder {
    let mut clock = ClockConfiguration::default();
    clock.drift_max = Duration::from_millis(200);
    clock.sleep_delay_max = Duration::from_millis(100);
    let builder = SimulationBuilder::new(name)
        .progress(false)
        // The runtime's routing and membership sites are phase 5's goals; this suite expects
        // the reminder delivery's own sites below.
        .coverage_exclude("moonpool::actors")
        .enable_chaos([Chaos::Network, Chaos::Buggify, Chaos::Clock])
        .clock(clock)
        .chaos_duration(Duration::from_secs(25))
        .settle_timeout(Duration::from_secs(300))
        .process("cluster", 1, cluster)
        .process("node", 4, node)
        .workload("driver", 1, chaos_driver)
        .invariant(
            "one turn per identity, no claim after unregister, ticks within activations",
            invariants,
        );
    if !expect {
        // A few seeds need not reach every goal.
        return builder.coverage_exclude("actors_reminders");
    }
    builder.expect_assertions([
        "a reminder tick is delivered and acknowledged",
        "a reminder tick's delivery fails",
        "the reminder table does not answer a list",
    ])
}

#[test]
fn slow_simulation_reminders_chaos() {
    let started = std::time::Instant::now();
    let run = chaos("actors-reminders-chaos", true)
        .iterations(IterationControl::FixedCount(seeds(1_000)))
        .ci_max_seeds(6)
        .run()
        .unwrap();
    support::report(&run, started);
    run.assert_success();
}

/// Reminders and timers take everything from the providers: a chaos seed run twice gives the
/// same fingerprint.
#[test]
fn test_reminders_simulation_is_deterministic() {
    let run = chaos("actors-reminders-determinism", false)
        .chaos_duration(Duration::from_secs(8))
        .check_determinism(true)
        .seeds([7, 8])
        .run()
        .unwrap();
    run.assert_success();
    let again = chaos("actors-reminders-determinism", false)
        .chaos_duration(Duration::from_secs(8))
        .seeds([7, 8])
        .run()
        .unwrap();
    let prints = |r: &SimulationReport| r.seeds.iter().map(|s| s.fingerprint).collect::<Vec<_>>();
    assert_eq!(prints(&run), prints(&again));
}
