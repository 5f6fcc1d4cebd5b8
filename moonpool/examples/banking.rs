//! A bank whose accounts are virtual actors: nobody creates, finds or destroys an account; a
//! caller names it by number and the runtime activates it on one of three nodes, runs its
//! messages one at a time and keeps its ledger in files (write, sync, rename).
//!
//! A transfer is run by the source account: it debits itself and records the transfer as
//! outgoing (one state write), credits the destination (which records the transfer id with the
//! credit, so a repeated credit changes nothing), then records the transfer as done. A transfer
//! cut half-way stays outgoing and is finished by the next call, so callers may retry a failed
//! transfer with its id and money is never created or lost.
//!
//! By default it runs on Tokio over loopback TCP: three nodes in this process, transfers from
//! outside the cluster, then a restart of every node from the same files, after which the
//! balances are read back. With `--sim` the same actor runs in the simulator under network
//! faults, partitions and node crashes and reboots, for `BANK_SEEDS` seeds (default 20), each
//! audited at the end.
//!
//! ```sh
//! cargo run --release -p moonpool --features actors --example banking
//! cargo run --release -p moonpool --features actors --example banking -- --sim
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use moonpool::actors::{
    Actor, ActorClient, ActorConfig, ActorContext, ActorError, ActorKey, ActorNode, MembershipView,
    PersistentState, Placement, actor_impl,
};
use moonpool::sim::{
    Attrition, Chaos, IterationControl, ProcessContext, RebootKind, SimulationBuilder,
    WorkloadContext, WorkloadError,
};
use moonpool::transport::{NetTransport, NetTransportBuilder};
use moonpool::{NetworkAddress, Providers, RandomProvider, TimeProvider, TokioProviders, service};
use serde::{Deserialize, Serialize};

const ACCOUNTS: i64 = 10;
const INITIAL: i64 = 100;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum BankError {
    Insufficient {
        balance: i64,
        amount: i64,
    },
    Invalid,
    /// Debited; the credit is not confirmed yet (a later call finishes it).
    Pending(String),
    Storage(String),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ledger {
    pub balance: i64,
    pub outgoing: BTreeMap<u64, (i64, i64)>,
    pub done: BTreeSet<u64>,
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
    /// Finishes the outgoing transfers, then answers the ledger.
    async fn audit(&mut self) -> Result<Ledger, BankError>;
}

pub struct AccountActor {
    key: i64,
    state: PersistentState<Ledger>,
    context: ActorContext,
    /// False after a failed write, until the state is read again.
    known: bool,
}

impl AccountActor {
    async fn recover(&mut self) -> Result<(), BankError> {
        if !self.known {
            self.state
                .reload()
                .await
                .map_err(|e| BankError::Storage(e.to_string()))?;
            self.known = true;
        }
        Ok(())
    }

    async fn commit(&mut self) -> Result<(), BankError> {
        if let Err(error) = self.state.write_state().await {
            self.known = false;
            let _ = self.recover().await;
            return Err(BankError::Storage(error.to_string()));
        }
        Ok(())
    }

    async fn complete(&mut self, id: u64) -> Result<(), BankError> {
        let Some(&(to, amount)) = self.state.state().outgoing.get(&id) else {
            return Ok(());
        };
        match AccountRef::new(to)
            .credit(self.context.client(), id, amount)
            .await
        {
            Ok(Ok(())) => {
                let ledger = self.state.state_mut();
                ledger.outgoing.remove(&id);
                ledger.done.insert(id);
                self.commit().await
            }
            Ok(Err(error)) => Err(BankError::Pending(format!("{error:?}"))),
            Err(error) => Err(BankError::Pending(error.to_string())),
        }
    }
}

impl Actor for AccountActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        let ActorKey::Int(key) = context.id().key else {
            return Err(ActorError::Serialization(
                "account keys are integers".into(),
            ));
        };
        let state = context.load_state().await?;
        Ok(Self {
            key,
            state,
            context,
            known: true,
        })
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
        }
        self.complete(id).await
    }

    async fn credit(&mut self, id: u64, amount: i64) -> Result<(), BankError> {
        self.recover().await?;
        if self.state.state().applied.contains(&id) {
            return Ok(());
        }
        let ledger = self.state.state_mut();
        ledger.balance += amount;
        ledger.applied.insert(id);
        self.commit().await
    }

    async fn audit(&mut self) -> Result<Ledger, BankError> {
        self.recover().await?;
        let pending: Vec<u64> = self.state.state().outgoing.keys().copied().collect();
        for id in pending {
            self.complete(id).await?;
        }
        Ok(self.state.state().clone())
    }
}

fn config() -> ActorConfig {
    let mut cfg = ActorConfig::default();
    cfg.idle_timeout = Duration::from_secs(3);
    cfg.call_timeout = Duration::from_secs(3);
    cfg.directory_timeout = Duration::from_secs(2);
    cfg
}

/// One node: the account actors, state in `dir` (empty: the storage's working directory).
async fn start_node<P: Providers>(
    providers: P,
    transport: NetTransport,
    view: MembershipView,
    dir: std::path::PathBuf,
) -> ActorNode<P> {
    ActorNode::builder(providers, transport, view)
        .config(config())
        .actor::<AccountActor>(Placement::Random)
        .state_dir(dir)
        .start()
        .await
        .expect("the node starts")
}

/// Audits every account twice (the first pass finishes outgoing transfers); the ledgers.
async fn audit_all<T: TimeProvider>(
    client: &ActorClient,
    time: &T,
) -> Result<BTreeMap<i64, Ledger>, String> {
    let mut ledgers = BTreeMap::new();
    for key in (0..ACCOUNTS).chain(0..ACCOUNTS) {
        let mut attempt = 0;
        loop {
            attempt += 1;
            match AccountRef::new(key).audit(client).await {
                Ok(Ok(ledger)) => {
                    ledgers.insert(key, ledger);
                    break;
                }
                other if attempt >= 30 => return Err(format!("account {key}: {other:?}")),
                _ => time.sleep(Duration::from_millis(500)).await,
            }
        }
    }
    Ok(ledgers)
}

fn on_tokio() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let providers = TokioProviders::new();
        let dirs: Vec<tempfile::TempDir> = (0..3).map(|_| tempfile::tempdir().unwrap()).collect();
        let mut transports = Vec::new();
        for _ in 0..3 {
            let transport = NetTransportBuilder::new(providers.clone())
                .local_address("127.0.0.1:0".parse().unwrap())
                .build_listening()
                .await
                .unwrap();
            transports.push(transport);
        }
        let addresses: Vec<NetworkAddress> = transports
            .iter()
            .map(|t| t.local_address().unwrap())
            .collect();
        let view = MembershipView::new(1, addresses.clone());
        let mut nodes = Vec::new();
        for (transport, dir) in transports.iter().zip(&dirs) {
            nodes.push(
                start_node(
                    providers.clone(),
                    transport.clone(),
                    view.clone(),
                    dir.path().into(),
                )
                .await,
            );
        }
        println!("three nodes on loopback: {addresses:?}");
        let outside = NetTransportBuilder::new(providers.clone()).build().unwrap();
        let client = ActorClient::external(
            outside,
            view.clone(),
            config().service_base,
            Duration::from_secs(10),
        );
        let mut moved = 0;
        for id in 1..=40u64 {
            let from = i64::try_from(id % 10).unwrap();
            let to = (from + 3) % ACCOUNTS;
            let amount = i64::try_from(id).unwrap();
            match AccountRef::new(from)
                .transfer(&client, id, to, amount)
                .await
            {
                Ok(Ok(())) => moved += 1,
                Ok(Err(refused)) => println!("transfer {id}: {refused:?}"),
                Err(error) => println!("transfer {id}: {error}"),
            }
        }
        let hosted: Vec<usize> = nodes.iter().map(ActorNode::activations).collect();
        println!("{moved} transfers acknowledged; activations per node: {hosted:?}");
        for node in nodes {
            node.shutdown().await;
        }
        for transport in &transports {
            transport.shutdown();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        // Restart every node from its files, at the same addresses.
        let mut restarted = Vec::new();
        for (address, dir) in addresses.iter().zip(&dirs) {
            let transport = NetTransportBuilder::new(providers.clone())
                .local_address(*address)
                .build_listening()
                .await
                .unwrap();
            restarted.push(
                start_node(
                    providers.clone(),
                    transport,
                    view.clone(),
                    dir.path().into(),
                )
                .await,
            );
        }
        let client = restarted[0].client();
        let ledgers = audit_all(&client, providers.time()).await.unwrap();
        let balances: Vec<i64> = ledgers.values().map(|l| l.balance).collect();
        let total: i64 = balances.iter().sum();
        println!("after restarting every node: balances {balances:?}, total {total}");
        assert_eq!(total, ACCOUNTS * INITIAL, "money is conserved");
        for node in restarted {
            node.shutdown().await;
        }
    });
}

const PORT: u16 = 4700;

fn sim_view() -> MembershipView {
    MembershipView::new(
        1,
        (1..=3).map(|i| format!("10.0.0.{i}:{PORT}").parse().unwrap()),
    )
}

async fn sim_node(ctx: ProcessContext) {
    let address: NetworkAddress = format!("{}:{PORT}", ctx.ip).parse().unwrap();
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address)
        .build_listening()
        .await
    else {
        return;
    };
    let node = start_node(ctx.providers.clone(), transport, sim_view(), "".into()).await;
    ctx.shutdown.requested().await;
    node.shutdown().await;
}

fn sim_client(ctx: &WorkloadContext) -> Result<ActorClient, WorkloadError> {
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    Ok(ActorClient::external(
        transport,
        sim_view(),
        config().service_base,
        Duration::from_secs(40),
    ))
}

async fn teller(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let client = sim_client(&ctx)?;
    let random = ctx.providers.random().clone();
    let mut seq = 0u64;
    while ctx.chaos_active() {
        seq += 1;
        let id = (u64::try_from(ctx.index).unwrap() << 32) | seq;
        let from = random.random_range(0..ACCOUNTS);
        let to = (from + random.random_range(1..ACCOUNTS)) % ACCOUNTS;
        let amount = random.random_range(1..40i64);
        // Retried with the same id until it is answered: a transfer applies once.
        for _ in 0..3 {
            if let Ok(Ok(())) = AccountRef::new(from)
                .transfer(&client, id, to, amount)
                .await
            {
                ctx.state
                    .update("acked", |acked: &mut BTreeMap<u64, (i64, i64)>| {
                        acked.insert(id, (from, to));
                    });
                break;
            }
        }
        ctx.providers
            .time()
            .sleep(Duration::from_millis(random.random_range(1..100)))
            .await;
    }
    Ok(())
}

async fn check(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    if ctx.index != 0 {
        return Ok(());
    }
    let client = sim_client(&ctx)?;
    let ledgers = audit_all(&client, ctx.providers.time()).await?;
    let total: i64 = ledgers.values().map(|l| l.balance).sum();
    if total != ACCOUNTS * INITIAL {
        return Err(format!("the balances add up to {total}").into());
    }
    let acked = ctx
        .state
        .get::<BTreeMap<u64, (i64, i64)>>("acked")
        .unwrap_or_default();
    for (id, (from, to)) in &acked {
        if !(ledgers[from].done.contains(id) && ledgers[to].applied.contains(id)) {
            return Err(format!("acknowledged transfer {id} is missing").into());
        }
    }
    Ok(())
}

fn in_simulation() -> bool {
    let seeds = std::env::var("BANK_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let report = SimulationBuilder::new("banking")
        .enable_chaos([
            Chaos::Network,
            Chaos::Partitions,
            Chaos::Attrition(
                Attrition::default()
                    .with_max_dead(1)
                    .with_kinds(vec![RebootKind::Crash, RebootKind::Graceful]),
            ),
        ])
        .chaos_duration(Duration::from_secs(15))
        .settle_timeout(Duration::from_secs(300))
        .process("node", 3, sim_node)
        .workload_with_check("teller", 3, teller, check)
        .iterations(IterationControl::FixedCount(seeds))
        .run()
        .expect("the simulation runs");
    println!("{report}");
    report.failed() == 0
}

fn main() -> std::process::ExitCode {
    if std::env::args().any(|a| a == "--sim") {
        if !in_simulation() {
            return std::process::ExitCode::FAILURE;
        }
    } else {
        on_tokio();
    }
    std::process::ExitCode::SUCCESS
}
