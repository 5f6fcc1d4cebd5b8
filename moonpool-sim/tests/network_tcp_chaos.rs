//! Many seeds of request/response traffic under the swarm network chaos plus the TCP-layer faults
//! (`random_for_seed(seed).with_random_tcp_faults(seed)`): read clogs, random closes on reads,
//! loss as retransmission, loss bursts that kill connections, BDP-sized send buffers.
//!
//! Invariants: a reply whose checksum holds is exactly the reply to the request just sent (no
//! missing, duplicated or reordered bytes, whatever the faults); every client makes progress;
//! and over the seeds every TCP-layer fault fires. Seeds: `MOONPOOL_TCP_CHAOS_SEEDS` (default
//! 1000).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TaskProvider, TcpListener, TimeProvider};
use moonpool_sim::{Locality, NetworkConfiguration, SimWorld, WorldConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SERVERS: usize = 3;
const CLIENTS: usize = 4;
const REQUESTS: u64 = 60;

fn checksum(bytes: &[u8]) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

fn frame(seq: u64, value: u64) -> [u8; 24] {
    let mut frame = [0u8; 24];
    frame[..8].copy_from_slice(&seq.to_le_bytes());
    frame[8..16].copy_from_slice(&value.to_le_bytes());
    let check = checksum(&frame[..16]);
    frame[16..].copy_from_slice(&check.to_le_bytes());
    frame
}

fn parse(frame: &[u8; 24]) -> Option<(u64, u64)> {
    let check = u64::from_le_bytes(frame[16..].try_into().unwrap());
    (check == checksum(&frame[..16])).then(|| {
        (
            u64::from_le_bytes(frame[..8].try_into().unwrap()),
            u64::from_le_bytes(frame[8..16].try_into().unwrap()),
        )
    })
}

#[derive(Default)]
struct Totals {
    completed: u64,
    corrupt_replies: u64,
    violations: Vec<String>,
}

fn run_seed(seed: u64, totals: &Arc<Mutex<Totals>>) -> BTreeMap<&'static str, u64> {
    let network = NetworkConfiguration::random_for_seed(seed).with_random_tcp_faults(seed);
    let mut world = SimWorld::with_config(seed, {
        let mut cfg = WorldConfig::quiet();
        cfg.network = network;
        cfg
    })
    .unwrap();
    for server in 0..SERVERS {
        let ip = format!("10.0.1.{}", server + 1);
        let address = format!("{ip}:4500");
        world
            .add_process(
                &format!("server-{server}"),
                &ip,
                Locality::default(),
                move |ctx| {
                    let address = address.clone();
                    async move {
                        let Ok(listener) = ctx.providers.network().bind(&address).await else {
                            return;
                        };
                        while let Ok((mut stream, _)) = listener.accept().await {
                            drop(ctx.providers.task().spawn("serve", async move {
                                let mut request = [0u8; 24];
                                while stream.read_exact(&mut request).await.is_ok() {
                                    if parse(&request).is_none() {
                                        return; // corrupted on the way in: drop the connection
                                    }
                                    if stream.write_all(&request).await.is_err() {
                                        return;
                                    }
                                }
                            }));
                        }
                    }
                },
            )
            .unwrap();
    }
    for client in 0..CLIENTS {
        let totals = Arc::clone(totals);
        world
            .add_workload(
                &format!("client-{client}"),
                &format!("10.0.0.{}", client + 1),
                move |p| async move {
                    let time = p.time().clone();
                    let mut stream = None;
                    let mut seq = 0u64;
                    let mut attempts = 0u64;
                    while seq < REQUESTS && attempts < 20 * REQUESTS {
                        attempts += 1;
                        if stream.is_none() {
                            let server = (seq as usize + attempts as usize + client) % SERVERS;
                            let address = format!("10.0.1.{}:4500", server + 1);
                            match time
                                .timeout(Duration::from_secs(5), p.network().connect(&address))
                                .await
                            {
                                Ok(Ok(s)) => stream = Some(s),
                                _ => {
                                    time.sleep(Duration::from_millis(100)).await;
                                    continue;
                                }
                            }
                        }
                        let Some(s) = stream.as_mut() else {
                            continue;
                        };
                        let value = seq.wrapping_mul(0x9e37_79b9_7f4a_7c15) ^ client as u64;
                        let request = frame(seq, value);
                        let exchange = async {
                            s.write_all(&request).await?;
                            let mut reply = [0u8; 24];
                            s.read_exact(&mut reply).await?;
                            Ok::<_, std::io::Error>(reply)
                        };
                        match time.timeout(Duration::from_secs(3), exchange).await {
                            Ok(Ok(reply)) => match parse(&reply) {
                                Some((got_seq, got_value)) if (got_seq, got_value) == (seq, value) => {
                                    seq += 1;
                                    totals.lock().unwrap().completed += 1;
                                }
                                Some(other) => {
                                    totals.lock().unwrap().violations.push(format!(
                                        "seed {seed} client {client}: sent ({seq}, {value}), got {other:?}"
                                    ));
                                    return;
                                }
                                None => {
                                    totals.lock().unwrap().corrupt_replies += 1;
                                    stream = None;
                                }
                            },
                            // An error or a timeout: this connection is done, reconnect.
                            _ => stream = None,
                        }
                    }
                    if seq < REQUESTS {
                        totals.lock().unwrap().violations.push(format!(
                            "seed {seed} client {client}: only {seq} of {REQUESTS} requests done"
                        ));
                    }
                },
            )
            .unwrap();
    }
    let summary = world.run().unwrap();
    summary.faults
}

#[test]
fn slow_simulation_request_reply_under_tcp_faults() {
    let seeds: u64 = std::env::var("MOONPOOL_TCP_CHAOS_SEEDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000);
    let totals = Arc::new(Mutex::new(Totals::default()));
    let mut faults: BTreeMap<&'static str, u64> = BTreeMap::new();
    let mut seeds_with_tcp_faults = 0u64;
    for seed in 0..seeds {
        let fired = run_seed(seed, &totals);
        if fired.keys().any(|k| {
            k.starts_with("network.loss")
                || k.starts_with("network.read_clog")
                || k.starts_with("network.retransmit")
        }) {
            seeds_with_tcp_faults += 1;
        }
        for (name, count) in fired {
            *faults.entry(name).or_insert(0) += count;
        }
    }
    let totals = totals.lock().unwrap();
    println!(
        "{seeds} seeds, {} requests completed, {} corrupt replies detected, {} seeds hit by \
         TCP-layer faults; faults: {faults:#?}",
        totals.completed, totals.corrupt_replies, seeds_with_tcp_faults
    );
    assert!(totals.violations.is_empty(), "{:#?}", totals.violations);
    if seeds >= 100 {
        for name in [
            "network.loss",
            "network.retransmit",
            "network.read_clog",
            "network.loss_burst",
            "network.random_close_read",
        ] {
            assert!(
                faults.keys().any(|k| k.starts_with(name)),
                "{name} never fired: {faults:?}"
            );
        }
    }
}
