#![cfg(all(feature = "sim", feature = "transport", feature = "tokio"))]
//! `docs/guides/using-moonpool-from-another-project.md` works as written: its `Cargo.toml`,
//! `src/lib.rs` and `tests/sim.rs` make a project outside this workspace that cargo resolves
//! against this checkout (and, in the ignored test, builds and passes).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod offline_cargo;

use offline_cargo::cargo;
use std::path::{Path, PathBuf};

const GUIDE: &str = include_str!("../../docs/guides/using-moonpool-from-another-project.md");

/// The fenced block of `lang` that follows `marker` in the guide.
fn block_after(marker: &str, lang: &str) -> String {
    let start = GUIDE
        .find(marker)
        .unwrap_or_else(|| panic!("no '{marker}' in the guide"));
    let rest = &GUIDE[start..];
    let open = rest
        .find(&format!("```{lang}"))
        .unwrap_or_else(|| panic!("no {lang} block after '{marker}'"));
    let body = &rest[open..];
    let body = &body[body.find('\n').unwrap() + 1..];
    body[..body.find("```").unwrap()].to_string()
}

/// Writes the guide's project into `dir`, its path dependency pointing at this checkout.
fn write_project(dir: &Path) -> PathBuf {
    let here = Path::new(env!("CARGO_MANIFEST_DIR"));
    let manifest = block_after("## Cargo.toml", "toml").replace(
        "path = \"../moonpool/moonpool\"",
        &format!("path = {:?}", here.display().to_string()),
    );
    assert!(manifest.contains(&here.display().to_string()), "{manifest}");
    std::fs::create_dir_all(dir.join("src")).unwrap();
    std::fs::create_dir_all(dir.join("tests")).unwrap();
    // A project of its own, not a member of this workspace.
    let manifest = format!("{manifest}\n[workspace]\n");
    std::fs::write(dir.join("Cargo.toml"), manifest).unwrap();
    std::fs::write(dir.join("src/lib.rs"), block_after("`src/lib.rs`:", "rust")).unwrap();
    std::fs::write(
        dir.join("tests/sim.rs"),
        block_after("`tests/sim.rs`:", "rust"),
    )
    .unwrap();
    // The versions this checkout is tested with, so that resolution works offline.
    std::fs::copy(here.join("../Cargo.lock"), dir.join("Cargo.lock")).unwrap();
    dir.join("Cargo.toml")
}

#[test]
fn test_the_guides_project_resolves_against_this_checkout() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_project(dir.path());
    let metadata = offline_cargo::metadata(&manifest);
    let packages = metadata["packages"].as_array().unwrap();
    let names: Vec<&str> = packages.iter().filter_map(|p| p["name"].as_str()).collect();
    for needed in [
        "my-service",
        "moonpool",
        "moonpool-sim",
        "moonpool-transport",
        "serde",
    ] {
        assert!(names.contains(&needed), "{needed} not resolved: {names:?}");
    }
    // The features the guide names exist.
    let moonpool = packages.iter().find(|p| p["name"] == "moonpool").unwrap();
    for feature in [
        "tokio",
        "sim",
        "transport",
        "tracing-subscriber",
        "explorer",
        "actors",
    ] {
        assert!(
            moonpool["features"].get(feature).is_some(),
            "no feature {feature}"
        );
    }
    // The rust-version the guide asks for is the workspace's.
    let declared = moonpool["rust_version"].as_str().unwrap();
    assert!(
        GUIDE.contains(&format!("rust-version = \"{declared}\"")),
        "{declared}"
    );
}

#[test]
#[ignore = "builds a whole project (about a minute); run with --run-ignored only"]
fn test_other_project_builds_and_passes() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = write_project(dir.path());
    let output = cargo()
        .args(["test", "--offline", "--manifest-path"])
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", dir.path().join("target"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        stdout.contains("test test_counter_under_network_chaos ... ok"),
        "{stdout}"
    );
}
