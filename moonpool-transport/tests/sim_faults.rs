//! Simulation (c): the error paths. A server that drops promises, clients that call endpoints
//! that do not exist or no longer exist, at-most-once requests cut by connection failures, and
//! the server crashing (and restarting) in the middle of requests. Each outcome must be seen at
//! least once across the seeds; every request still ends, and after the chaos stops reliable
//! requests are answered again. Each seed runs twice and must give the same summary.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{
    Endpoint, JoinHandle, NetworkAddress, Providers, RandomProvider, TaskProvider, TimeProvider,
    UID,
};
use moonpool_sim::{Locality, RebootKind, SimProviders, SimWorld};
use moonpool_transport::{NetTransport, NetTransportBuilder, ReplyError};
use serde::{Deserialize, Serialize};

const SERVER_IP: &str = "10.0.0.1";
const ECHO: UID = UID::well_known(10);
const CHAOS: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Request {
    id: u64,
    drop_promise: bool,
    delay_ms: u64,
}

#[derive(Default)]
struct Shared {
    /// The dynamic endpoint of the current server instance.
    dynamic: Option<Endpoint>,
    counts: BTreeMap<String, u64>,
    violations: Vec<String>,
}

impl Shared {
    fn count(&mut self, key: impl Into<String>) {
        *self.counts.entry(key.into()).or_insert(0) += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Observed {
    counts: BTreeMap<String, u64>,
    violations: Vec<String>,
}

fn server_address() -> NetworkAddress {
    format!("{SERVER_IP}:4500").parse().unwrap()
}

async fn server(providers: SimProviders, shared: Arc<Mutex<Shared>>) {
    let Ok(transport) = NetTransportBuilder::new(providers.clone())
        .local_address(server_address())
        .build_listening()
        .await
    else {
        return;
    };
    let echo = transport.register_stream_at::<Request, u64>(ECHO).unwrap();
    let dynamic = transport.register_stream::<Request, u64>().unwrap();
    shared.lock().unwrap().dynamic = Some(dynamic.endpoint());
    let handle = |request: Request, reply: moonpool_transport::ReplyPromise<u64>| {
        if request.drop_promise {
            drop(reply);
        } else if request.delay_ms > 0 {
            let time = providers.time().clone();
            drop(providers.task().spawn("delayed", async move {
                time.sleep(Duration::from_millis(request.delay_ms)).await;
                reply.send(request.id);
            }));
        } else {
            reply.send(request.id);
        }
    };
    loop {
        moonpool_core::select! {
            Some((request, reply)) = echo.recv() => handle(request, reply),
            Some((request, reply)) = dynamic.recv() => handle(request, reply),
            else => return,
        }
    }
}

async fn call(
    transport: NetTransport,
    endpoint: Endpoint,
    request: Request,
    mode: u32,
    shared: Arc<Mutex<Shared>>,
) {
    let client = transport.client::<Request, u64>(endpoint);
    let fast_fail = transport.failure_monitor().is_endpoint_failed(&endpoint);
    let (name, result) = match mode {
        0 => ("get_reply", client.get_reply(&request).await),
        1 => ("try_get_reply", client.try_get_reply(&request).await),
        _ => (
            "unless_failed_for",
            client
                .get_reply_unless_failed_for(&request, Duration::from_secs(1))
                .await,
        ),
    };
    let mut shared = shared.lock().unwrap();
    let outcome = support::outcome_name(&result);
    shared.count(outcome);
    shared.count(format!("{name}/{outcome}"));
    if fast_fail {
        shared.count("endpoint_failed_fast");
        if !matches!(result, Err(ReplyError::EndpointNotFound { .. })) {
            shared.violations.push(format!(
                "known-failed endpoint {endpoint} answered {result:?}"
            ));
        }
    }
    match &result {
        Ok(id) if *id != request.id => shared
            .violations
            .push(format!("request {} answered {id}", request.id)),
        Ok(_) if request.drop_promise => shared.violations.push(format!(
            "request {} answered despite a dropped promise",
            request.id
        )),
        Err(ReplyError::ConnectionFailed { .. } | ReplyError::MaybeDelivered { .. })
            if name == "get_reply" =>
        {
            shared.violations.push(format!(
                "get_reply failed on a connection error: {result:?}"
            ));
        }
        Err(ReplyError::Serialization { .. } | ReplyError::TransportClosed) => {
            shared.violations.push(format!("unexpected {result:?}"))
        }
        _ => {}
    }
}

async fn client(providers: SimProviders, index: u32, shared: Arc<Mutex<Shared>>) {
    let transport = NetTransportBuilder::new(providers.clone()).build().unwrap();
    let control = providers.control().clone();
    let server = control.process("server").unwrap();
    let mut calls: Vec<JoinHandle<()>> = Vec::new();
    let mut id = u64::from(index) << 32;
    while providers.time().now() < CHAOS {
        id += 1;
        let random = providers.random();
        let request = Request {
            id,
            drop_promise: random.random_range(0..8u32) == 0,
            delay_ms: if random.random_bool(0.3) {
                random.random_range(1..500u64)
            } else {
                0
            },
        };
        let endpoint = match random.random_range(0..10u32) {
            0 => Endpoint::new(
                server_address(),
                UID::new(0xdead, random.random_range(1..4u64)),
            ),
            1..=3 => shared
                .lock()
                .unwrap()
                .dynamic
                .unwrap_or(Endpoint::new(server_address(), ECHO)),
            _ => Endpoint::new(server_address(), ECHO),
        };
        let mode = random.random_range(0..3u32);
        calls.push(providers.task().spawn(
            "call",
            call(
                transport.clone(),
                endpoint,
                request,
                mode,
                Arc::clone(&shared),
            ),
        ));
        if index == 1 && random.random_range(0..60u32) == 0 && control.is_alive(server) {
            let pending = transport.metrics().pending_replies;
            let restart = Duration::from_millis(random.random_range(100..2000u64));
            control.reboot(server, RebootKind::Crash, Some(restart));
            let mut shared = shared.lock().unwrap();
            shared.count("reboot");
            if pending > 0 {
                shared.count("reboot_mid_requests");
            }
        }
        let pause = providers.random().random_range(1..60u64);
        providers.time().sleep(Duration::from_millis(pause)).await;
    }
    control.end_chaos();
    for call in calls {
        call.await.unwrap();
    }
    // After the chaos, once the server is back, reliable requests are answered again.
    let echo = transport.client::<Request, u64>(Endpoint::new(server_address(), ECHO));
    let request = Request {
        id: 1,
        drop_promise: false,
        delay_ms: 0,
    };
    let result = echo.get_reply(&request).await;
    let metrics = transport.metrics();
    let mut shared = shared.lock().unwrap();
    if result != Ok(1) {
        shared.violations.push(format!(
            "client {index}: after the chaos get_reply gave {result:?}"
        ));
    }
    if metrics.pending_replies != 0 {
        shared.violations.push(format!(
            "client {index}: {} replies pending at the end",
            metrics.pending_replies
        ));
    }
    if let Err(violation) = transport.check_invariants() {
        shared
            .violations
            .push(format!("client {index}: {violation}"));
    }
}

fn build(seed: u64) -> (SimWorld, Box<dyn Fn() -> Observed>) {
    let shared = Arc::new(Mutex::new(Shared::default()));
    let mut world = SimWorld::with_config(seed, support::chaos_world()).unwrap();
    let server_shared = Arc::clone(&shared);
    world
        .add_process("server", SERVER_IP, Locality::default(), move |ctx| {
            server(ctx.providers, Arc::clone(&server_shared))
        })
        .unwrap();
    for index in 1..=2 {
        let shared = Arc::clone(&shared);
        world
            .add_workload(
                &format!("client-{index}"),
                &format!("10.0.0.{}", 10 + index),
                move |p| client(p, index, shared),
            )
            .unwrap();
    }
    let view = Arc::clone(&shared);
    (
        world,
        Box::new(move || {
            let shared = view.lock().unwrap();
            Observed {
                counts: shared.counts.clone(),
                violations: shared.violations.clone(),
            }
        }),
    )
}

#[test]
fn test_sim_error_paths_and_reboots() {
    let mut total = BTreeMap::new();
    let mut crashes = 0;
    for seed in support::seeds(50) {
        let (summary, observed) = support::run_twice(seed, build);
        assert!(
            observed.violations.is_empty(),
            "seed {seed}: {:#?}",
            observed.violations
        );
        support::merge(&mut total, &observed.counts);
        crashes += summary.faults.get("process.crash").copied().unwrap_or(0);
    }
    println!("{total:#?}\ncrashes: {crashes}");
    assert!(crashes > 0, "no crash fired");
    for key in [
        "broken_promise",
        "endpoint_not_found",
        "maybe_delivered",
        "reboot_mid_requests",
        "endpoint_failed_fast",
        "get_reply/ok",
    ] {
        assert!(
            total.get(key).copied().unwrap_or(0) > 0,
            "never observed {key}: {total:#?}"
        );
    }
}
