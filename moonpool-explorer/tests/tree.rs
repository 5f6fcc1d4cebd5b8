//! The explorer on its own, with a toy timeline (a chain of coin flips driven by `mix`): energy,
//! depth and overflow are bounded and counted, sequential exploration is a function of the root
//! seeds and the budget, and the shared memory is released.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(any(target_os = "linux", target_os = "macos"))]

use moonpool_explorer::{
    BUG_CAPACITY, Branch, Bug, Coverage, ExplorationConfig, ExplorationFigures, Explorer, Failure,
    SITE_CAPACITY, SiteDelta, SiteInfo, SplitPoint, TimelineEnd, mix,
};

/// `steps` flips; a flip that comes up (one in `odds`) is a discovery of this lineage; a
/// timeline that gets `needed` of them fails.
fn explore(
    config: ExplorationConfig,
    roots: u64,
    steps: u64,
    odds: u64,
    needed: u64,
) -> (Vec<Bug>, ExplorationFigures) {
    let mut explorer = Explorer::new(config).unwrap();
    let mut bugs = Vec::new();
    for root in 0..roots {
        explorer.begin_tree(root);
        let mut rng = mix(root, 99);
        let mut found = 0;
        for position in 1..=steps {
            rng = mix(rng, position);
            let up = rng.is_multiple_of(odds);
            let fresh = explorer.cover(mix(found, u64::from(up))) == Coverage::New;
            if up {
                found += 1;
                if found == needed {
                    break;
                }
                if let Branch::Child { seed } = explorer.split(SplitPoint { position, fresh }) {
                    rng = seed;
                }
            }
        }
        let failure = (found == needed).then(|| Failure {
            text: format!("{found} flips came up"),
            signature: "all flips".to_string(),
            structured: format!("{{\"flips\":{found}}}"),
        });
        explorer.end_timeline(&TimelineEnd {
            failure,
            fingerprint: rng,
        });
        bugs.extend(explorer.take_tree().bugs);
    }
    (bugs, explorer.figures())
}

fn without_times(bugs: &[Bug]) -> Vec<Bug> {
    bugs.iter()
        .map(|b| Bug {
            wall_time: std::time::Duration::ZERO,
            ..b.clone()
        })
        .collect()
}

#[test]
fn test_sequential_exploration_is_a_function_of_the_roots_and_the_budget() {
    let config = ExplorationConfig::default()
        .with_global_energy(400)
        .with_per_split(40)
        .with_min_per_split(20)
        .with_batch(5)
        .sequential();
    let (a, fa) = explore(config.clone(), 60, 6, 8, 3);
    let (b, fb) = explore(config, 60, 6, 8, 3);
    assert!(!a.is_empty());
    assert_eq!(without_times(&a), without_times(&b));
    assert_eq!(
        ExplorationFigures {
            first_bug_wall: None,
            ..fa
        },
        ExplorationFigures {
            first_bug_wall: None,
            ..fb
        }
    );
}

#[test]
fn test_energy_and_depth_are_bounded_and_accounted() {
    let config = ExplorationConfig::default()
        .with_global_energy(150)
        .with_per_split(20)
        .with_min_per_split(10)
        .with_batch(5)
        .with_max_depth(2)
        .sequential();
    let (_, f) = explore(config, 200, 10, 3, 100);
    assert_eq!(f.children, 150, "{f:?}");
    assert_eq!(f.energy_left, 0, "{f:?}");
    assert_eq!(f.timelines, f.roots + f.children);
    assert!(f.max_depth_reached <= 2, "{f:?}");
    assert!(f.skipped_depth > 0, "{f:?}");
    assert!(f.skipped_energy > 0, "{f:?}");
    assert!(f.energy_returned > 0, "{f:?}");
    assert_eq!(f.pool_left + f.energy_drawn, f.energy_returned, "{f:?}");
    assert_eq!(
        f.peak_running, 2,
        "one child and its own child at most: {f:?}"
    );
}

#[test]
fn test_parallel_children_run_at_once_within_the_bound() {
    let config = ExplorationConfig::default()
        .with_global_energy(300)
        .with_per_split(60)
        .with_min_per_split(60)
        .with_batch(20)
        .with_max_depth(1)
        .with_parallelism(3);
    let (bugs, f) = explore(config, 40, 6, 4, 2);
    assert!(!bugs.is_empty());
    // The runner's structured failure travels from the child as it was given.
    assert!(
        bugs.iter().all(|b| b.structured.starts_with("{\"flips\":")),
        "{bugs:?}"
    );
    assert!(f.peak_running > 1, "{f:?}");
    assert!(f.peak_running <= 3, "{f:?}");
}

#[test]
fn test_every_full_table_counts_what_did_not_fit() {
    // Bugs: every child of one split fails, more than a tree's table holds.
    let children = BUG_CAPACITY as u64 + 40;
    let config = ExplorationConfig::default()
        .with_global_energy(children)
        .with_per_split(children)
        .with_min_per_split(children)
        .with_batch(16)
        .with_max_depth(1)
        .sequential();
    let mut explorer = Explorer::new(config).unwrap();
    explorer.begin_tree(1);
    let branch = explorer.split(SplitPoint {
        position: 1,
        fresh: true,
    });
    if let Branch::Child { seed } = branch {
        explorer.end_timeline(&TimelineEnd {
            failure: Some(Failure {
                text: "x".repeat(10_000),
                signature: "every child".to_string(),
                structured: String::new(),
            }),
            fingerprint: seed,
        });
    }
    explorer.end_timeline(&TimelineEnd {
        failure: None,
        fingerprint: 0,
    });
    let tree = explorer.take_tree();
    let f = explorer.figures();
    assert_eq!(tree.bugs.len(), BUG_CAPACITY);
    assert_eq!(f.bugs_found, children);
    assert_eq!(f.overflow.bugs, 40);
    assert!(f.overflow.texts_cut >= BUG_CAPACITY as u64, "{f:?}");

    // Assertion sites: more distinct sites than the table holds.
    for key in 1..=(SITE_CAPACITY as u64 + 10) {
        explorer.record_site(
            key,
            &SiteInfo {
                kind: 1,
                higher_is_better: true,
                message: "m",
                location: "l",
            },
            &SiteDelta {
                holds: Some(true),
                ..SiteDelta::default()
            },
        );
    }
    assert_eq!(explorer.figures().overflow.sites, 10);

    // Coverage: more keys than the set holds.
    let mut overflowed = 0;
    for key in 0..(moonpool_explorer::COVERAGE_CAPACITY as u64 + 1_000) {
        if explorer.cover(mix(key, 7)) == Coverage::Overflow {
            overflowed += 1;
        }
    }
    let f = explorer.figures();
    assert!(overflowed > 0);
    assert_eq!(f.overflow.coverage, overflowed);
    assert_eq!(
        f.coverage_keys + overflowed,
        moonpool_explorer::COVERAGE_CAPACITY as u64 + 1_000
    );
}

#[cfg(target_os = "linux")]
#[test]
fn test_the_shared_memory_is_released_when_the_explorer_is_dropped() {
    let mapped = |address: usize| {
        std::fs::read_to_string("/proc/self/maps")
            .unwrap()
            .lines()
            .any(|line| line.starts_with(&format!("{address:x}-")))
    };
    let explorer = Explorer::new(ExplorationConfig::default()).unwrap();
    let (address, len) = explorer.shared_memory();
    assert!(len > 0);
    assert!(mapped(address));
    drop(explorer);
    assert!(!mapped(address));
}
