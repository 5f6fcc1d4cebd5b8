//! Ping-pong over the transport: a server answers `Ping` with `Pong`, a client sends 100 pings
//! with `get_reply` and checks every answer.
//!
//! The same generic functions run on Tokio over real loopback TCP (default) and inside the
//! deterministic simulator with a chaotic network (`--sim`, optionally `--seed N`):
//!
//! ```sh
//! cargo run -p moonpool-transport --example ping_pong
//! cargo run -p moonpool-transport --example ping_pong -- --sim --seed 7
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::ExitCode;
use std::time::Duration;

use moonpool_core::{
    Endpoint, NetworkAddress, Providers, TimeProvider, TokioProviders, UID, WellKnownToken,
};
use moonpool_sim::{Locality, SimWorld, WorldConfig};
use moonpool_transport::{NetTransport, NetTransportBuilder, ReplyError, TransportError};
use serde::{Deserialize, Serialize};

/// The ping endpoint: an application well-known token, known to clients without asking.
const PING: UID = UID::well_known(WellKnownToken::FirstAvailable.index());
const PINGS: u64 = 100;

#[derive(Debug, Serialize, Deserialize)]
struct Ping {
    seq: u64,
}

#[derive(Debug, Serialize, Deserialize)]
struct Pong {
    seq: u64,
}

/// Starts a server at `address`; returns its transport (whose address has the real port) once
/// the ping stream is registered. The serving loop runs in a spawned task.
async fn start_server<P: Providers>(
    providers: P,
    address: NetworkAddress,
) -> Result<NetTransport, TransportError> {
    let transport = NetTransportBuilder::new(providers.clone())
        .local_address(address)
        .build_listening()
        .await?;
    let pings = transport.register_stream_at::<Ping, Pong>(PING)?;
    moonpool_core::TaskProvider::spawn(providers.task(), "ping-server", async move {
        while let Some((ping, reply)) = pings.recv().await {
            reply.send(Pong { seq: ping.seq });
        }
    });
    Ok(transport)
}

/// Sends `PINGS` pings, one at a time; returns the time they took on the providers' clock.
async fn run_client<P: Providers>(
    providers: P,
    server: NetworkAddress,
) -> Result<Duration, ReplyError> {
    let transport = NetTransportBuilder::new(providers.clone()).build()?;
    let pings = transport.client::<Ping, Pong>(Endpoint::new(server, PING));
    let start = providers.time().now();
    for seq in 0..PINGS {
        let pong = pings.get_reply(&Ping { seq }).await?;
        assert_eq!(pong.seq, seq, "pong for the wrong ping");
    }
    Ok(providers.time().now() - start)
}

fn on_tokio() -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let providers = TokioProviders::new();
        let server = start_server(providers.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let address = server.local_address().ok_or("no address")?;
        let elapsed = run_client(providers, address)
            .await
            .map_err(|e| e.to_string())?;
        println!(
            "ping_pong on Tokio over loopback TCP: {PINGS} pings to {address} answered in {:.2} ms",
            elapsed.as_secs_f64() * 1e3
        );
        Ok(())
    })
}

fn in_simulation(seed: u64) -> Result<(), String> {
    let mut world =
        SimWorld::with_config(seed, WorldConfig::default()).map_err(|e| e.to_string())?;
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                if let Err(error) =
                    start_server(ctx.providers, "10.0.0.1:4500".parse().unwrap()).await
                {
                    eprintln!("server failed to start: {error}");
                }
            },
        )
        .map_err(|e| e.to_string())?;
    let outcome = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slot = std::sync::Arc::clone(&outcome);
    world
        .add_workload("client", "10.0.0.2", move |providers| async move {
            let result = run_client(providers, "10.0.0.1:4500".parse().unwrap()).await;
            *slot.lock().unwrap() = Some(result);
        })
        .map_err(|e| e.to_string())?;
    let summary = world.run().map_err(|e| e.to_string())?;
    let result = outcome
        .lock()
        .unwrap()
        .take()
        .ok_or("client did not finish")?;
    let elapsed = result.map_err(|e| e.to_string())?;
    println!(
        "ping_pong in simulation (seed {seed}, chaotic network): {PINGS} pings answered in {:.2} ms \
         of simulated time; {} events, faults fired: {:?}",
        elapsed.as_secs_f64() * 1e3,
        summary.events,
        summary.faults
    );
    Ok(())
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    let seed = args
        .iter()
        .position(|a| a == "--seed")
        .and_then(|i| args.get(i + 1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(1);
    let result = if args.iter().any(|a| a == "--sim") {
        in_simulation(seed)
    } else {
        on_tokio()
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("ping_pong failed: {error}");
            ExitCode::FAILURE
        }
    }
}
