//! A calculator service in one trait: `#[service]` generates the server (an endpoint per
//! method, each served by its own task) and the client (data: the server's address and base
//! token). The client calls every method with several delivery modes and checks the answers;
//! division by zero and overflow come back as the service's own error, kept apart from
//! transport errors. `calculator_raw` is the same service written by hand on `RequestStream`.
//!
//! The same generic functions run on Tokio over real loopback TCP (default) and inside the
//! deterministic simulator with a chaotic network (`--sim`, optionally `--seed N`):
//!
//! ```sh
//! cargo run -p moonpool-transport --example calculator
//! cargo run -p moonpool-transport --example calculator -- --sim --seed 3
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::ExitCode;
use std::time::Duration;

use moonpool_core::{Endpoint, NetworkAddress, Providers, UID};
use moonpool_transport::{CallError, NetTransport, NetTransportBuilder, TransportError, service};
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub enum CalcError {
    DivisionByZero,
    Overflow,
}

impl std::fmt::Display for CalcError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CalcError::DivisionByZero => "division by zero",
            CalcError::Overflow => "overflow",
        })
    }
}

/// Integer arithmetic that says when it cannot answer.
#[service]
pub trait Calculator {
    async fn add(&self, a: i64, b: i64) -> Result<i64, CalcError>;
    async fn sub(&self, a: i64, b: i64) -> Result<i64, CalcError>;
    async fn mul(&self, a: i64, b: i64) -> Result<i64, CalcError>;
    async fn div(&self, a: i64, b: i64) -> Result<i64, CalcError>;
}

struct Checked;

impl Calculator for Checked {
    async fn add(&self, a: i64, b: i64) -> Result<i64, CalcError> {
        a.checked_add(b).ok_or(CalcError::Overflow)
    }
    async fn sub(&self, a: i64, b: i64) -> Result<i64, CalcError> {
        a.checked_sub(b).ok_or(CalcError::Overflow)
    }
    async fn mul(&self, a: i64, b: i64) -> Result<i64, CalcError> {
        a.checked_mul(b).ok_or(CalcError::Overflow)
    }
    async fn div(&self, a: i64, b: i64) -> Result<i64, CalcError> {
        if b == 0 {
            return Err(CalcError::DivisionByZero);
        }
        a.checked_div(b).ok_or(CalcError::Overflow)
    }
}

/// The base token the server serves at, so that a client needs only the server's address.
const CALCULATOR: UID = UID::new(0xCA1C_0000_0000_0000, 1);

/// Serves the calculator; returns the transport and the handle that keeps it served.
async fn start_server<P: Providers>(
    providers: P,
    address: NetworkAddress,
) -> Result<(NetTransport, CalculatorServer), TransportError> {
    let transport = NetTransportBuilder::new(providers)
        .local_address(address)
        .build_listening()
        .await?;
    let server = CalculatorServer::serve_at(&transport, CALCULATOR, Checked)?;
    Ok((transport, server))
}

/// Calls every method; returns the lines it printed.
async fn run_client<P: Providers>(
    providers: P,
    server: NetworkAddress,
) -> Result<Vec<String>, CallError<CalcError>> {
    let transport = NetTransportBuilder::new(providers).build()?;
    let calc = CalculatorClient::new(Endpoint::new(server, CALCULATOR));
    let mut lines = Vec::new();
    // At least once: fine, the methods are pure (idempotent).
    let sum = calc.add(&transport, 84, 2).get_reply().await?;
    let difference = calc.sub(&transport, 84, 2).get_reply().await?;
    // Bounded wait: give up if the server has been unreachable for 10 s.
    let product = calc
        .mul(&transport, 84, 2)
        .get_reply_unless_failed_for(Duration::from_secs(10))
        .await?;
    let quotient = calc.div(&transport, 84, 2).get_reply().await?;
    assert_eq!((sum, difference, product, quotient), (86, 82, 168, 42));
    lines.push(format!("84 + 2 = {sum}"));
    lines.push(format!("84 - 2 = {difference}"));
    lines.push(format!("84 * 2 = {product}"));
    lines.push(format!("84 / 2 = {quotient}"));
    // The service's own errors, apart from transport failures.
    let by_zero = calc.div(&transport, 1, 0).get_reply().await;
    assert_eq!(by_zero, Err(CallError::Service(CalcError::DivisionByZero)));
    lines.push(format!("1 / 0 = {by_zero:?}"));
    let overflow = calc.mul(&transport, i64::MAX, 2).get_reply().await;
    assert_eq!(overflow, Err(CallError::Service(CalcError::Overflow)));
    lines.push(format!("i64::MAX * 2 = {overflow:?}"));
    // At most once, retried by hand on a transport failure (safe: the method is pure).
    let mut attempts = 0;
    let fetched = loop {
        attempts += 1;
        match calc.add(&transport, 40, 2).try_get_reply().await {
            Ok(answer) => break answer,
            Err(CallError::Transport(error)) if attempts < 100 => {
                lines.push(format!(
                    "try_get_reply attempt {attempts}: {error}; retrying"
                ));
            }
            Err(error) => return Err(error),
        }
    };
    assert_eq!(fetched, 42);
    lines.push(format!(
        "40 + 2 = {fetched} (try_get_reply, {attempts} attempt(s))"
    ));
    Ok(lines)
}

/// Runs the example on Tokio over loopback TCP, printing what it did.
pub fn run_on_tokio() -> Result<(), String> {
    let (lines, address) = common::on_tokio(start_server, run_client)?;
    println!("calculator on Tokio over loopback TCP ({address}):");
    for line in lines {
        println!("  {line}");
    }
    Ok(())
}

/// Runs the example in a simulated world with a chaotic network, for `seed`.
pub fn run_in_simulation(seed: u64) -> Result<(), String> {
    let (lines, summary) = common::in_simulation(seed, start_server, run_client)?;
    println!(
        "calculator in simulation (seed {seed}, chaotic network; {:.3} s simulated, {} \
         events):",
        summary.sim_time.as_secs_f64(),
        summary.events
    );
    for line in lines {
        println!("  {line}");
    }
    Ok(())
}

fn main() -> ExitCode {
    common::main("calculator", run_on_tokio, run_in_simulation)
}
