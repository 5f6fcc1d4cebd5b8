//! Helpers shared by the network test files: a world with fixed 1 ms latencies, an echo
//! server, a client workload that hands back its result, and a timed round trip.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TaskProvider, TcpListener, TimeProvider};
use moonpool_sim::{
    Locality, NetworkConfiguration, RunSummary, SimProviders, SimTcpStream, SimWorld, WorldConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const MS: Duration = Duration::from_millis(1);

pub fn world_with(seed: u64, tweak: impl FnOnce(&mut NetworkConfiguration)) -> SimWorld {
    let mut network = NetworkConfiguration::with_fixed_latency(MS);
    tweak(&mut network);
    SimWorld::with_config(seed, {
        let mut cfg = WorldConfig::quiet();
        cfg.network = network;
        cfg
    })
    .unwrap()
}

pub fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

/// A server that echoes every chunk it reads, on every connection.
pub fn add_echo_server(world: &mut SimWorld, name: &str, address: &'static str) {
    world
        .add_process(
            name,
            address.split(':').next().unwrap(),
            Locality::default(),
            move |ctx| async move {
                let Ok(listener) = ctx.providers.network().bind(address).await else {
                    return;
                };
                while let Ok((mut stream, _)) = listener.accept().await {
                    drop(ctx.providers.task().spawn("echo", async move {
                        let mut buffer = vec![0u8; 4096];
                        loop {
                            match stream.read(&mut buffer).await {
                                Ok(0) | Err(_) => return,
                                Ok(n) => {
                                    if stream.write_all(&buffer[..n]).await.is_err() {
                                        return;
                                    }
                                }
                            }
                        }
                    }));
                }
            },
        )
        .unwrap();
}

/// Runs `body` as the workload at 10.0.0.1 and returns what it produced plus the run summary.
pub fn run_client<T, F, Fut>(mut world: SimWorld, body: F) -> (T, RunSummary)
where
    T: Send + 'static,
    F: FnOnce(SimProviders) -> Fut,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let out = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&out);
    world
        .add_workload("client", "10.0.0.1", move |providers| {
            let future = body(providers);
            async move {
                let value = future.await;
                *slot.lock().unwrap() = Some(value);
            }
        })
        .unwrap();
    let summary = world.run().unwrap();
    let value = out.lock().unwrap().take().expect("workload finished");
    (value, summary)
}

pub async fn round_trip(
    providers: &SimProviders,
    stream: &mut SimTcpStream,
    payload: &[u8],
) -> Duration {
    let start = providers.time().now();
    stream.write_all(payload).await.unwrap();
    let mut reply = vec![0u8; payload.len()];
    stream.read_exact(&mut reply).await.unwrap();
    assert_eq!(reply, payload);
    providers.time().now() - start
}
