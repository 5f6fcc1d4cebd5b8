//! Re-entrant actor methods under deterministic simulation.
//!
//! The actor under test, `Gate`, has re-entrant (`&self`) methods (`wait`, `open`, `read`,
//! `relay`, `explode`) and one `&mut self` method (`bump`). Every method marks the blackboard
//! while it runs (readers for re-entrant calls, writers for turns; the marks are dropped with the
//! call, also when a crash drops its task), and the invariants after every event are: at most one
//! activation per identity, at most one turn per identity, and never a turn and a re-entrant call
//! of one identity at once.
//!
//! - `test_reentrant_calls_interleave`: a `wait` that only an `open` on the same actor completes
//!   finishes (with re-entrancy both run at once); an actor that calls itself answers.
//! - `test_without_reentrancy_the_same_calls_time_out`: the same two calls on the same actor
//!   written with `&mut self` methods both time out (the `open` waits behind the `wait`).
//! - `test_turns_wait_for_reentrant_calls_and_idle_waits_too`: a turn sent while a re-entrant
//!   call is suspended runs after it; a re-entrant call longer than `idle_timeout` keeps its
//!   activation; a call that outlives its caller's timeout is a `Timeout` while the activation
//!   goes on serving.
//! - `test_reentrant_panic_interrupts_the_calls_beside_it`: the panicking call's caller gets
//!   `HandlerPanicked`, the suspended call beside it `Interrupted`, and the next call activates
//!   the actor again.
//! - `test_reentrant_calls_count_against_the_mailbox_bound`.
//! - `test_a_reentrant_call_that_never_ends`: served beside, a turn and what is behind it wait
//!   until their callers' timeouts, and the activation never goes idle.
//! - `test_readers_writer_under_chaos` (a few seeds) and
//!   `slow_simulation_reentrant_readers_writer` (1,000 seeds under the `sim` nextest profile,
//!   `MOONPOOL_ACTOR_SEEDS` changes the count, bounded under `CI`): clients send random mixes of
//!   re-entrant calls, turns and gate pairs to three actors on two nodes, with network faults,
//!   buggify, crashes and graceful reboots (drains with calls in flight);
//!   `test_reentrant_simulation_is_deterministic` runs that twice per seed and compares.
#![cfg(feature = "actors")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{Either, select};
use moonpool::actors::{
    Actor, ActorClient, ActorConfig, ActorContext, ActorError, ActorNode, MembershipView,
    Placement, actor_impl,
};
use moonpool::sim::{
    Attrition, Chaos, IterationControl, ProcessContext, RebootKind, SimulationBuilder, StateHandle,
    WorkloadContext, WorkloadError,
};
use moonpool::transport::NetTransportBuilder;
use moonpool::{
    NetworkAddress, Providers, RandomProvider, TaskProvider, TimeProvider, assert_always,
    assert_sometimes, assert_unreachable, service,
};
use tokio::sync::oneshot;

mod support;
use support::{Alive, Census, seeds, two_activations};

const PORT: u16 = 4800;

/// The actor under test.
#[service]
pub trait Gate {
    /// Waits until `open(token)` reaches this actor, or `patience_ms` pass on its clock: true
    /// when opened.
    #[reentrant]
    async fn wait(&self, token: u64, patience_ms: u64) -> bool;
    /// Opens `token` (wakes its waiters, or lets the next `wait` through).
    #[reentrant]
    async fn open(&self, token: u64) -> ();
    /// The counter, after `delay_ms`.
    #[reentrant]
    async fn read(&self, delay_ms: u64) -> u64;
    /// Calls itself `depth` times through the cluster: the depth reached.
    #[reentrant]
    async fn relay(&self, depth: u32) -> Result<u32, String>;
    /// Panics after `delay_ms`.
    #[reentrant]
    async fn explode(&self, delay_ms: u64) -> u64;
    /// A turn: adds one to the counter after `delay_ms`; the counter and the actor's clock when
    /// the turn started (in ms).
    async fn bump(&mut self, delay_ms: u64) -> (u64, u64);
}

/// The same two calls as `Gate::wait` and `Gate::open`, as turns.
#[service]
pub trait StrictGate {
    async fn wait(&mut self, token: u64, patience_ms: u64) -> bool;
    async fn open(&mut self, token: u64) -> ();
}

#[derive(Default)]
struct Gates {
    opened: BTreeSet<u64>,
    waiting: BTreeMap<u64, Vec<oneshot::Sender<()>>>,
}

impl Gates {
    /// Waits for `token` (at most `patience`): true when opened.
    async fn wait(gates: &Mutex<Gates>, context: &ActorContext, token: u64, patience: u64) -> bool {
        let opened = {
            let mut gates = gates.lock().unwrap();
            if gates.opened.remove(&token) {
                return true;
            }
            let (tx, rx) = oneshot::channel();
            gates.waiting.entry(token).or_default().push(tx);
            rx
        };
        let patience = context.sleep(Duration::from_millis(patience));
        matches!(select(opened, patience).await, Either::Left((Ok(()), _)))
    }

    fn open(gates: &Mutex<Gates>, token: u64) {
        let mut gates = gates.lock().unwrap();
        match gates.waiting.remove(&token) {
            Some(waiters) => {
                for waiter in waiters {
                    let _ = waiter.send(());
                }
            }
            None => {
                gates.opened.insert(token);
            }
        }
    }
}

pub struct GateActor {
    context: ActorContext,
    counter: u64,
    gates: Mutex<Gates>,
}

impl Actor for GateActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        Ok(Self {
            context,
            counter: 0,
            gates: Mutex::new(Gates::default()),
        })
    }

    async fn on_deactivate(&mut self) {
        let state = self.context.data::<StateHandle>().unwrap();
        let marks = state.get::<Marks>("rw").unwrap_or_default();
        let running = marks.get(&self.context.id().to_string()).copied();
        assert_always!(
            running.is_none_or(|(readers, writers)| readers == 0 && writers == 0),
            "on_deactivate runs with no call running",
            running
        );
    }
}

/// Readers and writers running per identity.
type Marks = BTreeMap<String, (u32, u32)>;

/// Marks a call of `id` on the blackboard while it runs (and when its task is dropped).
struct Mark {
    state: StateHandle,
    id: String,
    writer: bool,
}

impl Mark {
    fn begin(context: &ActorContext, writer: bool) -> Self {
        let state = context.data::<StateHandle>().unwrap();
        let id = context.id().to_string();
        let mut readers = 0;
        state.update("rw", |marks: &mut Marks| {
            let mark = marks.entry(id.clone()).or_default();
            if writer {
                mark.1 += 1;
            } else {
                mark.0 += 1;
            }
            readers = mark.0;
        });
        assert_sometimes!(readers > 1, "re-entrant calls of one actor overlap");
        Self {
            state: (*state).clone(),
            id,
            writer,
        }
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        let (id, writer) = (&self.id, self.writer);
        self.state.update("rw", |marks: &mut Marks| {
            if let Some(mark) = marks.get_mut(id) {
                if writer {
                    mark.1 -= 1;
                } else {
                    mark.0 -= 1;
                }
            }
        });
    }
}

#[actor_impl]
impl Gate for GateActor {
    async fn wait(&self, token: u64, patience_ms: u64) -> bool {
        let _mark = Mark::begin(&self.context, false);
        Gates::wait(&self.gates, &self.context, token, patience_ms).await
    }

    async fn open(&self, token: u64) {
        let _mark = Mark::begin(&self.context, false);
        Gates::open(&self.gates, token);
    }

    async fn read(&self, delay_ms: u64) -> u64 {
        let _mark = Mark::begin(&self.context, false);
        self.context.sleep(Duration::from_millis(delay_ms)).await;
        self.counter
    }

    async fn relay(&self, depth: u32) -> Result<u32, String> {
        let _mark = Mark::begin(&self.context, false);
        if depth == 0 {
            return Ok(0);
        }
        let me = GateRef::from_id(self.context.id().clone()).map_err(|id| id.to_string())?;
        let below = me
            .relay(self.context.client(), depth - 1)
            .await
            .map_err(|error| error.to_string())??;
        Ok(below + 1)
    }

    async fn explode(&self, delay_ms: u64) -> u64 {
        let _mark = Mark::begin(&self.context, false);
        self.context.sleep(Duration::from_millis(delay_ms)).await;
        panic!("exploded on purpose")
    }

    async fn bump(&mut self, delay_ms: u64) -> (u64, u64) {
        let _mark = Mark::begin(&self.context, true);
        let started = u64::try_from(self.context.now().as_millis()).unwrap();
        self.context.sleep(Duration::from_millis(delay_ms)).await;
        self.counter += 1;
        (self.counter, started)
    }
}

pub struct StrictGateActor {
    context: ActorContext,
    gates: Mutex<Gates>,
}

impl Actor for StrictGateActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        Ok(Self {
            context,
            gates: Mutex::new(Gates::default()),
        })
    }
}

#[actor_impl]
impl StrictGate for StrictGateActor {
    async fn wait(&mut self, token: u64, patience_ms: u64) -> bool {
        Gates::wait(&self.gates, &self.context, token, patience_ms).await
    }

    async fn open(&mut self, token: u64) {
        Gates::open(&self.gates, token);
    }
}

/// The invariants checked after every event.
fn readers_writer(state: &StateHandle) -> Result<(), String> {
    two_activations(state)?;
    let marks = state.get::<Marks>("rw").unwrap_or_default();
    for (id, (readers, writers)) in marks {
        if writers > 1 {
            return Err(format!("{id} runs {writers} turns at once"));
        }
        if writers > 0 && readers > 0 {
            return Err(format!(
                "{id} runs a turn while {readers} re-entrant calls run"
            ));
        }
    }
    Ok(())
}

fn members(nodes: usize) -> MembershipView {
    MembershipView::new(
        1,
        (0..nodes).map(|i| format!("10.0.0.{}:{PORT}", i + 1).parse().unwrap()),
    )
}

fn config() -> ActorConfig {
    let mut config = ActorConfig::default();
    config.idle_timeout = Duration::from_secs(1);
    config.call_timeout = Duration::from_secs(3);
    config.directory_timeout = Duration::from_secs(2);
    config.drain_timeout = Duration::from_secs(8);
    config
}

/// A node: its actor runtime, until the process is asked to stop (then it drains).
async fn node(ctx: ProcessContext, nodes: usize, config: ActorConfig) {
    let address: NetworkAddress = format!("{}:{PORT}", ctx.ip).parse().unwrap();
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address)
        .build_listening()
        .await
    else {
        return;
    };
    let started = ActorNode::builder(ctx.providers.clone(), transport, members(nodes))
        .config(config)
        .actor::<GateActor>(Placement::Random)
        .actor::<StrictGateActor>(Placement::Random)
        .state_in_memory()
        .observer(Arc::new(Census(ctx.state.clone())))
        .data(ctx.state.clone())
        .start()
        .await;
    let node = match started {
        Ok(node) => node,
        Err(error) => {
            assert_unreachable!("a node starts", error.to_string());
            return;
        }
    };
    ctx.shutdown.requested().await;
    let left = node.shutdown().await;
    assert_always!(left == 0, "a draining node finishes its activations", left);
}

fn external(ctx: &WorkloadContext, nodes: usize) -> Result<ActorClient, WorkloadError> {
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    Ok(ActorClient::external(
        transport,
        members(nodes),
        config().service_base,
        Duration::from_secs(40),
    ))
}

fn spawn<P: Providers, T: Send + 'static>(
    providers: &P,
    future: impl Future<Output = T> + Send + 'static,
) -> moonpool::JoinHandle<T> {
    providers.task().spawn("call", future)
}

async fn after<P: Providers>(providers: &P, millis: u64) {
    providers.time().sleep(Duration::from_millis(millis)).await;
}

fn simulation(name: &str, nodes: usize, config: fn() -> ActorConfig) -> SimulationBuilder {
    SimulationBuilder::new(name)
        .progress(false)
        // The runtime's routing sites are the phase-4 suite's goals (actors_sim.rs).
        .coverage_exclude("moonpool::actors::router")
        .process("node", nodes, move |ctx| node(ctx, nodes, config()))
        .invariant(
            "one activation per identity; a turn runs alone",
            readers_writer,
        )
}

fn few_seeds(builder: SimulationBuilder, seeds: usize) {
    let report = builder
        .iterations(IterationControl::FixedCount(seeds))
        .run()
        .unwrap();
    report.assert_success();
}

#[test]
fn test_reentrant_calls_interleave() {
    few_seeds(
        simulation("reentrant-interleave", 2, config).workload("client", 1, |ctx| async move {
            let client = external(&ctx, 2)?;
            let gate = GateRef::new("g");
            // A waits for something only B does.
            let waiting = spawn(&ctx.providers, {
                let (gate, client) = (gate.clone(), client.clone());
                async move { gate.wait(&client, 1, 30_000).await }
            });
            after(&ctx.providers, 200).await;
            assert_eq!(gate.open(&client, 1).await, Ok(()));
            assert_eq!(
                waiting.await.unwrap(),
                Ok(true),
                "opened, not out of patience"
            );
            // An actor calling itself (through the cluster's routing) is answered.
            assert_eq!(gate.relay(&client, 3).await, Ok(Ok(3)));
            Ok(())
        }),
        4,
    );
}

#[test]
fn test_without_reentrancy_the_same_calls_time_out() {
    few_seeds(
        simulation("reentrant-control", 2, config).workload("client", 1, |ctx| async move {
            let client = external(&ctx, 2)?;
            let gate = StrictGateRef::new("g");
            // The wait is a turn: the open waits behind it, so neither finishes in
            // call_timeout (3 s); the wait gives up after its patience (5 s).
            let waiting = spawn(&ctx.providers, {
                let (gate, client) = (gate.clone(), client.clone());
                async move { gate.wait(&client, 1, 5_000).await }
            });
            after(&ctx.providers, 200).await;
            let opened = gate.open(&client, 1).await;
            assert!(
                matches!(opened, Err(ActorError::Timeout { .. })),
                "{opened:?}"
            );
            let waited = waiting.await.unwrap();
            assert!(
                matches!(waited, Err(ActorError::Timeout { .. })),
                "{waited:?}"
            );
            Ok(())
        }),
        2,
    );
}

#[test]
fn test_turns_wait_for_reentrant_calls_and_idle_waits_too() {
    few_seeds(
        simulation("reentrant-turns", 1, config).workload("client", 1, |ctx| async move {
            let client = external(&ctx, 1)?;
            let gate = GateRef::new("t");
            assert_eq!(gate.read(&client, 0).await, Ok(0));
            let start = ctx.providers.time().now();
            // Suspended for 4 s: longer than the caller's call_timeout (3 s) and than
            // idle_timeout (1 s).
            let long = spawn(&ctx.providers, {
                let (gate, client) = (gate.clone(), client.clone());
                async move { gate.wait(&client, 9, 4_000).await }
            });
            after(&ctx.providers, 500).await;
            // Re-entrant calls are still served meanwhile.
            assert_eq!(gate.read(&client, 10).await, Ok(0));
            after(&ctx.providers, 1_500).await;
            // A turn sent now waits for the long call, then runs (within its 3 s).
            let (counter, started) = gate.bump(&client, 10).await.unwrap();
            assert_eq!(counter, 1);
            let started = Duration::from_millis(started);
            assert!(
                started >= start + Duration::from_millis(3_900),
                "the turn started at {started:?}, before the re-entrant call ended"
            );
            let long = long.await.unwrap();
            assert!(matches!(long, Err(ActorError::Timeout { .. })), "{long:?}");
            // One activation all along: the suspended call kept it from going idle.
            assert_eq!(ctx.state.get::<u64>("activations"), Some(1));
            Ok(())
        }),
        2,
    );
}

#[test]
fn test_reentrant_panic_interrupts_the_calls_beside_it() {
    few_seeds(
        simulation("reentrant-panic", 2, config).workload("client", 1, |ctx| async move {
            let client = external(&ctx, 2)?;
            let gate = GateRef::new("p");
            assert_eq!(gate.bump(&client, 0).await.map(|(c, _)| c), Ok(1));
            let waiting = spawn(&ctx.providers, {
                let (gate, client) = (gate.clone(), client.clone());
                async move { gate.wait(&client, 5, 2_500).await }
            });
            after(&ctx.providers, 100).await;
            let exploded = gate.explode(&client, 50).await;
            assert!(
                matches!(&exploded, Err(ActorError::HandlerPanicked { message, .. })
                    if message == "exploded on purpose"),
                "{exploded:?}"
            );
            let waited = waiting.await.unwrap();
            assert!(
                matches!(&waited, Err(ActorError::Interrupted { reason, .. })
                    if reason.contains("exploded on purpose")),
                "{waited:?}"
            );
            // The activation is gone (its counter with it); the next call makes another.
            assert_eq!(gate.read(&client, 0).await, Ok(0));
            assert_eq!(ctx.state.get::<u64>("activations"), Some(2));
            Ok(())
        }),
        2,
    );
}

fn tight_mailbox() -> ActorConfig {
    let mut config = config();
    config.mailbox_capacity = 2;
    config
}

#[test]
fn test_reentrant_calls_count_against_the_mailbox_bound() {
    few_seeds(
        simulation("reentrant-mailbox", 1, tight_mailbox).workload("client", 1, |ctx| async move {
            let client = external(&ctx, 1)?;
            let gate = GateRef::new("m");
            assert_eq!(gate.read(&client, 0).await, Ok(0));
            let mut waits = Vec::new();
            for token in [1, 2] {
                let (gate, client) = (gate.clone(), client.clone());
                waits.push(spawn(&ctx.providers, async move {
                    gate.wait(&client, token, 2_000).await
                }));
                after(&ctx.providers, 100).await;
            }
            // Two calls are running: the mailbox (capacity 2) is full.
            let third = gate.read(&client, 0).await;
            assert!(
                matches!(third, Err(ActorError::MailboxFull { capacity: 2, .. })),
                "{third:?}"
            );
            for wait in waits {
                assert_eq!(wait.await.unwrap(), Ok(false));
            }
            assert_eq!(gate.read(&client, 0).await, Ok(0));
            Ok(())
        }),
        2,
    );
}

/// A re-entrant call that never ends: re-entrant calls are still served beside it, a turn
/// waits behind it (and what is behind the turn waits too) until its caller's timeout, and the
/// activation never goes idle. (The drain that gives up on it: `actors_reentrant_tokio.rs`.)
#[test]
fn test_a_reentrant_call_that_never_ends() {
    few_seeds(
        SimulationBuilder::new("reentrant-stuck")
            .progress(false)
            .coverage_exclude("moonpool::actors::router")
            .process("node", 1, |ctx| node(ctx, 1, config()))
            .invariant(
                "one activation per identity; a turn runs alone",
                readers_writer,
            )
            .workload("client", 1, |ctx| async move {
                let client = external(&ctx, 1)?;
                let gate = GateRef::new("s");
                let _stuck = spawn(&ctx.providers, {
                    let (gate, client) = (gate.clone(), client.clone());
                    // Never opened; its patience outlasts the run.
                    async move { gate.wait(&client, 1, u64::MAX / 4).await }
                });
                after(&ctx.providers, 100).await;
                assert_eq!(gate.read(&client, 0).await, Ok(0));
                let turn = spawn(&ctx.providers, {
                    let (gate, client) = (gate.clone(), client.clone());
                    async move { gate.bump(&client, 0).await }
                });
                after(&ctx.providers, 100).await;
                let behind = gate.read(&client, 0).await;
                assert!(
                    matches!(behind, Err(ActorError::Timeout { .. })),
                    "{behind:?}"
                );
                let turn = turn.await.unwrap();
                assert!(matches!(turn, Err(ActorError::Timeout { .. })), "{turn:?}");
                // Far past idle_timeout (1 s): still the one activation.
                after(&ctx.providers, 5_000).await;
                assert_eq!(ctx.state.get::<u64>("activations"), Some(1));
                assert!(
                    ctx.state
                        .get::<Alive>("alive")
                        .unwrap_or_default()
                        .contains_key("Gate/\"s\"")
                );
                Ok(())
            }),
        2,
    );
}

/// How a call under chaos ended: a reply or a typed error.
fn ended<T>(outcome: Option<Result<T, ActorError>>) -> Option<T> {
    match outcome {
        Some(Ok(reply)) => Some(reply),
        Some(Err(error)) => {
            if let ActorError::Interrupted { .. } = error {
                assert_sometimes!(true, "a suspended call is interrupted by a panic beside it");
            }
            None
        }
        None => {
            assert_unreachable!("every call ends with a reply or a typed error");
            None
        }
    }
}

/// Random mixes of re-entrant calls, turns and gate pairs while chaos lasts.
async fn mix(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let client = external(&ctx, 2)?;
    let random = ctx.providers.random().clone();
    let mut token = u64::try_from(ctx.index).unwrap() << 32;
    while ctx.chaos_active() {
        let gate = GateRef::new(random.random_range(0..3i64));
        let mut calls: Vec<moonpool::JoinHandle<()>> = Vec::new();
        for _ in 0..random.random_range(1..5u32) {
            let (gate, client, time) = (gate.clone(), client.clone(), ctx.providers.time().clone());
            let delay = random.random_range(0..300u64);
            let limit = Duration::from_secs(600);
            let pick = random.random_range(0..100u32);
            token += 1;
            let token = token;
            calls.push(spawn(&ctx.providers, async move {
                match pick {
                    0..40 => {
                        let _ = ended(time.timeout(limit, gate.read(&client, delay)).await.ok());
                    }
                    40..65 => {
                        let _ = ended(time.timeout(limit, gate.bump(&client, delay)).await.ok());
                    }
                    65..97 => {
                        let waiting = time.timeout(limit, gate.wait(&client, token, 2_000));
                        let opening = async {
                            time.sleep(Duration::from_millis(delay)).await;
                            time.timeout(limit, gate.open(&client, token)).await
                        };
                        let (waited, _) = futures::future::join(waiting, opening).await;
                        if ended(waited.ok()) == Some(true) {
                            assert_sometimes!(true, "a re-entrant wait is opened by another call");
                        }
                    }
                    _ => {
                        let _ = ended(time.timeout(limit, gate.explode(&client, delay)).await.ok());
                    }
                }
            }));
        }
        for call in calls {
            call.await.map_err(|e| WorkloadError::from(e.to_string()))?;
        }
        after(&ctx.providers, random.random_range(1..50)).await;
    }
    Ok(())
}

fn chaos(name: &str) -> SimulationBuilder {
    simulation(name, 2, config)
        .enable_chaos([
            Chaos::Network,
            Chaos::Buggify,
            Chaos::Clock,
            Chaos::Attrition(
                Attrition::default()
                    .with_max_dead(1)
                    .with_interval((Duration::from_secs(1), Duration::from_secs(5)))
                    .with_recovery_delay((Duration::from_millis(200), Duration::from_secs(2)))
                    .with_kinds(vec![RebootKind::Crash, RebootKind::Graceful]),
            ),
        ])
        .chaos_duration(Duration::from_secs(15))
        .settle_timeout(Duration::from_secs(300))
        .workload("client", 2, mix)
}

#[test]
fn test_readers_writer_under_chaos() {
    few_seeds(chaos("reentrant-chaos-fast"), 3);
}

/// Interleaved calls replay: each seed run twice gives the same fingerprint.
#[test]
fn test_reentrant_simulation_is_deterministic() {
    let report = chaos("reentrant-determinism")
        .check_determinism(true)
        .iterations(IterationControl::FixedCount(2))
        .run()
        .unwrap();
    report.assert_success();
}

#[test]
fn slow_simulation_reentrant_readers_writer() {
    let started = std::time::Instant::now();
    let report = chaos("reentrant-chaos")
        .expect_assertions([
            "re-entrant calls interleave",
            "a turn waits for running re-entrant calls",
            "re-entrant calls of one actor overlap",
            "a re-entrant wait is opened by another call",
            "on_deactivate runs with no call running",
        ])
        .iterations(IterationControl::FixedCount(seeds(1_000)))
        .ci_max_seeds(40)
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
