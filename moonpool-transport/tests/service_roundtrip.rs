//! `#[service]` round trips, each case run four ways: on Tokio over real loopback TCP and in a
//! simulated world (`SimWorld`), with `JsonCodec` and with `BinaryCodec`. In both backends the
//! server, a second server (the worker) and the client each have their own transport, and every
//! call crosses the network (the client's transport has no address, so nothing is delivered
//! locally).
//!
//! Cases: every delivery mode and the timeout; the service's own errors kept apart from
//! transport errors; a handler that ends without replying (`no_reply`) or panics gives
//! `BrokenPromise` and the method keeps serving; a handler that never replies gives `Timeout`,
//! and stopping the server answers what it held with `BrokenPromise`; a stopped server gives
//! `EndpointNotFound` and can be served again at the same base; a client of another service
//! pointed at this server finds nothing; a client sent inside a message is used by its receiver;
//! the in-flight bound of a method is honoured.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{
    BinaryCodec, Endpoint, JsonCodec, MessageCodec, NetworkAddress, Providers, TaskProvider,
    TimeProvider, TokioProviders, UID,
};
use moonpool_sim::{SimProviders, SimWorld, WorldConfig};
use moonpool_transport::{
    CallError, NetTransport, NetTransportBuilder, ReplyError, TransportError, no_reply, service,
};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum CalcError {
    DivisionByZero,
}

/// The service under test: one method per behaviour.
#[service]
pub trait Calc {
    async fn add(&self, a: i64, b: i64) -> i64;
    async fn div(&self, a: i64, b: i64) -> Result<i64, CalcError>;
    /// Remembers `x` (for `send`, which gets no reply).
    async fn record(&self, x: u64) -> ();
    async fn recorded(&self) -> Vec<u64>;
    /// Ends without replying.
    async fn refuse(&self, x: u64) -> u64;
    async fn refuse_fallible(&self, x: u64) -> Result<u64, CalcError>;
    /// Panics on odd numbers.
    async fn explode(&self, x: u64) -> u64;
    /// Never replies.
    async fn hang(&self) -> u64;
    /// Sleeps; up to 3 at once.
    #[serve(in_flight_max = 3)]
    async fn nap(&self, millis: u64) -> ();
    /// Sleeps; one at a time.
    async fn nap_serially(&self, millis: u64) -> ();
    /// The most naps seen at once, for `nap` and `nap_serially`.
    async fn peaks(&self) -> (usize, usize);
}

/// A service with the same first method shape, to be pointed at a `Calc` server by mistake.
#[service]
pub trait Other {
    async fn add(&self, a: i64, b: i64) -> i64;
}

/// A worker that registers with a registry by sending its own client.
#[service]
pub trait Worker {
    async fn square(&self, x: u64) -> u64;
}

#[service]
pub trait Registry {
    /// Calls `worker.square(x)` through the registry's own transport and returns the answer.
    async fn register(&self, worker: WorkerClient, x: u64) -> Result<u64, String>;
}

#[derive(Default)]
struct Naps {
    now: AtomicUsize,
    peak: AtomicUsize,
}

impl Naps {
    fn begin(&self) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.peak.fetch_max(now, Ordering::SeqCst);
    }
    fn end(&self) {
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Calculator<P: Providers> {
    providers: P,
    recorded: Mutex<Vec<u64>>,
    naps: Naps,
    serial_naps: Naps,
}

impl<P: Providers> Calculator<P> {
    fn new(providers: P) -> Self {
        Self {
            providers,
            recorded: Mutex::default(),
            naps: Naps::default(),
            serial_naps: Naps::default(),
        }
    }
}

impl<P: Providers> Calc for Calculator<P> {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a + b
    }
    async fn div(&self, a: i64, b: i64) -> Result<i64, CalcError> {
        a.checked_div(b).ok_or(CalcError::DivisionByZero)
    }
    async fn record(&self, x: u64) {
        self.recorded.lock().unwrap().push(x);
    }
    async fn recorded(&self) -> Vec<u64> {
        self.recorded.lock().unwrap().clone()
    }
    async fn refuse(&self, _x: u64) -> u64 {
        no_reply().await
    }
    async fn refuse_fallible(&self, x: u64) -> Result<u64, CalcError> {
        if x > 0 {
            return no_reply().await;
        }
        Ok(x)
    }
    async fn explode(&self, x: u64) -> u64 {
        assert!(
            x.is_multiple_of(2),
            "explode({x}): odd numbers make this handler panic"
        );
        x
    }
    async fn hang(&self) -> u64 {
        std::future::pending().await
    }
    async fn nap(&self, millis: u64) {
        self.naps.begin();
        self.providers
            .time()
            .sleep(Duration::from_millis(millis))
            .await;
        self.naps.end();
    }
    async fn nap_serially(&self, millis: u64) {
        self.serial_naps.begin();
        self.providers
            .time()
            .sleep(Duration::from_millis(millis))
            .await;
        self.serial_naps.end();
    }
    async fn peaks(&self) -> (usize, usize) {
        (
            self.naps.peak.load(Ordering::SeqCst),
            self.serial_naps.peak.load(Ordering::SeqCst),
        )
    }
}

impl Other for () {
    async fn add(&self, a: i64, b: i64) -> i64 {
        a - b
    }
}

struct Squarer;

impl Worker for Squarer {
    async fn square(&self, x: u64) -> u64 {
        x * x
    }
}

struct Directory<C: MessageCodec> {
    transport: NetTransport<C>,
}

impl<C: MessageCodec> Registry for Directory<C> {
    async fn register(&self, worker: WorkerClient, x: u64) -> Result<u64, String> {
        worker
            .square(&self.transport, x)
            .get_reply()
            .await
            .map_err(|error| error.to_string())
    }
}

/// Where the two servers listen.
#[derive(Clone, Copy)]
struct Addresses {
    server: NetworkAddress,
    worker: NetworkAddress,
}

/// The server, the worker and the client transports, and the Calc server.
struct Setup<C: MessageCodec> {
    server: NetTransport<C>,
    worker: NetTransport<C>,
    client: NetTransport<C>,
    calc: CalcServer,
}

const BASE: UID = UID::new(0x5E5E, 0x0001);

async fn setup<P: Providers, C: MessageCodec>(providers: P, codec: C, at: Addresses) -> Setup<C> {
    let server = NetTransportBuilder::new(providers.clone())
        .codec(codec.clone())
        .local_address(at.server)
        .build_listening()
        .await
        .unwrap();
    let worker = NetTransportBuilder::new(providers.clone())
        .codec(codec.clone())
        .local_address(at.worker)
        .build_listening()
        .await
        .unwrap();
    let client = NetTransportBuilder::new(providers.clone())
        .codec(codec)
        .build()
        .unwrap();
    let calc = CalcServer::serve(&server, Calculator::new(providers)).unwrap();
    Setup {
        server,
        worker,
        client,
        calc,
    }
}

async fn every_delivery_mode<P: Providers, C: MessageCodec>(p: P, codec: C, at: Addresses) {
    let s = setup(p.clone(), codec, at).await;
    let calc = s.calc.client();
    let t = &s.client;
    assert_eq!(calc.add(t, 40, 2).try_get_reply().await, Ok(42));
    assert_eq!(calc.add(t, 40, 3).get_reply().await, Ok(43));
    let unless = calc
        .add(t, 40, 4)
        .get_reply_unless_failed_for(Duration::from_secs(5))
        .await;
    assert_eq!(unless, Ok(44));
    let timed = calc
        .add(t, 40, 5)
        .get_reply()
        .timeout(Duration::from_secs(30))
        .await;
    assert_eq!(timed, Ok(45));
    // Fire and forget: no reply; the handler runs (seen through another method).
    calc.record(t, 7).send().unwrap();
    calc.record(t, 8).send().unwrap();
    let mut recorded = Vec::new();
    for _ in 0..100 {
        recorded = calc.recorded(t).get_reply().await.unwrap();
        if recorded.len() == 2 {
            break;
        }
        p.time().sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(recorded, vec![7, 8]);
    // The client is data: a copy rebuilt from its endpoint, or decoded, calls the same service.
    let rebuilt = CalcClient::new(calc.endpoint());
    assert_eq!(rebuilt, calc);
    assert_eq!(rebuilt.add(t, 1, 1).get_reply().await, Ok(2));
    assert_eq!(t.metrics().pending_replies, 0);
}

async fn service_errors<P: Providers, C: MessageCodec>(p: P, codec: C, at: Addresses) {
    let s = setup(p, codec, at).await;
    let calc = s.calc.client();
    let t = &s.client;
    assert_eq!(calc.div(t, 84, 2).get_reply().await, Ok(42));
    let zero = calc.div(t, 1, 0).get_reply().await;
    assert_eq!(zero, Err(CallError::Service(CalcError::DivisionByZero)));
    assert_eq!(
        zero.unwrap_err().service(),
        Some(&CalcError::DivisionByZero)
    );
    let zero = calc.div(t, 1, 0).try_get_reply().await;
    assert_eq!(zero, Err(CallError::Service(CalcError::DivisionByZero)));
    let zero = calc
        .div(t, 1, 0)
        .get_reply_unless_failed_for(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .await;
    assert_eq!(zero, Err(CallError::Service(CalcError::DivisionByZero)));
    // A transport failure is the other variant.
    s.calc.stop();
    let gone = calc.div(t, 1, 1).get_reply().await;
    assert!(
        matches!(
            gone,
            Err(CallError::Transport(ReplyError::EndpointNotFound { .. }))
        ),
        "{gone:?}"
    );
}

async fn broken_promise<P: Providers, C: MessageCodec>(p: P, codec: C, at: Addresses) {
    let s = setup(p, codec, at).await;
    let calc = s.calc.client();
    let t = &s.client;
    for _ in 0..3 {
        let refused = calc.refuse(t, 1).get_reply().await;
        assert!(
            matches!(refused, Err(ReplyError::BrokenPromise { .. })),
            "{refused:?}"
        );
        let refused = calc.refuse(t, 1).try_get_reply().await;
        assert!(
            matches!(refused, Err(ReplyError::BrokenPromise { .. })),
            "{refused:?}"
        );
    }
    let refused = calc.refuse_fallible(t, 1).get_reply().await;
    assert!(
        matches!(
            refused,
            Err(CallError::Transport(ReplyError::BrokenPromise { .. }))
        ),
        "{refused:?}"
    );
    assert_eq!(calc.refuse_fallible(t, 0).get_reply().await, Ok(0));
}

async fn handler_panics<P: Providers, C: MessageCodec>(p: P, codec: C, at: Addresses) {
    let s = setup(p, codec, at).await;
    let calc = s.calc.client();
    let t = &s.client;
    let exploded = calc.explode(t, 1).get_reply().await;
    assert!(
        matches!(exploded, Err(ReplyError::BrokenPromise { .. })),
        "{exploded:?}"
    );
    // The method keeps serving, and so do the others.
    assert_eq!(calc.explode(t, 2).get_reply().await, Ok(2));
    assert_eq!(calc.add(t, 2, 2).get_reply().await, Ok(4));
    assert!(s.calc.is_serving());
}

async fn handler_never_replies<P: Providers, C: MessageCodec>(p: P, codec: C, at: Addresses) {
    let s = setup(p.clone(), codec, at).await;
    let calc = s.calc.client();
    let t = &s.client;
    let timed = calc
        .hang(t)
        .get_reply()
        .timeout(Duration::from_millis(200))
        .await;
    assert!(
        matches!(timed, Err(ReplyError::Timeout { .. })),
        "{timed:?}"
    );
    // One request held by the handler (the method serves one at a time), one queued behind it:
    // stopping the server answers both.
    let held = calc.hang(t).get_reply();
    let queued = calc.hang(t).get_reply();
    let (tx, rx) = tokio::sync::oneshot::channel();
    let time = p.time().clone();
    let stopper = p.task().spawn("stopper", async move {
        time.sleep(Duration::from_millis(200)).await;
        s.calc.stop();
        let _ = tx.send(());
        (s.server, s.worker)
    });
    let (held, queued) = futures::future::join(held, queued).await;
    rx.await.unwrap();
    drop(stopper.await.unwrap());
    assert!(
        matches!(held, Err(ReplyError::BrokenPromise { .. })),
        "{held:?}"
    );
    assert!(
        matches!(queued, Err(ReplyError::BrokenPromise { .. })),
        "{queued:?}"
    );
}

async fn endpoint_not_found<P: Providers, C: MessageCodec>(p: P, codec: C, at: Addresses) {
    let s = setup(p.clone(), codec, at).await;
    let t = &s.client;
    // A fixed base, so the same tokens can be served again after a stop.
    let fixed = CalcServer::serve_at(&s.server, BASE, Calculator::new(p.clone())).unwrap();
    let again = CalcServer::serve_at(&s.server, BASE, Calculator::new(p.clone()));
    assert!(
        matches!(again, Err(TransportError::TokenInUse { .. })),
        "{again:?}"
    );
    let calc = fixed.client();
    assert_eq!(calc.add(t, 1, 2).get_reply().await, Ok(3));
    drop(fixed);
    let gone = calc.add(t, 1, 2).get_reply().await;
    assert!(
        matches!(gone, Err(ReplyError::EndpointNotFound { .. })),
        "{gone:?}"
    );
    let gone = calc.add(t, 1, 2).try_get_reply().await;
    assert!(
        matches!(gone, Err(ReplyError::EndpointNotFound { .. })),
        "{gone:?}"
    );
    let dynamic = s.calc.client();
    drop(s.calc);
    let gone = dynamic.add(t, 1, 2).get_reply().await;
    assert!(
        matches!(gone, Err(ReplyError::EndpointNotFound { .. })),
        "{gone:?}"
    );
    // Served again at the same base by the same transport: the tokens are free again. A client
    // transport that saw them missing keeps failing fast (its failure monitor remembers the
    // endpoint as missing for as long as that server instance lives); a fresh one finds them.
    let back = CalcServer::serve_at(&s.server, BASE, Calculator::new(p.clone())).unwrap();
    assert!(back.is_serving());
    assert_eq!(back.client(), calc);
    let remembered = calc.add(t, 1, 2).get_reply().await;
    assert!(
        matches!(remembered, Err(ReplyError::EndpointNotFound { .. })),
        "{remembered:?}"
    );
    let fresh = NetTransportBuilder::new(p)
        .codec(s.client.codec().clone())
        .build()
        .unwrap();
    assert_eq!(calc.add(&fresh, 1, 2).get_reply().await, Ok(3));
}

async fn wrong_interface<P: Providers, C: MessageCodec>(p: P, codec: C, at: Addresses) {
    let s = setup(p, codec, at).await;
    let t = &s.client;
    // A client of `Other` built from a `Calc` server's base endpoint: same base, same method
    // index, same argument types, but another interface id, so no token matches.
    let confused = OtherClient::new(s.calc.endpoint());
    assert_ne!(OtherClient::INTERFACE_ID, CalcClient::INTERFACE_ID);
    let outcome = confused.add(t, 5, 3).get_reply().await;
    assert!(
        matches!(outcome, Err(ReplyError::EndpointNotFound { .. })),
        "{outcome:?}"
    );
    // And the other way round, with both served on the same transport at the same base.
    let other = OtherServer::serve_at(&s.server, BASE, ()).unwrap();
    let calc_at_base = CalcClient::new(other.endpoint());
    let outcome = calc_at_base.add(t, 5, 3).get_reply().await;
    assert!(
        matches!(outcome, Err(ReplyError::EndpointNotFound { .. })),
        "{outcome:?}"
    );
    assert_eq!(other.client().add(t, 5, 3).get_reply().await, Ok(2));
}

async fn client_in_message<P: Providers, C: MessageCodec>(p: P, codec: C, at: Addresses) {
    let s = setup(p, codec, at).await;
    let worker = WorkerServer::serve(&s.worker, Squarer).unwrap();
    let registry = RegistryServer::serve(
        &s.server,
        Directory {
            transport: s.server.clone(),
        },
    )
    .unwrap();
    // The client sends the worker's client to the registry, which calls it from its transport.
    let answer = registry
        .client()
        .register(&s.client, worker.client(), 12)
        .get_reply()
        .await;
    assert_eq!(answer, Ok(144));
    // The client is its endpoint on the wire.
    let text = serde_json::to_string(&worker.client()).unwrap();
    let endpoint = serde_json::to_string(&worker.endpoint()).unwrap();
    assert_eq!(text, endpoint);
    let decoded: WorkerClient = serde_json::from_str(&text).unwrap();
    assert_eq!(decoded, worker.client());
    // A worker that stopped: the registry's own call fails, and says so in the service's error.
    let gone = worker.client();
    worker.stop();
    let answer = registry
        .client()
        .register(&s.client, gone, 3)
        .get_reply()
        .await;
    assert!(
        matches!(&answer, Err(CallError::Service(message)) if message.contains("not found")),
        "{answer:?}"
    );
}

async fn in_flight_bound<P: Providers, C: MessageCodec>(p: P, codec: C, at: Addresses) {
    let s = setup(p, codec, at).await;
    let calc = s.calc.client();
    let t = &s.client;
    let naps: Vec<_> = (0..7).map(|_| calc.nap(t, 50).get_reply()).collect();
    let serial: Vec<_> = (0..3)
        .map(|_| calc.nap_serially(t, 20).get_reply())
        .collect();
    let (naps, serial) = futures::future::join(
        futures::future::join_all(naps),
        futures::future::join_all(serial),
    )
    .await;
    assert!(naps.iter().chain(&serial).all(Result::is_ok));
    assert_eq!(calc.peaks(t).get_reply().await, Ok((3, 1)));
}

fn on_tokio<F, Fut>(case: F)
where
    F: FnOnce(TokioProviders, Addresses) -> Fut,
    Fut: Future<Output = ()>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let loopback: NetworkAddress = "127.0.0.1:0".parse().unwrap();
    runtime.block_on(case(
        TokioProviders::new(),
        Addresses {
            server: loopback,
            worker: loopback,
        },
    ));
}

fn in_sim<F, Fut>(case: F)
where
    F: Fn(SimProviders, Addresses) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut world = SimWorld::with_config(11, {
        let mut cfg = WorldConfig::quiet();
        cfg.time_budget = Duration::from_secs(600);
        cfg
    })
    .unwrap();
    let done = Arc::new(Mutex::new(false));
    let finished = Arc::clone(&done);
    world
        .add_workload("node", "10.0.0.2", move |providers| {
            let case = case(
                providers,
                Addresses {
                    server: "10.0.0.2:4500".parse().unwrap(),
                    worker: "10.0.0.2:4501".parse().unwrap(),
                },
            );
            let finished = Arc::clone(&finished);
            async move {
                case.await;
                *finished.lock().unwrap() = true;
            }
        })
        .unwrap();
    world.run().unwrap();
    assert!(*done.lock().unwrap(), "the case did not finish");
}

macro_rules! on_both_backends_and_codecs {
    ($($case:ident),* $(,)?) => {
        $(
            mod $case {
                use super::*;

                #[test]
                fn test_tokio_json() {
                    on_tokio(|p, at| super::$case(p, JsonCodec, at));
                }

                #[test]
                fn test_tokio_binary() {
                    on_tokio(|p, at| super::$case(p, BinaryCodec, at));
                }

                #[test]
                fn test_sim_json() {
                    in_sim(|p, at| super::$case(p, JsonCodec, at));
                }

                #[test]
                fn test_sim_binary() {
                    in_sim(|p, at| super::$case(p, BinaryCodec, at));
                }
            }
        )*
    };
}

on_both_backends_and_codecs!(
    every_delivery_mode,
    service_errors,
    broken_promise,
    handler_panics,
    handler_never_replies,
    endpoint_not_found,
    wrong_interface,
    client_in_message,
    in_flight_bound,
);

#[test]
fn test_endpoint_is_an_endpoint() {
    let endpoint = Endpoint::new("10.0.0.1:1".parse().unwrap(), BASE);
    assert_eq!(CalcClient::new(endpoint).endpoint(), endpoint);
    assert_eq!(
        format!("{:?}", CalcClient::new(endpoint)),
        format!("CalcClient({endpoint})")
    );
}
