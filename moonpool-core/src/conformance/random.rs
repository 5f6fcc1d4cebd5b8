//! Contracts of [`RandomProvider`].

use std::time::Duration;

use super::{ContractResult, Fixture, ensure};
use crate::{Providers, RandomProvider};

/// Range draws stay within their bounds; empty ranges yield their start.
pub async fn range_in_bounds<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let random = fx.providers.random();
    for _ in 0..1_000 {
        let v: u32 = random.random_range(10..20);
        ensure!((10..20).contains(&v), "random_range(10..20) gave {v}");
        let v: i64 = random.random_range(-3..=3);
        ensure!((-3..=3).contains(&v), "random_range(-3..=3) gave {v}");
        let v: f64 = random.random_range(0.5..1.5);
        ensure!((0.5..1.5).contains(&v), "random_range(0.5..1.5) gave {v}");
        let r = random.random_ratio();
        ensure!((0.0..1.0).contains(&r), "random_ratio gave {r}");
        let d = random.random_range(Duration::from_millis(1)..Duration::from_millis(2));
        ensure!(
            d >= Duration::from_millis(1) && d < Duration::from_millis(2),
            "duration range gave {d:?}"
        );
    }
    let v: u32 = random.random_range(7..7);
    ensure!(v == 7, "empty range 7..7 gave {v}");
    Ok(())
}

/// Probability 0 is never true, 1 always true.
pub async fn bool_extremes<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let random = fx.providers.random();
    for _ in 0..1_000 {
        ensure!(!random.random_bool(0.0), "random_bool(0.0) returned true");
        ensure!(random.random_bool(1.0), "random_bool(1.0) returned false");
    }
    let hits = (0..10_000).filter(|_| random.random_bool(0.5)).count();
    ensure!(
        (4_000..6_000).contains(&hits),
        "random_bool(0.5) was true {hits} times in 10000"
    );
    Ok(())
}

/// Draws vary and cover a small range fully.
pub async fn values_vary<P: Providers>(fx: &Fixture<P>) -> ContractResult {
    let random = fx.providers.random();
    let first: u64 = random.random();
    let varied = (0..100).any(|_| random.random::<u64>() != first);
    ensure!(varied, "100 draws of u64 all equal {first}");
    let mut seen = [false; 8];
    for _ in 0..1_000 {
        seen[random.random_range(0usize..8)] = true;
    }
    ensure!(
        seen.iter().all(|s| *s),
        "random_range(0..8) missed a value in 1000 draws: {seen:?}"
    );
    Ok(())
}
