//! [`SimulationBuilder`]: declare processes, workloads, invariants and chaos; run many seeds.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::panic::Location;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use moonpool_core::{JoinError, Providers, TaskProvider, TimeProvider};

use super::chaos::{Attrition, Chaos, FaultInjector, FnInjector, attrition, random_partitions};
use super::context::{FaultContext, Member, Topology, WorkloadContext, swarm_bit};
use super::environment::Environment;
use super::iteration::{IterationControl, Stopper};
use super::report::{SeedOutcome, SimulationReport};
use crate::chaos::BuggifyConfig;
use crate::error::SimError;
use crate::network::NetworkConfiguration;
use crate::providers::SimProviders;
use crate::storage::StorageConfiguration;
use crate::time::ClockConfiguration;
use crate::world::StateHandle;
use crate::world::{
    Locality, ProcessContext, ProcessFactory, RunSummary, ShutdownSignal, SimWorld, TraceEntry,
    WorldConfig,
};

/// The error a workload's `run` or `check` may return.
pub type WorkloadError = Box<dyn std::error::Error + Send + Sync>;

type WorkloadFuture = Pin<Box<dyn Future<Output = Result<(), WorkloadError>> + Send + 'static>>;
type WorkloadFn = Arc<dyn Fn(WorkloadContext) -> WorkloadFuture + Send + Sync + 'static>;
type InvariantFn = Arc<dyn Fn(&StateHandle) -> Result<(), String> + Send + Sync + 'static>;

struct ProcessGroup {
    name: String,
    count: usize,
    factory: ProcessFactory,
}

struct WorkloadGroup {
    name: String,
    count: usize,
    run: WorkloadFn,
    check: Option<WorkloadFn>,
}

/// Everything a seed needs, shared read-only by the worker threads.
struct Spec {
    processes: Vec<ProcessGroup>,
    workloads: Vec<WorkloadGroup>,
    invariants: Vec<(String, InvariantFn)>,
    injectors: Vec<Arc<dyn FaultInjector>>,
    config: WorldConfig,
    chaos: Option<Vec<Chaos>>,
    chaos_duration: Duration,
    settle_timeout: Duration,
    topology: Arc<Topology>,
    /// The replay command template (`{seed}` stands for the seed).
    replay: String,
}

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
    name: String,
    processes: Vec<ProcessGroup>,
    workloads: Vec<WorkloadGroup>,
    invariants: Vec<(String, InvariantFn)>,
    injectors: Vec<Arc<dyn FaultInjector>>,
    config: WorldConfig,
    chaos: Option<Vec<Chaos>>,
    chaos_duration: Duration,
    settle_timeout: Duration,
    shape: (usize, usize, usize),
    iterations: IterationControl,
    seeds: Option<Vec<u64>>,
    base_seed: Option<u64>,
    jobs: Option<usize>,
    shard: Option<(usize, usize)>,
    check_determinism: bool,
    expected: Vec<String>,
    replay: Option<String>,
    trace_dir: Option<PathBuf>,
    ci_max_seeds: Option<usize>,
    min_seeds: usize,
    progress: bool,
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
    /// every seed.
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
    /// cores). The report is the same whatever the number.
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

    /// Shows progress on a terminal for runs longer than a few seconds (default on).
    pub fn progress(mut self, on: bool) -> Self {
        self.progress = on;
        self
    }

    /// Runs the seeds and returns the report; `Err` only for a setup mistake (bad IP, bad
    /// configuration, bad `MOONPOOL_*` environment variable).
    #[track_caller]
    pub fn run(self) -> Result<SimulationReport, SimError> {
        let caller = Location::caller();
        let env = Environment::read()?;
        super::validate::simulation(&self.setup())?;
        env.check_outputs(self.trace_dir.as_deref())?;
        let replay_template = self
            .replay
            .clone()
            .unwrap_or_else(|| default_replay_template(caller));
        let topology = Arc::new(self.build_topology()?);
        let base = self.base_seed.unwrap_or_else(|| name_seed(&self.name));
        let in_ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
        let max_seeds = match (env.max_seeds, self.ci_max_seeds.filter(|_| in_ci)) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        // Replaying one seed (`MOONPOOL_SEED`) is a seed list of one, unsharded.
        let (seed_list, shard_setting, control) = match env.seed {
            Some(seed) => (Some(vec![seed]), None, IterationControl::FixedCount(1)),
            None => (
                self.seeds.clone(),
                env.shard.or(self.shard),
                match max_seeds {
                    Some(cap) => cap_iterations(self.iterations.clone(), cap),
                    None => self.iterations.clone(),
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
        // A fixed count bounds the global seed sequence, which shards split; the other controls
        // apply to each shard's own part of the sequence.
        let (index_bound, stopper_control) = match control {
            IterationControl::FixedCount(n) => (
                n,
                IterationControl::FixedCount((0..n).filter(|i| i % shards == shard).count().max(1)),
            ),
            ref other => (
                Stopper::new(other.clone(), 1)
                    .max_seeds()
                    .unwrap_or(usize::MAX)
                    .saturating_mul(shards),
                other.clone(),
            ),
        };
        // A cap (CI, MOONPOOL_MAX_SEEDS) wins over a minimum.
        let min_seeds = self.min_seeds.min(max_seeds.unwrap_or(usize::MAX));
        let mut stopper = Stopper::new(stopper_control, min_seeds);
        let jobs = self.jobs.or(env.jobs).unwrap_or_else(default_jobs);
        if jobs > super::environment::MAX_JOBS {
            return Err(SimError::setup(format!(
                "simulation '{}': jobs({jobs}) is more than the {} worker threads allowed",
                self.name,
                super::environment::MAX_JOBS
            )));
        }
        let check_determinism = self.check_determinism || env.check_determinism;
        let name = self.name.clone();
        let expected = self.expected.clone();
        let show_progress = self.progress;
        let trace_dir = env.trace_dir.clone().or_else(|| self.trace_dir.clone());
        let spec = Arc::new(Spec {
            processes: self.processes,
            workloads: self.workloads,
            invariants: self.invariants,
            injectors: self.injectors,
            config: self.config,
            chaos: self.chaos,
            chaos_duration: self.chaos_duration,
            settle_timeout: self.settle_timeout,
            topology,
            replay: replay_template.clone(),
        });

        // The global seed sequence.
        let seed_at = |index: usize| -> Option<u64> {
            match &seed_list {
                Some(list) => list.get(index).copied(),
                None => Some(base.wrapping_add(index as u64)),
            }
        };
        let mut report = SimulationReport::new(&name);
        if shard_setting.is_some() {
            report.set_shard(shard, shards);
        }
        let started = Instant::now();
        let mut progress = Progress::new(show_progress);
        // The k-th seed of this shard of the sequence (a pure function, shared by the workers).
        let nth = |k: usize| -> Option<(usize, u64)> {
            let index = shard.checked_add(k.checked_mul(shards)?)?;
            if index >= index_bound {
                return None;
            }
            seed_at(index).map(|seed| (index, seed))
        };
        let mut consume = |index: usize, seed: u64, (summary, error, wall): SeedResult| -> bool {
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
                replay: error
                    .as_ref()
                    .map(|_| replay_template.replace("{seed}", &seed.to_string())),
                trace_file: match (&error, &trace_dir) {
                    (Some(_), Some(dir)) => write_chrome_trace(&spec, dir, &name, seed),
                    _ => None,
                },
            };
            if let Some(summary) = &summary {
                report.assertions.merge(&summary.assertions);
                for (kind, count) in &summary.faults {
                    *report.faults.entry((*kind).to_string()).or_insert(0) += count;
                }
            }
            report.seeds.push(outcome);
            progress.tick(&report, started);
            match stopper.after_seed(&report.assertions, started.elapsed()) {
                Some(reason) => {
                    report.stop_reason = reason;
                    true
                }
                None => false,
            }
        };
        if !run_seeds(&spec, jobs, check_determinism, &nth, &mut consume) {
            report.stop_reason = "seed list exhausted".to_string();
        }
        report.wall_time = started.elapsed();
        report.never_evaluated = expected
            .into_iter()
            .filter(|m| !report.assertions.records.values().any(|r| &r.message == m))
            .collect();
        progress.finish();
        env.deliver_report(&report)?;
        Ok(report)
    }

    /// What [`validate::simulation`](super::validate::simulation) checks.
    fn setup(&self) -> super::validate::Setup<'_> {
        super::validate::Setup {
            name: &self.name,
            processes: self
                .processes
                .iter()
                .map(|g| (g.name.as_str(), g.count))
                .collect(),
            workloads: self
                .workloads
                .iter()
                .map(|g| (g.name.as_str(), g.count))
                .collect(),
            config: &self.config,
            chaos: self.chaos.as_deref(),
            settle_timeout: self.settle_timeout,
        }
    }

    fn build_topology(&self) -> Result<Topology, SimError> {
        let mut topology = Topology::default();
        let (dcs, zones, machines) = self.shape;
        let mut process_index = 0usize;
        for group in &self.processes {
            for i in 0..group.count {
                let slot = process_index;
                process_index += 1;
                let machine_count = if machines == 0 {
                    usize::MAX
                } else {
                    dcs * zones * machines
                };
                let machine = slot % machine_count.max(1);
                let (dc, zone) = if machines == 0 {
                    (slot % dcs, (slot / dcs) % zones)
                } else {
                    (machine / (zones * machines), (machine / machines) % zones)
                };
                topology.processes.push(Member {
                    name: format!("{}-{i}", group.name),
                    group: group.name.clone(),
                    ip: ip_for(0, slot)?,
                    locality: Locality::new(
                        format!("dc{dc}"),
                        format!("dc{dc}-z{zone}"),
                        format!("dc{dc}-z{zone}-m{machine}"),
                    ),
                });
            }
        }
        let mut workload_index = 0usize;
        for group in &self.workloads {
            for i in 0..group.count {
                topology.workloads.push(Member {
                    name: format!("{}-{i}", group.name),
                    group: group.name.clone(),
                    ip: ip_for(1, workload_index)?,
                    locality: Locality::default(),
                });
                workload_index += 1;
            }
        }
        Ok(topology)
    }
}

fn boxed<F, Fut>(run: F) -> WorkloadFn
where
    F: Fn(WorkloadContext) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = Result<(), WorkloadError>> + Send + 'static,
{
    Arc::new(move |ctx| Box::pin(run(ctx)))
}

/// `10.<block>.x.y` for the `index`-th member of a block (0: servers, 1: workloads).
fn ip_for(block: u8, index: usize) -> Result<IpAddr, SimError> {
    let n = u32::try_from(index + 1).map_err(|_| SimError::setup("too many processes"))?;
    if n >= 1 << 16 {
        return Err(SimError::setup(format!(
            "{index} processes is more than one block of IPs holds"
        )));
    }
    #[allow(clippy::cast_possible_truncation)]
    Ok(IpAddr::V4(Ipv4Addr::new(
        10,
        block,
        (n >> 8) as u8,
        (n & 0xff) as u8,
    )))
}

fn name_seed(name: &str) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325u64;
    for byte in name.bytes() {
        hash = (hash ^ u64::from(byte)).wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash & 0xffff_ffff
}

fn default_jobs() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

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

/// A replay command derived from the call site of `run`.
fn default_replay_template(caller: &Location<'_>) -> String {
    let file = caller.file().replace('\\', "/");
    let parts: Vec<&str> = file.split('/').collect();
    let (package, rest) = match parts
        .iter()
        .position(|p| *p == "tests" || *p == "examples" || *p == "src")
    {
        Some(0) | None => (None, parts.as_slice()),
        Some(i) => (Some(parts[..i].join("/")), &parts[i..]),
    };
    let package_flag = package
        .as_deref()
        .and_then(|p| p.rsplit('/').next())
        .map(|p| format!(" -p {p}"))
        .unwrap_or_default();
    let stem = rest
        .last()
        .and_then(|f| f.strip_suffix(".rs"))
        .unwrap_or("");
    let thread = std::thread::current().name().map(str::to_string);
    match (rest.first().copied(), thread.as_deref()) {
        (Some("examples"), _) => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            let args = if args.is_empty() {
                String::new()
            } else {
                format!(" -- {}", args.join(" "))
            };
            format!(
                "MOONPOOL_SEED={{seed}} cargo run --release{package_flag} --example {stem}{args}"
            )
        }
        (Some("tests"), Some(test)) if test != "main" => {
            format!(
                "MOONPOOL_SEED={{seed}} cargo nextest run{package_flag} --test {stem} -E 'test(={test})'"
            )
        }
        (_, Some(test)) if test != "main" => {
            format!("MOONPOOL_SEED={{seed}} cargo nextest run{package_flag} -E 'test(={test})'")
        }
        _ => {
            let args: Vec<String> = std::env::args().collect();
            format!("MOONPOOL_SEED={{seed}} {}", args.join(" "))
        }
    }
}

type SeedResult = (Option<RunSummary>, Option<SimError>, Duration);

/// Runs the seeds `nth(0)`, `nth(1)`, ... on up to `jobs` threads and hands each result to
/// `consume` in order, until `consume` says stop (returns `true`) or `nth` runs out (returns
/// `false` then).
///
/// Workers pull the next seed as soon as they are free and may run at most a small window ahead
/// of the results consumed; results past a stop are discarded, so what `consume` sees does not
/// depend on the number of threads.
fn run_seeds(
    spec: &Arc<Spec>,
    jobs: usize,
    check_determinism: bool,
    nth: &(dyn Fn(usize) -> Option<(usize, u64)> + Sync),
    consume: &mut dyn FnMut(usize, u64, SeedResult) -> bool,
) -> bool {
    let run = |seed: u64| -> SeedResult {
        let started = Instant::now();
        let (summary, error) = if check_determinism {
            run_twice(spec, seed)
        } else {
            run_seed(spec, seed, false)
        };
        (summary, error, started.elapsed())
    };
    if jobs <= 1 {
        let mut k = 0;
        while let Some((index, seed)) = nth(k) {
            k += 1;
            if consume(index, seed, run(seed)) {
                return true;
            }
        }
        return false;
    }
    let window = jobs * 8;
    let next = AtomicUsize::new(0);
    let stop = std::sync::atomic::AtomicBool::new(false);
    let consumed = (Mutex::new(0usize), std::sync::Condvar::new());
    let (sender, receiver) = std::sync::mpsc::channel::<(usize, usize, u64, SeedResult)>();
    let mut stopped = false;
    let mut started_workers = 0;
    std::thread::scope(|scope| {
        for worker in 0..jobs {
            let sender = sender.clone();
            let (next, stop, consumed, run) = (&next, &stop, &consumed, &run);
            let spawned = std::thread::Builder::new()
                .name(format!("moonpool-seeds-{worker}"))
                .spawn_scoped(scope, move || {
                    loop {
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let k = next.fetch_add(1, Ordering::SeqCst);
                        {
                            let mut done =
                                consumed.0.lock().unwrap_or_else(PoisonError::into_inner);
                            while k >= *done + window && !stop.load(Ordering::SeqCst) {
                                done = consumed
                                    .1
                                    .wait(done)
                                    .unwrap_or_else(PoisonError::into_inner);
                            }
                        }
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        let Some((index, seed)) = nth(k) else { break };
                        let result = run(seed);
                        if sender.send((k, index, seed, result)).is_err() {
                            break;
                        }
                    }
                });
            if spawned.is_ok() {
                started_workers += 1;
            }
        }
        drop(sender);
        // Results arrive in any order; hand them on in seed order.
        let mut pending = std::collections::BTreeMap::new();
        let mut expected = 0usize;
        for (k, index, seed, result) in receiver.iter() {
            if stopped {
                continue;
            }
            pending.insert(k, (index, seed, result));
            while let Some((index, seed, result)) = pending.remove(&expected) {
                expected += 1;
                *consumed.0.lock().unwrap_or_else(PoisonError::into_inner) = expected;
                consumed.1.notify_all();
                if consume(index, seed, result) {
                    stopped = true;
                    stop.store(true, Ordering::SeqCst);
                    consumed.1.notify_all();
                    break;
                }
            }
        }
    });
    if started_workers == 0 {
        // No thread could be started: run serially rather than not at all.
        return run_seeds(spec, 1, check_determinism, nth, consume);
    }
    stopped
}

/// Runs a seed twice with event traces and compares them. The second run is made in a child
/// process forked before the first (see [`fork`](super::fork)), so state the user's closures
/// capture cannot leak from one run into the other; without a child, it runs here after the first.
fn run_twice(spec: &Arc<Spec>, seed: u64) -> (Option<RunSummary>, Option<SimError>) {
    let child = || {
        let (summary, error) = run_seed(spec, seed, true);
        super::fork::ChildRun {
            trace: summary.map(|s| s.trace).unwrap_or_default(),
            failure: error.as_ref().map(failure_text),
        }
    };
    let ((first, first_error), second) =
        super::fork::run_both(child, || run_seed(spec, seed, true));
    let second = second.unwrap_or_else(|why| {
        tracing::warn!(seed, %why, "determinism check: no forked child; second run in-process");
        child()
    });
    let mut first = first;
    let a = first
        .as_mut()
        .map(|s| std::mem::take(&mut s.trace))
        .unwrap_or_default();
    let b = second.trace.as_slice();
    let diverged = (0..a.len().max(b.len())).find(|i| a.get(*i) != b.get(*i));
    let first_failure = first_error.as_ref().map(failure_text);
    let index = match diverged {
        Some(index) => Some(index),
        // Same events, different verdicts: the difference is outside the trace.
        None if first_failure != second.failure => Some(b.len()),
        None => None,
    };
    if let Some(index) = index {
        let describe = |entry: Option<&TraceEntry>, failure: &Option<String>| {
            let event = match entry {
                Some(e) => format!(
                    "{} on object {:#x} at {:?} after task polls {:#x}",
                    e.kind_name(),
                    e.object,
                    Duration::from_nanos(e.at_nanos),
                    e.schedule_hash
                ),
                None => "the end of the run".to_string(),
            };
            match failure {
                Some(failure) => format!("{event} (that run failed: {failure})"),
                None => format!("{event} (that run passed)"),
            }
        };
        return (
            first,
            Some(SimError::Nondeterministic {
                seed,
                index,
                first: describe(a.get(index), &first_failure),
                second: describe(b.get(index), &second.failure),
            }),
        );
    }
    (first, first_error)
}

/// One seed: builds the world, runs the phases, returns the summary or the failure (with the
/// trace recorded so far).
fn run_seed(
    spec: &Arc<Spec>,
    seed: u64,
    record_trace: bool,
) -> (Option<RunSummary>, Option<SimError>) {
    // Whatever panics outside the tasks (a user callback the world does not guard, the runner's
    // own code) fails this seed, named, instead of unwinding through the worker thread.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_seed_unguarded(spec, seed, record_trace)
    }))
    .unwrap_or_else(|payload| {
        (
            None,
            Some(SimError::CallbackPanicked {
                seed,
                callback: "the simulation's setup or teardown".to_string(),
                now: Duration::ZERO,
                message: moonpool_core::task::panic_message(&*payload),
            }),
        )
    })
}

fn run_seed_unguarded(
    spec: &Arc<Spec>,
    seed: u64,
    record_trace: bool,
) -> (Option<RunSummary>, Option<SimError>) {
    let mut config = resolve_config(spec, seed);
    config.record_trace = record_trace;
    match build_world(spec, seed, config) {
        Ok((mut world, failure)) => {
            world.set_replay_command(spec.replay.replace("{seed}", &seed.to_string()));
            let result = world.run();
            let summary = world.summary();
            let error = result.err().or_else(|| {
                failure
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .take()
            });
            (Some(summary), error)
        }
        Err(error) => (None, Some(error)),
    }
}

/// Builds the world of one seed: processes, workload processes, invariants, the orchestrator.
#[allow(clippy::type_complexity)]
fn build_world(
    spec: &Arc<Spec>,
    seed: u64,
    config: WorldConfig,
) -> Result<(SimWorld, Arc<Mutex<Option<SimError>>>), SimError> {
    let mut world = SimWorld::with_config(seed, config)?;
    let setup = |e: SimError| e;
    for (member, group) in spec.topology.processes.iter().zip(
        spec.processes
            .iter()
            .flat_map(|g| std::iter::repeat_n(g, g.count)),
    ) {
        let factory = Arc::clone(&group.factory);
        world
            .add_process(
                &member.name,
                &member.ip.to_string(),
                member.locality.clone(),
                move |ctx| factory(ctx),
            )
            .map_err(setup)?;
    }
    let mut instances = Vec::new();
    let groups = spec
        .workloads
        .iter()
        .flat_map(|g| (0..g.count).map(move |i| (g, i)));
    for (member, (group, index)) in spec.topology.workloads.iter().zip(groups) {
        let id = world
            .add_workload_process(&member.name, &member.ip.to_string())
            .map_err(setup)?;
        instances.push((
            member.clone(),
            index,
            world.providers(id),
            Arc::clone(&group.run),
            group.check.clone(),
        ));
    }
    let state = world.state();
    if !spec.invariants.is_empty() {
        let invariants = spec.invariants.clone();
        let shared = state.clone();
        world.set_step_hook(Box::new(move || {
            for (name, check) in &invariants {
                // A panicking invariant fails the seed at this event, named, like a violated one.
                let verdict =
                    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&shared)))
                        .unwrap_or_else(|payload| {
                            Err(format!(
                                "the invariant panicked: {}",
                                moonpool_core::task::panic_message(&*payload)
                            ))
                        });
                verdict.map_err(|message| (name.clone(), message))?;
            }
            Ok(())
        }));
    }
    let failure: Arc<Mutex<Option<SimError>>> = Arc::default();
    let plan = Plan {
        spec: Arc::clone(spec),
        seed,
        instances,
        state,
        failure: Arc::clone(&failure),
    };
    world
        .add_workload("runner", "10.255.255.254", move |providers| {
            orchestrate(providers, plan)
        })
        .map_err(setup)?;
    Ok((world, failure))
}

/// The per-seed configuration: the builder's, with swarm choices applied.
fn resolve_config(spec: &Spec, seed: u64) -> WorldConfig {
    let mut config = spec.config.clone();
    let Some(surfaces) = &spec.chaos else {
        return config;
    };
    let on =
        |family: &str| surfaces.iter().any(|c| c.family() == family) && swarm_bit(seed, family);
    config.network = if on("network") {
        NetworkConfiguration {
            connect_timeout: config.network.connect_timeout,
            ..NetworkConfiguration::random_for_seed(seed)
        }
    } else {
        config.network.without_faults()
    };
    config.storage = if on("storage") {
        StorageConfiguration::random_for_seed(seed)
    } else {
        config.storage.without_faults()
    };
    if !on("clock") {
        config.clock = ClockConfiguration::disabled();
    }
    if !on("buggify") {
        config.buggify = BuggifyConfig::disabled();
    }
    config
}

type Instance = (Member, usize, SimProviders, WorkloadFn, Option<WorkloadFn>);

struct Plan {
    spec: Arc<Spec>,
    seed: u64,
    instances: Vec<Instance>,
    state: StateHandle,
    failure: Arc<Mutex<Option<SimError>>>,
}

/// The phases of one seed: chaos (workloads and injectors run), settle (faults off, workloads
/// finish), check.
async fn orchestrate(providers: SimProviders, plan: Plan) {
    let Plan {
        spec,
        seed,
        instances,
        state,
        failure,
    } = plan;
    let fail = |error: SimError| {
        let mut slot = failure.lock().unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(error);
        }
    };
    let chaos_over = ShutdownSignal::default();
    let remaining = Arc::new(AtomicUsize::new(instances.len()));
    let all_done = Arc::new(tokio::sync::Notify::new());
    let mut runs = Vec::new();
    let context = |member: &Member, index: usize, providers: &SimProviders| WorkloadContext {
        providers: providers.clone(),
        name: member.name.clone(),
        index,
        ip: member.ip,
        topology: Arc::clone(&spec.topology),
        state: state.clone(),
        chaos_over: chaos_over.clone(),
        seed,
    };
    for (member, index, workload_providers, run, _) in &instances {
        let body = run(context(member, *index, workload_providers));
        let (remaining, all_done) = (Arc::clone(&remaining), Arc::clone(&all_done));
        let handle =
            workload_providers
                .task()
                .spawn(&format!("{}::run", member.name), async move {
                    let result = body.await;
                    if remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
                        all_done.notify_one();
                    }
                    result
                });
        runs.push((member.name.clone(), handle));
    }
    // Fault injectors and swarm surfaces.
    let fault_ctx = FaultContext {
        providers: providers.clone(),
        topology: Arc::clone(&spec.topology),
        chaos_over: chaos_over.clone(),
    };
    let mut injectors = Vec::new();
    for injector in &spec.injectors {
        injectors.push(
            providers
                .task()
                .spawn(injector.name(), injector.inject(fault_ctx.clone())),
        );
    }
    if let Some(surfaces) = &spec.chaos {
        for surface in surfaces {
            if !swarm_bit(seed, surface.family()) {
                continue;
            }
            match surface {
                Chaos::Partitions => {
                    injectors.push(
                        providers
                            .task()
                            .spawn("random-partitions", random_partitions(fault_ctx.clone())),
                    );
                }
                Chaos::Attrition(config) => {
                    let config: Arc<Attrition> = Arc::new(config.clone());
                    injectors.push(
                        providers
                            .task()
                            .spawn("attrition", attrition(fault_ctx.clone(), config)),
                    );
                }
                _ => {}
            }
        }
    }
    // Chaos phase: until its duration passes or every workload's run has returned.
    if !instances.is_empty() {
        let sleep = providers.time().sleep(spec.chaos_duration);
        moonpool_core::select! {
            biased;
            () = all_done.notified() => {}
            () = sleep => {}
        }
    }
    providers.control().end_chaos();
    chaos_over.trigger();
    for injector in &injectors {
        injector.abort();
    }
    // Settle: every run must finish within the timeout.
    let deadline = providers.time().now().saturating_add(spec.settle_timeout);
    for (name, handle) in runs.iter_mut() {
        let left = deadline.saturating_sub(providers.time().now());
        match providers.time().timeout(left, handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => fail(SimError::WorkloadFailed {
                seed,
                workload: name.clone(),
                phase: "run".into(),
                message: error.to_string(),
            }),
            Ok(Err(join)) => fail(join_failure(seed, name, "run", &join)),
            Err(_) => {
                fail(SimError::SettleTimeout {
                    seed,
                    timeout: spec.settle_timeout,
                    running: stuck_tasks(&providers),
                });
                return;
            }
        }
    }
    if failure
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .is_some()
    {
        return;
    }
    // Check: verify the final state, one workload at a time.
    for (member, index, workload_providers, _, check) in &instances {
        let Some(check) = check else { continue };
        let body = check(context(member, *index, workload_providers));
        let handle = workload_providers
            .task()
            .spawn(&format!("{}::check", member.name), body);
        match providers.time().timeout(spec.settle_timeout, handle).await {
            Ok(Ok(Ok(()))) => {}
            Ok(Ok(Err(error))) => {
                fail(SimError::WorkloadFailed {
                    seed,
                    workload: member.name.clone(),
                    phase: "check".into(),
                    message: error.to_string(),
                });
                return;
            }
            Ok(Err(join)) => {
                fail(join_failure(seed, &member.name, "check", &join));
                return;
            }
            Err(_) => {
                fail(SimError::SettleTimeout {
                    seed,
                    timeout: spec.settle_timeout,
                    running: stuck_tasks(&providers),
                });
                return;
            }
        }
    }
}

/// Every live task but the runner's own, with what each waits on.
fn stuck_tasks(providers: &SimProviders) -> Vec<String> {
    crate::world::describe_waiting(
        providers.task().spawner(),
        &providers.control().process_names(),
        Some(providers.process()),
    )
}

/// Re-runs a failed seed with its event trace recorded and writes it as a Chrome trace; returns
/// the file's path (or `None` if it could not be written, which is logged).
fn write_chrome_trace(
    spec: &Arc<Spec>,
    dir: &std::path::Path,
    name: &str,
    seed: u64,
) -> Option<String> {
    let mut config = resolve_config(spec, seed);
    config.record_trace = true;
    let (mut world, _) = build_world(spec, seed, config).ok()?;
    let _ = world.run();
    let json = super::trace::chrome_trace(&world.trace(), &world.process_names());
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let path = dir.join(format!("{safe}-seed-{seed}.trace.json"));
    let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, json));
    match written {
        Ok(()) => Some(path.display().to_string()),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "could not write the Chrome trace");
            None
        }
    }
}

/// The error without its trailing replay hint (the report prints its own replay command).
fn failure_text(error: &SimError) -> String {
    let text = error.to_string();
    match text.split_once("\n  replay:") {
        Some((head, _)) => head.to_string(),
        None => text,
    }
}

fn join_failure(seed: u64, workload: &str, phase: &str, error: &JoinError) -> SimError {
    SimError::WorkloadFailed {
        seed,
        workload: workload.to_string(),
        phase: phase.to_string(),
        message: error.to_string(),
    }
}

/// Progress on a terminal for long runs.
struct Progress {
    enabled: bool,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    fn new(enabled: bool) -> Self {
        use std::io::IsTerminal;
        Self {
            enabled: enabled && std::io::stderr().is_terminal(),
            last: None,
            shown: false,
        }
    }

    fn tick(&mut self, report: &SimulationReport, started: Instant) {
        if !self.enabled || started.elapsed() < Duration::from_secs(3) {
            return;
        }
        if self
            .last
            .is_some_and(|last| last.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last = Some(Instant::now());
        self.shown = true;
        eprint!(
            "\r[{}] {} seeds, {} passed, {} failed, {} coverage assertions reached, {:.0} s  ",
            report.name,
            report.seeds_run(),
            report.passed(),
            report.failed(),
            report.assertions.satisfied_count(),
            started.elapsed().as_secs_f64()
        );
    }

    fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}
