//! The minimum Rust version is declared once (the workspace's `rust-version`), the README says
//! the same, and no dependency needs a newer one. (That the workspace builds on it was checked
//! with `cargo +1.88 check --workspace --all-targets --all-features`; clippy's `incompatible_msrv`
//! lint, on by default, flags standard-library APIs newer than the declared version.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::path::Path;
use std::process::Command;

fn version(text: &str) -> Vec<u64> {
    text.split('.').map(|p| p.parse().unwrap()).collect()
}

fn workspace_metadata() -> serde_json::Value {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let output = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string()))
        .args([
            "metadata",
            "--offline",
            "--format-version",
            "1",
            "--manifest-path",
        ])
        .arg(root.join("Cargo.toml"))
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn test_rust_version_is_declared_once_and_the_readme_agrees() {
    let metadata = workspace_metadata();
    let packages = metadata["packages"].as_array().unwrap();
    let members: Vec<&serde_json::Value> =
        packages.iter().filter(|p| p["source"].is_null()).collect();
    assert!(members.len() >= 6, "{}", members.len());
    let declared = members[0]["rust_version"].as_str().unwrap().to_string();
    for member in &members {
        assert_eq!(
            member["rust_version"].as_str(),
            Some(declared.as_str()),
            "{}",
            member["name"]
        );
    }
    let readme = include_str!("../../README.md");
    assert!(
        readme.contains(&format!("stable Rust ({declared} or later")),
        "the README states another minimum than {declared}"
    );
    // Every dependency builds on the declared version.
    for package in packages.iter().filter(|p| !p["source"].is_null()) {
        if let Some(needed) = package["rust_version"].as_str() {
            assert!(
                version(needed) <= version(&declared),
                "{} {} needs Rust {needed}, newer than the declared {declared}",
                package["name"],
                package["version"]
            );
        }
    }
}
