//! Virtual actors on Tokio over real loopback TCP: three nodes, state in files in temporary
//! directories. Calls through every node and from outside the cluster, activation on demand,
//! concurrent first calls to one identity ending with one activation, state that survives a
//! node's restart, idle deactivation, a node's graceful drain, and every bound and bad value as
//! a typed error.
#![cfg(feature = "actors")]
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool::actors::{
    ActivationObserver, Actor, ActorClient, ActorConfig, ActorContext, ActorError, ActorId,
    ActorNode, ActorStartError, MembershipView, PersistentState, Placement, actor_impl,
};
use moonpool::transport::{NetTransport, NetTransportBuilder};
use moonpool::{NetworkAddress, TokioProviders, service};

/// A counter per key, persisted.
#[service]
pub trait Counter {
    /// Adds `by`; the new value.
    async fn add(&mut self, by: u64) -> Result<u64, String>;
    /// The value.
    async fn get(&mut self) -> u64;
    /// Sleeps, then answers (to keep an activation busy).
    async fn nap(&mut self, millis: u64) -> u64;
    /// Panics.
    async fn boom(&mut self) -> u64;
}

pub struct CounterActor {
    state: PersistentState<u64>,
    context: ActorContext,
}

/// Counts `on_deactivate` calls (given to the nodes as their data).
#[derive(Default)]
struct Deactivations(std::sync::atomic::AtomicUsize);

impl Actor for CounterActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        if context.id().key == moonpool::actors::ActorKey::from("broken") {
            return Err(ActorError::Serialization(
                "this counter cannot start".into(),
            ));
        }
        let state = context.load_state().await?;
        Ok(Self { state, context })
    }

    async fn on_deactivate(&mut self) {
        if let Some(count) = self.context.data::<Arc<Deactivations>>() {
            count.0.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    }
}

#[actor_impl]
impl Counter for CounterActor {
    async fn add(&mut self, by: u64) -> Result<u64, String> {
        *self.state.state_mut() += by;
        if let Err(error) = self.state.write_state().await {
            let _ = self.state.reload().await;
            return Err(error.to_string());
        }
        Ok(*self.state.state())
    }

    async fn get(&mut self) -> u64 {
        *self.state.state()
    }

    async fn nap(&mut self, millis: u64) -> u64 {
        self.context.sleep(Duration::from_millis(millis)).await;
        *self.state.state()
    }

    async fn boom(&mut self) -> u64 {
        panic!("boom")
    }
}

/// Activations alive per identity, and the most ever seen at once.
#[derive(Default)]
struct Census {
    alive: Mutex<BTreeMap<ActorId, Vec<u64>>>,
    peak: Mutex<usize>,
    started: Mutex<usize>,
}

impl ActivationObserver for Census {
    fn activated(&self, id: &ActorId, grant: u64, _node: NetworkAddress) {
        let mut alive = self.alive.lock().unwrap();
        let grants = alive.entry(id.clone()).or_default();
        grants.push(grant);
        let mut peak = self.peak.lock().unwrap();
        *peak = (*peak).max(grants.len());
        *self.started.lock().unwrap() += 1;
    }

    fn deactivated(&self, id: &ActorId, grant: u64, _node: NetworkAddress) {
        let mut alive = self.alive.lock().unwrap();
        if let Some(grants) = alive.get_mut(id) {
            grants.retain(|g| *g != grant);
        }
    }
}

impl Census {
    fn alive(&self) -> usize {
        self.alive.lock().unwrap().values().map(Vec::len).sum()
    }
}

async fn listening(address: &str) -> NetTransport {
    NetTransportBuilder::new(TokioProviders::new())
        .local_address(address.parse().unwrap())
        .build_listening()
        .await
        .unwrap()
}

struct Cluster {
    dirs: Vec<tempfile::TempDir>,
    transports: Vec<NetTransport>,
    view: MembershipView,
    census: Arc<Census>,
    deactivations: Arc<Deactivations>,
}

impl Cluster {
    async fn new(size: usize) -> Self {
        let mut transports = Vec::new();
        for _ in 0..size {
            transports.push(listening("127.0.0.1:0").await);
        }
        let view = MembershipView::new(1, transports.iter().map(|t| t.local_address().unwrap()));
        Self {
            dirs: (0..size).map(|_| tempfile::tempdir().unwrap()).collect(),
            transports,
            view,
            census: Arc::new(Census::default()),
            deactivations: Arc::new(Deactivations::default()),
        }
    }

    async fn node(&self, index: usize, config: ActorConfig) -> ActorNode<TokioProviders> {
        ActorNode::builder(
            TokioProviders::new(),
            self.transports[index].clone(),
            self.view.clone(),
        )
        .config(config)
        .actor::<CounterActor>(Placement::Random)
        .state_dir(self.dirs[index].path())
        .observer(Arc::clone(&self.census) as Arc<dyn ActivationObserver>)
        .data(Arc::clone(&self.deactivations))
        .start()
        .await
        .unwrap()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn test_three_nodes_on_loopback_route_activate_and_persist() {
    runtime().block_on(async {
        let cluster = Cluster::new(3).await;
        let mut nodes = Vec::new();
        for i in 0..3 {
            nodes.push(cluster.node(i, ActorConfig::default()).await);
        }
        let clients: Vec<ActorClient> = nodes.iter().map(ActorNode::client).collect();
        // Every node reaches every actor; each identity is one activation.
        for key in 0..12i64 {
            let counter = CounterRef::new(key);
            for client in &clients {
                counter.add(client, 1).await.unwrap().unwrap();
            }
            assert_eq!(counter.get(&clients[0]).await.unwrap(), 3);
        }
        assert_eq!(*cluster.census.peak.lock().unwrap(), 1);
        let hosted: usize = nodes.iter().map(ActorNode::activations).sum();
        assert_eq!(hosted, 12);
        assert!(
            nodes.iter().filter(|n| n.activations() > 0).count() >= 2,
            "random placement spreads"
        );

        // From outside the cluster, through any node.
        let outside = NetTransportBuilder::new(TokioProviders::new())
            .build()
            .unwrap();
        let external = ActorClient::external(
            outside,
            cluster.view.clone(),
            ActorConfig::default().service_base,
            Duration::from_secs(10),
        );
        assert_eq!(CounterRef::new(3).add(&external, 10).await.unwrap(), Ok(13));

        // References are data.
        let text = serde_json::to_string(&CounterRef::new("x")).unwrap();
        let back: CounterRef = serde_json::from_str(&text).unwrap();
        assert_eq!(back, CounterRef::new("x"));
        assert_eq!(
            CounterRef::from_id(ActorId::new("Other", 1)),
            Err(ActorId::new("Other", 1))
        );

        // An unknown method is a typed error.
        let raw = clients[0]
            .call_raw(ActorId::new("Counter", 1), 99, "{}".into())
            .await;
        assert!(
            matches!(raw, Err(ActorError::UnknownMethod { method: 99, .. })),
            "{raw:?}"
        );
        // A panicking handler: its caller gets the panic as an error, the activation is
        // dropped, and the next call activates the actor again from its stored state.
        let boom = CounterRef::new(5).boom(&clients[1]).await;
        assert!(
            matches!(&boom, Err(ActorError::HandlerPanicked { message, .. }) if message == "boom"),
            "{boom:?}"
        );
        assert_eq!(CounterRef::new(5).get(&clients[2]).await.unwrap(), 3);
        // A failing on_activate.
        let broken = CounterRef::new("broken").get(&clients[0]).await;
        assert!(
            matches!(broken, Err(ActorError::ActivationFailed { .. })),
            "{broken:?}"
        );
        // An unregistered type too.
        let raw = clients[0]
            .call_raw(ActorId::new("Nope", 1), 0, "{}".into())
            .await;
        assert!(
            matches!(raw, Err(ActorError::UnknownActorType { .. })),
            "{raw:?}"
        );

        // Graceful drain: every activation deactivates and releases its entry.
        let mut drained = 0;
        for node in nodes {
            drained += node.shutdown().await;
        }
        assert_eq!(drained, 0);
        assert_eq!(cluster.census.alive(), 0);
        assert_eq!(
            cluster
                .deactivations
                .0
                .load(std::sync::atomic::Ordering::SeqCst),
            12,
            "the drain ran on_deactivate for every activation"
        );

        // Restart the cluster on the same files (new transports, same addresses): the state
        // written and synced before is read back.
        let view = cluster.view.clone();
        let mut restarted = Vec::new();
        for (i, transport) in cluster.transports.iter().enumerate() {
            let address = transport.local_address().unwrap();
            transport.shutdown();
            tokio::time::sleep(Duration::from_millis(50)).await;
            let fresh = listening(&address.to_string()).await;
            restarted.push(
                ActorNode::builder(TokioProviders::new(), fresh, view.clone())
                    .actor::<CounterActor>(Placement::Random)
                    .state_dir(cluster.dirs[i].path())
                    .start()
                    .await
                    .unwrap(),
            );
        }
        let client = restarted[1].client();
        assert_eq!(CounterRef::new(3).get(&client).await.unwrap(), 13);
        assert_eq!(CounterRef::new(11).get(&client).await.unwrap(), 3);
        for node in restarted {
            node.shutdown().await;
        }
    });
}

#[test]
fn test_concurrent_first_calls_make_one_activation() {
    runtime().block_on(async {
        let cluster = Cluster::new(3).await;
        let mut nodes = Vec::new();
        for i in 0..3 {
            nodes.push(cluster.node(i, ActorConfig::default()).await);
        }
        let mut calls = Vec::new();
        for round in 0..30 {
            let client = nodes[round % 3].client();
            calls.push(tokio::spawn(async move {
                CounterRef::new("race").add(&client, 1).await
            }));
        }
        for call in calls {
            call.await.unwrap().unwrap().unwrap();
        }
        assert_eq!(*cluster.census.started.lock().unwrap(), 1);
        assert_eq!(
            CounterRef::new("race")
                .get(&nodes[0].client())
                .await
                .unwrap(),
            30
        );
        for node in nodes {
            node.shutdown().await;
        }
    });
}

#[test]
fn test_idle_activations_deactivate_and_bounds_are_typed_errors() {
    runtime().block_on(async {
        let cluster = Cluster::new(1).await;
        let config = {
            let mut cfg = ActorConfig::default();
            cfg.idle_timeout = Duration::from_millis(200);
            cfg.max_activations = 2;
            cfg.mailbox_capacity = 1;
            cfg
        };
        let node = cluster.node(0, config).await;
        let client = node.client();
        CounterRef::new(1).add(&client, 1).await.unwrap().unwrap();
        CounterRef::new(2).add(&client, 1).await.unwrap().unwrap();
        let third = CounterRef::new(3).add(&client, 1).await;
        assert!(
            matches!(third, Err(ActorError::TooManyActivations { limit: 2, .. })),
            "{third:?}"
        );
        // Idle for longer than idle_timeout: both deactivate, and there is room again.
        tokio::time::sleep(Duration::from_millis(800)).await;
        assert_eq!(node.activations(), 0);
        assert_eq!(cluster.census.alive(), 0);
        assert_eq!(
            cluster
                .deactivations
                .0
                .load(std::sync::atomic::Ordering::SeqCst),
            2,
            "on_deactivate ran for both idle activations"
        );
        assert_eq!(CounterRef::new(3).add(&client, 1).await.unwrap(), Ok(1));
        // Mailbox bound (capacity 1): while one long message runs, at most one more waits and
        // the rest are refused with a typed error (no timing is asserted: whichever of the
        // short messages gets the one place, the others are refused).
        let busy = CounterRef::new(1);
        assert_eq!(busy.get(&client).await.unwrap(), 1);
        let first = tokio::spawn({
            let (busy, client) = (busy.clone(), client.clone());
            async move { busy.nap(&client, 3_000).await }
        });
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut short = Vec::new();
        for _ in 0..5 {
            let (busy, client) = (busy.clone(), client.clone());
            short.push(tokio::spawn(async move { busy.nap(&client, 1).await }));
        }
        let mut refused = 0;
        for call in short {
            match call.await.unwrap() {
                Ok(1) => {}
                Err(ActorError::MailboxFull { capacity: 1, .. }) => refused += 1,
                other => panic!("unexpected {other:?}"),
            }
        }
        assert!(refused >= 4, "{refused} of 5 refused");
        assert_eq!(first.await.unwrap(), Ok(1));
        node.shutdown().await;
    });
}

#[test]
fn test_bad_configuration_and_membership_are_refused() {
    runtime().block_on(async {
        let cluster = Cluster::new(1).await;
        let bad = ActorNode::builder(
            TokioProviders::new(),
            cluster.transports[0].clone(),
            cluster.view.clone(),
        )
        .config({
            let mut cfg = ActorConfig::default();
            cfg.max_hops = 0;
            cfg
        })
        .start()
        .await;
        assert!(
            matches!(&bad, Err(ActorStartError::Config(e)) if e.field == "max_hops"),
            "{bad:?}"
        );
        let elsewhere = MembershipView::new(1, ["127.0.0.1:1".parse().unwrap()]);
        let outsider = ActorNode::builder(
            TokioProviders::new(),
            cluster.transports[0].clone(),
            elsewhere,
        )
        .start()
        .await;
        assert!(
            matches!(outsider, Err(ActorStartError::NotAMember { .. })),
            "{outsider:?}"
        );
        let twice = ActorNode::builder(
            TokioProviders::new(),
            cluster.transports[0].clone(),
            cluster.view.clone(),
        )
        .actor::<CounterActor>(Placement::Local)
        .actor::<CounterActor>(Placement::Random)
        .start()
        .await;
        assert!(
            matches!(twice, Err(ActorStartError::DuplicateType(_))),
            "{twice:?}"
        );
        let unlistening = NetTransportBuilder::new(TokioProviders::new())
            .build()
            .unwrap();
        let not_listening =
            ActorNode::builder(TokioProviders::new(), unlistening, cluster.view.clone())
                .start()
                .await;
        assert!(
            matches!(not_listening, Err(ActorStartError::NotListening)),
            "{not_listening:?}"
        );
    });
}
