//! Hostile ranges for the random provider (`moonpool_core::random`'s `SampleRange`, drawn
//! through the simulator's provider, and through the world's own draws of configured ranges):
//! full integer ranges, empty ranges drawing nothing, and the ends of `Duration` and `f64`.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod hostile3_common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use hostile3_common::{quiet, run_caught};
use moonpool_core::{Providers, RandomProvider};
use moonpool_sim::SimProviders;

/// Runs `body` in a quiet world of `seed`; its value, or the run's failure as text.
fn draw<T: Send + 'static>(
    seed: u64,
    body: impl FnOnce(&SimProviders) -> T + Send + 'static,
) -> Result<T, String> {
    let out: Arc<Mutex<Option<T>>> = Arc::default();
    let o = Arc::clone(&out);
    let body = Mutex::new(Some(body));
    let mut world = quiet(seed);
    world
        .add_workload("draws", "10.0.0.1", move |p| {
            let body = body.lock().unwrap().take().unwrap();
            let o = Arc::clone(&o);
            async move {
                *o.lock().unwrap() = Some(body(&p));
            }
        })
        .unwrap();
    let outcome = format!("{:?}", run_caught(world));
    let value = out.lock().unwrap().take();
    value.ok_or(outcome)
}

#[test]
fn test_full_integer_ranges_draw_values_across_them() {
    let (unsigned, signed, bytes) = draw(1, |p| {
        let r = p.random();
        let unsigned: Vec<u64> = (0..64).map(|_| r.random_range(0..=u64::MAX)).collect();
        let signed: Vec<i64> = (0..64)
            .map(|_| r.random_range(i64::MIN..=i64::MAX))
            .collect();
        let bytes: Vec<u8> = (0..2_000).map(|_| r.random_range(0..=u8::MAX)).collect();
        (unsigned, signed, bytes)
    })
    .unwrap();
    assert!(unsigned.iter().any(|v| *v > u64::MAX / 2));
    assert!(unsigned.iter().any(|v| *v < u64::MAX / 2));
    assert!(signed.iter().any(|v| *v < 0) && signed.iter().any(|v| *v > 0));
    let distinct: std::collections::BTreeSet<u8> = bytes.into_iter().collect();
    assert_eq!(distinct.len(), 256, "every byte value drawn from 0..=255");
}

#[test]
fn test_empty_and_inverted_ranges_return_their_start_and_draw_nothing() {
    let with = draw(2, |p| {
        let r = p.random();
        let (high, low) = (9i64, 3i64);
        let picks = (
            r.random_range(5u32..5),
            r.random_range(high..=low),
            r.random_range(Duration::from_secs(2)..Duration::from_secs(1)),
            r.random_range(Duration::MAX..=Duration::MAX),
            r.random_range(1.5f64..1.5),
        );
        (picks, r.next_u64())
    })
    .unwrap();
    let without = draw(2, |p| p.random().next_u64()).unwrap();
    assert_eq!(
        with.0,
        (5, 9, Duration::from_secs(2), Duration::MAX, 1.5),
        "each range's start"
    );
    assert_eq!(with.1, without, "an empty range consumed randomness");
}

#[test]
fn test_a_duration_range_below_duration_max_draws_within_it() {
    let values = draw(3, |p| {
        let r = p.random();
        (0..64)
            .map(|_| r.random_range(Duration::ZERO..Duration::MAX))
            .collect::<Vec<_>>()
    })
    .unwrap();
    assert!(values.iter().all(|v| *v < Duration::MAX));
    assert!(values.iter().any(|v| *v > Duration::MAX / 2));
}

#[test]
fn test_a_duration_range_up_to_duration_max_draws_within_it() {
    let values = draw(4, |p| {
        let r = p.random();
        (0..64)
            .map(|_| r.random_range(Duration::from_secs(1)..=Duration::MAX))
            .collect::<Vec<_>>()
    })
    .expect("the draw did not complete");
    assert!(values.iter().all(|v| *v >= Duration::from_secs(1)));
}

#[test]
fn test_a_float_range_wider_than_f64_max_draws_more_than_its_ends() {
    let (open, closed) = draw(5, |p| {
        let r = p.random();
        let open: Vec<f64> = (0..64)
            .map(|_| r.random_range(f64::MIN..f64::MAX))
            .collect();
        let closed: Vec<f64> = (0..64)
            .map(|_| r.random_range(f64::MIN..=f64::MAX))
            .collect();
        (open, closed)
    })
    .unwrap();
    for (name, values) in [("open", &open), ("closed", &closed)] {
        assert!(values.iter().all(|v| v.is_finite()), "{name}: {values:?}");
        let inner = values
            .iter()
            .filter(|v| **v != f64::MIN && **v != f64::MAX)
            .count();
        assert!(inner > 0, "{name}: every draw was an end of the range");
    }
}
