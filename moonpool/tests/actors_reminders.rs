//! Durable reminders and activation-local timers under simulation, fast tests (the cluster,
//! the nodes and the `Alarm` actor are in `reminders_common`): a reminder fires after its
//! activation deactivated, after the hosting node crashed (on another node), after the whole
//! cluster (nodes and cluster process) crashed and restarted; an unregistered reminder stops; a
//! periodic one fires every period; bad names, delays and periods are typed errors naming the
//! value; a panicking reminder handler fails its activation and the tick is delivered again; a
//! panicking timer tick ends its activation and its timers; timer ticks run as turns, never
//! beside another turn, stop when the activation idles out (ticks do not keep it alive) and
//! never run outside their activation (the hosting node cut off).
#![cfg(feature = "actors")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

mod reminders_common;
mod support;

use std::collections::BTreeSet;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use moonpool::actors::ActorId;
use moonpool::sim::SimulationBuilder;
use reminders_common::*;

/// A cluster of `nodes` nodes and one cluster process in the default world (its default
/// network and clock faults, no crashes but those `driver` makes), and `driver`.
fn small<F, Fut>(name: &str, nodes: usize, driver: F) -> SimulationBuilder
where
    F: Fn(Driver) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let driver = Arc::new(driver);
    SimulationBuilder::new(name)
        .progress(false)
        // The runtime's own coverage sites are the chaos suites' goals.
        .coverage_exclude("moonpool::actors")
        .process("cluster", 1, cluster)
        .process("node", nodes, node)
        .workload("driver", 1, move |ctx| {
            let driver = Arc::clone(&driver);
            async move {
                driver(Driver::new(ctx)?).await;
                Ok(())
            }
        })
        .invariant(
            "one turn per identity, no late claim, ticks within activations",
            invariants,
        )
}

fn run_quiet<F, Fut>(name: &str, nodes: usize, driver: F)
where
    F: Fn(Driver) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = ()> + Send + 'static,
{
    let report = small(name, nodes, driver).seeds([1, 2]).run().unwrap();
    println!("{report}");
    report.assert_success();
}

#[test]
fn test_reminder_fires_after_deactivation() {
    run_quiet("reminder-after-deactivation", 3, |d| async move {
        d.arm(1, "once", 4_000, None).await;
        // Idle for 2 s, the activation ends before the reminder is due.
        assert!(d.deactivated(1, 4_000).await, "the activation idles out");
        assert!(d.fired(1, "once").is_empty());
        assert!(
            d.fired_at_least(1, "once", 1, 4_000 + LATENESS.as_millis() as u64)
                .await
        );
        let fire = d.fired(1, "once")[0];
        assert_eq!(fire.tick, 0);
        // One-shot: acknowledged and removed, not delivered again.
        d.sleep(10_000).await;
        assert_eq!(d.fired(1, "once").len(), 1, "{:?}", d.fired(1, "once"));
    });
}

#[test]
fn test_reminder_fires_on_another_node_after_its_host_crashes() {
    run_quiet("reminder-host-crash", 3, |d| async move {
        d.arm(2, "beat", 1_000, Some(1_000)).await;
        assert!(d.fired_at_least(2, "beat", 2, 10_000).await);
        let host = d.fired(2, "beat").last().unwrap().node;
        let crashed_at = d.now();
        // The host stays down: its identities move once it is declared dead.
        d.crash(&d.node_process(host), None);
        let deadline = crashed_at + 30_000;
        let mut elsewhere = None;
        while d.now() < deadline && elsewhere.is_none() {
            elsewhere = d
                .fired(2, "beat")
                .into_iter()
                .find(|fire| fire.at > crashed_at && fire.node != host);
            d.sleep(100).await;
        }
        let fire = elsewhere.expect("the reminder fires on another node after the crash");
        assert!(fire.tick >= 2, "{fire:?}");
    });
}

#[test]
fn test_reminder_survives_a_full_cluster_restart() {
    run_quiet("reminder-cluster-restart", 3, |d| async move {
        let registration = d.arm(3, "beat", 1_000, Some(2_000)).await;
        assert!(d.fired_at_least(3, "beat", 1, 10_000).await);
        // Every process crashes at once; all come back after 3 s.
        d.crash("cluster-0", Some(3_000));
        for i in 0..3 {
            d.crash(&format!("node-{i}"), Some(3_000));
        }
        let restarted = d.now();
        let deadline = restarted + 40_000;
        let mut after = None;
        while d.now() < deadline && after.is_none() {
            after = d
                .fired(3, "beat")
                .into_iter()
                .find(|fire| fire.at > restarted + 3_000);
            d.sleep(100).await;
        }
        let fire = after.expect("the reminder fires after the whole cluster restarted");
        assert_eq!(fire.registration.to_string(), registration);
    });
}

#[test]
fn test_unregistered_reminder_stops_and_periodic_one_fires_every_period() {
    run_quiet("reminder-unregister-periodic", 2, |d| async move {
        d.arm(4, "beat", 500, Some(1_000)).await;
        assert!(d.fired_at_least(4, "beat", 8, 15_000).await);
        let fired = d.fired(4, "beat");
        for pair in fired.windows(2) {
            assert!(
                pair[1].at - pair[0].at <= 1_000 + LATENESS.as_millis() as u64,
                "a gap of {} ms: {fired:?}",
                pair[1].at - pair[0].at
            );
        }
        let ticks: BTreeSet<u64> = fired.iter().map(|fire| fire.tick).collect();
        assert!(ticks.len() >= 7, "{fired:?}");
        assert!(d.disarm(4, "beat").await);
        let acknowledged = d.now();
        assert!(!d.disarm(4, "beat").await, "removed once");
        d.sleep(10_000).await;
        let late: Vec<Fire> = d
            .fired(4, "beat")
            .into_iter()
            .filter(|fire| fire.at > acknowledged)
            .collect();
        // Only a delivery claimed before the acknowledgement may still arrive (one at most).
        assert!(late.len() <= 1, "{late:?}");
    });
}

#[test]
fn test_bad_reminder_and_timer_inputs_are_typed_errors() {
    run_quiet("reminder-bad-inputs", 1, |d| async move {
        let client = &d.client;
        let arm = |name: String, delay: u64, period: Option<u64>| async move {
            AlarmRef::new(5)
                .arm(client, name, delay, period)
                .await
                .unwrap()
                .unwrap_err()
        };
        let empty = d
            .until_ok(30_000, || {
                AlarmRef::new(5).arm(client, String::new(), 10, None)
            })
            .await
            .unwrap()
            .unwrap_err();
        assert!(empty.contains("needs a name"), "{empty}");
        let long = "x".repeat(101);
        let error = arm(long.clone(), 10, None).await;
        assert!(error.contains("101 bytes"), "{error}");
        let error = arm("zero".into(), 10, Some(0)).await;
        assert!(
            error.contains("\"zero\"") && error.contains("zero period"),
            "{error}"
        );
        let years = 200 * 365 * 24 * 3600 * 1000u64;
        let error = arm("far".into(), years, None).await;
        assert!(
            error.contains("\"far\"") && error.contains("delay"),
            "{error}"
        );
        let error = arm("slow".into(), 10, Some(years)).await;
        assert!(
            error.contains("\"slow\"") && error.contains("period"),
            "{error}"
        );
        let timer = |name: String, period: Option<u64>| async move {
            AlarmRef::new(5)
                .timer(client, name, 10, period)
                .await
                .unwrap()
                .unwrap_err()
        };
        let error = timer(String::new(), None).await;
        assert!(error.contains("needs a name"), "{error}");
        let error = timer("t0".into(), Some(0)).await;
        assert!(
            error.contains("\"t0\"") && error.contains("zero period"),
            "{error}"
        );
        // Nothing was registered.
        d.sleep(3_000).await;
        assert!(
            d.ctx
                .state
                .get::<Fired>("fired")
                .unwrap_or_default()
                .is_empty()
        );
    });
}

#[test]
fn test_panicking_reminder_handler_fails_its_activation_and_the_tick_comes_again() {
    run_quiet("reminder-panic", 2, |d| async move {
        d.arm(6, "panic-once", 500, Some(1_000)).await;
        assert!(d.fired_at_least(6, "panic-once", 3, 15_000).await);
        let fired = d.fired(6, "panic-once");
        // The first tick's handler panicked (not acknowledged): the tick is delivered again.
        assert_eq!(fired[0].tick, fired[1].tick, "{fired:?}");
        assert!(fired[2].tick > fired[1].tick, "{fired:?}");
        let activations = d.ctx.state.get::<u64>("activations").unwrap_or(0);
        assert!(
            activations >= 2,
            "the panic ended the activation: {activations}"
        );
    });
}

#[test]
fn test_reminder_handler_that_never_returns_blocks_only_its_own_identity() {
    run_quiet("reminder-hang", 2, |d| async move {
        d.arm(7, "hang-forever", 500, Some(1_000)).await;
        d.arm(8, "beside", 500, Some(1_000)).await;
        // The other identity's reminder keeps firing every period while 7's handler hangs.
        assert!(d.fired_at_least(8, "beside", 8, 15_000).await);
        // 7's first delivery entered the handler and never left it: every later delivery
        // waits behind that turn, times out unacknowledged, and never runs.
        let hung = d.fired(7, "hang-forever");
        assert_eq!(hung.len(), 1, "{hung:?}");
        let beside = d.fired(8, "beside");
        assert!(
            beside.windows(2).all(|pair| pair[1].tick > pair[0].tick),
            "{beside:?}"
        );
    });
}

#[test]
fn test_timer_ticks_are_turns_that_stop_when_the_activation_idles_out() {
    run_quiet("timer-ticks", 2, |d| async move {
        let client = &d.client;
        let timer = d
            .until_ok(30_000, || {
                AlarmRef::new(7).timer(client, "t".into(), 100, Some(300))
            })
            .await
            .unwrap()
            .unwrap();
        // Turns beside the ticks (the invariant checks that no two overlap).
        for _ in 0..3 {
            let grant = AlarmRef::new(7).busy(client, 250).await.unwrap();
            assert!(grant > 0);
        }
        // No message for idle_timeout (2 s): the activation ends though its timer ticks.
        assert!(d.deactivated(7, 6_000).await, "ticks do not keep it alive");
        let ended = d.now();
        let ticks = d.ctx.state.get::<Ticks>("ticks").unwrap_or_default();
        let list = ticks.get(&ActorId::new("Alarm", 7).to_string()).unwrap();
        assert!(list.len() >= 6, "{list:?}");
        d.sleep(3_000).await;
        let after = d.ctx.state.get::<Ticks>("ticks").unwrap_or_default();
        let after = after.get(&ActorId::new("Alarm", 7).to_string()).unwrap();
        assert!(
            after.iter().all(|tick| tick.1 <= ended),
            "no tick after the activation ended: {after:?}"
        );
        // A new activation has no timer; its context starts new ones, which a stop ends.
        let again = d
            .until_ok(30_000, || {
                AlarmRef::new(7).timer(client, "u".into(), 1_000, None)
            })
            .await
            .unwrap()
            .unwrap();
        assert!(AlarmRef::new(7).untimer(client, again).await.unwrap());
        let _ = timer;
        let count = after.len();
        d.sleep(2_000).await;
        let last = d.ctx.state.get::<Ticks>("ticks").unwrap_or_default();
        let last = last.get(&ActorId::new("Alarm", 7).to_string()).unwrap();
        assert_eq!(last.len(), count, "a stopped timer does not tick: {last:?}");
    });
}

#[test]
fn test_timer_started_in_on_activate_ticks_in_order() {
    run_quiet("timer-on-activate", 2, |d| async move {
        let client = &d.client;
        d.until_ok(30_000, || AlarmRef::new(BOOT_TIMER_KEY).busy(client, 1))
            .await
            .unwrap();
        let id = ActorId::new("Alarm", BOOT_TIMER_KEY).to_string();
        d.sleep(1_000).await;
        let ticks = d.ctx.state.get::<Ticks>("ticks").unwrap_or_default();
        let list = ticks.get(&id).cloned().unwrap_or_default();
        assert!(list.len() >= 3, "{list:?}");
        let counts: Vec<u64> = list.iter().map(|tick| tick.0).collect();
        assert_eq!(counts, (0..list.len() as u64).collect::<Vec<_>>());
    });
}

#[test]
fn test_timer_ticks_stop_when_the_host_is_cut_off() {
    run_quiet("timer-grant", 3, |d| async move {
        let client = &d.client;
        d.until_ok(30_000, || {
            AlarmRef::new(8).timer(client, "t".into(), 50, Some(100))
        })
        .await
        .unwrap()
        .unwrap();
        let ticks = |d: &Driver| {
            d.ctx
                .state
                .get::<Ticks>("ticks")
                .unwrap_or_default()
                .get(&ActorId::new("Alarm", 8).to_string())
                .cloned()
                .unwrap_or_default()
        };
        while ticks(&d).is_empty() {
            d.sleep(50).await;
        }
        let alive = d.ctx.state.get::<Alive>("alive").unwrap_or_default();
        let (host, _) = alive[&ActorId::new("Alarm", 8).to_string()][0];
        // Keep it busy so it does not idle out, then cut its node off from everything.
        let host_ip = d
            .ctx
            .topology
            .ips_of("node")
            .into_iter()
            .find(|ip| address(*ip) == host)
            .unwrap();
        let others: Vec<IpAddr> = d
            .ctx
            .topology
            .ips_of("node")
            .into_iter()
            .chain(d.ctx.topology.ips_of("cluster"))
            .filter(|ip| *ip != host_ip)
            .collect();
        for ip in others {
            d.control().partition(host_ip, ip, Duration::from_secs(20));
        }
        // The grant (2 s) cannot be renewed: the activation stops, its ticks with it (the
        // invariant checks every tick ran within its activation).
        assert!(
            d.deactivated(8, 10_000).await,
            "the cut-off activation stops"
        );
        let stopped = d.now();
        d.sleep(3_000).await;
        assert!(
            ticks(&d).iter().all(|tick| tick.1 <= stopped),
            "{:?}",
            ticks(&d)
        );
        d.control().heal_partitions();
    });
}

#[test]
fn test_panicking_timer_tick_ends_the_activation_and_its_timers() {
    run_quiet("timer-panic", 2, |d| async move {
        let client = &d.client;
        d.until_ok(30_000, || {
            AlarmRef::new(9).timer(client, "panic".into(), 50, Some(100))
        })
        .await
        .unwrap()
        .unwrap();
        let id = ActorId::new("Alarm", 9).to_string();
        let ticks = |d: &Driver| {
            d.ctx
                .state
                .get::<Ticks>("ticks")
                .unwrap_or_default()
                .get(&id)
                .cloned()
                .unwrap_or_default()
        };
        // The third tick panics: the activation ends (no idle wait), and its timer with it.
        assert!(
            d.deactivated(9, 1_500).await,
            "the panic ended the activation"
        );
        let ended = d.now();
        d.sleep(2_000).await;
        let list = ticks(&d);
        assert_eq!(list.len(), 3, "{list:?}");
        assert!(list.iter().all(|tick| tick.1 <= ended), "{list:?}");
        // The identity is activated again by the next call (a new activation, no timer).
        let before = d.ctx.state.get::<u64>("activations").unwrap_or(0);
        AlarmRef::new(9).busy(client, 1).await.unwrap();
        let after = d.ctx.state.get::<u64>("activations").unwrap_or(0);
        assert_eq!(after, before + 1);
        d.sleep(1_000).await;
        assert_eq!(ticks(&d).len(), 3, "the new activation has no timer");
    });
}
