//! Two maze workloads for exploration: a planted failure behind a chain of unlikely events that
//! must happen in order. Seed sweeping needs about `odds^k` runs to get through `k` of them;
//! exploration branches at each one reached for the first time. Shared by the `maze_explore`
//! example and the explorer tests.
//!
//! - [`lock_maze`]: one workload walks through `locks` doors; each opens with probability
//!   `1/odds` on its only try (`assert_sometimes!` on each); behind the last one,
//!   `assert_always!(false, "the vault stays shut")` fails.
//! - [`dungeon`]: a hero asks a keeper process, over the simulated network, to open the
//!   trapdoor of each floor in turn; the keeper opens it with probability `1/odds`, once per
//!   floor (`assert_sometimes_each!` on the floor reached); on the last floor the keeper's reply
//!   is wrong, and the hero's `assert_always!` on it fails.

use std::time::Duration;

use moonpool_core::{
    NetworkProvider, Providers, RandomProvider, TcpListener, TimeProvider, assert_always,
    assert_sometimes, assert_sometimes_each,
};
use moonpool_sim::{
    ProcessContext, SimulationBuilder, WorkloadContext, WorkloadError, WorldConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The lock maze: `locks` doors (at most 8), each opening with probability `1/odds`.
pub fn lock_maze(name: &str, locks: usize, odds: u64) -> SimulationBuilder {
    SimulationBuilder::new(name)
        .world_config(WorldConfig::quiet())
        .workload("walker", 1, move |ctx| walk(ctx, locks, odds))
        .progress(false)
}

async fn walk(ctx: WorkloadContext, locks: usize, odds: u64) -> Result<(), WorkloadError> {
    let random = ctx.providers.random().clone();
    let time = ctx.providers.time().clone();
    for lock in 0..locks {
        time.sleep(Duration::from_millis(random.random_range(1..20u64)))
            .await;
        let opened = random.random_range(0..odds) == 0;
        lock_tried(lock, opened);
        if !opened {
            return Ok(());
        }
    }
    assert_always!(false, "the vault stays shut");
    Ok(())
}

/// One `assert_sometimes!` per lock (messages are literals: one call site each).
fn lock_tried(lock: usize, opened: bool) {
    match lock {
        0 => assert_sometimes!(opened, "lock 1 opens"),
        1 => assert_sometimes!(opened, "lock 2 opens"),
        2 => assert_sometimes!(opened, "lock 3 opens"),
        3 => assert_sometimes!(opened, "lock 4 opens"),
        4 => assert_sometimes!(opened, "lock 5 opens"),
        5 => assert_sometimes!(opened, "lock 6 opens"),
        6 => assert_sometimes!(opened, "lock 7 opens"),
        _ => assert_sometimes!(opened, "lock 8 opens"),
    }
}

/// The keeper's address (the first server process gets 10.0.0.1).
const KEEPER: &str = "10.0.0.1:4000";

/// The dungeon: a keeper process and a hero, `floors` trapdoors, each opening with probability
/// `1/odds`.
pub fn dungeon(name: &str, floors: u8, odds: u64) -> SimulationBuilder {
    SimulationBuilder::new(name)
        .world_config(WorldConfig::quiet())
        .process("keeper", 1, move |ctx| keeper(ctx, floors, odds))
        .workload("hero", 1, move |ctx| hero(ctx, floors))
        .progress(false)
}

async fn keeper(ctx: ProcessContext, floors: u8, odds: u64) {
    let providers = ctx.providers.clone();
    let Ok(listener) = providers.network().bind(KEEPER).await else {
        return;
    };
    while let Ok((mut stream, _)) = listener.accept().await {
        let mut floor = 0u8;
        let mut request = [0u8; 1];
        while stream.read_exact(&mut request).await.is_ok() {
            // One try per floor: the trapdoor opens, or the hero is stuck on this floor.
            if providers.random().random_range(0..odds) == 0 {
                floor += 1;
                assert_sometimes_each!("floor reached", [("floor", floor)]);
            }
            // The planted bug: the map of the last floor is wrong.
            let reply = if floor == floors { floor + 1 } else { floor };
            if stream.write_all(&[reply]).await.is_err() {
                break;
            }
        }
    }
}

async fn hero(ctx: WorkloadContext, floors: u8) -> Result<(), WorkloadError> {
    let providers = ctx.providers.clone();
    providers.time().sleep(Duration::from_millis(1)).await;
    let mut stream = providers.network().connect(KEEPER).await?;
    for floor in 0..floors {
        // The hero looks around the floor, then walks to its trapdoor.
        for _ in 0..2 {
            let pause = providers.random().random_range(1..20u64);
            providers.time().sleep(Duration::from_millis(pause)).await;
        }
        stream.write_all(b"d").await?;
        let mut reply = [0u8; 1];
        stream.read_exact(&mut reply).await?;
        let reply = reply[0];
        assert_always!(
            reply <= floor + 1,
            "the keeper's map matches the hero's",
            (floor, reply)
        );
        if reply != floor + 1 {
            // Stuck on this floor.
            return Ok(());
        }
    }
    Ok(())
}
