//! Fault independence: turning one fault kind off leaves every other decision of a seed's run
//! unchanged until the first moment that kind fired.
//!
//! The comparison, exactly: run seed `s` with every fault kind (the *full* run) and with every
//! kind but `k` (the *reduced* run), both with their event traces recorded. Let `cut` be the
//! index of the first fault mark of kind `k` in the full trace (its length if `k` never fired).
//! Then the reduced trace, filtered to exclude marks of kind `k` (it has none), must start with
//! the full trace's first `cut` entries, entry for entry (time, event kind, object, the hash of
//! the task polls before it, sequence, processes), fault marks of the other kinds included. If
//! `k` never fired, the two runs must be identical: same trace, same fingerprint, same verdict.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool_core::{
    NetworkProvider, OpenOptions, Providers, RandomProvider, StorageFile, StorageProvider,
    TaskProvider, TcpListener, TimeProvider,
};
use moonpool_sim::{
    Attrition, Chaos, FaultKind, FaultSet, IterationControl, NetworkConfiguration, RebootKind,
    RunSummary, SimulationBuilder, StorageConfiguration, TRACE_FAULT, TraceEntry,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server that appends what it receives to a file (syncing only every other block, so
/// crashes have unsynced writes to lose, keep or tear) and answers with a byte.
async fn server(ctx: moonpool_sim::ProcessContext) {
    let providers = ctx.providers.clone();
    let Ok(listener) = providers.network().bind(&format!("{}:7000", ctx.ip)).await else {
        return;
    };
    let Ok(file) = providers
        .storage()
        .open("log", OpenOptions::read_write_create().append(true))
        .await
    else {
        return;
    };
    let file = std::sync::Arc::new(tokio::sync::Mutex::new(file));
    while let Ok((mut stream, _)) = listener.accept().await {
        let (providers, file) = (providers.clone(), std::sync::Arc::clone(&file));
        let _detached = providers.task().clone().spawn("conn", async move {
            let mut buf = [0u8; 8];
            let read = providers
                .time()
                .timeout(Duration::from_secs(1), stream.read_exact(&mut buf))
                .await;
            if !matches!(read, Ok(Ok(_))) {
                return;
            }
            let mut file = file.lock().await;
            let block = vec![buf[0]; 1500];
            if file.write_all(&block).await.is_err() {
                return;
            }
            if buf[0] % 2 == 0 && file.sync_data().await.is_err() {
                return;
            }
            drop(file);
            let _ = stream.write_all(&buf[..1]).await;
        });
    }
}

fn simulation(faults: FaultSet) -> SimulationBuilder {
    SimulationBuilder::new("fault-independence")
        .progress(false)
        .network({
            let mut cfg = NetworkConfiguration::default();
            cfg.clog_probability = 0.02;
            cfg.partial_write_probability = 0.3;
            cfg.bit_flip_probability = 0.02;
            cfg.bit_flip_cooldown = Duration::ZERO;
            cfg
        })
        .storage({
            let mut cfg = StorageConfiguration::default();
            cfg.write_corruption_probability = 0.01;
            cfg.torn_write_probability = 0.5;
            cfg
        })
        .enable_chaos([
            Chaos::Network,
            Chaos::Storage,
            Chaos::Clock,
            Chaos::Partitions,
            Chaos::Attrition(
                Attrition::default()
                    .with_max_dead(1)
                    .with_interval((Duration::from_millis(200), Duration::from_millis(900)))
                    .with_recovery_delay((Duration::from_millis(100), Duration::from_millis(400)))
                    .with_kinds(vec![RebootKind::Crash, RebootKind::Graceful]),
            ),
        ])
        .faults(faults)
        .chaos_duration(Duration::from_secs(3))
        .iterations(IterationControl::FixedCount(1))
        .process("server", 2, server)
        .workload("client", 2, |ctx| async move {
            let servers = ctx.topology.ips_of("server");
            while ctx.chaos_active() {
                let _ = ctx.providers.time().timer();
                let target = servers[ctx.providers.random().random_range(0..servers.len())];
                let byte: u8 = ctx.providers.random().random_range(0..=255u8);
                let _ = ctx
                    .providers
                    .time()
                    .timeout(Duration::from_millis(500), async {
                        let mut stream = ctx
                            .providers
                            .network()
                            .connect(&format!("{target}:7000"))
                            .await
                            .ok()?;
                        stream.write_all(&[byte; 8]).await.ok()?;
                        let mut reply = [0u8; 1];
                        stream.read_exact(&mut reply).await.ok()?;
                        Some(())
                    })
                    .await;
                ctx.providers.time().sleep(Duration::from_millis(20)).await;
            }
            Ok(())
        })
}

fn traced(seed: u64, faults: FaultSet) -> (RunSummary, Option<String>) {
    let (summary, failure) = simulation(faults).run_traced_seed(seed).unwrap();
    (summary.unwrap(), failure.map(|e| e.to_string()))
}

fn is_mark_of(entry: &TraceEntry, kind: FaultKind) -> bool {
    entry.kind == TRACE_FAULT && entry.object == kind.stream()
}

/// The comparison of the module docs; returns whether `kind` fired in the full run.
fn check_independent(
    seed: u64,
    kind: FaultKind,
    full: &(RunSummary, Option<String>),
) -> Result<bool, String> {
    let reduced = traced(seed, FaultSet::all().without(kind));
    let (full_summary, full_failure) = full;
    let (reduced_summary, reduced_failure) = &reduced;
    let filtered: Vec<&TraceEntry> = reduced_summary
        .trace
        .iter()
        .filter(|e| !is_mark_of(e, kind))
        .collect();
    if filtered.len() != reduced_summary.trace.len() {
        return Err(format!("seed {seed}: {kind} fired although it was off"));
    }
    let cut = full_summary
        .trace
        .iter()
        .position(|e| is_mark_of(e, kind))
        .unwrap_or(full_summary.trace.len());
    for (i, expected) in full_summary.trace[..cut].iter().enumerate() {
        if filtered.get(i) != Some(&expected) {
            return Err(format!(
                "seed {seed}, without {kind}: entry {i} of {cut} differs: full {expected:?}, \
                 reduced {:?}",
                filtered.get(i)
            ));
        }
    }
    let fired = cut < full_summary.trace.len();
    if !fired {
        if filtered.len() != cut {
            return Err(format!(
                "seed {seed}: {kind} never fired, yet the run without it has {} entries, not {cut}",
                filtered.len()
            ));
        }
        if full_summary.fingerprint != reduced_summary.fingerprint
            || full_failure != reduced_failure
        {
            return Err(format!(
                "seed {seed}: {kind} never fired, yet the fingerprint or verdict differs"
            ));
        }
    }
    Ok(fired)
}

const KINDS: [FaultKind; 9] = [
    FaultKind::NetworkClog,
    FaultKind::NetworkPartialWrite,
    FaultKind::NetworkBitFlip,
    FaultKind::NetworkConnectRefuse,
    FaultKind::StorageTornWrite,
    FaultKind::StorageWriteCorruption,
    FaultKind::ClockDrift,
    FaultKind::Attrition,
    FaultKind::Partitions,
];

fn seeds() -> u64 {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        30
    } else {
        100
    }
}

#[test]
fn slow_simulation_one_kind_off_changes_nothing_before_it_fires() {
    let mut fired = [0usize; KINDS.len()];
    let mut errors = Vec::new();
    for seed in 0..seeds() {
        let full = traced(seed, FaultSet::all());
        for (i, kind) in KINDS.into_iter().enumerate() {
            match check_independent(seed, kind, &full) {
                Ok(true) => fired[i] += 1,
                Ok(false) => {}
                Err(e) => errors.push(e),
            }
        }
    }
    assert!(errors.is_empty(), "{}", errors.join("\n"));
    // Not vacuous: every kind fired in some seeds (and so was compared up to its first fault)
    // and stayed silent in others (compared over the whole run).
    for (kind, count) in KINDS.iter().zip(fired) {
        assert!(count > 0, "{kind} never fired in {} seeds", seeds());
        assert!(
            count < seeds() as usize,
            "{kind} fired in every seed: the whole-run comparison was never made"
        );
    }
}

/// A change to a simulation's declaration.
type Tweak = fn(SimulationBuilder) -> SimulationBuilder;

#[test]
fn test_a_fault_that_never_fires_changes_nothing() {
    // The measurement: every fault off, against one fault at probability 1e-12 (which
    // draws at every decision but never fires). Identical runs, every seed, every kind tried.
    let quiet = || {
        SimulationBuilder::new("one-in-a-trillion")
            .progress(false)
            .network(NetworkConfiguration::disabled())
            .storage(StorageConfiguration::disabled())
            .clock(moonpool_sim::ClockConfiguration::disabled())
            .buggify(moonpool_sim::BuggifyConfig::disabled())
            .process("server", 2, server)
            .chaos_duration(Duration::from_secs(1))
            .workload("client", 1, |ctx| async move {
                let servers = ctx.topology.ips_of("server");
                while ctx.chaos_active() {
                    let target = servers[ctx.providers.random().random_range(0..servers.len())];
                    let _ = ctx
                        .providers
                        .time()
                        .timeout(Duration::from_millis(300), async {
                            let mut s = ctx
                                .providers
                                .network()
                                .connect(&format!("{target}:7000"))
                                .await
                                .ok()?;
                            s.write_all(&[2; 8]).await.ok()?;
                            let mut reply = [0u8; 1];
                            s.read_exact(&mut reply).await.ok()
                        })
                        .await;
                    ctx.providers.time().sleep(Duration::from_millis(30)).await;
                }
                Ok(())
            })
    };
    let tweaks: [(&str, Tweak); 5] = [
        ("clog", |b| {
            b.network({
                let mut cfg = NetworkConfiguration::disabled();
                cfg.clog_probability = 1e-12;
                cfg
            })
        }),
        ("bit flip", |b| {
            b.network({
                let mut cfg = NetworkConfiguration::disabled();
                cfg.bit_flip_probability = 1e-12;
                cfg
            })
        }),
        ("partial write", |b| {
            b.network({
                let mut cfg = NetworkConfiguration::disabled();
                cfg.partial_write_probability = 1e-12;
                cfg
            })
        }),
        ("phantom write", |b| {
            b.storage({
                let mut cfg = StorageConfiguration::disabled();
                cfg.phantom_write_probability = 1e-12;
                cfg
            })
        }),
        ("sleep delay", |b| {
            b.clock({
                let mut cfg = moonpool_sim::ClockConfiguration::default();
                cfg.sleep_delay_probability = 1e-12;
                cfg.sleep_delay_max = Duration::from_millis(10);
                cfg.drift_max = Duration::ZERO;
                cfg
            })
        }),
    ];
    for seed in 0..5 {
        let (off, _) = quiet().run_traced_seed(seed).unwrap();
        let off = off.unwrap();
        assert!(
            off.events > 100,
            "the run does something: {} events",
            off.events
        );
        for (name, tweak) in &tweaks {
            let (rare, _) = tweak(quiet()).run_traced_seed(seed).unwrap();
            let rare = rare.unwrap();
            assert_eq!(rare.fingerprint, off.fingerprint, "seed {seed}, {name}");
            assert_eq!(rare.trace, off.trace, "seed {seed}, {name}");
        }
    }
}
