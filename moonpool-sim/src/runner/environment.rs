//! The `MOONPOOL_*` environment variables: parsed strictly, checked before the first seed.
//!
//! An empty variable counts as unset. Any other value that is not exactly what the variable
//! accepts is an error naming the variable and the value (a typo never silently means something
//! else):
//!
//! - `MOONPOOL_SEED`: a seed, decimal digits only;
//! - `MOONPOOL_SHARD`: `index/count`, decimal digits only, `index < count`;
//! - `MOONPOOL_JOBS`: worker threads, `1..=`[`MAX_JOBS`];
//! - `MOONPOOL_MAX_SEEDS`: at least 1;
//! - `MOONPOOL_CHECK_DETERMINISM`: `1`, `true`, `on`, `yes` or `0`, `false`, `off`, `no`, in any
//!   case;
//! - `MOONPOOL_REPORT`: a file path, checked writable before the first seed;
//! - `MOONPOOL_TRACE_DIR`: a directory, created and checked writable before the first seed.

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::error::SimError;

/// The most worker threads `MOONPOOL_JOBS` may ask for: more is certainly a typo (seeds are
/// CPU-bound, so threads beyond the cores only cost memory).
pub(super) const MAX_JOBS: usize = 256;

/// The `MOONPOOL_*` environment.
pub(super) struct Environment {
    pub(super) seed: Option<u64>,
    pub(super) shard: Option<(usize, usize)>,
    pub(super) jobs: Option<usize>,
    pub(super) max_seeds: Option<usize>,
    pub(super) check_determinism: bool,
    pub(super) report_path: Option<PathBuf>,
    pub(super) trace_dir: Option<PathBuf>,
}

/// Decimal digits only (no sign, no spaces, no `_`).
fn digits<T: std::str::FromStr>(value: &str) -> Option<T> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

impl Environment {
    /// Reads the process environment.
    pub(super) fn read() -> Result<Self, SimError> {
        // The watchdog reads its limits itself, when a world runs; a bad one is refused here, at
        // setup, rather than ignored there.
        crate::watchdog::stall_override().map_err(SimError::setup)?;
        crate::watchdog::memory_limit_override().map_err(SimError::setup)?;
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Parses the variables `lookup` returns (a function, so that parsing is testable without
    /// touching the process environment).
    pub(super) fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SimError> {
        let var = |name: &str| lookup(name).filter(|v| !v.is_empty());
        let seed = var("MOONPOOL_SEED")
            .map(|value| {
                digits::<u64>(&value).ok_or_else(|| {
                    SimError::setup(format!(
                        "MOONPOOL_SEED='{value}' is not a seed (decimal digits, at most {})",
                        u64::MAX
                    ))
                })
            })
            .transpose()?;
        let jobs = var("MOONPOOL_JOBS")
            .map(|value| {
                digits::<usize>(&value)
                    .filter(|n| (1..=MAX_JOBS).contains(n))
                    .ok_or_else(|| {
                        SimError::setup(format!(
                            "MOONPOOL_JOBS='{value}' is not a number of worker threads from 1 to \
                             {MAX_JOBS}"
                        ))
                    })
            })
            .transpose()?;
        let max_seeds = var("MOONPOOL_MAX_SEEDS")
            .map(|value| match digits::<u64>(&value) {
                Some(0) => Err(SimError::setup(format!(
                    "MOONPOOL_MAX_SEEDS='{value}' would run no seed: it must be at least 1"
                ))),
                Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
                None => Err(SimError::setup(format!(
                    "MOONPOOL_MAX_SEEDS='{value}' is not a positive integer"
                ))),
            })
            .transpose()?;
        let shard = var("MOONPOOL_SHARD")
            .map(|value| {
                let bad = || {
                    SimError::setup(format!(
                        "MOONPOOL_SHARD='{value}' is not index/count with index < count (e.g. 0/4)"
                    ))
                };
                let (index, count) = value.split_once('/').ok_or_else(bad)?;
                let index: usize = digits(index).ok_or_else(bad)?;
                let count: usize = digits(count).ok_or_else(bad)?;
                if count == 0 || index >= count {
                    return Err(bad());
                }
                Ok((index, count))
            })
            .transpose()?;
        let check_determinism = match var("MOONPOOL_CHECK_DETERMINISM") {
            None => false,
            Some(value) => match value.to_ascii_lowercase().as_str() {
                "1" | "true" | "on" | "yes" => true,
                "0" | "false" | "off" | "no" => false,
                _ => {
                    return Err(SimError::setup(format!(
                        "MOONPOOL_CHECK_DETERMINISM='{value}' is neither on (1, true, on, yes) \
                         nor off (0, false, off, no)"
                    )));
                }
            },
        };
        let report_path = var("MOONPOOL_REPORT").map(PathBuf::from);
        let trace_dir = var("MOONPOOL_TRACE_DIR").map(PathBuf::from);
        Ok(Self {
            seed,
            shard,
            jobs,
            max_seeds,
            check_determinism,
            report_path,
            trace_dir,
        })
    }
}

/// `<pid>-<n>`: a suffix no other file written by this process (or another) uses.
fn unique_suffix() -> String {
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{}-{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

/// The directory a file path lives in (`.` for a bare file name).
fn parent_dir(path: &Path) -> &Path {
    match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    }
}

/// Checks that a report can be written at `path` the way [`deliver`] writes it, without touching
/// `path` itself (an existing report stays until the new one replaces it): `path` is not a
/// directory, its directory exists or is created, and a probe file can be created there (and is
/// removed again).
pub(super) fn check_report_path(path: &Path) -> Result<(), String> {
    if path.is_dir() {
        return Err("it is a directory".to_string());
    }
    let dir = parent_dir(path);
    std::fs::create_dir_all(dir)
        .map_err(|e| format!("cannot create its directory {}: {e}", dir.display()))?;
    let probe = dir.join(format!(".moonpool-probe-{}", unique_suffix()));
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(&probe)
        .map_err(|e| format!("cannot create a file in {}: {e}", dir.display()))?;
    std::fs::remove_file(&probe)
        .map_err(|e| format!("cannot remove the probe file {}: {e}", probe.display()))
}

/// Checks that `dir` is (or can be created as) a directory files can be written into, by writing
/// and removing a probe file.
pub(super) fn check_trace_dir(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("cannot create it: {e}"))?;
    let probe = dir.join(format!(".moonpool-probe-{}", unique_suffix()));
    std::fs::write(&probe, b"probe")
        .map_err(|e| format!("cannot write a file in it ({}): {e}", probe.display()))?;
    std::fs::remove_file(&probe)
        .map_err(|e| format!("cannot remove the probe file {}: {e}", probe.display()))
}

/// Where a finished report went.
#[derive(Debug, PartialEq)]
pub(super) enum Delivery {
    /// Written where asked.
    Written,
    /// The asked path failed (`error`); the report was written to `fallback` instead.
    Fallback {
        /// Where the report was asked for.
        asked: PathBuf,
        /// Why writing it there failed.
        error: String,
        /// Where it was written instead.
        fallback: PathBuf,
    },
    /// Neither the asked path nor a fallback file could be written.
    Stderr {
        /// Why writing it where asked failed.
        error: String,
        /// Why writing the fallback failed.
        fallback_error: String,
    },
}

/// Writes `json` to `path`: into a temporary sibling first, then renamed over `path`, so that an
/// existing report is replaced only by a complete new one.
fn write_atomically(path: &Path, json: &str) -> std::io::Result<()> {
    std::fs::create_dir_all(parent_dir(path))?;
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "report".to_string());
    let temp = parent_dir(path).join(format!(".{file_name}.{}.tmp", unique_suffix()));
    let written = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&temp)?;
        file.write_all(json.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temp, path)
    })();
    if written.is_err() {
        let _ = std::fs::remove_file(&temp);
    }
    written
}

/// Writes a finished report's `json` to `path`, falling back to a new file in `fallback_dir`
/// (named after the simulation and the process id) when that fails; says where it went (the
/// caller prints the JSON itself when both failed).
pub(super) fn deliver(name: &str, json: &str, path: &Path, fallback_dir: &Path) -> Delivery {
    let error = match write_atomically(path, json) {
        Ok(()) => return Delivery::Written,
        Err(e) => e.to_string(),
    };
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let pid = std::process::id();
    let mut fallback_error = String::from("no free file name");
    for attempt in 0..100u32 {
        let file = if attempt == 0 {
            format!("moonpool-report-{safe}-{pid}.json")
        } else {
            format!("moonpool-report-{safe}-{pid}-{attempt}.json")
        };
        let fallback = fallback_dir.join(file);
        let written = OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&fallback)
            .and_then(|mut f| f.write_all(json.as_bytes()));
        match written {
            Ok(()) => {
                return Delivery::Fallback {
                    asked: path.to_path_buf(),
                    error,
                    fallback,
                };
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => {
                fallback_error = format!("{}: {e}", fallback.display());
                break;
            }
        }
    }
    Delivery::Stderr {
        error,
        fallback_error,
    }
}

impl Environment {
    /// Checks, before the first seed, that the report file and the trace directory can be
    /// written: `MOONPOOL_REPORT`'s directory exists or is created and a file can be created in
    /// it (a probe, removed again; an existing report is left as it is until the run ends);
    /// `MOONPOOL_TRACE_DIR` (or else `builder_trace_dir`, from `chrome_trace_dir`) is created and
    /// a probe file is written and removed there. Errors name the variable, the path and the OS
    /// error.
    pub(super) fn check_outputs(&self, builder_trace_dir: Option<&Path>) -> Result<(), SimError> {
        if let Some(path) = &self.report_path {
            check_report_path(path).map_err(|e| {
                SimError::setup(format!(
                    "MOONPOOL_REPORT={} cannot be written: {e}",
                    path.display()
                ))
            })?;
        }
        let trace_dir = match (&self.trace_dir, builder_trace_dir) {
            (Some(dir), _) => Some(("MOONPOOL_TRACE_DIR=", dir.as_path())),
            (None, Some(dir)) => Some(("chrome_trace_dir ", dir)),
            (None, None) => None,
        };
        if let Some((source, dir)) = trace_dir {
            check_trace_dir(dir).map_err(|e| {
                SimError::setup(format!("{source}{} cannot be written: {e}", dir.display()))
            })?;
        }
        Ok(())
    }

    /// Writes the finished report where `MOONPOOL_REPORT` asks.
    ///
    /// A finished report is never lost: if it cannot be written there (the directory went away,
    /// the disk filled up...), it is written to `moonpool-report-<name>-<pid>.json` in
    /// [`std::env::temp_dir`] instead, and stderr says where it went and why the first write
    /// failed; if even that fails, the JSON is printed on stderr. This returns `Ok` in every case,
    /// so that `run` still hands the report to its caller (an `Err` would drop it).
    pub(super) fn deliver_report(
        &self,
        report: &super::report::SimulationReport,
    ) -> Result<(), SimError> {
        let Some(path) = &self.report_path else {
            return Ok(());
        };
        let json = report.to_json().map_err(|e| {
            SimError::setup(format!(
                "the report of simulation '{}' cannot be serialized: {e}",
                report.name
            ))
        })?;
        match deliver(&report.name, &json, path, &std::env::temp_dir()) {
            Delivery::Written => {}
            Delivery::Fallback {
                asked,
                error,
                fallback,
            } => eprintln!(
                "moonpool: could not write MOONPOOL_REPORT to {}: {error}; the report of \
                 simulation '{}' was written to {} instead",
                asked.display(),
                report.name,
                fallback.display()
            ),
            Delivery::Stderr {
                error,
                fallback_error,
            } => eprintln!(
                "moonpool: could not write MOONPOOL_REPORT to {}: {error}, nor a fallback file \
                 ({fallback_error}); the report of simulation '{}' follows:\n{json}",
                path.display(),
                report.name
            ),
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn env(vars: &[(&str, &str)]) -> Result<Environment, String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Environment::from_lookup(|name| {
            vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
        })
        .map_err(|e| e.to_string())
    }

    #[test]
    fn test_check_determinism_values() {
        for on in ["1", "true", "TRUE", "on", "On", "yes", "YES"] {
            assert!(
                env(&[("MOONPOOL_CHECK_DETERMINISM", on)])
                    .unwrap()
                    .check_determinism,
                "{on}"
            );
        }
        for off in ["0", "false", "False", "off", "OFF", "no", "No", ""] {
            assert!(
                !env(&[("MOONPOOL_CHECK_DETERMINISM", off)])
                    .unwrap()
                    .check_determinism,
                "{off}"
            );
        }
        for bad in ["2", "enable", "y", " on"] {
            let error = env(&[("MOONPOOL_CHECK_DETERMINISM", bad)])
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(error.contains("MOONPOOL_CHECK_DETERMINISM"), "{error}");
            assert!(error.contains(&format!("'{bad}'")), "{error}");
        }
    }

    #[test]
    fn test_jobs_bounds() {
        assert_eq!(env(&[("MOONPOOL_JOBS", "1")]).unwrap().jobs, Some(1));
        assert_eq!(
            env(&[("MOONPOOL_JOBS", "256")]).unwrap().jobs,
            Some(MAX_JOBS)
        );
        for bad in ["0", "257", "100000", "-1", "+4", "4 ", "four"] {
            let error = env(&[("MOONPOOL_JOBS", bad)])
                .err()
                .unwrap_or_else(|| panic!("{bad} accepted"));
            assert!(error.contains(&format!("MOONPOOL_JOBS='{bad}'")), "{error}");
            assert!(error.contains("256"), "{error}");
        }
    }

    #[test]
    fn test_seed_max_seeds_and_shard() {
        let parsed = env(&[
            ("MOONPOOL_SEED", "18446744073709551615"),
            ("MOONPOOL_MAX_SEEDS", "5"),
            ("MOONPOOL_SHARD", "3/4"),
        ])
        .unwrap();
        assert_eq!(parsed.seed, Some(u64::MAX));
        assert_eq!(parsed.max_seeds, Some(5));
        assert_eq!(parsed.shard, Some((3, 4)));
        for (name, bad) in [
            ("MOONPOOL_SEED", "-1"),
            ("MOONPOOL_SEED", "+1"),
            ("MOONPOOL_SEED", "18446744073709551616"),
            ("MOONPOOL_SEED", "0x10"),
            ("MOONPOOL_MAX_SEEDS", "0"),
            ("MOONPOOL_MAX_SEEDS", "ten"),
            ("MOONPOOL_SHARD", "4/4"),
            ("MOONPOOL_SHARD", "0/0"),
            ("MOONPOOL_SHARD", " 1/4"),
            ("MOONPOOL_SHARD", "+1/4"),
            ("MOONPOOL_SHARD", "1/4/8"),
            ("MOONPOOL_SHARD", "1"),
        ] {
            let error = env(&[(name, bad)])
                .err()
                .unwrap_or_else(|| panic!("{name}={bad} accepted"));
            assert!(error.contains(&format!("{name}='{bad}'")), "{error}");
        }
    }

    #[test]
    fn test_report_path_checks() {
        let dir = tempfile::tempdir().unwrap();
        // A new file in a new directory: fine, and nothing is left behind but the directory.
        let fresh = dir.path().join("sub/report.json");
        check_report_path(&fresh).unwrap();
        assert!(!fresh.exists());
        assert!(
            std::fs::read_dir(dir.path().join("sub"))
                .unwrap()
                .next()
                .is_none()
        );
        // An existing report is not truncated.
        std::fs::write(&fresh, "old").unwrap();
        check_report_path(&fresh).unwrap();
        assert_eq!(std::fs::read_to_string(&fresh).unwrap(), "old");
        // Under a regular file: refused with the OS error.
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let error = check_report_path(&file.join("report.json")).unwrap_err();
        assert!(error.contains("cannot create its directory"), "{error}");
        // A directory.
        assert!(check_report_path(dir.path()).is_err());
    }

    #[test]
    fn test_trace_dir_checks() {
        let dir = tempfile::tempdir().unwrap();
        let traces = dir.path().join("a/b");
        check_trace_dir(&traces).unwrap();
        assert!(traces.is_dir());
        assert!(std::fs::read_dir(&traces).unwrap().next().is_none());
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        assert!(check_trace_dir(&file).is_err());
    }

    #[test]
    fn test_deliver_writes_and_replaces() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out/report.json");
        let fallback = tempfile::tempdir().unwrap();
        assert_eq!(
            deliver("sim", "{\"a\":1}", &path, fallback.path()),
            Delivery::Written
        );
        assert_eq!(
            deliver("sim", "{\"a\":2}", &path, fallback.path()),
            Delivery::Written
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"a\":2}");
        // No temporary file is left next to it.
        assert_eq!(
            std::fs::read_dir(dir.path().join("out")).unwrap().count(),
            1
        );
    }

    #[test]
    fn test_deliver_falls_back_when_the_write_fails() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let path = file.join("report.json");
        let fallback_dir = tempfile::tempdir().unwrap();
        let first = deliver("my sim", "{\"r\":1}", &path, fallback_dir.path());
        let second = deliver("my sim", "{\"r\":2}", &path, fallback_dir.path());
        let pid = std::process::id();
        for (delivery, file, json) in [
            (
                first,
                format!("moonpool-report-my-sim-{pid}.json"),
                "{\"r\":1}",
            ),
            (
                second,
                format!("moonpool-report-my-sim-{pid}-1.json"),
                "{\"r\":2}",
            ),
        ] {
            let Delivery::Fallback {
                asked,
                error,
                fallback,
            } = delivery
            else {
                panic!("not a fallback: {delivery:?}");
            };
            assert_eq!(asked, path);
            assert!(!error.is_empty());
            assert_eq!(fallback, fallback_dir.path().join(file));
            assert_eq!(std::fs::read_to_string(&fallback).unwrap(), json);
        }
    }

    #[test]
    fn test_deliver_says_when_everything_fails() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("file");
        std::fs::write(&file, "x").unwrap();
        let delivery = deliver("sim", "{}", &file.join("report.json"), &file.join("nope"));
        assert!(matches!(delivery, Delivery::Stderr { .. }), "{delivery:?}");
    }
}
