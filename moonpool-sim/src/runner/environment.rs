//! The `MOONPOOL_*` environment variables: parsed strictly, checked before the first seed.
//!
//! An empty variable counts as unset. Any other value that is not exactly what the variable
//! accepts is an error naming the variable and the value (a typo never silently means something
//! else):
//!
//! - `MOONPOOL_SEED`: a seed, decimal digits only;
//! - `MOONPOOL_RECIPE`: a recipe of an exploration (`seed/position:hexseed/...`, see
//!   [`Recipe`](super::Recipe)), replayed in one process; not together with `MOONPOOL_SEED`;
//! - `MOONPOOL_SHARD`: `index/count`, decimal digits only, `index < count`;
//! - `MOONPOOL_JOBS`: worker threads, `1..=`[`MAX_JOBS`];
//! - `MOONPOOL_MAX_SEEDS`: at least 1;
//! - `MOONPOOL_CHECK_DETERMINISM`: `1`, `true`, `on`, `yes` or `0`, `false`, `off`, `no`, in any
//!   case;
//! - `MOONPOOL_REPORT`: a file path, checked writable before the first seed;
//! - `MOONPOOL_TRACE_DIR`: a directory, created and checked writable before the first seed;
//! - `MOONPOOL_FAULTS`: a fault list ([`FaultSet`]'s syntax: `all`, `none`, kind and group
//!   names, `-name`), which narrows the fault kinds the builder allows;
//! - `MOONPOOL_SHRINK`: `off` (also `0`, `no`, `false`), `first` (also `1`, `on`, `yes`,
//!   `true`) or `all`, in any case: which failing seeds are shrunk.
//! - `MOONPOOL_TRACE_MAX_MB`: the size bound of each trace written there, in MiB, at least 1.
//!
//! The checks of those outputs and the report's delivery are in [`delivery`](super::delivery).

use std::path::PathBuf;

use super::recipe::Recipe;
use super::shrink::ShrinkMode;
use crate::error::SimError;
use crate::kernel::fault::FaultSet;

/// The most worker threads `MOONPOOL_JOBS` may ask for: more is certainly a typo (seeds are
/// CPU-bound, so threads beyond the cores only cost memory).
pub(super) const MAX_JOBS: usize = 256;

/// The `MOONPOOL_*` environment.
pub(super) struct Environment {
    pub(super) seed: Option<u64>,
    pub(super) recipe: Option<Recipe>,
    pub(super) shard: Option<(usize, usize)>,
    pub(super) jobs: Option<usize>,
    pub(super) max_seeds: Option<usize>,
    pub(super) check_determinism: bool,
    pub(super) report_path: Option<PathBuf>,
    pub(super) trace_dir: Option<PathBuf>,
    pub(super) faults: Option<FaultSet>,
    pub(super) shrink: Option<ShrinkMode>,
    pub(super) trace_max_mb: Option<usize>,
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
        let seed = var("MOONPOOL_SEED").map(|v| parse_seed(&v)).transpose()?;
        let recipe = var("MOONPOOL_RECIPE")
            .map(|v| {
                v.parse::<Recipe>()
                    .map_err(|e| SimError::setup(format!("MOONPOOL_RECIPE: {e}")))
            })
            .transpose()?;
        if let (Some(seed), Some(recipe)) = (seed, &recipe) {
            return Err(SimError::setup(format!(
                "MOONPOOL_SEED={seed} and MOONPOOL_RECIPE={recipe} are both set: each names the                  one run to replay; unset one"
            )));
        }
        let jobs = var("MOONPOOL_JOBS").map(|v| parse_jobs(&v)).transpose()?;
        let max_seeds = var("MOONPOOL_MAX_SEEDS")
            .map(|v| parse_max_seeds(&v))
            .transpose()?;
        let shard = var("MOONPOOL_SHARD").map(|v| parse_shard(&v)).transpose()?;
        let check_determinism = match var("MOONPOOL_CHECK_DETERMINISM") {
            None => false,
            Some(value) => parse_switch(&value)?,
        };
        let report_path = var("MOONPOOL_REPORT").map(PathBuf::from);
        let trace_dir = var("MOONPOOL_TRACE_DIR").map(PathBuf::from);
        let faults = var("MOONPOOL_FAULTS")
            .map(|v| {
                v.parse::<FaultSet>()
                    .map_err(|e| SimError::setup(format!("MOONPOOL_FAULTS: {e}")))
            })
            .transpose()?;
        let shrink = var("MOONPOOL_SHRINK")
            .map(|v| parse_shrink(&v))
            .transpose()?;
        let trace_max_mb = var("MOONPOOL_TRACE_MAX_MB")
            .map(|v| parse_trace_max_mb(&v))
            .transpose()?;
        Ok(Self {
            faults,
            shrink,
            seed,
            recipe,
            shard,
            jobs,
            max_seeds,
            check_determinism,
            report_path,
            trace_dir,
            trace_max_mb,
        })
    }
}

/// `MOONPOOL_SHRINK`.
fn parse_shrink(value: &str) -> Result<ShrinkMode, SimError> {
    match value.to_ascii_lowercase().as_str() {
        "off" | "0" | "no" | "false" => Ok(ShrinkMode::Off),
        "first" | "1" | "on" | "yes" | "true" => Ok(ShrinkMode::FirstFailure),
        "all" => Ok(ShrinkMode::EveryFailure),
        _ => Err(SimError::setup(format!(
            "MOONPOOL_SHRINK='{value}' is not one of off, first, all (or 0/1, no/yes, \
             false/true, on)"
        ))),
    }
}

/// `MOONPOOL_TRACE_MAX_MB`.
fn parse_trace_max_mb(value: &str) -> Result<usize, SimError> {
    digits::<usize>(value)
        .filter(|n| (1..=1 << 20).contains(n))
        .ok_or_else(|| {
            SimError::setup(format!(
                "MOONPOOL_TRACE_MAX_MB='{value}' is not a size in MiB from 1 to {}",
                1 << 20
            ))
        })
}

/// `MOONPOOL_SEED`.
fn parse_seed(value: &str) -> Result<u64, SimError> {
    digits::<u64>(value).ok_or_else(|| {
        SimError::setup(format!(
            "MOONPOOL_SEED='{value}' is not a seed (decimal digits, at most {})",
            u64::MAX
        ))
    })
}

/// `MOONPOOL_JOBS`.
fn parse_jobs(value: &str) -> Result<usize, SimError> {
    digits::<usize>(value)
        .filter(|n| (1..=MAX_JOBS).contains(n))
        .ok_or_else(|| {
            SimError::setup(format!(
                "MOONPOOL_JOBS='{value}' is not a number of worker threads from 1 to {MAX_JOBS}"
            ))
        })
}

/// `MOONPOOL_MAX_SEEDS`.
fn parse_max_seeds(value: &str) -> Result<usize, SimError> {
    match digits::<u64>(value) {
        Some(0) => Err(SimError::setup(format!(
            "MOONPOOL_MAX_SEEDS='{value}' would run no seed: it must be at least 1"
        ))),
        Some(n) => Ok(usize::try_from(n).unwrap_or(usize::MAX)),
        None => Err(SimError::setup(format!(
            "MOONPOOL_MAX_SEEDS='{value}' is not a positive integer"
        ))),
    }
}

/// `MOONPOOL_SHARD`.
fn parse_shard(value: &str) -> Result<(usize, usize), SimError> {
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
}

/// `MOONPOOL_CHECK_DETERMINISM`.
fn parse_switch(value: &str) -> Result<bool, SimError> {
    match value.to_ascii_lowercase().as_str() {
        "1" | "true" | "on" | "yes" => Ok(true),
        "0" | "false" | "off" | "no" => Ok(false),
        _ => Err(SimError::setup(format!(
            "MOONPOOL_CHECK_DETERMINISM='{value}' is neither on (1, true, on, yes) nor off (0, \
             false, off, no)"
        ))),
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
        let parsed = env(&[("MOONPOOL_RECIPE", "5/2:00000000000000aa")]).unwrap();
        assert_eq!(parsed.recipe.unwrap().to_string(), "5/2:00000000000000aa");
        let error = env(&[("MOONPOOL_RECIPE", "5/x")]).err().unwrap();
        assert!(
            error.contains("MOONPOOL_RECIPE: '5/x' is not a recipe"),
            "{error}"
        );
        let error = env(&[("MOONPOOL_RECIPE", "5"), ("MOONPOOL_SEED", "5")])
            .err()
            .unwrap();
        assert!(error.contains("both set"), "{error}");
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
}
