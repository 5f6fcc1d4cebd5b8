//! Hostile names for simulated storage (`storage/path.rs`, what a path names): a trailing slash
//! or a trailing `/.` (which no real file system opens as a regular file) checked against the
//! real file system in a temporary directory, spellings of one name, and odd but legal names.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod hostile3_common;

use std::sync::{Arc, Mutex};

use hostile3_common::{quiet, run_caught};
use moonpool_core::{OpenOptions, Providers, StorageFile, StorageProvider};
use moonpool_sim::SimProviders;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Runs `body` in a quiet world and returns its value.
fn in_world<T: Send + 'static, F, Fut>(body: F) -> T
where
    F: FnOnce(SimProviders) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = T> + Send + 'static,
{
    let mut world = quiet(1);
    let out: Arc<Mutex<Option<T>>> = Arc::default();
    let o = Arc::clone(&out);
    let body = Mutex::new(Some(body));
    world
        .add_workload("disk", "10.0.0.1", move |p| {
            let body = body.lock().unwrap().take().expect("one boot");
            let o = Arc::clone(&o);
            async move {
                let value = body(p).await;
                *o.lock().unwrap() = Some(value);
            }
        })
        .unwrap();
    let outcome = run_caught(world).expect("no panic out of run");
    assert!(outcome.is_ok(), "{outcome:?}");
    out.lock().unwrap().take().expect("the workload ended")
}

/// Names ending in a slash or `/.`, each tried with its file absent and present.
const TRAILING: &[&str] = &["x/", "x//", "x/.", "x/./", "./x/", "x/.//"];

/// Which of `TRAILING` (with `x` absent, then present) the real file system opens read-write
/// with create, in a fresh temporary directory each.
fn real_opens() -> Vec<(String, bool, bool)> {
    TRAILING
        .iter()
        .map(|name| {
            let absent = tempfile::tempdir().unwrap();
            let opened_absent = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(absent.path().join(name))
                .is_ok();
            let present = tempfile::tempdir().unwrap();
            std::fs::write(present.path().join("x"), b"file").unwrap();
            let opened_present = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(present.path().join(name))
                .is_ok();
            (name.to_string(), opened_absent, opened_present)
        })
        .collect()
}

fn sim_opens() -> Vec<(String, bool, bool)> {
    in_world(|p| async move {
        let mut seen = Vec::new();
        for (i, name) in TRAILING.iter().enumerate() {
            // Absent: under a directory of its own.
            let absent = format!("/a{i}/{name}");
            let opened_absent = p
                .storage()
                .open(&absent, OpenOptions::read_write_create())
                .await
                .is_ok();
            let dir = format!("/p{i}");
            let mut file = p
                .storage()
                .open(&format!("{dir}/x"), OpenOptions::read_write_create())
                .await
                .unwrap();
            file.write_all(b"file").await.unwrap();
            drop(file);
            let opened_present = p
                .storage()
                .open(&format!("{dir}/{name}"), OpenOptions::read_write_create())
                .await
                .is_ok();
            seen.push((name.to_string(), opened_absent, opened_present));
        }
        seen
    })
}

#[test]
fn test_the_real_file_system_opens_no_name_ending_in_a_slash_or_dot() {
    // What the comparison below stands on: Linux refuses every one of them.
    for (name, absent, present) in real_opens() {
        assert!(
            !absent && !present,
            "{name}: the real file system opened it"
        );
    }
}

#[test]
fn test_names_ending_in_a_slash_or_dot_open_as_they_do_on_a_real_file_system() {
    let real = real_opens();
    let sim = sim_opens();
    assert_eq!(
        sim, real,
        "(name, opened with x absent, opened with x present)"
    );
}

#[test]
fn test_spellings_of_one_name_reach_one_file() {
    let contents = in_world(|p| async move {
        let mut file = p
            .storage()
            .open("/d/x", OpenOptions::read_write_create())
            .await
            .unwrap();
        file.write_all(b"one").await.unwrap();
        drop(file);
        let mut seen = Vec::new();
        for name in ["/d/x", "//d/x", "/d//x", "/d/./x", "/./d/x", "/d/././/x"] {
            let exists = p.storage().exists(name).await.unwrap();
            let mut text = String::new();
            if let Ok(mut file) = p.storage().open(name, OpenOptions::read_only()).await {
                file.read_to_string(&mut text).await.unwrap();
            }
            seen.push((name, exists, text));
        }
        seen
    });
    for (name, exists, text) in contents {
        assert!(exists, "{name} does not exist");
        assert_eq!(text, "one", "{name}");
    }
}

#[test]
fn test_odd_but_legal_names_are_distinct_files() {
    let names: Vec<String> = vec![
        "...".into(),
        ".x".into(),
        "x.".into(),
        "x..".into(),
        "-".into(),
        "~".into(),
        " ".into(),
        "a b".into(),
        "line\nbreak".into(),
        "tab\t".into(),
        "back\\slash".into(),
        "é🦀".into(),
        "e\u{301}".into(),
        "\u{e9}".into(),
        "x".repeat(255),
        "x".repeat(254),
        "\u{7f}".into(),
        "*?[]".into(),
        "nul-free\u{1}".into(),
    ];
    let expected: Vec<(String, String)> = names
        .iter()
        .enumerate()
        .map(|(i, n)| (n.clone(), format!("content {i}")))
        .collect();
    let written = expected.clone();
    let seen = in_world(|p| async move {
        for (name, content) in &written {
            let mut file = p
                .storage()
                .open(&format!("dir/{name}"), OpenOptions::create_write())
                .await
                .unwrap();
            file.write_all(content.as_bytes()).await.unwrap();
            file.sync_all().await.unwrap();
        }
        let mut seen = Vec::new();
        for (name, _) in &written {
            let mut file = p
                .storage()
                .open(&format!("dir/{name}"), OpenOptions::read_only())
                .await
                .unwrap();
            let mut text = String::new();
            file.read_to_string(&mut text).await.unwrap();
            seen.push((name.clone(), text));
        }
        // Removing one leaves the others.
        p.storage().remove("dir/...").await.unwrap();
        let gone = p.storage().exists("dir/...").await.unwrap();
        let kept = p.storage().exists("dir/.x").await.unwrap();
        (seen, gone, kept)
    });
    assert_eq!(seen.0, expected);
    assert!(!seen.1, "a removed file still exists");
    assert!(seen.2, "removing `...` removed `.x`");
}

#[test]
fn test_renames_onto_a_name_ending_in_a_slash_or_dot_are_refused() {
    let results = in_world(|p| async move {
        let mut file = p
            .storage()
            .open("r", OpenOptions::read_write_create())
            .await
            .unwrap();
        file.write_all(b"r").await.unwrap();
        drop(file);
        let mut results = Vec::new();
        for target in ["/", ".", "..", "t/..", "r\0"] {
            let renamed = p.storage().rename("r", target).await;
            results.push((target, renamed.is_ok()));
        }
        let still = p.storage().exists("r").await.unwrap();
        (results, still)
    });
    for (target, renamed) in results.0 {
        assert!(!renamed, "renamed onto {target:?}");
    }
    assert!(results.1, "the file is still there");
}
