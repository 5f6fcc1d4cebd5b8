//! The transport's operation-alphabet workload under swarm chaos, shared by `sim_alphabet` (run
//! until every `sometimes` is reached) and `fingerprints` (a few fixed seeds whose fingerprints
//! are pinned).
//!
//! Three servers answer requests (or drop the promise, or answer late); five clients draw
//! operations from an alphabet of the four delivery modes plus a call to an endpoint nobody
//! registered; attrition crashes servers in the middle of requests. Invariants: replies are never
//! misrouted, `get_reply` never surfaces a connection error, nothing is delivered that was not
//! sent, at-most-once requests are never delivered twice, every client's pending-reply map is back
//! to zero after the settle phase, and every transport stays within its bounds.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use moonpool_core::{
    Endpoint, NetworkAddress, Providers, RandomProvider, TaskProvider, TimeProvider, UID,
    assert_always, assert_sometimes,
};
use moonpool_sim::{
    Attrition, Chaos, ProcessContext, RebootKind, SimulationBuilder, WorkloadContext, WorkloadError,
};
use moonpool_transport::{NetTransportBuilder, ReplyError};
use serde::{Deserialize, Serialize};

const SERVICE: UID = UID::well_known(20);
const NOBODY: UID = UID::well_known(40);
const PORT: u16 = 4500;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
enum Action {
    Reply,
    DropPromise,
    ReplyLate,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Request {
    client: usize,
    seq: u64,
    action: Action,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
struct Response {
    client: usize,
    seq: u64,
    server: String,
    boot: u64,
}

/// Requests the servers' handlers saw, by (client, seq).
type Delivered = BTreeMap<(usize, u64), u32>;
/// Requests sent, by (client, seq), with whether their mode is at most once.
type Sent = BTreeMap<(usize, u64), bool>;

pub async fn server(ctx: ProcessContext) {
    let address: NetworkAddress = format!("{}:{PORT}", ctx.ip).parse().unwrap();
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address)
        .build_listening()
        .await
    else {
        return;
    };
    let Ok(stream) = transport.register_stream_at::<Request, Response>(SERVICE) else {
        return;
    };
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
    let state = ctx.state.clone();
    while let Some((request, promise)) = stream.recv().await {
        state.update("delivered", |d: &mut Delivered| {
            *d.entry((request.client, request.seq)).or_insert(0) += 1
        });
        let response = Response {
            client: request.client,
            seq: request.seq,
            server: ctx.name.clone(),
            boot: ctx.boot,
        };
        match request.action {
            Action::Reply => {
                promise.send(response);
            }
            Action::DropPromise => drop(promise),
            Action::ReplyLate => {
                let time = ctx.providers.time().clone();
                drop(ctx.providers.task().spawn("late-reply", async move {
                    time.sleep(Duration::from_millis(1500)).await;
                    promise.send(response);
                }));
            }
        }
    }
}

const OPS: [&str; 5] = [
    "get_reply",
    "try_get_reply",
    "get_reply_unless_failed_for",
    "send",
    "unknown_endpoint",
];

pub async fn client(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    let servers: Vec<String> = ctx
        .topology
        .ips_of("server")
        .iter()
        .map(|ip| format!("{ip}:{PORT}"))
        .collect();
    // Swarm the alphabet: each seed exercises its own mix (never an empty one).
    let mut ops: Vec<&str> = OPS
        .iter()
        .copied()
        .filter(|op| ctx.swarm_op_enabled(op))
        .collect();
    if ops.is_empty() {
        ops.push("get_reply");
    }
    let random = ctx.providers.random().clone();
    let mut seq = 0u64;
    while ctx.chaos_active() {
        seq += 1;
        let address: NetworkAddress = servers[random.random_range(0..servers.len())].parse()?;
        let action = match random.random_range(0..10) {
            0 => Action::DropPromise,
            1 => Action::ReplyLate,
            _ => Action::Reply,
        };
        let request = Request {
            client: ctx.index,
            seq,
            action,
        };
        let op = ops[random.random_range(0..ops.len())];
        let at_most_once = matches!(op, "try_get_reply" | "send" | "unknown_endpoint");
        ctx.state.update("sent", |s: &mut Sent| {
            s.insert((ctx.index, seq), at_most_once);
        });
        let service = transport.client::<Request, Response>(Endpoint::new(address, SERVICE));
        let outcome = match op {
            "get_reply" => Some(service.get_reply(&request)),
            "try_get_reply" => Some(service.try_get_reply(&request)),
            "get_reply_unless_failed_for" => {
                Some(service.get_reply_unless_failed_for(&request, Duration::from_secs(1)))
            }
            "send" => {
                let _ = service.send(&request);
                None
            }
            _ => Some(
                transport
                    .client::<Request, Response>(Endpoint::new(address, NOBODY))
                    .try_get_reply(&request),
            ),
        };
        if let Some(reply) = outcome {
            // Every request ends: with a reply, a typed error, or this generous deadline.
            let ended = ctx
                .providers
                .time()
                .timeout(Duration::from_secs(30), reply)
                .await;
            assert_always!(ended.is_ok(), "no request hangs", (op, seq));
            if let Ok(result) = ended {
                observe(op, &request, &address, result);
            }
        }
        ctx.providers
            .time()
            .sleep(Duration::from_millis(random.random_range(5..50)))
            .await;
    }
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

fn observe(
    op: &str,
    request: &Request,
    address: &NetworkAddress,
    result: Result<Response, ReplyError>,
) {
    match result {
        Ok(response) => {
            assert_always!(
                response.client == request.client && response.seq == request.seq,
                "replies are never misrouted",
                (&request, &response)
            );
            assert_always!(
                op != "unknown_endpoint",
                "an unknown endpoint never answers",
                address
            );
            assert_sometimes!(response.boot > 1, "a rebooted server answered");
        }
        Err(ReplyError::BrokenPromise { .. }) => {
            assert_sometimes!(
                true,
                "a dropped promise reaches the caller as BrokenPromise"
            );
        }
        Err(ReplyError::EndpointNotFound { .. }) => {
            assert_always!(
                op == "unknown_endpoint",
                "registered endpoints are found",
                (op, address)
            );
            assert_sometimes!(true, "an unknown endpoint answers EndpointNotFound");
        }
        Err(ReplyError::MaybeDelivered { .. }) => {
            assert_always!(
                op != "get_reply",
                "get_reply never surfaces a connection error",
                op
            );
            assert_sometimes!(
                op == "try_get_reply",
                "try_get_reply reports MaybeDelivered"
            );
            assert_sometimes!(
                op == "get_reply_unless_failed_for",
                "get_reply_unless_failed_for gives up on a failed peer"
            );
        }
        Err(ReplyError::ConnectionFailed { .. }) => {
            assert_always!(
                op != "get_reply",
                "get_reply never surfaces a connection error",
                op
            );
            assert_sometimes!(true, "a request fails before it is sent");
        }
        Err(other) => {
            assert_always!(
                op != "get_reply",
                "get_reply never surfaces a connection error",
                (op, other.to_string())
            );
        }
    }
}

/// Cross-process check after the settle phase: nothing phantom, no duplicate where the mode
/// forbids one.
pub async fn check(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    if ctx.index != 0 {
        return Ok(());
    }
    let sent = ctx.state.get::<Sent>("sent").unwrap_or_default();
    let delivered = ctx.state.get::<Delivered>("delivered").unwrap_or_default();
    let phantom: BTreeSet<_> = delivered.keys().filter(|k| !sent.contains_key(k)).collect();
    if !phantom.is_empty() {
        return Err(format!("delivered but never sent: {phantom:?}").into());
    }
    for (key, count) in &delivered {
        if sent.get(key) == Some(&true) && *count > 1 {
            return Err(format!("at-most-once request {key:?} delivered {count} times").into());
        }
        if *count > 1 {
            assert_sometimes!(
                true,
                "an at-least-once request was delivered more than once"
            );
        }
    }
    Ok(())
}

/// The alphabet simulation named `name`: processes, workloads, chaos and durations; the caller
/// picks the seeds.
pub fn simulation(name: &str) -> SimulationBuilder {
    SimulationBuilder::new(name)
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
}
