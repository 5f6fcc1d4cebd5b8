//! What the reminder suites share (`actors_reminders.rs`, `actors_reminders_chaos.rs`): the
//! `Alarm` actor, which registers reminders and starts timers on request and records every
//! reminder tick and timer tick it receives on the blackboard (with the node and the
//! activation it ran on); the census of activations; the reminder table's wrapper that checks
//! every claim it grants; the cluster process and the nodes; the driver's tools.
#![allow(dead_code, unreachable_pub)]

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool::actors::{
    Actor, ActorClient, ActorConfig, ActorContext, ActorError, ActorId, ActorNode, ClusterConfig,
    ClusterServer, DueReminder, FileStateStore, MembershipView, Placement, ReminderConfig,
    ReminderError, ReminderServer, ReminderTable, ReminderTick, RemoteReminderTable,
    StorageMembershipTable, StorageReminderTable, TimerTick, actor_impl,
};
use moonpool::sim::{
    ProcessContext, RebootKind, StateHandle, WorkloadContext, WorkloadError, WorldControl,
};
use moonpool::transport::NetTransportBuilder;
use moonpool::{
    NetworkAddress, Providers, TimeProvider, UID, assert_always, assert_unreachable, service,
};

pub const PORT: u16 = 4700;
/// How often nodes list the reminders they own.
pub const POLL: Duration = Duration::from_millis(500);
/// How late a tick may be delivered in a stable cluster: the poll interval, the list's round
/// trip (at most `directory_timeout`), the claim's, and the delivery (at most `call_timeout`).
pub const LATENESS: Duration = Duration::from_millis(500 + 1000 + 1000 + 3000);
/// After the heal, the cluster is stable again within this bound (a crashed node's identities
/// move after the failure timeout and the new owner's quiet period; the membership settles).
pub const RECOVERY: Duration = Duration::from_secs(20);

/// The identity whose activations start a timer in `on_activate`.
pub const BOOT_TIMER_KEY: i64 = 1000;

/// What an actor is given by its node.
pub struct NodeData {
    board: StateHandle,
    node: NetworkAddress,
}

/// The actor under test.
#[service]
pub trait Alarm {
    /// Registers reminder `name` of this identity.
    async fn arm(
        &mut self,
        name: String,
        delay_ms: u64,
        period_ms: Option<u64>,
    ) -> Result<String, String>;
    /// Removes reminder `name`.
    async fn disarm(&mut self, name: String) -> Result<bool, String>;
    /// Starts a timer of this activation.
    async fn timer(
        &mut self,
        name: String,
        delay_ms: u64,
        period_ms: Option<u64>,
    ) -> Result<u64, String>;
    /// Stops a timer.
    async fn untimer(&mut self, timer: u64) -> bool;
    /// A turn that takes `ms`.
    async fn busy(&mut self, ms: u64) -> u64;
}

pub struct AlarmActor {
    context: ActorContext,
    data: Arc<NodeData>,
}

impl Actor for AlarmActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        let data = context.data::<NodeData>().unwrap();
        // Identity 1000 starts a timer before its first message.
        if *context.id() == ActorId::new("Alarm", BOOT_TIMER_KEY) {
            context
                .start_timer(
                    "boot",
                    Duration::from_millis(100),
                    Some(Duration::from_millis(200)),
                )
                .unwrap();
        }
        Ok(Self { context, data })
    }

    async fn receive_reminder(&mut self, reminder: ReminderTick) {
        let _turn = Turn::begin(&self.data.board, self.context.id());
        let key = format!("{}/{}", self.context.id(), reminder.name);
        let at = millis(self.context.now());
        self.data.board.update("fired", |fired: &mut Fired| {
            fired.entry(key.clone()).or_default().push(Fire {
                tick: reminder.tick,
                at,
                node: self.data.node,
                registration: reminder.registration,
            });
        });
        if reminder.name.starts_with("panic") {
            let mut first = false;
            self.data
                .board
                .update("panicked", |panicked: &mut BTreeSet<String>| {
                    first = panicked.insert(key.clone());
                });
            if first {
                panic!("the reminder handler of {key} panics once");
            }
        }
        if reminder.name.starts_with("hang") {
            // A handler that never returns: its activation is stuck in this turn for good.
            std::future::pending::<()>().await;
        }
    }

    async fn receive_timer(&mut self, tick: TimerTick) {
        let _turn = Turn::begin(&self.data.board, self.context.id());
        let id = self.context.id().to_string();
        let (grant, node) = (self.context.grant(), self.data.node);
        // A tick runs only while its activation is alive and the newest of its identity.
        let alive = self.data.board.get::<Alive>("alive").unwrap_or_default();
        let newest = self
            .data
            .board
            .get::<BTreeMap<String, u64>>("newest")
            .unwrap_or_default();
        let live = alive
            .get(&id)
            .is_some_and(|list| list.contains(&(node, grant)))
            && newest.get(&id) == Some(&grant);
        assert_always!(
            live,
            "a timer tick runs only within its activation",
            (&id, grant)
        );
        let at = millis(self.context.now());
        self.data.board.update("ticks", |ticks: &mut Ticks| {
            ticks
                .entry(id.clone())
                .or_default()
                .push((tick.count, at, grant, live));
        });
        self.context.sleep(Duration::from_millis(5)).await;
        if tick.name.starts_with("panic") && tick.count == 2 {
            panic!("the third tick of {id}'s timer panics");
        }
    }
}

#[actor_impl]
impl Alarm for AlarmActor {
    async fn arm(
        &mut self,
        name: String,
        delay_ms: u64,
        period_ms: Option<u64>,
    ) -> Result<String, String> {
        let _turn = Turn::begin(&self.data.board, self.context.id());
        self.context
            .register_reminder(
                &name,
                Duration::from_millis(delay_ms),
                period_ms.map(Duration::from_millis),
            )
            .await
            .map(|registration| registration.to_string())
            .map_err(|error| error.to_string())
    }

    async fn disarm(&mut self, name: String) -> Result<bool, String> {
        let _turn = Turn::begin(&self.data.board, self.context.id());
        self.context
            .unregister_reminder(&name)
            .await
            .map_err(|error| error.to_string())
    }

    async fn timer(
        &mut self,
        name: String,
        delay_ms: u64,
        period_ms: Option<u64>,
    ) -> Result<u64, String> {
        let _turn = Turn::begin(&self.data.board, self.context.id());
        self.context
            .start_timer(
                &name,
                Duration::from_millis(delay_ms),
                period_ms.map(Duration::from_millis),
            )
            .map_err(|error| error.to_string())
    }

    async fn untimer(&mut self, timer: u64) -> bool {
        let _turn = Turn::begin(&self.data.board, self.context.id());
        self.context.stop_timer(timer)
    }

    async fn busy(&mut self, ms: u64) -> u64 {
        let _turn = Turn::begin(&self.data.board, self.context.id());
        self.context.sleep(Duration::from_millis(ms)).await;
        self.context.grant()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fire {
    pub tick: u64,
    pub at: u64,
    pub node: NetworkAddress,
    pub registration: UID,
}

/// Reminder ticks received, by `identity/name`.
pub type Fired = BTreeMap<String, Vec<Fire>>;
/// Timer ticks received, by identity: (count, at ms, grant, within its activation).
pub type Ticks = BTreeMap<String, Vec<(u64, u64, u64, bool)>>;
/// The census, live activations and turn marks are those the other actor suites use.
pub use crate::support::{Alive, Census, Turn};

pub fn millis(at: Duration) -> u64 {
    u64::try_from(at.as_millis()).unwrap()
}

/// The reminder table of the cluster process, recording registrations and unregistrations
/// (with the simulated time of the acknowledgement) and checking every claim it grants.
pub struct Checked {
    inner: Arc<dyn ReminderTable>,
    board: StateHandle,
    time: moonpool::sim::SimTimeProvider,
}

pub fn key(id: &ActorId, name: &str) -> String {
    format!("{id}/{name}")
}

impl ReminderTable for Checked {
    fn register(
        &self,
        id: ActorId,
        name: String,
        delay: Duration,
        period: Option<Duration>,
    ) -> BoxFuture<'static, Result<UID, ReminderError>> {
        let (board, key) = (self.board.clone(), key(&id, &name));
        let registered = self.inner.register(id, name, delay, period);
        Box::pin(async move {
            let registration = registered.await?;
            board.update("registrations", |all: &mut BTreeMap<String, UID>| {
                all.insert(key, registration);
            });
            Ok(registration)
        })
    }

    fn unregister(
        &self,
        id: ActorId,
        name: String,
    ) -> BoxFuture<'static, Result<bool, ReminderError>> {
        let (board, key) = (self.board.clone(), key(&id, &name));
        let time = self.time.clone();
        let removed = self.inner.unregister(id, name);
        Box::pin(async move {
            let existed = removed.await?;
            let current = board
                .get::<BTreeMap<String, UID>>("registrations")
                .unwrap_or_default()
                .get(&key)
                .copied();
            if let Some(registration) = current {
                let at = millis(time.now());
                board.update("removed", |removed: &mut BTreeMap<UID, u64>| {
                    removed.entry(registration).or_insert(at);
                });
            }
            Ok(existed)
        })
    }

    fn list(
        &self,
        members: Vec<NetworkAddress>,
        owner: NetworkAddress,
    ) -> BoxFuture<'static, Result<Vec<DueReminder>, ReminderError>> {
        self.inner.list(members, owner)
    }

    fn claim(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> BoxFuture<'static, Result<bool, ReminderError>> {
        let board = self.board.clone();
        let claimed = self
            .inner
            .claim(id.clone(), name.clone(), registration, tick);
        Box::pin(async move {
            let claimed = claimed.await?;
            if claimed {
                let removed = board
                    .get::<BTreeMap<UID, u64>>("removed")
                    .unwrap_or_default()
                    .contains_key(&registration);
                assert_always!(
                    !removed,
                    "no tick is claimed after its reminder's unregister was acknowledged",
                    (key(&id, &name), tick)
                );
                if removed {
                    board.update("claims after unregister", |count: &mut u64| *count += 1);
                }
            }
            Ok(claimed)
        })
    }

    fn acknowledge(
        &self,
        id: ActorId,
        name: String,
        registration: UID,
        tick: u64,
    ) -> BoxFuture<'static, Result<(), ReminderError>> {
        self.inner.acknowledge(id, name, registration, tick)
    }
}

pub fn invariants(board: &StateHandle) -> Result<(), String> {
    let turns = board
        .get::<BTreeMap<String, u32>>("turns")
        .unwrap_or_default();
    if let Some((id, count)) = turns.iter().find(|(_, count)| **count > 1) {
        return Err(format!("{id} runs {count} turns at once"));
    }
    let late = board.get::<u64>("claims after unregister").unwrap_or(0);
    if late > 0 {
        return Err(format!("{late} ticks claimed after their unregister"));
    }
    let ticks = board.get::<Ticks>("ticks").unwrap_or_default();
    if let Some((id, _)) = ticks
        .iter()
        .find(|(_, list)| list.iter().any(|tick| !tick.3))
    {
        return Err(format!("a timer tick of {id} ran outside its activation"));
    }
    Ok(())
}

pub fn actor_config() -> ActorConfig {
    let mut config = ActorConfig::default();
    config.idle_timeout = Duration::from_secs(2);
    config.call_timeout = Duration::from_secs(3);
    config.directory_timeout = Duration::from_secs(1);
    config.drain_timeout = Duration::from_secs(3);
    config.retry_backoff = Duration::from_millis(50);
    config
}

pub fn cluster_config() -> ClusterConfig {
    let mut config = ClusterConfig::default();
    config.grant_duration = Duration::from_secs(2);
    config.max_clock_drift = Duration::from_millis(350);
    config.membership_lease = Duration::from_secs(2);
    config.heartbeat_interval = Duration::from_millis(250);
    config.failure_timeout = Duration::from_millis(1500);
    config
}

pub fn reminder_config() -> ReminderConfig {
    let mut config = ReminderConfig::default();
    config.poll_interval = POLL;
    config
}

pub fn address(ip: IpAddr) -> NetworkAddress {
    format!("{ip}:{PORT}").parse().unwrap()
}

/// The cluster process: membership (every node from the start), state, reminders.
pub async fn cluster(ctx: ProcessContext) {
    let initial: Vec<NetworkAddress> = ctx
        .topology
        .ips_of("node")
        .iter()
        .map(|ip| address(*ip))
        .collect();
    let loaded = StorageMembershipTable::load(
        ctx.providers.clone(),
        "membership.json",
        initial,
        cluster_config().failure_timeout,
    )
    .await;
    let Ok(table) = loaded else {
        assert_unreachable!("the membership table loads");
        return;
    };
    let reminders = match StorageReminderTable::load(ctx.providers.clone(), "reminders.json").await
    {
        Ok(reminders) => reminders,
        Err(error) => {
            assert_unreachable!("the reminder table loads", error.to_string());
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
    let store = FileStateStore::new(ctx.providers.storage().clone(), "");
    let Ok(_server) = ClusterServer::serve(&transport, table, Arc::new(store)) else {
        return;
    };
    let checked = Checked {
        inner: Arc::new(reminders),
        board: ctx.state.clone(),
        time: ctx.providers.time().clone(),
    };
    let Ok(_reminders) = ReminderServer::serve(&transport, Arc::new(checked)) else {
        return;
    };
    ctx.shutdown.requested().await;
}

/// A node: joins through the cluster process, hosts `Alarm` actors, delivers reminders.
pub async fn node(ctx: ProcessContext) {
    let me = address(ctx.ip);
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(me)
        .build_listening()
        .await
    else {
        return;
    };
    let cluster = address(ctx.topology.ips_of("cluster")[0]);
    let table = RemoteReminderTable::new(transport.clone(), cluster, Duration::from_secs(1));
    let builder = ActorNode::builder(
        ctx.providers.clone(),
        transport.clone(),
        MembershipView::new(0, []),
    )
    .config(actor_config())
    .cluster_config(cluster_config())
    .cluster(cluster)
    .reminders(Arc::new(table), reminder_config())
    .actor::<AlarmActor>(Placement::Random)
    .observer(Arc::new(Census(ctx.state.clone())))
    .data(NodeData {
        board: ctx.state.clone(),
        node: me,
    });
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
    ctx.shutdown.requested().await;
    let _ = node.shutdown().await;
}

/// The driver's tools.
pub struct Driver {
    pub ctx: WorkloadContext,
    pub client: ActorClient,
}

impl Driver {
    pub fn new(ctx: WorkloadContext) -> Result<Self, WorkloadError> {
        let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
        let nodes = ctx.topology.ips_of("node");
        let client = ActorClient::external_within(
            transport,
            MembershipView::new(1, nodes.iter().map(|ip| address(*ip))),
            actor_config().service_base,
            Duration::from_secs(8),
            ctx.providers.time().clone(),
        );
        Ok(Self { ctx, client })
    }

    pub fn now(&self) -> u64 {
        millis(self.ctx.providers.time().now())
    }

    pub async fn sleep(&self, ms: u64) {
        self.ctx
            .providers
            .time()
            .sleep(Duration::from_millis(ms))
            .await;
    }

    pub fn control(&self) -> &WorldControl {
        self.ctx.control()
    }

    /// Calls until the identity answers (the cluster may be starting or changing), for at most
    /// `within_ms`.
    pub async fn until_ok<T, F, Fut>(&self, within_ms: u64, mut call: F) -> Option<T>
    where
        F: FnMut() -> Fut,
        Fut: std::future::Future<Output = Result<T, ActorError>>,
    {
        let deadline = self.now() + within_ms;
        while self.now() < deadline {
            if let Ok(value) = call().await {
                return Some(value);
            }
            self.sleep(200).await;
        }
        None
    }

    pub async fn arm(&self, key: i64, name: &str, delay_ms: u64, period_ms: Option<u64>) -> String {
        let (client, name) = (&self.client, name.to_string());
        let got = self
            .until_ok(30_000, || {
                AlarmRef::new(key).arm(client, name.clone(), delay_ms, period_ms)
            })
            .await;
        match got {
            Some(Ok(registration)) => registration,
            other => panic!("arming {key}/{name} failed: {other:?}"),
        }
    }

    pub async fn disarm(&self, key: i64, name: &str) -> bool {
        let (client, name) = (&self.client, name.to_string());
        let got = self
            .until_ok(30_000, || AlarmRef::new(key).disarm(client, name.clone()))
            .await;
        match got {
            Some(Ok(existed)) => existed,
            other => panic!("disarming {key}/{name} failed: {other:?}"),
        }
    }

    pub fn fired(&self, key: i64, name: &str) -> Vec<Fire> {
        self.ctx
            .state
            .get::<Fired>("fired")
            .unwrap_or_default()
            .get(&format!("{}/{name}", ActorId::new("Alarm", key)))
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `key`'s reminder `name` has fired `count` times, for at most `within_ms`.
    pub async fn fired_at_least(&self, key: i64, name: &str, count: usize, within_ms: u64) -> bool {
        let deadline = self.now() + within_ms;
        while self.now() < deadline {
            if self.fired(key, name).len() >= count {
                return true;
            }
            self.sleep(100).await;
        }
        self.fired(key, name).len() >= count
    }

    pub fn alive(&self, key: i64) -> bool {
        self.ctx
            .state
            .get::<Alive>("alive")
            .unwrap_or_default()
            .contains_key(&ActorId::new("Alarm", key).to_string())
    }

    /// Waits until `key` has no activation, for at most `within_ms`.
    pub async fn deactivated(&self, key: i64, within_ms: u64) -> bool {
        let deadline = self.now() + within_ms;
        while self.now() < deadline && self.alive(key) {
            self.sleep(100).await;
        }
        !self.alive(key)
    }

    pub fn node_process(&self, node: NetworkAddress) -> String {
        let nodes = self.ctx.topology.ips_of("node");
        let index = nodes.iter().position(|ip| address(*ip) == node).unwrap();
        format!("node-{index}")
    }

    pub fn crash(&self, name: &str, restart_ms: Option<u64>) {
        let process = self.control().process(name).unwrap();
        self.control().reboot(
            process,
            RebootKind::Crash,
            restart_ms.map(Duration::from_millis),
        );
    }
}
