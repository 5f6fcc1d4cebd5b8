//! One client transport calling a `#[service]` on more servers than the transport remembers
//! peers for (16): every server answers, those past the sixteenth through a peer looked up per
//! call, on Tokio over loopback TCP and in simulation.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{NetworkAddress, Providers, TokioProviders};
use moonpool_sim::{SimWorld, WorldConfig};
use moonpool_transport::{NetTransport, NetTransportBuilder, service};

const SERVERS: u16 = 24;

#[service]
pub trait Named {
    async fn name(&self) -> u16;
}

struct Server(u16);

impl Named for Server {
    async fn name(&self) -> u16 {
        self.0
    }
}

async fn call_every_server<P: Providers>(providers: P, address: impl Fn(u16) -> NetworkAddress) {
    let mut servers: Vec<(NetTransport, NamedServer)> = Vec::new();
    for i in 0..SERVERS {
        let transport = NetTransportBuilder::new(providers.clone())
            .local_address(address(i))
            .build_listening()
            .await
            .unwrap();
        let serving = NamedServer::serve(&transport, Server(i)).unwrap();
        servers.push((transport, serving));
    }
    let caller = NetTransportBuilder::new(providers).build().unwrap();
    for round in 0..3 {
        for (i, (_, serving)) in servers.iter().enumerate() {
            let client = serving.client();
            let answer = if round == 1 {
                client.name(&caller).try_get_reply().await
            } else {
                client.name(&caller).get_reply().await
            };
            assert_eq!(answer, Ok(u16::try_from(i).unwrap()), "round {round}");
        }
    }
    assert_eq!(caller.metrics().peers, usize::from(SERVERS));
}

#[test]
fn test_a_client_reaches_more_servers_than_it_remembers_on_tokio() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(call_every_server(TokioProviders::new(), |_| {
        "127.0.0.1:0".parse().unwrap()
    }));
}

#[test]
fn test_a_client_reaches_more_servers_than_it_remembers_in_simulation() {
    let mut world = SimWorld::with_config(5, {
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
                call_every_server(providers, |i| {
                    format!("10.0.0.2:{}", 4500 + i).parse().unwrap()
                })
                .await;
                *finished.lock().unwrap() = true;
            }
        })
        .unwrap();
    world.run().unwrap();
    assert!(*done.lock().unwrap());
}
