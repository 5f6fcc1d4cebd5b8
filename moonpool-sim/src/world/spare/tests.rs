//! Reused parts change nothing: seeds run one after another on one thread, each world built from
//! the last one's spare, against the same seeds each on fresh parts; seeds whose workload ends
//! well, panics, runs out of simulated time, deadlocks or busy-loops, and that leave connections,
//! timers, files and tasks open behind them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use moonpool_core::{
    NetworkProvider, OpenOptions, Providers, StorageProvider, TaskProvider, TcpListener,
    TimeProvider,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::{renewed, set_reuse};
use crate::{IterationControl, Locality, SimProviders, SimWorld, SimulationBuilder, WorldConfig};

/// How a seed's workload ends.
#[derive(Clone, Copy, Debug)]
enum Shape {
    /// Round trips, then it returns, leaving a connection, a timer, a file and tasks open.
    Echo,
    /// The same under the default (chaotic) configuration.
    Chaos,
    /// A detached task panics.
    Panics,
    /// It sleeps past the simulated-time budget.
    OverBudget,
    /// It waits on nothing that can wake it.
    Deadlock,
    /// It yields forever within one instant.
    BusyLoop,
    /// An `assert_always!` fails (and `sometimes` ones are reached).
    Violation,
}

const SHAPES: [Shape; 7] = [
    Shape::Echo,
    Shape::Chaos,
    Shape::Panics,
    Shape::OverBudget,
    Shape::Deadlock,
    Shape::BusyLoop,
    Shape::Violation,
];

/// Echoes every connection; keeps a log file open and a timer pending for each.
async fn server(providers: SimProviders) {
    let Ok(listener) = providers.network().bind("10.0.0.1:4500").await else {
        return;
    };
    let log = providers
        .storage()
        .open("server.log", OpenOptions::read_write_create().append(true))
        .await
        .ok();
    let _log = log;
    while let Ok((mut stream, _)) = listener.accept().await {
        let time = providers.time().clone();
        drop(providers.task().spawn("echo", async move {
            let mut buffer = [0u8; 32];
            loop {
                match time
                    .timeout(Duration::from_secs(30), stream.read(&mut buffer))
                    .await
                {
                    Ok(Ok(n)) if n > 0 => {
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

async fn client(providers: SimProviders, shape: Shape) {
    let time = providers.time().clone();
    let connected = time
        .timeout(
            Duration::from_secs(5),
            providers.network().connect("10.0.0.1:4500"),
        )
        .await;
    if let Ok(Ok(mut stream)) = connected {
        for round in 0..5u8 {
            let frame = [round; 16];
            let mut reply = [0u8; 16];
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
        // Left open: the connection (a task waiting to read), a long timer, a written file.
        drop(providers.task().spawn("holder", async move {
            let mut byte = [0u8; 1];
            let _ = stream.read(&mut byte).await;
        }));
    }
    if !matches!(shape, Shape::Deadlock) {
        // (A pending timer would end a deadlocked run at the time budget instead.)
        let sleeper = time.clone();
        drop(providers.task().spawn("sleeper", async move {
            sleeper.sleep(Duration::from_secs(3_600)).await;
        }));
    }
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
    match shape {
        Shape::Echo | Shape::Chaos => {}
        Shape::Panics => {
            let later = time.clone();
            drop(providers.task().spawn("panicker", async move {
                later.sleep(Duration::from_millis(1)).await;
                panic!("a detached task panics");
            }));
            time.sleep(Duration::from_millis(10)).await;
        }
        Shape::OverBudget => loop {
            time.sleep(Duration::from_secs(1)).await;
        },
        Shape::Deadlock => std::future::pending::<()>().await,
        Shape::BusyLoop => loop {
            crate::executor::yield_now().await;
        },
        Shape::Violation => {
            moonpool_core::assert_sometimes!(true, "reached before the violation");
            time.sleep(Duration::from_millis(2)).await;
            moonpool_core::assert_always!(false, "fails on purpose");
            time.sleep(Duration::from_millis(2)).await;
        }
    }
}

/// Everything a world's run tells: its summary (fingerprint, events, polls, faults, assertions,
/// the whole event trace) or its error.
fn run_world(shape: Shape, seed: u64) -> String {
    let mut config = match shape {
        Shape::Chaos => WorldConfig::default(),
        _ => WorldConfig::quiet(),
    };
    config.record_trace = true;
    match shape {
        Shape::OverBudget => config.time_budget = Duration::from_secs(20),
        Shape::BusyLoop => config.poll_bound = 2_000,
        _ => {}
    }
    let mut world = SimWorld::with_config(seed, config).unwrap();
    world
        .add_process("server", "10.0.0.1", Locality::default(), |ctx| {
            server(ctx.providers)
        })
        .unwrap();
    world
        .add_workload("client", "10.0.0.2", move |providers| {
            client(providers, shape)
        })
        .unwrap();
    format!("{:?}", world.run())
}

/// The runs of `order`, one after another on a new thread, with reuse on or off there.
fn on_a_thread<T: Send + 'static>(
    reuse: bool,
    run: impl FnOnce() -> T + Send + 'static,
) -> (T, u64) {
    std::thread::spawn(move || {
        set_reuse(reuse);
        let before = renewed();
        let result = run();
        (result, renewed() - before)
    })
    .join()
    .expect("the runs' thread")
}

#[test]
fn test_a_reused_world_runs_every_seed_as_a_fresh_one_does() {
    // A, B, then A again, each in every shape, so that every world follows one of another shape.
    let order: Vec<(Shape, u64)> = [41, 42, 41]
        .into_iter()
        .flat_map(|seed| SHAPES.into_iter().map(move |shape| (shape, seed)))
        .collect();
    let runs = order.clone();
    let (fresh, fresh_renewed) = on_a_thread(false, move || {
        runs.iter()
            .map(|&(shape, seed)| run_world(shape, seed))
            .collect::<Vec<_>>()
    });
    let runs = order.clone();
    let (reused, reused_renewed) = on_a_thread(true, move || {
        runs.iter()
            .map(|&(shape, seed)| run_world(shape, seed))
            .collect::<Vec<_>>()
    });
    assert_eq!(fresh_renewed, 0, "reuse off makes every world fresh");
    assert_eq!(
        reused_renewed,
        order.len() as u64 - 1,
        "every world after the first is built from the last one's spare"
    );
    for (((shape, seed), fresh), reused) in order.iter().zip(&fresh).zip(&reused) {
        assert_eq!(
            fresh, reused,
            "{shape:?} seed {seed}: reused parts changed the run"
        );
    }
    // The shapes end as they should, so each path was taken.
    let ends = |shape: usize, what: &str| {
        assert!(
            fresh[shape].contains(what),
            "{:?}: {}",
            SHAPES[shape],
            fresh[shape]
        );
    };
    ends(0, "Ok(RunSummary");
    ends(1, "Ok(RunSummary");
    ends(2, "TaskPanicked");
    ends(3, "TimeBudgetExceeded");
    ends(4, "Deadlock");
    ends(5, "BusyLoop");
    ends(6, "AssertionFailed");
    // Seed A after B is seed A (and seeds differ).
    let per_seed = SHAPES.len();
    assert_eq!(fresh[..per_seed], fresh[2 * per_seed..]);
    assert_ne!(fresh[..per_seed], fresh[per_seed..2 * per_seed]);
}

/// A runner's report on seeds A, B, A, C (one thread), without its wall times.
fn runner_report() -> String {
    let report = SimulationBuilder::new("spare-reuse")
        .world_config({
            let mut config = WorldConfig::quiet();
            config.record_trace = true;
            config
        })
        .progress(false)
        .seeds([7, 8, 7, 9])
        .iterations(IterationControl::FixedCount(4))
        .jobs(1)
        .process("server", 1, |ctx| server(ctx.providers))
        .workload("client", 1, |ctx| async move {
            client(ctx.providers.clone(), Shape::Echo).await;
            if ctx.seed() == 8 {
                return Err(crate::SimError::setup("seed 8 fails on purpose").into());
            }
            Ok(())
        })
        .run()
        .unwrap()
        .without_timings();
    format!("{}\n{}", report.to_json().unwrap(), report)
}

#[test]
fn test_the_runner_reports_the_same_on_reused_worlds() {
    let (fresh, fresh_renewed) = on_a_thread(false, runner_report);
    let (reused, reused_renewed) = on_a_thread(true, runner_report);
    assert_eq!(fresh_renewed, 0);
    assert!(reused_renewed >= 3, "{reused_renewed} worlds renewed");
    assert_eq!(fresh, reused);
    assert!(fresh.contains("seed 8 fails on purpose"), "{fresh}");
}

#[test]
fn test_a_world_whose_parts_are_still_held_is_not_reused() {
    std::thread::spawn(|| {
        set_reuse(true);
        let mut world = SimWorld::with_config(5, WorldConfig::quiet()).unwrap();
        let id = world.add_workload_process("held", "10.0.0.9").unwrap();
        // A provider kept after the world: its executor and state stay referenced.
        let providers = world.providers(id);
        let control = world.control();
        world.run().unwrap();
        drop(world);
        let before = renewed();
        let mut next = SimWorld::with_config(6, WorldConfig::quiet()).unwrap();
        next.add_workload("w", "10.0.0.1", |_| async {}).unwrap();
        next.run().unwrap();
        assert_eq!(renewed(), before, "a held executor is not reused");
        // The old world's state is intact for its holders.
        assert_eq!(control.process_names(), vec!["held".to_string()]);
        drop((providers, control));
        drop(next);
        let mut third = SimWorld::with_config(7, WorldConfig::quiet()).unwrap();
        third.add_workload("w", "10.0.0.1", |_| async {}).unwrap();
        third.run().unwrap();
        assert_eq!(renewed(), before + 1, "a free executor is reused");
    })
    .join()
    .expect("the test's thread");
}

#[test]
fn test_a_huge_world_is_not_kept() {
    std::thread::spawn(|| {
        set_reuse(true);
        let mut huge = SimWorld::with_config(3, WorldConfig::quiet()).unwrap();
        huge.add_workload("many", "10.0.0.1", |providers| async move {
            for _ in 0..5_000 {
                drop(providers.task().spawn("short", async {}));
            }
        })
        .unwrap();
        huge.run().unwrap();
        drop(huge);
        let before = renewed();
        let mut next = SimWorld::with_config(4, WorldConfig::quiet()).unwrap();
        next.add_workload("w", "10.0.0.1", |_| async {}).unwrap();
        next.run().unwrap();
        assert_eq!(
            renewed(),
            before,
            "a slab of 5,000 tasks is freed, not kept"
        );
    })
    .join()
    .expect("the test's thread");
}

#[test]
fn test_pooled_strings_come_back_in_registration_order() {
    use crate::kernel::process::{ProcessRole, ProcessState};
    use std::collections::BTreeMap;
    let declared = [
        (
            "server-with-a-long-name",
            Locality::new("dc-1", "zone-22", "machine-333"),
        ),
        ("w", Locality::default()),
        ("third", Locality::new("", "z", "")),
    ];
    let mut processes = Vec::new();
    let mut keys = BTreeMap::new();
    for (index, (name, locality)) in declared.iter().enumerate() {
        let ip = std::net::IpAddr::from([10, 0, 0, u8::try_from(index).unwrap() + 1]);
        processes.push(ProcessState::new(
            (*name).to_string(),
            ip,
            ProcessRole::Server,
            locality.clone(),
        ));
        keys.insert(
            (*name).to_string(),
            crate::executor::ProcessId(index as u32),
        );
    }
    let mut pool = super::pool_names(&mut processes, &mut keys, vec!["left over".to_string()]);
    assert!(processes.is_empty() && keys.is_empty());
    // The same registrations again take every string back at its exact length.
    for (name, locality) in &declared {
        for text in [
            *name,
            *name,
            &locality.datacenter,
            &locality.zone,
            &locality.machine,
        ] {
            let before = pool.len();
            let string = super::pooled(&mut pool, text);
            assert_eq!(string, text);
            if text.is_empty() {
                assert_eq!(pool.len(), before, "an empty name takes nothing");
            } else {
                assert_eq!(
                    string.capacity(),
                    text.len(),
                    "{text}: a string of its length"
                );
            }
        }
    }
    assert!(pool.is_empty());
    // A longer name than the pooled one is written whole; an empty pool makes new strings.
    let mut pool = vec!["ab".to_string()];
    assert_eq!(
        super::pooled(&mut pool, "a much longer name"),
        "a much longer name"
    );
    assert_eq!(super::pooled(&mut pool, "x"), "x");
}
