//! Same seed, same run: a 5-process workload with racing tasks, network chaos and storage faults,
//! run twice per seed, must give identical fingerprints; different seeds must explore different
//! runs and different task interleavings.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    clippy::let_and_return,
    missing_docs
)]

use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{
    NetworkProvider, OpenOptions, Providers, RandomProvider, StorageFile, StorageProvider,
    TaskProvider, TcpListener, TimeProvider,
};
use moonpool_sim::{
    ClockConfiguration, Locality, NetworkConfiguration, RebootKind, RunSummary, SimProviders,
    SimWorld, StorageConfiguration, WorldConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const SERVERS: [&str; 3] = ["10.0.1.1", "10.0.1.2", "10.0.1.3"];

/// Echo server that also appends every request to a log file and sometimes syncs it.
async fn server(providers: SimProviders, ip: String) {
    let Ok(listener) = providers.network().bind(&format!("{ip}:4500")).await else {
        return;
    };
    let log = providers
        .storage()
        .open(
            "requests.log",
            OpenOptions::read_write_create().append(true),
        )
        .await
        .ok();
    let log = Arc::new(tokio::sync::Mutex::new(log));
    let mut connection = 0u32;
    while let Ok((mut stream, _)) = listener.accept().await {
        connection += 1;
        let log = Arc::clone(&log);
        let time = providers.time().clone();
        drop(
            providers
                .task()
                .spawn(&format!("conn-{connection}"), async move {
                    let mut buffer = [0u8; 16];
                    loop {
                        match time
                            .timeout(Duration::from_secs(5), stream.read(&mut buffer))
                            .await
                        {
                            Ok(Ok(n)) if n > 0 => {
                                if let Some(file) = log.lock().await.as_mut() {
                                    let _ = file.write_all(&buffer[..n]).await;
                                    if buffer[0] % 3 == 0 {
                                        let _ = file.sync_data().await;
                                    }
                                }
                                if stream.write_all(&buffer[..n]).await.is_err() {
                                    return;
                                }
                            }
                            _ => return,
                        }
                    }
                }),
        );
    }
}

/// A client spawning racing request tasks that log the order in which they complete.
async fn client(providers: SimProviders, order: Arc<Mutex<Vec<(u32, u32)>>>, chaos: bool) {
    let mut handles = Vec::new();
    for worker in 0u32..4 {
        let p = providers.clone();
        let order = Arc::clone(&order);
        handles.push(
            providers
                .task()
                .spawn(&format!("worker-{worker}"), async move {
                    for round in 0u32..5 {
                        let target = SERVERS[p.random().random_range(0..SERVERS.len())];
                        let attempt = p.time().timeout(Duration::from_secs(2), async {
                            let mut stream =
                                p.network().connect(&format!("{target}:4500")).await.ok()?;
                            stream.write_all(&[worker as u8, round as u8]).await.ok()?;
                            let mut reply = [0u8; 2];
                            stream.read_exact(&mut reply).await.ok()?;
                            Some(reply)
                        });
                        let _ = attempt.await;
                        order.lock().unwrap().push((worker, round));
                    }
                }),
        );
    }
    if chaos {
        let victim = providers.random().random_range(0..SERVERS.len());
        let name = format!("server-{victim}");
        providers.time().sleep(Duration::from_millis(3)).await;
        if let Ok(process) = providers.control().process(&name) {
            providers
                .control()
                .reboot(process, RebootKind::Crash, Some(Duration::from_millis(50)));
        }
    }
    for handle in handles {
        let _ = handle.await;
    }
}

fn chaos_config() -> WorldConfig {
    let mut network = NetworkConfiguration::default();
    // Louder than the default so that a short run sees faults.
    network.random_close_probability = 0.01;
    network.clog_probability = 0.02;
    network.bit_flip_probability = 0.01;
    {
        let mut cfg = WorldConfig::default();
        cfg.network = network;
        cfg.storage = StorageConfiguration::default();
        cfg.clock = ClockConfiguration::default();
        cfg
    }
}

fn run_seed(seed: u64) -> (RunSummary, Vec<(u32, u32)>) {
    let mut world = SimWorld::with_config(seed, chaos_config()).unwrap();
    for (index, ip) in SERVERS.iter().enumerate() {
        let ip = ip.to_string();
        world
            .add_process(
                &format!("server-{index}"),
                &ip.clone(),
                Locality::default(),
                move |ctx| server(ctx.providers, ip.clone()),
            )
            .unwrap();
    }
    let order = Arc::new(Mutex::new(Vec::new()));
    for (index, ip) in ["10.0.2.1", "10.0.2.2"].iter().enumerate() {
        let order = Arc::clone(&order);
        world
            .add_workload(&format!("client-{index}"), ip, move |p| {
                client(p, order, index == 0)
            })
            .unwrap();
    }
    let summary = world.run().unwrap_or_else(|e| panic!("{e}"));
    let order = order.lock().unwrap().clone();
    (summary, order)
}

#[test]
fn test_same_seed_same_fingerprint_over_100_seeds() {
    let mut fingerprints = BTreeSet::new();
    let mut orders = BTreeSet::new();
    let mut faults_total = 0u64;
    for seed in 0..100 {
        let (first, first_order) = run_seed(seed);
        let (second, second_order) = run_seed(seed);
        assert_eq!(first, second, "seed {seed} diverged between two runs");
        assert_eq!(
            first_order, second_order,
            "seed {seed}: task completion order diverged"
        );
        fingerprints.insert(first.fingerprint);
        orders.insert(first_order);
        faults_total += first.faults.values().sum::<u64>();
    }
    assert_eq!(
        fingerprints.len(),
        100,
        "different seeds give different fingerprints"
    );
    assert!(
        orders.len() > 50,
        "racing tasks complete in many orders across seeds: {}",
        orders.len()
    );
    assert!(
        faults_total > 100,
        "chaos actually fired ({faults_total} faults)"
    );
}

/// Two tasks woken by one event: which runs first is the seeded scheduler's choice.
fn wake_order(seed: u64) -> Vec<&'static str> {
    let mut world = SimWorld::with_config(seed, WorldConfig::quiet()).unwrap();
    let order = Arc::new(Mutex::new(Vec::new()));
    let log = Arc::clone(&order);
    world
        .add_workload("main", "10.0.0.1", move |p| async move {
            let notify = Arc::new(tokio::sync::Notify::new());
            let mut handles = Vec::new();
            for name in ["first", "second"] {
                let notify = Arc::clone(&notify);
                let log = Arc::clone(&log);
                handles.push(p.task().spawn(name, async move {
                    notify.notified().await;
                    log.lock().unwrap().push(name);
                }));
            }
            p.time().sleep(Duration::from_millis(1)).await;
            notify.notify_waiters();
            for handle in handles {
                handle.await.unwrap();
            }
        })
        .unwrap();
    world.run().unwrap();
    let order = order.lock().unwrap().clone();
    order
}

#[test]
fn test_tasks_woken_together_run_in_seed_dependent_order() {
    let orders: Vec<_> = (0..20).map(wake_order).collect();
    for (seed, order) in orders.iter().enumerate() {
        assert_eq!(
            order,
            &wake_order(seed as u64),
            "seed {seed} is not reproducible"
        );
    }
    assert!(orders.contains(&vec!["first", "second"]));
    assert!(orders.contains(&vec!["second", "first"]));
}

#[test]
fn test_select_branch_order_is_seeded() {
    let winners = |seed: u64| {
        let mut world = SimWorld::with_config(seed, WorldConfig::quiet()).unwrap();
        let out = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&out);
        world
            .add_workload("main", "10.0.0.1", move |_p| async move {
                for _ in 0..16 {
                    let winner = moonpool_core::select! {
                        () = std::future::ready(()) => 0,
                        () = std::future::ready(()) => 1,
                    };
                    log.lock().unwrap().push(winner);
                }
            })
            .unwrap();
        world.run().unwrap();
        let winners = out.lock().unwrap().clone();
        winners
    };
    assert_eq!(winners(5), winners(5));
    assert_ne!(winners(5), winners(6));
}
