#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! `StorageConfiguration`: presets, validation and per-seed swarm configurations.

use std::time::Duration;

use moonpool_sim::{LatencyDistribution, SimError, SimWorld, StorageConfiguration, WorldConfig};

fn probabilities(config: &StorageConfiguration) -> Vec<(&'static str, f64)> {
    vec![
        ("read_corruption", config.read_corruption_probability),
        ("write_corruption", config.write_corruption_probability),
        ("misdirected_read", config.misdirected_read_probability),
        ("misdirected_write", config.misdirected_write_probability),
        ("phantom_write", config.phantom_write_probability),
        ("sync_failure", config.sync_failure_probability),
        ("uninitialized_read", config.uninitialized_read_probability),
        (
            "crash_keep_unsynced",
            config.crash_keep_unsynced_probability,
        ),
        ("torn_write", config.torn_write_probability),
        ("stall", config.stall_probability),
        ("throttle", config.throttle_probability),
        ("failed_disk", config.failed_disk_probability),
    ]
}

#[test]
fn test_presets_validate_and_quiet_ones_have_no_faults() {
    let default = StorageConfiguration::default();
    default.validate().unwrap();
    assert!(
        probabilities(&default).iter().all(|(_, p)| *p > 0.0),
        "faults are the default: {default:?}"
    );
    for quiet in [
        StorageConfiguration::fast_local(),
        StorageConfiguration::disabled(),
    ] {
        quiet.validate().unwrap();
        for (name, p) in probabilities(&quiet) {
            assert_eq!(p, 0.0, "{name} is on in a faultless preset");
        }
    }
    assert_eq!(
        StorageConfiguration::disabled().read_latency,
        default.read_latency
    );
    assert_eq!(
        StorageConfiguration::fast_local().read_latency,
        LatencyDistribution::Fixed(Duration::from_micros(10))
    );
}

#[test]
fn test_validate_names_the_bad_field_and_value() {
    let cases: Vec<(StorageConfiguration, &str)> = vec![
        (
            {
                let mut cfg = StorageConfiguration::default();
                cfg.torn_write_probability = 1.5;
                cfg
            },
            "torn_write_probability is 1.5",
        ),
        (
            {
                let mut cfg = StorageConfiguration::default();
                cfg.phantom_write_probability = -0.1;
                cfg
            },
            "phantom_write_probability is -0.1",
        ),
        (
            {
                let mut cfg = StorageConfiguration::default();
                cfg.stall_duration = (Duration::from_secs(2), Duration::from_secs(1));
                cfg
            },
            "stall_duration",
        ),
        (
            {
                let mut cfg = StorageConfiguration::default();
                cfg.throttle_factor = (0.5, 2.0);
                cfg
            },
            "throttle_factor is (0.5, 2)",
        ),
        (
            {
                let mut cfg = StorageConfiguration::default();
                cfg.sync_latency = LatencyDistribution::Uniform {
                    min: Duration::from_millis(5),
                    max: Duration::from_millis(1),
                };
                cfg
            },
            "sync_latency",
        ),
    ];
    for (config, expected) in cases {
        let error = config.validate().unwrap_err();
        assert!(error.contains(expected), "{error:?} lacks {expected:?}");
        match SimWorld::with_config(1, {
            let mut cfg = WorldConfig::quiet();
            cfg.storage = config;
            cfg
        }) {
            Err(SimError::InvalidSetup { message }) => {
                assert!(message.contains(expected), "{message}")
            }
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("an invalid configuration was accepted"),
        }
    }
}

#[test]
fn test_random_for_seed_is_deterministic_and_swarms_fault_families() {
    let mut on = [0u32; 12];
    for seed in 0..200 {
        let config = StorageConfiguration::random_for_seed(seed);
        assert_eq!(config, StorageConfiguration::random_for_seed(seed));
        config.validate().unwrap();
        for (i, (_, p)) in probabilities(&config).iter().enumerate() {
            if *p > 0.0 {
                on[i] += 1;
            }
        }
    }
    for (i, (name, _)) in probabilities(&StorageConfiguration::default())
        .iter()
        .enumerate()
    {
        // Torn writes only apply when unsynced writes can survive at all: about a quarter.
        let low = if *name == "torn_write" { 25 } else { 60 };
        assert!(
            (low..=140).contains(&on[i]),
            "{name} on in {} of 200 seeds",
            on[i]
        );
    }
}
