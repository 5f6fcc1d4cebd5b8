//! A storage provider kept from an earlier boot of a process cannot reach the disk of a later one.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{OpenOptions, Providers, StorageProvider, TimeProvider};
use moonpool_sim::{Locality, RebootKind, SimStorageProvider, SimWorld, WorldConfig};

#[test]
fn test_provider_from_an_earlier_boot_is_refused() {
    let kept: Arc<Mutex<Vec<SimStorageProvider>>> = Arc::default();
    let outcomes: Arc<Mutex<Vec<String>>> = Arc::default();
    let mut world = SimWorld::with_config(1, WorldConfig::quiet()).unwrap();
    let (keep, log) = (Arc::clone(&kept), Arc::clone(&outcomes));
    world
        .add_process("db", "10.0.0.2", Locality::default(), move |ctx| {
            let (keep, log) = (Arc::clone(&keep), Arc::clone(&log));
            async move {
                let storage = ctx.providers.storage().clone();
                if ctx.boot == 1 {
                    // Smuggle this boot's provider out, then wait to be crashed.
                    keep.lock().unwrap().push(storage);
                } else {
                    let own = storage
                        .exists("data")
                        .await
                        .map(|_| ())
                        .map_err(|e| e.kind());
                    log.lock().unwrap().push(format!("own provider: {own:?}"));
                    let stale = keep.lock().unwrap()[0].clone();
                    let old = stale
                        .open("data", OpenOptions::create_write())
                        .await
                        .map(|_| ())
                        .map_err(|e| (e.kind(), e.to_string()));
                    log.lock().unwrap().push(format!("stale provider: {old:?}"));
                }
                ctx.providers.time().sleep(Duration::from_secs(3600)).await;
            }
        })
        .unwrap();
    world
        .add_workload("chaos", "10.0.0.1", |p| async move {
            p.time().sleep(Duration::from_millis(10)).await;
            let db = p.control().process("db").unwrap();
            p.control()
                .reboot(db, RebootKind::Crash, Some(Duration::from_millis(10)));
            p.time().sleep(Duration::from_secs(1)).await;
        })
        .unwrap();
    world.run().unwrap();
    let outcomes = outcomes.lock().unwrap();
    assert_eq!(outcomes[0], "own provider: Ok(())");
    assert!(
        outcomes[1].starts_with("stale provider: Err((NotConnected"),
        "{}",
        outcomes[1]
    );
    assert!(
        outcomes[1].contains("boot 1 of process 'db'"),
        "{}",
        outcomes[1]
    );
}
