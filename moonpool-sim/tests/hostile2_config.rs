//! Hostile values of the world's configuration (second pass) that the earlier passes and
//! `setup_validation.rs` do not cover: network latencies at `Duration::MAX` (which pass
//! `validate`), `LatencyDistribution::mean` at its extremes, a grace period of `Duration::MAX`,
//! a time budget of one nanosecond, and a task limit of one. Each must give a typed error naming
//! the value or a sound run or verdict, never a panic.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TaskProvider, TcpListener, TimeProvider};
use moonpool_sim::{
    LatencyDistribution, Locality, NetworkConfiguration, RebootKind, SimError, SimWorld,
    WorldConfig,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

mod hostile2_common;

use hostile2_common::*;

/// `mean` of an extreme distribution is a value, never an overflow panic; `validate` refuses a
/// bound over `MAX_LATENCY`, naming the field.
#[test]
fn test_the_mean_of_an_extreme_uniform_latency_is_a_value() {
    let uniform = LatencyDistribution::Uniform {
        min: Duration::MAX,
        max: Duration::MAX,
    };
    let mean = caught(|| uniform.mean()).expect("mean does not panic");
    assert_eq!(mean, Duration::MAX);
    let mut config = NetworkConfiguration::fast_local();
    config.write_latency = uniform;
    let error = config.validate().expect_err("over MAX_LATENCY");
    assert!(error.contains("write_latency"), "{error}");
    // The largest bound accepted.
    config.write_latency = LatencyDistribution::Uniform {
        min: moonpool_sim::MAX_LATENCY,
        max: moonpool_sim::MAX_LATENCY,
    };
    assert!(config.validate().is_ok());
    assert_eq!(config.write_latency.mean(), moonpool_sim::MAX_LATENCY);
}

/// An echo over one connection in a world whose network is `network`.
fn echo_world(seed: u64, network: NetworkConfiguration) -> SimWorld {
    let mut config = WorldConfig::quiet();
    config.network = network;
    let mut world = SimWorld::with_config(seed, config).unwrap();
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let Ok(listener) = ctx.providers.network().bind("10.0.0.1:4500").await else {
                    return;
                };
                while let Ok((mut stream, _)) = listener.accept().await {
                    let mut byte = [0u8; 1];
                    if stream.read_exact(&mut byte).await.is_ok() {
                        let _ = stream.write_all(&byte).await;
                    }
                }
            },
        )
        .unwrap();
    world
        .add_workload("client", "10.0.0.2", |p| async move {
            let time = p.time().clone();
            time.sleep(Duration::from_millis(1)).await;
            let attempt = time.timeout(Duration::from_secs(5), async {
                let mut stream = p.network().connect("10.0.0.1:4500").await.ok()?;
                stream.write_all(b"x").await.ok()?;
                let mut reply = [0u8; 1];
                stream.read_exact(&mut reply).await.ok()?;
                Some(reply)
            });
            let _ = attempt.await;
        })
        .unwrap();
    world
}

/// A network latency of `Duration::MAX` passes `validate`; a connection then must time out (or
/// be refused at setup), not panic in the network model.
fn extreme_network(what: &str, network: NetworkConfiguration) {
    let mut config = WorldConfig::quiet();
    config.network = network.clone();
    if let Err(error) = SimWorld::with_config(1, config) {
        assert!(
            error.to_string().contains(what),
            "refused without naming {what}: {error}"
        );
        return;
    }
    let outcome = run_caught(echo_world(1, network)).expect("no panic out of run");
    if let Err(SimError::TaskPanicked { message, task, .. }) = &outcome {
        panic!("{what}: the network model panicked in '{task}': {message}");
    }
}

#[test]
fn test_a_duration_max_write_latency_is_refused_or_times_out() {
    let mut network = NetworkConfiguration::fast_local();
    network.write_latency = LatencyDistribution::Fixed(Duration::MAX);
    extreme_network("write_latency", network);
}

#[test]
fn test_a_duration_max_connect_latency_is_refused_or_times_out() {
    let mut network = NetworkConfiguration::fast_local();
    network.connect_latency = LatencyDistribution::Fixed(Duration::MAX);
    extreme_network("connect_latency", network);
}

/// Large but sane network latencies (an hour each way) simply make the client time out.
#[test]
fn test_an_hour_of_network_latency_times_the_client_out() {
    let mut network = NetworkConfiguration::fast_local();
    network.write_latency = LatencyDistribution::Fixed(Duration::from_secs(3600));
    network.connect_latency = LatencyDistribution::Fixed(Duration::from_secs(3600));
    let summary = run_caught(echo_world(2, network)).unwrap().unwrap();
    assert!(summary.sim_time >= Duration::from_secs(5));
}

/// A grace period of `Duration::MAX`: a graceful reboot signals the process and stops it
/// "never"; the run ends when the workload does, without an overflow.
#[test]
fn test_a_grace_period_of_duration_max_never_stops_the_process() {
    let mut config = WorldConfig::quiet();
    config.graceful_shutdown_grace = Duration::MAX;
    let mut world = SimWorld::with_config(3, config).unwrap();
    let server = world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                // Ignores its shutdown signal: only the grace period's end could stop it.
                let time = ctx.providers.time().clone();
                loop {
                    time.sleep(Duration::from_millis(5)).await;
                }
            },
        )
        .unwrap();
    let control = world.control();
    world
        .add_workload("rebooter", "10.0.0.2", move |p| {
            let control = control.clone();
            async move {
                p.time().sleep(Duration::from_millis(10)).await;
                control.reboot(server, RebootKind::Graceful, Some(Duration::MAX));
                p.time().sleep(Duration::from_millis(50)).await;
                assert!(control.is_alive(server), "the grace period never ends");
                assert!(control.is_stopping(server));
            }
        })
        .unwrap();
    let summary = run_caught(world).unwrap().unwrap();
    assert_eq!(summary.sim_time, Duration::from_millis(60));
}

/// A time budget of one nanosecond: the first sleep is over budget, a verdict naming the
/// budget; a world whose workload needs no time at all passes.
#[test]
fn test_a_one_nanosecond_budget_is_a_verdict_for_any_sleep() {
    let mut config = WorldConfig::quiet();
    config.time_budget = Duration::from_nanos(1);
    let mut world = SimWorld::with_config(4, config.clone()).unwrap();
    world
        .add_workload("sleeper", "10.0.0.1", |p| async move {
            p.time().sleep(Duration::from_nanos(2)).await;
        })
        .unwrap();
    let error = run_caught(world).unwrap().unwrap_err();
    assert!(
        matches!(error, SimError::TimeBudgetExceeded { budget, .. } if budget == Duration::from_nanos(1)),
        "{error}"
    );
    let mut world = SimWorld::with_config(4, config).unwrap();
    world
        .add_workload("instant", "10.0.0.1", |p| async move {
            p.time().sleep(Duration::ZERO).await;
        })
        .unwrap();
    run_caught(world).unwrap().unwrap();
}

/// A task limit of one: the workload alone runs; its first spawn is a verdict naming it.
#[test]
fn test_a_task_limit_of_one_lets_only_the_workload_run() {
    let mut config = WorldConfig::quiet();
    config.max_tasks = 1;
    let mut world = SimWorld::with_config(5, config.clone()).unwrap();
    world
        .add_workload("alone", "10.0.0.1", |p| async move {
            p.time().sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
    run_caught(world).unwrap().unwrap();
    let mut world = SimWorld::with_config(5, config).unwrap();
    world
        .add_workload("spawner", "10.0.0.1", |p| async move {
            let child = p.task().spawn("child", async {});
            let _ = child.await;
        })
        .unwrap();
    let error = run_caught(world).unwrap().unwrap_err();
    let text = error.to_string();
    assert!(text.contains("spawner") && text.contains("child"), "{text}");
}

/// The network's path of the timer-wake bug in `hostile2_time.rs`: a read polled through a
/// foreign waker whose wake drops a sleep. The delivery that wakes the reader is applied while
/// the engine holds the world's state, so the sleep's drop (which removes its timer) re-enters
/// it.
#[test]
fn test_a_sleep_dropped_inside_a_network_wake_is_harmless() {
    use std::future::{Future, poll_fn};
    use std::pin::Pin;
    use std::sync::Arc;
    use std::task::Context;

    let mut world = echo_world(6, NetworkConfiguration::fast_local());
    world
        .add_workload("reader", "10.0.0.3", |p| async move {
            let time = p.time().clone();
            time.sleep(Duration::from_millis(1)).await;
            let Ok(mut stream) = p.network().connect("10.0.0.1:4500").await else {
                return;
            };
            // The victim: a registered sleep, dropped by the wake.
            let victim: Slot<Pin<Box<dyn Future<Output = ()> + Send>>> = slot();
            let mut sleep: Pin<Box<dyn Future<Output = ()> + Send>> =
                Box::pin(time.sleep(Duration::from_secs(5)));
            poll_fn(|cx| {
                let _ = sleep.as_mut().poll(cx);
                std::task::Poll::Ready(())
            })
            .await;
            *victim.lock().unwrap() = Some(sleep);
            stream.write_all(b"y").await.unwrap();
            let v = Arc::clone(&victim);
            let drop_victim: Arc<dyn Fn() + Send + Sync> = Arc::new(move || {
                drop(v.lock().unwrap().take());
            });
            let mut byte = [0u8; 1];
            let mut read = Box::pin(stream.read_exact(&mut byte));
            let _ = poll_fn(|cx| {
                let waker = on_wake(cx.waker(), Arc::clone(&drop_victim));
                read.as_mut().poll(&mut Context::from_waker(&waker))
            })
            .await;
        })
        .unwrap();
    run_caught(world)
        .expect("no panic out of SimWorld::run")
        .expect("the run ends well");
}
