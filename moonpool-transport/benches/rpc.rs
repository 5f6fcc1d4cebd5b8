//! RPC benchmarks that print their figures (run in release):
//!
//! ```sh
//! CARGO_TARGET_DIR=/work/target-transport cargo bench -p moonpool-transport --bench rpc
//! ```
//!
//! 1. Loopback TCP on Tokio, one request at a time (`get_reply`, 16-byte JSON request).
//! 2. Loopback TCP on Tokio, 64 requests in flight.
//! 3. Simulation, the shape of moonpool-sim's ping-pong benchmark: 1 server, 10 clients, 1,000
//!    sequential RPCs each, fixed 1 ms latency, no faults; next to the same shape with raw
//!    frames echoed over simulated TCP (no transport), for the ratio.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use moonpool_core::{
    Endpoint, NetworkAddress, NetworkProvider, Providers, TaskProvider, TcpListener, TimeProvider,
    TokioProviders, UID,
};
use moonpool_sim::{Locality, NetworkConfiguration, SimProviders, SimWorld, WorldConfig};
use moonpool_transport::{NetTransport, NetTransportBuilder};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: UID = UID::well_known(3);

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
struct Request {
    seq: u64,
}

async fn start_server<P: Providers>(providers: P, address: &str) -> NetTransport {
    let transport = NetTransportBuilder::new(providers.clone())
        .local_address(address.parse().unwrap())
        .build_listening()
        .await
        .unwrap();
    let stream = transport.register_stream_at::<Request, u64>(TOKEN).unwrap();
    providers.task().spawn("server", async move {
        while let Some((request, reply)) = stream.recv().await {
            reply.send(request.seq);
        }
    });
    transport
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `future` as a task on a 2-worker runtime (not on the `block_on` thread, which is not a
/// worker: every wake-up would cross threads).
fn on_runtime<F: std::future::Future<Output = f64> + Send + 'static>(future: F) -> f64 {
    runtime().block_on(async { tokio::spawn(future).await.unwrap() })
}

fn loopback_sequential(round_trips: u64) -> f64 {
    on_runtime(async move {
        let providers = TokioProviders::new();
        let server = start_server(providers.clone(), "127.0.0.1:0").await;
        let address = server.local_address().unwrap();
        let client = NetTransportBuilder::new(providers).build().unwrap();
        let rpc = client.client::<Request, u64>(Endpoint::new(address, TOKEN));
        for seq in 0..1_000 {
            rpc.get_reply(&Request { seq }).await.unwrap();
        }
        let start = Instant::now();
        for seq in 0..round_trips {
            assert_eq!(rpc.get_reply(&Request { seq }).await.unwrap(), seq);
        }
        round_trips as f64 / start.elapsed().as_secs_f64()
    })
}

fn loopback_pipelined(round_trips: u64, in_flight: usize) -> f64 {
    on_runtime(async move {
        let providers = TokioProviders::new();
        let server = start_server(providers.clone(), "127.0.0.1:0").await;
        let address: NetworkAddress = server.local_address().unwrap();
        let client = NetTransportBuilder::new(providers).build().unwrap();
        let rpc = client.client::<Request, u64>(Endpoint::new(address, TOKEN));
        let start = Instant::now();
        let mut pending = FuturesUnordered::new();
        let mut sent = 0u64;
        let mut done = 0u64;
        while done < round_trips {
            while pending.len() < in_flight && sent < round_trips {
                pending.push(rpc.get_reply(&Request { seq: sent }));
                sent += 1;
            }
            if let Some(result) = pending.next().await {
                result.unwrap();
                done += 1;
            }
        }
        let rate = round_trips as f64 / start.elapsed().as_secs_f64();
        assert_eq!(client.metrics().pending_replies, 0);
        rate
    })
}

fn sim_config() -> WorldConfig {
    WorldConfig {
        network: NetworkConfiguration::with_fixed_latency(Duration::from_millis(1)),
        time_budget: Duration::from_secs(1_000_000),
        ..WorldConfig::quiet()
    }
}

const SIM_CLIENTS: u32 = 10;
const SIM_ROUND_TRIPS: u64 = 1_000;

fn client_ip(c: u32) -> String {
    format!("10.0.1.{}", c + 1)
}

/// (wall time, events, task polls) of one simulated RPC ping-pong run.
fn sim_rpc_once() -> (Duration, u64, u64) {
    let mut world = SimWorld::with_config(1, sim_config()).unwrap();
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let _server = start_server(ctx.providers.clone(), "10.0.0.1:4500").await;
                std::future::pending::<()>().await;
            },
        )
        .unwrap();
    for c in 0..SIM_CLIENTS {
        world
            .add_workload(
                &format!("client-{c}"),
                &client_ip(c),
                |p: SimProviders| async move {
                    p.time().sleep(Duration::from_millis(1)).await;
                    let client = NetTransportBuilder::new(p).build().unwrap();
                    let rpc = client.client::<Request, u64>(Endpoint::new(
                        "10.0.0.1:4500".parse().unwrap(),
                        TOKEN,
                    ));
                    for seq in 0..SIM_ROUND_TRIPS {
                        assert_eq!(rpc.get_reply(&Request { seq }).await.unwrap(), seq);
                    }
                },
            )
            .unwrap();
    }
    let start = Instant::now();
    let summary = world.run().unwrap();
    (start.elapsed(), summary.events, summary.polls)
}

/// The same shape with raw 64-byte frames echoed over simulated TCP, as moonpool-sim's bench.
fn sim_raw_once() -> (Duration, u64, u64) {
    const PAYLOAD: usize = 64;
    let mut world = SimWorld::with_config(1, sim_config()).unwrap();
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let p = ctx.providers;
                let listener = p.network().bind("10.0.0.1:4500").await.unwrap();
                while let Ok((mut stream, _)) = listener.accept().await {
                    p.task().spawn("echo", async move {
                        let mut frame = vec![0u8; 4 + PAYLOAD];
                        while stream.read_exact(&mut frame).await.is_ok() {
                            if stream.write_all(&frame).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            },
        )
        .unwrap();
    for c in 0..SIM_CLIENTS {
        world
            .add_workload(
                &format!("client-{c}"),
                &client_ip(c),
                |p: SimProviders| async move {
                    p.time().sleep(Duration::from_millis(1)).await;
                    let mut stream = p.network().connect("10.0.0.1:4500").await.unwrap();
                    let frame = vec![7u8; 4 + PAYLOAD];
                    let mut reply = vec![0u8; 4 + PAYLOAD];
                    for _ in 0..SIM_ROUND_TRIPS {
                        stream.write_all(&frame).await.unwrap();
                        stream.read_exact(&mut reply).await.unwrap();
                    }
                },
            )
            .unwrap();
    }
    let start = Instant::now();
    let summary = world.run().unwrap();
    (start.elapsed(), summary.events, summary.polls)
}

fn median(mut runs: Vec<(Duration, u64, u64)>) -> (Duration, u64, u64) {
    runs.sort_by_key(|run| run.0);
    runs[runs.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = if quick { 100 } else { 1 };
    // `cargo bench -p moonpool-transport --bench rpc -- sim-only` skips the loopback figures
    // (for profiling the simulated path).
    let sim_only = std::env::args().any(|a| a == "sim-only");
    if !sim_only {
        loopback_figures(scale);
    }
    if quick {
        return;
    }
    simulation_figures();
}

fn loopback_figures(scale: u64) {
    let sequential: Vec<f64> = (0..3)
        .map(|_| loopback_sequential(30_000 / scale))
        .collect();
    let best = sequential.iter().copied().fold(0.0, f64::max);
    println!(
        "loopback TCP, 1 in flight: {:.0} round trips/s (best of 3; runs: {:.0?})",
        best, sequential
    );
    let pipelined: Vec<f64> = (0..3)
        .map(|_| loopback_pipelined(300_000 / scale, 64))
        .collect();
    let best = pipelined.iter().copied().fold(0.0, f64::max);
    println!(
        "loopback TCP, 64 in flight: {:.0} round trips/s (best of 3; runs: {:.0?})",
        best, pipelined
    );
}

fn simulation_figures() {
    let total = u64::from(SIM_CLIENTS) * SIM_ROUND_TRIPS;
    let (rpc_wall, rpc_events, rpc_polls) = median((0..7).map(|_| sim_rpc_once()).collect());
    let (raw_wall, raw_events, raw_polls) = median((0..7).map(|_| sim_raw_once()).collect());
    let rpc_rate = total as f64 / rpc_wall.as_secs_f64();
    let raw_rate = total as f64 / raw_wall.as_secs_f64();
    println!(
        "simulation, {SIM_CLIENTS} clients x {SIM_ROUND_TRIPS} sequential RPCs, 1 ms latency, no faults \
         (median of 7): {rpc_rate:.0} round trips/s ({rpc_events} events, {rpc_polls} task polls)"
    );
    println!(
        "simulation, same shape with raw 64-byte frames and no transport (median of 7): \
         {raw_rate:.0} round trips/s ({raw_events} events, {raw_polls} task polls); \
         the transport costs {:.2}x",
        raw_rate / rpc_rate
    );
}
