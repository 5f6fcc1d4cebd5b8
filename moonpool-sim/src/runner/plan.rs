//! The seed plan: the builder's seeds and iteration control, with the `MOONPOOL_*` environment
//! applied (a replayed seed, a shard, a cap), resolved into which seeds this run may take and
//! when it stops.

use super::builder::SimulationBuilder;
use super::environment::Environment;
use super::iteration::{IterationControl, Stopper};
use super::recipe::Recipe;
use crate::error::SimError;

/// Which seeds a run takes, in which order, and when it stops.
///
/// The global seed sequence is the builder's seed list, or `base + index`; a shard takes the
/// indexes `i` with `i % shards == shard`.
pub(super) struct SeedPlan {
    /// The explicit seeds (`seeds(...)`, or the one of `MOONPOOL_SEED`), else `None`.
    seeds: Option<Vec<u64>>,
    /// Seed `i` of the sequence is `base + i` when there is no list.
    base: u64,
    /// This run's shard and the shard count (`0` of `1` when unsharded).
    pub(super) shard: usize,
    pub(super) shards: usize,
    /// Whether a shard was asked for (the report then names it).
    pub(super) sharded: bool,
    /// Global indexes at or past this bound are never run.
    index_bound: usize,
    /// The iteration control of this shard's own part of the sequence.
    control: IterationControl,
    /// Seeds to run before an adaptive control may stop.
    min_seeds: usize,
}

impl SeedPlan {
    /// Resolves the builder's settings and the environment; `Err` for a shard that does not
    /// exist.
    pub(super) fn resolve(
        builder: &SimulationBuilder,
        env: &Environment,
        recipe: Option<&Recipe>,
    ) -> Result<Self, SimError> {
        let base = builder
            .base_seed
            .unwrap_or_else(|| name_seed(&builder.name));
        let max_seeds = max_seeds(env.max_seeds, builder.ci_max_seeds);
        // Replaying one seed (`MOONPOOL_SEED`) or one recipe (its root seed) is a seed list of
        // one, unsharded.
        let (seeds, shard_setting, control) = match env.seed.or(recipe.map(|r| r.seed)) {
            Some(seed) => (Some(vec![seed]), None, IterationControl::FixedCount(1)),
            None => (
                builder.seeds.clone(),
                env.shard.or(builder.shard),
                match max_seeds {
                    Some(cap) => cap_iterations(builder.iterations.clone(), cap),
                    None => builder.iterations.clone(),
                },
            ),
        };
        let (shard, shards) = match shard_setting {
            Some((index, count)) if count > 0 && index < count => (index, count),
            Some((index, count)) => {
                return Err(SimError::setup(format!(
                    "shard {index}/{count} is not index/count with index < count"
                )));
            }
            None => (0, 1),
        };
        let (index_bound, control) = shard_bounds(control, shard, shards);
        Ok(Self {
            seeds,
            base,
            shard,
            shards,
            sharded: shard_setting.is_some(),
            index_bound,
            control,
            // A cap (CI, MOONPOOL_MAX_SEEDS) wins over a minimum.
            min_seeds: builder.min_seeds.min(max_seeds.unwrap_or(usize::MAX)),
        })
    }

    /// The `k`-th seed of this shard of the sequence, with its global index (a pure function,
    /// shared by the workers).
    pub(super) fn nth(&self, k: usize) -> Option<(usize, u64)> {
        let index = self.shard.checked_add(k.checked_mul(self.shards)?)?;
        if index >= self.index_bound {
            return None;
        }
        self.seed_at(index).map(|seed| (index, seed))
    }

    /// The seed at `index` of the global sequence.
    fn seed_at(&self, index: usize) -> Option<u64> {
        match &self.seeds {
            Some(list) => list.get(index).copied(),
            None => Some(self.base.wrapping_add(index as u64)),
        }
    }

    /// Decides, after each seed, whether to stop.
    pub(super) fn stopper(&self) -> Stopper {
        Stopper::new(self.control.clone(), self.min_seeds)
    }
}

/// The seed cap: `MOONPOOL_MAX_SEEDS`, and the builder's `ci_max_seeds` when `CI` is set; the
/// smaller of the two.
fn max_seeds(env_cap: Option<usize>, ci_cap: Option<usize>) -> Option<usize> {
    let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
    match (env_cap, ci_cap.filter(|_| in_ci)) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

/// A fixed count bounds the global seed sequence, which shards split; the other controls apply
/// to each shard's own part of the sequence. Returns the bound on global indexes and the control
/// of this shard.
fn shard_bounds(
    control: IterationControl,
    shard: usize,
    shards: usize,
) -> (usize, IterationControl) {
    match control {
        IterationControl::FixedCount(n) => (
            n,
            IterationControl::FixedCount((0..n).filter(|i| i % shards == shard).count().max(1)),
        ),
        other => (
            Stopper::new(other.clone(), 1)
                .max_seeds()
                .unwrap_or(usize::MAX)
                .saturating_mul(shards),
            other,
        ),
    }
}

/// The default base seed: a hash of the simulation's name.
fn name_seed(name: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in name.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash & 0xffff_ffff
}

/// `control` with at most `cap` seeds.
fn cap_iterations(control: IterationControl, cap: usize) -> IterationControl {
    match control {
        IterationControl::FixedCount(n) => IterationControl::FixedCount(n.min(cap)),
        IterationControl::TimeLimit(_) => IterationControl::FixedCount(cap),
        IterationControl::UntilAllSometimesReached(max) => {
            IterationControl::UntilAllSometimesReached(max.min(cap))
        }
        IterationControl::UntilCoverageStable {
            plateau_seeds,
            max_seeds,
        } => IterationControl::UntilCoverageStable {
            plateau_seeds: plateau_seeds.min(cap),
            max_seeds: max_seeds.min(cap),
        },
    }
}
