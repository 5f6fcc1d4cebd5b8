//! Durable reminders and activation-local timers under simulation.
//!
//! A cluster process serves the membership table, the actors' state and the reminder table
//! (`StorageReminderTable` in a file, behind `ReminderServer`, wrapped here to record what it
//! answers); nodes join it and deliver the reminders of the identities they own. The `Alarm`
//! actor registers reminders and starts timers on request, and records every reminder tick and
//! timer tick it receives on the blackboard, with the node and the activation it ran on.
//!
//! Fast tests: a reminder fires after its activation deactivated, after the hosting node
//! crashed (on another node), after the whole cluster (nodes and cluster process) crashed and
//! restarted; an unregistered reminder stops; a periodic one fires every period; bad names,
//! delays and periods are typed errors naming the value; a panicking reminder handler fails its
//! activation and the tick is delivered again; timer ticks run as turns, never beside another
//! turn, stop when the activation idles out (ticks do not keep it alive) and never run outside
//! its grant (the hosting node cut off); a seed run twice gives the same fingerprint.
//!
//! `slow_simulation_reminders_chaos`: crashes, partitions, cluster process crashes, graceful
//! reboots, reminders registered and unregistered, every buggify point on. Invariants: no tick
//! of a registration is claimed after its unregister was acknowledged (checked by the table's
//! wrapper, across restarts of the cluster process); no two turns of one identity at once; no
//! timer tick outside its activation. After the heal and the recovery bound, every registered
//! reminder fires in every window of `period + LATENESS`.
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

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use moonpool::actors::{
    ActivationObserver, Actor, ActorClient, ActorConfig, ActorContext, ActorError, ActorId,
    ActorNode, ClusterConfig, ClusterServer, DueReminder, FileStateStore, MembershipView,
    Placement, ReminderConfig, ReminderError, ReminderServer, ReminderTable, ReminderTick,
    RemoteReminderTable, StorageMembershipTable, StorageReminderTable, TimerTick, actor_impl,
};
use moonpool::sim::{
    Chaos, ClockConfiguration, IterationControl, ProcessContext, RebootKind, SimulationBuilder,
    SimulationReport, StateHandle, WorkloadContext, WorkloadError, WorldControl,
};
use moonpool::transport::NetTransportBuilder;
use moonpool::{
    NetworkAddress, Providers, RandomProvider, TimeProvider, UID, assert_always, assert_sometimes,
    assert_unreachable, service,
};

const PORT: u16 = 4700;
/// How often nodes list the reminders they own.
const POLL: Duration = Duration::from_millis(500);
/// How late a tick may be delivered in a stable cluster: the poll interval, the list's round
/// trip (at most `directory_timeout`), the claim's, and the delivery (at most `call_timeout`).
const LATENESS: Duration = Duration::from_millis(500 + 1000 + 1000 + 3000);
/// After the heal, the cluster is stable again within this bound (a crashed node's identities
/// move after the failure timeout and the new owner's quiet period; the membership settles).
const RECOVERY: Duration = Duration::from_secs(20);

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
    tick: u64,
    at: u64,
    node: NetworkAddress,
    registration: UID,
}

/// Reminder ticks received, by `identity/name`.
type Fired = BTreeMap<String, Vec<Fire>>;
/// Timer ticks received, by identity: (count, at ms, grant, within its activation).
type Ticks = BTreeMap<String, Vec<(u64, u64, u64, bool)>>;
/// Live activations (identity -> [(node, grant)]).
type Alive = BTreeMap<String, Vec<(NetworkAddress, u64)>>;

fn millis(at: Duration) -> u64 {
    u64::try_from(at.as_millis()).unwrap()
}

/// Marks a turn of `id` on the blackboard while it runs.
struct Turn {
    board: StateHandle,
    id: String,
}

impl Turn {
    fn begin(board: &StateHandle, id: &ActorId) -> Self {
        let id = id.to_string();
        board.update("turns", |turns: &mut BTreeMap<String, u32>| {
            *turns.entry(id.clone()).or_default() += 1;
        });
        Self {
            board: board.clone(),
            id,
        }
    }
}

impl Drop for Turn {
    fn drop(&mut self) {
        self.board
            .update("turns", |turns: &mut BTreeMap<String, u32>| {
                if let Some(count) = turns.get_mut(&self.id) {
                    *count -= 1;
                }
            });
    }
}

struct Census(StateHandle);

impl ActivationObserver for Census {
    fn activated(&self, id: &ActorId, grant: u64, node: NetworkAddress) {
        self.0.update("alive", |alive: &mut Alive| {
            alive.entry(id.to_string()).or_default().push((node, grant));
        });
        self.0
            .update("newest", |newest: &mut BTreeMap<String, u64>| {
                let entry = newest.entry(id.to_string()).or_default();
                *entry = (*entry).max(grant);
            });
        self.0.update("activations", |count: &mut u64| *count += 1);
    }

    fn deactivated(&self, id: &ActorId, grant: u64, node: NetworkAddress) {
        self.0.update("alive", |alive: &mut Alive| {
            if let Some(list) = alive.get_mut(&id.to_string()) {
                list.retain(|entry| *entry != (node, grant));
                if list.is_empty() {
                    alive.remove(&id.to_string());
                }
            }
        });
    }
}

/// The reminder table of the cluster process, recording registrations and unregistrations
/// (with the simulated time of the acknowledgement) and checking every claim it grants.
struct Checked {
    inner: Arc<dyn ReminderTable>,
    board: StateHandle,
    time: moonpool::sim::SimTimeProvider,
}

fn key(id: &ActorId, name: &str) -> String {
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

fn invariants(board: &StateHandle) -> Result<(), String> {
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

fn actor_config() -> ActorConfig {
    let mut config = ActorConfig::default();
    config.idle_timeout = Duration::from_secs(2);
    config.call_timeout = Duration::from_secs(3);
    config.directory_timeout = Duration::from_secs(1);
    config.drain_timeout = Duration::from_secs(3);
    config.retry_backoff = Duration::from_millis(50);
    config
}

fn cluster_config() -> ClusterConfig {
    let mut config = ClusterConfig::default();
    config.grant_duration = Duration::from_secs(2);
    config.max_clock_drift = Duration::from_millis(350);
    config.membership_lease = Duration::from_secs(2);
    config.heartbeat_interval = Duration::from_millis(250);
    config.failure_timeout = Duration::from_millis(1500);
    config
}

fn reminder_config() -> ReminderConfig {
    let mut config = ReminderConfig::default();
    config.poll_interval = POLL;
    config
}

fn address(ip: IpAddr) -> NetworkAddress {
    format!("{ip}:{PORT}").parse().unwrap()
}

/// The cluster process: membership (every node from the start), state, reminders.
async fn cluster(ctx: ProcessContext) {
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
async fn node(ctx: ProcessContext) {
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
struct Driver {
    ctx: WorkloadContext,
    client: ActorClient,
}

impl Driver {
    fn new(ctx: WorkloadContext) -> Result<Self, WorkloadError> {
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

    fn now(&self) -> u64 {
        millis(self.ctx.providers.time().now())
    }

    async fn sleep(&self, ms: u64) {
        self.ctx
            .providers
            .time()
            .sleep(Duration::from_millis(ms))
            .await;
    }

    fn control(&self) -> &WorldControl {
        self.ctx.control()
    }

    /// Calls until the identity answers (the cluster may be starting or changing), for at most
    /// `within_ms`.
    async fn until_ok<T, F, Fut>(&self, within_ms: u64, mut call: F) -> Option<T>
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

    async fn arm(&self, key: i64, name: &str, delay_ms: u64, period_ms: Option<u64>) -> String {
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

    async fn disarm(&self, key: i64, name: &str) -> bool {
        let (client, name) = (&self.client, name.to_string());
        let got = self
            .until_ok(30_000, || AlarmRef::new(key).disarm(client, name.clone()))
            .await;
        match got {
            Some(Ok(existed)) => existed,
            other => panic!("disarming {key}/{name} failed: {other:?}"),
        }
    }

    fn fired(&self, key: i64, name: &str) -> Vec<Fire> {
        self.ctx
            .state
            .get::<Fired>("fired")
            .unwrap_or_default()
            .get(&format!("{}/{name}", ActorId::new("Alarm", key)))
            .cloned()
            .unwrap_or_default()
    }

    /// Waits until `key`'s reminder `name` has fired `count` times, for at most `within_ms`.
    async fn fired_at_least(&self, key: i64, name: &str, count: usize, within_ms: u64) -> bool {
        let deadline = self.now() + within_ms;
        while self.now() < deadline {
            if self.fired(key, name).len() >= count {
                return true;
            }
            self.sleep(100).await;
        }
        self.fired(key, name).len() >= count
    }

    fn alive(&self, key: i64) -> bool {
        self.ctx
            .state
            .get::<Alive>("alive")
            .unwrap_or_default()
            .contains_key(&ActorId::new("Alarm", key).to_string())
    }

    /// Waits until `key` has no activation, for at most `within_ms`.
    async fn deactivated(&self, key: i64, within_ms: u64) -> bool {
        let deadline = self.now() + within_ms;
        while self.now() < deadline && self.alive(key) {
            self.sleep(100).await;
        }
        !self.alive(key)
    }

    fn node_process(&self, node: NetworkAddress) -> String {
        let nodes = self.ctx.topology.ips_of("node");
        let index = nodes.iter().position(|ip| address(*ip) == node).unwrap();
        format!("node-{index}")
    }

    fn crash(&self, name: &str, restart_ms: Option<u64>) {
        let process = self.control().process(name).unwrap();
        self.control().reboot(
            process,
            RebootKind::Crash,
            restart_ms.map(Duration::from_millis),
        );
    }
}

fn seeds(default: usize) -> usize {
    std::env::var("MOONPOOL_ACTOR_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A cluster of `nodes` nodes and one cluster process in the default world (its default
/// network and clock faults, no crashes but those `driver` makes), and `driver`.
fn small<F, Fut>(name: &str, nodes: usize, driver: F) -> SimulationBuilder
where
    F: Fn(Driver) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let driver = Arc::new(driver);
    SimulationBuilder::new(name)
        .progress(false)
        // The runtime's own coverage sites are the chaos suites' goals.
        .coverage_exclude("moonpool::actors")
        .process("cluster", 1, cluster)
        .process("node", nodes, node)
        .workload("driver", 1, move |ctx| {
            let driver = Arc::clone(&driver);
            async move {
                driver(Driver::new(ctx)?).await;
                Ok(())
            }
        })
        .invariant(
            "one turn per identity, no late claim, ticks within activations",
            invariants,
        )
}

fn run_quiet<F, Fut>(name: &str, nodes: usize, driver: F)
where
    F: Fn(Driver) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let report = small(name, nodes, driver).seeds([1, 2]).run().unwrap();
    println!("{report}");
    report.assert_success();
}

#[test]
fn test_reminder_fires_after_deactivation() {
    run_quiet("reminder-after-deactivation", 3, |d| async move {
        d.arm(1, "once", 4_000, None).await;
        // Idle for 2 s, the activation ends before the reminder is due.
        assert!(d.deactivated(1, 4_000).await, "the activation idles out");
        assert!(d.fired(1, "once").is_empty());
        assert!(
            d.fired_at_least(1, "once", 1, 4_000 + LATENESS.as_millis() as u64)
                .await
        );
        let fire = d.fired(1, "once")[0];
        assert_eq!(fire.tick, 0);
        // One-shot: acknowledged and removed, not delivered again.
        d.sleep(10_000).await;
        assert_eq!(d.fired(1, "once").len(), 1, "{:?}", d.fired(1, "once"));
    });
}

#[test]
fn test_reminder_fires_on_another_node_after_its_host_crashes() {
    run_quiet("reminder-host-crash", 3, |d| async move {
        d.arm(2, "beat", 1_000, Some(1_000)).await;
        assert!(d.fired_at_least(2, "beat", 2, 10_000).await);
        let host = d.fired(2, "beat").last().unwrap().node;
        let crashed_at = d.now();
        // The host stays down: its identities move once it is declared dead.
        d.crash(&d.node_process(host), None);
        let deadline = crashed_at + 30_000;
        let mut elsewhere = None;
        while d.now() < deadline && elsewhere.is_none() {
            elsewhere = d
                .fired(2, "beat")
                .into_iter()
                .find(|fire| fire.at > crashed_at && fire.node != host);
            d.sleep(100).await;
        }
        let fire = elsewhere.expect("the reminder fires on another node after the crash");
        assert!(fire.tick >= 2, "{fire:?}");
    });
}

#[test]
fn test_reminder_survives_a_full_cluster_restart() {
    run_quiet("reminder-cluster-restart", 3, |d| async move {
        let registration = d.arm(3, "beat", 1_000, Some(2_000)).await;
        assert!(d.fired_at_least(3, "beat", 1, 10_000).await);
        // Every process crashes at once; all come back after 3 s.
        d.crash("cluster-0", Some(3_000));
        for i in 0..3 {
            d.crash(&format!("node-{i}"), Some(3_000));
        }
        let restarted = d.now();
        let deadline = restarted + 40_000;
        let mut after = None;
        while d.now() < deadline && after.is_none() {
            after = d
                .fired(3, "beat")
                .into_iter()
                .find(|fire| fire.at > restarted + 3_000);
            d.sleep(100).await;
        }
        let fire = after.expect("the reminder fires after the whole cluster restarted");
        assert_eq!(fire.registration.to_string(), registration);
    });
}

#[test]
fn test_unregistered_reminder_stops_and_periodic_one_fires_every_period() {
    run_quiet("reminder-unregister-periodic", 2, |d| async move {
        d.arm(4, "beat", 500, Some(1_000)).await;
        assert!(d.fired_at_least(4, "beat", 8, 15_000).await);
        let fired = d.fired(4, "beat");
        for pair in fired.windows(2) {
            assert!(
                pair[1].at - pair[0].at <= 1_000 + LATENESS.as_millis() as u64,
                "a gap of {} ms: {fired:?}",
                pair[1].at - pair[0].at
            );
        }
        let ticks: BTreeSet<u64> = fired.iter().map(|fire| fire.tick).collect();
        assert!(ticks.len() >= 7, "{fired:?}");
        assert!(d.disarm(4, "beat").await);
        let acknowledged = d.now();
        assert!(!d.disarm(4, "beat").await, "removed once");
        d.sleep(10_000).await;
        let late: Vec<Fire> = d
            .fired(4, "beat")
            .into_iter()
            .filter(|fire| fire.at > acknowledged)
            .collect();
        // Only a delivery claimed before the acknowledgement may still arrive (one at most).
        assert!(late.len() <= 1, "{late:?}");
    });
}

#[test]
fn test_bad_reminder_and_timer_inputs_are_typed_errors() {
    run_quiet("reminder-bad-inputs", 1, |d| async move {
        let client = &d.client;
        let arm = |name: String, delay: u64, period: Option<u64>| async move {
            AlarmRef::new(5)
                .arm(client, name, delay, period)
                .await
                .unwrap()
                .unwrap_err()
        };
        let empty = d
            .until_ok(30_000, || {
                AlarmRef::new(5).arm(client, String::new(), 10, None)
            })
            .await
            .unwrap()
            .unwrap_err();
        assert!(empty.contains("needs a name"), "{empty}");
        let long = "x".repeat(101);
        let error = arm(long.clone(), 10, None).await;
        assert!(error.contains("101 bytes"), "{error}");
        let error = arm("zero".into(), 10, Some(0)).await;
        assert!(
            error.contains("\"zero\"") && error.contains("zero period"),
            "{error}"
        );
        let years = 200 * 365 * 24 * 3600 * 1000u64;
        let error = arm("far".into(), years, None).await;
        assert!(
            error.contains("\"far\"") && error.contains("delay"),
            "{error}"
        );
        let error = arm("slow".into(), 10, Some(years)).await;
        assert!(
            error.contains("\"slow\"") && error.contains("period"),
            "{error}"
        );
        let timer = |name: String, period: Option<u64>| async move {
            AlarmRef::new(5)
                .timer(client, name, 10, period)
                .await
                .unwrap()
                .unwrap_err()
        };
        let error = timer(String::new(), None).await;
        assert!(error.contains("needs a name"), "{error}");
        let error = timer("t0".into(), Some(0)).await;
        assert!(
            error.contains("\"t0\"") && error.contains("zero period"),
            "{error}"
        );
        // Nothing was registered.
        d.sleep(3_000).await;
        assert!(
            d.ctx
                .state
                .get::<Fired>("fired")
                .unwrap_or_default()
                .is_empty()
        );
    });
}

#[test]
fn test_panicking_reminder_handler_fails_its_activation_and_the_tick_comes_again() {
    run_quiet("reminder-panic", 2, |d| async move {
        d.arm(6, "panic-once", 500, Some(1_000)).await;
        assert!(d.fired_at_least(6, "panic-once", 3, 15_000).await);
        let fired = d.fired(6, "panic-once");
        // The first tick's handler panicked (not acknowledged): the tick is delivered again.
        assert_eq!(fired[0].tick, fired[1].tick, "{fired:?}");
        assert!(fired[2].tick > fired[1].tick, "{fired:?}");
        let activations = d.ctx.state.get::<u64>("activations").unwrap_or(0);
        assert!(
            activations >= 2,
            "the panic ended the activation: {activations}"
        );
    });
}

#[test]
fn test_timer_ticks_are_turns_that_stop_when_the_activation_idles_out() {
    run_quiet("timer-ticks", 2, |d| async move {
        let client = &d.client;
        let timer = d
            .until_ok(30_000, || {
                AlarmRef::new(7).timer(client, "t".into(), 100, Some(300))
            })
            .await
            .unwrap()
            .unwrap();
        // Turns beside the ticks (the invariant checks that no two overlap).
        for _ in 0..3 {
            let grant = AlarmRef::new(7).busy(client, 250).await.unwrap();
            assert!(grant > 0);
        }
        // No message for idle_timeout (2 s): the activation ends though its timer ticks.
        assert!(d.deactivated(7, 6_000).await, "ticks do not keep it alive");
        let ended = d.now();
        let ticks = d.ctx.state.get::<Ticks>("ticks").unwrap_or_default();
        let list = ticks.get(&ActorId::new("Alarm", 7).to_string()).unwrap();
        assert!(list.len() >= 6, "{list:?}");
        d.sleep(3_000).await;
        let after = d.ctx.state.get::<Ticks>("ticks").unwrap_or_default();
        let after = after.get(&ActorId::new("Alarm", 7).to_string()).unwrap();
        assert!(
            after.iter().all(|tick| tick.1 <= ended),
            "no tick after the activation ended: {after:?}"
        );
        // A new activation has no timer; its context starts new ones, which a stop ends.
        let again = d
            .until_ok(30_000, || {
                AlarmRef::new(7).timer(client, "u".into(), 1_000, None)
            })
            .await
            .unwrap()
            .unwrap();
        assert!(AlarmRef::new(7).untimer(client, again).await.unwrap());
        let _ = timer;
        let count = after.len();
        d.sleep(2_000).await;
        let last = d.ctx.state.get::<Ticks>("ticks").unwrap_or_default();
        let last = last.get(&ActorId::new("Alarm", 7).to_string()).unwrap();
        assert_eq!(last.len(), count, "a stopped timer does not tick: {last:?}");
    });
}

#[test]
fn test_timer_ticks_stop_when_the_host_is_cut_off() {
    run_quiet("timer-grant", 3, |d| async move {
        let client = &d.client;
        d.until_ok(30_000, || {
            AlarmRef::new(8).timer(client, "t".into(), 50, Some(100))
        })
        .await
        .unwrap()
        .unwrap();
        let ticks = |d: &Driver| {
            d.ctx
                .state
                .get::<Ticks>("ticks")
                .unwrap_or_default()
                .get(&ActorId::new("Alarm", 8).to_string())
                .cloned()
                .unwrap_or_default()
        };
        while ticks(&d).is_empty() {
            d.sleep(50).await;
        }
        let alive = d.ctx.state.get::<Alive>("alive").unwrap_or_default();
        let (host, _) = alive[&ActorId::new("Alarm", 8).to_string()][0];
        // Keep it busy so it does not idle out, then cut its node off from everything.
        let host_ip = d
            .ctx
            .topology
            .ips_of("node")
            .into_iter()
            .find(|ip| address(*ip) == host)
            .unwrap();
        let others: Vec<IpAddr> = d
            .ctx
            .topology
            .ips_of("node")
            .into_iter()
            .chain(d.ctx.topology.ips_of("cluster"))
            .filter(|ip| *ip != host_ip)
            .collect();
        for ip in others {
            d.control().partition(host_ip, ip, Duration::from_secs(20));
        }
        // The grant (2 s) cannot be renewed: the activation stops, its ticks with it (the
        // invariant checks every tick ran within its activation).
        assert!(
            d.deactivated(8, 10_000).await,
            "the cut-off activation stops"
        );
        let stopped = d.now();
        d.sleep(3_000).await;
        assert!(
            ticks(&d).iter().all(|tick| tick.1 <= stopped),
            "{:?}",
            ticks(&d)
        );
        d.control().heal_partitions();
    });
}

#[test]
fn test_panicking_timer_tick_ends_the_activation_and_its_timers() {
    run_quiet("timer-panic", 2, |d| async move {
        let client = &d.client;
        d.until_ok(30_000, || {
            AlarmRef::new(9).timer(client, "panic".into(), 50, Some(100))
        })
        .await
        .unwrap()
        .unwrap();
        let id = ActorId::new("Alarm", 9).to_string();
        let ticks = |d: &Driver| {
            d.ctx
                .state
                .get::<Ticks>("ticks")
                .unwrap_or_default()
                .get(&id)
                .cloned()
                .unwrap_or_default()
        };
        // The third tick panics: the activation ends (no idle wait), and its timer with it.
        assert!(
            d.deactivated(9, 1_500).await,
            "the panic ended the activation"
        );
        let ended = d.now();
        d.sleep(2_000).await;
        let list = ticks(&d);
        assert_eq!(list.len(), 3, "{list:?}");
        assert!(list.iter().all(|tick| tick.1 <= ended), "{list:?}");
        // The identity is activated again by the next call (a new activation, no timer).
        let before = d.ctx.state.get::<u64>("activations").unwrap_or(0);
        AlarmRef::new(9).busy(client, 1).await.unwrap();
        let after = d.ctx.state.get::<u64>("activations").unwrap_or(0);
        assert_eq!(after, before + 1);
        d.sleep(1_000).await;
        assert_eq!(ticks(&d).len(), 3, "the new activation has no timer");
    });
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

fn report(report: &SimulationReport, started: std::time::Instant) {
    println!("{report}");
    println!(
        "{} seeds in {:.1} s of wall time",
        report.seeds_run(),
        started.elapsed().as_secs_f64()
    );
}

#[test]
fn slow_simulation_reminders_chaos() {
    let started = std::time::Instant::now();
    let run = chaos("actors-reminders-chaos", true)
        .iterations(IterationControl::FixedCount(seeds(1_000)))
        .ci_max_seeds(6)
        .run()
        .unwrap();
    report(&run, started);
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
