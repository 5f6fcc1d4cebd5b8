//! Re-entrant actor methods on Tokio over real loopback TCP (two nodes, state files in temporary
//! directories, a multi-threaded runtime).
//!
//! The actor checks the turn discipline itself: every call records on entry and on exit whether
//! a `&mut self` turn and another call of the same identity were running (a violation is kept
//! and fails the test). A re-entrant `wait` is completed by a re-entrant `open` on the same
//! actor; an actor calls itself; a storm of re-entrant reads and turns from both nodes; a drain
//! with a re-entrant call in flight waits for it before `on_deactivate`, and gives up after
//! `drain_timeout` on one that never ends; a panicking re-entrant call interrupts the one
//! suspended beside it.
#![cfg(feature = "actors")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::{Either, select};
use moonpool::actors::{
    Actor, ActorClient, ActorConfig, ActorContext, ActorError, ActorId, ActorNode, MembershipView,
    Placement, actor_impl,
};
use moonpool::transport::{NetTransport, NetTransportBuilder};
use moonpool::{TokioProviders, service};
use tokio::sync::oneshot;

#[service]
pub trait Gate {
    /// Waits until an `open(token)` wakes it, or `patience_ms` pass: true when woken.
    #[reentrant]
    async fn wait(&self, token: u64, patience_ms: u64) -> bool;
    /// Wakes the waiters of `token`: how many there were.
    #[reentrant]
    async fn open(&self, token: u64) -> u32;
    /// The counter, after `delay_ms`.
    #[reentrant]
    async fn read(&self, delay_ms: u64) -> u64;
    /// Calls itself `depth` times through the cluster.
    #[reentrant]
    async fn relay(&self, depth: u32) -> Result<u32, String>;
    /// Panics after `delay_ms`.
    #[reentrant]
    async fn explode(&self, delay_ms: u64) -> u64;
    /// A turn: adds one to the counter after `delay_ms`.
    async fn bump(&mut self, delay_ms: u64) -> u64;
}

/// What every call of every activation records (given to the nodes as their data).
#[derive(Clone, Default)]
struct Checker {
    inner: Arc<Mutex<Checked>>,
}

#[derive(Default)]
struct Checked {
    /// Per identity: (re-entrant calls, turns) running now.
    running: BTreeMap<ActorId, (u32, u32)>,
    violations: Vec<String>,
    most_readers: u32,
    deactivations: u32,
}

impl Checker {
    fn enter(&self, id: &ActorId, turn: bool) {
        let mut checked = self.inner.lock().unwrap();
        let (readers, writers) = *checked.running.get(id).unwrap_or(&(0, 0));
        if writers > 0 || (turn && readers > 0) {
            checked.violations.push(format!(
                "{id}: a {} started with {readers} re-entrant calls and {writers} turns running",
                if turn { "turn" } else { "re-entrant call" }
            ));
        }
        let entry = checked.running.entry(id.clone()).or_default();
        if turn {
            entry.1 += 1;
        } else {
            entry.0 += 1;
        }
        let readers = entry.0;
        checked.most_readers = checked.most_readers.max(readers);
    }

    fn exit(&self, id: &ActorId, turn: bool) {
        let mut checked = self.inner.lock().unwrap();
        if let Some(entry) = checked.running.get_mut(id) {
            if turn {
                entry.1 -= 1;
            } else {
                entry.0 -= 1;
            }
        }
    }

    fn readers(&self, id: &ActorId) -> u32 {
        self.inner
            .lock()
            .unwrap()
            .running
            .get(id)
            .map_or(0, |r| r.0)
    }
}

/// Records a call for its duration (also when it is dropped half-way).
struct Call<'a> {
    checker: Arc<Checker>,
    id: &'a ActorId,
    turn: bool,
}

impl<'a> Call<'a> {
    fn begin(context: &'a ActorContext, turn: bool) -> Self {
        let checker = context.data::<Checker>().unwrap();
        checker.enter(context.id(), turn);
        Self {
            checker,
            id: context.id(),
            turn,
        }
    }
}

impl Drop for Call<'_> {
    fn drop(&mut self) {
        self.checker.exit(self.id, self.turn);
    }
}

pub struct GateActor {
    context: ActorContext,
    counter: u64,
    waiting: Mutex<BTreeMap<u64, Vec<oneshot::Sender<()>>>>,
}

impl Actor for GateActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        Ok(Self {
            context,
            counter: 0,
            waiting: Mutex::new(BTreeMap::new()),
        })
    }

    async fn on_deactivate(&mut self) {
        let checker = self.context.data::<Checker>().unwrap();
        let mut checked = checker.inner.lock().unwrap();
        checked.deactivations += 1;
        let running = checked.running.get(self.context.id()).copied();
        if running.is_some_and(|r| r != (0, 0)) {
            checked.violations.push(format!(
                "{}: on_deactivate with {running:?} running",
                self.context.id()
            ));
        }
    }
}

#[actor_impl]
impl Gate for GateActor {
    async fn wait(&self, token: u64, patience_ms: u64) -> bool {
        let _call = Call::begin(&self.context, false);
        let (tx, rx) = oneshot::channel();
        self.waiting
            .lock()
            .unwrap()
            .entry(token)
            .or_default()
            .push(tx);
        let patience = self.context.sleep(Duration::from_millis(patience_ms));
        matches!(select(rx, patience).await, Either::Left((Ok(()), _)))
    }

    async fn open(&self, token: u64) -> u32 {
        let _call = Call::begin(&self.context, false);
        let waiters = self.waiting.lock().unwrap().remove(&token);
        let mut woken = 0;
        for waiter in waiters.into_iter().flatten() {
            if waiter.send(()).is_ok() {
                woken += 1;
            }
        }
        woken
    }

    async fn read(&self, delay_ms: u64) -> u64 {
        let _call = Call::begin(&self.context, false);
        self.context.sleep(Duration::from_millis(delay_ms)).await;
        self.counter
    }

    async fn relay(&self, depth: u32) -> Result<u32, String> {
        let _call = Call::begin(&self.context, false);
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
        let _call = Call::begin(&self.context, false);
        self.context.sleep(Duration::from_millis(delay_ms)).await;
        panic!("exploded on purpose")
    }

    async fn bump(&mut self, delay_ms: u64) -> u64 {
        let _call = Call::begin(&self.context, true);
        self.context.sleep(Duration::from_millis(delay_ms)).await;
        self.counter += 1;
        self.counter
    }
}

struct Cluster {
    _dirs: Vec<tempfile::TempDir>,
    nodes: Vec<ActorNode<TokioProviders>>,
    checker: Checker,
}

impl Cluster {
    async fn new(size: usize) -> Self {
        Self::with_drain_timeout(size, ActorConfig::default().drain_timeout).await
    }

    async fn with_drain_timeout(size: usize, drain_timeout: Duration) -> Self {
        let mut transports: Vec<NetTransport> = Vec::new();
        for _ in 0..size {
            transports.push(
                NetTransportBuilder::new(TokioProviders::new())
                    .local_address("127.0.0.1:0".parse().unwrap())
                    .build_listening()
                    .await
                    .unwrap(),
            );
        }
        let view = MembershipView::new(1, transports.iter().map(|t| t.local_address().unwrap()));
        let dirs: Vec<tempfile::TempDir> =
            (0..size).map(|_| tempfile::tempdir().unwrap()).collect();
        let checker = Checker::default();
        let mut nodes = Vec::new();
        for (transport, dir) in transports.into_iter().zip(&dirs) {
            let mut config = ActorConfig::default();
            config.idle_timeout = Duration::from_secs(30);
            config.call_timeout = Duration::from_secs(20);
            config.drain_timeout = drain_timeout;
            nodes.push(
                ActorNode::builder(TokioProviders::new(), transport, view.clone())
                    .config(config)
                    .actor::<GateActor>(Placement::Random)
                    .state_dir(dir.path())
                    .data(checker.clone())
                    .start()
                    .await
                    .unwrap(),
            );
        }
        Self {
            _dirs: dirs,
            nodes,
            checker,
        }
    }

    fn client(&self, index: usize) -> ActorClient {
        self.nodes[index].client()
    }

    fn violations(&self) -> Vec<String> {
        self.checker.inner.lock().unwrap().violations.clone()
    }

    /// Waits until `gate` runs at least one re-entrant call (the checker's count: no timing).
    async fn until_running(&self, gate: &GateRef) {
        while self.checker.readers(gate.id()) == 0 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    async fn shutdown(self) -> usize {
        let mut left = 0;
        for node in self.nodes {
            left += node.shutdown().await;
        }
        left
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
fn test_reentrant_calls_interleave_over_loopback() {
    runtime().block_on(async {
        let cluster = Cluster::new(2).await;
        let (a, b) = (cluster.client(0), cluster.client(1));
        let gate = GateRef::new("g");
        // A waits for something only B does (B through the other node).
        let waiting = tokio::spawn({
            let (gate, a) = (gate.clone(), a.clone());
            async move { gate.wait(&a, 1, 15_000).await }
        });
        cluster.until_running(&gate).await;
        assert_eq!(
            gate.open(&b, 1).await,
            Ok(1),
            "the open ran beside the wait"
        );
        assert_eq!(waiting.await.unwrap(), Ok(true));
        assert!(cluster.checker.inner.lock().unwrap().most_readers >= 2);
        // An actor calling itself.
        assert_eq!(gate.relay(&b, 4).await, Ok(Ok(4)));

        // A storm from both nodes: re-entrant reads and turns on three actors.
        let mut calls = Vec::new();
        for i in 0..60u64 {
            let client = if i % 2 == 0 { a.clone() } else { b.clone() };
            let gate = GateRef::new(i64::try_from(i % 3).unwrap());
            calls.push(tokio::spawn(async move {
                if i % 4 == 0 {
                    gate.bump(&client, 3).await.map(|_| ())
                } else {
                    gate.read(&client, 3).await.map(|_| ())
                }
            }));
        }
        for call in calls {
            call.await.unwrap().unwrap();
        }
        let mut total = 0;
        for key in 0..3i64 {
            total += GateRef::new(key).read(&a, 0).await.unwrap();
        }
        assert_eq!(total, 15, "every turn counted once");
        assert_eq!(cluster.violations(), Vec::<String>::new());
        assert_eq!(cluster.shutdown().await, 0);
    });
}

#[test]
fn test_drain_waits_for_a_running_reentrant_call() {
    runtime().block_on(async {
        let cluster = Cluster::new(1).await;
        let client = cluster.client(0);
        let gate = GateRef::new("d");
        let waiting = tokio::spawn({
            let (gate, client) = (gate.clone(), client.clone());
            async move { gate.wait(&client, 7, 700).await }
        });
        cluster.until_running(&gate).await;
        let checker = cluster.checker.clone();
        // The drain lets the suspended call end (by its patience), then deactivates.
        assert_eq!(cluster.shutdown().await, 0);
        assert_eq!(waiting.await.unwrap(), Ok(false));
        let checked = checker.inner.lock().unwrap();
        assert_eq!(checked.deactivations, 1);
        assert_eq!(checked.violations, Vec::<String>::new());
    });
}

#[test]
fn test_reentrant_panic_interrupts_the_call_beside_it_over_loopback() {
    runtime().block_on(async {
        let cluster = Cluster::new(2).await;
        let client = cluster.client(0);
        let gate = GateRef::new("p");
        assert_eq!(gate.bump(&client, 0).await, Ok(1));
        let waiting = tokio::spawn({
            let (gate, client) = (gate.clone(), client.clone());
            async move { gate.wait(&client, 3, 15_000).await }
        });
        cluster.until_running(&gate).await;
        let exploded = gate.explode(&cluster.client(1), 10).await;
        assert!(
            matches!(&exploded, Err(ActorError::HandlerPanicked { message, .. })
                if message == "exploded on purpose"),
            "{exploded:?}"
        );
        let waited = waiting.await.unwrap();
        assert!(
            matches!(waited, Err(ActorError::Interrupted { .. })),
            "{waited:?}"
        );
        // A new activation (the counter is not persisted: it starts again).
        assert_eq!(gate.read(&client, 0).await, Ok(0));
        assert_eq!(cluster.violations(), Vec::<String>::new());
        assert_eq!(cluster.shutdown().await, 0);
    });
}

#[test]
fn test_a_drain_gives_up_on_a_reentrant_call_that_never_ends() {
    runtime().block_on(async {
        let cluster = Cluster::with_drain_timeout(1, Duration::from_millis(300)).await;
        let client = cluster.client(0);
        let gate = GateRef::new("stuck");
        // Never opened; its patience outlasts the test.
        let _stuck = tokio::spawn({
            let (gate, client) = (gate.clone(), client.clone());
            async move { gate.wait(&client, 1, 600_000).await }
        });
        cluster.until_running(&gate).await;
        let checker = cluster.checker.clone();
        assert_eq!(
            cluster.shutdown().await,
            1,
            "the drain gave up after drain_timeout"
        );
        let checked = checker.inner.lock().unwrap();
        assert_eq!(
            checked.deactivations, 0,
            "no on_deactivate beside a running call"
        );
        assert_eq!(checked.violations, Vec::<String>::new());
    });
}
