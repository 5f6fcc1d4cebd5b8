//! `#[service(id = N)]`: a pinned interface id makes the tokens independent of the trait's name.
//! The pinned value is fixed (clients of deployed services compute it); a renamed copy of the
//! trait with the same id calls the original's server over loopback TCP and in simulation; two
//! services that pin one id clash when served at one base (`TokenInUse`); unpinned ids follow
//! the trait's name.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{Endpoint, NetworkAddress, Providers, TokioProviders, UID};
use moonpool_sim::{SimWorld, WorldConfig};
use moonpool_transport::interface::{method_token, pinned_interface_id};
use moonpool_transport::{NetTransport, NetTransportBuilder, ReplyError, TransportError, service};

/// A store whose tokens must not change when the code is renamed.
#[service(id = 0x6b76_0001)]
pub trait Store {
    async fn get(&self, key: String) -> u64;
    async fn put(&self, key: String, value: u64) -> ();
}

/// The same service in a later version of the code: trait and methods renamed, same id.
#[service(id = 0x6b76_0001)]
pub trait RenamedStore {
    async fn fetch(&self, key: String) -> u64;
    async fn keep(&self, key: String, value: u64) -> ();
}

/// Another service that pins the same id by mistake.
#[service(id = 0x6b76_0001u64)]
pub trait Clashing {
    async fn ping(&self) -> u64;
}

/// Unpinned: the id is a hash of the trait.
#[service]
pub trait Hashed {
    async fn get(&self, key: String) -> u64;
}

/// `Hashed` renamed.
#[service]
pub trait HashedRenamed {
    async fn get(&self, key: String) -> u64;
}

#[derive(Default)]
struct Memory(Mutex<Vec<(String, u64)>>);

impl Store for Memory {
    async fn get(&self, key: String) -> u64 {
        let entries = self.0.lock().unwrap();
        entries
            .iter()
            .rev()
            .find(|(k, _)| *k == key)
            .map_or(0, |(_, v)| *v)
    }
    async fn put(&self, key: String, value: u64) {
        self.0.lock().unwrap().push((key, value));
    }
}

struct Pong;

impl Clashing for Pong {
    async fn ping(&self) -> u64 {
        1
    }
}

#[test]
fn test_the_pinned_id_is_made_from_the_number_alone() {
    assert_eq!(StoreClient::INTERFACE_ID, pinned_interface_id(0x6b76_0001));
    // Pinned: a change here changes the tokens of every deployed service with this id.
    assert_eq!(
        StoreClient::INTERFACE_ID,
        UID::new(0xc9a8_f4e2_4bca_266f, 0x06b2_b6aa_386f_4018)
    );
    assert_eq!(RenamedStoreClient::INTERFACE_ID, StoreClient::INTERFACE_ID);
    assert_eq!(ClashingClient::INTERFACE_ID, StoreClient::INTERFACE_ID);
    let base = UID::new(0xABCD, 0x1234);
    for index in 0..2 {
        assert_eq!(
            method_token(base, StoreClient::INTERFACE_ID, index),
            method_token(base, RenamedStoreClient::INTERFACE_ID, index)
        );
    }
    // Without a pinned id, renaming the trait changes the id (and so every token).
    assert_ne!(
        HashedClient::INTERFACE_ID,
        HashedRenamedClient::INTERFACE_ID
    );
    assert_ne!(HashedClient::INTERFACE_ID, StoreClient::INTERFACE_ID);
}

/// Serves `Store` on a listening transport at `address`; a renamed client on a second
/// transport writes and reads through it.
async fn renamed_client_calls<P: Providers>(providers: P, address: NetworkAddress) {
    let server: NetTransport = NetTransportBuilder::new(providers.clone())
        .local_address(address)
        .build_listening()
        .await
        .unwrap();
    let base = UID::new(0x5709E, 7);
    let _serving = StoreServer::serve_at(&server, base, Memory::default()).unwrap();
    let transport = NetTransportBuilder::new(providers).build().unwrap();
    let renamed = RenamedStoreClient::new(Endpoint::new(server.local_address().unwrap(), base));
    renamed
        .keep(&transport, "a".into(), 41)
        .get_reply()
        .await
        .unwrap();
    assert_eq!(
        renamed.fetch(&transport, "a".into()).get_reply().await,
        Ok(41)
    );
    // An unpinned client of the same shape finds nothing there.
    let hashed = HashedClient::new(renamed.endpoint());
    assert!(matches!(
        hashed.get(&transport, "a".into()).get_reply().await,
        Err(ReplyError::EndpointNotFound { .. })
    ));
}

#[test]
fn test_a_renamed_client_calls_the_pinned_service_on_tokio() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(renamed_client_calls(
        TokioProviders::new(),
        "127.0.0.1:0".parse().unwrap(),
    ));
}

#[test]
fn test_a_renamed_client_calls_the_pinned_service_in_simulation() {
    let mut world = SimWorld::with_config(3, {
        let mut cfg = WorldConfig::quiet();
        cfg.time_budget = Duration::from_secs(60);
        cfg
    })
    .unwrap();
    let done = Arc::new(Mutex::new(false));
    let finished = Arc::clone(&done);
    world
        .add_workload("node", "10.0.0.2", move |providers| {
            let finished = Arc::clone(&finished);
            async move {
                renamed_client_calls(providers, "10.0.0.2:4500".parse().unwrap()).await;
                *finished.lock().unwrap() = true;
            }
        })
        .unwrap();
    world.run().unwrap();
    assert!(*done.lock().unwrap());
}

#[test]
fn test_two_services_pinning_one_id_clash_at_one_base() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let transport = NetTransportBuilder::new(TokioProviders::new())
            .local_address("127.0.0.1:0".parse().unwrap())
            .build_listening()
            .await
            .unwrap();
        let base = UID::new(0xC1A5, 1);
        let store = StoreServer::serve_at(&transport, base, Memory::default()).unwrap();
        let clash = ClashingServer::serve_at(&transport, base, Pong);
        let expected = method_token(base, StoreClient::INTERFACE_ID, 0);
        assert!(
            matches!(clash, Err(TransportError::TokenInUse { token }) if token == expected),
            "{clash:?}"
        );
        // The failed start left the first service whole.
        assert!(store.is_serving());
        let client = store.client();
        let caller = NetTransportBuilder::new(TokioProviders::new())
            .build()
            .unwrap();
        client
            .put(&caller, "k".into(), 5)
            .get_reply()
            .await
            .unwrap();
        assert_eq!(client.get(&caller, "k".into()).get_reply().await, Ok(5));
        // At another base both are served.
        let other = ClashingServer::serve_at(&transport, UID::new(0xC1A5, 2), Pong).unwrap();
        assert_eq!(other.client().ping(&caller).get_reply().await, Ok(1));
    });
}
