//! Virtual actors under deterministic simulation, phase by phase (the acceptance story):
//!
//! 1. two nodes, request and reply to actors;
//! 2. network failures, partitions and timeouts: every call ends with a reply or a typed error;
//! 3. 100 concurrent calls: nothing left pending anywhere after the settle phase;
//! 4. three nodes, 20 actors, random placement, buggified stale and failed directory lookups
//!    and slow placement, node crashes and reboots: directory hit, miss, remote forward and
//!    local activation all reached.
//!
//! In every phase two invariants are checked after every event: at most one activation per
//! identity (an observer on every node keeps the live activations on the blackboard; a crash
//! drops an activation's task, which tells the observer), and at most one turn running per
//! identity (the handler marks the blackboard for its duration). Clients call from outside the
//! cluster through a random member (the gateway), so the cluster's own routing does the rest.
//!
//! 1,000 seeds per phase under the `sim` nextest profile (`MOONPOOL_ACTOR_SEEDS` changes the
//! count), a bounded count when `CI` is set.
#![cfg(feature = "actors")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use moonpool::actors::{
    Actor, ActorClient, ActorConfig, ActorContext, ActorError, ActorNode, MembershipView,
    Placement, actor_impl,
};
use moonpool::sim::{
    Attrition, Chaos, IterationControl, NetworkConfiguration, ProcessContext, RebootKind,
    SimulationBuilder, StateHandle, WorkloadContext, WorkloadError,
};
use moonpool::transport::NetTransportBuilder;
use moonpool::{
    NetworkAddress, Providers, RandomProvider, TaskProvider, TimeProvider, assert_always,
    assert_sometimes, assert_unreachable, service,
};
use serde::{Deserialize, Serialize};

mod support;
use support::{Census, Turn, one_activation, seeds};

const PORT: u16 = 4700;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub client: usize,
    pub seq: u64,
    pub delay_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub client: usize,
    pub seq: u64,
    /// Messages this activation has run, this one included.
    pub turns: u64,
}

/// The actor under test.
#[service]
pub trait Echo {
    /// Answers the ticket, after its delay.
    async fn ping(&mut self, ticket: Ticket) -> Stamp;
}

pub struct EchoActor {
    context: ActorContext,
    turns: u64,
}

impl Actor for EchoActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        Ok(Self { context, turns: 0 })
    }
}

#[actor_impl]
impl Echo for EchoActor {
    async fn ping(&mut self, ticket: Ticket) -> Stamp {
        let state = self.context.data::<StateHandle>().unwrap();
        let _turn = Turn::begin(&state, self.context.id());
        self.turns += 1;
        if ticket.delay_ms > 0 {
            self.context
                .sleep(Duration::from_millis(ticket.delay_ms))
                .await;
        }
        Stamp {
            client: ticket.client,
            seq: ticket.seq,
            turns: self.turns,
        }
    }
}

fn members(nodes: usize) -> MembershipView {
    MembershipView::new(
        1,
        (0..nodes).map(|i| format!("10.0.0.{}:{PORT}", i + 1).parse().unwrap()),
    )
}

fn config() -> ActorConfig {
    let mut cfg = ActorConfig::default();
    cfg.idle_timeout = Duration::from_secs(2);
    cfg.call_timeout = Duration::from_secs(3);
    cfg.directory_timeout = Duration::from_secs(2);
    cfg.drain_timeout = Duration::from_secs(5);
    cfg
}

/// A node: its actor runtime, until the process is asked to stop (then it drains).
async fn node(ctx: ProcessContext, nodes: usize, placement: fn() -> Placement) {
    let address: NetworkAddress = format!("{}:{PORT}", ctx.ip).parse().unwrap();
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address)
        .build_listening()
        .await
    else {
        return;
    };
    let started = ActorNode::builder(ctx.providers.clone(), transport.clone(), members(nodes))
        .config(config())
        .actor::<EchoActor>(placement())
        .state_in_memory()
        .observer(Arc::new(Census(ctx.state.clone())))
        .data(ctx.state.clone())
        .start()
        .await;
    let node = match started {
        Ok(node) => node,
        Err(error) => {
            // The directory's disk may fail under storage chaos; no other reason is expected.
            assert_unreachable!("a node starts", error.to_string());
            return;
        }
    };
    let (state, name, time) = (
        ctx.state.clone(),
        ctx.name.clone(),
        ctx.providers.time().clone(),
    );
    drop(ctx.providers.task().spawn("pending", async move {
        loop {
            let pending = transport.metrics().pending_replies;
            state.update("pending", |all: &mut BTreeMap<String, usize>| {
                all.insert(name.clone(), pending);
            });
            time.sleep(Duration::from_millis(100)).await;
        }
    }));
    ctx.shutdown.requested().await;
    let left = node.shutdown().await;
    assert_always!(left == 0, "a draining node finishes its activations", left);
}

fn external(
    ctx: &WorkloadContext,
    nodes: usize,
) -> Result<(ActorClient, moonpool::transport::NetTransport), WorkloadError> {
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    let client = ActorClient::external(
        transport.clone(),
        members(nodes),
        config().service_base,
        Duration::from_secs(40),
    );
    Ok((client, transport))
}

/// How a call ended.
fn observe(ticket: Ticket, outcome: Option<Result<Stamp, ActorError>>) {
    let Some(outcome) = outcome else {
        assert_unreachable!("every call ends with a reply or a typed error", ticket);
        return;
    };
    match outcome {
        Ok(stamp) => {
            assert_always!(
                stamp.client == ticket.client && stamp.seq == ticket.seq,
                "a reply answers its own call",
                (ticket, &stamp)
            );
            assert_sometimes!(true, "response received");
            assert_sometimes!(stamp.turns > 1, "an activation runs several messages");
        }
        Err(error) => observe_error(&error),
    }
}

/// How a call that failed ended. Its own function, so that a phase without faults (where no
/// call fails) does not have these sites in its coverage scope.
fn observe_error(error: &ActorError) {
    match error {
        ActorError::Timeout { .. } => assert_sometimes!(true, "timeout triggered"),
        ActorError::Unreachable { .. } => {
            assert_sometimes!(true, "network failure handled");
        }
        // Other typed errors are allowed and not a goal of any phase.
        _ => {}
    }
}

async fn one_call(
    ctx: &WorkloadContext,
    client: &ActorClient,
    actors: i64,
    ticket: Ticket,
) -> Option<Result<Stamp, ActorError>> {
    let key = ctx.providers.random().random_range(0..actors);
    assert_sometimes!(true, "request sent");
    ctx.providers
        .time()
        .timeout(
            Duration::from_secs(600),
            EchoRef::new(key).ping(client, ticket),
        )
        .await
        .ok()
}

/// Calls `calls` times one at a time (or, with `calls == 0`, for as long as chaos lasts).
async fn sequential(
    ctx: WorkloadContext,
    nodes: usize,
    actors: i64,
    calls: u64,
    slow_percent: u64,
) -> Result<(), WorkloadError> {
    let (client, _transport) = external(&ctx, nodes)?;
    let random = ctx.providers.random().clone();
    let mut seq = 0;
    while if calls == 0 {
        ctx.chaos_active()
    } else {
        seq < calls
    } {
        seq += 1;
        let delay_ms = if random.random_range(0..100u64) < slow_percent {
            random.random_range(1000..5000)
        } else {
            random.random_range(0..20)
        };
        let ticket = Ticket {
            client: ctx.index,
            seq,
            delay_ms,
        };
        let outcome = one_call(&ctx, &client, actors, ticket).await;
        observe(ticket, outcome);
        ctx.providers
            .time()
            .sleep(Duration::from_millis(random.random_range(1..50)))
            .await;
    }
    assert_sometimes!(true, "call completed");
    Ok(())
}

/// 100 calls at once, then the settle phase; nothing may stay pending.
async fn storm(ctx: WorkloadContext, nodes: usize) -> Result<(), WorkloadError> {
    let (client, transport) = external(&ctx, nodes)?;
    let in_flight = Arc::new(AtomicUsize::new(0));
    let peak = Arc::new(AtomicUsize::new(0));
    let mut calls = Vec::new();
    for seq in 0..100u64 {
        let (client, in_flight, peak) = (client.clone(), Arc::clone(&in_flight), Arc::clone(&peak));
        let key = ctx.providers.random().random_range(0..10i64);
        let delay_ms = ctx.providers.random().random_range(0..200);
        let time = ctx.providers.time().clone();
        let ticket = Ticket {
            client: ctx.index,
            seq,
            delay_ms,
        };
        calls.push(ctx.providers.task().spawn("call", async move {
            let now = in_flight.fetch_add(1, Ordering::Relaxed) + 1;
            peak.fetch_max(now, Ordering::Relaxed);
            let outcome = time
                .timeout(
                    Duration::from_secs(600),
                    EchoRef::new(key).ping(&client, ticket),
                )
                .await
                .ok();
            in_flight.fetch_sub(1, Ordering::Relaxed);
            (ticket, outcome)
        }));
    }
    ctx.providers.time().sleep(Duration::from_millis(5)).await;
    let pending = transport.metrics().pending_replies;
    assert_sometimes!(pending > 10, "high pending count");
    for call in calls {
        let (ticket, outcome) = call.await.map_err(|e| WorkloadError::from(e.to_string()))?;
        observe(ticket, outcome);
    }
    let peak = peak.load(Ordering::Relaxed);
    assert_sometimes!(peak > 10, "concurrent requests");
    ctx.chaos_ended().await;
    ctx.providers.time().sleep(Duration::from_secs(10)).await;
    let pending = transport.metrics().pending_replies;
    assert_always!(
        pending == 0,
        "no pending reply left on the client after settle",
        pending
    );
    Ok(())
}

/// After the settle phase: no node keeps a pending reply.
async fn nodes_drained(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    if ctx.index == 0 {
        ctx.providers.time().sleep(Duration::from_secs(1)).await;
        let pending = ctx
            .state
            .get::<BTreeMap<String, usize>>("pending")
            .unwrap_or_default();
        assert_always!(
            pending.values().all(|p| *p == 0),
            "no pending reply left on any node after settle",
            pending
        );
    }
    Ok(())
}

fn run(builder: SimulationBuilder, ci: usize) {
    let started = std::time::Instant::now();
    let report = builder
        .progress(false)
        .invariant(
            "at most one activation and one turn per identity",
            one_activation,
        )
        .iterations(IterationControl::FixedCount(seeds(1_000)))
        .ci_max_seeds(ci)
        .run()
        .unwrap();
    println!("{report}");
    println!(
        "{} seeds in {:.1} s of wall time",
        report.seeds_run(),
        started.elapsed().as_secs_f64()
    );
    report.assert_success();
}

#[test]
fn slow_simulation_actors_phase1_two_nodes() {
    run(
        SimulationBuilder::new("actors-phase1")
            // The runtime's own routing assertions are phase 4's goals (stale entries need
            // crashes and buggified lookups); out of scope here.
            .coverage_exclude("moonpool::actors")
            // Request and reply only: no network fault at all (the default configuration has a
            // rare random close, which phase 2 is about).
            .network(NetworkConfiguration::disabled())
            .process("node", 2, |ctx| node(ctx, 2, || Placement::Random))
            .workload("client", 1, |ctx| sequential(ctx, 2, 10, 10, 0))
            .expect_assertions(["request sent", "response received", "call completed"]),
        50,
    );
}

#[test]
fn slow_simulation_actors_phase2_network_failures() {
    run(
        SimulationBuilder::new("actors-phase2")
            // The runtime's own routing assertions are phase 4's goals (stale entries need
            // crashes and buggified lookups); out of scope here.
            .coverage_exclude("moonpool::actors")
            .enable_chaos([Chaos::Network, Chaos::Clock, Chaos::Partitions])
            .chaos_duration(Duration::from_secs(15))
            .settle_timeout(Duration::from_secs(300))
            .process("node", 2, |ctx| node(ctx, 2, || Placement::Random))
            .workload("client", 2, |ctx| sequential(ctx, 2, 10, 50, 10))
            .expect_assertions([
                "request sent",
                "response received",
                "network failure handled",
                "timeout triggered",
            ]),
        30,
    );
}

#[test]
fn slow_simulation_actors_phase3_concurrent_storm() {
    run(
        SimulationBuilder::new("actors-phase3")
            // The runtime's own routing assertions are phase 4's goals (stale entries need
            // crashes and buggified lookups); out of scope here.
            .coverage_exclude("moonpool::actors")
            .enable_chaos([Chaos::Network, Chaos::Clock])
            .chaos_duration(Duration::from_secs(5))
            .settle_timeout(Duration::from_secs(300))
            .process("node", 2, |ctx| node(ctx, 2, || Placement::Random))
            .workload_with_check("client", 1, |ctx| storm(ctx, 2), nodes_drained)
            .expect_assertions([
                "concurrent requests",
                "high pending count",
                "response received",
            ]),
        50,
    );
}

#[test]
fn slow_simulation_actors_phase4_routing_under_crashes() {
    run(
        SimulationBuilder::new("actors-phase4")
            .enable_chaos([
                Chaos::Network,
                Chaos::Buggify,
                Chaos::Clock,
                Chaos::Partitions,
                Chaos::Attrition(
                    Attrition::default()
                        .with_max_dead(1)
                        .with_interval((Duration::from_millis(500), Duration::from_secs(4)))
                        .with_recovery_delay((Duration::from_millis(200), Duration::from_secs(2)))
                        .with_kinds(vec![RebootKind::Crash, RebootKind::Graceful]),
                ),
            ])
            .chaos_duration(Duration::from_secs(20))
            .settle_timeout(Duration::from_secs(300))
            .process("node", 3, |ctx| node(ctx, 3, || Placement::Random))
            .workload("client", 2, |ctx| sequential(ctx, 3, 20, 0, 3))
            .expect_assertions([
                "directory hit",
                "directory miss",
                "remote forward",
                "local activation",
                "a host forwards a message it does not host",
            ]),
        30,
    );
}

/// The seed that found a late release removing the entry of a newer activation of the same
/// grant (fixed by activation ids on confirmation and release); kept as a fast regression run.
#[test]
fn test_actors_phase4_late_release_seed() {
    let report = SimulationBuilder::new("actors-phase4-regression")
        .progress(false)
        // One seed: the runtime's routing assertions are phase 4's goals over many seeds.
        .coverage_exclude("moonpool::actors")
        // Nor are the call outcomes this one seed reaches (time-bounded grants changed its
        // path): it is here for the invariant.
        .coverage_exclude("actors_sim")
        .enable_chaos([
            Chaos::Network,
            Chaos::Buggify,
            Chaos::Clock,
            Chaos::Partitions,
            Chaos::Attrition(
                Attrition::default()
                    .with_max_dead(1)
                    .with_interval((Duration::from_millis(500), Duration::from_secs(4)))
                    .with_recovery_delay((Duration::from_millis(200), Duration::from_secs(2)))
                    .with_kinds(vec![RebootKind::Crash, RebootKind::Graceful]),
            ),
        ])
        .chaos_duration(Duration::from_secs(20))
        .settle_timeout(Duration::from_secs(300))
        .process("node", 3, |ctx| node(ctx, 3, || Placement::Random))
        .workload("client", 2, |ctx| sequential(ctx, 3, 20, 0, 3))
        .invariant(
            "at most one activation and one turn per identity",
            one_activation,
        )
        .seeds([4_022_937_061])
        .run()
        .unwrap();
    report.assert_success();
}

/// The actor runtime takes everything from the providers: each seed run twice gives the same
/// fingerprint (crashes, reboots and buggified routing included).
#[test]
fn test_actors_simulation_is_deterministic() {
    let report = SimulationBuilder::new("actors-determinism")
        .progress(false)
        .enable_chaos([
            Chaos::Network,
            Chaos::Buggify,
            Chaos::Attrition(
                Attrition::default()
                    .with_max_dead(1)
                    .with_interval((Duration::from_millis(500), Duration::from_secs(2)))
                    .with_recovery_delay((Duration::from_millis(200), Duration::from_secs(1)))
                    .with_kinds(vec![RebootKind::Crash, RebootKind::Graceful]),
            ),
        ])
        .chaos_duration(Duration::from_secs(8))
        .settle_timeout(Duration::from_secs(300))
        .process("node", 3, |ctx| node(ctx, 3, || Placement::Random))
        .workload("client", 2, |ctx| sequential(ctx, 3, 20, 0, 3))
        .invariant(
            "at most one activation and one turn per identity",
            one_activation,
        )
        .check_determinism(true)
        .iterations(IterationControl::FixedCount(3))
        .run()
        .unwrap();
    report.assert_success();
}
