//! [`ExplorationConfig`]: the energy budget of an exploration, and how it is checked.

use std::time::Duration;

use crate::error::ExploreError;
use crate::tables::MAX_DEPTH;

/// How much an exploration may fork, and how it spends it.
///
/// Energy is counted in child timelines (one forked process each):
///
/// - `global_energy` bounds the whole exploration: once spent, no split point forks again.
/// - A split point whose discovery is new to every timeline so far (*fresh*) may spawn up to
///   `per_split` children; one whose discovery its own lineage had not seen but another
///   timeline had (*repeat*) spawns one batch.
/// - Children are spawned in batches of `batch`. After each batch the split point looks at what
///   its children (and their own children) found: nothing new (no coverage key no timeline had,
///   no bug) ends it, once it has spawned `min_per_split` (fresh) or one batch (repeat); the
///   allowance it did not use goes to a shared pool. A split point that has used its allowance
///   and whose last batch found something new draws further batches from that pool.
/// - `max_depth` bounds nesting: a timeline `max_depth` splits away from its root seed does not
///   split again.
/// - `parallelism` children run at once, over the whole process tree (0: the machine's cores).
///   With 1, timelines run one after the other in a fixed order, and an exploration is a pure
///   function of its root seeds and this configuration.
/// - A child timeline that runs longer than `timeline_budget` of wall-clock time (waiting for its
///   own children excluded) is killed and reported as a hang.
///
/// Build it from [`default`](Self::default) and the `with_*` methods (or assign its public
/// fields): the struct is `#[non_exhaustive]`, so a new field is not a breaking change.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ExplorationConfig {
    /// Child timelines the whole exploration may fork (default 10 000). 0 forks nothing.
    pub global_energy: u64,
    /// Children a fresh split point may spawn from its own allowance (default 200).
    pub per_split: u64,
    /// Children a fresh split point spawns before a batch that finds nothing new may stop it
    /// (default 100; at most `per_split`). Higher is more thorough at each discovery: with a
    /// next step of probability `p`, a fresh split point misses it with probability about
    /// `(1 - p)^min_per_split`.
    pub min_per_split: u64,
    /// Children per batch (default 10; at least 1).
    pub batch: u64,
    /// Most nested splits on one timeline (default 16; 1 to [`MAX_DEPTH`]).
    pub max_depth: u32,
    /// Children running at once over the whole tree; 0 (the default) means the machine's cores.
    pub parallelism: usize,
    /// Wall-clock time a child timeline may run (default 60 s), not counting the time it waits
    /// for its own children.
    pub timeline_budget: Duration,
    /// Stop forking as soon as any timeline finds a bug (default false).
    pub stop_on_first_bug: bool,
}

impl Default for ExplorationConfig {
    fn default() -> Self {
        Self {
            global_energy: 10_000,
            per_split: 200,
            min_per_split: 100,
            batch: 10,
            max_depth: 16,
            parallelism: 0,
            timeline_budget: Duration::from_secs(60),
            stop_on_first_bug: false,
        }
    }
}

impl ExplorationConfig {
    /// Timelines one after the other (`parallelism` 1): deterministic exploration.
    pub fn sequential(mut self) -> Self {
        self.parallelism = 1;
        self
    }

    /// This configuration with `global_energy` set (child timelines the whole exploration may fork).
    #[must_use]
    pub fn with_global_energy(mut self, global_energy: u64) -> Self {
        self.global_energy = global_energy;
        self
    }

    /// This configuration with `per_split` set (children a fresh split point may spawn).
    #[must_use]
    pub fn with_per_split(mut self, per_split: u64) -> Self {
        self.per_split = per_split;
        self
    }

    /// This configuration with `min_per_split` set (children a fresh split point spawns before it may stop).
    #[must_use]
    pub fn with_min_per_split(mut self, min_per_split: u64) -> Self {
        self.min_per_split = min_per_split;
        self
    }

    /// This configuration with `batch` set (children per batch).
    #[must_use]
    pub fn with_batch(mut self, batch: u64) -> Self {
        self.batch = batch;
        self
    }

    /// This configuration with `max_depth` set (most nested splits on one timeline).
    #[must_use]
    pub fn with_max_depth(mut self, max_depth: u32) -> Self {
        self.max_depth = max_depth;
        self
    }

    /// This configuration with `parallelism` set (children running at once; 0 means the machine's cores).
    #[must_use]
    pub fn with_parallelism(mut self, parallelism: usize) -> Self {
        self.parallelism = parallelism;
        self
    }

    /// This configuration with `timeline_budget` set (wall-clock time a child timeline may run).
    #[must_use]
    pub fn with_timeline_budget(mut self, timeline_budget: Duration) -> Self {
        self.timeline_budget = timeline_budget;
        self
    }

    /// This configuration with `stop_on_first_bug` set (stop forking at the first bug).
    #[must_use]
    pub fn with_stop_on_first_bug(mut self, stop_on_first_bug: bool) -> Self {
        self.stop_on_first_bug = stop_on_first_bug;
        self
    }

    /// Checks the configuration; the error names the field and its bad value.
    pub fn validate(&self) -> Result<(), ExploreError> {
        let bad = |field: &'static str, value: String, expected: &'static str| {
            Err(ExploreError::InvalidConfig {
                field,
                value,
                expected,
            })
        };
        if self.batch == 0 {
            return bad("batch", "0".to_string(), "at least 1");
        }
        if self.min_per_split > self.per_split {
            return bad(
                "min_per_split",
                format!("{} (per_split is {})", self.min_per_split, self.per_split),
                "at most per_split",
            );
        }
        if self.max_depth == 0 || self.max_depth as usize > MAX_DEPTH {
            return bad(
                "max_depth",
                self.max_depth.to_string(),
                "between 1 and 64 (MAX_DEPTH)",
            );
        }
        if self.timeline_budget.is_zero() {
            return bad("timeline_budget", "0 s".to_string(), "more than zero");
        }
        if self.parallelism > 4096 {
            return bad(
                "parallelism",
                self.parallelism.to_string(),
                "at most 4096 (0: the machine's cores)",
            );
        }
        Ok(())
    }

    /// The number of children that may run at once: `parallelism`, or the machine's cores.
    pub fn resolved_parallelism(&self) -> usize {
        if self.parallelism > 0 {
            self.parallelism
        } else {
            std::thread::available_parallelism().map_or(1, std::num::NonZero::get)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_defaults_are_valid_and_bad_values_are_named() {
        assert!(ExplorationConfig::default().validate().is_ok());
        let error = ExplorationConfig {
            batch: 0,
            ..ExplorationConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(error.to_string().contains("batch"), "{error}");
        let error = ExplorationConfig {
            max_depth: 65,
            ..ExplorationConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(error.to_string().contains("max_depth"), "{error}");
        let error = ExplorationConfig {
            min_per_split: 300,
            ..ExplorationConfig::default()
        }
        .validate()
        .unwrap_err();
        assert!(error.to_string().contains("min_per_split"), "{error}");
        assert_eq!(
            ExplorationConfig::default()
                .sequential()
                .resolved_parallelism(),
            1
        );
    }
}
