//! [`SimWorld`]: one deterministic simulated cluster.
//!
//! The world owns a logical clock, an event queue ordered by (time, sequence number), a seeded
//! generator ([`rng`]), the processes, the simulated network and disks, and the executor that runs
//! every task. [`SimWorld::run`] loops:
//!
//! 1. run ready tasks until none is ready (the executor picks each next task at random, seeded);
//! 2. stop if every workload has finished;
//! 3. pop the earliest event, advance the clock to it, apply it (which wakes the tasks waiting on
//!    it), fold it into the run fingerprint; repeat.
//!
//! Idle time is skipped, so hours of simulated time take milliseconds. A run never hangs: a
//! deadlock, a busy loop and an exhausted simulated-time budget each end it with a [`SimError`]
//! naming the seed and the stuck tasks.

pub use crate::kernel::{rng, trace};

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use moonpool_core::select::install_offset_source;
use rand_core::Rng;

pub use crate::handle::WorldControl;
pub use crate::kernel::clock::sim_now;
pub use crate::kernel::process::{Locality, ProcessRole, RebootKind, ShutdownSignal};
pub use crate::kernel::state::StateHandle;
pub use crate::kernel::trace::{TRACE_SEND, TraceEntry};

use crate::chaos::{AssertionTable, BuggifyConfig, ChaosState, SimChaos};
use crate::error::SimError;
use crate::executor::{Executor, ExecutorError, ProcessId, TaskInfo};
use crate::handle::{WorldHandle, WorldState};
use crate::kernel::Core;
use crate::kernel::clock::{ClockConfiguration, SharedClock, install_current_clock};
use crate::kernel::event::Event;
use crate::kernel::process::{ProcessEvent, ProcessState};
use crate::kernel::queue::EventQueue;
use crate::kernel::rng::WorldRng;
use crate::kernel::timers::Timers;
use crate::kernel::trace::TraceHash;
use crate::network::{self, NetworkConfiguration, NetworkState};
use crate::providers::SimProviders;
use crate::storage::{self, StorageConfiguration, StorageState};

/// Everything that configures one world.
#[derive(Debug, Clone)]
pub struct WorldConfig {
    /// Network latencies and faults.
    pub network: NetworkConfiguration,
    /// Disk latencies and faults.
    pub storage: StorageConfiguration,
    /// Clock drift and buggified sleep delays.
    pub clock: ClockConfiguration,
    /// The run fails if simulated time passes this while workloads are unfinished.
    pub time_budget: Duration,
    /// The run fails with [`SimError::BusyLoop`] if tasks are polled more than this many times
    /// without the simulated clock advancing.
    pub poll_bound: u64,
    /// Grace period between a graceful shutdown signal and the stop.
    pub graceful_shutdown_grace: Duration,
    /// How `buggify!` behaves.
    pub buggify: BuggifyConfig,
    /// Keep a per-event trace in the run summary (for determinism checks and Chrome traces).
    pub record_trace: bool,
    /// Most tasks alive at once; a spawn past it fails the run with
    /// [`SimError::TaskLimitExceeded`].
    pub max_tasks: usize,
    /// Wall-clock time a single poll may run before the watchdog ends the process, reporting the
    /// seed and the task (`None`: not watched). `MOONPOOL_WATCHDOG_SECS` overrides it.
    pub watchdog_stall: Option<Duration>,
}

impl Default for WorldConfig {
    fn default() -> Self {
        Self {
            network: NetworkConfiguration::default(),
            storage: StorageConfiguration::default(),
            clock: ClockConfiguration::default(),
            time_budget: Duration::from_secs(3600),
            poll_bound: 1_000_000,
            graceful_shutdown_grace: Duration::from_secs(2),
            buggify: BuggifyConfig::default(),
            record_trace: false,
            max_tasks: crate::executor::DEFAULT_TASK_LIMIT,
            watchdog_stall: Some(Duration::from_secs(60)),
        }
    }
}

impl WorldConfig {
    /// No faults anywhere: fixed small latencies, no drift, no buggify. For conformance and
    /// benchmarks.
    pub fn quiet() -> Self {
        Self {
            network: NetworkConfiguration::fast_local(),
            storage: StorageConfiguration::fast_local(),
            clock: ClockConfiguration::disabled(),
            buggify: BuggifyConfig::disabled(),
            ..Self::default()
        }
    }
}

/// Called after every event; an `Err((name, message))` fails the run at that event.
pub type StepHook = Box<dyn FnMut() -> Result<(), (String, String)> + Send>;

/// A boxed process body.
pub type ProcessFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Builds a process's body at every boot.
pub type ProcessFactory = Arc<dyn Fn(ProcessContext) -> ProcessFuture + Send + Sync + 'static>;

/// What a process body receives at boot.
#[derive(Clone)]
pub struct ProcessContext {
    /// The process's providers (its IP, its disk, its drifting clock).
    pub providers: SimProviders,
    /// The process's name.
    pub name: String,
    /// The process's IP.
    pub ip: IpAddr,
    /// How many times this process has booted, starting at 1.
    pub boot: u64,
    /// Fires when a graceful shutdown is requested.
    pub shutdown: ShutdownSignal,
    /// The world's shared state (the test's memory: it survives reboots).
    pub state: StateHandle,
}

/// Figures of a finished run.
#[derive(Debug, Clone, PartialEq)]
pub struct RunSummary {
    /// The seed.
    pub seed: u64,
    /// Hash of every processed event and scheduling decision: same seed, same fingerprint.
    pub fingerprint: u64,
    /// Simulated time at the end.
    pub sim_time: Duration,
    /// Events processed.
    pub events: u64,
    /// Task polls.
    pub polls: u64,
    /// Faults that fired, by kind.
    pub faults: BTreeMap<&'static str, u64>,
    /// What every assertion site observed in this run.
    pub assertions: AssertionTable,
    /// Every processed event, when [`WorldConfig::record_trace`] is on (empty otherwise).
    pub trace: Vec<TraceEntry>,
}

/// One simulated world: processes, workloads, network, disks, clocks, driven by one seed.
///
/// ```
/// use std::time::Duration;
/// use moonpool_core::{Providers, TimeProvider};
/// use moonpool_sim::{SimWorld, WorldConfig};
///
/// let mut world = SimWorld::with_config(7, WorldConfig::quiet()).unwrap();
/// world.add_workload("sleeper", "10.0.0.1", |providers| async move {
///     providers.time().sleep(Duration::from_secs(3600)).await;
/// }).unwrap();
/// let summary = world.run().unwrap();
/// assert_eq!(summary.sim_time, Duration::from_secs(3600));
/// ```
pub struct SimWorld {
    handle: WorldHandle,
    executor: Executor,
    seed: u64,
    time_budget: Duration,
    factories: Vec<Option<ProcessFactory>>,
    workloads_left: Arc<AtomicUsize>,
    select_rng: Arc<Mutex<rand_chacha::ChaCha8Rng>>,
    app_rng: Arc<Mutex<rand_chacha::ChaCha8Rng>>,
    polls: u64,
    /// Set when a drain or a kill may have recorded panics, so the loop only asks then.
    panics_possible: bool,
    buggify: BuggifyConfig,
    step_hook: Option<StepHook>,
    state: StateHandle,
    /// The run's chaos state, while it runs and after.
    chaos: Option<(Arc<Mutex<ChaosState>>, Arc<AtomicBool>)>,
    watchdog_stall: Option<Duration>,
    /// The replay command shown by the watchdog.
    replay: Option<String>,
}

impl SimWorld {
    /// A world with the default (chaotic, FDB-like) configuration.
    pub fn new(seed: u64) -> Self {
        Self::build(seed, WorldConfig::default())
    }

    /// A world with `config`; fails naming the first invalid setting.
    pub fn with_config(seed: u64, config: WorldConfig) -> Result<Self, SimError> {
        config
            .network
            .validate()
            .map_err(|e| SimError::setup(format!("network configuration: {e}")))?;
        config
            .storage
            .validate()
            .map_err(|e| SimError::setup(format!("storage configuration: {e}")))?;
        if config.poll_bound == 0 {
            return Err(SimError::setup("poll_bound is 0; no task could ever run"));
        }
        if config.max_tasks == 0 {
            return Err(SimError::setup("max_tasks is 0; no task could ever run"));
        }
        Ok(Self::build(seed, config))
    }

    fn build(seed: u64, config: WorldConfig) -> Self {
        let executor = Executor::new(rng::stream(seed, rng::STREAM_SCHEDULER));
        executor.set_poll_bound(config.poll_bound);
        // The poll bound counts polls without the clock advancing, across drains.
        executor.count_steps_per_instant();
        executor.set_task_limit(config.max_tasks);
        let world_rng = WorldRng::new(seed);
        let network = NetworkState::new(config.network.clone());
        let storage = StorageState::new(config.storage.clone());
        let state = WorldState {
            core: Core {
                now: Duration::ZERO,
                shared_clock: SharedClock::default(),
                seed,
                queue: EventQueue::default(),
                rng: world_rng,
                processes: Vec::new(),
                ips: BTreeMap::new(),
                faults: BTreeMap::new(),
                trace: TraceHash::for_seed(seed),
                events: 0,
                clock: config.clock.clone(),
                grace: config.graceful_shutdown_grace,
                trace_log: config.record_trace.then(Vec::new),
            },
            timers: Timers::default(),
            network,
            storage,
        };
        Self {
            handle: WorldHandle(Arc::new(Mutex::new(state))),
            executor,
            seed,
            time_budget: config.time_budget,
            factories: Vec::new(),
            workloads_left: Arc::new(AtomicUsize::new(0)),
            select_rng: Arc::new(Mutex::new(rng::stream(seed, rng::STREAM_SELECT))),
            app_rng: Arc::new(Mutex::new(rng::stream(seed, rng::STREAM_APPLICATION))),
            polls: 0,
            panics_possible: false,
            buggify: config.buggify.clone(),
            step_hook: None,
            state: StateHandle::default(),
            chaos: None,
            watchdog_stall: config.watchdog_stall,
            replay: None,
        }
    }

    /// The replay command the watchdog prints if this world's run stalls (default
    /// `MOONPOOL_SEED=<seed>`).
    pub(crate) fn set_replay_command(&mut self, command: String) {
        self.replay = Some(command);
    }

    /// Registers this world with the wall-clock watchdog for the length of a run.
    fn watch(&self) -> crate::watchdog::Registration {
        let spawner = self.executor.spawner();
        let names = self.process_names();
        let probe = move || {
            let (polls, current) = spawner.progress();
            let label = current.map(|task| {
                let owner = task
                    .owner
                    .and_then(|id| names.get(id.0 as usize).cloned())
                    .unwrap_or_else(|| "world".to_string());
                format!("{owner}/{}", task.name)
            });
            (polls, label)
        };
        crate::watchdog::watch(crate::watchdog::Watched {
            seed: self.seed,
            replay: self
                .replay
                .clone()
                .unwrap_or_else(|| format!("MOONPOOL_SEED={}", self.seed)),
            stall_limit: self.watchdog_stall,
            probe: Arc::new(probe),
        })
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A handle for injecting faults and reading the clock, usable from workloads.
    pub fn control(&self) -> WorldControl {
        WorldControl::new(self.handle.clone())
    }

    fn register(
        &mut self,
        name: &str,
        ip: &str,
        role: ProcessRole,
        locality: Locality,
    ) -> Result<ProcessId, SimError> {
        let ip: IpAddr = ip.parse().map_err(|_| {
            SimError::setup(format!("process '{name}' has an invalid IP address '{ip}'"))
        })?;
        self.handle.with(|state| {
            if let Some(existing) = state.core.process_at(ip) {
                let other = state.core.process(existing).map(|p| p.name.clone());
                return Err(SimError::setup(format!(
                    "process '{name}' wants IP {ip}, already used by '{}'",
                    other.unwrap_or_default()
                )));
            }
            if state.core.processes.iter().any(|p| p.name == name) {
                return Err(SimError::setup(format!("two processes are named '{name}'")));
            }
            let id = Core::id_at(state.core.processes.len());
            state
                .core
                .processes
                .push(ProcessState::new(name.to_string(), ip, role, locality));
            state.core.ips.insert(ip, id);
            Ok(id)
        })
    }

    /// The providers of process `id`.
    pub fn providers(&self, id: ProcessId) -> SimProviders {
        SimProviders::new(
            self.handle.clone(),
            self.executor.spawner(),
            id,
            Arc::clone(&self.app_rng),
        )
    }

    /// Adds a server process at `ip`, in `locality`, whose body `factory` builds at every boot.
    /// It boots when the run starts, before any workload code runs.
    pub fn add_process<F, Fut>(
        &mut self,
        name: &str,
        ip: &str,
        locality: Locality,
        factory: F,
    ) -> Result<ProcessId, SimError>
    where
        F: Fn(ProcessContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = self.register(name, ip, ProcessRole::Server, locality)?;
        let factory: ProcessFactory = Arc::new(move |ctx| Box::pin(factory(ctx)));
        self.set_factory(id, factory);
        Ok(id)
    }

    fn set_factory(&mut self, id: ProcessId, factory: ProcessFactory) {
        let index = id.0 as usize;
        if self.factories.len() <= index {
            self.factories.resize_with(index + 1, || None);
        }
        self.factories[index] = Some(factory);
    }

    /// The world's shared state, handed to processes in their [`ProcessContext`].
    pub fn state(&self) -> StateHandle {
        self.state.clone()
    }

    /// Calls `hook` after every processed event (invariants). An error fails the run at once.
    pub fn set_step_hook(&mut self, hook: StepHook) {
        self.step_hook = Some(hook);
    }

    /// Registers a workload process at `ip` without a body; spawn its tasks later through
    /// [`SimWorld::providers`]. It does not count towards the end of the run: only workloads added
    /// with [`SimWorld::add_workload`] do.
    pub fn add_workload_process(&mut self, name: &str, ip: &str) -> Result<ProcessId, SimError> {
        let id = self.register(name, ip, ProcessRole::Workload, Locality::default())?;
        self.handle.with(|state| {
            if let Some(process) = state.core.process_mut(id) {
                process.alive = true;
                process.generation = 1;
            }
        });
        Ok(id)
    }

    /// Adds a workload (test driver) at `ip`. The run ends when every workload has returned.
    pub fn add_workload<F, Fut>(
        &mut self,
        name: &str,
        ip: &str,
        body: F,
    ) -> Result<ProcessId, SimError>
    where
        F: FnOnce(SimProviders) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = self.register(name, ip, ProcessRole::Workload, Locality::default())?;
        self.handle.with(|state| {
            if let Some(process) = state.core.process_mut(id) {
                process.alive = true;
                process.generation = 1;
            }
        });
        let span = tracing::info_span!("process", name = %name, ip = %ip);
        let future = tracing::Instrument::instrument(body(self.providers(id)), span);
        let left = Arc::clone(&self.workloads_left);
        left.fetch_add(1, Ordering::SeqCst);
        let guard = WorkloadGuard(left);
        drop(
            self.executor
                .spawner()
                .spawn_in(Some(id), name, async move {
                    let _guard = guard;
                    future.await;
                }),
        );
        Ok(id)
    }

    /// Runs until every workload has finished; returns the run's figures, or why it failed.
    pub fn run(&mut self) -> Result<RunSummary, SimError> {
        let select_rng = Arc::clone(&self.select_rng);
        let _select = install_offset_source(move |branches| {
            let mut rng = select_rng.lock().unwrap_or_else(PoisonError::into_inner);
            #[allow(clippy::cast_possible_truncation)]
            let offset = ((u64::from(rng.next_u32()) * u64::from(branches)) >> 32) as u32;
            offset
        });
        let (hooks, chaos, violated) = SimChaos::new(
            self.seed,
            self.buggify.clone(),
            self.handle.with(|state| state.core.shared_clock.clone()),
            self.executor.spawner(),
            self.process_names(),
        );
        self.chaos = Some((chaos, violated));
        let hooks_guard = moonpool_core::chaos::install_hooks(Box::new(hooks));
        let _clock_guard = install_current_clock(self.handle.with(|s| s.core.shared_clock.clone()));
        let _watch = self.watch();
        // Servers boot before any workload code runs, so that at time zero the cluster is up.
        let unbooted: Vec<ProcessId> = self.handle.with(|state| {
            state
                .core
                .processes
                .iter()
                .enumerate()
                .filter(|(_, p)| p.role == ProcessRole::Server && p.generation == 0)
                .map(|(index, _)| Core::id_at(index))
                .collect()
        });
        let result = unbooted
            .into_iter()
            .try_for_each(|process| self.boot(process))
            .and_then(|()| self.run_loop());
        // Kill-on-drop: nothing from this run survives into the next one. Futures dropped here may
        // still evaluate assertions, so the hooks stay installed until after.
        self.executor.shutdown();
        drop(hooks_guard);
        result
    }

    fn run_loop(&mut self) -> Result<RunSummary, SimError> {
        loop {
            let schedule_hash = self.drain()?;
            if self.workloads_left.load(Ordering::SeqCst) == 0 {
                self.handle
                    .with(|state| state.core.trace.fold(schedule_hash));
                return Ok(self.summary());
            }
            let (step, advanced) = self.step(schedule_hash);
            if advanced {
                self.executor.begin_instant();
            }
            match step {
                Step::Applied => {}
                Step::Process(event) => self.apply_process_event(event)?,
                Step::Empty => {
                    return Err(SimError::Deadlock {
                        seed: self.seed,
                        now: self.now(),
                        stuck: self.live_tasks(),
                    });
                }
                Step::OverBudget => {
                    return Err(SimError::TimeBudgetExceeded {
                        seed: self.seed,
                        budget: self.time_budget,
                        live: self.live_tasks(),
                    });
                }
            }
            if let Some(hook) = self.step_hook.as_mut() {
                let checked = catch_unwind(AssertUnwindSafe(hook)).map_err(|payload| {
                    let message = moonpool_core::task::panic_message(&*payload);
                    SimError::CallbackPanicked {
                        seed: self.seed,
                        callback: "the step hook (invariants)".to_string(),
                        now: self.now(),
                        message,
                    }
                })?;
                if let Err((name, message)) = checked {
                    let (now, event) = self.handle.with(|s| (s.core.now, s.core.events));
                    return Err(SimError::InvariantViolated {
                        seed: self.seed,
                        name,
                        message,
                        now,
                        event,
                    });
                }
            }
        }
    }

    /// Pops the next event and applies it, all under one lock (the hot path of the simulator).
    fn step(&mut self, schedule_hash: u64) -> (Step, bool) {
        let budget = self.time_budget;
        let mut state = self.handle.lock();
        let state = &mut *state;
        let core = &mut state.core;
        core.trace.fold(schedule_hash);
        let Some((at, sequence, event)) = core.queue.pop() else {
            return (Step::Empty, false);
        };
        if at > budget {
            return (Step::OverBudget, false);
        }
        let advanced = at > core.now;
        core.set_now(at);
        core.events += 1;
        let (kind, object) = event.fingerprint();
        #[allow(clippy::cast_possible_truncation)]
        core.trace.fold(at.as_nanos() as u64);
        core.trace.fold(kind);
        core.trace.fold(object);
        if core.trace_log.is_some() {
            let (process, peer) = attribute(state, &event);
            if let Some(log) = state.core.trace_log.as_mut() {
                #[allow(clippy::cast_possible_truncation)]
                log.push(TraceEntry {
                    at_nanos: at.as_nanos() as u64,
                    kind,
                    object,
                    schedule_hash,
                    sequence,
                    process,
                    peer,
                });
            }
        }
        let step = match event {
            Event::Timer(key) => {
                if let Some(waker) = state.timers.fire(key) {
                    waker.wake();
                }
                Step::Applied
            }
            Event::Network(event) => {
                network::apply(&mut state.network, &mut state.core, event);
                Step::Applied
            }
            Event::Storage(event) => {
                storage::apply(&mut state.storage, event);
                Step::Applied
            }
            Event::Process(event) => Step::Process(event),
        };
        (step, advanced)
    }

    fn apply_process_event(&mut self, event: ProcessEvent) -> Result<(), SimError> {
        match event {
            ProcessEvent::Stop {
                process,
                kind,
                restart_after,
            } => {
                let stopped = self.handle.with(|state| {
                    let Some(p) = state.core.process_mut(process) else {
                        return false;
                    };
                    if !p.alive || p.role == ProcessRole::Workload {
                        return false;
                    }
                    p.alive = false;
                    network::process_down(&mut state.network, &mut state.core, process, kind);
                    storage::process_down(&mut state.storage, &mut state.core, process, kind);
                    state.core.fault(match kind {
                        RebootKind::Graceful => "process.graceful_reboot",
                        RebootKind::Crash => "process.crash",
                        RebootKind::CrashAndWipe => "process.crash_and_wipe",
                    });
                    if let Some(delay) = restart_after {
                        state
                            .core
                            .schedule(delay, Event::Process(ProcessEvent::Start { process }));
                    }
                    true
                });
                if stopped {
                    // Outside the world lock: dropping task futures may touch the world.
                    self.executor.kill_owner(Some(process));
                    // Futures dropped by the kill may have panicked in their `Drop`.
                    self.panics_possible = true;
                }
            }
            ProcessEvent::Start { process } => return self.boot(process),
        }
        Ok(())
    }

    /// Boots `process` with a body built by its factory; a panicking factory fails the run.
    fn boot(&mut self, process: ProcessId) -> Result<(), SimError> {
        let Some(factory) = self.factories.get(process.0 as usize).cloned().flatten() else {
            return Ok(());
        };
        let booted = self.handle.with(|state| {
            let now = state.core.now;
            let p = state.core.process_mut(process)?;
            if p.alive {
                return None;
            }
            p.alive = true;
            p.generation += 1;
            p.timer_time = now;
            p.shutdown = ShutdownSignal::default();
            Some((p.name.clone(), p.ip, p.generation, p.shutdown.clone()))
        });
        let Some((name, ip, boot, shutdown)) = booted else {
            return Ok(());
        };
        let ctx = ProcessContext {
            providers: self.providers(process),
            name: name.clone(),
            ip,
            boot,
            shutdown,
            state: self.state.clone(),
        };
        let span = tracing::info_span!("process", name = %name, ip = %ip, boot);
        let body = catch_unwind(AssertUnwindSafe(|| factory(ctx))).map_err(|payload| {
            SimError::CallbackPanicked {
                seed: self.seed,
                callback: format!("the factory of process '{name}' (boot {boot})"),
                now: self.now(),
                message: moonpool_core::task::panic_message(&*payload),
            }
        })?;
        let body = tracing::Instrument::instrument(body, span);
        drop(
            self.executor
                .spawner()
                .spawn_in(Some(process), &format!("{name}#main"), body),
        );
        Ok(())
    }

    fn drain(&mut self) -> Result<u64, SimError> {
        let schedule_hash = self.drain_tasks()?;
        if let Some((chaos, violated)) = &self.chaos {
            if violated.load(Ordering::Relaxed) {
                let violation = chaos
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .table
                    .violation
                    .clone();
                if let Some(violation) = violation {
                    return Err(SimError::AssertionFailed {
                        seed: self.seed,
                        violation: Box::new(violation),
                    });
                }
            }
        }
        Ok(schedule_hash)
    }

    fn drain_tasks(&mut self) -> Result<u64, SimError> {
        let schedule_hash = match self.executor.run_until_stalled() {
            Ok(stats) => {
                self.polls += stats.polls;
                self.panics_possible |= stats.panics_pending;
                stats.schedule_hash
            }
            Err(ExecutorError::PollBoundExceeded { polls, busiest }) => {
                return Err(SimError::BusyLoop {
                    seed: self.seed,
                    now: self.now(),
                    polls,
                    busiest: busiest
                        .into_iter()
                        .map(|(task, count)| format!("{} ({count} polls)", self.task_label(&task)))
                        .collect(),
                });
            }
            Err(ExecutorError::TaskLimitExceeded {
                limit,
                refused,
                spawner,
                most_common,
            }) => {
                return Err(SimError::TaskLimitExceeded {
                    seed: self.seed,
                    now: self.now(),
                    limit,
                    refused,
                    spawner: spawner.map_or_else(
                        || "code outside any task".to_string(),
                        |task| self.task_label(&task),
                    ),
                    most_common: most_common
                        .into_iter()
                        .map(|(name, count)| format!("{name} x{count}"))
                        .collect(),
                });
            }
            Err(ExecutorError::AlreadyDraining) => {
                return Err(SimError::setup(
                    "SimWorld::run was called from inside one of its own tasks",
                ));
            }
        };
        // A panic whose handle is still held is delivered to the awaiting code (as on Tokio); a
        // panic nobody can observe (a detached task, a workload, a process body) fails the seed.
        if !std::mem::take(&mut self.panics_possible) {
            return Ok(schedule_hash);
        }
        let unobserved = self
            .executor
            .take_panics()
            .into_iter()
            .find(|panic| panic.detached || panic.during_drop);
        if let Some(panic) = unobserved {
            return Err(SimError::TaskPanicked {
                seed: self.seed,
                now: self.now(),
                task: self.label(panic.owner, &panic.task),
                message: panic.message,
            });
        }
        Ok(schedule_hash)
    }

    /// Current simulated time.
    pub fn now(&self) -> Duration {
        self.handle.with(|state| state.core.now)
    }

    /// Every live task as `process/task (waits on ...)`: those waiting on a wake-up the simulator
    /// does not schedule first, each group sorted by task id.
    pub fn live_tasks(&self) -> Vec<String> {
        describe_waiting(&self.executor.spawner(), &self.process_names(), None)
    }

    /// `process/task` for a task.
    fn task_label(&self, task: &TaskInfo) -> String {
        self.label(task.owner, &task.name)
    }

    /// `process/task`, with `world` for tasks that belong to no process.
    fn label(&self, owner: Option<ProcessId>, task: &str) -> String {
        let owner = owner
            .and_then(|id| {
                self.handle
                    .with(|s| s.core.process(id).map(|p| p.name.clone()))
            })
            .unwrap_or_else(|| "world".to_string());
        format!("{owner}/{task}")
    }

    /// The events recorded so far when [`WorldConfig::record_trace`] is on (also after a failed
    /// run).
    pub fn trace(&self) -> Vec<TraceEntry> {
        self.handle
            .with(|state| state.core.trace_log.clone().unwrap_or_default())
    }

    /// Process names by index (the `process` field of trace entries).
    pub fn process_names(&self) -> Vec<String> {
        self.control().process_names()
    }

    /// The assertion table of the last run (empty before a run).
    pub fn assertions(&self) -> AssertionTable {
        self.chaos
            .as_ref()
            .map(|(chaos, _)| {
                chaos
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .table
                    .clone()
            })
            .unwrap_or_default()
    }

    /// The run's figures so far; after a failed run, what it did until it failed.
    pub fn summary(&self) -> RunSummary {
        let (assertions, buggify_fired) = match &self.chaos {
            Some((chaos, _)) => {
                let chaos = chaos.lock().unwrap_or_else(PoisonError::into_inner);
                (chaos.table.clone(), chaos.buggify_fired)
            }
            None => (AssertionTable::default(), 0),
        };
        self.handle.with(|state| {
            let mut faults = state.core.faults.clone();
            if buggify_fired > 0 {
                faults.insert("buggify.fired", buggify_fired);
            }
            RunSummary {
                seed: self.seed,
                fingerprint: state.core.trace.value(),
                sim_time: state.core.now,
                events: state.core.events,
                polls: self.polls,
                faults,
                assertions,
                trace: state.core.trace_log.clone().unwrap_or_default(),
            }
        })
    }
}

impl Drop for SimWorld {
    fn drop(&mut self) {
        self.executor.shutdown();
        // Break reference cycles between the queue's wakers and the tasks.
        self.handle.with(|state| state.core.queue.clear());
    }
}

/// Every live task of `spawner` but those owned by `except`, as `process/task (waits on ...)`:
/// those waiting on a wake-up the simulator does not schedule first, then the others, each group
/// by task id. What hang reports list.
pub(crate) fn describe_waiting(
    spawner: &crate::executor::Spawner,
    process_names: &[String],
    except: Option<ProcessId>,
) -> Vec<String> {
    let mut tasks = spawner.waiting_tasks();
    tasks.retain(|(task, _)| except.is_none() || task.owner != except);
    // Tasks waiting on nothing the simulator schedules are the usual culprits: list them first.
    tasks.sort_by_key(|(task, waiting)| (waiting.is_some(), task.id));
    tasks
        .into_iter()
        .map(|(task, waiting)| {
            let owner = task
                .owner
                .and_then(|id| process_names.get(id.0 as usize).map(String::as_str))
                .unwrap_or("world");
            match waiting {
                Some(reason) => format!("{owner}/{} (waits on {reason})", task.name),
                None => format!(
                    "{owner}/{} (waits on {})",
                    task.name,
                    crate::executor::UNSCHEDULED_WAIT
                ),
            }
        })
        .collect()
}

/// The process an event concerns and, for network events, the one at the other end.
fn attribute(state: &WorldState, event: &Event) -> (u32, u32) {
    let none = u32::MAX;
    match event {
        Event::Timer(_) => (none, none),
        Event::Network(event) => {
            let (owner, peer) = network::owners(&state.network, event);
            (owner.map_or(none, |p| p.0), peer.map_or(none, |p| p.0))
        }
        Event::Storage(crate::storage::StorageEvent::Complete { op }) => {
            (state.storage.op_owner(*op).map_or(none, |p| p.0), none)
        }
        Event::Process(ProcessEvent::Stop { process, .. } | ProcessEvent::Start { process }) => {
            (process.0, none)
        }
    }
}

/// What one step of the event loop did.
enum Step {
    Applied,
    Process(ProcessEvent),
    Empty,
    OverBudget,
}

struct WorkloadGuard(Arc<AtomicUsize>);

impl Drop for WorkloadGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
