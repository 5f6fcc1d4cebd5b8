//! Simulation (b): 3 servers and 5 clients under network chaos, then a quiet settle period.
//! Afterwards every reliable message sent was received, nothing was received that was not sent
//! or that was sent elsewhere, and duplicates appear only in the at-least-once modes. Each seed
//! runs twice and must give the same summary.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod support;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{
    Endpoint, JoinHandle, NetworkAddress, Providers, RandomProvider, TaskProvider, TimeProvider,
    UID,
};
use moonpool_sim::{Locality, SimProviders, SimWorld, WorldConfig};
use moonpool_transport::{NetTransport, NetTransportBuilder, ReplyError};
use serde::{Deserialize, Serialize};

const SERVERS: u32 = 3;
const CLIENTS: u32 = 5;
const QUEUE: UID = UID::well_known(11);
const STREAM: UID = UID::well_known(12);
const CHAOS: Duration = Duration::from_secs(6);
const SETTLE: Duration = Duration::from_secs(10);

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Mode {
    Reliable,
    Unreliable,
    FireAndForget,
    TryGetReply,
    GetReply,
}

impl Mode {
    fn at_most_once(self) -> bool {
        matches!(
            self,
            Mode::Unreliable | Mode::FireAndForget | Mode::TryGetReply
        )
    }
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
struct Msg {
    client: u32,
    seq: u64,
    server: u32,
}

#[derive(Debug)]
struct Sent {
    server: u32,
    mode: Mode,
    /// The send call succeeded (queued) or the RPC returned a reply.
    confirmed: bool,
}

#[derive(Default)]
struct Ledger {
    sent: BTreeMap<(u32, u64), Sent>,
    received: BTreeMap<(u32, u64), Vec<u32>>,
    violations: Vec<String>,
    counts: BTreeMap<String, u64>,
}

impl Ledger {
    fn count(&mut self, key: impl Into<String>) {
        *self.counts.entry(key.into()).or_insert(0) += 1;
    }
}

#[derive(Debug, Clone, PartialEq, Default)]
struct Observed {
    counts: BTreeMap<String, u64>,
    violations: Vec<String>,
}

fn server_address(server: u32) -> NetworkAddress {
    format!("10.0.1.{server}:4500").parse().unwrap()
}

async fn server(providers: SimProviders, index: u32, ledger: Arc<Mutex<Ledger>>) {
    let Ok(transport) = NetTransportBuilder::new(providers)
        .local_address(server_address(index))
        .build_listening()
        .await
    else {
        return;
    };
    let queue = transport.register_queue_at::<Msg>(QUEUE).unwrap();
    let stream = transport.register_stream_at::<Msg, u64>(STREAM).unwrap();
    let receive = |msg: Msg| {
        let mut ledger = ledger.lock().unwrap();
        ledger
            .received
            .entry((msg.client, msg.seq))
            .or_default()
            .push(index);
        if msg.server != index {
            ledger.violations.push(format!(
                "server {index} received {msg:?}, addressed to another"
            ));
        }
    };
    loop {
        moonpool_core::select! {
            Some(msg) = queue.recv() => receive(msg),
            Some((msg, reply)) = stream.recv() => {
                receive(msg);
                reply.send(msg.seq);
            }
            else => return,
        }
    }
}

async fn rpc(transport: NetTransport, msg: Msg, mode: Mode, ledger: Arc<Mutex<Ledger>>) {
    let client = transport.client::<Msg, u64>(Endpoint::new(server_address(msg.server), STREAM));
    let result = match mode {
        Mode::GetReply => client.get_reply(&msg).await,
        _ => client.try_get_reply(&msg).await,
    };
    let mut ledger = ledger.lock().unwrap();
    ledger.count(format!("{mode:?}/{}", support::outcome_name(&result)));
    match result {
        Ok(seq) if seq == msg.seq => {
            if let Some(sent) = ledger.sent.get_mut(&(msg.client, msg.seq)) {
                sent.confirmed = true;
            }
        }
        Ok(other) => ledger
            .violations
            .push(format!("{msg:?} answered with seq {other}")),
        Err(ReplyError::MaybeDelivered { .. } | ReplyError::ConnectionFailed { .. })
            if mode == Mode::TryGetReply => {}
        Err(error) => ledger
            .violations
            .push(format!("{mode:?} {msg:?} failed: {error}")),
    }
}

async fn client(providers: SimProviders, index: u32, ledger: Arc<Mutex<Ledger>>) {
    let builder = NetTransportBuilder::new(providers.clone());
    let transport = if index % 2 == 1 {
        builder
            .local_address(format!("10.0.2.{index}:5000").parse().unwrap())
            .build_listening()
            .await
            .unwrap()
    } else {
        builder.build().unwrap()
    };
    let mut calls: Vec<JoinHandle<()>> = Vec::new();
    let mut seq = 0u64;
    while providers.time().now() < CHAOS {
        seq += 1;
        let server = providers.random().random_range(1..=SERVERS);
        let msg = Msg {
            client: index,
            seq,
            server,
        };
        let mode = match providers.random().random_range(0..5u32) {
            0 => Mode::Reliable,
            1 => Mode::Unreliable,
            2 => Mode::FireAndForget,
            3 => Mode::TryGetReply,
            _ => Mode::GetReply,
        };
        ledger.lock().unwrap().sent.insert(
            (index, seq),
            Sent {
                server,
                mode,
                confirmed: false,
            },
        );
        let queue = Endpoint::new(server_address(server), QUEUE);
        let queued = match mode {
            Mode::Reliable => Some(transport.send_reliable(&queue, &msg)),
            Mode::Unreliable => Some(transport.send_unreliable(&queue, &msg)),
            Mode::FireAndForget => Some(
                transport
                    .client::<Msg, u64>(Endpoint::new(server_address(server), STREAM))
                    .send(&msg),
            ),
            Mode::TryGetReply | Mode::GetReply => {
                calls.push(providers.task().spawn(
                    "rpc",
                    rpc(transport.clone(), msg, mode, Arc::clone(&ledger)),
                ));
                None
            }
        };
        if let Some(result) = queued {
            let mut ledger = ledger.lock().unwrap();
            ledger.count(format!(
                "{mode:?}/{}",
                if result.is_ok() { "queued" } else { "refused" }
            ));
            if result.is_ok()
                && let Some(sent) = ledger.sent.get_mut(&(index, seq))
            {
                sent.confirmed = true;
            }
        }
        providers
            .time()
            .sleep(Duration::from_millis(
                providers.random().random_range(5..40u64),
            ))
            .await;
    }
    providers.control().end_chaos();
    for call in calls {
        call.await.unwrap();
    }
    providers.time().sleep(SETTLE).await;
    let metrics = transport.metrics();
    let mut ledger = ledger.lock().unwrap();
    if metrics.pending_replies != 0 {
        ledger.violations.push(format!(
            "client {index}: {} replies pending after settling",
            metrics.pending_replies
        ));
    }
    for peer in &metrics.peer_metrics {
        if peer.reliable_queue_len != 0 {
            ledger.violations.push(format!(
                "client {index}: {} reliable packets to {} still unacknowledged after settling",
                peer.reliable_queue_len, peer.address
            ));
        }
        ledger.counts.entry("reliable_resent".into()).or_insert(0);
        *ledger.counts.get_mut("reliable_resent").unwrap() += peer.reliable_resent;
    }
    if let Err(violation) = transport.check_invariants() {
        ledger
            .violations
            .push(format!("client {index}: {violation}"));
    }
}

fn check(ledger: &Ledger) -> Observed {
    let mut observed = Observed {
        counts: ledger.counts.clone(),
        violations: ledger.violations.clone(),
    };
    for (key, servers) in &ledger.received {
        let Some(sent) = ledger.sent.get(key) else {
            observed
                .violations
                .push(format!("phantom message {key:?} received by {servers:?}"));
            continue;
        };
        if servers.iter().any(|s| *s != sent.server) {
            observed.violations.push(format!(
                "{key:?} sent to {} but received by {servers:?}",
                sent.server
            ));
        }
        if servers.len() > 1 {
            let name = format!("{:?}/duplicates", sent.mode);
            *observed.counts.entry(name).or_insert(0) += 1;
            if sent.mode.at_most_once() {
                observed.violations.push(format!(
                    "{key:?} sent {:?} (at most once) received {} times",
                    sent.mode,
                    servers.len()
                ));
            }
        }
    }
    for (key, sent) in &ledger.sent {
        let received = ledger.received.get(key).map_or(0, Vec::len);
        let must_arrive = sent.confirmed && matches!(sent.mode, Mode::Reliable | Mode::GetReply);
        if must_arrive && received == 0 {
            observed
                .violations
                .push(format!("{:?} {key:?} was never received", sent.mode));
        }
        if sent.confirmed && sent.mode == Mode::TryGetReply && received != 1 {
            observed.violations.push(format!(
                "answered try_get_reply {key:?} received {received} times"
            ));
        }
        let delivered = if received > 0 { "delivered" } else { "lost" };
        *observed
            .counts
            .entry(format!("{:?}/{delivered}", sent.mode))
            .or_insert(0) += 1;
    }
    observed
}

fn build_in(seed: u64, config: WorldConfig) -> (SimWorld, Box<dyn Fn() -> Observed>) {
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut world = SimWorld::with_config(seed, config).unwrap();
    for index in 1..=SERVERS {
        let ledger = Arc::clone(&ledger);
        world
            .add_process(
                &format!("server-{index}"),
                &format!("10.0.1.{index}"),
                Locality::default(),
                move |ctx| server(ctx.providers, index, Arc::clone(&ledger)),
            )
            .unwrap();
    }
    for index in 1..=CLIENTS {
        let ledger = Arc::clone(&ledger);
        world
            .add_workload(
                &format!("client-{index}"),
                &format!("10.0.2.{index}"),
                move |p| client(p, index, ledger),
            )
            .unwrap();
    }
    (world, Box::new(move || check(&ledger.lock().unwrap())))
}

/// Runs `seeds` (each twice) in the world `config` gives for each seed, checks the delivery
/// contract of every one, and returns the merged outcome counts and the faults that fired.
fn delivery_contract(
    seeds: std::ops::Range<u64>,
    config: impl Fn(u64) -> WorldConfig,
) -> (BTreeMap<String, u64>, BTreeMap<&'static str, u64>) {
    let mut total = BTreeMap::new();
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    let count = seeds.end - seeds.start;
    for seed in seeds {
        let (summary, observed) = support::run_twice(seed, |seed| build_in(seed, config(seed)));
        assert!(
            observed.violations.is_empty(),
            "seed {seed}: {:#?}",
            observed.violations
        );
        support::merge(&mut total, &observed.counts);
        for (fault, n) in summary.faults {
            *faults.entry(fault).or_insert(0) += n;
        }
    }
    println!("{count} seeds\noutcomes: {total:#?}\nfaults: {faults:#?}");
    (total, faults)
}

#[test]
fn test_sim_cluster_delivery_contract() {
    let (total, _) = delivery_contract(support::seeds(50), |_| support::chaos_world());
    support::assert_seen(
        &total,
        &[
            "Reliable/delivered",
            "GetReply/ok",
            "TryGetReply/ok",
            "Unreliable/delivered",
        ],
    );
}

/// The same contract with the simulator's TCP-layer faults on (per seed), 1,000 seeds in the `sim`
/// profile. Loss shows up as retransmission delay and, on a long burst, as a failed connection;
/// neither may break the contract.
#[test]
fn slow_simulation_cluster_delivery_contract_with_tcp_faults() {
    let (total, faults) = delivery_contract(
        support::slow_seeds(1_000, 30),
        support::chaos_world_with_tcp_faults,
    );
    support::assert_seen(&total, &["Reliable/delivered", "GetReply/ok"]);
    support::assert_seen(&faults, &["network.loss", "network.retransmit"]);
}
