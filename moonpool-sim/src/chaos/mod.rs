//! The simulator's side of `buggify!` and the assertion macros (defined in
//! `moonpool_core::chaos`): per-seed buggify decisions and the assertion table.

pub(crate) mod quiet;
mod split;
mod table;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use moonpool_core::chaos::{AssertKind, ChaosHooks, Observation, Site};
use rand_chacha::ChaCha8Rng;

pub(crate) use quiet::RunChaos;
pub(crate) use split::{Evaluation, ReseedPlan, SplitHandler, site_key};
#[cfg(feature = "explorer")]
pub(crate) use table::prefers_higher;
pub use table::{AssertionRecord, AssertionTable, AssertionViolation, BuggifyRecord};

use crate::executor::Spawner;
use crate::kernel::clock::SharedClock;
use crate::kernel::rng::WorldRng;
use crate::run_lock::RunLock;

/// How `buggify!` behaves in a run.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct BuggifyConfig {
    /// Buggify points can fire at all.
    pub enabled: bool,
    /// Probability that a given call site is enabled for a seed (decided the first time the site
    /// is reached).
    pub site_activation_probability: f64,
}

impl Default for BuggifyConfig {
    fn default() -> Self {
        Self {
            enabled: true,
            site_activation_probability: 0.5,
        }
    }
}

impl BuggifyConfig {
    /// Buggify off.
    pub fn disabled() -> Self {
        Self {
            enabled: false,
            site_activation_probability: 0.0,
        }
    }

    /// Checks the configuration; the error names the field and its bad value. The probability
    /// is checked even when buggify is disabled: a bad value is a mistake either way.
    pub fn validate(&self) -> Result<(), String> {
        let p = self.site_activation_probability;
        if (0.0..=1.0).contains(&p) {
            Ok(())
        } else {
            Err(format!(
                "site_activation_probability is {p}, expected a probability in [0, 1]"
            ))
        }
    }
}

/// Per-seed chaos state shared between the installed hooks and the world.
pub(crate) struct ChaosState {
    pub(crate) table: AssertionTable,
    buggify: BuggifyConfig,
    rng: WorldRng,
    /// Each buggify location reached, by file, line and column: its index in `counters`.
    sites: BTreeMap<(&'static str, u32, u32), usize>,
    /// The same by the site's position in the catalog (`moonpool_core::chaos::catalog::SITES`,
    /// one entry per macro call), `NOT_REACHED` until first reached: a hot site is found by one
    /// subtraction and an indexed load, without comparing file names. Sites sharing a location
    /// share an index.
    by_catalog: Vec<u32>,
    /// Where the catalog's array starts and how many sites it holds, read once per run (reading
    /// them from the distributed slice divides by the entry size at every call).
    catalog: (usize, usize),
    /// By the address of the site's `static`, for a site outside the catalog (not expected: every
    /// site macro registers its static there).
    by_address: BTreeMap<usize, usize>,
    /// Per location: enabled for this seed or not, its location (the key of its record in the
    /// table), and its calls and firings not yet added to the table (see `table_snapshot`).
    counters: Vec<SiteCounters>,
    knobs: BTreeMap<(&'static str, u32, u32), f64>,
    /// `buggify!` points that fired, reported as the `buggify.fired` fault.
    pub(crate) buggify_fired: u64,
}

/// `ChaosState::by_catalog` of a site not reached yet in this run.
const NOT_REACHED: u32 = u32::MAX;

/// The position of `site` in the site catalog (whose array starts at `base` and holds `len`
/// sites), found from its address: every site macro puts its `static` in the catalog's array, so
/// the position is the address's offset over the entry size. `None` for a `Site` that is not in
/// the catalog.
#[inline]
fn catalog_index((base, len): (usize, usize), site: &'static Site) -> Option<usize> {
    let size = std::mem::size_of::<Site>();
    let offset = (std::ptr::from_ref(site) as usize).checked_sub(base)?;
    let position = offset / size;
    (offset % size == 0 && position < len).then_some(position)
}

/// One buggify location's state in a run.
struct SiteCounters {
    enabled: bool,
    location: &'static str,
    calls: u64,
    fired: u64,
}

/// What a run does at its split points (see [`split`]): nothing, replay a recipe's reseeds, or
/// explore.
pub(crate) struct Splits {
    /// The exploring run's handler.
    pub(crate) handler: Option<Box<dyn SplitHandler>>,
    /// The reseeds of a replayed recipe.
    pub(crate) plan: ReseedPlan,
    /// Reseeds every stream of the world but buggify's (which the hooks own).
    pub(crate) reseed_world: Box<dyn Fn(u64) + Send>,
    /// True when the world's state is not locked by this thread (a split can reseed it).
    pub(crate) world_free: Box<dyn Fn() -> bool + Send>,
}

impl Splits {
    /// A run that neither explores nor replays a recipe.
    pub(crate) fn none() -> Self {
        Self {
            handler: None,
            plan: ReseedPlan::default(),
            reseed_world: Box::new(|_| {}),
            world_free: Box::new(|| true),
        }
    }

    fn active(&self) -> bool {
        self.handler.is_some() || !self.plan.is_empty()
    }
}

/// The hooks installed for one run; they record into a [`ChaosState`] the world reads afterwards.
pub(crate) struct SimChaos {
    state: Arc<RunLock<ChaosState>>,
    violated: Arc<AtomicBool>,
    clock: SharedClock,
    spawner: Spawner,
    process_names: Arc<[String]>,
    /// Assertion evaluations so far: the position of the next split point.
    evaluations: u64,
    /// Set when the run explores or replays; checked once per evaluation.
    splitting: bool,
    splits: Splits,
}

impl SimChaos {
    pub(crate) fn new(
        seed: u64,
        buggify: BuggifyConfig,
        clock: SharedClock,
        spawner: Spawner,
        process_names: Arc<[String]>,
        splits: Splits,
        kept: Option<KeptChaos>,
    ) -> (Self, Arc<RunLock<ChaosState>>, Arc<AtomicBool>) {
        let rng: ChaCha8Rng = crate::kernel::rng::stream(seed, crate::kernel::rng::STREAM_BUGGIFY);
        let (state, violated) = renewed(kept, buggify, rng);
        let hooks = Self {
            state: Arc::clone(&state),
            violated: Arc::clone(&violated),
            clock,
            spawner,
            process_names,
            evaluations: 0,
            splitting: splits.active(),
            splits,
        };
        (hooks, state, violated)
    }

    fn where_now(&self) -> (String, Duration) {
        let task = self.spawner.current_task();
        let label = match task {
            Some(task) => {
                let owner = task
                    .owner
                    .and_then(|id| self.process_names.get(id.0 as usize).cloned())
                    .unwrap_or_else(|| "world".to_string());
                format!("{owner}/{}", task.name)
            }
            None => "world".to_string(),
        };
        (label, self.clock.load())
    }

    /// Records the first `always`-type failure of the run, where and when it happened.
    fn violation(&self, site: &'static Site, detail: String) {
        let (task, now) = self.where_now();
        crate::kernel::story::with_current(|story| {
            story.note(crate::kernel::story::What::Violation);
        });
        let mut state = self.state.lock();
        state.table.set_violation(site, task, now, detail);
        self.violated.store(true, Ordering::SeqCst);
    }

    /// `record` in a run that explores or replays a recipe: counts the evaluation (its position)
    /// and does the split point's bookkeeping. Kept out of line, so that a plain run's `record`
    /// is what it was: the run decides once, before its first evaluation, which of the two it
    /// uses, so positions always count every evaluation of a splitting run.
    #[inline(never)]
    fn record_splitting(&mut self, site: &'static Site, observation: &Observation<'_>) {
        let recorded = {
            let mut state = self.state.lock();
            state.table.record(site, observation, true)
        };
        if let Some(detail) = recorded.failure {
            self.violation(site, detail);
        }
        self.evaluations += 1;
        self.after_evaluation(site, observation, recorded.outcome, recorded.discovery);
    }

    /// A split point's bookkeeping after an evaluation at `position`.
    fn after_evaluation(
        &mut self,
        site: &'static Site,
        observation: &Observation<'_>,
        outcome: u64,
        discovery: bool,
    ) {
        let position = self.evaluations;
        if let Some(seed) = self.splits.plan.due(position) {
            self.reseed(seed);
        }
        let Some(handler) = self.splits.handler.as_mut() else {
            return;
        };
        // A split reseeds the world's state: not possible from code that holds its lock (no
        // assertion is evaluated there today; this keeps it so rather than deadlock).
        let discovery = discovery && (self.splits.world_free)();
        let evaluation = Evaluation {
            site,
            site_key: site_key(site),
            outcome,
            observation,
            discovery,
            position,
        };
        if let Some(seed) = handler.evaluated(&evaluation) {
            self.reseed(seed);
        }
    }

    /// Reseeds every random stream of the run with `seed` (a split point).
    fn reseed(&self, seed: u64) {
        self.state
            .lock()
            .rng
            .reseed(seed, crate::kernel::rng::STREAM_BUGGIFY);
        (self.splits.reseed_world)(seed);
    }
}

/// A chaos state and violation flag for a run: `kept` renewed when nothing else refers to it,
/// else new ones.
fn renewed(
    kept: Option<KeptChaos>,
    buggify: BuggifyConfig,
    rng: ChaCha8Rng,
) -> (Arc<RunLock<ChaosState>>, Arc<AtomicBool>) {
    if let Some(KeptChaos(mut state, mut violated)) = kept
        && let (Some(lock), Some(flag)) = (Arc::get_mut(&mut state), Arc::get_mut(&mut violated))
    {
        lock.get_mut().renew(buggify, rng);
        *flag.get_mut() = false;
        return (state, violated);
    }
    (
        Arc::new(RunLock::new(ChaosState::new(buggify, rng))),
        Arc::new(AtomicBool::new(false)),
    )
}

/// A finished run's chaos state and violation flag, kept by its world for the next world of its
/// thread (see `world::spare`): [`SimChaos::new`] renews them in place when nothing else refers
/// to them any more.
pub(crate) struct KeptChaos(
    pub(crate) Arc<RunLock<ChaosState>>,
    pub(crate) Arc<AtomicBool>,
);

impl ChaosState {
    /// Makes this state what [`ChaosState::new`] makes, keeping only the memory of its two
    /// lists indexed by site (emptied).
    fn renew(&mut self, buggify: BuggifyConfig, rng: ChaCha8Rng) {
        let mut by_catalog = std::mem::take(&mut self.by_catalog);
        let mut counters = std::mem::take(&mut self.counters);
        by_catalog.clear();
        counters.clear();
        *self = Self {
            by_catalog,
            counters,
            ..Self::new(buggify, rng)
        };
    }

    pub(crate) fn new(buggify: BuggifyConfig, rng: ChaCha8Rng) -> Self {
        let sites: &'static [Site] = &moonpool_core::chaos::catalog::SITES;
        Self {
            table: AssertionTable::default(),
            buggify,
            rng: WorldRng::from_rng(rng),
            sites: BTreeMap::new(),
            by_catalog: Vec::new(),
            catalog: (sites.as_ptr() as usize, sites.len()),
            by_address: BTreeMap::new(),
            counters: Vec::new(),
            knobs: BTreeMap::new(),
            buggify_fired: 0,
        }
    }

    #[cfg(test)]
    fn new_for_test() -> Self {
        Self::new(
            BuggifyConfig::default(),
            crate::kernel::rng::stream(1, crate::kernel::rng::STREAM_BUGGIFY),
        )
    }

    /// Decides whether `site` is enabled for this seed the first time it is reached (with
    /// buggify off, never, without a draw) and records it in the table.
    /// The index of `site`'s counters, drawing whether it is enabled when its location is first
    /// reached in this run.
    #[inline]
    fn reach(&mut self, site: &'static Site) -> usize {
        let catalog = catalog_index(self.catalog, site);
        if let Some(position) = catalog
            && let Some(&index) = self.by_catalog.get(position)
            && index != NOT_REACHED
        {
            return index as usize;
        }
        self.reach_slow(site, catalog)
    }

    /// The first call of a site in this run (or a site outside the catalog).
    #[cold]
    fn reach_slow(&mut self, site: &'static Site, catalog: Option<usize>) -> usize {
        let address = std::ptr::from_ref(site) as usize;
        if let Some(index) = self.by_address.get(&address) {
            return *index;
        }
        let key = (site.file, site.line, site.column);
        let index = match self.sites.get(&key) {
            Some(index) => *index,
            None => {
                let enabled = self.buggify.enabled
                    && self.rng.chance(self.buggify.site_activation_probability);
                self.table.buggify_reached(site, enabled);
                self.counters.push(SiteCounters {
                    enabled,
                    location: site.location_str(),
                    calls: 0,
                    fired: 0,
                });
                let index = self.counters.len() - 1;
                self.sites.insert(key, index);
                index
            }
        };
        match (catalog, u32::try_from(index)) {
            (Some(position), Ok(small)) if small != NOT_REACHED => {
                if self.by_catalog.len() <= position {
                    self.by_catalog.resize(position + 1, NOT_REACHED);
                }
                if let Some(slot) = self.by_catalog.get_mut(position) {
                    *slot = small;
                }
            }
            _ => {
                self.by_address.insert(address, index);
            }
        }
        index
    }

    /// Records one call of a buggify site: `fire` draws whether it fires, only when the site is
    /// enabled.
    fn buggify_call(
        &mut self,
        site: &'static Site,
        fire: impl FnOnce(&mut WorldRng) -> bool,
    ) -> bool {
        let index = self.reach(site);
        let Some(counters) = self.counters.get_mut(index) else {
            return false;
        };
        let fired = counters.enabled && fire(&mut self.rng);
        counters.calls += 1;
        counters.fired += u64::from(fired);
        fired
    }

    /// The assertion table with every buggify call so far counted in.
    pub(crate) fn table_snapshot(&self) -> AssertionTable {
        let mut table = self.table.clone();
        for counters in &self.counters {
            table.buggify_called(counters.location, counters.calls, counters.fired);
        }
        table
    }

    /// The table with the counted calls added, moved out instead of copied (at the end of a
    /// run whose world is about to go: the state keeps an empty table and no pending counts).
    pub(crate) fn take_table(&mut self) -> AssertionTable {
        let mut table = std::mem::take(&mut self.table);
        for counters in &mut self.counters {
            table.buggify_called(counters.location, counters.calls, counters.fired);
            counters.calls = 0;
            counters.fired = 0;
        }
        table
    }
}

/// A run's chaos state, as the hooks and the world share it.
pub(crate) type SharedChaos = Arc<RunLock<ChaosState>>;

impl ChaosState {
    /// One call of `buggify!` at `site`: what the installed hooks answer.
    pub(crate) fn buggify(&mut self, site: &'static Site, probability: f64) -> bool {
        let fired = self.buggify_call(site, |rng| rng.chance(probability));
        if fired {
            self.buggify_fired += 1;
            crate::kernel::story::with_current(|story| {
                story.note(crate::kernel::story::What::Buggify {
                    location: site.location(),
                });
            });
        }
        fired
    }
}

impl ChaosState {
    /// The counters' index of `site` when it was reached and is disabled for this run.
    pub(crate) fn disabled_index(&self, site: &'static Site) -> Option<usize> {
        let address = std::ptr::from_ref(site) as usize;
        let index = match catalog_index(self.catalog, site) {
            Some(position) => self
                .by_catalog
                .get(position)
                .filter(|index| **index != NOT_REACHED)
                .map(|index| *index as usize),
            None => self.by_address.get(&address).copied(),
        }?;
        self.counters
            .get(index)
            .is_some_and(|counters| !counters.enabled)
            .then_some(index)
    }

    /// Counts `calls` more calls of the site at `index` (calls counted beside the world's state).
    pub(crate) fn add_calls(&mut self, index: usize, calls: u64) {
        if let Some(counters) = self.counters.get_mut(index) {
            counters.calls += calls;
        }
    }
}

/// A buggify call of the simulator's own code (a socket read or write), with the running world's
/// chaos state at hand: the same answer and counts as `buggify!` through the installed hooks,
/// without the thread-local hook slot and the dynamic call (see [`quiet`]). Without a chaos state
/// (outside a run) it asks the hooks, as `buggify!` does.
#[inline]
pub(crate) fn buggify_at(
    chaos: Option<&mut RunChaos>,
    site: &'static Site,
    probability: f64,
) -> bool {
    match chaos {
        Some(chaos) => chaos.buggify(site, probability),
        None => moonpool_core::chaos::__buggify(site, probability),
    }
}

impl ChaosHooks for SimChaos {
    fn buggify(&mut self, site: &'static Site, probability: f64) -> bool {
        self.state.lock().buggify(site, probability)
    }

    fn knob(&mut self, site: &'static Site, default: f64, lo: f64, hi: f64) -> f64 {
        let mut state = self.state.lock();
        let key = (site.file, site.line, site.column);
        if let Some(value) = state.knobs.get(&key) {
            let value = *value;
            let _ = state.buggify_call(site, |_| value != default);
            return value;
        }
        let mut value = default;
        let _ = state.buggify_call(site, |rng| {
            value = rng.range(lo..hi);
            value != default
        });
        state.knobs.insert(key, value);
        value
    }

    fn record(&mut self, site: &'static Site, observation: Observation<'_>) {
        if self.splitting {
            self.record_splitting(site, &observation);
            return;
        }
        let failed_where = {
            let mut state = self.state.lock();
            let recorded = state.table.record(site, &observation, false);
            if site.kind.is_some_and(|kind| kind.is_coverage()) {
                note_first_success(&state.table, site);
            }
            recorded.failure
        };
        if let Some(detail) = failed_where {
            self.violation(site, detail);
        }
    }
}

/// A coverage assertion that just succeeded for the first time in this run goes into the
/// story, when one is recorded (nothing runs otherwise but the thread-local check).
fn note_first_success(table: &crate::chaos::AssertionTable, site: &'static Site) {
    crate::kernel::story::with_current(|story| {
        let Some(record) = table.records.get(site.location_str()) else {
            return;
        };
        let first = match record.kind {
            AssertKind::SometimesEach => record.buckets.values().sum::<u64>() == 1,
            AssertKind::SometimesAll => record.satisfied() && record.passes == 1,
            _ => record.satisfied() && record.passes == 1,
        };
        if first {
            story.note(crate::kernel::story::What::Coverage {
                kind: format!("{:?}", record.kind),
                message: record.message.clone(),
                location: site.location(),
            });
        }
    });
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn state() -> ChaosState {
        ChaosState::new_for_test()
    }

    #[test]
    fn test_a_catalog_site_is_found_by_its_position_and_an_outside_site_by_its_address() {
        let mut state = state();
        let sites: &'static [Site] = &moonpool_core::chaos::catalog::SITES;
        let inside: &'static Site = moonpool_core::__chaos_site!("inside the catalog", None);
        let position = catalog_index(state.catalog, inside).unwrap();
        assert!(std::ptr::eq(&sites[position], inside));
        // A `Site` built by hand is not in the catalog's array.
        static OUTSIDE: Site = Site {
            message: "outside the catalog",
            kind: None,
            file: "outside.rs",
            line: 1,
            column: 1,
            module: "outside",
            function: || "outside",
            location_literal: "outside.rs:1:1",
        };
        assert_eq!(catalog_index(state.catalog, &OUTSIDE), None);
        let (first_inside, first_outside) = (state.reach(inside), state.reach(&OUTSIDE));
        assert_ne!(first_inside, first_outside);
        // Reached again: the same counters, by position and by address.
        assert_eq!(state.reach(inside), first_inside);
        assert_eq!(state.reach(&OUTSIDE), first_outside);
        assert_eq!(state.counters.len(), 2);
    }
}
