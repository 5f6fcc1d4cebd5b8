//! The quiet write and delivery paths change nothing a run does: the same seeds, run with the
//! quiet paths on and with every write and delivery sent down the full paths
//! (`network::testing`), give the same
//! fingerprints, event counts, end times, failures and fault counts, under configurations that
//! mix quiet writes and deliveries with everything that sends them down the full paths (delays,
//! cuts, partitions, clogs, read clogs, bit flips, loss bursts, full send buffers, closes, chaos
//! then settle). And the faults a write or a delivery decides still fire when their
//! configuration allows them.
// Configurations are built from `default()` and assigned field by field (as code outside the
// crate must once they are `#[non_exhaustive]`).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)]

use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TaskProvider, TcpListener, TimeProvider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::network::ConnectionEnd;
use crate::network::testing::{quiet_counts, set_full_paths_only};
use crate::{
    BuggifyConfig, Chaos, IterationControl, LatencyDistribution, NetworkConfiguration,
    SimProviders, SimulationBuilder, SimulationReport, WorldConfig,
};

const PORT: u16 = 4500;

/// What a scenario's client does besides its round trips.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Script {
    /// Round trips only.
    None,
    /// Scripted faults on its own connections between round trips: a delay, a cut, a partition,
    /// a clog, a read clog, a loss burst, a tiny send buffer; then a close mid-stream.
    Faults,
    /// Two writes per round trip, half a latency apart, so that bytes are in flight in both
    /// directions when a write starts a random cut (which holds deliveries already on the way).
    Pipelined,
}

async fn echo_server(providers: SimProviders, ip: std::net::IpAddr) {
    let Ok(listener) = providers.network().bind(&format!("{ip}:{PORT}")).await else {
        return;
    };
    while let Ok((mut stream, _)) = listener.accept().await {
        drop(providers.task().spawn("echo", async move {
            let mut frame = [0u8; 96];
            loop {
                match stream.read(&mut frame).await {
                    Ok(n) if n > 0 => {
                        if stream.write_all(&frame[..n]).await.is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        }));
    }
}

fn scenario(name: &str, network: NetworkConfiguration, script: Script) -> SimulationBuilder {
    let mut config = WorldConfig::quiet();
    config.network = network;
    SimulationBuilder::new(name)
        .world_config(config)
        .progress(false)
        .process("echo", 2, |ctx| echo_server(ctx.providers, ctx.ip))
        .workload("client", 1, move |ctx| async move {
            let time = ctx.providers.time().clone();
            let control = ctx.providers.control().clone();
            let ips = ctx.topology.ips_of("echo");
            let mut streams = Vec::new();
            for ip in &ips {
                if let Ok(Ok(stream)) = time
                    .timeout(
                        Duration::from_secs(2),
                        ctx.providers.network().connect(&format!("{ip}:{PORT}")),
                    )
                    .await
                {
                    streams.push(stream);
                }
            }
            let mut reply = [0u8; 128];
            for round in 0..60usize {
                let Some(stream) = streams.get_mut(round % 2) else {
                    break;
                };
                let id = stream.connection_id();
                if script == Script::Faults {
                    // Odd rounds use the second connection. Those that reach a half through
                    // `WorldControl`'s fault setters (a loss burst, a delay) and a pair clog
                    // send its writes down the full path for good, so they come last.
                    match round {
                        5 => {
                            control.cut_connection(id, Some(Duration::from_millis(7)));
                        }
                        8 => control.partition(ctx.ip, ips[0], Duration::from_millis(5)),
                        11 => {
                            control.clog_connection_reads(
                                id,
                                ConnectionEnd::Server,
                                Duration::from_millis(2),
                            );
                        }
                        14 => {
                            control.set_send_buffer_capacity(id, ConnectionEnd::Client, 9);
                        }
                        20 => {
                            control.loss_burst(id, ConnectionEnd::Client, Duration::from_millis(3));
                        }
                        26 => {
                            control.set_connection_delay(
                                id,
                                Duration::from_millis(3),
                                Duration::ZERO,
                            );
                        }
                        33 => control.clog(ctx.ip, ips[1], Duration::from_millis(4)),
                        54 => {
                            // Half-closed: the echo sees end-of-file; later writes fail.
                            let _ = stream.shutdown().await;
                        }
                        _ => {}
                    }
                }
                let len = 4 + (round * 7) % 60;
                let frame: Vec<u8> = (0..len).map(|i| (i + round) as u8).collect();
                let pipelined = script == Script::Pipelined;
                let trip = time
                    .timeout(Duration::from_millis(500), async {
                        stream.write_all(&frame).await?;
                        if pipelined {
                            time.sleep(Duration::from_micros(500)).await;
                            stream.write_all(&frame).await?;
                        }
                        let expected = if pipelined { 2 * len } else { len };
                        stream.read_exact(&mut reply[..expected]).await
                    })
                    .await;
                if !matches!(trip, Ok(Ok(_))) {
                    continue;
                }
            }
            Ok(())
        })
}

/// (seed, fingerprint, events, end time, failed) of every seed, and the report's fault counts.
type Outcome = (Vec<(u64, u64, u64, Duration, bool)>, String);

fn outcome(report: &SimulationReport) -> Outcome {
    (
        report
            .seeds
            .iter()
            .map(|s| {
                (
                    s.seed,
                    s.fingerprint,
                    s.events,
                    s.sim_time,
                    s.failure.is_some(),
                )
            })
            .collect(),
        format!("{:?}", report.faults),
    )
}

/// Runs `build` on `seeds` with the quiet paths on, then with every write and delivery on the
/// full paths; returns both outcomes and how many writes and deliveries took the quiet paths.
fn both_ways(build: impl Fn() -> SimulationBuilder, seeds: u64) -> (Outcome, Outcome, (u64, u64)) {
    let run = |full: bool| {
        set_full_paths_only(full);
        let report = build()
            .seeds(1..=seeds)
            .iterations(IterationControl::FixedCount(seeds as usize))
            .jobs(1)
            .run();
        set_full_paths_only(false);
        outcome(&report.unwrap())
    };
    let before = quiet_counts();
    let quiet = run(false);
    let after = quiet_counts();
    let used = (after.0 - before.0, after.1 - before.1);
    let full = run(true);
    assert_eq!(quiet_counts(), after, "the full-path run took a quiet path");
    (quiet, full, used)
}

/// `MOONPOOL_QUIET_WRITE_SEEDS` times `default` seeds (1 unless set: to run many more by hand).
fn seeds(default: u64) -> u64 {
    let factor = std::env::var("MOONPOOL_QUIET_WRITE_SEEDS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(1);
    default * factor.max(1)
}

/// The quiet paths change nothing in `build`'s seeds; writes take the quiet path, and so do
/// deliveries when `quiet_deliveries` (their faults are off).
fn assert_same(
    name: &str,
    build: impl Fn() -> SimulationBuilder,
    seeds: u64,
    quiet_deliveries: bool,
) {
    let (quiet, full, (writes, deliveries)) = both_ways(build, seeds);
    assert!(writes > 0, "{name}: no write took the quiet path");
    assert_eq!(
        deliveries > 0,
        quiet_deliveries,
        "{name}: {deliveries} deliveries took the quiet path"
    );
    assert_eq!(quiet, full, "{name}: the quiet paths changed the run");
}

#[test]
fn test_quiet_paths_change_nothing_with_a_fixed_latency() {
    assert_same(
        "fixed",
        || {
            scenario(
                "quiet-fixed",
                NetworkConfiguration::with_fixed_latency(Duration::from_millis(1)),
                Script::None,
            )
        },
        seeds(6),
        true,
    );
}

/// A drawn latency with every buggify site on (short writes fire on the quiet path), then the
/// same with the faults a delivery draws (bit flips, read clogs: deliveries take the full path)
/// and partial reads.
#[test]
fn test_quiet_paths_change_nothing_with_drawn_latencies_buggify_and_read_faults() {
    let build = |read_faults: bool| {
        let mut network = NetworkConfiguration::with_fixed_latency(Duration::from_millis(1));
        network.write_latency = LatencyDistribution::Uniform {
            min: Duration::from_micros(300),
            max: Duration::from_millis(3),
        };
        if read_faults {
            network.bit_flip_probability = 0.01;
            network.bit_flip_cooldown = Duration::ZERO;
            network.partial_read_probability = 0.3;
            network.read_clog_probability = 0.05;
            network.read_clog_duration = (Duration::from_micros(100), Duration::from_millis(2));
        }
        let mut buggify = BuggifyConfig::default();
        buggify.enabled = true;
        buggify.site_activation_probability = 1.0;
        scenario("quiet-drawn", network, Script::None).buggify(buggify)
    };
    assert_same("drawn", || build(false), seeds(6), true);
    assert_same("drawn, read faults", || build(true), seeds(6), false);
    // The short write fired on the quiet path (the site is the same one either way).
    let mut buggify = BuggifyConfig::default();
    buggify.enabled = true;
    buggify.site_activation_probability = 1.0;
    let before = quiet_counts().0;
    let report = scenario(
        "quiet-short-writes",
        NetworkConfiguration::with_fixed_latency(Duration::from_millis(1)),
        Script::None,
    )
    .buggify(buggify)
    .seeds(1..=4)
    .iterations(IterationControl::FixedCount(4))
    .jobs(1)
    .run()
    .unwrap();
    assert!(quiet_counts().0 > before);
    let fired: u64 = report
        .buggify_sites()
        .filter(|r| {
            r.location.contains("providers/network/write.rs")
                && r.function.contains("poll_write_locked")
        })
        .map(|r| r.fired)
        .sum();
    assert!(
        fired > 0,
        "no short write fired on the quiet path:\n{report}"
    );
}

/// Scripted delays, cuts, partitions, clogs, read clogs, loss bursts, a tiny send buffer and a
/// shutdown mid-stream: writes move between the quiet and the full path.
#[test]
fn test_quiet_paths_change_nothing_around_scripted_faults_and_full_buffers() {
    assert_same(
        "scripted",
        || {
            scenario(
                "quiet-scripted",
                NetworkConfiguration::with_fixed_latency(Duration::from_millis(1)),
                Script::Faults,
            )
        },
        seeds(6),
        true,
    );
}

/// Network chaos (per-write faults on, random cuts among them) for a while, with pipelined
/// writes so that deliveries are on the way when a cut starts, then the settle phase, whose
/// configuration (`end_chaos`, through `NetworkState::set_config`) lets writes take the quiet
/// path; deliveries take theirs throughout (no fault a delivery draws is on).
#[test]
fn test_quiet_paths_change_nothing_across_chaos_and_settle() {
    let build = || {
        let mut network = NetworkConfiguration::default();
        network.write_latency = LatencyDistribution::Fixed(Duration::from_millis(1));
        network.partial_write_probability = 0.2;
        network.clog_probability = 0.02;
        // Random cuts that outlast the chaos phase: the settle phase's quiet writes wait for
        // them (a cut sets no delay on the half, only the cut time the quiet path reads).
        network.cut_probability = 0.1;
        network.cut_duration = (Duration::from_millis(5), Duration::from_millis(80));
        network.loss_probability = 0.02;
        // No fault a delivery draws: deliveries take the quiet path during the chaos too, and
        // meet the random cuts (`stalls`) there.
        network.bit_flip_probability = 0.0;
        scenario("quiet-chaos", network, Script::Pipelined)
            .enable_chaos([Chaos::Network])
            .chaos_duration(Duration::from_millis(60))
    };
    assert_same("chaos then settle", build, seeds(8), true);
}

/// Each fault a write or a delivery decides, alone on a quiet configuration, still fires (the
/// quiet path is off for it), and with all of them at zero the configuration is quiet.
#[test]
fn test_each_per_write_fault_still_fires_when_enabled() {
    type Knob = fn(&mut NetworkConfiguration);
    let knobs: [(&str, Knob, &str); 9] = [
        (
            "partial write",
            |c| c.partial_write_probability = 0.5,
            "network.partial_write",
        ),
        ("clog", |c| c.clog_probability = 0.2, "network.clog"),
        ("cut", |c| c.cut_probability = 0.1, "network.cut"),
        (
            "partition",
            |c| c.partition_probability = 0.05,
            "network.partition",
        ),
        ("loss", |c| c.loss_probability = 0.2, "network.loss"),
        (
            "loss burst",
            |c| c.loss_burst_probability = 0.1,
            "network.loss",
        ),
        (
            "random close",
            |c| c.random_close_probability = 0.05,
            "network.random_close",
        ),
        (
            "bit flip",
            |c| c.bit_flip_probability = 0.2,
            "network.bit_flip",
        ),
        (
            "read clog",
            |c| c.read_clog_probability = 0.2,
            "network.read_clog",
        ),
    ];
    let quiet = NetworkConfiguration::with_fixed_latency(Duration::from_millis(1));
    assert!(quiet.quiet_writes() && quiet.quiet_deliveries());
    let mut nan = quiet.clone();
    nan.clog_probability = f64::NAN;
    nan.bit_flip_probability = f64::NAN;
    assert!(
        nan.quiet_writes() && nan.quiet_deliveries(),
        "NaN draws nothing, as zero"
    );
    for (name, knob, counter) in knobs {
        let mut network = quiet.clone();
        knob(&mut network);
        assert!(
            !(network.quiet_writes() && network.quiet_deliveries()),
            "{name}: still quiet"
        );
        let report = scenario(&format!("fires-{name}"), network, Script::None)
            .seeds(1..=4)
            .iterations(IterationControl::FixedCount(4))
            .jobs(1)
            .run()
            .unwrap();
        let fired: u64 = report
            .faults
            .iter()
            .filter(|(kind, _)| kind.starts_with(counter))
            .map(|(_, n)| *n)
            .sum();
        assert!(fired > 0, "{name} never fired: {:?}", report.faults);
    }
}
