//! [`SimulationBuilder::run`](super::SimulationBuilder::run), step by step: read the environment
//! and refuse setup mistakes before the first seed, resolve the [`SeedPlan`], then drive the
//! scheduler and assemble the report seed by seed.

use std::panic::Location;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::builder::SimulationBuilder;
use super::context::Topology;
use super::environment::{Environment, MAX_JOBS};
use super::explore::Exploration;
use super::iteration::Stopper;
use super::outputs::{Progress, write_chrome_trace};
use super::plan::SeedPlan;
use super::recipe::Recipe;
use super::replay::default_replay_template;
use super::report::{ExploredBug, SeedOutcome, SimulationReport, failure_text};
use super::report_coverage::CoverageCheck;
use super::report_failure::{FailureInfo, FailureKind};
use super::schedule::{SeedResult, run_seeds};
use super::shrink::{DEFAULT_SHRINK_BUDGET, ShrinkMode, ShrinkPolicy};
use super::spec::{Spec, build_topology};
use super::validate::Setup;
use crate::chaos::AssertionTable;
use crate::error::SimError;
use crate::kernel::fault::FaultSet;
use crate::world::RunSummary;

/// Runs the seeds of `builder` (called from `caller`, for the default replay command) and
/// returns the report; `Err` only for a setup mistake.
pub(super) fn run(
    builder: SimulationBuilder,
    caller: &Location<'_>,
) -> Result<SimulationReport, SimError> {
    let env = Environment::read()?;
    super::validate::simulation(&setup(&builder))?;
    super::report_coverage::check_scope(&builder.name, &builder.coverage)?;
    env.check_outputs(builder.trace_dir.as_deref())?;
    let replay = builder
        .replay
        .clone()
        .unwrap_or_else(|| default_replay_template(caller));
    let topology = build_topology(&builder.processes, &builder.workloads, builder.shape)?;
    // The recipe replayed: the environment's wins, and `MOONPOOL_SEED` replays a plain seed.
    let recipe = if env.seed.is_some() {
        None
    } else {
        env.recipe.clone().or_else(|| builder.recipe.clone())
    };
    let plan = SeedPlan::resolve(&builder, &env, recipe.as_ref())?;
    // A replay never explores: it is one timeline in one process.
    let exploring = explores(&builder) && recipe.is_none();
    let jobs = builder
        .jobs
        .or(env.jobs)
        .unwrap_or_else(|| if exploring { 1 } else { default_jobs() });
    if jobs > MAX_JOBS {
        return Err(SimError::setup(format!(
            "simulation '{}': jobs({jobs}) is more than the {MAX_JOBS} worker threads allowed",
            builder.name
        )));
    }
    let check_determinism = builder.check_determinism || env.check_determinism;
    let exploration = if exploring {
        super::explore::check_runnable(&builder.name, jobs, check_determinism)?;
        Some(Arc::new(new_exploration(&builder)?))
    } else {
        None
    };
    let trace_dir = env.trace_dir.clone().or_else(|| builder.trace_dir.clone());
    let faults = env
        .faults
        .map_or(builder.faults, |narrow| builder.faults.intersection(narrow));
    let shrink = ShrinkPolicy {
        mode: env.shrink.or(builder.shrink).unwrap_or_default(),
        budget: builder.shrink_budget.unwrap_or(DEFAULT_SHRINK_BUDGET),
    };
    let mut collector = Collector::new(&builder, &plan, trace_dir, exploration.clone());
    collector.trace_every_seed = env.seed.is_some();
    collector.trace_limits = super::trace::TraceLimits::with_max_mb(env.trace_max_mb);
    let spec = Arc::new(Spec {
        faults,
        shrink,
        ..into_spec(builder, topology, replay, recipe, exploration)
    });
    let exhausted = !run_seeds(
        &spec,
        jobs,
        check_determinism,
        &|k| plan.nth(k),
        &mut |index, seed, result| collector.consume(&spec, index, seed, result),
    );
    collector.shrink(&spec);
    let mut report = collector.finish(exhausted);
    if let Some(seed) = env.seed {
        // A stray MOONPOOL_SEED turns a sweep into one seed: the header says so.
        report.stop_reason = format!(
            "MOONPOOL_SEED={seed} is set: only that seed ran, not the simulation's own seeds; \
             unset it to run them"
        );
    }
    env.deliver_report(&report)?;
    Ok(report)
}

/// One seed of `builder`, with its event trace recorded (fault marks included), the builder's
/// fault kinds and no `MOONPOOL_*` variable: what `SimulationBuilder::run_traced_seed` returns.
pub(super) fn run_traced(
    builder: SimulationBuilder,
    caller: &Location<'_>,
    seed: u64,
) -> Result<(Option<RunSummary>, Option<SimError>), SimError> {
    super::validate::simulation(&setup(&builder))?;
    let replay = builder
        .replay
        .clone()
        .unwrap_or_else(|| default_replay_template(caller));
    let topology = build_topology(&builder.processes, &builder.workloads, builder.shape)?;
    let faults = builder.faults;
    let spec = Arc::new(Spec {
        faults,
        ..into_spec(builder, topology, replay, None, None)
    });
    Ok(super::seed::run_seed(&spec, seed, true))
}

/// What [`validate::simulation`](super::validate::simulation) checks.
fn setup(builder: &SimulationBuilder) -> Setup<'_> {
    Setup {
        name: &builder.name,
        processes: builder
            .processes
            .iter()
            .map(|g| (g.name.as_str(), g.count))
            .collect(),
        workloads: builder
            .workloads
            .iter()
            .map(|g| (g.name.as_str(), g.count))
            .collect(),
        config: &builder.config,
        chaos: builder.chaos.as_deref(),
        settle_timeout: builder.settle_timeout,
    }
}

/// Whether the builder asked to explore.
fn explores(builder: &SimulationBuilder) -> bool {
    #[cfg(feature = "explorer")]
    {
        builder.explore.is_some()
    }
    #[cfg(not(feature = "explorer"))]
    {
        let _ = builder;
        false
    }
}

/// The exploration the builder asked for.
fn new_exploration(builder: &SimulationBuilder) -> Result<Exploration, SimError> {
    #[cfg(feature = "explorer")]
    {
        let config = builder.explore.clone().unwrap_or_default();
        Exploration::new(&builder.name, config)
    }
    #[cfg(not(feature = "explorer"))]
    {
        Err(SimError::setup(format!(
            "simulation '{}': exploration needs the `explorer` feature",
            builder.name
        )))
    }
}

/// What every seed shares, taken from the builder.
fn into_spec(
    builder: SimulationBuilder,
    topology: Topology,
    replay: String,
    recipe: Option<Recipe>,
    explore: Option<Arc<Exploration>>,
) -> Spec {
    let stall_limit = crate::watchdog::stall_limit_once(builder.config.watchdog_stall);
    let process_names = super::spec::registered_names(&topology);
    Spec {
        processes: builder.processes,
        workloads: builder.workloads,
        invariants: builder.invariants,
        injectors: builder.injectors,
        config: builder.config,
        chaos: builder.chaos,
        chaos_duration: builder.chaos_duration,
        settle_timeout: builder.settle_timeout,
        topology: Arc::new(topology),
        replay,
        recipe,
        explore,
        faults: FaultSet::all(),
        shrink: ShrinkPolicy::default(),
        stall_limit,
        process_names,
    }
}

/// One worker thread per core.
fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// Builds the report from the seeds' results, in seed order, and decides when to stop.
struct Collector {
    report: SimulationReport,
    stopper: Stopper,
    progress: Progress,
    started: Instant,
    /// Where failed seeds' Chrome traces go, if anywhere.
    trace_dir: Option<PathBuf>,
    /// Trace passing seeds too (a seed replayed with `MOONPOOL_SEED`).
    trace_every_seed: bool,
    /// The size bound of each trace.
    trace_limits: super::trace::TraceLimits,
    /// Assertion messages some seed must evaluate.
    expected: Vec<String>,
    /// The exploration, when the run explores.
    exploration: Option<Arc<Exploration>>,
    /// The bugs it found so far.
    explored_bugs: Vec<ExploredBug>,
    /// The site catalog and the test's coverage scope.
    coverage: Arc<CoverageCheck>,
}

impl Collector {
    /// An empty report for `builder`'s simulation.
    fn new(
        builder: &SimulationBuilder,
        plan: &SeedPlan,
        trace_dir: Option<PathBuf>,
        exploration: Option<Arc<Exploration>>,
    ) -> Self {
        let mut report = SimulationReport::new(&builder.name);
        if plan.sharded {
            report.set_shard(plan.shard, plan.shards);
        }
        let coverage = Arc::new(CoverageCheck::new(builder.coverage.clone()));
        Self {
            report,
            stopper: plan.stopper().with_coverage(Arc::clone(&coverage)),
            coverage,
            started: Instant::now(),
            progress: Progress::new(builder.progress, plan.stopper().max_seeds()),
            trace_dir,
            trace_every_seed: false,
            trace_limits: super::trace::TraceLimits::default(),
            expected: builder.expected.clone(),
            exploration,
            explored_bugs: Vec::new(),
        }
    }

    /// Records one seed; returns `true` when the run should stop.
    fn consume(&mut self, spec: &Arc<Spec>, index: usize, seed: u64, result: &SeedResult) -> bool {
        let (summary, error, wall) = result;
        let wall = *wall;
        let replay = error
            .as_ref()
            .map(|_| super::shrink::replay_command(spec, seed, spec.faults));
        let failure_info = error.as_ref().map(|e| {
            let empty = std::collections::BTreeMap::new();
            FailureInfo::new(e, summary.as_ref().map_or(&empty, |s| &s.fault_kinds))
        });
        let outcome = SeedOutcome {
            index,
            seed,
            // A seed that failed before its world existed still gets a seed-dependent print.
            fingerprint: summary.as_ref().map_or_else(
                || crate::world::trace::TraceHash::for_seed(seed).value(),
                |s| s.fingerprint,
            ),
            sim_time: summary.as_ref().map_or(Duration::ZERO, |s| s.sim_time),
            events: summary.as_ref().map_or(0, |s| s.events),
            wall_time: wall,
            failure: error.as_ref().map(failure_text),
            replay,
            trace_file: match (&error, &self.trace_dir) {
                (Some(_), Some(dir)) => {
                    write_chrome_trace(spec, dir, &self.report.name, seed, self.trace_limits)
                }
                (None, Some(dir)) if self.trace_every_seed => {
                    write_chrome_trace(spec, dir, &self.report.name, seed, self.trace_limits)
                }
                _ => None,
            },
            failure_info,
        };
        let report = &mut self.report;
        if let Some(summary) = summary {
            report.assertions.merge(&summary.assertions);
            for (kind, count) in &summary.faults {
                *report.faults.entry((*kind).to_string()).or_insert(0) += count;
            }
        }
        if let Some(exploration) = &self.exploration {
            // What the seed's child timelines reached counts like what the root reached.
            let empty = AssertionTable::default();
            let root = summary.as_ref().map_or(&empty, |s| &s.assertions);
            let (children, bugs) = exploration.take_tree(spec, root);
            report.assertions.merge(&children);
            self.explored_bugs.extend(bugs);
        }
        report.seeds.push(outcome);
        self.progress.tick(report, self.started);
        let exploration_stop = self.exploration.as_ref().and_then(|e| e.stop_reason());
        match self
            .stopper
            .after_seed(&report.assertions, self.started.elapsed())
            .or(exploration_stop)
        {
            Some(reason) => {
                report.stop_reason = reason;
                true
            }
            None => false,
        }
    }

    /// Shrinks the failed seeds the policy asks for (not in an exploration or a recipe's
    /// replay), within its budget.
    fn shrink(&mut self, spec: &Arc<Spec>) {
        let policy = spec.shrink;
        if policy.mode == ShrinkMode::Off || spec.explore.is_some() || spec.recipe.is_some() {
            return;
        }
        // A budget too large for the clock (`Duration::MAX`) means no deadline.
        let deadline = Instant::now().checked_add(policy.budget);
        for outcome in &mut self.report.seeds {
            let Some(info) = outcome.failure_info.as_mut() else {
                continue;
            };
            if matches!(info.kind, FailureKind::Nondeterminism | FailureKind::Setup) {
                continue;
            }
            info.shrunk = Some(super::shrink::shrink_seed(
                spec,
                outcome.seed,
                info,
                deadline,
            ));
            let out_of_time = deadline.is_some_and(|d| Instant::now() >= d);
            if policy.mode == ShrinkMode::FirstFailure || out_of_time {
                break;
            }
        }
    }

    /// The finished report: why the run stopped, its wall time, the expected assertions that no
    /// seed evaluated.
    fn finish(mut self, exhausted: bool) -> SimulationReport {
        let report = &mut self.report;
        if exhausted {
            report.stop_reason = "seed list exhausted".to_string();
        }
        report.wall_time = self.started.elapsed();
        if let Some(exploration) = &self.exploration {
            let mut summary = exploration.summary();
            summary.bugs = std::mem::take(&mut self.explored_bugs);
            report.exploration = Some(summary);
        }
        report.coverage = self.coverage.report(&report.assertions);
        report.never_evaluated = std::mem::take(&mut self.expected)
            .into_iter()
            .filter(|m| !report.assertions.records.values().any(|r| &r.message == m))
            .collect();
        self.progress.finish();
        self.report
    }
}
