//! A `#[service]` interface under swarm chaos, run by `SimulationBuilder`: a three-method
//! service on 3 servers, 5 clients, network faults, clock drift, partitions and attrition (each
//! family on in about half the seeds).
//!
//! Every server publishes the client of each of its boots (the base token is random per boot);
//! clients call a random server through its latest client, or sometimes through its first one
//! (stale once the server rebooted), and cycle through the four delivery modes, each bounded by
//! a timeout. The handlers sometimes answer late (longer than some callers wait), sometimes end
//! without replying, and sometimes answer the service's own error, so every error path of the
//! generated client is reached by design: `Timeout`, `MaybeDelivered`, `BrokenPromise`,
//! `ConnectionFailed`, `EndpointNotFound`, and `CallError::Service`.
//!
//! Delivery contracts (`assert_always!`): every reply answers the call that awaited it (same
//! client, same sequence number, so no reply of an abandoned call reaches a later one) and comes
//! from the method called; a request reaches the method it was sent to; `get_reply` never ends
//! with a connection error; `try_get_reply` and `send` requests reach a handler at most once;
//! nothing reaches a handler that was not sent; every client used every delivery mode; the
//! pending-reply map drains to zero after the settle phase.
//!
//! 1,000 seeds under the `sim` nextest profile (`MOONPOOL_TRANSPORT_SEEDS` changes the count), a
//! bounded count when `CI` is set.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use moonpool_core::{
    NetworkAddress, Providers, RandomProvider, TaskProvider, TimeProvider, assert_always,
    assert_sometimes,
};
use moonpool_sim::{
    Attrition, Chaos, IterationControl, NetworkConfiguration, ProcessContext, RebootKind,
    SimProviders, SimulationBuilder, StateHandle, WorkloadContext, WorkloadError, WorldConfig,
};
use moonpool_transport::{CallError, NetTransportBuilder, ReplyError, no_reply, service};
use serde::{Deserialize, Serialize};

const PORT: u16 = 4500;

/// The delivery modes, cycled by every client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub enum Mode {
    Send,
    TryGetReply,
    GetReply,
    GetReplyUnlessFailedFor,
}

const MODES: [Mode; 4] = [
    Mode::Send,
    Mode::TryGetReply,
    Mode::GetReply,
    Mode::GetReplyUnlessFailedFor,
];

/// One call: who sent it, what it asks the handler to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Ticket {
    pub client: usize,
    pub seq: u64,
    /// The method it is sent to (0, 1 or 2).
    pub method: u8,
    pub mode: Mode,
    /// How long the handler waits before answering.
    pub delay_ms: u64,
    /// `flaky` ends without replying; `checked` answers its error.
    pub misbehave: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stamp {
    pub client: usize,
    pub seq: u64,
    /// The method that answered.
    pub method: u8,
    pub boot: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Refused {
    Misbehaving { seq: u64 },
}

/// The service under test.
#[service]
pub trait Probe {
    /// Answers, sometimes late.
    #[serve(in_flight_max = 4)]
    async fn echo(&self, ticket: Ticket) -> Stamp;
    /// Sometimes ends without replying (the caller gets `BrokenPromise`).
    async fn flaky(&self, ticket: Ticket) -> Stamp;
    /// Sometimes answers the service's own error.
    #[serve(in_flight_max = 2)]
    async fn checked(&self, ticket: Ticket) -> Result<Stamp, Refused>;
}

/// Requests the handlers saw, by (client, seq).
type Delivered = BTreeMap<(usize, u64), u32>;
/// Requests sent, by (client, seq), with their mode.
type Sent = BTreeMap<(usize, u64), Mode>;
/// Every client each server published, one per boot, by server name.
type Published = BTreeMap<String, Vec<ProbeClient>>;

struct Node {
    providers: SimProviders,
    state: StateHandle,
    boot: u64,
}

impl Node {
    async fn handle(&self, ticket: Ticket, method: u8) -> Stamp {
        assert_always!(
            ticket.method == method,
            "a request reaches the method it was sent to",
            (ticket, method)
        );
        self.state.update("delivered", |d: &mut Delivered| {
            *d.entry((ticket.client, ticket.seq)).or_insert(0) += 1;
        });
        if ticket.delay_ms > 0 {
            self.providers
                .time()
                .sleep(Duration::from_millis(ticket.delay_ms))
                .await;
        }
        Stamp {
            client: ticket.client,
            seq: ticket.seq,
            method,
            boot: self.boot,
        }
    }
}

impl Probe for Node {
    async fn echo(&self, ticket: Ticket) -> Stamp {
        self.handle(ticket, 0).await
    }

    async fn flaky(&self, ticket: Ticket) -> Stamp {
        let stamp = self.handle(ticket, 1).await;
        if ticket.misbehave {
            return no_reply().await;
        }
        stamp
    }

    async fn checked(&self, ticket: Ticket) -> Result<Stamp, Refused> {
        let stamp = self.handle(ticket, 2).await;
        if ticket.misbehave {
            return Err(Refused::Misbehaving { seq: ticket.seq });
        }
        Ok(stamp)
    }
}

async fn server(ctx: ProcessContext) {
    let address: NetworkAddress = format!("{}:{PORT}", ctx.ip).parse().unwrap();
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address)
        .build_listening()
        .await
    else {
        return;
    };
    let node = Node {
        providers: ctx.providers.clone(),
        state: ctx.state.clone(),
        boot: ctx.boot,
    };
    let Ok(probe) = ProbeServer::serve(&transport, node) else {
        return;
    };
    ctx.state.update("published", |p: &mut Published| {
        p.entry(ctx.name.clone()).or_default().push(probe.client());
    });
    let checker = transport.clone();
    let time = ctx.providers.time().clone();
    drop(ctx.providers.task().spawn("bounds", async move {
        loop {
            time.sleep(Duration::from_millis(100)).await;
            let within = checker.check_invariants();
            assert_always!(
                within.is_ok(),
                "server transport stays within its bounds",
                within
            );
        }
    }));
    ctx.shutdown.requested().await;
    probe.stop();
}

/// The server to call this time: its latest client, or sometimes its first (stale once it
/// rebooted, so its endpoints are gone).
fn pick(ctx: &WorkloadContext) -> Option<(ProbeClient, bool)> {
    let published = ctx.state.get::<Published>("published").unwrap_or_default();
    let servers: Vec<&Vec<ProbeClient>> = published.values().collect();
    if servers.is_empty() {
        return None;
    }
    let random = ctx.providers.random();
    let boots = servers[random.random_range(0..servers.len())];
    let stale = boots.len() > 1 && random.random_range(0..100) < 15;
    let client = if stale { boots[0] } else { *boots.last()? };
    Some((client, stale))
}

pub async fn client(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    let random = ctx.providers.random().clone();
    let mut used = BTreeSet::new();
    let mut seq = 0u64;
    while ctx.chaos_active() || used.len() < MODES.len() {
        let Some((probe, stale)) = pick(&ctx) else {
            ctx.providers.time().sleep(Duration::from_millis(50)).await;
            continue;
        };
        seq += 1;
        let mode = MODES[usize::try_from(seq).unwrap() % MODES.len()];
        used.insert(mode);
        let ticket = Ticket {
            client: ctx.index,
            seq,
            method: u8::try_from(random.random_range(0..3)).unwrap(),
            mode,
            delay_ms: if random.random_range(0..10) == 0 {
                random.random_range(300..2500)
            } else {
                0
            },
            misbehave: random.random_range(0..5) == 0,
        };
        ctx.state.update("sent", |s: &mut Sent| {
            s.insert((ctx.index, seq), mode);
        });
        let wait = Duration::from_millis(random.random_range(200..3000));
        let unless = Duration::from_millis(random.random_range(300..1500));
        let outcome = call(&transport, probe, ticket, wait, unless).await;
        if let Some(outcome) = outcome {
            observe(&ticket, stale, outcome);
        }
        ctx.providers
            .time()
            .sleep(Duration::from_millis(random.random_range(5..50)))
            .await;
    }
    assert_always!(
        used.len() == MODES.len(),
        "every client uses every delivery mode",
        used
    );
    // Settle: faults are off; leave time for late replies and resends.
    ctx.providers.time().sleep(Duration::from_secs(5)).await;
    let metrics = transport.metrics();
    assert_always!(
        metrics.pending_replies == 0,
        "pending replies drain to zero",
        metrics.pending_replies
    );
    Ok(())
}

/// How a call ended, the service's own error apart.
enum Outcome {
    Reply(Stamp),
    Service(Refused),
    Transport(ReplyError),
}

impl From<Result<Stamp, ReplyError>> for Outcome {
    fn from(result: Result<Stamp, ReplyError>) -> Self {
        match result {
            Ok(stamp) => Outcome::Reply(stamp),
            Err(error) => Outcome::Transport(error),
        }
    }
}

impl From<Result<Stamp, CallError<Refused>>> for Outcome {
    fn from(result: Result<Stamp, CallError<Refused>>) -> Self {
        match result {
            Ok(stamp) => Outcome::Reply(stamp),
            Err(CallError::Service(refused)) => Outcome::Service(refused),
            Err(CallError::Transport(error)) => Outcome::Transport(error),
        }
    }
}

/// Sends `ticket` in its mode; `None` for `send` (no reply to wait for).
async fn call(
    transport: &moonpool_transport::NetTransport,
    probe: ProbeClient,
    ticket: Ticket,
    wait: Duration,
    unless: Duration,
) -> Option<Outcome> {
    macro_rules! deliver {
        ($call:expr) => {{
            let call = $call;
            match ticket.mode {
                Mode::Send => {
                    let _ = call.send();
                    None
                }
                Mode::TryGetReply => Some(call.try_get_reply().timeout(wait).await.into()),
                Mode::GetReply => Some(call.get_reply().timeout(wait).await.into()),
                Mode::GetReplyUnlessFailedFor => Some(
                    call.get_reply_unless_failed_for(unless)
                        .timeout(wait)
                        .await
                        .into(),
                ),
            }
        }};
    }
    match ticket.method {
        0 => deliver!(probe.echo(transport, ticket)),
        1 => deliver!(probe.flaky(transport, ticket)),
        _ => deliver!(probe.checked(transport, ticket)),
    }
}

fn observe(ticket: &Ticket, stale: bool, outcome: Outcome) {
    let mode = ticket.mode;
    match outcome {
        Outcome::Reply(stamp) => {
            assert_always!(
                stamp.client == ticket.client && stamp.seq == ticket.seq,
                "a reply answers the call that awaits it, never an earlier one",
                (ticket, &stamp)
            );
            assert_always!(
                stamp.method == ticket.method,
                "a reply comes from the method called",
                (ticket, &stamp)
            );
            assert_always!(
                !(ticket.misbehave && ticket.method == 1),
                "a handler that ends without replying sends no reply",
                ticket
            );
            assert_sometimes!(stamp.boot > 1, "a rebooted server answers");
        }
        Outcome::Service(refused) => {
            assert_always!(
                ticket.method == 2
                    && ticket.misbehave
                    && refused == Refused::Misbehaving { seq: ticket.seq },
                "the service's own error comes from the call that earned it",
                (ticket, &refused)
            );
            assert_sometimes!(true, "the service's own error reaches the caller apart");
        }
        Outcome::Transport(error) => {
            let connection = matches!(
                error,
                ReplyError::ConnectionFailed { .. } | ReplyError::MaybeDelivered { .. }
            );
            assert_always!(
                !(connection && mode == Mode::GetReply),
                "get_reply never ends with a connection error",
                (ticket, error.to_string())
            );
            match error {
                ReplyError::Timeout { .. } => {
                    assert_sometimes!(true, "a caller gives up: Timeout");
                }
                ReplyError::MaybeDelivered { .. } => {
                    assert_sometimes!(true, "a connection fails after sending: MaybeDelivered");
                }
                ReplyError::BrokenPromise { .. } => {
                    assert_sometimes!(
                        ticket.method == 1 && ticket.misbehave,
                        "a handler ends without replying: BrokenPromise"
                    );
                }
                ReplyError::ConnectionFailed { .. } => {
                    assert_sometimes!(true, "a connection fails before sending: ConnectionFailed");
                }
                ReplyError::EndpointNotFound { .. } => {
                    assert_sometimes!(
                        stale,
                        "a call to a rebooted server's old endpoint: EndpointNotFound"
                    );
                }
                _ => {}
            }
        }
    }
}

/// After the settle phase: nothing phantom, nothing at-most-once delivered twice.
pub async fn check(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    if ctx.index != 0 {
        return Ok(());
    }
    let sent = ctx.state.get::<Sent>("sent").unwrap_or_default();
    let delivered = ctx.state.get::<Delivered>("delivered").unwrap_or_default();
    let phantom: BTreeSet<_> = delivered.keys().filter(|k| !sent.contains_key(k)).collect();
    assert_always!(
        phantom.is_empty(),
        "nothing reaches a handler that was not sent",
        phantom
    );
    for (key, count) in &delivered {
        let mode = sent.get(key).copied();
        let at_most_once = matches!(mode, Some(Mode::Send | Mode::TryGetReply));
        assert_always!(
            !(at_most_once && *count > 1),
            "send and try_get_reply reach a handler at most once",
            (key, mode, count)
        );
    }
    Ok(())
}

const SOMETIMES: [&str; 8] = [
    "a rebooted server answers",
    "the service's own error reaches the caller apart",
    "a caller gives up: Timeout",
    "a connection fails after sending: MaybeDelivered",
    "a handler ends without replying: BrokenPromise",
    "a connection fails before sending: ConnectionFailed",
    "a call to a rebooted server's old endpoint: EndpointNotFound",
    "every client uses every delivery mode",
];

fn simulation(seeds: usize) -> SimulationBuilder {
    SimulationBuilder::new("service-under-chaos")
        .progress(false)
        .enable_chaos([
            Chaos::Network,
            Chaos::Clock,
            Chaos::Buggify,
            Chaos::Partitions,
            Chaos::Attrition(
                Attrition::default()
                    .with_max_dead(1)
                    .with_interval((Duration::from_millis(500), Duration::from_secs(3)))
                    .with_recovery_delay((Duration::from_millis(200), Duration::from_secs(2)))
                    .with_kinds(vec![RebootKind::Crash, RebootKind::Graceful]),
            ),
        ])
        .chaos_duration(Duration::from_secs(10))
        .settle_timeout(Duration::from_secs(120))
        .process("server", 3, server)
        .workload_with_check("client", 5, client, check)
        .expect_assertions(SOMETIMES)
        .iterations(IterationControl::FixedCount(seeds))
}

fn seeds(default: usize) -> usize {
    std::env::var("MOONPOOL_TRANSPORT_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Runs `builder`, prints its report and wall time, and asserts every seed passed.
fn run(builder: SimulationBuilder) -> moonpool_sim::SimulationReport {
    let started = std::time::Instant::now();
    let report = builder.run().unwrap();
    println!("{report}");
    println!(
        "{} seeds in {:.1} s of wall time",
        report.seeds_run(),
        started.elapsed().as_secs_f64()
    );
    report.assert_success();
    report
}

#[test]
fn slow_simulation_service_under_chaos() {
    run(simulation(seeds(1_000)).ci_max_seeds(500));
}

/// The same service with the simulator's TCP-layer faults on (loss as retransmission, loss
/// bursts, read-side clogs, random closes on reads, asymmetric delay, bandwidth-delay send
/// buffers): swarm perturbs them per seed like every other fault of the configuration. 1,000
/// seeds in the `sim` profile, 40 in CI.
#[test]
fn slow_simulation_service_under_chaos_with_tcp_faults() {
    let report = run(simulation(seeds(1_000))
        .world_config({
            let mut cfg = WorldConfig::default();
            cfg.network = NetworkConfiguration::default().with_tcp_faults();
            cfg
        })
        .ci_max_seeds(40));
    for fault in ["network.loss", "network.retransmit"] {
        assert!(
            report.faults.get(fault).copied().unwrap_or(0) > 0,
            "{fault} never fired: {report}"
        );
    }
}
