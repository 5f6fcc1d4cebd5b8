//! A leader-lease replicated register, tested by simulation under swarm chaos.
//!
//! Three replicas elect a leader with majority-granted leases, replicate every write to a majority
//! (persisting it with write, sync, rename before acknowledging), and let the leader serve reads
//! locally while its lease holds. Four clients write and read through whichever replica answers,
//! and every read is checked against every write acknowledged before it began:
//! `assert_always!(.., "reads never go back in time")`.
//!
//! Leases are only safe when an acceptor waits out a granted lease **plus a margin larger than the
//! clock drift** before granting another, and when a leader stops serving as soon as it cannot
//! renew its lease with a majority. `--bug` plants the mistake of trusting the local clock
//! instead: acceptors grant with no drift margin, and a leader whose renewal fails keeps
//! extending its lease because its clock says it is still the leader. When the replicas are split
//! while clients still reach the old leader, two replicas then lead at once and the old one serves
//! a stale read. The run finds it and prints a command that replays exactly that seed.
//!
//! # Why the clean variant is safe
//!
//! What the simulated clock guarantees (`ClockConfiguration`, `moonpool-sim/src/kernel/clock.rs` and `moonpool-sim/src/providers/time.rs`): the
//! readings of `timer()` on one process (within one boot) never go backwards and always lie in
//! `[now, now + DRIFT_MAX]`, where `now` is the real (world) time; a sleep can end late, never
//! early. Write `D = DRIFT_MAX`. No lease decision rests on a sleep: every one reads `timer()` at
//! the moment it acts, and a timeout that fires late only lets a slow reply in, which cannot
//! lengthen a lease counted from before the request was sent.
//!
//! 1. **A leader stops in time.** A campaign that starts when the candidate's clock reads `s`
//!    (real time `S`, so `s <= S + D`) gives a lease up to local `s + LEASE - MARGIN`. The leader
//!    serves reads and starts writes only while `timer()` is below that, and `timer() >= now`, so
//!    never at or after real time `S + D + LEASE - MARGIN`.
//! 2. **An acceptor waits longer.** An acceptor grants at local `g`, real `G >= S` (the request
//!    left after the campaign started), so `g >= G >= S`. It grants no other candidate until its
//!    clock reads `g + LEASE + MARGIN`, which is not before real `S + LEASE + MARGIN - D`. A
//!    rebooted acceptor, which forgot `g`, grants nothing until its clock reads
//!    `boot + LEASE + MARGIN`, so again not before real `S + LEASE + MARGIN - D`.
//! 3. **Leases never overlap.** A later leader needs grants from a majority, which shares a
//!    replica with the majority of the old leader's last renewal. If that replica is a third one,
//!    or the new leader itself (it grants itself through the same rule), step 2 holds it back
//!    until real `S + LEASE + MARGIN - D`, after the old lease ended at `S + LEASE - MARGIN + D`
//!    (step 1) because `MARGIN > D`. If it is the old leader, that one stopped leading before it
//!    granted: granting another candidate ends its own leadership, and it releases its own
//!    grant only after a failed campaign, which also ends its leadership. `--bug` breaks this
//!    step: with no margin the two leases may overlap by up to `2 * D`, and a leader that extends
//!    its lease without a majority has no campaign start `S` to count from at all.
//! 4. **A new leader knows every acknowledged write.** A write of epoch `e` is acknowledged only
//!    after a majority applied and persisted it, each of them before granting any later epoch:
//!    `Replicate` of an older epoch is refused, and the leader applies the same rule to its own
//!    copy. A leader of a later epoch starts from the newest version among a majority's grant
//!    replies, and one of them holds the write. Persisting is serialized and always writes the
//!    latest state, so a replica's disk never goes back either.
//! 5. **Reads.** A read served at real time `T` by the leader of epoch `e` sees every write
//!    acknowledged before `T`: those of epoch `e` it acknowledged itself, those of earlier epochs
//!    it inherited (step 4), and none of a later epoch exists yet (step 3).
//! 6. **Bytes.** The network flips bits in delivered bytes. Every message carries a CRC-32C and
//!    one that fails it is dropped, as if it were lost (which the protocol already survives).
//!    Without it, one flipped digit turns the reply `Written { version: (1, 42) }` into
//!    `(5, 42)`, an acknowledgement of a write that never happened.
//!
//! ```sh
//! cargo run --release -p moonpool --example replicated_kv          # passes
//! cargo run --release -p moonpool --example replicated_kv -- --bug # finds the planted bug
//! ```
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool::sim::{
    Attrition, Chaos, ClockConfiguration, FaultContext, IterationControl, ProcessContext,
    RebootKind, SimProviders, SimulationBuilder, StorageConfiguration, WorkloadContext,
    WorkloadError,
};
use moonpool::{
    NetworkProvider, OpenOptions, Providers, RandomProvider, StorageFile, StorageProvider,
    TaskProvider, TcpListener, TimeProvider, assert_always, assert_sometimes,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};

const REPLICAS: usize = 3;
const PORT: u16 = 4500;
/// Lease length, as measured by the local clock.
const LEASE: Duration = Duration::from_secs(2);
/// Largest clock drift in the simulation.
const DRIFT_MAX: Duration = Duration::from_millis(600);
/// Safety margin: larger than the drift of both clocks involved.
const MARGIN: Duration = Duration::from_millis(1300);
const REQUEST_TIMEOUT: Duration = Duration::from_millis(400);

/// A version orders writes: the leader's epoch, then its sequence number.
type Version = (u64, u64);

#[derive(Debug, Serialize, Deserialize)]
enum Request {
    Lease {
        epoch: u64,
        candidate: usize,
    },
    Replicate {
        epoch: u64,
        version: Version,
        value: u64,
    },
    Write {
        value: u64,
    },
    Read,
}

#[derive(Debug, Serialize, Deserialize)]
enum Reply {
    Granted { version: Version, value: u64 },
    Rejected { epoch: u64 },
    Ack,
    Written { version: Version },
    Value { version: Version, value: u64 },
    NotLeader,
}

/// What a replica keeps on disk.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
struct Durable {
    epoch: u64,
    granted_to: Option<usize>,
    version: Version,
    value: u64,
}

struct Lease {
    epoch: u64,
    expires_local: Duration,
    next_seq: u64,
}

struct Replica {
    id: usize,
    durable: Durable,
    granted_until_local: Duration,
    leading: Option<Lease>,
    /// No granting or leading before this local time after a boot: the replica may have forgotten
    /// a lease it granted before it went down.
    ready_at_local: Duration,
    planted_bug: bool,
    /// Taken for a whole write-sync-rename of the state file: concurrent persists would share
    /// `state.tmp` and could leave an older state (or a mix of two) on disk.
    disk: Arc<tokio::sync::Mutex<()>>,
}

fn replica_address(id: usize) -> String {
    format!("10.0.0.{}:{PORT}", id + 1)
}

/// CRC-32C (Castagnoli), bit by bit.
pub fn crc32c(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0x82F6_3B78
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// One message on the wire, a line: its CRC-32C in 8 hex digits, a space, its JSON.
pub fn encode<T: Serialize>(message: &T) -> Option<Vec<u8>> {
    let json = serde_json::to_vec(message).ok()?;
    let mut line = format!("{:08x} ", crc32c(&json)).into_bytes();
    line.extend_from_slice(&json);
    line.push(b'\n');
    Some(line)
}

/// The message in a line written by [`encode`]; `None` when it fails its checksum.
pub fn decode<T: DeserializeOwned>(line: &str) -> Option<T> {
    let (checksum, json) = line.strip_suffix('\n')?.split_once(' ')?;
    if checksum != format!("{:08x}", crc32c(json.as_bytes())) {
        return None;
    }
    serde_json::from_str(json).ok()
}

async fn exchange(providers: &SimProviders, address: &str, request: &Request) -> Option<Reply> {
    let attempt = async {
        let mut stream = providers.network().connect(address).await.ok()?;
        stream.write_all(&encode(request)?).await.ok()?;
        let mut reply = String::new();
        BufReader::new(&mut stream)
            .read_line(&mut reply)
            .await
            .ok()?;
        decode(&reply)
    };
    providers
        .time()
        .timeout(REQUEST_TIMEOUT, attempt)
        .await
        .ok()
        .flatten()
}

/// Makes the replica's current durable state (which includes every change made before the call)
/// durable on disk.
async fn persist(providers: &SimProviders, replica: &Arc<Mutex<Replica>>) -> bool {
    let disk = Arc::clone(&replica.lock().unwrap().disk);
    let _turn = disk.lock().await;
    // Taken after waiting for our turn: the newest state, never older than what is on disk.
    let durable = replica.lock().unwrap().durable.clone();
    let storage = providers.storage();
    let Ok(mut file) = storage.open("state.tmp", OpenOptions::create_write()).await else {
        return false;
    };
    let Ok(bytes) = serde_json::to_vec(&durable) else {
        return false;
    };
    file.write_all(&bytes).await.is_ok()
        && file.sync_all().await.is_ok()
        && storage.rename("state.tmp", "state.json").await.is_ok()
}

async fn recover(providers: &SimProviders) -> Durable {
    let Ok(mut file) = providers
        .storage()
        .open("state.json", OpenOptions::read_only())
        .await
    else {
        return Durable::default();
    };
    let mut bytes = Vec::new();
    if file.read_to_end(&mut bytes).await.is_err() {
        return Durable::default();
    }
    serde_json::from_slice(&bytes).unwrap_or_default()
}

/// Handles one request from a peer or a client.
async fn handle(
    providers: &SimProviders,
    replica: &Arc<Mutex<Replica>>,
    request: Request,
) -> Reply {
    let now = providers.time().timer();
    match request {
        Request::Lease { epoch, candidate } => {
            let snapshot = {
                let mut r = replica.lock().unwrap();
                let margin = if r.planted_bug {
                    Duration::ZERO
                } else {
                    MARGIN
                };
                let free = r.durable.granted_to == Some(candidate)
                    || now >= r.granted_until_local + margin;
                if now < r.ready_at_local
                    || epoch < r.durable.epoch
                    || (epoch == r.durable.epoch && r.durable.granted_to != Some(candidate))
                    || !free
                {
                    return Reply::Rejected {
                        epoch: r.durable.epoch,
                    };
                }
                r.durable.epoch = epoch;
                r.durable.granted_to = Some(candidate);
                r.granted_until_local = now + LEASE;
                if r.id != candidate {
                    r.leading = None;
                }
                r.durable.clone()
            };
            if !persist(providers, replica).await {
                return Reply::Rejected {
                    epoch: snapshot.epoch,
                };
            }
            Reply::Granted {
                version: snapshot.version,
                value: snapshot.value,
            }
        }
        Request::Replicate {
            epoch,
            version,
            value,
        } => {
            {
                let mut r = replica.lock().unwrap();
                if epoch < r.durable.epoch {
                    return Reply::Rejected {
                        epoch: r.durable.epoch,
                    };
                }
                r.durable.epoch = epoch;
                if version > r.durable.version {
                    r.durable.version = version;
                    r.durable.value = value;
                }
            }
            if persist(providers, replica).await {
                Reply::Ack
            } else {
                Reply::Rejected { epoch }
            }
        }
        Request::Read => {
            let r = replica.lock().unwrap();
            match &r.leading {
                Some(lease) if now < lease.expires_local => {
                    assert_sometimes!(true, "leader served a read");
                    Reply::Value {
                        version: r.durable.version,
                        value: r.durable.value,
                    }
                }
                _ => Reply::NotLeader,
            }
        }
        Request::Write { value } => write_as_leader(providers, replica, value).await,
    }
}

async fn write_as_leader(
    providers: &SimProviders,
    replica: &Arc<Mutex<Replica>>,
    value: u64,
) -> Reply {
    let (epoch, version, id) = {
        let mut r = replica.lock().unwrap();
        let now = providers.time().timer();
        let Some(lease) = r.leading.as_mut().filter(|l| now < l.expires_local) else {
            return Reply::NotLeader;
        };
        lease.next_seq += 1;
        (lease.epoch, (lease.epoch, lease.next_seq), r.id)
    };
    // Replicate to every peer at once; a majority of acknowledgements (counting ours) is enough.
    let (acks_tx, mut acks_rx) = tokio::sync::mpsc::unbounded_channel();
    for peer in (0..REPLICAS).filter(|p| *p != id) {
        let (providers, acks_tx) = (providers.clone(), acks_tx.clone());
        drop(providers.clone().task().spawn("replicate", async move {
            let request = Request::Replicate {
                epoch,
                version,
                value,
            };
            let acked = matches!(
                exchange(&providers, &replica_address(peer), &request).await,
                Some(Reply::Ack)
            );
            let _ = acks_tx.send(acked);
        }));
    }
    drop(acks_tx);
    let mut acks = 1;
    while acks * 2 <= REPLICAS {
        match acks_rx.recv().await {
            Some(true) => acks += 1,
            Some(false) => {}
            None => return Reply::NotLeader,
        }
    }
    {
        let mut r = replica.lock().unwrap();
        // Our own copy obeys the rule of `Replicate`: once we granted a later epoch, whose leader
        // may have read our state without this write, the write cannot count as acknowledged.
        if epoch < r.durable.epoch {
            return Reply::NotLeader;
        }
        if version > r.durable.version {
            r.durable.version = version;
            r.durable.value = value;
        }
    }
    if persist(providers, replica).await {
        Reply::Written { version }
    } else {
        Reply::NotLeader
    }
}

/// Asks for (or renews) a lease from a majority.
async fn campaign(providers: &SimProviders, replica: &Arc<Mutex<Replica>>) {
    let started = providers.time().timer();
    let (id, epoch, renewing) = {
        let r = replica.lock().unwrap();
        if started < r.ready_at_local {
            return;
        }
        // Do not start an election while the vote we gave someone else may still make them leader.
        let voted_elsewhere = r.durable.granted_to.is_some_and(|g| g != r.id);
        let margin = if r.planted_bug {
            Duration::ZERO
        } else {
            MARGIN
        };
        if r.leading.is_none() && voted_elsewhere && started < r.granted_until_local + margin {
            return;
        }
        match &r.leading {
            Some(lease) => (r.id, lease.epoch, true),
            None => (r.id, r.durable.epoch + 1, false),
        }
    };
    // Grant ourselves first, through the same path as everyone else.
    let mut votes = 0;
    let mut best: (Version, u64) = ((0, 0), 0);
    let mut highest_epoch = epoch;
    for peer in 0..REPLICAS {
        let reply = if peer == id {
            Some(
                handle(
                    providers,
                    replica,
                    Request::Lease {
                        epoch,
                        candidate: id,
                    },
                )
                .await,
            )
        } else {
            exchange(
                providers,
                &replica_address(peer),
                &Request::Lease {
                    epoch,
                    candidate: id,
                },
            )
            .await
        };
        match reply {
            Some(Reply::Granted { version, value }) => {
                votes += 1;
                best = best.max((version, value));
            }
            Some(Reply::Rejected { epoch }) => highest_epoch = highest_epoch.max(epoch),
            _ => {}
        }
    }
    let mut r = replica.lock().unwrap();
    if votes * 2 > REPLICAS {
        let margin = if r.planted_bug {
            Duration::ZERO
        } else {
            MARGIN
        };
        if !renewing {
            assert_sometimes!(true, "a replica became leader");
            if best.0 > r.durable.version {
                r.durable.version = best.0;
                r.durable.value = best.1;
            }
            r.leading = Some(Lease {
                epoch,
                expires_local: started + LEASE.saturating_sub(margin),
                next_seq: 0,
            });
        } else if let Some(lease) = r.leading.as_mut() {
            lease.expires_local = started + LEASE.saturating_sub(margin);
        }
    } else if renewing
        && r.planted_bug
        && r.leading
            .as_ref()
            .is_some_and(|l| started < l.expires_local)
    {
        // The planted bug: "my clock says my lease is still good, so the renewal must have
        // worked" -- the leader extends its lease without a majority.
        if let Some(lease) = r.leading.as_mut() {
            lease.expires_local = started + LEASE;
        }
    } else {
        if renewing {
            assert_sometimes!(true, "a leader lost its lease");
        }
        r.leading = None;
        r.durable.epoch = r.durable.epoch.max(highest_epoch);
        // The lease we granted ourselves made no one leader: release it so that another candidate
        // can gather our vote (no one relies on it, and we no longer serve).
        if r.durable.granted_to == Some(id) {
            r.granted_until_local = Duration::ZERO;
        }
    }
}

async fn replica_main(ctx: ProcessContext, id: usize, planted_bug: bool) {
    let providers = ctx.providers.clone();
    let durable = recover(&providers).await;
    let boot = providers.time().timer();
    let replica = Arc::new(Mutex::new(Replica {
        id,
        durable,
        granted_until_local: Duration::ZERO,
        leading: None,
        ready_at_local: boot + LEASE + MARGIN,
        planted_bug,
        disk: Arc::default(),
    }));
    let Ok(listener) = providers.network().bind(&replica_address(id)).await else {
        return;
    };
    let campaigner = {
        let (providers, replica) = (providers.clone(), Arc::clone(&replica));
        providers.clone().task().spawn("campaign", async move {
            loop {
                campaign(&providers, &replica).await;
                let pause = providers
                    .random()
                    .random_range(Duration::from_millis(300)..Duration::from_millis(900));
                providers.time().sleep(pause).await;
            }
        })
    };
    while let Ok((stream, _)) = listener.accept().await {
        let (providers, replica) = (providers.clone(), Arc::clone(&replica));
        drop(providers.clone().task().spawn("request", async move {
            let (reader, mut writer) = tokio::io::split(stream);
            let mut line = String::new();
            let read = providers
                .time()
                .timeout(REQUEST_TIMEOUT, BufReader::new(reader).read_line(&mut line))
                .await;
            let Ok(Ok(n)) = read else { return };
            let Some(request) = decode::<Request>(&line[..n]) else {
                return;
            };
            let reply = handle(&providers, &replica, request).await;
            if let Some(bytes) = encode(&reply) {
                let _ = writer.write_all(&bytes).await;
            }
        }));
    }
    campaigner.abort();
}

/// Writes acknowledged so far, with the simulated time of the acknowledgement.
type Acked = Vec<(Version, Duration)>;

async fn client(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let providers = ctx.providers.clone();
    let mut leader = 0usize;
    let mut next_value = (ctx.index as u64 + 1) * 1_000_000;
    while ctx.chaos_active() {
        let started = providers.time().now();
        let request = if providers.random().random_bool(0.25) {
            next_value += 1;
            Request::Write { value: next_value }
        } else {
            Request::Read
        };
        match exchange(&providers, &replica_address(leader), &request).await {
            Some(Reply::Written { version }) => {
                let at = providers.time().now();
                ctx.state
                    .update("acked", |acked: &mut Acked| acked.push((version, at)));
            }
            Some(Reply::Value { version, .. }) => {
                let acked = ctx.state.get::<Acked>("acked").unwrap_or_default();
                let newest_before = acked
                    .iter()
                    .filter(|(_, at)| *at < started)
                    .map(|(v, _)| *v)
                    .max();
                assert_always!(
                    newest_before.is_none_or(|newest| version >= newest),
                    "reads never go back in time",
                    (version, newest_before)
                );
            }
            _ => leader = providers.random().random_range(0..REPLICAS),
        }
        providers.time().sleep(Duration::from_millis(20)).await;
    }
    Ok(())
}

/// After the chaos: the cluster must still serve a write and then read it back.
async fn final_check(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let providers = ctx.providers.clone();
    let value = 9_000_000 + ctx.index as u64;
    for attempt in 0..400 {
        let replica = attempt % REPLICAS;
        if let Some(Reply::Written { version }) = exchange(
            &providers,
            &replica_address(replica),
            &Request::Write { value },
        )
        .await
        {
            for _ in 0..400 {
                if let Some(Reply::Value { version: read, .. }) =
                    exchange(&providers, &replica_address(replica), &Request::Read).await
                    && read >= version
                {
                    return Ok(());
                }
                providers.time().sleep(Duration::from_millis(50)).await;
            }
        }
        providers.time().sleep(Duration::from_millis(50)).await;
    }
    Err("no replica accepted a write and served it back within 40 s after the chaos".into())
}

/// Every few seconds, cuts one replica off from the other replicas (but not from the clients)
/// for a while: the scenario in which two replicas can both believe they lead.
async fn split_replicas(ctx: FaultContext) {
    let replicas = ctx.topology.ips_of("replica");
    let random = ctx.providers.random().clone();
    while ctx.chaos_active() {
        ctx.providers
            .time()
            .sleep(random.random_range(Duration::from_secs(1)..Duration::from_secs(4)))
            .await;
        let victim = replicas[random.random_range(0..replicas.len())];
        let duration = random.random_range(Duration::from_secs(2)..Duration::from_secs(6));
        for other in replicas.iter().filter(|ip| **ip != victim) {
            ctx.control().partition(victim, *other, duration);
        }
    }
}

/// The simulation: three replicas, four clients, swarm chaos with attrition and replica splits.
pub fn simulation(planted_bug: bool, seeds: usize) -> SimulationBuilder {
    SimulationBuilder::new(if planted_bug {
        "replicated-kv --bug"
    } else {
        "replicated-kv"
    })
    .clock({
        let mut cfg = ClockConfiguration::default();
        cfg.drift_max = DRIFT_MAX;
        cfg
    })
    .storage(StorageConfiguration::default().without_faults())
    .enable_chaos([
        Chaos::Network,
        Chaos::Clock,
        Chaos::Buggify,
        Chaos::Partitions,
        Chaos::Attrition(
            Attrition::default()
                .with_max_dead(1)
                .with_kinds(vec![RebootKind::Graceful, RebootKind::Crash]),
        ),
    ])
    .fault_injector("split-replicas", split_replicas)
    .chaos_duration(Duration::from_secs(20))
    .settle_timeout(Duration::from_secs(60))
    .iterations(IterationControl::FixedCount(seeds))
    .workload_with_check("client", 4, client, final_check)
    .process("replica", REPLICAS, move |ctx| {
        // Instances are named replica-0, replica-1, ... and get 10.0.0.1, 10.0.0.2, ... in order.
        let id = ctx
            .name
            .rsplit('-')
            .next()
            .and_then(|i| i.parse().ok())
            .unwrap_or(0);
        replica_main(ctx, id, planted_bug)
    })
}

#[allow(dead_code)]
fn main() {
    let planted_bug = std::env::args().any(|a| a == "--bug");
    let seeds = match std::env::var("KV_SEEDS") {
        Err(_) => 300,
        Ok(value) => match value.parse::<usize>() {
            Ok(n) if n > 0 => n,
            _ => {
                eprintln!("replicated_kv: KV_SEEDS='{value}' is not a positive number of seeds");
                std::process::exit(2);
            }
        },
    };
    let report = match simulation(planted_bug, seeds).run() {
        Ok(report) => report,
        Err(error) => {
            eprintln!("replicated_kv: {error}");
            std::process::exit(2);
        }
    };
    println!("{report}");
    if report.failed() > 0 {
        for failure in report.failures() {
            println!(
                "fingerprint of seed {}: {:016x}",
                failure.seed, failure.fingerprint
            );
        }
        std::process::exit(1);
    }
}
