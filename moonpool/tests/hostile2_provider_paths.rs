//! One storage program, two providers (second hostile pass): odd paths through the Tokio
//! provider (real files under a temp dir) and through the simulator must behave alike, or code
//! that passes under simulation fails in production. The Tokio half pins what a real file system
//! does; the comparison shows where the simulated disk differs.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::{Arc, Mutex};

use moonpool::sim::{SimWorld, WorldConfig};
use moonpool::{OpenOptions, Providers, StorageProvider, TokioStorageProvider};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// What one provider does with odd paths: for each, whether `open(.., read_write_create)`
/// succeeded; then whether `./x` reads what was written to `x`.
async fn probe<S: StorageProvider>(storage: &S) -> (Vec<(&'static str, bool)>, Option<Vec<u8>>) {
    let mut opened = Vec::new();
    for path in ["/", ".", "..", "a\0b", ""] {
        let ok = storage
            .open(path, OpenOptions::read_write_create())
            .await
            .is_ok();
        opened.push((path, ok));
    }
    let mut x = storage
        .open("x", OpenOptions::read_write_create())
        .await
        .unwrap();
    x.write_all(b"same").await.unwrap();
    x.flush().await.unwrap();
    let through_dot = match storage.open("./x", OpenOptions::read_only()).await {
        Ok(mut file) => {
            let mut data = Vec::new();
            file.read_to_end(&mut data).await.ok().map(|_| data)
        }
        Err(_) => None,
    };
    (opened, through_dot)
}

async fn on_tokio() -> (Vec<(&'static str, bool)>, Option<Vec<u8>>) {
    let dir = tempfile::tempdir().unwrap();
    let storage = TokioStorageProvider::with_root(dir.path());
    probe(&storage).await
}

fn on_sim() -> (Vec<(&'static str, bool)>, Option<Vec<u8>>) {
    let mut world = SimWorld::with_config(1, WorldConfig::quiet()).unwrap();
    let out = Arc::new(Mutex::new(None));
    let o = Arc::clone(&out);
    world
        .add_workload("prober", "10.0.0.1", move |p| {
            let o = Arc::clone(&o);
            async move {
                let result = probe(p.storage()).await;
                *o.lock().unwrap() = Some(result);
            }
        })
        .unwrap();
    world.run().unwrap();
    out.lock().unwrap().take().unwrap()
}

/// What a real file system does: none of the odd paths opens as a file, and `./x` is `x`.
#[tokio::test(flavor = "current_thread")]
async fn test_tokio_refuses_odd_paths_and_reads_x_through_dot() {
    let (opened, through_dot) = on_tokio().await;
    assert!(opened.iter().all(|(_, ok)| !ok), "{opened:?}");
    assert_eq!(through_dot.as_deref(), Some(&b"same"[..]));
}

/// The simulator must do the same.
#[tokio::test(flavor = "current_thread")]
async fn test_the_simulator_treats_odd_paths_as_tokio_does() {
    let tokio = on_tokio().await;
    let sim = std::thread::spawn(on_sim).join().unwrap();
    assert_eq!(sim, tokio);
}
