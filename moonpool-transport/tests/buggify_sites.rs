//! The framework's own buggify sites (docs/fault-injection.md, "Buggify sites") fire under
//! chaos, the report lists them, and a workload that tolerates what a real network does still
//! passes.
//!
//! Two servers drain a message queue and send unreliable packets to themselves (local
//! delivery); a client with small peer queues sends bursts of reliable and unreliable messages
//! to both, through partitions, random closes and server reboots. Every transport site and the
//! simulated network's sites must fire at least once across the seeds.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool_core::{Endpoint, NetworkAddress, Providers, TaskProvider, TimeProvider, UID};
use moonpool_sim::{
    Attrition, BuggifyConfig, Chaos, IterationControl, ProcessContext, RebootKind,
    SimulationBuilder, SimulationReport, WorkloadContext, WorkloadError,
};
use moonpool_transport::{NetTransportBuilder, TransportConfig, TransportError};

const QUEUE: UID = UID::well_known(60);
const PORT: u16 = 4600;

/// Every buggify site of the framework this suite must see fire: (file, function, what it does).
const SITES: [(&str, &str, &str); 9] = [
    (
        "moonpool-transport/src/connection/keeper.rs",
        "run_peer_keeper",
        "delayed reconnect",
    ),
    (
        "moonpool-transport/src/peer/mod.rs",
        "enqueue_unreliable_lossy",
        "dropped unreliable packet",
    ),
    (
        "moonpool-transport/src/connection/read.rs",
        "read_loop",
        "slow ack",
    ),
    (
        "moonpool-transport/src/connection/monitor.rs",
        "monitor_loop",
        "early ping timeout",
    ),
    (
        "moonpool-transport/src/peer/queues.rs",
        "check_room",
        "queue near its bound",
    ),
    (
        "moonpool-transport/src/dispatch/core.rs",
        "send_frame",
        "reordered local delivery",
    ),
    (
        "moonpool-sim/src/providers/network/listener.rs",
        "accept",
        "slow accept",
    ),
    (
        "moonpool-sim/src/providers/network/stream.rs",
        "poll_read",
        "spurious would-block",
    ),
    (
        "moonpool-sim/src/providers/network/write.rs",
        "poll_write_locked",
        "short write",
    ),
];

async fn server(ctx: ProcessContext) {
    let address: NetworkAddress = format!("{}:{PORT}", ctx.ip).parse().unwrap();
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address)
        .build_listening()
        .await
    else {
        return;
    };
    let Ok(queue) = transport.register_queue_at::<u64>(QUEUE) else {
        return;
    };
    let own = Endpoint::new(address, QUEUE);
    let sender = transport.clone();
    let time = ctx.providers.time().clone();
    drop(ctx.providers.task().spawn("self-sends", async move {
        for n in 0.. {
            // Unreliable packets to itself: delivered locally, perhaps out of order.
            let _ = sender.send_unreliable(&own, &n);
            time.sleep(Duration::from_millis(20)).await;
        }
    }));
    while queue.recv().await.is_some() {}
}

async fn client(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let config = {
        let mut cfg = TransportConfig::default();
        cfg.peer_reliable_queue_max = 8;
        cfg.peer_unreliable_queue_max = 8;
        cfg
    };
    let transport = NetTransportBuilder::new(ctx.providers.clone())
        .config(config)
        .build()?;
    let servers: Vec<Endpoint> = ctx
        .topology
        .ips_of("server")
        .iter()
        .map(|ip| Endpoint::new(format!("{ip}:{PORT}").parse().unwrap(), QUEUE))
        .collect();
    for round in 0..150u64 {
        for endpoint in &servers {
            // Bursts past the queue's bound: QueueFull is the backpressure a caller must handle.
            for n in 0..6 {
                match transport.send_reliable(endpoint, &(round * 100 + n)) {
                    Ok(()) | Err(TransportError::QueueFull { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
                match transport.send_unreliable(endpoint, &n) {
                    Ok(()) | Err(TransportError::QueueFull { .. }) => {}
                    Err(error) => return Err(error.into()),
                }
            }
        }
        ctx.providers.time().sleep(Duration::from_millis(40)).await;
    }
    Ok(())
}

fn simulation(name: &str, seeds: usize) -> SimulationBuilder {
    SimulationBuilder::new(name)
        .progress(false)
        .enable_chaos([
            Chaos::Network,
            Chaos::Partitions,
            Chaos::Buggify,
            Chaos::Attrition(
                Attrition::default()
                    .with_max_dead(1)
                    .with_interval((Duration::from_millis(500), Duration::from_secs(2)))
                    .with_recovery_delay((Duration::from_millis(200), Duration::from_secs(1)))
                    .with_kinds(vec![RebootKind::Crash, RebootKind::Graceful]),
            ),
        ])
        .chaos_duration(Duration::from_secs(6))
        .settle_timeout(Duration::from_secs(60))
        .process("server", 2, server)
        .workload("client", 1, client)
        .iterations(IterationControl::FixedCount(seeds))
        // Every site enabled in the seeds where swarm turns buggify on: each gets its chance.
        .buggify({
            let mut cfg = BuggifyConfig::default();
            cfg.enabled = true;
            cfg.site_activation_probability = 1.0;
            cfg
        })
}

/// `MOONPOOL_BUGGIFY_SEEDS`, or `default` (to run many more seeds by hand).
fn seeds(default: usize) -> usize {
    std::env::var("MOONPOOL_BUGGIFY_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Calls and firings of the sites in `file` whose function path contains `function`, summed.
fn fired(report: &SimulationReport, file: &str, function: &str) -> (u64, u64) {
    report
        .buggify_sites()
        .filter(|r| r.location.starts_with(file) && r.function.contains(function))
        .fold((0, 0), |(calls, fired), r| {
            (calls + r.calls, fired + r.fired)
        })
}

#[test]
fn test_the_framework_buggify_sites_fire_and_are_listed() {
    let report = simulation("framework-buggify", seeds(48)).run().unwrap();
    println!("{report}");
    report.assert_success();
    for (file, function, what) in SITES {
        let (calls, fired) = fired(&report, file, function);
        assert!(
            fired > 0,
            "{what} ({file}, {function}): {fired} fired of {calls} calls in {} seeds",
            report.seeds_run()
        );
    }
    let text = report.to_string();
    assert!(text.contains("buggify sites ("), "{text}");
    assert!(
        text.contains("moonpool-transport/src/connection/keeper.rs:"),
        "{text}"
    );
    assert!(report.faults.get("buggify.fired").copied().unwrap_or(0) > 0);
}

#[test]
fn test_with_buggify_off_no_framework_site_fires() {
    let report = simulation("framework-buggify-off", 4)
        .enable_chaos([Chaos::Network, Chaos::Partitions])
        .run()
        .unwrap();
    report.assert_success();
    assert!(
        report
            .buggify_sites()
            .all(|r| r.fired == 0 && r.seeds_enabled == 0)
    );
    assert!(
        report.buggify_sites().count() > 0,
        "sites are still reached and listed"
    );
}
