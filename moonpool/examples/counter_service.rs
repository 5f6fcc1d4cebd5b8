//! A counter service written once against `Providers`, run here on Tokio over real loopback TCP
//! with its log in a temporary directory.
//!
//! The server accepts connections, applies `+N` lines to a counter, appends each new value to a
//! log file and syncs it before answering; the clients send increments concurrently and check the
//! final value. Nothing in `serve` or `client` names Tokio: the same functions run inside the
//! simulator.
//!
//! Run with `cargo run --release -p moonpool --example counter_service`.
#![allow(clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use moonpool::{
    NetworkProvider, OpenOptions, Providers, StorageFile, StorageProvider, TaskProvider,
    TcpListener, TimeProvider, TokioProviders, TokioStorageProvider,
};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::sync::Mutex;

const CLIENTS: u64 = 8;
const INCREMENTS_PER_CLIENT: u64 = 50;

/// Serves `+N` requests forever: adds N, logs the new value durably, replies with it.
async fn serve<P: Providers>(
    providers: P,
    listener: <P::Network as NetworkProvider>::TcpListener,
) -> std::io::Result<()> {
    let log = providers
        .storage()
        .open("counter.log", OpenOptions::read_write_create().append(true))
        .await?;
    let state = Arc::new(Mutex::new((0u64, log)));
    loop {
        let (stream, peer) = listener.accept().await?;
        let state = Arc::clone(&state);
        providers.task().spawn(&format!("conn-{peer}"), async move {
            let (reader, mut writer) = tokio::io::split(stream);
            let mut lines = BufReader::new(reader).lines();
            while let Ok(Some(line)) = lines.next_line().await {
                let Some(amount) = line.strip_prefix('+').and_then(|n| n.parse::<u64>().ok())
                else {
                    let _ = writer.write_all(b"ERR bad request\n").await;
                    continue;
                };
                let value = {
                    let mut guard = state.lock().await;
                    guard.0 += amount;
                    let value = guard.0;
                    let log = &mut guard.1;
                    if log
                        .write_all(format!("{value}\n").as_bytes())
                        .await
                        .is_err()
                        || log.sync_data().await.is_err()
                    {
                        return;
                    }
                    value
                };
                if writer
                    .write_all(format!("{value}\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
    }
}

/// Sends `count` increments of 1 over one connection; returns the last value seen.
async fn client<P: Providers>(providers: P, address: String, count: u64) -> std::io::Result<u64> {
    let stream = providers.network().connect(&address).await?;
    let (reader, mut writer) = tokio::io::split(stream);
    let mut lines = BufReader::new(reader).lines();
    let mut last = 0;
    for _ in 0..count {
        writer.write_all(b"+1\n").await?;
        let reply = providers
            .time()
            .timeout(Duration::from_secs(5), lines.next_line())
            .await
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::TimedOut, e))??;
        last = reply
            .and_then(|line| line.parse().ok())
            .ok_or_else(|| std::io::Error::other("server closed or answered garbage"))?;
    }
    Ok(last)
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    let dir = tempfile::tempdir()?;
    let providers = TokioProviders::new().with_storage(TokioStorageProvider::with_root(dir.path()));
    let started = providers.time().now();

    let listener = providers.network().bind("127.0.0.1:0").await?;
    let address = listener.local_addr()?.to_string();
    let server = providers
        .task()
        .spawn("server", serve(providers.clone(), listener));

    let handles: Vec<_> = (0..CLIENTS)
        .map(|i| {
            providers.task().spawn(
                &format!("client-{i}"),
                client(providers.clone(), address.clone(), INCREMENTS_PER_CLIENT),
            )
        })
        .collect();
    let mut highest = 0;
    for handle in handles {
        let last = handle.await.map_err(std::io::Error::other)??;
        highest = highest.max(last);
    }
    server.abort();

    let mut log = providers
        .storage()
        .open("counter.log", OpenOptions::read_only())
        .await?;
    let logged_entries = {
        let mut text = String::new();
        tokio::io::AsyncReadExt::read_to_string(&mut log, &mut text).await?;
        text.lines().count()
    };
    let log_bytes = log.size().await?;

    let expected = CLIENTS * INCREMENTS_PER_CLIENT;
    println!("counter service on Tokio (real loopback TCP, real files)");
    println!("  clients                 {CLIENTS}");
    println!("  increments acknowledged {expected}");
    println!("  final counter           {highest}");
    println!("  durable log entries     {logged_entries} ({log_bytes} bytes)");
    println!(
        "  wall time               {:?}",
        providers.time().now() - started
    );
    if highest == expected && logged_entries as u64 == expected {
        println!("result: OK");
        Ok(())
    } else {
        println!("result: MISMATCH");
        Err(std::io::Error::other("counter mismatch"))
    }
}
