//! The minimum Rust version is declared once (the workspace's `rust-version`), the README says
//! the same, and no dependency needs a newer one. (That the workspace builds on it was checked
//! with `cargo +1.88 check --workspace --all-targets --all-features`; clippy's `incompatible_msrv`
//! lint, on by default, flags standard-library APIs newer than the declared version.)
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod offline_cargo;

use std::path::Path;

fn version(text: &str) -> Vec<u64> {
    text.split('.').map(|p| p.parse().unwrap()).collect()
}

fn workspace_metadata() -> serde_json::Value {
    offline_cargo::metadata(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../Cargo.toml"))
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
