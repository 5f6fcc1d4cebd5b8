//! Helpers shared by the storage test files: a world with a given storage configuration, a
//! workload run to its end, files created and read back, and a reboot scenario.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeMap;
use std::future::Future;
use std::io::SeekFrom;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{OpenOptions, Providers, StorageProvider, TimeProvider};
use moonpool_sim::{
    Locality, ProcessId, RebootKind, RunSummary, SimFile, SimProviders, SimWorld,
    StorageConfiguration, WorldConfig, WorldControl,
};
use tokio::io::{AsyncReadExt, AsyncSeekExt};

pub const MS: Duration = Duration::from_millis(1);

// ---------------------------------------------------------------------------------------------
// Helpers

pub fn world(seed: u64, storage: StorageConfiguration) -> SimWorld {
    SimWorld::with_config(seed, {
        let mut cfg = WorldConfig::quiet();
        cfg.storage = storage;
        cfg
    })
    .unwrap()
}

/// A faultless disk (10 µs per operation, a crash keeps exactly the synced data), tweaked.
pub fn storage_with(tweak: impl FnOnce(&mut StorageConfiguration)) -> StorageConfiguration {
    let mut config = StorageConfiguration::fast_local();
    tweak(&mut config);
    config
}

/// Runs one workload at 10.0.0.1 named "driver"; returns the summary and the body's output.
pub fn run_workload<T, F, Fut>(seed: u64, storage: StorageConfiguration, body: F) -> (RunSummary, T)
where
    F: FnOnce(SimProviders) -> Fut,
    Fut: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let out = Arc::new(Mutex::new(None));
    let mut world = world(seed, storage);
    let slot = Arc::clone(&out);
    world
        .add_workload("driver", "10.0.0.1", move |providers| {
            let body = body(providers);
            async move {
                let value = body.await;
                *slot.lock().unwrap() = Some(value);
            }
        })
        .unwrap();
    let summary = world.run().unwrap();
    let value = out.lock().unwrap().take().expect("the workload finished");
    (summary, value)
}

/// 64-bit FNV-1a: the checksum the tests use to detect corruption.
pub fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

/// Non-zero bytes that differ from position to position.
pub fn pattern(len: usize, salt: u8) -> Vec<u8> {
    (0..len)
        .map(|i| ((i as u8).wrapping_mul(31).wrapping_add(salt)) | 1)
        .collect()
}

pub fn fault(summary: &RunSummary, kind: &str) -> u64 {
    summary.faults.get(kind).copied().unwrap_or(0)
}

pub async fn create(providers: &SimProviders, path: &str) -> SimFile {
    providers
        .storage()
        .open(path, OpenOptions::read_write_create())
        .await
        .unwrap()
}

pub async fn read_all(providers: &SimProviders, path: &str) -> Vec<u8> {
    let mut file = providers
        .storage()
        .open(path, OpenOptions::read_only())
        .await
        .unwrap();
    let mut contents = Vec::new();
    file.read_to_end(&mut contents).await.unwrap();
    contents
}

pub async fn read_at(file: &mut SimFile, offset: u64, len: usize) -> Vec<u8> {
    file.seek(SeekFrom::Start(offset)).await.unwrap();
    let mut buffer = vec![0u8; len];
    file.read_exact(&mut buffer).await.unwrap();
    buffer
}

/// Waits (polling the simulated clock) until `ready` holds.
pub async fn wait_until(providers: &SimProviders, ready: impl Fn() -> bool) {
    while !ready() {
        providers.time().sleep(MS).await;
    }
}

/// A server at 10.0.0.2 whose boot `n` runs `boot(providers, n)` and records its output; a
/// driver waits for boot 1, calls `before` (fault injection), takes the server down by `kind`,
/// and waits for boot 2's output. Returns the summary and the outputs by boot.
pub fn reboot_scenario<T, B, Fut>(
    seed: u64,
    storage: StorageConfiguration,
    kind: RebootKind,
    before: impl FnOnce(&WorldControl, ProcessId) + Send + 'static,
    boot: B,
) -> (RunSummary, BTreeMap<u64, T>)
where
    T: Send + 'static,
    B: Fn(SimProviders, u64) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = T> + Send + 'static,
{
    let reports: Arc<Mutex<BTreeMap<u64, T>>> = Arc::new(Mutex::new(BTreeMap::new()));
    let mut world = world(seed, storage);
    let boot = Arc::new(boot);
    let server_reports = Arc::clone(&reports);
    let server = world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let body = boot(ctx.providers.clone(), ctx.boot);
            let reports = Arc::clone(&server_reports);
            async move {
                let value = body.await;
                reports.lock().unwrap().insert(ctx.boot, value);
                std::future::pending::<()>().await;
            }
        })
        .unwrap();
    let driver_reports = Arc::clone(&reports);
    world
        .add_workload("driver", "10.0.0.1", move |providers| async move {
            let seen = |boot: u64| {
                let reports = Arc::clone(&driver_reports);
                move || reports.lock().unwrap().contains_key(&boot)
            };
            wait_until(&providers, seen(1)).await;
            before(providers.control(), server);
            providers.control().reboot(server, kind, Some(10 * MS));
            wait_until(&providers, seen(2)).await;
        })
        .unwrap();
    let summary = world.run().unwrap();
    let reports = std::mem::take(&mut *reports.lock().unwrap());
    (summary, reports)
}
