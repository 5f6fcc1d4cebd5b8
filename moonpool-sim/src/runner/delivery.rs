//! Where a run's files go: the report file and the trace directory, checked writable before the
//! first seed, and the finished report delivered (never lost: a fallback file, else stderr).

use std::fs::OpenOptions;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use super::environment::Environment;
use crate::error::SimError;

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
