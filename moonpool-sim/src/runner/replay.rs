//! A replay command derived from where `run` was called, printed for every failed seed unless
//! the builder sets its own ([`replay_command`](super::SimulationBuilder::replay_command)).
//!
//! The command is the one that runs that test again, as it was run: under `cargo nextest` a
//! nextest command, under `cargo test` a `cargo test` command, with the flag that runs an
//! `#[ignore]`d test when the test is one (`--run-ignored only`, `--ignored`); from an example,
//! `cargo run --example` with the same arguments.

use std::panic::Location;

/// How the process running the seeds was started: what the replay command depends on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(super) struct Invocation {
    /// The source file that called `run`, as `Location::file` gives it.
    pub(super) file: String,
    /// `CARGO_PKG_NAME` of the running binary, when cargo started it.
    pub(super) package: Option<String>,
    /// The test being run, if any (libtest names its thread after it; nextest also sets
    /// `NEXTEST_TEST_NAME`).
    pub(super) test: Option<String>,
    /// Started by nextest (`NEXTEST` is set).
    pub(super) nextest: bool,
    /// The process's arguments, the program first.
    pub(super) args: Vec<String>,
}

impl Invocation {
    /// This process's invocation, for a `run` called at `caller`.
    pub(super) fn current(caller: &Location<'_>) -> Self {
        let thread = std::thread::current()
            .name()
            .filter(|name| *name != "main")
            .map(str::to_string);
        Self {
            file: caller.file().to_string(),
            package: std::env::var("CARGO_PKG_NAME").ok(),
            test: std::env::var("NEXTEST_TEST_NAME").ok().or(thread),
            nextest: std::env::var_os("NEXTEST").is_some(),
            args: std::env::args().collect(),
        }
    }

    /// Whether the test being run is `#[ignore]`d (libtest was asked to run ignored tests).
    fn ignored(&self) -> bool {
        self.args
            .iter()
            .any(|a| a == "--ignored" || a == "--include-ignored")
    }
}

/// A replay command derived from the call site of `run`.
pub(super) fn default_replay_template(caller: &Location<'_>) -> String {
    replay_template(&Invocation::current(caller))
}

/// The replay command of `invocation`, with `{seed}` for the seed.
pub(super) fn replay_template(invocation: &Invocation) -> String {
    let file = invocation.file.replace('\\', "/");
    let parts: Vec<&str> = file.split('/').collect();
    let (path_package, rest) = match parts
        .iter()
        .position(|p| *p == "tests" || *p == "examples" || *p == "src")
    {
        Some(0) | None => (None, parts.as_slice()),
        Some(i) => (parts[..i].last().map(|p| (*p).to_string()), &parts[i..]),
    };
    let package_flag = invocation
        .package
        .clone()
        .or(path_package)
        .map(|p| format!(" -p {p}"))
        .unwrap_or_default();
    // `tests/foo.rs` is target `foo`; `tests/foo/main.rs` is target `foo` too.
    let stem = match rest {
        [.., dir, "main.rs"] if rest.len() >= 3 => (*dir).to_string(),
        [.., last] => last.strip_suffix(".rs").unwrap_or(last).to_string(),
        [] => String::new(),
    };
    let kind = rest.first().copied();
    match (kind, invocation.test.as_deref()) {
        (Some("examples"), _) => {
            let args = &invocation.args[invocation.args.len().min(1)..];
            let args = if args.is_empty() {
                String::new()
            } else {
                format!(" -- {}", args.join(" "))
            };
            format!(
                "MOONPOOL_SEED={{seed}} cargo run --release{package_flag} --example {stem}{args}"
            )
        }
        (kind, Some(test)) => {
            let target = match (kind, rest) {
                (Some("tests"), _) => format!(" --test {stem}"),
                // A binary's own unit tests: `src/main.rs` is the package's binary,
                // `src/bin/<name>.rs` (or `src/bin/<name>/main.rs`) the binary `<name>`.
                (Some("src"), [_, "main.rs"]) => invocation
                    .package
                    .as_ref()
                    .map_or_else(|| " --bins".to_string(), |p| format!(" --bin {p}")),
                (Some("src"), [_, "bin", ..]) => format!(" --bin {stem}"),
                _ => " --lib".to_string(),
            };
            if invocation.nextest {
                let ignored = if invocation.ignored() {
                    " --run-ignored only"
                } else {
                    ""
                };
                format!(
                    "MOONPOOL_SEED={{seed}} cargo nextest run{package_flag}{target}{ignored} -E 'test(={test})'"
                )
            } else {
                let ignored = if invocation.ignored() {
                    " --ignored"
                } else {
                    ""
                };
                format!(
                    "MOONPOOL_SEED={{seed}} cargo test{package_flag}{target} -- --exact {test}{ignored}"
                )
            }
        }
        _ => format!("MOONPOOL_SEED={{seed}} {}", invocation.args.join(" ")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn test_in(file: &str, test: &str, nextest: bool, args: &[&str]) -> Invocation {
        Invocation {
            file: file.to_string(),
            package: Some("moonpool-sim".to_string()),
            test: Some(test.to_string()),
            nextest,
            args: args.iter().map(|a| (*a).to_string()).collect(),
        }
    }

    #[test]
    fn test_nextest_command_for_an_integration_test() {
        let invocation = test_in(
            "moonpool-sim/tests/runner.rs",
            "test_x",
            true,
            &["bin", "--exact", "test_x", "--nocapture"],
        );
        assert_eq!(
            replay_template(&invocation),
            "MOONPOOL_SEED={seed} cargo nextest run -p moonpool-sim --test runner -E 'test(=test_x)'"
        );
    }

    #[test]
    fn test_ignored_tests_get_the_flag_that_runs_them() {
        let nextest = test_in(
            "moonpool-sim/tests/runner.rs",
            "slow_x",
            true,
            &["bin", "--exact", "slow_x", "--nocapture", "--ignored"],
        );
        assert_eq!(
            replay_template(&nextest),
            "MOONPOOL_SEED={seed} cargo nextest run -p moonpool-sim --test runner --run-ignored only -E 'test(=slow_x)'"
        );
        let cargo = test_in(
            "moonpool-sim/tests/runner.rs",
            "slow_x",
            false,
            &["bin", "--ignored"],
        );
        assert_eq!(
            replay_template(&cargo),
            "MOONPOOL_SEED={seed} cargo test -p moonpool-sim --test runner -- --exact slow_x --ignored"
        );
    }

    #[test]
    fn test_cargo_test_command_when_not_under_nextest() {
        let invocation = test_in("moonpool-sim/tests/runner.rs", "test_x", false, &["bin"]);
        assert_eq!(
            replay_template(&invocation),
            "MOONPOOL_SEED={seed} cargo test -p moonpool-sim --test runner -- --exact test_x"
        );
        let unit = test_in(
            "moonpool-sim/src/runner/plan.rs",
            "runner::plan::tests::t",
            false,
            &["bin"],
        );
        assert_eq!(
            replay_template(&unit),
            "MOONPOOL_SEED={seed} cargo test -p moonpool-sim --lib -- --exact runner::plan::tests::t"
        );
    }

    #[test]
    fn test_unit_tests_of_binaries_name_the_binary() {
        let main = test_in("src/main.rs", "tests::t", false, &["bin"]);
        assert_eq!(
            replay_template(&main),
            "MOONPOOL_SEED={seed} cargo test -p moonpool-sim --bin moonpool-sim -- --exact tests::t"
        );
        let bin = test_in(
            "moonpool-sim/src/bin/moonpool-report.rs",
            "t",
            true,
            &["bin"],
        );
        assert_eq!(
            replay_template(&bin),
            "MOONPOOL_SEED={seed} cargo nextest run -p moonpool-sim --bin moonpool-report -E 'test(=t)'"
        );
    }

    #[test]
    fn test_directory_tests_and_packages_outside_a_workspace() {
        let mut invocation = test_in("tests/sim/main.rs", "t", false, &["bin"]);
        invocation.package = None;
        assert_eq!(
            replay_template(&invocation),
            "MOONPOOL_SEED={seed} cargo test --test sim -- --exact t"
        );
    }

    #[test]
    fn test_examples_rerun_with_their_arguments() {
        let invocation = Invocation {
            file: "moonpool/examples/replicated_kv.rs".to_string(),
            package: Some("moonpool".to_string()),
            test: None,
            nextest: false,
            args: vec![
                "target/release/examples/replicated_kv".into(),
                "--bug".into(),
            ],
        };
        assert_eq!(
            replay_template(&invocation),
            "MOONPOOL_SEED={seed} cargo run --release -p moonpool --example replicated_kv -- --bug"
        );
    }

    #[test]
    fn test_anything_else_reruns_its_own_command_line() {
        let invocation = Invocation {
            file: "src/main.rs".to_string(),
            package: None,
            test: None,
            nextest: false,
            args: vec!["./my-sim".into(), "--fast".into()],
        };
        assert_eq!(
            replay_template(&invocation),
            "MOONPOOL_SEED={seed} ./my-sim --fast"
        );
    }
}
