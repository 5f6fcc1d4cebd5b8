//! The `MOONPOOL_*` environment variables: parsed strictly, checked before the first seed.

use std::path::PathBuf;

use crate::error::SimError;

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

impl Environment {
    pub(super) fn read() -> Result<Self, SimError> {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let parse = |name: &str, value: &str| -> Result<u64, SimError> {
            value.parse::<u64>().map_err(|_| {
                SimError::setup(format!("{name}='{value}' is not a non-negative integer"))
            })
        };
        let seed = var("MOONPOOL_SEED")
            .map(|v| parse("MOONPOOL_SEED", &v))
            .transpose()?;
        let jobs = var("MOONPOOL_JOBS")
            .map(|v| parse("MOONPOOL_JOBS", &v).map(|n| usize::try_from(n.max(1)).unwrap_or(1)))
            .transpose()?;
        let max_seeds = var("MOONPOOL_MAX_SEEDS")
            .map(|v| {
                parse("MOONPOOL_MAX_SEEDS", &v)
                    .map(|n| usize::try_from(n.max(1)).unwrap_or(usize::MAX))
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
                let index: usize = index.trim().parse().map_err(|_| bad())?;
                let count: usize = count.trim().parse().map_err(|_| bad())?;
                if count == 0 || index >= count {
                    return Err(bad());
                }
                Ok((index, count))
            })
            .transpose()?;
        let check_determinism =
            var("MOONPOOL_CHECK_DETERMINISM").is_some_and(|v| v != "0" && v != "false");
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

impl Environment {
    /// Checks, before the first seed, that the report file and the trace directory can be
    /// written.
    pub(super) fn check_outputs(&self) -> Result<(), SimError> {
        Ok(())
    }

    /// Writes the finished report where `MOONPOOL_REPORT` asks.
    pub(super) fn deliver_report(
        &self,
        report: &super::report::SimulationReport,
    ) -> Result<(), SimError> {
        if let Some(path) = &self.report_path {
            report.write_json(path).map_err(|e| {
                SimError::setup(format!(
                    "cannot write MOONPOOL_REPORT to {}: {e}",
                    path.display()
                ))
            })?;
        }
        Ok(())
    }
}
