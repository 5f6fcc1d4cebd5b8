//! The deterministic `select!`: seeded starting branch, tokio semantics otherwise.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::cell::Cell;
use std::rc::Rc;

use moonpool_core::select::{install_offset_source, select_offset};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap()
}

/// Both branches ready: which one wins is decided by the installed offset source.
async fn race() -> &'static str {
    moonpool_core::select! {
        () = std::future::ready(()) => "first",
        () = std::future::ready(()) => "second",
    }
}

#[test]
fn test_installed_source_decides_the_winner() {
    let rt = runtime();
    for (offset, expected) in [(0u32, "first"), (1, "second")] {
        let _guard = install_offset_source(move |_| offset);
        assert_eq!(rt.block_on(race()), expected);
    }
}

#[test]
fn test_offset_sequence_replays_from_seed() {
    let rt = runtime();
    let winners = |seed: u64| {
        let state = Rc::new(Cell::new(seed));
        let source_state = Rc::clone(&state);
        let _guard = install_offset_source(move |n| {
            // A tiny LCG stands in for the world's seeded generator.
            let next = source_state
                .get()
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1);
            source_state.set(next);
            u32::try_from((next >> 33) % u64::from(n)).unwrap()
        });
        (0..64).map(|_| rt.block_on(race())).collect::<Vec<_>>()
    };
    assert_eq!(winners(1), winners(1));
    assert_ne!(winners(1), winners(2));
    let both = winners(1);
    assert!(both.contains(&"first") && both.contains(&"second"));
}

#[test]
fn test_guard_uninstalls_even_on_panic() {
    let result = std::panic::catch_unwind(|| {
        let _guard = install_offset_source(|_| 1);
        assert_eq!(select_offset(2), 1);
        panic!("run failed");
    });
    assert!(result.is_err());
    // The fallback is back: over many draws both offsets appear.
    let draws: Vec<u32> = (0..200).map(|_| select_offset(2)).collect();
    assert!(draws.contains(&0) && draws.contains(&1));
}

#[test]
fn test_biased_always_takes_first_ready_branch() {
    let rt = runtime();
    let _guard = install_offset_source(|_| 1);
    for _ in 0..10 {
        let got = rt.block_on(async {
            moonpool_core::select! {
                biased;
                () = std::future::ready(()) => "first",
                () = std::future::ready(()) => "second",
            }
        });
        assert_eq!(got, "first");
    }
}

#[test]
fn test_preconditions_patterns_and_else() {
    let rt = runtime();
    let got = rt.block_on(async {
        let disabled = false;
        moonpool_core::select! {
            v = std::future::ready(1), if disabled => v,
            Some(v) = std::future::ready(None::<i32>) => v,
            else => -1,
        }
    });
    assert_eq!(got, -1);
    let got = rt.block_on(async {
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<i32>();
        tx.send(5).unwrap();
        moonpool_core::select! {
            Some(v) = rx.recv() => v * 2,
            () = std::future::pending() => 0,
        }
    });
    assert_eq!(got, 10);
}
