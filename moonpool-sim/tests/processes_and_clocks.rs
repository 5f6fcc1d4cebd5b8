//! Processes (factory reboots, graceful versus crash, failure domains) and clocks (drift,
//! buggified sleep delays).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    clippy::let_and_return,
    missing_docs
)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{Providers, TimeProvider};
use moonpool_sim::{ClockConfiguration, Locality, RebootKind, SimWorld, WorldConfig};

type Log = Arc<Mutex<Vec<String>>>;

fn log_entry(log: &Log, entry: String) {
    log.lock().unwrap().push(entry);
}

#[test]
fn test_factory_runs_at_every_boot_and_memory_is_lost() {
    let log: Log = Arc::default();
    let mut world = SimWorld::with_config(1, WorldConfig::quiet()).unwrap();
    let server_log = Arc::clone(&log);
    world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let log = Arc::clone(&server_log);
            async move {
                // In-memory state starts fresh at every boot.
                let mut counter = 0u32;
                log_entry(
                    &log,
                    format!("boot {} at {:?}", ctx.boot, ctx.providers.time().now()),
                );
                loop {
                    counter += 1;
                    if counter > 1_000 {
                        log_entry(&log, "counter survived a reboot".into());
                    }
                    ctx.providers.time().sleep(Duration::from_millis(10)).await;
                }
            }
        })
        .unwrap();
    world
        .add_workload("chaos", "10.0.0.1", |p| async move {
            let server = p.control().process("server").unwrap();
            p.time().sleep(Duration::from_secs(1)).await;
            p.control()
                .reboot(server, RebootKind::Crash, Some(Duration::from_secs(2)));
            p.time().sleep(Duration::from_millis(500)).await;
            assert!(
                !p.control().is_alive(server),
                "down during its recovery delay"
            );
            p.time().sleep(Duration::from_secs(2)).await;
            assert!(
                p.control().is_alive(server),
                "back after its recovery delay"
            );
            p.control().reboot(
                server,
                RebootKind::CrashAndWipe,
                Some(Duration::from_secs(1)),
            );
            p.time().sleep(Duration::from_secs(2)).await;
        })
        .unwrap();
    let summary = world.run().unwrap();
    let log = log.lock().unwrap();
    assert_eq!(
        *log,
        vec![
            "boot 1 at 0ns".to_string(),
            "boot 2 at 3s".to_string(),
            "boot 3 at 4.5s".to_string()
        ]
    );
    assert_eq!(summary.faults.get("process.crash"), Some(&1));
    assert_eq!(summary.faults.get("process.crash_and_wipe"), Some(&1));
}

#[test]
fn test_graceful_reboot_signals_then_stops_after_grace() {
    let log: Log = Arc::default();
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.graceful_shutdown_grace = Duration::from_secs(3);
        cfg
    };
    let mut world = SimWorld::with_config(2, config).unwrap();
    let server_log = Arc::clone(&log);
    world
        .add_process("server", "10.0.0.2", Locality::default(), move |ctx| {
            let log = Arc::clone(&server_log);
            async move {
                if ctx.boot > 1 {
                    return;
                }
                ctx.shutdown.requested().await;
                log_entry(
                    &log,
                    format!("asked to stop at {:?}", ctx.providers.time().now()),
                );
                // Ignore the request: the grace period ends and the process is stopped anyway.
                ctx.providers.time().sleep(Duration::from_secs(3600)).await;
                log_entry(&log, "outlived its grace period".into());
            }
        })
        .unwrap();
    world
        .add_workload("operator", "10.0.0.1", |p| async move {
            let server = p.control().process("server").unwrap();
            p.time().sleep(Duration::from_secs(1)).await;
            p.control().reboot(server, RebootKind::Graceful, None);
            p.time().sleep(Duration::from_secs(2)).await;
            assert!(
                p.control().is_alive(server),
                "still up during the grace period"
            );
            p.time().sleep(Duration::from_secs(2)).await;
            assert!(
                !p.control().is_alive(server),
                "stopped once the grace period ended"
            );
        })
        .unwrap();
    let summary = world.run().unwrap();
    assert_eq!(
        *log.lock().unwrap(),
        vec!["asked to stop at 1s".to_string()]
    );
    assert_eq!(summary.faults.get("process.graceful_reboot"), Some(&1));
}

#[test]
fn test_failure_domains_take_down_a_whole_machine_or_zone() {
    let mut world = SimWorld::with_config(3, WorldConfig::quiet()).unwrap();
    let layout = [
        ("a1", "10.0.0.11", Locality::new("dc1", "z1", "m1")),
        ("a2", "10.0.0.12", Locality::new("dc1", "z1", "m1")),
        ("b1", "10.0.0.13", Locality::new("dc1", "z1", "m2")),
        ("c1", "10.0.0.14", Locality::new("dc1", "z2", "m3")),
    ];
    for (name, ip, locality) in layout {
        world
            .add_process(name, ip, locality, |ctx| async move {
                ctx.providers.time().sleep(Duration::from_secs(3600)).await;
            })
            .unwrap();
    }
    world
        .add_workload("chaos", "10.0.0.1", |p| async move {
            let control = p.control().clone();
            let alive = |names: &[&str]| -> Vec<bool> {
                names
                    .iter()
                    .map(|n| control.is_alive(control.process(n).unwrap()))
                    .collect()
            };
            p.time().sleep(Duration::from_millis(1)).await;
            control.reboot_machine("m1", RebootKind::Crash, Some(Duration::from_secs(1)));
            p.time().sleep(Duration::from_millis(1)).await;
            assert_eq!(
                alive(&["a1", "a2", "b1", "c1"]),
                vec![false, false, true, true]
            );
            p.time().sleep(Duration::from_secs(2)).await;
            control.reboot_zone("z1", RebootKind::Crash, None);
            p.time().sleep(Duration::from_millis(1)).await;
            assert_eq!(
                alive(&["a1", "a2", "b1", "c1"]),
                vec![false, false, false, true]
            );
            control.reboot_datacenter("dc1", RebootKind::Crash, None);
            p.time().sleep(Duration::from_millis(1)).await;
            assert_eq!(
                alive(&["a1", "a2", "b1", "c1"]),
                vec![false, false, false, false]
            );
        })
        .unwrap();
    let summary = world.run().unwrap();
    assert_eq!(summary.faults.get("process.crash"), Some(&6));
}

#[test]
fn test_clock_drift_runs_ahead_within_its_bound_and_never_back() {
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.clock = {
            let mut cfg = ClockConfiguration::disabled();
            cfg.drift_max = Duration::from_millis(100);
            cfg
        };
        cfg
    };
    let mut world = SimWorld::with_config(4, config).unwrap();
    let samples = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&samples);
    world
        .add_workload("reader", "10.0.0.1", move |p| async move {
            for _ in 0..200 {
                let now = p.time().now();
                let timer = p.time().timer();
                out.lock().unwrap().push((now, timer));
                p.time().sleep(Duration::from_millis(7)).await;
            }
        })
        .unwrap();
    let summary = world.run().unwrap();
    let samples = samples.lock().unwrap();
    let mut previous = Duration::ZERO;
    let mut max_ahead = Duration::ZERO;
    for (now, timer) in samples.iter() {
        assert!(timer >= now, "timer {timer:?} behind now {now:?}");
        assert!(
            *timer <= *now + Duration::from_millis(100),
            "drift beyond its bound"
        );
        assert!(*timer >= previous, "the local timer went backwards");
        previous = *timer;
        max_ahead = max_ahead.max(*timer - *now);
    }
    assert!(
        max_ahead > Duration::from_millis(20),
        "drift actually happened: {max_ahead:?}"
    );
    assert!(summary.faults.get("clock.drift").copied().unwrap_or(0) > 0);
}

#[test]
fn test_buggified_sleep_delays_are_bounded_and_fire() {
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.clock = {
            let mut cfg = ClockConfiguration::default();
            cfg.drift_max = Duration::ZERO;
            cfg.sleep_delay_probability = 1.0;
            cfg.sleep_delay_max = Duration::from_millis(100);
            cfg
        };
        cfg
    };
    let mut world = SimWorld::with_config(5, config).unwrap();
    let slept = Arc::new(Mutex::new(Vec::new()));
    let out = Arc::clone(&slept);
    world
        .add_workload("sleeper", "10.0.0.1", move |p| async move {
            for _ in 0..100 {
                let start = p.time().now();
                p.time().sleep(Duration::from_millis(10)).await;
                out.lock().unwrap().push(p.time().now() - start);
            }
        })
        .unwrap();
    let summary = world.run().unwrap();
    let slept = slept.lock().unwrap();
    assert!(slept.iter().all(|d| *d >= Duration::from_millis(10)));
    assert!(slept.iter().all(|d| *d <= Duration::from_millis(110)));
    assert!(
        slept.iter().any(|d| *d > Duration::from_millis(10)),
        "some sleeps were stretched"
    );
    assert_eq!(summary.faults.get("clock.sleep_delay"), Some(&100));
}
