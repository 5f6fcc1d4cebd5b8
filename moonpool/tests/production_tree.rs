//! The lean production build (`default-features = false, features = ["tokio", "transport"]`)
//! must pull in no simulator or explorer code.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::process::Command;

#[test]
fn test_production_build_pulls_no_simulator() {
    let manifest = concat!(env!("CARGO_MANIFEST_DIR"), "/Cargo.toml");
    let output = Command::new(env!("CARGO"))
        .args([
            "tree",
            "--manifest-path",
            manifest,
            "--offline",
            "--edges",
            "normal",
            "--no-default-features",
            "--features",
            "tokio,transport",
            "--prefix",
            "none",
        ])
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "cargo tree failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let tree = String::from_utf8_lossy(&output.stdout);
    assert!(tree.contains("moonpool-core"), "unexpected tree:\n{tree}");
    assert!(
        tree.contains("moonpool-transport"),
        "unexpected tree:\n{tree}"
    );
    for forbidden in ["moonpool-sim", "moonpool-explorer"] {
        assert!(
            !tree.contains(forbidden),
            "production tree pulls in {forbidden}:\n{tree}"
        );
    }
}
