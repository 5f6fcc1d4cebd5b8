//! A simulation declared wrongly is refused by `run()` before its first seed, with an
//! `InvalidSetup` error naming the field and the bad value.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use moonpool_core::{Providers, TimeProvider};
use moonpool_sim::{
    Attrition, BuggifyConfig, Chaos, ClockConfiguration, IterationControl, NetworkConfiguration,
    RebootKind, SimError, SimulationBuilder, StorageConfiguration, WorldConfig,
};

/// A simulation that counts its workload runs in `runs`: one server, one client.
fn sim(name: &str, runs: &Arc<AtomicUsize>) -> SimulationBuilder {
    let runs = Arc::clone(runs);
    SimulationBuilder::new(name)
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(1))
        .process("server", 1, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_secs(3600)).await;
        })
        .workload("client", 1, move |ctx| {
            let runs = Arc::clone(&runs);
            async move {
                runs.fetch_add(1, Ordering::SeqCst);
                ctx.providers.time().sleep(Duration::from_millis(10)).await;
                Ok(())
            }
        })
}

/// Runs `build` (given the run counter) and checks it is refused, before any seed, with a message
/// containing every one of `needles`.
fn refused(build: impl FnOnce(&Arc<AtomicUsize>) -> SimulationBuilder, needles: &[&str]) {
    let runs = Arc::new(AtomicUsize::new(0));
    let result = build(&runs).run();
    let error = match result {
        Err(error) => error,
        Ok(report) => panic!("accepted; the report:\n{report}"),
    };
    assert!(
        matches!(error, SimError::InvalidSetup { .. }),
        "not a setup error: {error}"
    );
    let message = error.to_string();
    for needle in needles {
        assert!(
            message.contains(needle),
            "'{needle}' missing from: {message}"
        );
    }
    assert_eq!(
        runs.load(Ordering::SeqCst),
        0,
        "a seed ran before: {message}"
    );
}

/// Runs `build` and checks it was not refused as a setup mistake.
fn accepted(build: impl FnOnce(&Arc<AtomicUsize>) -> SimulationBuilder) {
    let runs = Arc::new(AtomicUsize::new(0));
    if let Err(error) = build(&runs).run() {
        panic!("refused: {error}");
    }
}

fn clock(p: f64) -> ClockConfiguration {
    let mut cfg = ClockConfiguration::default();
    cfg.sleep_delay_probability = p;
    cfg.sleep_delay_max = Duration::from_millis(10);
    cfg
}

fn buggify(p: f64) -> BuggifyConfig {
    let mut cfg = BuggifyConfig::default();
    cfg.enabled = true;
    cfg.site_activation_probability = p;
    cfg
}

#[test]
fn test_clock_sleep_delay_probability_nan() {
    refused(
        |r| sim("clock-nan", r).clock(clock(f64::NAN)),
        &["clock", "sleep_delay_probability", "NaN"],
    );
}

#[test]
fn test_clock_sleep_delay_probability_negative() {
    refused(
        |r| sim("clock-negative", r).clock(clock(-0.5)),
        &["sleep_delay_probability", "-0.5"],
    );
}

#[test]
fn test_clock_sleep_delay_probability_above_one() {
    refused(
        |r| sim("clock-above", r).clock(clock(1.5)),
        &["sleep_delay_probability", "1.5"],
    );
}

#[test]
fn test_clock_sleep_delay_probability_infinite() {
    refused(
        |r| sim("clock-inf", r).clock(clock(f64::INFINITY)),
        &["sleep_delay_probability", "inf"],
    );
}

#[test]
fn test_buggify_site_activation_probability_nan() {
    refused(
        |r| sim("buggify-nan", r).buggify(buggify(f64::NAN)),
        &["buggify", "site_activation_probability", "NaN"],
    );
}

#[test]
fn test_buggify_site_activation_probability_negative() {
    refused(
        |r| sim("buggify-negative", r).buggify(buggify(-1.0)),
        &["site_activation_probability", "-1"],
    );
}

#[test]
fn test_buggify_site_activation_probability_above_one() {
    refused(
        |r| sim("buggify-above", r).buggify(buggify(2.0)),
        &["site_activation_probability", "2"],
    );
}

#[test]
fn test_buggify_site_activation_probability_infinite() {
    refused(
        |r| sim("buggify-inf", r).buggify(buggify(f64::NEG_INFINITY)),
        &["site_activation_probability", "-inf"],
    );
}

#[test]
fn test_buggify_probability_checked_even_when_disabled() {
    refused(
        |r| {
            sim("buggify-disabled", r).buggify({
                let mut cfg = BuggifyConfig::default();
                cfg.enabled = false;
                cfg.site_activation_probability = f64::NAN;
                cfg
            })
        },
        &["site_activation_probability", "NaN"],
    );
}

#[test]
fn test_network_configuration_still_validated() {
    refused(
        |r| {
            sim("network", r).network({
                let mut cfg = NetworkConfiguration::fast_local();
                cfg.clog_probability = 3.0;
                cfg
            })
        },
        &["network", "clog_probability", "3"],
    );
}

#[test]
fn test_storage_configuration_still_validated() {
    refused(
        |r| {
            sim("storage", r).storage({
                let mut cfg = StorageConfiguration::fast_local();
                cfg.read_corruption_probability = -0.25;
                cfg
            })
        },
        &["storage", "read_corruption_probability", "-0.25"],
    );
}

fn attrition(sim: SimulationBuilder, attrition: Attrition) -> SimulationBuilder {
    sim.enable_chaos([Chaos::Attrition(attrition)])
}

#[test]
fn test_attrition_interval_min_above_max() {
    refused(
        |r| {
            attrition(
                sim("attrition-interval", r),
                Attrition::default()
                    .with_interval((Duration::from_secs(5), Duration::from_secs(1))),
            )
        },
        &["Attrition", "interval", "5s", "1s"],
    );
}

#[test]
fn test_attrition_zero_interval() {
    refused(
        |r| {
            attrition(
                sim("attrition-zero-interval", r),
                Attrition::default().with_interval((Duration::ZERO, Duration::ZERO)),
            )
        },
        &["Attrition", "interval", "0ns"],
    );
}

#[test]
fn test_attrition_zero_lower_bound_accepted() {
    accepted(|r| {
        attrition(
            sim("attrition-zero-lower", r),
            Attrition::default().with_interval((Duration::ZERO, Duration::from_millis(500))),
        )
    });
}

#[test]
fn test_attrition_recovery_delay_min_above_max() {
    refused(
        |r| {
            attrition(
                sim("attrition-recovery", r),
                Attrition::default()
                    .with_recovery_delay((Duration::from_secs(3), Duration::from_millis(500))),
            )
        },
        &["Attrition", "recovery_delay", "3s", "500ms"],
    );
}

#[test]
fn test_attrition_empty_kinds() {
    refused(
        |r| {
            attrition(
                sim("attrition-kinds", r),
                Attrition::default().with_kinds(Vec::new()),
            )
        },
        &["Attrition", "kinds", "empty"],
    );
}

#[test]
fn test_attrition_max_dead_zero() {
    refused(
        |r| {
            attrition(
                sim("attrition-max-dead", r),
                Attrition::default().with_max_dead(0),
            )
        },
        &["Attrition", "max_dead is 0"],
    );
}

#[test]
fn test_attrition_without_server_processes() {
    refused(
        |r| {
            let runs = Arc::clone(r);
            SimulationBuilder::new("attrition-no-processes")
                .progress(false)
                .enable_chaos([Chaos::Attrition(
                    Attrition::default().with_kinds(vec![RebootKind::Crash]),
                )])
                .workload("w", 1, move |_ctx| {
                    runs.fetch_add(1, Ordering::SeqCst);
                    async { Ok(()) }
                })
        },
        &["Attrition", "no server processes"],
    );
}

#[test]
fn test_duplicate_process_groups() {
    refused(
        |r| {
            sim("dup-processes", r).process("server", 2, |ctx| async move {
                ctx.providers.time().sleep(Duration::from_secs(3600)).await;
            })
        },
        &["'server'", "2 times", "process, process"],
    );
}

#[test]
fn test_duplicate_workload_groups() {
    refused(
        |r| sim("dup-workloads", r).workload("client", 1, |_ctx| async { Ok(()) }),
        &["'client'", "2 times", "workload, workload"],
    );
}

#[test]
fn test_process_and_workload_groups_share_a_name() {
    refused(
        |r| sim("dup-mixed", r).workload("server", 1, |_ctx| async { Ok(()) }),
        &["'server'", "process, workload"],
    );
}

#[test]
fn test_no_workloads() {
    refused(
        |_| {
            SimulationBuilder::new("no-workloads")
                .progress(false)
                .process("server", 1, |ctx| async move {
                    ctx.providers.time().sleep(Duration::from_secs(1)).await;
                })
        },
        &["no workloads"],
    );
}

#[test]
fn test_no_processes_and_no_workloads() {
    refused(
        |_| SimulationBuilder::new("empty").progress(false),
        &["'empty'", "no workloads"],
    );
}

#[test]
fn test_workloads_without_processes_accepted() {
    accepted(|r| {
        let runs = Arc::clone(r);
        SimulationBuilder::new("workloads-only")
            .progress(false)
            .iterations(IterationControl::FixedCount(1))
            .workload("w", 1, move |_ctx| {
                runs.fetch_add(1, Ordering::SeqCst);
                async { Ok(()) }
            })
    });
}

#[test]
fn test_process_group_of_zero() {
    refused(
        |r| {
            sim("zero-processes", r).process("idle", 0, |ctx| async move {
                ctx.providers.time().sleep(Duration::from_secs(1)).await;
            })
        },
        &["process group 'idle'", "count of 0"],
    );
}

#[test]
fn test_workload_group_of_zero() {
    refused(
        |r| sim("zero-workloads", r).workload("idle", 0, |_ctx| async { Ok(()) }),
        &["workload group 'idle'", "count of 0"],
    );
}

#[test]
fn test_settle_timeout_zero() {
    refused(
        |r| sim("settle-zero", r).settle_timeout(Duration::ZERO),
        &["settle_timeout is 0s"],
    );
}

#[test]
fn test_chaos_duration_zero_accepted() {
    accepted(|r| sim("chaos-zero", r).chaos_duration(Duration::ZERO));
}

#[test]
fn test_duration_max_accepted() {
    accepted(|r| {
        sim("durations-max", r)
            .chaos_duration(Duration::MAX)
            .settle_timeout(Duration::MAX)
    });
}

#[test]
fn test_time_budget_zero() {
    refused(
        |r| sim("budget-zero", r).time_budget(Duration::ZERO),
        &["time_budget is 0s"],
    );
}

#[test]
fn test_poll_bound_zero() {
    refused(
        |r| {
            sim("poll-bound-zero", r).world_config({
                let mut cfg = WorldConfig::quiet();
                cfg.poll_bound = 0;
                cfg
            })
        },
        &["poll_bound is 0"],
    );
}

#[test]
fn test_watchdog_stall_zero() {
    refused(
        |r| {
            sim("stall-zero", r).world_config({
                let mut cfg = WorldConfig::quiet();
                cfg.watchdog_stall = Some(Duration::ZERO);
                cfg
            })
        },
        &["watchdog_stall is Some(0s)"],
    );
}

#[test]
fn test_every_problem_is_listed() {
    refused(
        |r| {
            sim("many", r)
                .settle_timeout(Duration::ZERO)
                .clock(clock(f64::NAN))
                .workload("client", 1, |_ctx| async { Ok(()) })
        },
        &[
            "3 problems",
            "settle_timeout",
            "sleep_delay_probability is NaN",
            "'client'",
        ],
    );
}

/// Every network timeout, cooldown and fault span past 100 years is refused by `validate`, which
/// names the field; 100 years exactly is accepted.
#[test]
fn test_network_spans_past_a_hundred_years_are_refused_by_name() {
    let century = Duration::from_secs(100 * 365 * 24 * 3600);
    let past = century + Duration::from_secs(1);
    type Set = fn(&mut NetworkConfiguration, Duration);
    let fields: [(&str, Set); 11] = [
        ("pair_latency_max", |c, d| c.pair_latency_max = d),
        ("connect_timeout", |c, d| c.connect_timeout = d),
        ("random_close_cooldown", |c, d| c.random_close_cooldown = d),
        ("half_open_timeout", |c, d| c.half_open_timeout = d),
        ("bit_flip_cooldown", |c, d| c.bit_flip_cooldown = d),
        ("retransmit_timeout", |c, d| c.retransmit_timeout = d),
        ("clog_duration", |c, d| {
            c.clog_duration = (Duration::ZERO, d)
        }),
        ("partition_duration", |c, d| c.partition_duration = (d, d)),
        ("cut_duration", |c, d| c.cut_duration = (Duration::ZERO, d)),
        ("read_clog_duration", |c, d| {
            c.read_clog_duration = (Duration::ZERO, d)
        }),
        ("loss_burst_duration", |c, d| {
            c.loss_burst_duration = (Duration::ZERO, d)
        }),
    ];
    for (field, set) in fields {
        let mut config = NetworkConfiguration::default();
        set(&mut config, past);
        let error = config.validate().expect_err(field);
        assert!(
            error.contains(field) && error.contains("100-year"),
            "{field}: {error}"
        );
        let mut config = NetworkConfiguration::default();
        set(&mut config, century);
        assert_eq!(config.validate(), Ok(()), "{field} at 100 years");
    }
    let mut storage = moonpool_sim::StorageConfiguration::default();
    storage.stall_duration = (Duration::ZERO, Duration::MAX);
    assert!(storage.validate().unwrap_err().contains("stall_duration"));
}

/// The errors whose field name is composed (a latency distribution's field and part, a range's
/// maximum, a bimodal distribution's slow share) name the whole path and the bad value. The
/// names are written out only when a check fails, so this pins each composed message whole.
#[test]
fn test_composed_field_names_are_written_out_in_full() {
    use moonpool_sim::LatencyDistribution;
    let ms = Duration::from_millis;
    let past = moonpool_sim::MAX_LATENCY + Duration::from_secs(1);
    let cases: [(LatencyDistribution, &str); 5] = [
        (
            LatencyDistribution::Uniform {
                min: ms(2),
                max: ms(1),
            },
            "write_latency: uniform minimum 2ms exceeds maximum 1ms",
        ),
        (
            LatencyDistribution::Exponential {
                mean: ms(1),
                max: past,
            },
            "write_latency: exponential maximum is 3153600001s, past the 100-year bound",
        ),
        (
            LatencyDistribution::Bimodal {
                fast: (ms(1), ms(2)),
                slow: (ms(9), ms(3)),
                slow_probability: 0.5,
            },
            "write_latency: slow minimum 9ms exceeds maximum 3ms",
        ),
        (
            LatencyDistribution::Bimodal {
                fast: (ms(1), ms(2)),
                slow: (ms(3), ms(9)),
                slow_probability: 1.5,
            },
            "write_latency.slow_probability is 1.5, expected a probability in [0, 1]",
        ),
        (
            LatencyDistribution::Bimodal {
                fast: (ms(1), past),
                slow: (ms(3), ms(9)),
                slow_probability: 0.5,
            },
            "write_latency: fast maximum is 3153600001s, past the 100-year bound",
        ),
    ];
    for (latency, expected) in cases {
        let mut config = NetworkConfiguration::default();
        config.write_latency = latency;
        let error = config.validate().expect_err(expected);
        assert!(error.starts_with(expected), "{error}");
    }
    let mut config = NetworkConfiguration::default();
    config.cut_duration = (Duration::ZERO, past);
    let error = config.validate().unwrap_err();
    assert!(
        error.starts_with("cut_duration maximum is 3153600001s, past the 100-year bound"),
        "{error}"
    );
    let mut storage = StorageConfiguration::default();
    storage.read_latency = LatencyDistribution::Uniform {
        min: ms(5),
        max: ms(4),
    };
    assert_eq!(
        storage.validate(),
        Err("read_latency: uniform minimum 5ms exceeds maximum 4ms".to_string())
    );
}
