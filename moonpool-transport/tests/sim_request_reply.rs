//! Simulation (a): one server, one client, network chaos. Every request ends with a reply or a
//! typed error, none hangs; a burst of 100 concurrent requests hits the configured bounds as
//! typed errors; the pending-reply map returns to zero and every map and queue stays within its
//! bound throughout. Each seed runs twice and must give the same summary. Run with the JSON codec
//! and again with the binary one.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{
    BinaryCodec, Endpoint, JsonCodec, MessageCodec, NetworkAddress, Providers, RandomProvider,
    TaskProvider, TimeProvider, UID,
};
use moonpool_sim::{Locality, SimProviders, SimWorld, WorldConfig};
use moonpool_transport::{NetTransportBuilder, ReplyError, RequestClient, TransportConfig};
use serde::{Deserialize, Serialize};

const SERVER: &str = "10.0.0.1:4500";
const ECHO: UID = UID::well_known(10);
const CHAOS: Duration = Duration::from_secs(8);

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Action {
    Reply,
    Drop,
    Delay(u64),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
struct Request {
    id: u64,
    action: Action,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Response {
    id: u64,
    check: u64,
}

fn check_of(id: u64) -> u64 {
    id.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ 0xABCD
}

#[derive(Debug, Default, Clone, PartialEq)]
struct Observed {
    outcomes: BTreeMap<String, u64>,
    violations: Vec<String>,
    served: u64,
}

async fn server<C: MessageCodec>(
    providers: SimProviders,
    observed: Arc<Mutex<Observed>>,
    codec: C,
) {
    let address: NetworkAddress = SERVER.parse().unwrap();
    let Ok(transport) = NetTransportBuilder::new(providers.clone())
        .codec(codec)
        .local_address(address)
        .build_listening()
        .await
    else {
        return;
    };
    let stream = transport
        .register_stream_at::<Request, Response>(ECHO)
        .unwrap();
    let checker = transport.clone();
    let time = providers.time().clone();
    let watch = Arc::clone(&observed);
    drop(providers.task().spawn("server-invariants", async move {
        loop {
            time.sleep(Duration::from_millis(20)).await;
            if let Err(violation) = checker.check_invariants() {
                watch
                    .lock()
                    .unwrap()
                    .violations
                    .push(format!("server: {violation}"));
            }
        }
    }));
    while let Some((request, reply)) = stream.recv().await {
        observed.lock().unwrap().served += 1;
        let response = Response {
            id: request.id,
            check: check_of(request.id),
        };
        match request.action {
            Action::Reply => {
                reply.send(response);
            }
            Action::Drop => drop(reply),
            Action::Delay(ms) => {
                let time = providers.time().clone();
                drop(providers.task().spawn("delayed-reply", async move {
                    time.sleep(Duration::from_millis(ms)).await;
                    reply.send(response);
                }));
            }
        }
    }
}

fn client_config() -> TransportConfig {
    let mut cfg = TransportConfig::default();
    cfg.pending_replies_max = 64;
    cfg.peer_reliable_queue_max = 48;
    cfg
}

fn record(observed: &Mutex<Observed>, id: u64, mode: &str, result: &Result<Response, ReplyError>) {
    let mut observed = observed.lock().unwrap();
    let name = support::outcome_name(result);
    *observed.outcomes.entry(name.to_string()).or_insert(0) += 1;
    *observed
        .outcomes
        .entry(format!("{mode}/{name}"))
        .or_insert(0) += 1;
    match result {
        Ok(response) if response.id != id || response.check != check_of(id) => {
            observed
                .violations
                .push(format!("request {id} got a reply for {}", response.id));
        }
        Err(ReplyError::ConnectionFailed { .. } | ReplyError::MaybeDelivered { .. })
            if mode == "get_reply" =>
        {
            observed.violations.push(format!(
                "get_reply {id} failed on a connection error: {result:?}"
            ));
        }
        Err(
            ReplyError::Serialization { .. }
            | ReplyError::EndpointNotFound { .. }
            | ReplyError::TransportClosed,
        ) => {
            observed
                .violations
                .push(format!("request {id}: unexpected {result:?}"));
        }
        _ => {}
    }
}

fn random_action(providers: &SimProviders) -> Action {
    match providers.random().random_range(0..10u32) {
        0 => Action::Drop,
        1 | 2 => Action::Delay(providers.random().random_range(1..400u64)),
        _ => Action::Reply,
    }
}

async fn one_request<C: MessageCodec>(
    echo: &RequestClient<Request, Response, C>,
    providers: &SimProviders,
    observed: &Mutex<Observed>,
    id: u64,
    mode: u32,
) {
    let request = Request {
        id,
        action: random_action(providers),
    };
    let (name, result) = match mode {
        0 => ("get_reply", echo.get_reply(&request).await),
        1 => ("try_get_reply", echo.try_get_reply(&request).await),
        2 => (
            "unless_failed_for",
            echo.get_reply_unless_failed_for(&request, Duration::from_millis(500))
                .await,
        ),
        _ => (
            "timeout",
            echo.get_reply(&request)
                .timeout(Duration::from_millis(300))
                .await,
        ),
    };
    record(observed, id, name, &result);
}

async fn client<C: MessageCodec>(
    providers: SimProviders,
    observed: Arc<Mutex<Observed>>,
    codec: C,
) {
    let transport = NetTransportBuilder::new(providers.clone())
        .codec(codec)
        .config(client_config())
        .build()
        .unwrap();
    let echo = transport.client::<Request, Response>(Endpoint::new(SERVER.parse().unwrap(), ECHO));
    let done = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let sampler = {
        let transport = transport.clone();
        let time = providers.time().clone();
        let observed = Arc::clone(&observed);
        let done = Arc::clone(&done);
        providers.task().spawn("client-invariants", async move {
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                if let Err(violation) = transport.check_invariants() {
                    observed
                        .lock()
                        .unwrap()
                        .violations
                        .push(format!("client: {violation}"));
                }
                time.sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut id = 0u64;
    let mut bursts = 0;
    while providers.time().now() < CHAOS {
        id += 1;
        let choice = providers.random().random_range(0..20u32);
        if choice == 0 && bursts < 2 {
            bursts += 1;
            // 100 requests in flight at once: more than the bounds admit.
            let futures: Vec<_> = (0..100u64)
                .map(|i| {
                    let request = Request {
                        id: id * 1000 + i,
                        action: random_action(&providers),
                    };
                    let future = if i % 2 == 0 {
                        echo.get_reply(&request)
                    } else {
                        echo.try_get_reply(&request)
                    };
                    (
                        request.id,
                        if i % 2 == 0 {
                            "get_reply"
                        } else {
                            "try_get_reply"
                        },
                        future,
                    )
                })
                .collect();
            let pending = transport.metrics().pending_replies;
            if pending > client_config().pending_replies_max {
                observed
                    .lock()
                    .unwrap()
                    .violations
                    .push(format!("pending {pending} above bound"));
            }
            let mut send_failed = 0;
            for (request_id, mode, future) in futures {
                let result = future.await;
                if matches!(result, Err(ReplyError::BoundExceeded { .. })) {
                    send_failed += 1;
                }
                record(&observed, request_id, mode, &result);
            }
            if send_failed == 0 {
                observed
                    .lock()
                    .unwrap()
                    .violations
                    .push("burst hit no bound".into());
            }
        } else {
            one_request(&echo, &providers, &observed, id, choice % 4).await;
        }
    }
    // Quiet phase: faults stop; every reliable request must now be answered.
    providers.control().end_chaos();
    for _ in 0..10 {
        id += 1;
        let request = Request {
            id,
            action: Action::Reply,
        };
        let result = echo.get_reply(&request).await;
        if result.is_err() {
            observed
                .lock()
                .unwrap()
                .violations
                .push(format!("after chaos, get_reply {id} failed: {result:?}"));
        }
        record(&observed, id, "quiet", &result);
    }
    let metrics = transport.metrics();
    if metrics.pending_replies != 0 {
        observed.lock().unwrap().violations.push(format!(
            "{} replies still pending at the end",
            metrics.pending_replies
        ));
    }
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let _ = sampler.await;
}

/// The world of one seed in `config`, both ends speaking `codec`.
fn build_in<C: MessageCodec>(
    seed: u64,
    codec: C,
    config: WorldConfig,
) -> (SimWorld, Box<dyn Fn() -> Observed>) {
    let observed = Arc::new(Mutex::new(Observed::default()));
    let mut world = SimWorld::with_config(seed, config).unwrap();
    let server_observed = Arc::clone(&observed);
    let server_codec = codec.clone();
    world
        .add_process("server", "10.0.0.1", Locality::default(), move |ctx| {
            server(
                ctx.providers,
                Arc::clone(&server_observed),
                server_codec.clone(),
            )
        })
        .unwrap();
    let client_observed = Arc::clone(&observed);
    world
        .add_workload("client", "10.0.0.2", move |providers| {
            client(providers, client_observed, codec)
        })
        .unwrap();
    let view = Arc::clone(&observed);
    (world, Box::new(move || view.lock().unwrap().clone()))
}

#[test]
fn test_sim_request_reply_under_chaos() {
    request_reply_under_chaos(50, JsonCodec);
}

#[test]
fn test_sim_request_reply_under_chaos_with_binary_codec() {
    request_reply_under_chaos(30, BinaryCodec);
}

fn request_reply_under_chaos<C: MessageCodec>(seeds: u64, codec: C) {
    let (total, _) = contract(support::seeds(seeds), codec, |_| support::chaos_world());
    support::assert_seen(
        &total,
        &[
            "ok",
            "broken_promise",
            "maybe_delivered",
            "timeout",
            "bound_exceeded",
        ],
    );
}

/// Runs `seeds` (each twice, both ends speaking `codec`) in the world `config` gives for each
/// seed, checks that none broke the contract, and returns the merged outcomes and faults.
fn contract<C: MessageCodec>(
    seeds: std::ops::Range<u64>,
    codec: C,
    config: impl Fn(u64) -> WorldConfig,
) -> (BTreeMap<String, u64>, BTreeMap<&'static str, u64>) {
    let mut total = BTreeMap::new();
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    let count = seeds.end - seeds.start;
    for seed in seeds {
        let (summary, observed) =
            support::run_twice(seed, |seed| build_in(seed, codec.clone(), config(seed)));
        assert!(
            observed.violations.is_empty(),
            "seed {seed}: {:#?}",
            observed.violations
        );
        support::merge(&mut total, &observed.outcomes);
        for (fault, n) in summary.faults {
            *faults.entry(fault).or_insert(0) += n;
        }
    }
    println!("{count} seeds\noutcomes: {total:#?}\nfaults: {faults:#?}");
    (total, faults)
}

/// The same contract with the simulator's TCP-layer faults on (per seed), 1,000 seeds in the `sim`
/// profile: every request still ends with a reply or a typed error, and the bounds hold.
#[test]
fn slow_simulation_request_reply_with_tcp_faults() {
    let (total, faults) = contract(
        support::slow_seeds(1_000, 30),
        JsonCodec,
        support::chaos_world_with_tcp_faults,
    );
    support::assert_seen(&total, &["ok", "timeout"]);
    support::assert_seen(&faults, &["network.loss", "network.retransmit"]);
}
