//! What an activation runs when its grant runs out is cut then: a re-entrant call, a slow
//! `on_activate`, a slow `on_deactivate`.
//!
//! Two nodes on a fixed view (no membership table: grants are time-bounded all the same). The
//! identity under test is owned by the first node's directory partition and hosted on the
//! second (`Placement::Local`, and the external client calls through the second node only).
//! Once the activation runs, the test partitions the two nodes: the host's renewals get no
//! answer, so its lease ends at most `grant_duration` after the partition on its clock.
//!
//! - `test_reentrant_call_is_interrupted_when_the_grant_runs_out`: two re-entrant calls that
//!   would take 10 s each, running beside each other, are cut; their callers get
//!   `ActorError::Interrupted` (naming the grant) within their timeout and by the lease's end;
//!   no step of either is made after they were cut, nor after the lease's end.
//! - `test_on_activate_that_outlives_the_grant_is_cut`: an `on_activate` of 10 s never finishes;
//!   it is dropped by the lease's end and the caller gets a typed error within its timeout.
//! - `test_on_deactivate_that_outlives_the_grant_is_cut`: an `on_deactivate` of 10 s (run when
//!   the activation goes idle) is dropped by the lease's end.
//!
//! Each then heals the partition and checks that the identity answers again.
#![cfg(feature = "actors")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use moonpool::actors::{
    Actor, ActorClient, ActorConfig, ActorContext, ActorError, ActorNode, ClusterConfig,
    MembershipView, Placement, actor_impl,
};
use moonpool::sim::{
    IterationControl, ProcessContext, SimTimeProvider, SimulationBuilder, StateHandle,
    WorkloadContext, WorkloadError, WorldConfig,
};
use moonpool::transport::NetTransportBuilder;
use moonpool::{NetworkAddress, Providers, TaskProvider, TimeProvider, service};

mod support;
use support::{Alive, Census};

const PORT: u16 = 4900;
const GRANT: Duration = Duration::from_secs(2);
/// How long the test's client waits for a call at most.
const CALL_TIMEOUT: Duration = Duration::from_secs(8);
/// How late the lease's end may be noticed: the network's latency (no faults, no drift here).
const LATE: Duration = Duration::from_millis(50);

/// The actor under test.
#[service]
pub trait Slow {
    /// Takes `steps` steps of 100 ms, marking each on the blackboard: the steps taken.
    #[reentrant]
    async fn crawl(&self, steps: u32) -> u32;
    /// A turn that answers at once.
    async fn poke(&mut self) -> u32;
}

/// How long the actor's `on_activate` and `on_deactivate` take (the blackboard's
/// `"lifecycle"`; zero: no time at all).
#[derive(Debug, Default, Clone, Copy)]
struct Lifecycle {
    activate_ms: u64,
    deactivate_ms: u64,
}

/// When a piece of the actor's code ran: it started, finished (if it did) and ended (finished
/// or dropped), in real time.
#[derive(Debug, Default, Clone, Copy)]
struct Span {
    started: Duration,
    finished: bool,
    ended: Option<Duration>,
}

/// What the nodes give the actor: the blackboard and the real-time clock (for the marks).
struct Shared {
    board: StateHandle,
    time: SimTimeProvider,
}

/// Marks `what` on the blackboard from its start to its end: when it is dropped, finished or not.
struct Mark {
    shared: Arc<Shared>,
    what: &'static str,
    finished: bool,
}

impl Mark {
    fn begin(shared: &Arc<Shared>, what: &'static str) -> Self {
        let started = shared.time.now();
        shared.board.update(what, |span: &mut Span| {
            *span = Span {
                started,
                finished: false,
                ended: None,
            };
        });
        Self {
            shared: Arc::clone(shared),
            what,
            finished: false,
        }
    }
}

impl Drop for Mark {
    fn drop(&mut self) {
        let (now, finished) = (self.shared.time.now(), self.finished);
        self.shared.board.update(self.what, |span: &mut Span| {
            span.finished = finished;
            span.ended = Some(now);
        });
    }
}

pub struct SlowActor {
    context: ActorContext,
    shared: Arc<Shared>,
}

impl Actor for SlowActor {
    async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
        let shared = context.data::<Shared>().unwrap();
        let life = shared
            .board
            .get::<Lifecycle>("lifecycle")
            .unwrap_or_default();
        if life.activate_ms > 0 {
            let mut mark = Mark::begin(&shared, "on_activate");
            context.sleep(Duration::from_millis(life.activate_ms)).await;
            mark.finished = true;
        }
        Ok(Self { context, shared })
    }

    async fn on_deactivate(&mut self) {
        let life = self
            .shared
            .board
            .get::<Lifecycle>("lifecycle")
            .unwrap_or_default();
        if life.deactivate_ms > 0 {
            let mut mark = Mark::begin(&self.shared, "on_deactivate");
            self.context
                .sleep(Duration::from_millis(life.deactivate_ms))
                .await;
            mark.finished = true;
        }
    }
}

#[actor_impl]
impl Slow for SlowActor {
    async fn crawl(&self, steps: u32) -> u32 {
        let mut mark = Mark::begin(&self.shared, "crawl");
        for _ in 0..steps {
            let now = self.shared.time.now();
            self.shared
                .board
                .update("crawl steps", |steps: &mut Vec<Duration>| steps.push(now));
            self.context.sleep(Duration::from_millis(100)).await;
        }
        mark.finished = true;
        steps
    }

    async fn poke(&mut self) -> u32 {
        1
    }
}

fn address(ip: IpAddr) -> NetworkAddress {
    format!("{ip}:{PORT}").parse().unwrap()
}

fn members() -> MembershipView {
    MembershipView::new(
        1,
        (1..=2).map(|i| format!("10.0.0.{i}:{PORT}").parse().unwrap()),
    )
}

fn cluster_config() -> ClusterConfig {
    let mut config = ClusterConfig::default();
    config.grant_duration = GRANT;
    config
}

fn actor_config() -> ActorConfig {
    let mut config = ActorConfig::default();
    config.idle_timeout = Duration::from_secs(1);
    config.call_timeout = Duration::from_secs(3);
    config.directory_timeout = Duration::from_secs(1);
    config.retry_backoff = Duration::from_millis(50);
    config
}

async fn node(ctx: ProcessContext) {
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address(ctx.ip))
        .build_listening()
        .await
    else {
        return;
    };
    let shared = Shared {
        board: ctx.state.clone(),
        time: ctx.providers.time().clone(),
    };
    let node = ActorNode::builder(ctx.providers.clone(), transport, members())
        .config(actor_config())
        .cluster_config(cluster_config())
        .actor::<SlowActor>(Placement::Local)
        .state_in_memory()
        .observer(Arc::new(Census(ctx.state.clone())))
        .data(shared)
        .start()
        .await
        .unwrap();
    ctx.shutdown.requested().await;
    node.shutdown().await;
}

/// The world for one test: two nodes and the workload.
fn simulation<F, Fut>(name: &str, workload: F) -> SimulationBuilder
where
    F: Fn(WorkloadContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), WorkloadError>> + Send + 'static,
{
    SimulationBuilder::new(name)
        .progress(false)
        // No faults: the partition is the only thing that happens to the nodes.
        .world_config(WorldConfig::quiet())
        .coverage_exclude("moonpool::actors")
        .process("node", 2, node)
        .workload("driver", 1, workload)
}

fn run(builder: SimulationBuilder) {
    let report = builder
        .iterations(IterationControl::FixedCount(4))
        .run()
        .unwrap();
    println!("{report}");
    report.assert_success();
}

/// What a test's workload works with: a client that calls through the host (the second node)
/// only, the identity (owned by the first node), the two nodes' addresses.
struct Setup {
    client: ActorClient,
    actor: SlowRef,
    owner: IpAddr,
    host: IpAddr,
}

fn setup(ctx: &WorkloadContext) -> Result<Setup, WorkloadError> {
    let nodes = ctx.topology.ips_of("node");
    let (owner, host) = (nodes[0], nodes[1]);
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    let client = ActorClient::external_within(
        transport,
        MembershipView::new(1, [address(host)]),
        actor_config().service_base,
        CALL_TIMEOUT,
        ctx.providers.time().clone(),
    );
    let view = members();
    let actor = (0..)
        .map(|key: i64| SlowRef::new(key))
        .find(|actor| view.owner(actor.id()).unwrap() == address(owner))
        .unwrap();
    Ok(Setup {
        client,
        actor,
        owner,
        host,
    })
}

/// The span `what` marked on the blackboard.
fn span(ctx: &WorkloadContext, what: &str) -> Span {
    ctx.state
        .get::<Span>(what)
        .unwrap_or_else(|| panic!("{what} never ran"))
}

/// The nodes hosting the identity now.
fn hosts(ctx: &WorkloadContext, setup: &Setup) -> Vec<NetworkAddress> {
    ctx.state
        .get::<Alive>("alive")
        .unwrap_or_default()
        .get(&setup.actor.id().to_string())
        .map(|list| list.iter().map(|(node, _)| *node).collect())
        .unwrap_or_default()
}

/// Heals the partition and checks that the identity answers again (after the owner's hold of
/// the old grant, at most a few seconds).
async fn heals(ctx: &WorkloadContext, setup: &Setup) -> Result<(), WorkloadError> {
    ctx.control().heal_partitions();
    let time = ctx.providers.time();
    let healed = time.now();
    loop {
        if setup.actor.poke(&setup.client).await.is_ok() {
            return Ok(());
        }
        let waited = time.now().saturating_sub(healed);
        if waited > Duration::from_secs(20) {
            return Err(format!("the identity does not answer {waited:?} after the heal").into());
        }
        time.sleep(Duration::from_millis(200)).await;
    }
}

#[test]
fn test_reentrant_call_is_interrupted_when_the_grant_runs_out() {
    run(simulation("grant-cuts-reentrant", |ctx| async move {
        let setup = setup(&ctx)?;
        let time = ctx.providers.time().clone();
        let started = time.now();
        // Two re-entrant calls, beside each other in the activation.
        let calls: Vec<_> = (0..2)
            .map(|_| {
                let (actor, client, time) =
                    (setup.actor.clone(), setup.client.clone(), time.clone());
                ctx.providers.task().spawn("crawl", async move {
                    let outcome = actor.crawl(&client, 100).await;
                    (outcome, time.now())
                })
            })
            .collect();
        let time = ctx.providers.time().clone();
        // The calls run (their first steps are on the blackboard) on the host.
        time.sleep(Duration::from_millis(500)).await;
        assert_eq!(hosts(&ctx, &setup), vec![address(setup.host)]);
        assert!(span(&ctx, "crawl").ended.is_none());
        let cut_off = time.now();
        ctx.control()
            .partition(setup.owner, setup.host, Duration::from_secs(60));
        let mut last = Duration::ZERO;
        for call in calls {
            let (outcome, ended) = call.await.unwrap();
            match &outcome {
                Err(ActorError::Interrupted { id, reason }) => {
                    assert_eq!(id, setup.actor.id());
                    assert!(reason.contains("grant"), "{reason}");
                }
                other => panic!("a cut call answers Interrupted, not {other:?}"),
            }
            assert!(
                ended.saturating_sub(started) <= CALL_TIMEOUT,
                "the caller hears within its timeout: {:?}",
                ended.saturating_sub(started)
            );
            last = last.max(ended);
        }
        let ended = last;
        let lease_end = cut_off + GRANT + LATE;
        assert!(ended <= lease_end, "{ended:?} > {lease_end:?}");
        let crawl = span(&ctx, "crawl");
        assert!(!crawl.finished, "{crawl:?}");
        let dropped = crawl.ended.unwrap();
        assert!(dropped <= lease_end, "{dropped:?} > {lease_end:?}");
        // Nothing more of the call ran after it was cut (its future is gone).
        time.sleep(Duration::from_secs(2)).await;
        let steps = ctx
            .state
            .get::<Vec<Duration>>("crawl steps")
            .unwrap_or_default();
        assert!(steps.len() >= 3, "{steps:?}");
        assert!(steps.iter().all(|step| *step <= dropped), "{steps:?}");
        assert!(hosts(&ctx, &setup).is_empty());
        heals(&ctx, &setup).await
    }));
}

#[test]
fn test_on_activate_that_outlives_the_grant_is_cut() {
    run(simulation("grant-cuts-activate", |ctx| async move {
        let setup = setup(&ctx)?;
        ctx.state.update("lifecycle", |life: &mut Lifecycle| {
            life.activate_ms = 10_000;
        });
        let time = ctx.providers.time().clone();
        let (actor, client) = (setup.actor.clone(), setup.client.clone());
        let started = time.now();
        let call = ctx.providers.task().spawn("poke", async move {
            let outcome = actor.poke(&client).await;
            (outcome, time.now())
        });
        let time = ctx.providers.time().clone();
        time.sleep(Duration::from_millis(500)).await;
        assert!(span(&ctx, "on_activate").ended.is_none());
        let cut_off = time.now();
        ctx.control()
            .partition(setup.owner, setup.host, Duration::from_secs(60));
        let (outcome, ended) = call.await.unwrap();
        // The caller hears a typed error within its timeout (its retries find the owner
        // unreachable once the activation stopped).
        assert!(outcome.is_err(), "{outcome:?}");
        assert!(
            ended.saturating_sub(started) <= CALL_TIMEOUT + Duration::from_secs(1),
            "{:?}",
            ended.saturating_sub(started)
        );
        let lease_end = cut_off + GRANT + LATE;
        let activate = span(&ctx, "on_activate");
        assert!(!activate.finished, "{activate:?}");
        let dropped = activate.ended.unwrap();
        assert!(dropped <= lease_end, "{dropped:?} > {lease_end:?}");
        assert!(hosts(&ctx, &setup).is_empty());
        ctx.state.update("lifecycle", |life: &mut Lifecycle| {
            life.activate_ms = 0;
        });
        heals(&ctx, &setup).await
    }));
}

#[test]
fn test_on_deactivate_that_outlives_the_grant_is_cut() {
    run(simulation("grant-cuts-deactivate", |ctx| async move {
        let setup = setup(&ctx)?;
        ctx.state.update("lifecycle", |life: &mut Lifecycle| {
            life.deactivate_ms = 10_000;
        });
        let time = ctx.providers.time().clone();
        setup.actor.poke(&setup.client).await?;
        assert_eq!(hosts(&ctx, &setup), vec![address(setup.host)]);
        let cut_off = time.now();
        ctx.control()
            .partition(setup.owner, setup.host, Duration::from_secs(60));
        // The activation goes idle after a second and runs `on_deactivate`, which the lease's
        // end cuts.
        time.sleep(GRANT + Duration::from_secs(2)).await;
        let lease_end = cut_off + GRANT + LATE;
        let deactivate = span(&ctx, "on_deactivate");
        assert!(deactivate.started < lease_end, "{deactivate:?}");
        assert!(!deactivate.finished, "{deactivate:?}");
        let dropped = deactivate.ended.unwrap();
        assert!(dropped <= lease_end, "{dropped:?} > {lease_end:?}");
        assert!(hosts(&ctx, &setup).is_empty());
        ctx.state.update("lifecycle", |life: &mut Lifecycle| {
            life.deactivate_ms = 0;
        });
        heals(&ctx, &setup).await
    }));
}
