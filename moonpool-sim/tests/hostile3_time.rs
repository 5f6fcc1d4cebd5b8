//! Hostile use of simulated time (`providers/time.rs`, `kernel/timers.rs`): a sleep's deadline
//! is fixed when it is made (as on Tokio), a finished sleep stays finished, timeouts of zero and
//! of `Duration::MAX`, nanosecond steps, and a sleep handed between tasks after its deadline.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod hostile3_common;

use std::future::{Future, poll_fn};
use std::pin::pin;
use std::task::Poll;
use std::time::Duration;

use hostile3_common::{quiet, run_caught};
use moonpool_core::{Providers, TaskProvider, TimeProvider};
use moonpool_sim::SimProviders;

fn run<F, Fut>(seed: u64, body: F) -> String
where
    F: FnOnce(SimProviders) -> Fut + Send + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let mut world = quiet(seed);
    world.add_workload("workload", "10.0.0.1", body).unwrap();
    format!("{:?}", run_caught(world))
}

fn assert_ok(outcome: &str) {
    assert!(outcome.starts_with("Ok(Ok("), "{outcome}");
}

#[test]
fn test_a_sleeps_deadline_counts_from_when_it_was_made_not_first_polled() {
    assert_ok(&run(1, |p| async move {
        let ms = Duration::from_millis;
        let late_poll = p.time().sleep(ms(10));
        let already_due = p.time().sleep(ms(5));
        p.time().sleep(ms(7)).await;
        already_due.await;
        assert_eq!(p.time().now(), ms(7), "a sleep due in the past ends now");
        late_poll.await;
        assert_eq!(
            p.time().now(),
            ms(10),
            "a sleep made at 0 for 10 ms ends at 10 ms"
        );
    }));
}

#[test]
fn test_a_finished_sleep_polled_again_stays_ready() {
    assert_ok(&run(2, |p| async move {
        let mut sleep = pin!(p.time().sleep(Duration::from_millis(1)));
        (&mut sleep).await;
        let at = p.time().now();
        for _ in 0..3 {
            let again = poll_fn(|cx| Poll::Ready(sleep.as_mut().poll(cx))).await;
            assert!(again.is_ready(), "a finished sleep went back to pending");
        }
        assert_eq!(p.time().now(), at);
    }));
}

#[test]
fn test_timeouts_of_zero_and_of_duration_max() {
    assert_ok(&run(3, |p| async move {
        let start = p.time().now();
        // Zero: a pending future times out at once, a ready one wins.
        let never = p
            .time()
            .timeout(Duration::ZERO, std::future::pending::<()>())
            .await;
        assert!(never.is_err());
        assert_eq!(p.time().now(), start, "a zero timeout takes no time");
        let ready = p.time().timeout(Duration::ZERO, async { 5 }).await;
        assert_eq!(ready.unwrap(), 5);
        // Duration::MAX: no overflow, the future decides.
        let value = p
            .time()
            .timeout(Duration::MAX, async {
                p.time().sleep(Duration::from_millis(3)).await;
                9
            })
            .await;
        assert_eq!(value.unwrap(), 9);
        assert_eq!(p.time().now(), start + Duration::from_millis(3));
        // Nested, same deadline: the inner future ready at the deadline wins twice.
        let d = Duration::from_millis(2);
        let nested = p
            .time()
            .timeout(d, p.time().timeout(d, p.time().sleep(d)))
            .await;
        assert!(matches!(nested, Ok(Ok(()))), "{nested:?}");
    }));
}

#[test]
fn test_a_hundred_thousand_nanosecond_sleeps_add_up_exactly() {
    assert_ok(&run(4, |p| async move {
        let start = p.time().now();
        for _ in 0..100_000 {
            p.time().sleep(Duration::from_nanos(1)).await;
        }
        assert_eq!(p.time().now() - start, Duration::from_micros(100));
    }));
}

#[test]
fn test_a_sleep_made_by_one_task_and_finished_by_another_after_its_deadline() {
    for seed in 0..4 {
        assert_ok(&run(seed, |p| async move {
            let ms = Duration::from_millis;
            let sleep = Box::pin(p.time().sleep(ms(2)));
            let p2 = p.clone();
            // The other task polls it only after its deadline has passed.
            let other = p.task().spawn("other", async move {
                p2.time().sleep(ms(5)).await;
                sleep.await;
                p2.time().now()
            });
            assert_eq!(other.await.unwrap(), ms(5));
        }));
    }
}

#[test]
fn test_the_run_ends_at_the_last_timer_when_many_are_dropped_unfired() {
    let mut world = quiet(5);
    world
        .add_workload("workload", "10.0.0.1", |p| async move {
            let mut sleeps: Vec<_> = (1..=1_000u64)
                .map(|i| Box::pin(p.time().sleep(Duration::from_secs(i))))
                .collect();
            poll_fn(|cx| {
                for sleep in &mut sleeps {
                    assert!(sleep.as_mut().poll(cx).is_pending());
                }
                Poll::Ready(())
            })
            .await;
            drop(sleeps);
            p.time().sleep(Duration::from_millis(1)).await;
        })
        .unwrap();
    let summary = world.run().unwrap();
    // The run ends with its workload: the dropped sleeps' timers keep it going no longer.
    assert_eq!(summary.sim_time, Duration::from_millis(1));
}
