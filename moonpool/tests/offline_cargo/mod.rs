//! `cargo metadata` without the network, as the first-use suites (`first_use_msrv`,
//! `first_use_other_project`) run it. Each takes it with `mod offline_cargo;`.
//!
//! The resolve is filtered to the host's platform: offline, cargo can only read the manifests
//! of packages it has downloaded, and a fresh machine has downloaded only what builds here (not,
//! say, the Windows or WASI crates some dependency names for other targets).
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;
use std::process::Command;

/// The cargo that runs the tests (`CARGO`), or the one on the path.
pub fn cargo() -> Command {
    Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
}

/// The host's target triple, as `rustc -vV` reports it.
fn host_triple() -> String {
    let rustc = std::env::var("RUSTC").unwrap_or_else(|_| "rustc".to_string());
    let output = Command::new(rustc).arg("-vV").output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| line.strip_prefix("host: "))
        .unwrap_or_else(|| panic!("no host line in `rustc -vV`: {text}"))
        .trim()
        .to_string()
}

/// `cargo metadata --offline` of `manifest`, resolved for the host's platform.
pub fn metadata(manifest: &Path) -> serde_json::Value {
    let output = cargo()
        .args(["metadata", "--offline", "--format-version", "1"])
        .args(["--filter-platform", &host_triple()])
        .arg("--manifest-path")
        .arg(manifest)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}
