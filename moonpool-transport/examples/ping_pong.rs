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

mod common;

use std::process::ExitCode;
use std::time::Duration;

use moonpool_core::{Endpoint, NetworkAddress, Providers, TimeProvider, UID, WellKnownToken};
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

fn main() -> ExitCode {
    common::main(
        "ping_pong",
        || {
            let (elapsed, address) = common::on_tokio(start_server, run_client)?;
            println!(
                "ping_pong on Tokio over loopback TCP: {PINGS} pings to {address} answered in \
                 {:.2} ms",
                elapsed.as_secs_f64() * 1e3
            );
            Ok(())
        },
        |seed| {
            let (elapsed, summary) = common::in_simulation(seed, start_server, run_client)?;
            println!(
                "ping_pong in simulation (seed {seed}, chaotic network): {PINGS} pings answered \
                 in {:.2} ms of simulated time; {} events, faults fired: {:?}",
                elapsed.as_secs_f64() * 1e3,
                summary.events,
                summary.faults
            );
            Ok(())
        },
    )
}
