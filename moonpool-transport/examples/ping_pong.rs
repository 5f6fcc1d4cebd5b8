//! Ping-pong with `#[service]`: a well-known service, so the client reaches it from the server's
//! address alone; the client sends 100 pings with `get_reply` and checks every answer.
//!
//! The same generic functions run on Tokio over real loopback TCP (default) and inside the
//! deterministic simulator with a chaotic network (`--sim`, optionally `--seed N`):
//!
//! ```sh
//! cargo run -p moonpool-transport --example ping_pong
//! cargo run -p moonpool-transport --example ping_pong -- --sim --seed 7
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::ExitCode;
use std::time::Duration;

use moonpool_core::{NetworkAddress, Providers, TimeProvider};
use moonpool_transport::{NetTransport, NetTransportBuilder, ReplyError, TransportError, service};
use serde::{Deserialize, Serialize};

const PINGS: u64 = 100;

#[derive(Debug, Serialize, Deserialize)]
pub struct Pong {
    seq: u64,
}

/// Answers pings. Well-known (index 3, the first free for applications): every process knows
/// where it is.
#[service(well_known = 3)]
pub trait PingPong {
    async fn ping(&self, seq: u64) -> Pong;
}

struct Ponger;

impl PingPong for Ponger {
    async fn ping(&self, seq: u64) -> Pong {
        Pong { seq }
    }
}

/// Starts a server at `address`; returns its transport (whose address has the real port) and
/// the handle that keeps the service served.
async fn start_server<P: Providers>(
    providers: P,
    address: NetworkAddress,
) -> Result<(NetTransport, PingPongServer), TransportError> {
    let transport = NetTransportBuilder::new(providers)
        .local_address(address)
        .build_listening()
        .await?;
    let server = PingPongServer::serve_well_known(&transport, Ponger)?;
    Ok((transport, server))
}

/// Sends `PINGS` pings, one at a time; returns the time they took on the providers' clock.
async fn run_client<P: Providers>(
    providers: P,
    server: NetworkAddress,
) -> Result<Duration, ReplyError> {
    let transport = NetTransportBuilder::new(providers.clone()).build()?;
    let pings = PingPongClient::well_known(server);
    let start = providers.time().now();
    for seq in 0..PINGS {
        let pong = pings.ping(&transport, seq).get_reply().await?;
        assert_eq!(pong.seq, seq, "pong for the wrong ping");
    }
    Ok(providers.time().now() - start)
}

/// Runs the example on Tokio over loopback TCP, printing what it did.
pub fn run_on_tokio() -> Result<(), String> {
    let (elapsed, address) = common::on_tokio(start_server, run_client)?;
    println!(
        "ping_pong on Tokio over loopback TCP: {PINGS} pings to {address} answered in \
         {:.2} ms",
        elapsed.as_secs_f64() * 1e3
    );
    Ok(())
}

/// Runs the example in a simulated world with a chaotic network, for `seed`.
pub fn run_in_simulation(seed: u64) -> Result<(), String> {
    let (elapsed, summary) = common::in_simulation(seed, start_server, run_client)?;
    println!(
        "ping_pong in simulation (seed {seed}, chaotic network): {PINGS} pings answered \
         in {:.2} ms of simulated time; {} events, faults fired: {:?}",
        elapsed.as_secs_f64() * 1e3,
        summary.events,
        summary.faults
    );
    Ok(())
}

fn main() -> ExitCode {
    common::main("ping_pong", run_on_tokio, run_in_simulation)
}
