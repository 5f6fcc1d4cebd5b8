//! Phase 5 of the acceptance story: virtual actors under an autonomous operation alphabet, with
//! membership served by a cluster process (a `ClusterServer`: the membership table and the actor
//! state, in files) and five nodes that join, leave, crash and get partitioned.
//!
//! One driver runs 1,000 operations per seed, drawn from: a call (its reply or typed error is
//! checked when the driver collects it after the operations), a one-way send (the runtime has no
//! separate one-way message: a call whose reply the driver drops), an activation of an identity
//! not called yet, a node crash, a partition between two nodes, a partition between a node and
//! the cluster process, a race with a grant's end (the host of a live activation hears late from
//! the other nodes, then is cut from them, while a burst of calls to the identity spans the
//! moment its grant runs out), a heal, a node leaving (a graceful reboot: it leaves the table, drains, and joins again when it
//! restarts) and a crash of the cluster process. One node starts outside the table and joins.
//! Every buggify point is on, and the network and the clocks misbehave: sleeps end up to 100 ms
//! late, and each node's clock, for each boot, either swings between real time and 200 ms ahead
//! (a triangle wave of random period: it runs fast, then slow, never backwards) or drifts as
//! the simulator's clocks do (up to 200 ms ahead); the nodes' drift bound is 350 ms.
//!
//! Invariants, after every event:
//! - message conservation: every message is processed at most once, and no more messages are
//!   processed than were sent;
//! - no two activations of one identity hold their grant at once, and no two turns of one
//!   identity run at once (an observer and the handler mark the blackboard);
//! - no state write is accepted from an activation older than the newest one that started
//!   (the cluster's state store records each accepted write's grant).
//!
//! After the operations: every call ended with its reply or a typed error within its timeout;
//! after the heal, every identity called answers again within `liveness_bound()` (the bound
//! docs/actors.md states; `MOONPOOL_PRINT_LIVENESS=1` prints each seed's slowest answer); after
//! the settle phase no activation is left and nothing is pending on any node or on the client.
//!
//! `slow_simulation_actors_phase5_planted_bug_is_caught` runs the same suite with the planted bug
//! (`PlantedBug::RenewalWithoutDriftMargin`: owners hold a renewed grant with no drift margin and
//! hosts count a renewal from its answer) and checks that some seeds fail with two activations
//! of one identity at once.
//!
//! 1,000 seeds under the `sim` nextest profile (`MOONPOOL_ACTOR_SEEDS` changes the count), a
//! bounded count when `CI` is set.
#![cfg(feature = "actors")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool::actors::{
    Actor, ActorClient, ActorConfig, ActorContext, ActorError, ActorId, ActorNode, ClusterServer,
    FileStateStore, MembershipView, PersistentState, Placement, StateError, StateStore,
    StorageMembershipTable, StoredState, actor_impl,
};
use moonpool::sim::{
    Chaos, ClockConfiguration, IterationControl, ProcessContext, RebootKind, SimulationBuilder,
    StateHandle, WorkloadContext, WorkloadError,
};
use moonpool::transport::NetTransportBuilder;
use moonpool::{
    NetworkAddress, Providers, RandomProvider, TaskProvider, TimeProvider, assert_always,
    assert_sometimes, assert_unreachable, service,
};
use serde::{Deserialize, Serialize};

mod phase5_clock;
mod support;
use phase5_clock::{DRIFT, Skewed};
use support::{
    Alive, Census, Turn, cluster_config, one_activation, report, seeds, single_activation_broken,
};

const PORT: u16 = 4700;
const NODES: usize = 5;
const ACTORS: i64 = 100;
const OPERATIONS: usize = 1_000;
/// How long a call may take at most (the external client's timeout).
const CALL_TIMEOUT: Duration = Duration::from_secs(8);
/// The longest a crashed or leaving node takes to be back: a leave drains (within
/// `drain_timeout`), and every reboot restarts within 4 s.
const RESTART_BOUND: Duration = Duration::from_secs(4);

/// After the heal, every identity answers again within this bound (asserted), the one
/// docs/actors.md states: every process back (`R`: a drain and a restart), a dead member declared
/// (`failure_timeout` and a heartbeat), a fresh view everywhere (a heartbeat), the quiet period
/// (`L + G + 4D`), the hold of grants whose hosts cannot answer (`G + 2D`), then one call
/// (`CALL_TIMEOUT`): 25.1 s with this suite's settings.
fn liveness_bound() -> Duration {
    let cluster = cluster_config(false);
    let restart = actor_config().drain_timeout + RESTART_BOUND;
    restart
        + cluster.failure_timeout
        + cluster.heartbeat_interval * 2
        + cluster.quiet_period()
        + cluster.grant_hold()
        + CALL_TIMEOUT
}

/// The calls of one race with a grant's end.
const RACE_CALLS: usize = 24;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: u64,
    pub delay_ms: u64,
    pub write: bool,
}

/// The actor under test: counts its messages in persistent state.
#[service]
pub trait Cell {
    /// Processes the ticket (after its delay), storing the new count when `write` is set.
    async fn ping(&mut self, ticket: Ticket) -> Result<u64, String>;
}

pub struct CellActor {
    context: ActorContext,
    state: PersistentState<u64>,
}

impl Actor for CellActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        let state = context.load_state().await?;
        Ok(Self { context, state })
    }
}

#[actor_impl]
impl Cell for CellActor {
    async fn ping(&mut self, ticket: Ticket) -> Result<u64, String> {
        let board = self.context.data::<StateHandle>().unwrap();
        let _turn = Turn::begin(&board, self.context.id());
        board.update("received", |received: &mut BTreeMap<u64, u32>| {
            *received.entry(ticket.id).or_default() += 1;
        });
        if ticket.delay_ms > 0 {
            self.context
                .sleep(Duration::from_millis(ticket.delay_ms))
                .await;
        }
        *self.state.state_mut() += 1;
        if ticket.write
            && let Err(error) = self.state.write_state().await
        {
            let _ = self.state.reload().await;
            return Err(error.to_string());
        }
        Ok(*self.state.state())
    }
}

/// The cluster's state store, recording every write it accepts (and checking its grant).
struct Recording {
    inner: FileStateStore<moonpool::sim::SimStorageProvider>,
    board: StateHandle,
}

impl StateStore for Recording {
    fn read(&self, id: ActorId, epoch: u64) -> BoxFuture<'static, Result<StoredState, StateError>> {
        self.inner.read(id, epoch)
    }

    fn write(
        &self,
        id: ActorId,
        epoch: u64,
        expected: u64,
        data: String,
    ) -> BoxFuture<'static, Result<u64, StateError>> {
        let write = self.inner.write(id.clone(), epoch, expected, data);
        let board = self.board.clone();
        Box::pin(async move {
            let written = write.await;
            if written.is_ok() {
                let newest = board
                    .get::<BTreeMap<String, u64>>("newest")
                    .unwrap_or_default()
                    .get(&id.to_string())
                    .copied()
                    .unwrap_or(0);
                assert_always!(
                    epoch >= newest,
                    "no state write is accepted from a fenced-off activation",
                    (id.to_string(), epoch, newest)
                );
                board.update("stale writes", |stale: &mut u64| {
                    if epoch < newest {
                        *stale += 1;
                    }
                });
                assert_sometimes!(true, "a state write is accepted");
            }
            written
        })
    }
}

fn invariants(board: &StateHandle) -> Result<(), String> {
    one_activation(board)?;
    let received = board
        .get::<BTreeMap<u64, u32>>("received")
        .unwrap_or_default();
    if let Some((ticket, count)) = received.iter().find(|(_, count)| **count > 1) {
        return Err(format!("message {ticket} was processed {count} times"));
    }
    let sent = board.get::<u64>("sent").unwrap_or(0);
    if received.len() as u64 > sent {
        return Err(format!(
            "{} messages processed, {sent} sent",
            received.len()
        ));
    }
    let stale = board.get::<u64>("stale writes").unwrap_or(0);
    if stale > 0 {
        return Err(format!(
            "{stale} state writes accepted from fenced-off activations"
        ));
    }
    Ok(())
}

fn actor_config() -> ActorConfig {
    let mut config = ActorConfig::default();
    config.idle_timeout = Duration::from_secs(2);
    config.call_timeout = Duration::from_secs(3);
    config.directory_timeout = Duration::from_secs(1);
    config.drain_timeout = Duration::from_secs(3);
    config.retry_backoff = Duration::from_millis(50);
    config
}

fn address(ip: IpAddr) -> NetworkAddress {
    format!("{ip}:{PORT}").parse().unwrap()
}

/// The cluster process: the membership table (nodes 0 to 3 to begin with) and the state store.
/// The table is loaded before the transport listens, so no request finds the service missing.
async fn cluster(ctx: ProcessContext) {
    let initial: Vec<NetworkAddress> = ctx.topology.ips_of("node")[..NODES - 1]
        .iter()
        .map(|ip| address(*ip))
        .collect();
    let failure_timeout = cluster_config(false).failure_timeout;
    let table = match StorageMembershipTable::load(
        ctx.providers.clone(),
        "membership.json",
        initial,
        failure_timeout,
    )
    .await
    {
        Ok(table) => table,
        Err(error) => {
            assert_unreachable!("the membership table loads", error.to_string());
            return;
        }
    };
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address(ctx.ip))
        .build_listening()
        .await
    else {
        return;
    };
    let store = Recording {
        inner: FileStateStore::new(ctx.providers.storage().clone(), ""),
        board: ctx.state.clone(),
    };
    let Ok(_server) = ClusterServer::serve(&transport, table, Arc::new(store)) else {
        return;
    };
    ctx.shutdown.requested().await;
}

/// A node: joins through the cluster process, hosts `Cell` actors until asked to stop.
async fn node(ctx: ProcessContext, planted: bool) {
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address(ctx.ip))
        .build_listening()
        .await
    else {
        return;
    };
    let cluster_ip = ctx.topology.ips_of("cluster")[0];
    let builder = ActorNode::builder(
        Skewed::draw(ctx.providers.clone()),
        transport.clone(),
        MembershipView::new(0, []),
    )
    .config(actor_config())
    .cluster_config(cluster_config(planted))
    .cluster(address(cluster_ip))
    .actor::<CellActor>(Placement::Random)
    .observer(Arc::new(Census(ctx.state.clone())))
    .data(ctx.state.clone());
    let node = moonpool::select! {
        started = builder.start() => match started {
            Ok(node) => node,
            Err(error) => {
                assert_unreachable!("a node starts", error.to_string());
                return;
            }
        },
        () = ctx.shutdown.requested() => return,
    };
    let (board, name, time) = (
        ctx.state.clone(),
        ctx.name.clone(),
        ctx.providers.time().clone(),
    );
    drop(ctx.providers.task().spawn("pending", async move {
        loop {
            let pending = transport.metrics().pending_replies;
            board.update("pending", |all: &mut BTreeMap<String, usize>| {
                all.insert(name.clone(), pending);
            });
            time.sleep(Duration::from_millis(100)).await;
        }
    }));
    ctx.shutdown.requested().await;
    let _ = node.shutdown().await;
}

/// How a call ended.
fn observe(outcome: &Result<Result<u64, String>, ActorError>) {
    match outcome {
        Ok(Ok(_)) => assert_sometimes!(true, "a call gets its reply"),
        Ok(Err(_)) => assert_sometimes!(true, "a state write fails inside a call"),
        Err(error) => observe_error(error),
    }
}

fn observe_error(error: &ActorError) {
    match error {
        ActorError::Timeout { .. } => assert_sometimes!(true, "a call times out"),
        ActorError::Unreachable { .. } => {
            assert_sometimes!(true, "a call finds a node unreachable")
        }
        ActorError::Unavailable { .. } | ActorError::TooManyHops { .. } => {
            assert_sometimes!(true, "a call ends while the cluster is changing");
        }
        _ => {}
    }
}

/// The driver: `OPERATIONS` operations from the alphabet, then the heal, the liveness check and
/// the settle check.
async fn driver(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    let nodes: Vec<IpAddr> = ctx.topology.ips_of("node");
    let cluster_ip = ctx.topology.ips_of("cluster")[0];
    let client = ActorClient::external_within(
        transport.clone(),
        MembershipView::new(1, nodes.iter().map(|ip| address(*ip))),
        actor_config().service_base,
        CALL_TIMEOUT,
        ctx.providers.time().clone(),
    );
    let random = ctx.providers.random().clone();
    let time = ctx.providers.time().clone();
    let control = ctx.control().clone();
    let names: Vec<String> = (0..NODES).map(|i| format!("node-{i}")).collect();
    let mut calls = Vec::new();
    let mut next_ticket = 0u64;
    let mut fresh = 0i64;
    // Spawns a call of `key` that starts after `after`; its outcome, how long it took and
    // whether it is a one-way send are collected after the operations.
    let call = |key: i64, ticket: Ticket, one_way: bool, after: Duration| {
        ctx.state.update("sent", |sent: &mut u64| *sent += 1);
        let (client, time_call) = (client.clone(), time.clone());
        ctx.providers.task().spawn("call", async move {
            time_call.sleep(after).await;
            let started = time_call.now();
            let outcome = time_call
                .timeout(CALL_TIMEOUT * 4, CellRef::new(key).ping(&client, ticket))
                .await;
            (outcome, time_call.now().saturating_sub(started), one_way)
        })
    };
    for _ in 0..OPERATIONS {
        let roll = random.random_range(0..1000u32);
        match roll {
            // Calls and one-way sends to the called identities, activations of new ones.
            0..=914 => {
                let key = if roll < 50 && fresh < ACTORS {
                    fresh += 1;
                    assert_sometimes!(true, "an identity is activated");
                    fresh - 1
                } else {
                    random.random_range(0..fresh.max(1))
                };
                next_ticket += 1;
                let ticket = Ticket {
                    id: next_ticket,
                    delay_ms: if random.random_range(0..10u32) == 0 {
                        random.random_range(100..800)
                    } else {
                        random.random_range(0..20)
                    },
                    write: random.random_range(0..2u32) == 0,
                };
                calls.push(call(key, ticket, roll >= 700, Duration::ZERO));
            }
            // A race with a grant's end: the host of a live activation hears late from the other
            // nodes, then is cut from them (its renewals fail: it must stop before its owner
            // grants the identity again), and a burst of calls to the identity spans the moment
            // its grant runs out.
            915..=929 => {
                let Some((key, host)) = live_activation(&ctx.state, &random, &nodes) else {
                    continue;
                };
                let duration = Duration::from_millis(random.random_range(2500..5000));
                // First what the other nodes send the host is held back for up to a second
                // (the answers to its renewals arrive late, but within the directory timeout:
                // a host that counted a renewal from its answer would hold it that much longer
                // than its owner does), then it is cut off.
                let held = Duration::from_millis(random.random_range(400..950));
                let (control, nodes, time) = (control.clone(), nodes.clone(), time.clone());
                drop(ctx.providers.task().spawn("cut off", async move {
                    for (other, ip) in nodes.iter().enumerate() {
                        if other != host {
                            control.partition_one_way(*ip, nodes[host], held);
                        }
                    }
                    time.sleep(held + Duration::from_millis(50)).await;
                    for (other, ip) in nodes.iter().enumerate() {
                        if other != host {
                            control.partition(nodes[host], *ip, duration);
                        }
                    }
                    assert_sometimes!(true, "the host of a live activation is cut off");
                }));
                let mut after = Duration::from_millis(random.random_range(200..600));
                for _ in 0..RACE_CALLS {
                    next_ticket += 1;
                    let ticket = Ticket {
                        id: next_ticket,
                        delay_ms: random.random_range(0..20),
                        write: random.random_range(0..2u32) == 0,
                    };
                    calls.push(call(key, ticket, false, after));
                    after += Duration::from_millis(random.random_range(40..120));
                }
            }
            930..=937 => {
                let name = &names[random.random_range(0..NODES)];
                let process = control.process(name).unwrap();
                if control.is_alive(process) && down(&control, &names) < 2 {
                    assert_sometimes!(true, "a node crashes");
                    let restart = Duration::from_millis(
                        random.random_range(300..RESTART_BOUND.as_millis() as u64),
                    );
                    control.reboot(process, RebootKind::Crash, Some(restart));
                }
            }
            938..=962 => {
                let (a, b) = two(&random, NODES);
                let duration = Duration::from_millis(random.random_range(500..5000));
                control.partition(nodes[a], nodes[b], duration);
                assert_sometimes!(true, "two nodes are partitioned");
            }
            963..=970 => {
                let node = nodes[random.random_range(0..NODES)];
                let duration = Duration::from_millis(random.random_range(500..5000));
                control.partition(node, cluster_ip, duration);
                assert_sometimes!(true, "a node is cut from the cluster process");
            }
            971..=990 => {
                control.heal_partitions();
                assert_sometimes!(true, "partitions are healed");
            }
            991..=997 => {
                let name = &names[random.random_range(0..NODES)];
                let process = control.process(name).unwrap();
                if control.is_alive(process) && down(&control, &names) < 2 {
                    assert_sometimes!(true, "a node leaves");
                    let restart = Duration::from_millis(
                        random.random_range(500..RESTART_BOUND.as_millis() as u64),
                    );
                    control.reboot(process, RebootKind::Graceful, Some(restart));
                }
            }
            _ => {
                let process = control.process("cluster-0").unwrap();
                if control.is_alive(process) {
                    assert_sometimes!(true, "the cluster process crashes");
                    let restart = Duration::from_millis(random.random_range(200..2000));
                    control.reboot(process, RebootKind::Crash, Some(restart));
                }
            }
        }
        time.sleep(Duration::from_millis(random.random_range(1..40)))
            .await;
    }
    let mut outstanding = 0;
    for call in calls {
        let (outcome, took, one_way) =
            call.await.map_err(|e| WorkloadError::from(e.to_string()))?;
        let Ok(outcome) = outcome else {
            assert_unreachable!("every call ends with a reply or a typed error", took);
            continue;
        };
        // The client's timeout, plus the time the last attempt may take to be refused.
        assert_always!(
            took <= CALL_TIMEOUT + Duration::from_secs(1),
            "every call ends within its timeout",
            took
        );
        if one_way {
            // Nobody reads a one-way send's reply: it only has to end.
            assert_sometimes!(true, "a one-way send ends");
        } else {
            observe(&outcome);
            outstanding += 1;
        }
    }
    assert_sometimes!(outstanding > 0, "calls were made");
    // Heal, and wait for the chaos phase to end and every process to be back.
    control.heal_partitions();
    ctx.chaos_ended().await;
    let healed = time.now();
    let deadline = healed + liveness_bound();
    for key in 0..fresh.min(20) {
        let mut answered = None;
        while time.now() < deadline {
            next_ticket += 1;
            let ticket = Ticket {
                id: next_ticket,
                delay_ms: 0,
                write: true,
            };
            ctx.state.update("sent", |sent: &mut u64| *sent += 1);
            let got = time
                .timeout(CALL_TIMEOUT * 2, CellRef::new(key).ping(&client, ticket))
                .await;
            if let Ok(Ok(Ok(_))) = got {
                answered = Some(time.now().saturating_sub(healed));
                break;
            }
            time.sleep(Duration::from_millis(200)).await;
        }
        // The answer itself has to arrive within the bound (not only the last attempt start).
        assert_always!(
            answered.is_some_and(|took| took <= liveness_bound()),
            "every identity answers within the liveness bound after the heal",
            (key, answered, time.now().saturating_sub(healed))
        );
        if let Some(took) = answered {
            ctx.state
                .update("slowest answer after the heal", |slowest: &mut Duration| {
                    *slowest = (*slowest).max(took);
                });
        }
    }
    if std::env::var("MOONPOOL_PRINT_LIVENESS").is_ok() {
        let slowest = ctx
            .state
            .get::<Duration>("slowest answer after the heal")
            .unwrap_or_default();
        println!("liveness seed={} slowest={slowest:?}", ctx.seed());
    }
    // Settle: idle activations end, nothing stays pending.
    time.sleep(Duration::from_secs(10)).await;
    let alive = ctx.state.get::<Alive>("alive").unwrap_or_default();
    assert_always!(
        alive.is_empty(),
        "no activation is left after the settle phase",
        alive
    );
    let pending = transport.metrics().pending_replies;
    assert_always!(pending == 0, "no pending reply left on the client", pending);
    let on_nodes = ctx
        .state
        .get::<BTreeMap<String, usize>>("pending")
        .unwrap_or_default();
    // A node always has its heartbeat and its pings of the other members in flight.
    assert_always!(
        on_nodes.values().all(|p| *p <= NODES),
        "no pending reply left on any node beyond its heartbeat and pings",
        on_nodes
    );
    Ok(())
}

fn down(control: &moonpool::sim::WorldControl, names: &[String]) -> usize {
    names
        .iter()
        .filter(|name| {
            let process = control.process(name).unwrap();
            !control.is_alive(process) || control.is_stopping(process)
        })
        .count()
}

/// A live activation of a `Cell` identity, drawn at random: its key and its host's index in
/// `nodes`.
fn live_activation(
    board: &StateHandle,
    random: &impl RandomProvider,
    nodes: &[IpAddr],
) -> Option<(i64, usize)> {
    let alive = board.get::<Alive>("alive").unwrap_or_default();
    let live: Vec<(i64, usize)> = alive
        .iter()
        .filter_map(|(id, list)| {
            let key = id.rsplit('/').next()?.parse().ok()?;
            let (node, _) = list.first()?;
            let host = nodes.iter().position(|ip| address(*ip) == *node)?;
            Some((key, host))
        })
        .collect();
    if live.is_empty() {
        return None;
    }
    Some(live[random.random_range(0..live.len())])
}

fn two(random: &impl RandomProvider, n: usize) -> (usize, usize) {
    let a = random.random_range(0..n);
    let b = (a + random.random_range(1..n)) % n;
    (a, b)
}

fn simulation(name: &str, planted: bool) -> SimulationBuilder {
    let mut clock = ClockConfiguration::default();
    clock.drift_max = DRIFT;
    clock.sleep_delay_max = Duration::from_millis(100);
    SimulationBuilder::new(name)
        .progress(false)
        .enable_chaos([Chaos::Network, Chaos::Buggify, Chaos::Clock])
        .clock(clock)
        .chaos_duration(Duration::from_secs(25))
        .settle_timeout(Duration::from_secs(300))
        .process("cluster", 1, cluster)
        .process("node", NODES, move |ctx| node(ctx, planted))
        .workload("driver", 1, driver)
        .invariant(
            "message conservation, one activation and one turn per identity, no fenced-off write",
            invariants,
        )
}

#[test]
fn slow_simulation_actors_phase5_autonomous_chaos() {
    let started = std::time::Instant::now();
    let run = simulation("actors-phase5", false)
        .iterations(IterationControl::FixedCount(seeds(1_000)))
        .ci_max_seeds(12)
        .run()
        .unwrap();
    report(&run, started);
    run.assert_success();
}

/// The bound the liveness check asserts is the one docs/actors.md states for these settings.
#[test]
fn test_actors_phase5_liveness_bound_is_the_documented_one() {
    assert_eq!(liveness_bound(), Duration::from_millis(25_100));
}

/// The planted bug over many seeds: some fail with two activations (or turns) of one identity
/// at once. Under `CI` only a few seeds run, which need not catch it; the fast test below
/// replays a seed that does.
#[test]
fn slow_simulation_actors_phase5_planted_bug_is_caught() {
    let started = std::time::Instant::now();
    let run = simulation("actors-phase5-planted", true)
        .iterations(IterationControl::FixedCount(seeds(1_000)))
        .ci_max_seeds(4)
        .run()
        .unwrap();
    report(&run, started);
    let caught: Vec<u64> = run
        .failures()
        .filter(|seed| {
            seed.failure
                .as_deref()
                .is_some_and(single_activation_broken)
        })
        .map(|seed| seed.seed)
        .collect();
    println!(
        "the planted bug broke single activation in {} of {} seeds: {caught:?}",
        caught.len(),
        run.seeds_run()
    );
    if std::env::var("CI").is_err() {
        assert!(!caught.is_empty(), "the planted bug is caught: {run}");
    }
}

/// A seed the planted-bug search caught (45 of 1,000 seeds broke single activation, the first
/// of them): with the bug it fails with two activations of one identity at once, its replay
/// fails the same way with the same fingerprint, and without the bug the same seed passes.
const PLANTED_BUG_SEED: u64 = 3_542_054_821;

#[test]
fn test_actors_phase5_planted_bug_is_caught_and_replays() {
    let run = simulation("actors-phase5-planted", true)
        .seeds([PLANTED_BUG_SEED])
        .run()
        .unwrap();
    let failed = run
        .failures()
        .next()
        .unwrap_or_else(|| panic!("the planted bug is caught: {run}"))
        .clone();
    let failure = failed.failure.clone().unwrap();
    assert!(single_activation_broken(&failure), "{failure}");
    assert!(
        failed
            .replay
            .as_deref()
            .unwrap()
            .starts_with(&format!("MOONPOOL_SEED={} ", failed.seed)),
        "{failed:?}"
    );
    let replay = simulation("actors-phase5-planted", true)
        .seeds([failed.seed])
        .run()
        .unwrap();
    let replayed = &replay.seeds[0];
    assert_eq!(replayed.failure.as_deref(), Some(failure.as_str()));
    assert_eq!(replayed.fingerprint, failed.fingerprint);
    let clean = simulation("actors-phase5-clean", false)
        .seeds([PLANTED_BUG_SEED])
        .run()
        .unwrap();
    assert_eq!(clean.failed(), 0, "{clean}");
}
