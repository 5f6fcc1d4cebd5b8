//! Banking under attrition: ten accounts as virtual actors on three nodes, each with 100 units;
//! clients move money between them while the network misbehaves and nodes crash and reboot.
//!
//! A transfer is run by the source account: it debits itself and records the transfer as
//! outgoing in one state write, then credits the destination (which records the transfer id
//! with the credit, in one write, so a repeated credit changes nothing), then records the
//! transfer as done. A transfer that fails half-way stays outgoing and is completed by a later
//! call. Every account publishes its state on the blackboard after each write that succeeded and
//! after each load, so after every event:
//!
//! - money is conserved: the balances plus the outgoing transfers not yet credited sum to
//!   1,000;
//! - no transfer is credited twice.
//!
//! After the settle phase every account is audited through the actors (reactivated from the
//! files written and synced before the reboots): every acknowledged transfer is done at its
//! source and credited at its destination, nothing is left outgoing, and the balances sum to
//! 1,000.
//!
//! The cluster variant runs the same bank on a changing membership (a cluster process with the
//! membership table and the state, nodes that join, leave and crash, partitions, clock drift).
//!
//! 1,000 seeds under the `sim` nextest profile (`MOONPOOL_ACTOR_SEEDS`), bounded under `CI`.
#![cfg(feature = "actors")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use moonpool::actors::{
    Actor, ActorClient, ActorConfig, ActorContext, ActorError, ActorNode, ClusterServer,
    FileStateStore, MembershipView, PersistentState, Placement, StorageMembershipTable, actor_impl,
};
use moonpool::sim::{
    Attrition, Chaos, ClockConfiguration, IterationControl, ProcessContext, RebootKind,
    SimulationBuilder, StateHandle, WorkloadContext, WorkloadError,
};
use moonpool::transport::NetTransportBuilder;
use moonpool::{
    NetworkAddress, Providers, RandomProvider, TimeProvider, assert_always, assert_sometimes,
    assert_unreachable, service,
};
use serde::{Deserialize, Serialize};

mod support;
use support::{cluster_config, seeds};

const PORT: u16 = 4700;
const NODES: usize = 3;
const ACCOUNTS: i64 = 10;
const INITIAL: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankError {
    /// Not enough money.
    Insufficient { balance: i64, amount: i64 },
    /// A transfer to itself, or of a non-positive amount.
    Invalid,
    /// Debited; the credit is not confirmed yet (it will be completed by a later call).
    Pending { transfer: u64, reason: String },
    /// The state could not be written or read.
    Storage(String),
}

/// One account's persistent state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub balance: i64,
    /// Debited here, credit not confirmed: transfer id -> (destination, amount).
    pub outgoing: BTreeMap<u64, (i64, i64)>,
    /// Transfers from here that are complete.
    pub done: BTreeSet<u64>,
    /// Transfers credited here.
    pub applied: BTreeSet<u64>,
}

impl Default for Ledger {
    fn default() -> Self {
        Self {
            balance: INITIAL,
            outgoing: BTreeMap::new(),
            done: BTreeSet::new(),
            applied: BTreeSet::new(),
        }
    }
}

/// A bank account.
#[service]
pub trait Account {
    /// Moves `amount` to account `to`; idempotent per transfer `id`.
    async fn transfer(&mut self, id: u64, to: i64, amount: i64) -> Result<(), BankError>;
    /// Adds `amount` for transfer `id`, once.
    async fn credit(&mut self, id: u64, amount: i64) -> Result<(), BankError>;
    /// Completes the outgoing transfers, then answers the ledger.
    async fn audit(&mut self) -> Result<Ledger, BankError>;
}

pub struct AccountActor {
    key: i64,
    state: PersistentState<Ledger>,
    context: ActorContext,
    board: StateHandle,
    /// False after a failed write whose outcome is unknown until the state is read again.
    known: bool,
}

/// On the blackboard behind an `Arc`: the invariant reads it after every event, and a clone of
/// the `Arc` is all that costs.
type Ledgers = std::sync::Arc<BTreeMap<i64, Ledger>>;

impl AccountActor {
    fn publish(&self) {
        let ledger = self.state.state().clone();
        self.board.update("ledgers", |all: &mut Ledgers| {
            std::sync::Arc::make_mut(all).insert(self.key, ledger);
        });
    }

    async fn recover(&mut self) -> Result<(), BankError> {
        if !self.known {
            self.state
                .reload()
                .await
                .map_err(|e| BankError::Storage(e.to_string()))?;
            self.known = true;
            self.publish();
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), BankError> {
        match self.state.write_state().await {
            Ok(()) => {
                self.publish();
                Ok(())
            }
            Err(error) => {
                assert_sometimes!(true, "a state write fails");
                self.known = false;
                let _ = self.recover().await;
                Err(BankError::Storage(error.to_string()))
            }
        }
    }

    async fn complete(&mut self, id: u64) -> Result<(), BankError> {
        let Some(&(to, amount)) = self.state.state().outgoing.get(&id) else {
            return Ok(());
        };
        let credited = AccountRef::new(to)
            .credit(self.context.client(), id, amount)
            .await;
        match credited {
            Ok(Ok(())) => {
                let ledger = self.state.state_mut();
                ledger.outgoing.remove(&id);
                ledger.done.insert(id);
                self.commit().await
            }
            Ok(Err(error)) => Err(BankError::Pending {
                transfer: id,
                reason: format!("{error:?}"),
            }),
            Err(error) => Err(BankError::Pending {
                transfer: id,
                reason: error.to_string(),
            }),
        }
    }
}

impl Actor for AccountActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        let key = match context.id().key {
            moonpool::actors::ActorKey::Int(key) => key,
            _ => {
                return Err(ActorError::Serialization(
                    "account keys are integers".into(),
                ));
            }
        };
        let board = context.data::<StateHandle>().unwrap().as_ref().clone();
        let state: PersistentState<Ledger> = context.load_state().await?;
        if !state.state().outgoing.is_empty() {
            assert_sometimes!(true, "an account activates with a transfer still outgoing");
        }
        let actor = Self {
            key,
            state,
            context,
            board,
            known: true,
        };
        actor.publish();
        Ok(actor)
    }
}

#[actor_impl]
impl Account for AccountActor {
    async fn transfer(&mut self, id: u64, to: i64, amount: i64) -> Result<(), BankError> {
        self.recover().await?;
        if to == self.key || amount <= 0 || !(0..ACCOUNTS).contains(&to) {
            return Err(BankError::Invalid);
        }
        if self.state.state().done.contains(&id) {
            assert_sometimes!(true, "a repeated transfer is recognised as done");
            return Ok(());
        }
        if !self.state.state().outgoing.contains_key(&id) {
            let balance = self.state.state().balance;
            if balance < amount {
                return Err(BankError::Insufficient { balance, amount });
            }
            let ledger = self.state.state_mut();
            ledger.balance -= amount;
            ledger.outgoing.insert(id, (to, amount));
            self.commit().await?;
        } else {
            assert_sometimes!(true, "a pending transfer is resumed");
        }
        self.complete(id).await
    }

    async fn credit(&mut self, id: u64, amount: i64) -> Result<(), BankError> {
        self.recover().await?;
        if self.state.state().applied.contains(&id) {
            assert_sometimes!(true, "a repeated credit changes nothing");
            return Ok(());
        }
        let ledger = self.state.state_mut();
        ledger.balance += amount;
        ledger.applied.insert(id);
        self.commit().await?;
        let mut times = 0;
        self.board
            .update("credits", |credits: &mut BTreeMap<u64, u32>| {
                let count = credits.entry(id).or_default();
                *count += 1;
                times = *count;
            });
        assert_always!(times == 1, "no transfer is credited twice", (id, times));
        Ok(())
    }

    async fn audit(&mut self) -> Result<Ledger, BankError> {
        self.recover().await?;
        let pending: Vec<u64> = self.state.state().outgoing.keys().copied().collect();
        for id in pending {
            self.complete(id).await?;
            assert_sometimes!(true, "a pending transfer completes at the audit");
        }
        Ok(self.state.state().clone())
    }
}

/// Money is conserved and nothing is credited twice, at every event.
fn conserved(state: &StateHandle) -> Result<(), String> {
    let ledgers = state.get::<Ledgers>("ledgers").unwrap_or_default();
    let fresh = Ledger::default();
    let ledger = |key: i64| ledgers.get(&key).unwrap_or(&fresh);
    let mut total = 0;
    for key in 0..ACCOUNTS {
        let account = ledger(key);
        total += account.balance;
        for (id, (to, amount)) in &account.outgoing {
            if !ledger(*to).applied.contains(id) {
                total += amount;
            }
        }
    }
    if total != ACCOUNTS * INITIAL {
        return Err(format!("the money adds up to {total}: {ledgers:?}"));
    }
    let credits = state
        .get::<BTreeMap<u64, u32>>("credits")
        .unwrap_or_default();
    if let Some((id, count)) = credits.iter().find(|(_, count)| **count > 1) {
        return Err(format!("transfer {id} was credited {count} times"));
    }
    Ok(())
}

fn members() -> MembershipView {
    MembershipView::new(
        1,
        (0..NODES).map(|i| format!("10.0.0.{}:{PORT}", i + 1).parse().unwrap()),
    )
}

fn config() -> ActorConfig {
    let mut cfg = ActorConfig::default();
    cfg.idle_timeout = Duration::from_secs(3);
    cfg.call_timeout = Duration::from_secs(3);
    cfg.directory_timeout = Duration::from_secs(2);
    cfg.drain_timeout = Duration::from_secs(5);
    cfg
}

async fn node(ctx: ProcessContext) {
    let address: NetworkAddress = format!("{}:{PORT}", ctx.ip).parse().unwrap();
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address)
        .build_listening()
        .await
    else {
        return;
    };
    let Ok(node) = ActorNode::builder(ctx.providers.clone(), transport, members())
        .config(config())
        .actor::<AccountActor>(Placement::Random)
        .data(ctx.state.clone())
        .start()
        .await
    else {
        assert_unreachable!("a node starts");
        return;
    };
    ctx.shutdown.requested().await;
    node.shutdown().await;
}

type Acked = BTreeMap<u64, (i64, i64, i64)>;

fn gateway(ctx: &WorkloadContext) -> Result<ActorClient, WorkloadError> {
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    // With a cluster process (the cluster variant), the nodes are the "node" group.
    let view = if ctx.topology.ips_of("cluster").is_empty() {
        members()
    } else {
        MembershipView::new(
            1,
            ctx.topology
                .ips_of("node")
                .into_iter()
                .map(|ip| format!("{ip}:{PORT}").parse().unwrap()),
        )
    };
    Ok(ActorClient::external(
        transport,
        view,
        config().service_base,
        Duration::from_secs(40),
    ))
}

async fn teller(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let client = gateway(&ctx)?;
    let random = ctx.providers.random().clone();
    let mut retry: Vec<(u64, i64, i64, i64)> = Vec::new();
    let mut seq = 0u64;
    while ctx.chaos_active() {
        let (id, from, to, amount) = if !retry.is_empty() && random.random_bool(0.5) {
            assert_sometimes!(true, "a failed transfer is retried with its id");
            retry.remove(random.random_range(0..retry.len()))
        } else {
            seq += 1;
            let from = random.random_range(0..ACCOUNTS);
            let to = (from + random.random_range(1..ACCOUNTS)) % ACCOUNTS;
            let id = (u64::try_from(ctx.index).unwrap() << 32) | seq;
            (id, from, to, random.random_range(1..40i64))
        };
        let outcome = ctx
            .providers
            .time()
            .timeout(
                Duration::from_secs(600),
                AccountRef::new(from).transfer(&client, id, to, amount),
            )
            .await;
        match outcome {
            Err(_) => assert_unreachable!("every transfer call ends", id),
            Ok(Ok(Ok(()))) => {
                assert_sometimes!(true, "a transfer is acknowledged");
                ctx.state.update("acked", |acked: &mut Acked| {
                    acked.insert(id, (from, to, amount));
                });
                // Now and then the teller sends an acknowledged transfer again (as a client
                // that lost the reply would): it must change nothing.
                if random.random_bool(0.1) {
                    retry.push((id, from, to, amount));
                }
            }
            Ok(Ok(Err(BankError::Insufficient { .. }))) => {
                assert_sometimes!(true, "a transfer is refused for lack of money");
            }
            Ok(Ok(Err(_))) | Ok(Err(_)) => {
                assert_sometimes!(true, "a transfer fails with a typed error");
                retry.push((id, from, to, amount));
            }
        }
        ctx.providers
            .time()
            .sleep(Duration::from_millis(random.random_range(1..100)))
            .await;
    }
    Ok(())
}

/// After the settle phase: audit every account through the actors.
async fn audit(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    if ctx.index != 0 {
        return Ok(());
    }
    let client = gateway(&ctx)?;
    // Two passes: the first completes every outgoing transfer (which credits accounts that may
    // already have been audited), the second reads ledgers that no longer change.
    let mut ledgers = BTreeMap::new();
    for key in (0..ACCOUNTS).chain(0..ACCOUNTS) {
        let mut attempts = 0;
        let ledger = loop {
            attempts += 1;
            match AccountRef::new(key).audit(&client).await {
                Ok(Ok(ledger)) => break ledger,
                other if attempts < 30 => {
                    let _ = other;
                    ctx.providers.time().sleep(Duration::from_millis(500)).await;
                }
                other => {
                    return Err(WorkloadError::from(format!(
                        "account {key} could not be audited: {other:?}"
                    )));
                }
            }
        };
        ledgers.insert(key, ledger);
    }
    let total: i64 = ledgers.values().map(|l| l.balance).sum();
    assert_always!(
        total == ACCOUNTS * INITIAL,
        "the audited balances sum to the initial money",
        total
    );
    assert_always!(
        ledgers.values().all(|l| l.outgoing.is_empty()),
        "nothing is left outgoing after the audit",
        ledgers
    );
    let acked = ctx.state.get::<Acked>("acked").unwrap_or_default();
    for (id, (from, to, _)) in &acked {
        assert_always!(
            ledgers[from].done.contains(id) && ledgers[to].applied.contains(id),
            "every acknowledged transfer survives the reboots",
            id
        );
    }
    Ok(())
}

#[test]
fn slow_simulation_actors_banking_under_attrition() {
    let started = std::time::Instant::now();
    let report = SimulationBuilder::new("actors-banking")
        .progress(false)
        .enable_chaos([
            Chaos::Network,
            Chaos::Clock,
            Chaos::Buggify,
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
        .process("node", NODES, node)
        .workload_with_check("teller", 3, teller, audit)
        .invariant(
            "money is conserved and nothing is credited twice",
            conserved,
        )
        .expect_assertions([
            "a transfer is acknowledged",
            "a transfer fails with a typed error",
            "a failed transfer is retried with its id",
            "an account activates with a transfer still outgoing",
        ])
        .iterations(IterationControl::FixedCount(seeds(1_000)))
        .ci_max_seeds(10)
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

/// The cluster variant's membership table and state store (files at the cluster process, which
/// the attrition also crashes and reboots). Nodes 0 and 1 are in the table at first; node 2
/// joins when it starts.
async fn cluster_process(ctx: ProcessContext) {
    let nodes = ctx.topology.ips_of("node");
    let initial = nodes[..2]
        .iter()
        .map(|ip| format!("{ip}:{PORT}").parse().unwrap());
    let Ok(table) = StorageMembershipTable::load(
        ctx.providers.clone(),
        "membership.json",
        initial,
        cluster_config(false).failure_timeout,
    )
    .await
    else {
        assert_unreachable!("the membership table loads");
        return;
    };
    let address: NetworkAddress = format!("{}:{PORT}", ctx.ip).parse().unwrap();
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address)
        .build_listening()
        .await
    else {
        return;
    };
    let store = FileStateStore::new(ctx.providers.storage().clone(), "");
    let Ok(_server) = ClusterServer::serve(&transport, table, std::sync::Arc::new(store)) else {
        return;
    };
    ctx.shutdown.requested().await;
}

async fn cluster_node(ctx: ProcessContext) {
    let address: NetworkAddress = format!("{}:{PORT}", ctx.ip).parse().unwrap();
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address)
        .build_listening()
        .await
    else {
        return;
    };
    let cluster: NetworkAddress = format!("{}:{PORT}", ctx.topology.ips_of("cluster")[0])
        .parse()
        .unwrap();
    let Ok(node) = ActorNode::builder(ctx.providers.clone(), transport, MembershipView::new(0, []))
        .config(config())
        .cluster_config(cluster_config(false))
        .cluster(cluster)
        .actor::<AccountActor>(Placement::Random)
        .data(ctx.state.clone())
        .start()
        .await
    else {
        assert_unreachable!("a node starts");
        return;
    };
    ctx.shutdown.requested().await;
    node.shutdown().await;
}

/// Banking on a changing membership: a cluster process keeps the membership table and the
/// accounts' state, nodes join (one starts outside the table), leave (graceful reboots) and
/// crash, the network partitions processes, clocks drift by up to 200 ms. Money is conserved at
/// every event and every acknowledged transfer is found after the settle phase.
#[test]
fn slow_simulation_actors_banking_cluster_partitions_joins_drift() {
    let started = std::time::Instant::now();
    let mut clock = ClockConfiguration::default();
    clock.drift_max = Duration::from_millis(200);
    clock.sleep_delay_max = Duration::from_millis(100);
    let report = SimulationBuilder::new("actors-banking-cluster")
        .progress(false)
        .enable_chaos([
            Chaos::Network,
            Chaos::Clock,
            Chaos::Buggify,
            Chaos::Partitions,
            Chaos::Attrition(
                Attrition::default()
                    .with_max_dead(1)
                    .with_interval((Duration::from_millis(500), Duration::from_secs(4)))
                    .with_recovery_delay((Duration::from_millis(200), Duration::from_secs(2)))
                    .with_kinds(vec![RebootKind::Crash, RebootKind::Graceful]),
            ),
        ])
        .clock(clock)
        .chaos_duration(Duration::from_secs(20))
        .settle_timeout(Duration::from_secs(300))
        .process("cluster", 1, cluster_process)
        .process("node", NODES, cluster_node)
        .workload_with_check("teller", 3, teller, audit)
        .invariant(
            "money is conserved and nothing is credited twice",
            conserved,
        )
        .expect_assertions([
            "a transfer is acknowledged",
            "a transfer fails with a typed error",
            "a failed transfer is retried with its id",
        ])
        .iterations(IterationControl::FixedCount(seeds(1_000)))
        .ci_max_seeds(10)
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
