//! The calculator written by hand on the layer below `#[service]` (compare `calculator`): four
//! methods (add, sub, mul, div), each its own `RequestStream` at a token derived from one
//! interface id, all served by one task with one `moonpool_core::select!`, and a
//! `RequestClient` per method on the calling side.
//! The client calls every method, with several delivery modes, and checks the answers
//! (division by zero comes back as an application error inside the reply).
//!
//! The same generic functions run on Tokio over real loopback TCP (default) and inside the
//! deterministic simulator with a chaotic network (`--sim`, optionally `--seed N`):
//!
//! ```sh
//! cargo run -p moonpool-transport --example calculator_raw
//! cargo run -p moonpool-transport --example calculator_raw -- --sim --seed 3
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::process::ExitCode;
use std::time::Duration;

use moonpool_core::{Endpoint, NetworkAddress, Providers, TaskProvider, UID};
use moonpool_transport::{NetTransport, NetTransportBuilder, ReplyError, TransportError};
use serde::{Deserialize, Serialize};

/// The interface id; method `i` lives at `INTERFACE.adjusted(i)`.
const INTERFACE: UID = UID::new(0xCA1C_0000_0000_0000, 1);
const ADD: u32 = 0;
const SUB: u32 = 1;
const MUL: u32 = 2;
const DIV: u32 = 3;

#[derive(Debug, Clone, Copy, Serialize, Deserialize)]
struct Operands {
    a: i64,
    b: i64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
enum CalcError {
    DivisionByZero,
    Overflow,
}

type Answer = Result<i64, CalcError>;

fn method(index: u32) -> UID {
    INTERFACE.adjusted(index)
}

/// Registers the four methods and serves them from one task; returns the transport.
async fn start_server<P: Providers>(
    providers: P,
    address: NetworkAddress,
) -> Result<(NetTransport, ()), TransportError> {
    let transport = NetTransportBuilder::new(providers.clone())
        .local_address(address)
        .build_listening()
        .await?;
    let add = transport.register_stream_at::<Operands, Answer>(method(ADD))?;
    let sub = transport.register_stream_at::<Operands, Answer>(method(SUB))?;
    let mul = transport.register_stream_at::<Operands, Answer>(method(MUL))?;
    let div = transport.register_stream_at::<Operands, Answer>(method(DIV))?;
    providers.task().spawn("calculator", async move {
        loop {
            moonpool_core::select! {
                Some((x, reply)) = add.recv() => {
                    reply.send(x.a.checked_add(x.b).ok_or(CalcError::Overflow));
                }
                Some((x, reply)) = sub.recv() => {
                    reply.send(x.a.checked_sub(x.b).ok_or(CalcError::Overflow));
                }
                Some((x, reply)) = mul.recv() => {
                    reply.send(x.a.checked_mul(x.b).ok_or(CalcError::Overflow));
                }
                Some((x, reply)) = div.recv() => {
                    let answer = if x.b == 0 {
                        Err(CalcError::DivisionByZero)
                    } else {
                        x.a.checked_div(x.b).ok_or(CalcError::Overflow)
                    };
                    reply.send(answer);
                }
                else => return,
            }
        }
    });
    Ok((transport, ()))
}

/// Calls every method; returns the lines it printed.
async fn run_client<P: Providers>(
    providers: P,
    server: NetworkAddress,
) -> Result<Vec<String>, ReplyError> {
    let transport = NetTransportBuilder::new(providers).build()?;
    let call = |index| transport.client::<Operands, Answer>(Endpoint::new(server, method(index)));
    let (add, sub, mul, div) = (call(ADD), call(SUB), call(MUL), call(DIV));
    let mut lines = Vec::new();
    let x = Operands { a: 84, b: 2 };
    // At least once: fine, the methods are pure (idempotent).
    let sum = add.get_reply(&x).await?;
    let difference = sub.get_reply(&x).await?;
    // Bounded wait: give up if the server has been unreachable for 10 s.
    let product = mul
        .get_reply_unless_failed_for(&x, Duration::from_secs(10))
        .await?;
    let quotient = div.get_reply(&x).await?;
    let by_zero = div.get_reply(&Operands { a: 1, b: 0 }).await?;
    let overflow = mul.get_reply(&Operands { a: i64::MAX, b: 2 }).await?;
    assert_eq!(sum, Ok(86));
    assert_eq!(difference, Ok(82));
    assert_eq!(product, Ok(168));
    assert_eq!(quotient, Ok(42));
    assert_eq!(by_zero, Err(CalcError::DivisionByZero));
    assert_eq!(overflow, Err(CalcError::Overflow));
    lines.push(format!("84 + 2 = {sum:?}"));
    lines.push(format!("84 - 2 = {difference:?}"));
    lines.push(format!("84 * 2 = {product:?}"));
    lines.push(format!("84 / 2 = {quotient:?}"));
    lines.push(format!("1 / 0 = {by_zero:?}"));
    lines.push(format!("i64::MAX * 2 = {overflow:?}"));
    // At most once, retried by hand on an ambiguous failure (safe: the method is pure).
    let mut attempts = 0;
    let fetched = loop {
        attempts += 1;
        match add.try_get_reply(&Operands { a: 40, b: 2 }).await {
            Ok(answer) => break answer,
            Err(error) if attempts < 100 => {
                lines.push(format!(
                    "try_get_reply attempt {attempts}: {error}; retrying"
                ));
            }
            Err(error) => return Err(error),
        }
    };
    assert_eq!(fetched, Ok(42));
    lines.push(format!(
        "40 + 2 = {fetched:?} (try_get_reply, {attempts} attempt(s))"
    ));
    Ok(lines)
}

/// Runs the example on Tokio over loopback TCP, printing what it did.
pub fn run_on_tokio() -> Result<(), String> {
    let (lines, address) = common::on_tokio(start_server, run_client)?;
    println!("calculator_raw on Tokio over loopback TCP ({address}):");
    for line in lines {
        println!("  {line}");
    }
    Ok(())
}

/// Runs the example in a simulated world with a chaotic network, for `seed`.
pub fn run_in_simulation(seed: u64) -> Result<(), String> {
    let (lines, summary) = common::in_simulation(seed, start_server, run_client)?;
    println!(
        "calculator_raw in simulation (seed {seed}, chaotic network; {:.3} s simulated, {} \
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
    common::main("calculator_raw", run_on_tokio, run_in_simulation)
}
