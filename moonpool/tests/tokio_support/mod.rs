//! What the Tokio-mode cluster suites share (`actors_phase5_tokio`, `actors_reminders_tokio`):
//! a transport listening on a free loopback port, cluster and actor settings short enough for a
//! test over real TCP, a cluster process serving its tables from files, a two-worker runtime and a condition poll. Each file takes what it needs
//! (`mod tokio_support;`).
#![allow(dead_code, clippy::unwrap_used, clippy::field_reassign_with_default)]

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use moonpool::actors::{
    ActorClient, ActorConfig, ClusterConfig, ClusterServer, FileStateStore, MembershipView,
    StorageMembershipTable,
};
use moonpool::transport::{NetTransport, NetTransportBuilder};
use moonpool::{NetworkAddress, Providers, TimeProvider, TokioProviders};

/// A transport listening on a free port of 127.0.0.1.
pub async fn listening() -> NetTransport {
    NetTransportBuilder::new(TokioProviders::new())
        .local_address("127.0.0.1:0".parse().unwrap())
        .build_listening()
        .await
        .unwrap()
}

/// One-second grants, leases and failure timeout, heartbeats every 100 ms, 50 ms drift bound.
pub fn cluster_config() -> ClusterConfig {
    let mut config = ClusterConfig::default();
    config.grant_duration = Duration::from_secs(1);
    config.max_clock_drift = Duration::from_millis(50);
    config.membership_lease = Duration::from_secs(1);
    config.heartbeat_interval = Duration::from_millis(100);
    config.failure_timeout = Duration::from_secs(1);
    config
}

/// Calls time out after 2 s, directory requests after 1 s, retries back off 100 ms, a drain
/// waits 2 s at most.
pub fn actor_config() -> ActorConfig {
    let mut config = ActorConfig::default();
    config.call_timeout = Duration::from_secs(2);
    config.directory_timeout = Duration::from_secs(1);
    config.retry_backoff = Duration::from_millis(100);
    config.drain_timeout = Duration::from_secs(2);
    config
}

/// An external client of the nodes at `addresses` (a transport of its own, the nodes' service
/// base, 5 s per call).
pub fn gateway(addresses: &[NetworkAddress]) -> ActorClient {
    ActorClient::external_within(
        NetTransportBuilder::new(TokioProviders::new())
            .build()
            .unwrap(),
        MembershipView::new(1, addresses.iter().copied()),
        actor_config().service_base,
        Duration::from_secs(5),
        TokioProviders::new().time().clone(),
    )
}

/// A multi-threaded runtime of two workers with time and I/O.
pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Sleeps `ms` milliseconds of real time.
pub async fn sleep(ms: u64) {
    TokioProviders::new()
        .time()
        .sleep(Duration::from_millis(ms))
        .await;
}

/// Polls `condition` every 50 ms for at most `within`; its last answer.
pub async fn eventually(within: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let time = TokioProviders::new().time().clone();
    let deadline = time.now() + within;
    while time.now() < deadline {
        if condition() {
            return true;
        }
        time.sleep(Duration::from_millis(50)).await;
    }
    condition()
}

/// A cluster process over loopback: the membership table in `membership.json` of a directory,
/// actor state in files beside it, both served on a transport of their own.
pub struct ClusterProcess {
    /// The membership table the server answers from.
    pub table: StorageMembershipTable<TokioProviders>,
    /// The cluster process's transport (other servers may be added to it).
    pub transport: NetTransport,
    /// Where the nodes find the cluster process.
    pub address: NetworkAddress,
    /// The cluster server (dropping it stops serving).
    pub server: ClusterServer<TokioProviders>,
}

/// Loads the membership table and the state store from `dir` and serves them.
pub async fn cluster_process(dir: &Path) -> ClusterProcess {
    let providers = TokioProviders::new();
    let table = StorageMembershipTable::load(
        providers.clone(),
        dir.join("membership.json"),
        [],
        cluster_config().failure_timeout,
    )
    .await
    .unwrap();
    let transport = listening().await;
    let address = transport.local_address().unwrap();
    let store = FileStateStore::new(providers.storage().clone(), dir);
    let server = ClusterServer::serve(&transport, table.clone(), Arc::new(store)).unwrap();
    ClusterProcess {
        table,
        transport,
        address,
        server,
    }
}
