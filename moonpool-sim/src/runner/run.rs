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
use super::schedule::{SeedResult, run_seeds};
use super::spec::{Spec, build_topology};
use super::validate::Setup;
use crate::chaos::AssertionTable;
use crate::error::SimError;

/// Runs the seeds of `builder` (called from `caller`, for the default replay command) and
/// returns the report; `Err` only for a setup mistake.
pub(super) fn run(
    builder: SimulationBuilder,
    caller: &Location<'_>,
) -> Result<SimulationReport, SimError> {
    let env = Environment::read()?;
    super::validate::simulation(&setup(&builder))?;
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
    let mut collector = Collector::new(&builder, &plan, trace_dir, exploration.clone());
    collector.trace_every_seed = env.seed.is_some();
    collector.trace_limits = super::trace::TraceLimits::with_max_mb(env.trace_max_mb);
    let spec = Arc::new(into_spec(builder, topology, replay, recipe, exploration));
    let exhausted = !run_seeds(
        &spec,
        jobs,
        check_determinism,
        &|k| plan.nth(k),
        &mut |index, seed, result| collector.consume(&spec, index, seed, result),
    );
    let report = collector.finish(exhausted);
    env.deliver_report(&report)?;
    Ok(report)
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
        Self {
            report,
            stopper: plan.stopper(),
            started: Instant::now(),
            progress: Progress::new(builder.progress),
            trace_dir,
            trace_every_seed: false,
            trace_limits: super::trace::TraceLimits::default(),
            expected: builder.expected.clone(),
            exploration,
            explored_bugs: Vec::new(),
        }
    }

    /// Records one seed; returns `true` when the run should stop.
    fn consume(&mut self, spec: &Arc<Spec>, index: usize, seed: u64, result: SeedResult) -> bool {
        let (summary, error, wall) = result;
        let replay = error
            .as_ref()
            .map(|_| spec.replay.replace("{seed}", &seed.to_string()));
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
        };
        let report = &mut self.report;
        if let Some(summary) = &summary {
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
        report.never_evaluated = std::mem::take(&mut self.expected)
            .into_iter()
            .filter(|m| !report.assertions.records.values().any(|r| &r.message == m))
            .collect();
        self.progress.finish();
        self.report
    }
}
