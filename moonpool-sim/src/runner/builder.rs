//! [`SimulationBuilder`]: declare processes, workloads, invariants and chaos; run many seeds.
//!
//! This file holds the declaration only (the type and its setters); [`run`](SimulationBuilder::run)
//! hands the declaration to [`run`](super::run) for the seeds.

use std::future::Future;
use std::panic::Location;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use super::chaos::{Chaos, FaultInjector, FnInjector};
use super::context::{FaultContext, WorkloadContext};
use super::iteration::IterationControl;
use super::recipe::Recipe;
use super::report::SimulationReport;
use super::shrink::ShrinkMode;
use super::spec::{InvariantFn, ProcessGroup, WorkloadError, WorkloadFn, WorkloadGroup};
use crate::chaos::BuggifyConfig;
use crate::error::SimError;
use crate::kernel::fault::FaultSet;
use crate::network::NetworkConfiguration;
use crate::storage::StorageConfiguration;
use crate::time::ClockConfiguration;
use crate::world::StateHandle;
use crate::world::{ProcessContext, WorldConfig};

/// Declares a simulation and runs it over many seeds.
///
/// ```
/// use std::time::Duration;
/// use moonpool_core::{assert_sometimes, Providers, TimeProvider, RandomProvider};
/// use moonpool_sim::{IterationControl, SimulationBuilder};
///
/// let report = SimulationBuilder::new("doc-example")
///     .process("server", 2, |ctx| async move {
///         ctx.providers.time().sleep(Duration::from_secs(3600)).await;
///     })
///     .workload("client", 1, |ctx| async move {
///         let coin = ctx.providers.random().random_bool(0.5);
///         assert_sometimes!(coin, "heads");
///         ctx.providers.time().sleep(Duration::from_millis(10)).await;
///         Ok(())
///     })
///     .iterations(IterationControl::UntilAllSometimesReached(100))
///     .jobs(1)
///     .run()
///     .unwrap();
/// report.assert_success();
/// assert!(report.seeds_run() >= 1);
/// ```
pub struct SimulationBuilder {
    pub(super) name: String,
    pub(super) processes: Vec<ProcessGroup>,
    pub(super) workloads: Vec<WorkloadGroup>,
    pub(super) invariants: Vec<(String, InvariantFn)>,
    pub(super) injectors: Vec<Arc<dyn FaultInjector>>,
    pub(super) config: WorldConfig,
    pub(super) chaos: Option<Vec<Chaos>>,
    pub(super) chaos_duration: Duration,
    pub(super) settle_timeout: Duration,
    pub(super) shape: (usize, usize, usize),
    pub(super) iterations: IterationControl,
    pub(super) seeds: Option<Vec<u64>>,
    pub(super) base_seed: Option<u64>,
    pub(super) jobs: Option<usize>,
    pub(super) shard: Option<(usize, usize)>,
    pub(super) check_determinism: bool,
    pub(super) expected: Vec<String>,
    pub(super) replay: Option<String>,
    pub(super) trace_dir: Option<PathBuf>,
    pub(super) ci_max_seeds: Option<usize>,
    pub(super) min_seeds: usize,
    pub(super) progress: bool,
    pub(super) recipe: Option<Recipe>,
    pub(super) faults: FaultSet,
    pub(super) shrink: Option<ShrinkMode>,
    pub(super) shrink_budget: Option<Duration>,
    /// The sites this test owns (see `report_coverage`).
    pub(super) coverage: moonpool_core::chaos::catalog::SiteScope,
    #[cfg(feature = "explorer")]
    pub(super) explore: Option<super::explore::ExplorationConfig>,
}

impl SimulationBuilder {
    /// A simulation named `name` (used in reports and to derive its seeds).
    pub fn new(name: &str) -> Self {
        Self {
            name: name.to_string(),
            processes: Vec::new(),
            workloads: Vec::new(),
            invariants: Vec::new(),
            injectors: Vec::new(),
            config: WorldConfig::default(),
            chaos: None,
            chaos_duration: Duration::from_secs(30),
            settle_timeout: Duration::from_secs(60),
            shape: (1, 1, 0),
            iterations: IterationControl::default(),
            seeds: None,
            base_seed: None,
            jobs: None,
            shard: None,
            check_determinism: false,
            expected: Vec::new(),
            replay: None,
            trace_dir: None,
            ci_max_seeds: None,
            min_seeds: 1,
            progress: true,
            recipe: None,
            faults: FaultSet::all(),
            shrink: None,
            shrink_budget: None,
            coverage: Default::default(),
            #[cfg(feature = "explorer")]
            explore: None,
        }
    }

    /// `count` server processes named `group-0`, `group-1`, ..., each built by `factory` at every
    /// boot (so their memory is lost when they reboot).
    pub fn process<F, Fut>(mut self, group: &str, count: usize, factory: F) -> Self
    where
        F: Fn(ProcessContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.processes.push(ProcessGroup {
            name: group.to_string(),
            count,
            factory: Arc::new(move |ctx| Box::pin(factory(ctx))),
        });
        self
    }

    /// `count` workload instances (test drivers) named `group-0`, ...; their `run` starts with the
    /// chaos phase and must finish before the settle timeout.
    pub fn workload<F, Fut>(self, group: &str, count: usize, run: F) -> Self
    where
        F: Fn(WorkloadContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), WorkloadError>> + Send + 'static,
    {
        self.add_workload(group, count, boxed(run), None)
    }

    /// Like [`workload`](Self::workload), with a `check` run after the settle phase, when faults
    /// have stopped and every `run` has finished: verify the final state there.
    pub fn workload_with_check<F, Fut, C, CFut>(
        self,
        group: &str,
        count: usize,
        run: F,
        check: C,
    ) -> Self
    where
        F: Fn(WorkloadContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<(), WorkloadError>> + Send + 'static,
        C: Fn(WorkloadContext) -> CFut + Send + Sync + 'static,
        CFut: Future<Output = Result<(), WorkloadError>> + Send + 'static,
    {
        self.add_workload(group, count, boxed(run), Some(boxed(check)))
    }

    fn add_workload(
        mut self,
        group: &str,
        count: usize,
        run: WorkloadFn,
        check: Option<WorkloadFn>,
    ) -> Self {
        self.workloads.push(WorkloadGroup {
            name: group.to_string(),
            count,
            run,
            check,
        });
        self
    }

    /// An invariant over the shared state, checked after every event; an error fails the seed at
    /// that event.
    pub fn invariant<F>(mut self, name: &str, check: F) -> Self
    where
        F: Fn(&StateHandle) -> Result<(), String> + Send + Sync + 'static,
    {
        self.invariants.push((name.to_string(), Arc::new(check)));
        self
    }

    /// A fault injector run during the chaos phase and stopped when it ends.
    pub fn fault_injector<F, Fut>(mut self, name: &str, body: F) -> Self
    where
        F: Fn(FaultContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.injectors.push(Arc::new(FnInjector {
            name: name.to_string(),
            body,
        }));
        self
    }

    /// A fault injector (for example [`ScriptedFaults`](super::ScriptedFaults)).
    pub fn fault(mut self, injector: impl FaultInjector) -> Self {
        self.injectors.push(Arc::new(injector));
        self
    }

    /// The network configuration (default: FDB-like chaos).
    pub fn network(mut self, config: NetworkConfiguration) -> Self {
        self.config.network = config;
        self
    }

    /// The storage configuration (default: chaos).
    pub fn storage(mut self, config: StorageConfiguration) -> Self {
        self.config.storage = config;
        self
    }

    /// The clock configuration (default: drift and buggified sleeps).
    pub fn clock(mut self, config: ClockConfiguration) -> Self {
        self.config.clock = config;
        self
    }

    /// The buggify configuration (default: on).
    pub fn buggify(mut self, config: BuggifyConfig) -> Self {
        self.config.buggify = config;
        self
    }

    /// The whole world configuration at once.
    pub fn world_config(mut self, config: WorldConfig) -> Self {
        self.config = config;
        self
    }

    /// Swarm testing: each listed fault family is on in about half the seeds and fully off in the
    /// others; families not listed are off. Without this call every configured fault is on in
    /// every seed. A family on for a seed perturbs your configuration of it (see
    /// [`Chaos::Network`]); it never replaces it. [`Chaos::all`] lists every family.
    pub fn enable_chaos(mut self, surfaces: impl IntoIterator<Item = Chaos>) -> Self {
        self.chaos = Some(surfaces.into_iter().collect());
        self
    }

    /// Length of the chaos phase in simulated time (default 30 s); it also ends when every
    /// workload's `run` has returned.
    pub fn chaos_duration(mut self, duration: Duration) -> Self {
        self.chaos_duration = duration;
        self
    }

    /// How long workloads may take to finish once faults stop (default 60 s), and how long each
    /// `check` may take.
    pub fn settle_timeout(mut self, timeout: Duration) -> Self {
        self.settle_timeout = timeout;
        self
    }

    /// Simulated-time budget of one seed (default 1 h).
    pub fn time_budget(mut self, budget: Duration) -> Self {
        self.config.time_budget = budget;
        self
    }

    /// Failure domains: processes are spread round-robin over `datacenters` x `zones_per_dc` x
    /// `machines_per_zone` machines (0 machines: one machine per process).
    pub fn topology(
        mut self,
        datacenters: usize,
        zones_per_dc: usize,
        machines_per_zone: usize,
    ) -> Self {
        self.shape = (datacenters.max(1), zones_per_dc.max(1), machines_per_zone);
        self
    }

    /// When to stop (default `UntilCoverageStable { plateau_seeds: 20, max_seeds: 1000 }`).
    pub fn iterations(mut self, control: IterationControl) -> Self {
        self.iterations = control;
        self
    }

    /// Runs exactly these seeds (bounded by the iteration control).
    pub fn seeds(mut self, seeds: impl IntoIterator<Item = u64>) -> Self {
        self.seeds = Some(seeds.into_iter().collect());
        self
    }

    /// The first seed of the sequence (default: derived from the name). Seed `i` is `base + i`.
    pub fn base_seed(mut self, base: u64) -> Self {
        self.base_seed = Some(base);
        self
    }

    /// Worker threads running seeds in parallel (default `MOONPOOL_JOBS`, else the number of
    /// cores; 1 when exploring, which refuses more). The report is the same whatever the number.
    pub fn jobs(mut self, jobs: usize) -> Self {
        self.jobs = Some(jobs.max(1));
        self
    }

    /// Runs only shard `index` of `count` of the seed sequence (seed indexes `i` with
    /// `i % count == index`), as `MOONPOOL_SHARD=index/count` does. Merge the shards' JSON reports
    /// with [`SimulationReport::merge`] or the `moonpool-report` command.
    pub fn shard(mut self, index: usize, count: usize) -> Self {
        self.shard = Some((index, count));
        self
    }

    /// Runs every seed twice and fails a seed whose two runs diverge, naming the first diverging
    /// event (also turned on by `MOONPOOL_CHECK_DETERMINISM=1`).
    pub fn check_determinism(mut self, on: bool) -> Self {
        self.check_determinism = on;
        self
    }

    /// Assertion messages that must be evaluated in at least one seed; the report lists those that
    /// never were (an assertion on a path never taken is otherwise invisible).
    pub fn expect_assertions<'a>(mut self, messages: impl IntoIterator<Item = &'a str>) -> Self {
        self.expected
            .extend(messages.into_iter().map(str::to_string));
        self
    }

    /// The replay command printed for failed seeds; `{seed}` is replaced by the seed. The default
    /// is derived from where `run` was called (a nextest command in tests, cargo run for
    /// examples).
    pub fn replay_command(mut self, template: &str) -> Self {
        self.replay = Some(template.to_string());
        self
    }

    /// Writes a Chrome trace-event file (one track per process, messages as flows; open it in
    /// Perfetto) for every failed seed into `dir`, as `MOONPOOL_TRACE_DIR` does.
    pub fn chrome_trace_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.trace_dir = Some(dir.into());
        self
    }

    /// Runs at least `min` seeds before an adaptive iteration control (`UntilAllSometimesReached`,
    /// `UntilCoverageStable`) may stop, so that a suite whose rare paths all fire in its first seed
    /// still explores more than one run. A cap (`ci_max_seeds`, `MOONPOOL_MAX_SEEDS`) wins.
    pub fn min_seeds(mut self, min: usize) -> Self {
        self.min_seeds = min.max(1);
        self
    }

    /// When the `CI` environment variable is set (to anything but `false` or `0`), runs at most
    /// `max` seeds: long chaos suites run fully on a developer's machine and at a bounded cost in
    /// CI. `MOONPOOL_MAX_SEEDS` still applies on top.
    pub fn ci_max_seeds(mut self, max: usize) -> Self {
        self.ci_max_seeds = Some(max.max(1));
        self
    }

    /// Shows progress on a terminal for runs longer than a few seconds (default on): seeds done
    /// out of the planned total, failures, coverage and an estimate of the time left. Only when
    /// stderr is a terminal: under `cargo nextest` run with `--no-capture` to see it, under
    /// `cargo test` with `-- --nocapture`.
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Explores: each root seed's run forks child timelines at its discoveries (the first
    /// success of an `assert_sometimes!` or `assert_reachable!`, a better bucket of a numeric
    /// `sometimes`, a new frontier of `assert_sometimes_all!`, a new bucket of
    /// `assert_sometimes_each!`), each continuing with its world's random streams reseeded,
    /// within `config`'s energy budget. The report's `exploration` lists the bugs found with
    /// their recipes and replay commands. Linux and macOS; runs with `jobs(1)` (the default
    /// when exploring; a larger value is refused) and parallelises with child processes
    /// (`config.parallelism`). A replay (`MOONPOOL_RECIPE`, [`replay_recipe`](Self::replay_recipe))
    /// does not explore.
    ///
    /// ```no_run
    /// use moonpool_sim::{ExplorationConfig, SimulationBuilder};
    /// # let builder = SimulationBuilder::new("maze");
    /// let report = builder
    ///     .explore(ExplorationConfig::default().with_global_energy(5_000))
    ///     .run()
    ///     .unwrap();
    /// for bug in report.explored_bugs() {
    ///     println!("{}\n  replay: {}", bug.failure, bug.replay);
    /// }
    /// ```
    #[cfg(feature = "explorer")]
    pub fn explore(mut self, config: super::explore::ExplorationConfig) -> Self {
        self.explore = Some(config);
        self
    }

    /// Replays one timeline of an exploration, in this process, without forking: the recipe's
    /// root seed, reseeded at its split points (as `MOONPOOL_RECIPE` does; the variable wins).
    pub fn replay_recipe(mut self, recipe: Recipe) -> Self {
        self.recipe = Some(recipe);
        self
    }

    /// The fault kinds seeds may inject (default: every kind). Kinds left out are off in every
    /// seed, whatever the configuration and the swarm choose: their probabilities are zero,
    /// `attrition` and `partitions` inject nothing. Use a preset to say what the program
    /// claims to survive ([`FaultSet::crash_consistent`], [`FaultSet::checksummed_wire`],
    /// [`FaultSet::everything`], combined with [`FaultSet::union`]). `MOONPOOL_FAULTS` narrows
    /// it further (the replay of a shrunk seed sets it).
    pub fn faults(mut self, kinds: FaultSet) -> Self {
        self.faults = kinds;
        self
    }

    /// Which failing seeds are shrunk (default [`ShrinkMode::FirstFailure`]; `MOONPOOL_SHRINK`
    /// wins): re-run with fault kinds turned off one at a time to find the fault kinds the
    /// failure needs. See [`ShrinkMode`].
    pub fn shrink(mut self, mode: ShrinkMode) -> Self {
        self.shrink = Some(mode);
        self
    }

    /// Wall-clock time shrinking may take in a run, over all seeds shrunk (default 60 s). A
    /// shrink cut short reports what it found so far, marked incomplete.
    pub fn shrink_budget(mut self, budget: Duration) -> Self {
        self.shrink_budget = Some(budget);
        self
    }

    /// Runs one seed, with its event trace recorded, and returns its summary (`None` if its
    /// world could not be built) and its failure. Fault marks in the trace
    /// (`TraceEntry::kind == TRACE_FAULT`) say where each fault fired. Uses the builder's fault
    /// kinds ([`faults`](Self::faults)) and ignores the `MOONPOOL_*` variables; for comparing
    /// runs of one seed with different fault kinds.
    #[track_caller]
    pub fn run_traced_seed(
        self,
        seed: u64,
    ) -> Result<(Option<crate::world::RunSummary>, Option<SimError>), SimError> {
        super::run::run_traced(self, Location::caller(), seed)
    }

    /// Runs the seeds and returns the report; `Err` only for a setup mistake (bad IP, bad
    /// configuration, bad `MOONPOOL_*` environment variable).
    #[track_caller]
    pub fn run(self) -> Result<SimulationReport, SimError> {
        super::run::run(self, Location::caller())
    }
}

fn boxed<F, Fut>(run: F) -> WorkloadFn
where
    F: Fn(WorkloadContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), WorkloadError>> + Send + 'static,
{
    Arc::new(move |ctx| Box::pin(run(ctx)))
}
