//! Shrinking: three planted bugs that each need exactly one fault kind, and one that needs none;
//! the shrinker reports exactly that kind (or none), within (fault kinds + 1) runs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use moonpool_core::{
    NetworkProvider, OpenOptions, Providers, RandomProvider, StorageProvider, TaskProvider,
    TcpListener, TimeProvider, assert_always,
};
use moonpool_sim::{
    Attrition, Chaos, ClockConfiguration, FailureKind, FaultKind, FaultSet, IterationControl,
    NetworkConfiguration, RebootKind, ShrinkMode, SimulationBuilder, SimulationReport,
    StorageConfiguration,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The first failed seed's shrink result: (minimal kinds, runs, replay).
fn shrunk(report: &SimulationReport) -> (Vec<String>, usize, String) {
    let failed = report
        .failures()
        .next()
        .unwrap_or_else(|| panic!("no seed failed:\n{report}"));
    let info = failed
        .failure_info
        .as_ref()
        .expect("a failure has its structure");
    let shrunk = info.shrunk.as_ref().expect("the first failure is shrunk");
    assert!(shrunk.complete, "{report}");
    assert!(
        shrunk.runs <= FaultKind::ALL.len() + 1,
        "{} runs is more than the bound",
        shrunk.runs
    );
    (shrunk.minimal.clone(), shrunk.runs, shrunk.replay.clone())
}

// --- Bug 1: an echo protocol without a checksum, fooled by a bit flip --------------------------

async fn echo_server(ctx: moonpool_sim::ProcessContext) {
    let providers = ctx.providers.clone();
    let Ok(listener) = providers.network().bind(&format!("{}:7000", ctx.ip)).await else {
        return;
    };
    while let Ok((mut stream, _)) = listener.accept().await {
        let _conn = providers.task().spawn("echo", async move {
            let mut buf = [0u8; 16];
            while stream.read_exact(&mut buf).await.is_ok() {
                if stream.write_all(&buf).await.is_err() {
                    return;
                }
            }
        });
    }
}

async fn echo_client(
    ctx: moonpool_sim::WorkloadContext,
    rounds: Option<usize>,
) -> Result<(), moonpool_sim::WorkloadError> {
    {
        let server = ctx.topology.ips_of("echo")[0];
        let mut round = 0usize;
        while ctx.chaos_active() {
            round += 1;
            if let Some(limit) = rounds {
                // Bug 4: an off-by-one that fails whatever the faults.
                assert_always!(round < limit, "the round counter stays below its limit");
            }
            let sent: [u8; 16] = std::array::from_fn(|_| ctx.providers.random().random());
            let _ = ctx
                .providers
                .time()
                .timeout(Duration::from_millis(400), async {
                    let mut stream = ctx
                        .providers
                        .network()
                        .connect(&format!("{server}:7000"))
                        .await
                        .ok()?;
                    stream.write_all(&sent).await.ok()?;
                    let mut reply = [0u8; 16];
                    stream.read_exact(&mut reply).await.ok()?;
                    if rounds.is_none() {
                        // Bug 1: trusts the bytes without a checksum.
                        assert_always!(reply == sent, "the echo returns what was sent");
                    }
                    Some(())
                })
                .await;
            let _ = ctx.providers.time().timer();
            ctx.providers.time().sleep(Duration::from_millis(10)).await;
        }
        Ok(())
    }
}

fn echo_simulation(name: &str, rounds: Option<usize>) -> SimulationBuilder {
    SimulationBuilder::new(name)
        .progress(false)
        .jobs(1)
        .network({
            let mut cfg = NetworkConfiguration::default();
            cfg.bit_flip_probability = 0.01;
            cfg.bit_flip_cooldown = Duration::ZERO;
            cfg.clog_probability = 0.01;
            cfg
        })
        .chaos_duration(Duration::from_secs(3))
        .process("echo", 1, echo_server)
        .workload("client", 1, move |ctx| echo_client(ctx, rounds))
}

#[test]
fn test_a_bit_flip_on_an_unchecksummed_protocol_shrinks_to_bit_flips() {
    let report = echo_simulation("unchecksummed-echo", None)
        .iterations(IterationControl::FixedCount(8))
        .run()
        .unwrap();
    let failed = report.failures().next().unwrap();
    let info = failed.failure_info.as_ref().unwrap();
    assert_eq!(info.kind, FailureKind::Assertion);
    assert!(
        info.site.contains("the echo returns what was sent"),
        "{}",
        info.site
    );
    assert!(
        info.faults_fired.contains_key("network.bit_flip"),
        "{info:?}"
    );
    assert!(
        info.faults_fired.len() > 1,
        "other kinds fired too, so shrinking had something to remove: {info:?}"
    );
    let (minimal, _, replay) = shrunk(&report);
    assert_eq!(minimal, ["network.bit_flip"], "{report}");
    assert!(
        replay.starts_with(&format!(
            "MOONPOOL_FAULTS=network.bit_flip MOONPOOL_SEED={} ",
            failed.seed
        )),
        "{replay}"
    );
    // The text report says it, and the JSON carries it.
    let text = report.to_string();
    assert!(text.contains("needs:  network.bit_flip"), "{text}");
    assert!(
        text.contains("replay reduced: MOONPOOL_FAULTS=network.bit_flip"),
        "{text}"
    );
    let back = SimulationReport::from_json(&report.to_json().unwrap()).unwrap();
    assert_eq!(back, report);
    // The reduced run fails the same way: only bit flips, same seed.
    let reduced = echo_simulation("unchecksummed-echo", None)
        .faults(FaultSet::only([FaultKind::NetworkBitFlip]))
        .seeds([failed.seed])
        .shrink(ShrinkMode::Off)
        .run()
        .unwrap();
    let again = reduced.seeds[0].failure_info.as_ref().unwrap();
    assert_eq!((again.kind, &again.site), (info.kind, &info.site));
    assert_eq!(
        again.faults_fired.keys().collect::<Vec<_>>(),
        ["network.bit_flip"]
    );
}

#[test]
fn test_a_bug_without_faults_shrinks_to_none() {
    let report = echo_simulation("off-by-one", Some(5))
        .iterations(IterationControl::FixedCount(1))
        .run()
        .unwrap();
    let info = report.seeds[0].failure_info.as_ref().unwrap();
    assert!(!info.faults_fired.is_empty(), "faults fired: {info:?}");
    let (minimal, _, replay) = shrunk(&report);
    assert!(minimal.is_empty(), "{report}");
    assert!(
        replay.starts_with("MOONPOOL_FAULTS=none MOONPOOL_SEED="),
        "{replay}"
    );
    assert!(report.to_string().contains("needs:  no fault"), "{report}");
}

// --- Bug 2: a store that acknowledges before it syncs, caught by a crash ------------------------

async fn store(ctx: moonpool_sim::ProcessContext) {
    let providers = ctx.providers.clone();
    let Ok(mut log) = providers
        .storage()
        .open("log", OpenOptions::read_write_create().append(true))
        .await
    else {
        return;
    };
    let mut contents = Vec::new();
    let _ = tokio::io::AsyncSeekExt::seek(&mut log, std::io::SeekFrom::Start(0)).await;
    if log.read_to_end(&mut contents).await.is_err() {
        return;
    }
    let stored: Vec<u32> = contents
        .chunks_exact(4)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let acked: Vec<u32> = ctx.state.get("acked").unwrap_or_default();
    let lost = acked.iter().filter(|a| !stored.contains(a)).count();
    assert_always!(lost == 0, "acknowledged writes survive a reboot");
    let Ok(listener) = providers.network().bind(&format!("{}:7000", ctx.ip)).await else {
        return;
    };
    while let Ok((mut stream, _)) = listener.accept().await {
        let mut buf = [0u8; 4];
        let read = providers
            .time()
            .timeout(Duration::from_millis(500), stream.read_exact(&mut buf))
            .await;
        if !matches!(read, Ok(Ok(_))) {
            continue;
        }
        // Bug 2: acknowledged without a sync.
        if log.write_all(&buf).await.is_err() {
            continue;
        }
        let seq = u32::from_le_bytes(buf);
        ctx.state
            .update("acked", |acked: &mut Vec<u32>| acked.push(seq));
        let _ = stream.write_all(&[1]).await;
    }
}

fn store_simulation(runs: Arc<AtomicUsize>) -> SimulationBuilder {
    SimulationBuilder::new("ack-before-fsync")
        .progress(false)
        .jobs(1)
        .storage({
            let mut cfg = StorageConfiguration::crash_consistent();
            cfg.stall_probability = 0.01;
            cfg
        })
        .enable_chaos([
            Chaos::Network,
            Chaos::Storage,
            Chaos::Clock,
            Chaos::Attrition(
                Attrition::default()
                    .with_max_dead(1)
                    .with_interval((Duration::from_millis(300), Duration::from_secs(1)))
                    .with_recovery_delay((Duration::from_millis(100), Duration::from_millis(300)))
                    .with_kinds(vec![RebootKind::Crash]),
            ),
        ])
        .chaos_duration(Duration::from_secs(4))
        .process("store", 1, store)
        .workload("client", 1, move |ctx| {
            runs.fetch_add(1, Ordering::SeqCst);
            async move {
                let server = ctx.topology.ips_of("store")[0];
                let mut seq = 0u32;
                while ctx.chaos_active() {
                    seq += 1;
                    let _ = ctx
                        .providers
                        .time()
                        .timeout(Duration::from_millis(400), async {
                            let mut s = ctx
                                .providers
                                .network()
                                .connect(&format!("{server}:7000"))
                                .await
                                .ok()?;
                            s.write_all(&seq.to_le_bytes()).await.ok()?;
                            let mut ack = [0u8; 1];
                            s.read_exact(&mut ack).await.ok()
                        })
                        .await;
                    ctx.providers.time().sleep(Duration::from_millis(20)).await;
                }
                Ok(())
            }
        })
}

#[test]
fn test_an_ack_before_fsync_shrinks_to_attrition_within_the_bound() {
    let runs = Arc::new(AtomicUsize::new(0));
    let report = store_simulation(Arc::clone(&runs))
        .iterations(IterationControl::FixedCount(12))
        .run()
        .unwrap();
    let (minimal, shrink_runs, _) = shrunk(&report);
    assert_eq!(minimal, ["attrition"], "{report}");
    // Every run of a seed is counted: the seeds themselves plus the shrinker's, and the
    // shrinker's stay within the bound.
    assert_eq!(
        runs.load(Ordering::SeqCst),
        report.seeds_run() + shrink_runs
    );
    assert!(shrink_runs <= FaultKind::ALL.len() + 1);
    // The figure moonpool-sim/README.md and docs/fault-injection.md state.
    assert_eq!(FaultKind::ALL.len() + 1, 32);
    let info = report
        .failures()
        .next()
        .unwrap()
        .failure_info
        .as_ref()
        .unwrap();
    assert!(info.faults_fired.contains_key("attrition"), "{info:?}");
}

#[test]
fn test_shrinking_is_off_on_demand_and_bounded_by_its_budget() {
    let runs = Arc::new(AtomicUsize::new(0));
    let off = store_simulation(Arc::clone(&runs))
        .iterations(IterationControl::FixedCount(12))
        .shrink(ShrinkMode::Off)
        .run()
        .unwrap();
    assert!(off.failed() > 0);
    assert_eq!(runs.load(Ordering::SeqCst), off.seeds_run());
    assert!(
        off.failures()
            .all(|f| f.failure_info.as_ref().unwrap().shrunk.is_none())
    );

    let no_time = store_simulation(Arc::new(AtomicUsize::new(0)))
        .iterations(IterationControl::FixedCount(12))
        .shrink_budget(Duration::ZERO)
        .run()
        .unwrap();
    let first = no_time
        .failures()
        .next()
        .unwrap()
        .failure_info
        .as_ref()
        .unwrap();
    let shrunk = first.shrunk.as_ref().unwrap();
    assert!(!shrunk.complete);
    assert_eq!(shrunk.runs, 0);
    assert!(shrunk.minimal.contains(&"attrition".to_string()));
    assert!(no_time.to_string().contains("budget ran out"), "{no_time}");

    let every = store_simulation(Arc::new(AtomicUsize::new(0)))
        .iterations(IterationControl::FixedCount(12))
        .shrink(ShrinkMode::EveryFailure)
        // A budget too large for the clock is no deadline, not a panic.
        .shrink_budget(Duration::MAX)
        .run()
        .unwrap();
    assert!(every.failed() > 1, "{every}");
    for failed in every.failures() {
        let shrunk = failed
            .failure_info
            .as_ref()
            .unwrap()
            .shrunk
            .as_ref()
            .unwrap();
        assert_eq!(shrunk.minimal, ["attrition"], "seed {}", failed.seed);
    }
}

// --- Bug 3: a lease judged by a drifting clock -------------------------------------------------

#[test]
fn test_a_lease_on_a_drifting_clock_shrinks_to_clock_drift() {
    let report = SimulationBuilder::new("drifting-lease")
        .progress(false)
        .jobs(1)
        .clock(ClockConfiguration::default())
        .chaos_duration(Duration::from_secs(2))
        .iterations(IterationControl::FixedCount(4))
        .workload("lease", 1, |ctx| async move {
            let time = ctx.providers.time().clone();
            let lease = Duration::from_millis(300);
            // The holder's lease runs to `expiry` on the world clock; the grantor judges it by
            // its own `timer()` (bug 3: a drifting clock, no margin).
            let mut expiry = time.now() + lease;
            let mut granted_at = time.timer();
            while ctx.chaos_active() {
                let step = ctx.providers.random().random_range(1..40u64);
                time.sleep(Duration::from_millis(step)).await;
                if time.timer() >= granted_at + lease {
                    assert_always!(time.now() >= expiry, "a new lease never overlaps the old");
                    expiry = time.now() + lease;
                    granted_at = time.timer();
                }
            }
            Ok(())
        })
        .run()
        .unwrap();
    let info = report
        .failures()
        .next()
        .unwrap()
        .failure_info
        .as_ref()
        .unwrap();
    assert!(
        info.faults_fired.contains_key("clock.sleep_delay"),
        "{info:?}"
    );
    let (minimal, _, _) = shrunk(&report);
    assert_eq!(minimal, ["clock.drift"], "{report}");
}
