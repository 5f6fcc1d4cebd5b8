//! Split points: what the assertion table tells an exploring run at every evaluation, and the
//! reseeds a replayed recipe makes.
//!
//! Every assertion evaluation of a run has a *position*: how many evaluations the run has made so
//! far, itself included. It is a pure function of the seed and of the reseeds before it, so it
//! names a point of a timeline the same way in the explorer's child process and in a replay.
//!
//! - **Exploring** (the runner's `explore` mode): a [`SplitHandler`] sees every evaluation (to
//!   mark coverage and gather statistics) and, at a *discovery* (the first success of a
//!   `sometimes` or `reachable` in this run, a better bucket of a numeric `sometimes`, a new
//!   frontier of a `sometimes_all`, a new bucket of a `sometimes_each`), may fork the process. In
//!   each child it returns the child's seed, and every random stream of the world is reseeded
//!   with it (`kernel::rng`), right there, inside the assertion call.
//! - **Replaying a recipe**: a [`ReseedPlan`] reseeds at the recipe's positions, with its seeds,
//!   without forking: the same timeline in one process.
//!
//! With neither, an evaluation costs one more counter increment and one branch.

use moonpool_core::chaos::{Observation, Site};

/// One assertion evaluation, as an exploring run sees it.
#[cfg_attr(not(feature = "explorer"), allow(dead_code))]
pub(crate) struct Evaluation<'a> {
    /// The call site.
    pub(crate) site: &'static Site,
    /// The site's identity as a number ([`site_key`]).
    pub(crate) site_key: u64,
    /// The outcome (see `Recorded::outcome`): with the site, a coverage key.
    pub(crate) outcome: u64,
    /// What was observed.
    pub(crate) observation: &'a Observation<'a>,
    /// The evaluation reached something new to this run (its lineage, in a child), and the run
    /// may be split here.
    pub(crate) discovery: bool,
    /// Its position in the run.
    pub(crate) position: u64,
}

/// Receives every assertion evaluation of an exploring run, and may split the run at a discovery.
pub(crate) trait SplitHandler: Send {
    /// Sees `evaluation`. Returns `Some(seed)` when this process has just become a new child
    /// timeline: the world then reseeds every random stream with `seed` and goes on.
    fn evaluated(&mut self, evaluation: &Evaluation<'_>) -> Option<u64>;
}

/// A site's identity as a number: FNV-1a over `file:line:column`, without allocating. The same
/// in every process and every build of the same source.
pub(crate) fn site_key(site: &Site) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |bytes: &[u8]| {
        for byte in bytes {
            hash = (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3);
        }
    };
    eat(site.file.as_bytes());
    eat(b":");
    eat(&site.line.to_le_bytes());
    eat(b":");
    eat(&site.column.to_le_bytes());
    hash
}

/// The reseeds of a replayed recipe: at each position, the seed to reseed with.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct ReseedPlan {
    steps: Vec<(u64, u64)>,
    next: usize,
}

impl ReseedPlan {
    /// Reseeds at `steps` (position, seed), in position order.
    pub(crate) fn new(mut steps: Vec<(u64, u64)>) -> Self {
        steps.sort_by_key(|(position, _)| *position);
        Self { steps, next: 0 }
    }

    /// True when there is nothing to reseed.
    pub(crate) fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// The seed to reseed with at `position`, if the plan has one there.
    pub(crate) fn due(&mut self, position: u64) -> Option<u64> {
        let (at, seed) = *self.steps.get(self.next)?;
        if at == position {
            self.next += 1;
            Some(seed)
        } else {
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_a_plan_reseeds_in_position_order() {
        let mut plan = ReseedPlan::new(vec![(9, 2), (3, 1)]);
        assert_eq!(plan.due(1), None);
        assert_eq!(plan.due(3), Some(1));
        assert_eq!(plan.due(3), None);
        assert_eq!(plan.due(9), Some(2));
        assert!(ReseedPlan::default().is_empty());
    }
}
