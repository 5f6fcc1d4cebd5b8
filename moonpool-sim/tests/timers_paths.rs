//! The timer path end to end: sleeps of zero and of `Duration::MAX`, timers cancelled before
//! they fire, a sleep dropped inside the wake of another, many timers at one instant (their
//! tasks run in a seeded order, across the run loop's same-instant batches), sleeps made outside
//! the run, and sleeps polled where their world cannot be reached. Each workload's fingerprint is
//! pinned (the values the simulator gave before the timer path was reworked), and a run with a
//! step hook (one event per turn) gives the same fingerprint and trace as one without (where the
//! run loop applies the events of an instant under one lock).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    missing_docs
)]

use std::future::{Future, poll_fn};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Wake, Waker};
use std::time::Duration;

use moonpool_core::{Providers, TaskProvider, TimeProvider};
use moonpool_sim::{RunSummary, SimError, SimProviders, SimWorld, WorldConfig};

type Log = Arc<Mutex<Vec<String>>>;
type BoxedFuture = Pin<Box<dyn Future<Output = ()> + Send>>;
type Workload = fn(SimProviders) -> BoxedFuture;

fn quiet() -> WorldConfig {
    WorldConfig::quiet()
}

/// Runs `workload` on `seed`; with `hook`, invariants (a no-op) are checked after every event.
fn run_with<W, Fut>(seed: u64, hook: bool, trace: bool, workload: W) -> Result<RunSummary, SimError>
where
    W: FnOnce(SimProviders) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut config = quiet();
    config.record_trace = trace;
    let mut world = SimWorld::with_config(seed, config).unwrap();
    if hook {
        world.set_step_hook(Box::new(|| Ok(())));
    }
    world.add_workload("timers", "10.0.0.1", workload).unwrap();
    world.run()
}

/// 20 tasks, 200 sleeps each, of 1 to 7 us: interleaved deadlines, several at each instant.
async fn looping(p: SimProviders) {
    let mut handles = Vec::new();
    for t in 0..20u32 {
        let time = p.time().clone();
        handles.push(p.task().spawn(&format!("sleeper-{t}"), async move {
            for i in 0..200u32 {
                time.sleep(Duration::from_micros(u64::from(1 + (t + i) % 7)))
                    .await;
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

/// 3,000 tasks that sleep 5 ms twice: 3,000 timer events at each of two instants, more than the
/// run loop applies in one batch (1,024 after a drain).
async fn one_instant(p: SimProviders) {
    let mut handles = Vec::new();
    for t in 0..3_000u32 {
        let time = p.time().clone();
        handles.push(p.task().spawn(&format!("crowd-{t}"), async move {
            time.sleep(Duration::from_millis(5)).await;
            time.sleep(Duration::from_millis(5)).await;
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

/// Tasks that sleep zero in a loop, beside one that sleeps 1 us: zero sleeps yield and complete
/// at the instant they were made.
async fn zero(p: SimProviders) {
    let mut handles = Vec::new();
    for t in 0..5u32 {
        let time = p.time().clone();
        handles.push(p.task().spawn(&format!("zero-{t}"), async move {
            for i in 0..50u32 {
                if (t + i) % 5 == 0 {
                    time.sleep(Duration::from_micros(1)).await;
                } else {
                    time.sleep(Duration::ZERO).await;
                }
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

/// Sleeps cancelled before they fire: timeouts that the work beats, and sleeps of
/// `Duration::MAX` dropped once a short one completes. Their slots are reused by later sleeps.
async fn cancelled(p: SimProviders) {
    let mut handles = Vec::new();
    for t in 0..10u32 {
        let time = p.time().clone();
        handles.push(p.task().spawn(&format!("cancel-{t}"), async move {
            for i in 0..30u32 {
                let work = time.sleep(Duration::from_micros(u64::from(1 + (t * i) % 3)));
                let beaten = time.timeout(Duration::from_micros(5), work).await;
                assert!(beaten.is_ok());
                let mut never = Box::pin(time.sleep(Duration::MAX));
                let mut short = Box::pin(time.sleep(Duration::from_micros(2)));
                poll_fn(|cx| {
                    assert!(never.as_mut().poll(cx).is_pending());
                    short.as_mut().poll(cx)
                })
                .await;
                drop(never);
            }
        }));
    }
    for handle in handles {
        handle.await.unwrap();
    }
}

/// The workloads whose fingerprints are pinned, by name.
fn workloads() -> Vec<(&'static str, Workload)> {
    vec![
        ("looping", |p| Box::pin(looping(p))),
        ("one_instant", |p| Box::pin(one_instant(p))),
        ("zero", |p| Box::pin(zero(p))),
        ("cancelled", |p| Box::pin(cancelled(p))),
    ]
}

#[test]
fn test_timer_workloads_keep_their_pinned_fingerprints() {
    // Computed by the simulator before the timer path was reworked (commit b818e8a): the same
    // events, in the same order, with the same scheduling decisions.
    let pinned: &[(&str, u64, u64, u64)] = &[
        ("looping", 1, 6746833074363063570, 4000),
        ("looping", 2, 3182475305013978874, 4000),
        ("looping", 3, 16295362945613281816, 4000),
        ("one_instant", 1, 11983616116728483992, 6000),
        ("one_instant", 2, 760890420507028764, 6000),
        ("one_instant", 3, 15718104016110074984, 6000),
        ("zero", 1, 18206849658579117442, 250),
        ("zero", 2, 3327942338461927591, 250),
        ("zero", 3, 10825709274555213574, 250),
        ("cancelled", 1, 2985405422274107296, 897),
        ("cancelled", 2, 17599424695002415995, 897),
        ("cancelled", 3, 9399709060645133553, 897),
    ];
    let mut seen = Vec::new();
    for (name, workload) in workloads() {
        for seed in 1..=3u64 {
            let summary = run_with(seed, false, false, workload).unwrap();
            seen.push((name, seed, summary.fingerprint, summary.events));
        }
    }
    assert_eq!(seen.len(), pinned.len());
    for &(name, seed, fingerprint, events) in pinned {
        let found = seen
            .iter()
            .find(|(n, s, _, _)| *n == name && *s == seed)
            .unwrap();
        assert_eq!(
            (found.2, found.3),
            (fingerprint, events),
            "{name}, seed {seed}"
        );
    }
}

#[test]
fn test_one_event_per_turn_and_batched_instants_give_the_same_run() {
    for (name, workload) in workloads() {
        for seed in [1u64, 7] {
            let batched = run_with(seed, false, true, workload).unwrap();
            let turns = run_with(seed, true, true, workload).unwrap();
            assert_eq!(
                batched.fingerprint, turns.fingerprint,
                "{name}, seed {seed}"
            );
            assert_eq!(batched.events, turns.events, "{name}, seed {seed}");
            assert_eq!(batched.polls, turns.polls, "{name}, seed {seed}");
            assert_eq!(batched.sim_time, turns.sim_time, "{name}, seed {seed}");
            assert_eq!(batched.trace, turns.trace, "{name}, seed {seed}");
            assert_eq!(batched.trace.len() as u64, batched.events);
        }
    }
}

#[test]
fn test_many_timers_at_one_instant_wake_in_a_seeded_order() {
    let order = |seed: u64| {
        let log: Log = Arc::default();
        let tasks_log = Arc::clone(&log);
        let summary = run_with(seed, false, false, move |p| async move {
            let mut handles = Vec::new();
            for t in 0..40u32 {
                let time = p.time().clone();
                let log = Arc::clone(&tasks_log);
                handles.push(p.task().spawn(&format!("t{t}"), async move {
                    time.sleep(Duration::from_millis(1)).await;
                    assert_eq!(time.now(), Duration::from_millis(1));
                    log.lock().unwrap().push(format!("t{t}"));
                }));
            }
            for handle in handles {
                handle.await.unwrap();
            }
        })
        .unwrap();
        assert_eq!(summary.sim_time, Duration::from_millis(1));
        let order = log.lock().unwrap().clone();
        assert_eq!(order.len(), 40);
        order
    };
    assert_eq!(order(3), order(3), "the same seed, the same order");
    let mut orders: Vec<Vec<String>> = (0..10).map(order).collect();
    orders.sort();
    orders.dedup();
    assert!(
        orders.len() >= 9,
        "the order is the seed's pick: {} orders over 10 seeds",
        orders.len()
    );
}

#[test]
fn test_a_zero_sleep_yields_and_completes_at_the_same_instant() {
    let log: Log = Arc::default();
    let tasks_log = Arc::clone(&log);
    let summary = run_with(5, false, false, move |p| async move {
        let time = p.time().clone();
        let other_log = Arc::clone(&tasks_log);
        let other = p.task().spawn("other", async move {
            other_log.lock().unwrap().push("other ran".into());
        });
        time.sleep(Duration::ZERO).await;
        tasks_log
            .lock()
            .unwrap()
            .push(format!("zero sleep done at {:?}", time.now()));
        other.await.unwrap();
    })
    .unwrap();
    assert_eq!(summary.sim_time, Duration::ZERO);
    assert_eq!(summary.events, 1, "the zero sleep is one timer event");
    let log = log.lock().unwrap();
    assert_eq!(
        *log,
        vec![
            "other ran".to_string(),
            "zero sleep done at 0ns".to_string()
        ],
        "the zero sleep yielded to the task spawned before it"
    );
}

#[test]
fn test_a_sleep_of_duration_max_never_fires_and_ends_the_run_over_budget() {
    let result = run_with(2, false, false, |p| async move {
        p.time().sleep(Duration::MAX).await;
        panic!("a sleep of Duration::MAX completed");
    });
    match result {
        Err(SimError::TimeBudgetExceeded { seed, .. }) => assert_eq!(seed, 2),
        other => panic!("expected the time budget to end the run, got {other:?}"),
    }
    // Raced against a short one and dropped, it costs nothing more.
    let summary = run_with(2, false, false, |p| async move {
        let outcome = p
            .time()
            .timeout(Duration::from_millis(3), p.time().sleep(Duration::MAX))
            .await;
        assert!(outcome.is_err());
        assert_eq!(p.time().now(), Duration::from_millis(3));
    })
    .unwrap();
    assert_eq!(summary.sim_time, Duration::from_millis(3));
}

/// Drops the sleep it holds when woken, then wakes `inner`.
struct DropOnWake {
    victim: Mutex<Option<BoxedFuture>>,
    inner: Waker,
    log: Log,
}

impl Wake for DropOnWake {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        let victim = self.victim.lock().unwrap().take();
        if victim.is_some() {
            self.log.lock().unwrap().push("victim dropped".into());
        }
        drop(victim);
        self.inner.wake_by_ref();
    }
}

#[test]
fn test_a_sleep_dropped_inside_the_wake_of_another_frees_its_timer() {
    let log: Log = Arc::default();
    let task_log = Arc::clone(&log);
    let summary = run_with(4, false, true, move |p| async move {
        let time = p.time().clone();
        // The victim registers its timer (10 ms) with this task's waker.
        let mut victim: BoxedFuture = Box::pin(time.sleep(Duration::from_millis(10)));
        poll_fn(|cx| {
            assert!(victim.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        // The trigger (1 ms) is polled once with a waker that drops the victim when it fires
        // (then wakes this task): the victim's timer is freed from inside the run loop's wake.
        let mut trigger = Box::pin(time.sleep(Duration::from_millis(1)));
        let mut victim = Some(victim);
        poll_fn(|cx| {
            if let Some(victim) = victim.take() {
                let waker = Waker::from(Arc::new(DropOnWake {
                    victim: Mutex::new(Some(victim)),
                    inner: cx.waker().clone(),
                    log: Arc::clone(&task_log),
                }));
                return trigger.as_mut().poll(&mut Context::from_waker(&waker));
            }
            trigger.as_mut().poll(cx)
        })
        .await;
        task_log
            .lock()
            .unwrap()
            .push(format!("trigger done at {:?}", time.now()));
        // A later sleep reuses the freed slot; the victim's event fires and wakes nobody.
        time.sleep(Duration::from_millis(20)).await;
        task_log
            .lock()
            .unwrap()
            .push(format!("last sleep done at {:?}", time.now()));
    })
    .unwrap();
    let log = log.lock().unwrap();
    assert_eq!(
        *log,
        vec![
            "victim dropped".to_string(),
            "trigger done at 1ms".to_string(),
            "last sleep done at 21ms".to_string(),
        ]
    );
    assert_eq!(summary.sim_time, Duration::from_millis(21));
    // Three timer events: the trigger's, the victim's (fires into a freed slot), the last's.
    assert_eq!(summary.events, 3);
}

#[test]
fn test_a_sleep_made_outside_the_run_completes_inside_it() {
    let mut world = SimWorld::with_config(9, quiet()).unwrap();
    let id = world.add_workload_process("holder", "10.0.0.3").unwrap();
    let early = world.providers(id).time().sleep(Duration::from_millis(4));
    world
        .add_workload("timers", "10.0.0.1", move |p| async move {
            early.await;
            assert_eq!(p.time().now(), Duration::from_millis(4));
        })
        .unwrap();
    let summary = world.run().unwrap();
    assert_eq!(summary.sim_time, Duration::from_millis(4));
}

#[test]
fn test_a_sleep_polled_outside_its_run_stays_pending_and_drops_cleanly() {
    let kept: Arc<Mutex<Option<BoxedFuture>>> = Arc::default();
    let keep = Arc::clone(&kept);
    let summary = run_with(6, false, false, move |p| async move {
        let time = p.time().clone();
        // Registered during the run, then kept past its end.
        let mut late: BoxedFuture = Box::pin(time.sleep(Duration::from_secs(5)));
        poll_fn(|cx| {
            assert!(late.as_mut().poll(cx).is_pending());
            Poll::Ready(())
        })
        .await;
        // One never polled during the run at all.
        let unpolled: BoxedFuture = Box::pin(time.sleep(Duration::from_secs(1)));
        *keep.lock().unwrap() = Some(late);
        drop(unpolled);
        time.sleep(Duration::from_millis(1)).await;
    });
    // The run ends when the workload does; the kept sleep's timer is still queued.
    assert_eq!(summary.unwrap().sim_time, Duration::from_millis(1));
    let mut late = kept.lock().unwrap().take().unwrap();
    let mut cx = Context::from_waker(Waker::noop());
    for _ in 0..3 {
        assert!(
            late.as_mut().poll(&mut cx).is_pending(),
            "on the test thread"
        );
    }
    let late = std::thread::spawn(move || {
        let mut cx = Context::from_waker(Waker::noop());
        assert!(
            late.as_mut().poll(&mut cx).is_pending(),
            "on another thread"
        );
        late
    })
    .join()
    .unwrap();
    drop(late);
}
