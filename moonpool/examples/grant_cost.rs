//! What grants, renewals and heartbeats cost: the same actor workload in the simulator, three
//! ways, interleaved round by round.
//!
//! - `fixed, long grants`: a fixed view (no membership table), grants of an hour and member pings
//!   every 1,000 s: next to no background work (the baseline);
//! - `fixed, default grants`: a fixed view with `ClusterConfig::default()` (4 s grants renewed
//!   every second per activation, pings of the other members every 500 ms);
//! - `cluster`: a cluster process serving the membership table, nodes that join it and heartbeat
//!   every 500 ms with `ClusterConfig::default()` (and grants as above).
//!
//! Three nodes, 30 actors, one external client that makes `CALLS` calls one after another with a
//! 10 ms pause between them (the simulated time, and so the background work per call, is the
//! same in every variant). No faults. The figures cover the measured calls only (after a warm-up
//! that waits for every identity to answer): wall time, CPU time of the simulating thread (the
//! workload runs on it: the simulator runs one seed at a time there with `jobs(1)`), calls per
//! CPU-second, and events per call.
//!
//! Run with `cargo run --release -p moonpool --all-features --example grant_cost`
//! (`ROUNDS=n` changes the number of rounds, 3 by default).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default
)]

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use moonpool::actors::{
    Actor, ActorClient, ActorConfig, ActorContext, ActorError, ActorNode, ClusterConfig,
    ClusterServer, FileStateStore, MembershipView, Placement, StorageMembershipTable, actor_impl,
};
use moonpool::sim::{
    IterationControl, ProcessContext, SimulationBuilder, WorkloadContext, WorkloadError,
    WorldConfig,
};
use moonpool::transport::NetTransportBuilder;
use moonpool::{NetworkAddress, Providers, TimeProvider, service};

const PORT: u16 = 4950;
const NODES: usize = 3;
const ACTORS: i64 = 30;
const CALLS: u64 = 100_000;

/// A running total per identity.
#[service]
pub trait Tally {
    /// Adds `n`: the total.
    async fn add(&mut self, n: u64) -> u64;
}

/// The actor: a running total.
pub struct TallyActor {
    total: u64,
}

impl Actor for TallyActor {
    async fn on_activate(_context: ActorContext) -> Result<Self, ActorError> {
        Ok(Self { total: 0 })
    }
}

#[actor_impl]
impl Tally for TallyActor {
    async fn add(&mut self, n: u64) -> u64 {
        self.total += n;
        self.total
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Variant {
    FixedLong,
    FixedDefault,
    Cluster,
}

impl Variant {
    fn name(self) -> &'static str {
        match self {
            Variant::FixedLong => "fixed, long grants",
            Variant::FixedDefault => "fixed, default grants",
            Variant::Cluster => "cluster",
        }
    }

    fn cluster_config(self) -> ClusterConfig {
        let mut config = ClusterConfig::default();
        if self == Variant::FixedLong {
            config.grant_duration = Duration::from_secs(3600);
            config.membership_lease = Duration::from_secs(3600);
            config.heartbeat_interval = Duration::from_secs(1000);
        }
        config
    }
}

/// What one run measured.
#[derive(Debug, Clone, Copy, Default)]
struct Figures {
    calls: u64,
    wall: Duration,
    cpu: Option<Duration>,
    simulated: Duration,
}

/// CPU time of the calling thread so far (Linux: `/proc/thread-self/stat`, in clock ticks of
/// 10 ms); `None` elsewhere.
fn thread_cpu() -> Option<Duration> {
    let stat = std::fs::read_to_string("/proc/thread-self/stat").ok()?;
    // The fields after the command name (which is in parentheses and may hold spaces).
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // utime and stime are the 14th and 15th fields of the line, 12th and 13th after ')'.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    Some(Duration::from_millis(ticks * 10))
}

fn address(ip: std::net::IpAddr) -> NetworkAddress {
    format!("{ip}:{PORT}").parse().unwrap()
}

fn actor_config() -> ActorConfig {
    let mut config = ActorConfig::default();
    // Activations stay for the whole run: every variant keeps 30 of them renewing.
    config.idle_timeout = Duration::from_secs(3600);
    config
}

async fn cluster(ctx: ProcessContext) {
    let initial: Vec<NetworkAddress> = ctx
        .topology
        .ips_of("node")
        .iter()
        .map(|ip| address(*ip))
        .collect();
    let table = StorageMembershipTable::load(
        ctx.providers.clone(),
        "membership.json",
        initial,
        ClusterConfig::default().failure_timeout,
    )
    .await
    .unwrap();
    let transport = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address(ctx.ip))
        .build_listening()
        .await
        .unwrap();
    let store = FileStateStore::new(ctx.providers.storage().clone(), "");
    let _server = ClusterServer::serve(&transport, table, Arc::new(store)).unwrap();
    ctx.shutdown.requested().await;
}

async fn node(ctx: ProcessContext, variant: Variant) {
    let transport = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address(ctx.ip))
        .build_listening()
        .await
        .unwrap();
    let view = if variant == Variant::Cluster {
        MembershipView::new(0, [])
    } else {
        MembershipView::new(1, ctx.topology.ips_of("node").iter().map(|ip| address(*ip)))
    };
    let mut builder = ActorNode::builder(ctx.providers.clone(), transport, view)
        .config(actor_config())
        .cluster_config(variant.cluster_config())
        .actor::<TallyActor>(Placement::Random);
    if variant == Variant::Cluster {
        builder = builder.cluster(address(ctx.topology.ips_of("cluster")[0]));
    } else {
        builder = builder.state_in_memory();
    }
    let node = builder.start().await.unwrap();
    ctx.shutdown.requested().await;
    node.shutdown().await;
}

async fn client(ctx: WorkloadContext, out: Arc<Mutex<Figures>>) -> Result<(), WorkloadError> {
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    let nodes = ctx.topology.ips_of("node");
    let client = ActorClient::external_within(
        transport,
        MembershipView::new(1, nodes.iter().map(|ip| address(*ip))),
        actor_config().service_base,
        Duration::from_secs(10),
        ctx.providers.time().clone(),
    );
    let time = ctx.providers.time().clone();
    // Warm-up: every identity answers (a cluster's nodes are quiet for a while after joining).
    for key in 0..ACTORS {
        while TallyRef::new(key).add(&client, 0).await.is_err() {
            time.sleep(Duration::from_millis(200)).await;
        }
    }
    let (wall, cpu, simulated) = (Instant::now(), thread_cpu(), time.now());
    for call in 0..CALLS {
        let key = i64::try_from(call).unwrap() % ACTORS;
        TallyRef::new(key).add(&client, 1).await?;
        time.sleep(Duration::from_millis(10)).await;
    }
    let figures = Figures {
        calls: CALLS,
        wall: wall.elapsed(),
        cpu: thread_cpu().zip(cpu).map(|(end, start)| end - start),
        simulated: time.now() - simulated,
    };
    *out.lock().unwrap() = figures;
    Ok(())
}

fn run(variant: Variant) -> (Figures, u64) {
    let out = Arc::new(Mutex::new(Figures::default()));
    let mut builder = SimulationBuilder::new("grant-cost")
        .progress(false)
        .world_config(WorldConfig::quiet())
        .jobs(1)
        .chaos_duration(Duration::from_secs(3600))
        .process("node", NODES, move |ctx| node(ctx, variant));
    if variant == Variant::Cluster {
        builder = builder.process("cluster", 1, cluster);
    }
    let sink = Arc::clone(&out);
    let report = builder
        .workload("client", 1, move |ctx| client(ctx, Arc::clone(&sink)))
        .iterations(IterationControl::FixedCount(1))
        .run()
        .unwrap();
    // Coverage goals are the test suites' business: here only failures count.
    assert_eq!(report.failed(), 0, "{report}");
    let figures = *out.lock().unwrap();
    (figures, report.events())
}

fn main() {
    let rounds: usize = std::env::var("ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3);
    let variants = [Variant::FixedLong, Variant::FixedDefault, Variant::Cluster];
    let mut results: Vec<Vec<(Figures, u64)>> = vec![Vec::new(); variants.len()];
    for round in 0..rounds {
        for (i, variant) in variants.iter().enumerate() {
            let (figures, events) = run(*variant);
            println!(
                "round {round} {:<22} {} calls in {:.3} s wall, {} CPU, {:.1} s simulated",
                variant.name(),
                figures.calls,
                figures.wall.as_secs_f64(),
                figures.cpu.map_or("n/a".to_string(), |cpu| format!(
                    "{:.2} s",
                    cpu.as_secs_f64()
                )),
                figures.simulated.as_secs_f64(),
            );
            results[i].push((figures, events));
        }
    }
    println!();
    println!(
        "{:<22} {:>14} {:>18} {:>12} {:>16}",
        "variant (median)",
        "calls/s wall",
        "calls/CPU-second",
        "CPU per call",
        "events (whole run)"
    );
    let mut baseline = None;
    for (variant, runs) in variants.iter().zip(&results) {
        let mut walls: Vec<f64> = runs
            .iter()
            .map(|(f, _)| f.calls as f64 / f.wall.as_secs_f64())
            .collect();
        let mut cpus: Vec<f64> = runs
            .iter()
            .filter_map(|(f, _)| {
                f.cpu
                    .filter(|c| !c.is_zero())
                    .map(|c| f.calls as f64 / c.as_secs_f64())
            })
            .collect();
        walls.sort_by(f64::total_cmp);
        cpus.sort_by(f64::total_cmp);
        let wall = walls[walls.len() / 2];
        let cpu = cpus.get(cpus.len() / 2).copied();
        let events = runs[runs.len() / 2].1;
        let base = *baseline.get_or_insert(cpu.unwrap_or(wall));
        println!(
            "{:<22} {:>14.0} {:>18} {:>10.1} us {:>16}   ({:+.0}% CPU per call vs the baseline)",
            variant.name(),
            wall,
            cpu.map_or("n/a".to_string(), |c| format!("{c:.0}")),
            cpu.map_or(1e6 / wall, |c| 1e6 / c),
            events,
            (base / cpu.unwrap_or(wall) - 1.0) * 100.0,
        );
    }
}
