//! A calculator service with four methods (add, sub, mul, div), each its own request stream at a
//! token derived from one interface id, all served by one task with one `moonpool_core::select!`.
//! The client calls every method, with several delivery modes, and checks the answers
//! (division by zero comes back as an application error inside the reply).
//!
//! The same generic functions run on Tokio over real loopback TCP (default) and inside the
//! deterministic simulator with a chaotic network (`--sim`, optionally `--seed N`):
//!
//! ```sh
//! cargo run -p moonpool-transport --example calculator
//! cargo run -p moonpool-transport --example calculator -- --sim --seed 3
//! ```
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::ExitCode;
use std::time::Duration;

use moonpool_core::{Endpoint, NetworkAddress, Providers, TaskProvider, TokioProviders, UID};
use moonpool_sim::{Locality, SimWorld, WorldConfig};
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
) -> Result<NetTransport, TransportError> {
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
    Ok(transport)
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
        let lines = run_client(providers, address)
            .await
            .map_err(|e| e.to_string())?;
        println!("calculator on Tokio over loopback TCP ({address}):");
        for line in lines {
            println!("  {line}");
        }
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
    let lines = result.map_err(|e| e.to_string())?;
    println!(
        "calculator in simulation (seed {seed}, chaotic network; {:.3} s simulated, {} events):",
        summary.sim_time.as_secs_f64(),
        summary.events
    );
    for line in lines {
        println!("  {line}");
    }
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
            eprintln!("calculator failed: {error}");
            ExitCode::FAILURE
        }
    }
}
