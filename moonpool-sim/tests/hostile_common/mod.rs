//! What the hostile suites of world reuse (`hostile_reuse.rs`) and of the watchdog after reuse
//! (`hostile_watchdog.rs`) share: an echo world with a file open, runs on fresh threads, a world
//! that leaks its handles, a runner whose seeds partly fail.
#![allow(
    unused_imports,
    dead_code,
    clippy::unwrap_used,
    clippy::expect_used,
    missing_docs
)]

use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};
use std::time::Duration;

use moonpool_core::{
    JoinHandle, NetworkProvider, OpenOptions, Providers, RandomProvider, StorageProvider,
    TaskProvider, TcpListener, TimeProvider,
};
use moonpool_sim::{
    IterationControl, Locality, SimProviders, SimWorld, SimulationBuilder, WorldConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Echoes every connection, keeps a file open.
pub async fn server(providers: SimProviders) {
    let Ok(listener) = providers.network().bind("10.0.0.1:4500").await else {
        return;
    };
    let _log = providers
        .storage()
        .open("server.log", OpenOptions::read_write_create())
        .await
        .ok();
    while let Ok((mut stream, _)) = listener.accept().await {
        drop(providers.task().spawn("echo", async move {
            let mut buffer = [0u8; 97];
            loop {
                match stream.read(&mut buffer).await {
                    Ok(n) if n > 0 => {
                        if stream.write_all(&buffer[..n]).await.is_err() {
                            return;
                        }
                    }
                    _ => return,
                }
            }
        }));
    }
}

/// Random-sized round trips, then leaves a reader, a sleeper and a file open.
pub async fn client(providers: SimProviders) {
    let time = providers.time().clone();
    let random = providers.random().clone();
    let connected = time
        .timeout(
            Duration::from_secs(5),
            providers.network().connect("10.0.0.1:4500"),
        )
        .await;
    if let Ok(Ok(mut stream)) = connected {
        for round in 0..6u8 {
            let len = random.random_range(1..200usize);
            let frame = vec![round; len];
            let mut reply = vec![0u8; len];
            let trip = time
                .timeout(Duration::from_secs(5), async {
                    stream.write_all(&frame).await?;
                    stream.read_exact(&mut reply).await
                })
                .await;
            if !matches!(trip, Ok(Ok(_))) {
                break;
            }
        }
        drop(providers.task().spawn("holder", async move {
            let mut byte = [0u8; 1];
            let _ = stream.read(&mut byte).await;
        }));
    }
    let sleeper = time.clone();
    drop(providers.task().spawn("sleeper", async move {
        sleeper.sleep(Duration::from_secs(3_600)).await;
    }));
    if let Ok(mut file) = providers
        .storage()
        .open("client.log", OpenOptions::read_write_create())
        .await
    {
        let _ = file.write_all(b"left open").await;
        drop(providers.task().spawn("file-holder", async move {
            std::future::pending::<()>().await;
            drop(file);
        }));
    }
}

pub fn config(chaotic: bool) -> WorldConfig {
    let mut config = if chaotic {
        WorldConfig::default()
    } else {
        WorldConfig::quiet()
    };
    config.record_trace = true;
    config
}

/// A world of the echo server and client, not yet run.
pub fn echo_world(seed: u64, chaotic: bool) -> SimWorld {
    let mut world = SimWorld::with_config(seed, config(chaotic)).unwrap();
    world
        .add_process("server", "10.0.0.1", Locality::default(), |ctx| {
            server(ctx.providers)
        })
        .unwrap();
    world.add_workload("client", "10.0.0.2", client).unwrap();
    world
}

/// Everything the echo world of `seed` tells about its run.
pub fn echo_run(seed: u64, chaotic: bool) -> String {
    let mut world = echo_world(seed, chaotic);
    format!("{:?}", world.run())
}

/// `run` on a new thread (an empty spare).
pub fn fresh<T: Send + 'static>(run: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::spawn(run).join().expect("the fresh thread")
}

/// The echo world of each seed on a fresh thread.
pub fn fresh_echo(seeds: &[u64], chaotic: bool) -> Vec<String> {
    let seeds = seeds.to_vec();
    fresh(move || seeds.iter().map(|&s| echo_run(s, chaotic)).collect())
}

pub const SEEDS: [u64; 3] = [11, 12, 11];

/// `attack` then the echo seeds, on one new thread; equal to the seeds on a fresh thread.
pub fn after(attack: impl FnOnce() + Send + 'static, chaotic: bool) {
    let expected = fresh_echo(&SEEDS, chaotic);
    let got = fresh(move || {
        attack();
        SEEDS
            .iter()
            .map(|&s| echo_run(s, chaotic))
            .collect::<Vec<_>>()
    });
    for (index, (want, got)) in expected.iter().zip(&got).enumerate() {
        assert_eq!(want, got, "seed {} after the attack differs", SEEDS[index]);
    }
    assert!(expected[0].contains("Ok(RunSummary"), "{}", expected[0]);
}

/// What a world's task leaked out of it: its waker (taken while pending), its providers, a join
/// handle of one of its pending tasks.
pub struct Leaks {
    pub waker: Option<Waker>,
    pub providers: Option<SimProviders>,
    pub join: Option<JoinHandle<u32>>,
}

/// Runs a world that leaks its waker, providers and a join handle, and drops it.
pub fn leaky_world(keep_providers: bool) -> Leaks {
    let slot: Arc<Mutex<Leaks>> = Arc::new(Mutex::new(Leaks {
        waker: None,
        providers: None,
        join: None,
    }));
    let mut world = echo_world(77, false);
    let out = Arc::clone(&slot);
    world
        .add_workload("leaker", "10.0.0.3", move |providers| async move {
            let time = providers.time().clone();
            let join = providers.task().spawn("pending", async move {
                time.sleep(Duration::from_secs(10_000)).await;
                7u32
            });
            let out2 = Arc::clone(&out);
            drop(providers.task().spawn("waker-leaker", async move {
                std::future::poll_fn(|cx| {
                    out2.lock().unwrap().waker = Some(cx.waker().clone());
                    Poll::<()>::Pending
                })
                .await;
            }));
            providers.time().sleep(Duration::from_millis(1)).await;
            let mut leaks = out.lock().unwrap();
            leaks.join = Some(join);
            if keep_providers {
                leaks.providers = Some(providers.clone());
            }
        })
        .unwrap();
    world.run().unwrap();
    drop(world);
    let mut leaks = slot.lock().unwrap();
    Leaks {
        waker: leaks.waker.take(),
        providers: leaks.providers.take(),
        join: leaks.join.take(),
    }
}

/// The echo world of `seed` with one more workload that uses `leaks` (an old world's) while the
/// new world runs: wakes the old waker, spawns and sleeps through the old providers, polls the
/// old join handle.
pub fn run_using_leaks(seed: u64, leaks: Leaks) -> String {
    let mut world = echo_world(seed, false);
    let leaks = Arc::new(Mutex::new(Some(leaks)));
    world
        .add_workload("ghost", "10.0.0.4", move |providers| async move {
            let leaks = leaks.lock().unwrap().take();
            let Some(Leaks {
                waker,
                providers: old,
                join,
            }) = leaks
            else {
                return;
            };
            providers.time().sleep(Duration::from_millis(2)).await;
            if let Some(waker) = &waker {
                waker.wake_by_ref();
            }
            if let Some(old) = &old {
                let ghost = old.task().spawn("ghost-task", async { 1u8 });
                drop(ghost);
                // A sleep through the old world's time, polled once in the new world.
                let mut sleep = Box::pin(old.time().sleep(Duration::from_millis(1)));
                std::future::poll_fn(|cx| {
                    let _ = sleep.as_mut().poll(cx);
                    Poll::Ready(())
                })
                .await;
            }
            if let Some(mut join) = join {
                std::future::poll_fn(|cx| {
                    let _ = std::pin::Pin::new(&mut join).poll(cx);
                    Poll::Ready(())
                })
                .await;
            }
            if let Some(waker) = waker {
                waker.wake();
            }
            providers.time().sleep(Duration::from_millis(2)).await;
        })
        .unwrap();
    format!("{:?}", world.run())
}

use std::future::Future;

pub fn leaks_used_after_drop(keep_providers: bool) {
    // Reference: the old world ran on another thread; this fresh thread has no spare of it.
    let expected = fresh(move || {
        let leaks = fresh(move || leaky_world(keep_providers));
        run_using_leaks(21, leaks)
    });
    // Attack: the old world ran and was dropped on this very thread.
    let got = fresh(move || {
        let leaks = leaky_world(keep_providers);
        run_using_leaks(21, leaks)
    });
    assert_eq!(expected, got);
    assert!(expected.contains("Ok(RunSummary"), "{expected}");
    // And a plain seed after all that is a fresh one.
    let later = fresh(move || {
        let leaks = leaky_world(keep_providers);
        let _ = run_using_leaks(21, leaks);
        echo_run(11, true)
    });
    assert_eq!(later, fresh_echo(&[11], true)[0]);
}

/// A runner over many seeds where about a third fail; every failed seed replayed alone on a
/// fresh thread gives the same fingerprint.
pub fn flaky_report(seeds: Vec<u64>, jobs: usize) -> moonpool_sim::SimulationReport {
    let count = seeds.len();
    SimulationBuilder::new("hostile-flaky")
        .world_config(config(true))
        .progress(false)
        .seeds(seeds)
        .iterations(IterationControl::FixedCount(count))
        .jobs(jobs)
        .process("server", 1, |ctx| server(ctx.providers))
        .workload("client", 1, |ctx| async move {
            client(ctx.providers.clone()).await;
            let value: u32 = ctx.providers.random().random_range(0..3);
            if value == 0 {
                return Err("fails on purpose".into());
            }
            Ok(())
        })
        .run()
        .unwrap()
}

/// Panics when dropped.
pub struct PanicsOnDrop;

impl Drop for PanicsOnDrop {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            panic!("a task's future panics in Drop");
        }
    }
}
