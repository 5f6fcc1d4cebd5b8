//! Presets that say what a program claims to survive, and what happens to a correct-looking
//! single-copy store when it is tested against everything.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool_core::{
    NetworkProvider, OpenOptions, Providers, StorageFile, StorageProvider, TcpListener,
    TimeProvider, assert_always,
};
use moonpool_sim::{
    Attrition, Chaos, FaultKind, FaultSet, IterationControl, NetworkConfiguration, RebootKind,
    SimulationBuilder, StorageConfiguration,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[test]
fn test_presets_hold_the_kinds_they_claim() {
    assert_eq!(
        FaultSet::crash_consistent(),
        FaultSet::only([
            FaultKind::Attrition,
            FaultKind::StorageUnsyncedKept,
            FaultKind::StorageTornWrite
        ])
    );
    let wire = FaultSet::checksummed_wire();
    assert!(!wire.contains(FaultKind::NetworkBitFlip));
    for kind in FaultSet::group("network")
        .without(FaultKind::NetworkBitFlip)
        .kinds()
    {
        assert!(wire.contains(kind), "{kind}");
    }
    assert!(!wire.kinds().any(|k| k.group() == "storage"));
    assert_eq!(FaultSet::everything(), FaultSet::all());
    assert_eq!(FaultSet::all().len(), FaultKind::ALL.len());
    // Chaos::all() covers every fault kind.
    let covered = Chaos::all()
        .iter()
        .fold(FaultSet::none(), |set, c| set.union(c.kinds()));
    assert!(covered.is_all());
    // The configuration presets match.
    assert_eq!(
        StorageConfiguration::crash_consistent().fault_kinds(),
        FaultSet::only([FaultKind::StorageUnsyncedKept, FaultKind::StorageTornWrite])
    );
    let net = NetworkConfiguration::checksummed_wire().fault_kinds();
    assert_eq!(
        net,
        FaultSet::group("network").without(FaultKind::NetworkBitFlip)
    );
    assert_eq!(
        NetworkConfiguration::everything().fault_kinds(),
        FaultSet::group("network")
    );
}

/// A single-copy store that does everything right for crashes: each record is a whole sector,
/// synced before it is acknowledged; at boot it checks every acknowledged record is there.
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
        .chunks_exact(512)
        .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let acked: Vec<u32> = ctx.state.get("acked").unwrap_or_default();
    let lost = acked.iter().filter(|a| !stored.contains(a)).count();
    assert_always!(lost == 0, "acknowledged records survive a reboot");
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
        let mut record = vec![0u8; 512];
        record[..4].copy_from_slice(&buf);
        if log.write_all(&record).await.is_err() || log.sync_data().await.is_err() {
            continue;
        }
        let seq = u32::from_le_bytes(buf);
        ctx.state
            .update("acked", |acked: &mut Vec<u32>| acked.push(seq));
        let _ = stream.write_all(&[1]).await;
    }
}

fn store_simulation(faults: FaultSet, seeds: usize) -> SimulationBuilder {
    let families = Chaos::all().into_iter().map(|c| match c {
        Chaos::Attrition(_) => Chaos::Attrition(
            Attrition::default()
                .with_max_dead(1)
                .with_interval((Duration::from_millis(300), Duration::from_secs(1)))
                .with_recovery_delay((Duration::from_millis(100), Duration::from_millis(300)))
                .with_kinds(vec![RebootKind::Crash]),
        ),
        other => other,
    });
    SimulationBuilder::new("single-copy-store")
        .progress(false)
        .storage({
            let mut cfg = StorageConfiguration::default();
            cfg.phantom_write_probability = 0.01;
            cfg.write_corruption_probability = 0.01;
            cfg.misdirected_write_probability = 0.01;
            cfg
        })
        .enable_chaos(families)
        .faults(faults)
        .chaos_duration(Duration::from_secs(4))
        .iterations(IterationControl::FixedCount(seeds))
        .process("store", 1, store)
        .workload("client", 1, |ctx| async move {
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
        })
}

#[test]
fn test_a_crash_consistent_store_survives_its_preset_but_not_everything() {
    // What it claims: crashes with lost, kept and torn unsynced writes. It survives them.
    let claimed = store_simulation(FaultSet::crash_consistent(), 24)
        .run()
        .unwrap();
    claimed.assert_success();
    assert!(claimed.faults.contains_key("process.crash"), "{claimed}");
    // Everything: a single copy cannot survive phantom, misdirected or corrupted writes; the
    // shrinker names the storage kind that did it (with the crash that exposed it).
    let everything = store_simulation(FaultSet::everything(), 24).run().unwrap();
    assert!(everything.failed() > 0, "{everything}");
    let failed = everything.failures().next().unwrap();
    let shrunk = failed
        .failure_info
        .as_ref()
        .unwrap()
        .shrunk
        .as_ref()
        .unwrap();
    let beyond_the_claim: Vec<&String> = shrunk
        .minimal
        .iter()
        .filter(|k| !FaultSet::crash_consistent().contains(FaultKind::from_name(k).unwrap()))
        .collect();
    assert!(
        beyond_the_claim.iter().any(|k| [
            "storage.phantom_write",
            "storage.misdirected_write",
            "storage.write_corruption"
        ]
        .contains(&k.as_str())),
        "{everything}"
    );
}

#[test]
fn test_swarm_perturbs_the_users_network_instead_of_replacing_it() {
    // A slow custom network (5 ms per connect and per write) with one fault on: in every seed
    // where swarm turns the network family on, the latencies are still the user's.
    let slow = {
        let mut cfg = NetworkConfiguration::with_fixed_latency(Duration::from_millis(5));
        cfg.clog_probability = 0.001;
        cfg
    };
    let report = SimulationBuilder::new("custom-network")
        .progress(false)
        .network(slow)
        .enable_chaos([Chaos::Network])
        .iterations(IterationControl::FixedCount(16))
        .chaos_duration(Duration::from_secs(1))
        .process("server", 1, |ctx| async move {
            let Ok(listener) = ctx
                .providers
                .network()
                .bind(&format!("{}:7000", ctx.ip))
                .await
            else {
                return;
            };
            while let Ok((_stream, _)) = listener.accept().await {}
        })
        .workload("client", 1, |ctx| async move {
            let server = ctx.topology.ips_of("server")[0];
            ctx.providers.time().sleep(Duration::from_millis(1)).await;
            let started = ctx.providers.time().now();
            let connected = ctx
                .providers
                .network()
                .connect(&format!("{server}:7000"))
                .await;
            let took = ctx.providers.time().now() - started;
            if connected.is_ok() && took < Duration::from_millis(5) {
                return Err(format!("connect took {took:?}: not the user's 5 ms").into());
            }
            Ok(())
        })
        .run()
        .unwrap();
    report.assert_success();

    // A family listed with every one of its faults off is refused, saying why.
    let error = SimulationBuilder::new("nothing-to-perturb")
        .network(NetworkConfiguration::fast_local())
        .enable_chaos([Chaos::Network])
        .workload("w", 1, |_ctx| async move { Ok(()) })
        .run()
        .unwrap_err()
        .to_string();
    assert!(
        error.contains(
            "Chaos::Network is enabled but every network fault of the configuration is off"
        ),
        "{error}"
    );
    assert!(error.contains("never replaces it"), "{error}");
}
