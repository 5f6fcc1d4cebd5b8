//! The whole stack in one file: a durable key-value service on the RPC transport, tested under
//! chaos in the simulator, and run on Tokio over loopback TCP with real files.
//!
//! - The interface is one `#[service]` trait, [`KeyValue`]; its server keeps every key in
//!   memory and in an append-only log on the process's [`StorageProvider`]: a `put` is written,
//!   synced, and only then acknowledged. At boot the server replays the log, cutting off a torn
//!   or lost tail.
//! - [`simulation`] declares the test: one server, three clients that write and read their own
//!   keys, a chaotic network, a disk that loses or tears unsynced writes on a crash, and a fault
//!   injector that crashes and restarts the server. An invariant checked after every event says
//!   that no acknowledged write is ever lost; each client checks every read, and checks its keys
//!   once more after the faults stop. `moonpool/tests/kv_service.rs` runs it over many seeds.
//! - `main` runs the same server and client on Tokio: real TCP on `127.0.0.1`, real files in a
//!   temporary directory, then restarts the server on the same directory and reads the data back.
//!
//! ```sh
//! cargo run -p moonpool --example kv_service                 # on Tokio, over loopback
//! cargo run --release -p moonpool --example kv_service -- --sim          # 100 seeds (KV_SEEDS)
//! cargo run --release -p moonpool --example kv_service -- --sim --bug    # acks before sync
//! ```
//!
//! The walk-through is `docs/guides/end-to-end-service.md`.
#![allow(clippy::expect_used, clippy::unwrap_used)]

use std::collections::BTreeMap;
use std::time::Duration;

use moonpool::prelude::*;
use moonpool::sim::{NetworkConfiguration, StorageConfiguration};
use moonpool::transport::CallError;
use moonpool::{NetworkAddress, TokioStorageProvider};
use serde::{Deserialize, Serialize};
use tokio::sync::Mutex;

/// The port the service listens on in simulation.
pub const PORT: u16 = 4500;
/// The log file of the store.
const LOG: &str = "kv.log";
/// Keys each client owns.
const KEYS_PER_CLIENT: usize = 4;

/// What the store answers when its disk fails it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum KvError {
    /// A write or sync failed; the put may or may not be durable.
    Storage(String),
}

impl std::fmt::Display for KvError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KvError::Storage(message) => write!(f, "storage: {message}"),
        }
    }
}

impl std::error::Error for KvError {}

/// A store of versioned keys. Versions only go up, so every call is safe to retry: a put of an
/// older version than the stored one changes nothing.
#[service(well_known = 7)]
pub trait KeyValue {
    /// Raises `key` to `version`, durably; answers the version now stored.
    async fn put(&self, key: String, version: u64) -> Result<u64, KvError>;
    /// The version stored for `key`, if any.
    async fn get(&self, key: String) -> Result<Option<u64>, KvError>;
}

/// One log record: `[key length: u32][key][version: u64][checksum: u64]`, little-endian.
fn encode(key: &str, version: u64) -> Vec<u8> {
    let mut record = Vec::with_capacity(key.len() + 20);
    record.extend_from_slice(&u32::try_from(key.len()).unwrap_or(u32::MAX).to_le_bytes());
    record.extend_from_slice(key.as_bytes());
    record.extend_from_slice(&version.to_le_bytes());
    let checksum = fnv1a(&record);
    record.extend_from_slice(&checksum.to_le_bytes());
    record
}

/// FNV-1a, 64 bits: enough to tell a torn record from a whole one.
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// Replays a log: the map it describes and the length of its whole records (a torn or lost
/// tail ends the replay).
fn replay(log: &[u8]) -> (BTreeMap<String, u64>, usize) {
    let mut map = BTreeMap::new();
    let mut at = 0;
    while let Some(header) = log.get(at..at + 4) {
        let len = u32::from_le_bytes(header.try_into().unwrap()) as usize;
        let end = at + 4 + len + 16;
        let Some(record) = log.get(at..end) else {
            break;
        };
        let (body, checksum) = record.split_at(4 + len + 8);
        if fnv1a(body) != u64::from_le_bytes(checksum.try_into().unwrap()) {
            break;
        }
        let Ok(key) = std::str::from_utf8(&body[4..4 + len]) else {
            break;
        };
        let version = u64::from_le_bytes(body[4 + len..].try_into().unwrap());
        let slot = map.entry(key.to_string()).or_insert(0);
        *slot = (*slot).max(version);
        at = end;
    }
    (map, at)
}

/// What the server publishes for the invariant: its map, after recovery and after every put.
pub const SERVER_MAP: &str = "kv.server_map";
/// What the clients publish: the highest version acknowledged, and attempted, per key.
pub const ACKED: &str = "kv.acked";
/// See [`ACKED`].
pub const ATTEMPTED: &str = "kv.attempted";

/// The store: the open log and the map it holds.
struct Store<F> {
    log: F,
    map: BTreeMap<String, u64>,
    unsynced: u64,
}

/// Called with the map after recovery and after every put (the simulation publishes it).
type OnChange = Box<dyn Fn(&BTreeMap<String, u64>) + Send + Sync>;

/// The service: a store on any providers. `ack_before_sync` plants a bug (it syncs only every
/// eighth put, yet acknowledges every put at once).
pub struct DurableKv<P: Providers> {
    store: Mutex<Store<<P::Storage as StorageProvider>::File>>,
    on_change: OnChange,
    ack_before_sync: bool,
}

impl<P: Providers> DurableKv<P> {
    /// Opens (or creates) the log, replays it, cuts off a torn tail, and is ready to serve.
    pub async fn recover(
        providers: &P,
        ack_before_sync: bool,
        on_change: impl Fn(&BTreeMap<String, u64>) + Send + Sync + 'static,
    ) -> std::io::Result<Self> {
        let mut log = providers
            .storage()
            .open(LOG, OpenOptions::read_write_create())
            .await?;
        let mut bytes = Vec::new();
        log.read_to_end(&mut bytes).await?;
        let (map, whole) = replay(&bytes);
        if whole < bytes.len() {
            // A torn or lost tail: make the log end at its last whole record, durably.
            log.set_len(whole as u64).await?;
            log.sync_all().await?;
        }
        log.seek(std::io::SeekFrom::Start(whole as u64)).await?;
        on_change(&map);
        Ok(Self {
            store: Mutex::new(Store {
                log,
                map,
                unsynced: 0,
            }),
            on_change: Box::new(on_change),
            ack_before_sync,
        })
    }
}

impl<P: Providers> KeyValue for DurableKv<P> {
    async fn put(&self, key: String, version: u64) -> Result<u64, KvError> {
        let storage = |e: std::io::Error| KvError::Storage(e.to_string());
        let mut store = self.store.lock().await;
        let stored = store.map.get(&key).copied().unwrap_or(0);
        if version <= stored {
            return Ok(stored);
        }
        store
            .log
            .write_all(&encode(&key, version))
            .await
            .map_err(storage)?;
        store.unsynced += 1;
        if !self.ack_before_sync || store.unsynced >= 8 {
            store.log.sync_data().await.map_err(storage)?;
            store.unsynced = 0;
        }
        store.map.insert(key, version);
        (self.on_change)(&store.map);
        Ok(version)
    }

    async fn get(&self, key: String) -> Result<Option<u64>, KvError> {
        Ok(self.store.lock().await.map.get(&key).copied())
    }
}

/// Starts the service on `address`: recovers the store, listens, serves. Keep both returned
/// values alive for as long as it should serve.
pub async fn start<P: Providers>(
    providers: P,
    address: NetworkAddress,
    ack_before_sync: bool,
    on_change: impl Fn(&BTreeMap<String, u64>) + Send + Sync + 'static,
) -> Result<(NetTransport, KeyValueServer), Box<dyn std::error::Error + Send + Sync>> {
    let store = DurableKv::recover(&providers, ack_before_sync, on_change).await?;
    let transport = NetTransportBuilder::new(providers)
        .local_address(address)
        .build_listening()
        .await?;
    let server = KeyValueServer::serve_well_known(&transport, store)?;
    Ok((transport, server))
}

// ---------------------------------------------------------------------------------------------
// The simulation test.

/// The server process: recover, serve until a graceful shutdown is asked for.
async fn server_process(ctx: ProcessContext, ack_before_sync: bool) {
    let address = NetworkAddress::new(ctx.ip, PORT);
    let state = ctx.state.clone();
    let boot = ctx.boot;
    let started = start(
        ctx.providers.clone(),
        address,
        ack_before_sync,
        move |map| {
            state.publish(SERVER_MAP, map.clone());
        },
    )
    .await;
    let Ok(serving) = started else {
        // A disk or network fault at boot: stay down until the next reboot.
        return;
    };
    let recovered = ctx
        .state
        .get::<BTreeMap<String, u64>>(SERVER_MAP)
        .is_some_and(|map| !map.is_empty());
    assert_sometimes!(
        boot > 1 && recovered,
        "the store recovered data after a reboot"
    );
    ctx.shutdown.requested().await;
    drop(serving);
}

/// Raises `map[key]` to `version` in the shared state.
fn raise(state: &StateHandle, name: &str, key: &str, version: u64) {
    state.update(name, |map: &mut BTreeMap<String, u64>| {
        let slot = map.entry(key.to_string()).or_insert(0);
        *slot = (*slot).max(version);
    });
}

/// A client: writes and reads its own keys until the chaos ends; every read is checked against
/// what was acknowledged before it and attempted before it returned.
async fn client(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let server = ctx
        .topology
        .address_of("kv-0", PORT)
        .ok_or("no process named kv-0")?;
    let kv = KeyValueClient::well_known(server.parse()?);
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    let keys: Vec<String> = (0..KEYS_PER_CLIENT)
        .map(|k| format!("{}/{k}", ctx.name))
        .collect();
    let mut attempted = vec![0u64; keys.len()];
    let mut acked = vec![0u64; keys.len()];
    let mut ops = 0;
    while ctx.chaos_active() && ops < 400 {
        ops += 1;
        let k = ctx.providers.random().random_range(0..keys.len());
        if ctx.providers.random().random_bool(0.7) {
            let version = attempted[k] + 1;
            attempted[k] = version;
            raise(&ctx.state, ATTEMPTED, &keys[k], version);
            let reply = kv
                .put(&transport, keys[k].clone(), version)
                .get_reply()
                .timeout(Duration::from_secs(5))
                .await;
            if let Ok(stored) = reply {
                assert_always!(stored >= version, "a put stores at least its version");
                acked[k] = acked[k].max(version);
                raise(&ctx.state, ACKED, &keys[k], version);
            }
        } else {
            let before = acked[k];
            if let Ok(read) = kv
                .get(&transport, keys[k].clone())
                .get_reply()
                .timeout(Duration::from_secs(5))
                .await
            {
                let read = read.unwrap_or(0);
                assert_always!(read >= before, "a read sees every acknowledged write");
                assert_always!(read <= attempted[k], "a read sees only written versions");
            }
        }
    }
    assert_sometimes!(
        acked.iter().any(|v| *v > 0),
        "a client had a write acknowledged"
    );
    Ok(())
}

/// After the faults: every key holds its acknowledged version or a later attempted one.
async fn client_check(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let server = ctx
        .topology
        .address_of("kv-0", PORT)
        .ok_or("no process named kv-0")?;
    let kv = KeyValueClient::well_known(server.parse()?);
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    let acked: BTreeMap<String, u64> = ctx.state.get(ACKED).unwrap_or_default();
    let attempted: BTreeMap<String, u64> = ctx.state.get(ATTEMPTED).unwrap_or_default();
    for k in 0..KEYS_PER_CLIENT {
        let key = format!("{}/{k}", ctx.name);
        let read = match kv.get(&transport, key.clone()).get_reply().await {
            Ok(read) => read.unwrap_or(0),
            Err(CallError::Service(error)) => return Err(error.into()),
            Err(CallError::Transport(error)) => return Err(format!("{key}: {error}").into()),
        };
        let low = acked.get(&key).copied().unwrap_or(0);
        let high = attempted.get(&key).copied().unwrap_or(0);
        if read < low || read > high {
            return Err(format!("{key} holds {read}; acknowledged {low}, attempted {high}").into());
        }
    }
    Ok(())
}

/// The invariant: the server never holds less than what was acknowledged (checked after every
/// event, so a recovery that loses an acknowledged write fails at the event that showed it).
fn no_acknowledged_write_lost(state: &StateHandle) -> Result<(), String> {
    let (Some(server), Some(acked)) = (
        state.get::<BTreeMap<String, u64>>(SERVER_MAP),
        state.get::<BTreeMap<String, u64>>(ACKED),
    ) else {
        return Ok(());
    };
    for (key, version) in &acked {
        let held = server.get(key).copied().unwrap_or(0);
        if held < *version {
            return Err(format!(
                "{key}: acknowledged version {version}, the server holds {held}"
            ));
        }
    }
    Ok(())
}

/// Crashes or gracefully reboots the server every 1 to 4 s during the chaos phase.
async fn crash_the_server(ctx: FaultContext) {
    let Ok(server) = ctx.control().process("kv-0") else {
        return;
    };
    while ctx.chaos_active() {
        let pause = ctx.providers.random().random_range(1_000..4_000);
        ctx.providers
            .time()
            .sleep(Duration::from_millis(pause))
            .await;
        if !ctx.chaos_active() {
            break;
        }
        let kind = if ctx.providers.random().random_bool(0.7) {
            RebootKind::Crash
        } else {
            RebootKind::Graceful
        };
        let down = ctx.providers.random().random_range(100..1_500);
        ctx.control()
            .reboot(server, kind, Some(Duration::from_millis(down)));
    }
}

/// The disk of a single-copy store: unsynced writes are lost or torn on a crash, nothing else
/// (a single copy cannot survive corruption, phantom or misdirected writes).
pub fn crash_only_storage() -> StorageConfiguration {
    let mut storage = StorageConfiguration::disabled();
    storage.crash_keep_unsynced_probability = 0.5;
    storage.torn_write_probability = 0.3;
    storage
}

/// The test: `seeds` seeds of 20 simulated seconds of faults, then a settle phase and the checks.
pub fn simulation(ack_before_sync: bool, seeds: usize) -> SimulationBuilder {
    SimulationBuilder::new(if ack_before_sync {
        "kv-service-bug"
    } else {
        "kv-service"
    })
    .process("kv", 1, move |ctx| server_process(ctx, ack_before_sync))
    .workload_with_check("client", 3, client, client_check)
    .invariant("no acknowledged write is lost", no_acknowledged_write_lost)
    .fault_injector("crash-the-server", crash_the_server)
    .network(NetworkConfiguration::default())
    .storage(crash_only_storage())
    .chaos_duration(Duration::from_secs(20))
    .iterations(IterationControl::FixedCount(seeds))
    .replay_command(&format!(
        "MOONPOOL_SEED={{seed}} cargo run --release -p moonpool --example kv_service -- --sim{}",
        if ack_before_sync { " --bug" } else { "" }
    ))
}

// ---------------------------------------------------------------------------------------------
// On Tokio.

/// Runs the service on Tokio over loopback with its log in `dir`: writes, reads, restarts the
/// server on the same directory and reads the data back. Returns the lines it printed.
pub async fn on_tokio(
    dir: &std::path::Path,
) -> Result<Vec<String>, Box<dyn std::error::Error + Send + Sync>> {
    let providers = TokioProviders::new().with_storage(TokioStorageProvider::with_root(dir));
    let mut lines = Vec::new();
    let loopback: NetworkAddress = "127.0.0.1:0".parse()?;
    let (server, serving) = start(providers.clone(), loopback, false, |_| {}).await?;
    let address = server.local_address().ok_or("the server has no address")?;
    lines.push(format!("serving on {address}, log in {}", dir.display()));
    let kv = KeyValueClient::well_known(address);
    let transport = NetTransportBuilder::new(providers.clone()).build()?;
    for (key, version) in [("apple", 1), ("apple", 2), ("pear", 5), ("apple", 1)] {
        let stored = kv.put(&transport, key.into(), version).get_reply().await?;
        lines.push(format!("put {key} = {version}: stored {stored}"));
    }
    // Restart the server: a new transport on a new port, the same files.
    drop(serving);
    server.shutdown();
    drop(server);
    let (server, _serving) = start(providers.clone(), loopback, false, |_| {}).await?;
    let address = server.local_address().ok_or("the server has no address")?;
    let kv = KeyValueClient::well_known(address);
    for key in ["apple", "pear", "plum"] {
        let read = kv.get(&transport, key.into()).get_reply().await?;
        lines.push(format!("after restart, get {key}: {read:?}"));
    }
    Ok(lines)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.iter().any(|a| a == "--sim") {
        let bug = args.iter().any(|a| a == "--bug");
        let seeds = match std::env::var("KV_SEEDS") {
            Err(_) => 100,
            Ok(value) => match value.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => {
                    eprintln!("kv_service: KV_SEEDS='{value}' is not a positive number of seeds");
                    std::process::exit(2);
                }
            },
        };
        let report = match simulation(bug, seeds).run() {
            Ok(report) => report,
            Err(error) => {
                eprintln!("kv_service: {error}");
                std::process::exit(2);
            }
        };
        println!("{report}");
        std::process::exit(i32::from(!report.is_success()));
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let runtime = tokio::runtime::Runtime::new().expect("a Tokio runtime");
    match runtime.block_on(on_tokio(dir.path())) {
        Ok(lines) => lines.iter().for_each(|line| println!("{line}")),
        Err(error) => {
            eprintln!("kv_service on Tokio: {error}");
            std::process::exit(1);
        }
    }
}
