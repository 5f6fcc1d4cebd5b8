//! What the transport examples share: running one server and one client on Tokio over loopback
//! TCP, or in a simulated world (`--sim`, optionally `--seed N`), with the same generic code.
//!
//! A server starts with `start_server(providers, address)`, which returns its transport and
//! whatever must stay alive for it to keep serving (a generated `...Server` handle, or `()` for
//! a raw `RequestStream` served by a spawned task).

use std::fmt::Display;
use std::future::Future;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

use moonpool_core::{NetworkAddress, TokioProviders};
use moonpool_sim::{Locality, RunSummary, SimProviders, SimWorld, WorldConfig};
use moonpool_transport::NetTransport;

/// The server's address in simulation.
const SIM_SERVER: &str = "10.0.0.1:4500";

/// Runs `on_tokio` by default, or `in_simulation(seed)` with `--sim`; reports a failure.
pub fn main(
    name: &str,
    on_tokio: impl FnOnce() -> Result<(), String>,
    in_simulation: impl FnOnce(u64) -> Result<(), String>,
) -> ExitCode {
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
            eprintln!("{name} failed: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Starts a server on an ephemeral loopback port and runs the client against it, on a 2-worker
/// Tokio runtime. Returns the client's result and the server's address.
pub fn on_tokio<T, K, E1, E2, S, C>(
    start_server: impl FnOnce(TokioProviders, NetworkAddress) -> S,
    run_client: impl FnOnce(TokioProviders, NetworkAddress) -> C,
) -> Result<(T, NetworkAddress), String>
where
    E1: Display,
    E2: Display,
    S: Future<Output = Result<(NetTransport, K), E1>>,
    C: Future<Output = Result<T, E2>>,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async {
        let providers = TokioProviders::new();
        let (server, _serving) = start_server(providers.clone(), "127.0.0.1:0".parse().unwrap())
            .await
            .map_err(|e| e.to_string())?;
        let address = server.local_address().ok_or("no address")?;
        let output = run_client(providers, address)
            .await
            .map_err(|e| e.to_string())?;
        Ok((output, address))
    })
}

/// Runs the server as a process and the client as a workload of a world with the default
/// (chaotic) network, for `seed`. Returns the client's result and the run's summary.
pub fn in_simulation<T, K, E1, E2, S, C>(
    seed: u64,
    start_server: impl Fn(SimProviders, NetworkAddress) -> S + Send + Sync + 'static,
    run_client: impl Fn(SimProviders, NetworkAddress) -> C + Send + Sync + 'static,
) -> Result<(T, RunSummary), String>
where
    T: Send + 'static,
    K: Send + 'static,
    E1: Display,
    E2: Display + Send + 'static,
    S: Future<Output = Result<(NetTransport, K), E1>> + Send + 'static,
    C: Future<Output = Result<T, E2>> + Send + 'static,
{
    let server: NetworkAddress = SIM_SERVER.parse().unwrap();
    let mut world =
        SimWorld::with_config(seed, WorldConfig::default()).map_err(|e| e.to_string())?;
    let start_server = Arc::new(start_server);
    world
        .add_process("server", "10.0.0.1", Locality::default(), move |ctx| {
            let started = start_server(ctx.providers, server);
            async move {
                let serving = match started.await {
                    Ok(serving) => serving,
                    Err(error) => {
                        eprintln!("server failed to start: {error}");
                        return;
                    }
                };
                // Serve until the world ends.
                let _serving = serving;
                std::future::pending::<()>().await;
            }
        })
        .map_err(|e| e.to_string())?;
    let outcome = Arc::new(Mutex::new(None));
    let slot = Arc::clone(&outcome);
    let run_client = Arc::new(run_client);
    world
        .add_workload("client", "10.0.0.2", move |providers| {
            let finished = run_client(providers, server);
            let slot = Arc::clone(&slot);
            async move {
                let result = finished.await;
                *slot.lock().unwrap() = Some(result);
            }
        })
        .map_err(|e| e.to_string())?;
    let summary = world.run().map_err(|e| e.to_string())?;
    let result = outcome
        .lock()
        .unwrap()
        .take()
        .ok_or("client did not finish")?;
    let output = result.map_err(|e| e.to_string())?;
    Ok((output, summary))
}
