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

mod ambient;
mod config;
mod context;
mod inspect;
mod run;
mod spare;
mod topology;
mod watch;

pub use crate::kernel::{rng, trace};
pub use ambient::current_providers;
pub use config::WorldConfig;
pub(crate) use config::ZERO_STALL;
pub use context::{ProcessContext, ProcessFactory, ProcessFuture, RunSummary, StepHook};
pub(crate) use inspect::describe_waiting;
pub use topology::{Member, Topology};

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

pub use crate::handle::WorldControl;
pub use crate::kernel::clock::sim_now;
pub use crate::kernel::process::{Locality, ProcessRole, RebootKind, ShutdownSignal};
pub use crate::kernel::state::StateHandle;
pub use crate::kernel::trace::{TRACE_SEND, TraceEntry};

use crate::chaos::{BuggifyConfig, ChaosState, ReseedPlan, SplitHandler, Splits};
use crate::error::SimError;
use crate::executor::{Executor, ProcessId};
use crate::handle::{WorldHandle, WorldState};
use crate::kernel::Core;
use crate::kernel::clock::SharedClock;
use crate::kernel::process::ProcessState;
use crate::kernel::rng::WorldRng;
use crate::kernel::timers::Timers;
use crate::kernel::trace::TraceHash;
use crate::network::NetworkState;
use crate::providers::SimProviders;
use crate::storage::StorageState;

/// Folded into the fingerprint before the seed of a reseed (a split point).
const RESEED_MARK: u64 = 0x7265_7365_6564_2121;

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
    /// The world clock, read without the lock.
    clock: SharedClock,
    executor: Executor,
    seed: u64,
    time_budget: Duration,
    factories: Vec<Option<ProcessFactory>>,
    workloads_left: Arc<AtomicUsize>,
    select_rng: rng::SharedStream,
    app_rng: rng::SharedStream,
    polls: u64,
    /// Set when a drain or a kill may have recorded panics, so the loop only asks then.
    panics_possible: bool,
    buggify: BuggifyConfig,
    step_hook: Option<StepHook>,
    state: StateHandle,
    /// The run's chaos state, while it runs and after.
    chaos: Option<(Arc<crate::run_lock::RunLock<ChaosState>>, Arc<AtomicBool>)>,
    watchdog_stall: Option<Duration>,
    /// `watchdog_stall` already holds what the environment says (the runner read it once).
    watchdog_stall_resolved: bool,
    /// The process names the runner expects (see [`SimWorld::set_expected_names`]).
    expected_names: Option<Arc<[String]>>,
    /// The replay command shown by the watchdog.
    replay: Option<String>,
    /// Split points of an exploring run.
    split_handler: Option<Box<dyn SplitHandler>>,
    /// Reseeds of a replayed recipe: (evaluation position, seed).
    reseed_plan: Vec<(u64, u64)>,
    /// Workload bodies added with [`SimWorld::add_workload`], spawned by `run` once the servers
    /// have booted and run until they wait.
    pending_workloads: Vec<PendingWorkload>,
    /// Who is where, handed to process bodies; built from the registrations when not set.
    topology: Option<Arc<Topology>>,
    /// Strings of the thread's last world's process table (see `spare`), taken by the
    /// registrations of this one in the order they were made there.
    name_pool: Vec<String>,
    /// The thread's last world's chaos state, renewed for this world's run if nothing else
    /// holds it (see `spare`).
    kept_chaos: Option<crate::chaos::KeptChaos>,
}

/// A workload body waiting for the servers to boot.
struct PendingWorkload {
    id: ProcessId,
    /// The task's name, from the executor's recent names.
    name: Arc<str>,
    body: ProcessFuture,
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
        config
            .clock
            .validate()
            .map_err(|e| SimError::setup(format!("clock configuration: {e}")))?;
        config
            .buggify
            .validate()
            .map_err(|e| SimError::setup(format!("buggify configuration: {e}")))?;
        if config.poll_bound == 0 {
            return Err(SimError::setup("poll_bound is 0; no task could ever run"));
        }
        if config.max_tasks == 0 {
            return Err(SimError::setup("max_tasks is 0; no task could ever run"));
        }
        if config.watchdog_stall == Some(Duration::ZERO) {
            return Err(SimError::setup(ZERO_STALL));
        }
        Ok(Self::build(seed, config))
    }

    fn build(seed: u64, config: WorldConfig) -> Self {
        // What the thread's last world left (see `spare`): the same parts, renewed.
        let mut spare = spare::take();
        let executor = spare.executor(rng::stream(seed, rng::STREAM_SCHEDULER));
        executor.set_poll_bound(config.poll_bound);
        executor.set_task_limit(config.max_tasks);
        let world_rng = WorldRng::new(seed);
        let network = NetworkState::new(config.network.clone());
        let storage = StorageState::new(config.storage.clone());
        let clock = SharedClock::default();
        let story = config.record_story.then(|| {
            crate::kernel::story::Story::new(
                clock.clone(),
                crate::kernel::story::DEFAULT_STORY_NOTES,
            )
        });
        if let Some(story) = &story {
            executor.set_observer(Some(story.clone()));
        }
        let state = WorldState {
            core: Core {
                now: Duration::ZERO,
                shared_clock: clock.clone(),
                seed,
                queue: spare.queue.take().unwrap_or_default(),
                rng: world_rng,
                processes: spare.processes.take().unwrap_or_default(),
                ips: BTreeMap::new(),
                names: BTreeMap::new(),
                faults: BTreeMap::new(),
                fault_kinds: BTreeMap::new(),
                trace: TraceHash::for_seed(seed),
                events: 0,
                clock: config.clock.clone(),
                grace: config.graceful_shutdown_grace,
                trace_log: config.record_trace.then(Vec::new),
                story,
            },
            timers: Timers::for_executor(executor.identity()),
            network,
            storage,
            chaos: None,
        };
        Self {
            handle: WorldHandle::new(state),
            clock,
            executor,
            seed,
            time_budget: config.time_budget,
            factories: std::mem::take(&mut spare.factories),
            workloads_left: spare.workloads_left(),
            select_rng: spare.select_rng(seed, rng::STREAM_SELECT),
            app_rng: spare.app_rng(seed, rng::STREAM_APPLICATION),
            polls: 0,
            panics_possible: false,
            buggify: config.buggify.clone(),
            step_hook: None,
            state: StateHandle::default(),
            chaos: None,
            watchdog_stall: config.watchdog_stall,
            watchdog_stall_resolved: false,
            expected_names: None,
            replay: None,
            split_handler: None,
            reseed_plan: Vec::new(),
            pending_workloads: std::mem::take(&mut spare.pending),
            topology: None,
            name_pool: std::mem::take(&mut spare.names),
            kept_chaos: spare.chaos.take(),
        }
    }

    /// Makes the next run replay a recipe: at each (evaluation position, seed), every random
    /// stream is reseeded with the seed (see `chaos::split`).
    pub(crate) fn set_reseed_plan(&mut self, steps: Vec<(u64, u64)>) {
        self.reseed_plan = steps;
    }

    /// Makes the next run explore: `handler` sees every assertion evaluation and may split the run.
    #[cfg_attr(not(feature = "explorer"), allow(dead_code))]
    pub(crate) fn set_split_handler(&mut self, handler: Box<dyn SplitHandler>) {
        self.split_handler = Some(handler);
    }

    /// What the run does at its split points: the handler and plan set for it, and how to reseed
    /// this world's streams.
    fn splits(&mut self) -> Splits {
        let handler = self.split_handler.take();
        let plan = ReseedPlan::new(std::mem::take(&mut self.reseed_plan));
        if handler.is_none() && plan.is_empty() {
            return Splits::none();
        }
        let handle = self.handle.clone();
        let spawner = self.executor.spawner();
        let select_rng = Arc::clone(&self.select_rng);
        let app_rng = Arc::clone(&self.app_rng);
        let free = self.handle.clone();
        Splits {
            handler,
            plan,
            reseed_world: Box::new(move |seed| {
                spawner.reseed(rng::stream(seed, rng::STREAM_SCHEDULER));
                *select_rng.lock() = rng::stream(seed, rng::STREAM_SELECT);
                *app_rng.lock() = rng::stream(seed, rng::STREAM_APPLICATION);
                handle.with(|state| {
                    state.core.rng.reseed(seed, rng::STREAM_WORLD);
                    // The reseed is part of what happened: a replay folds the same words.
                    state.core.trace.fold(RESEED_MARK);
                    state.core.trace.fold(seed);
                });
            }),
            world_free: Box::new(move || free.is_free()),
        }
    }

    /// The replay command the watchdog prints if this world's run stalls (default
    /// `MOONPOOL_SEED=<seed>`).
    pub(crate) fn set_replay_command(&mut self, command: String) {
        self.replay = Some(command);
    }

    /// The seed.
    pub fn seed(&self) -> u64 {
        self.seed
    }

    /// A handle for injecting faults and reading the clock, usable from workloads.
    pub fn control(&self) -> WorldControl {
        WorldControl::new(self.handle.clone())
    }

    /// Registers a process at an address already parsed (the public `add_*` parse theirs; the
    /// runner's topology holds them parsed: a round trip through a string cost a format and a
    /// parse per process and seed).
    fn register_at(
        &mut self,
        name: &str,
        ip: IpAddr,
        role: ProcessRole,
        locality: &Locality,
    ) -> Result<ProcessId, SimError> {
        if ip.to_canonical().is_loopback() {
            return Err(SimError::setup(format!(
                "process '{name}' wants IP {ip}, a loopback address: to every process that is \
                 itself, so no other process could reach it (give it an address of its own, \
                 e.g. 10.0.0.1)"
            )));
        }
        let pool = &mut self.name_pool;
        self.handle.with(|state| {
            if let Some(existing) = state.core.process_at(ip) {
                let other = state.core.process(existing).map(|p| p.name.clone());
                return Err(SimError::setup(format!(
                    "process '{name}' wants IP {ip}, already used by '{}'",
                    other.unwrap_or_default()
                )));
            }
            if state.core.process_named(name).is_some() {
                return Err(SimError::setup(format!("two processes are named '{name}'")));
            }
            let id = Core::id_at(state.core.processes.len());
            // The strings in the order `leave_spare` pools them: name, key, then the locality's.
            let process_name = spare::pooled(pool, name);
            let key = spare::pooled(pool, name);
            let locality = Locality {
                datacenter: spare::pooled(pool, &locality.datacenter),
                zone: spare::pooled(pool, &locality.zone),
                machine: spare::pooled(pool, &locality.machine),
            };
            state
                .core
                .processes
                .push(ProcessState::new(process_name, ip, role, locality));
            state.core.ips.insert(ip, id);
            state.core.names.insert(key, id);
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
    ///
    /// Servers boot when the run starts, before any workload code runs: every server body (and
    /// every task it spawns) runs until it waits, and only then are the workloads added with
    /// [`SimWorld::add_workload`] spawned. So a listener a server binds at boot without waiting
    /// (zero bind latency, as in
    /// [`NetworkConfiguration::with_fixed_latency`](crate::NetworkConfiguration::with_fixed_latency))
    /// already accepts a connection a workload makes at time zero, in every seed. With a nonzero
    /// bind latency the bind itself waits, and the workload must retry (as real clients do).
    /// Tasks spawned through [`SimWorld::providers`] before the run are not held back.
    ///
    /// When the body returns, the process stays up with whatever tasks it spawned still running;
    /// it is not rebooted (a process whose body returns at once and spawned nothing simply serves
    /// nothing). A reboot or crash drops all of its tasks and calls `factory` again.
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
        self.add_process_at(name, parse_ip(name, ip)?, locality, factory)
    }

    /// [`add_process`](Self::add_process) at an address already parsed.
    pub(crate) fn add_process_at<F, Fut>(
        &mut self,
        name: &str,
        ip: IpAddr,
        locality: Locality,
        factory: F,
    ) -> Result<ProcessId, SimError>
    where
        F: Fn(ProcessContext) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let factory: ProcessFactory = Arc::new(move |ctx| Box::pin(factory(ctx)));
        self.add_process_factory_at(name, ip, &locality, factory)
    }

    /// [`add_process_at`](Self::add_process_at) with a factory already shared and boxing its
    /// futures (the runner's): no wrapper, and no second box around every boot's future.
    pub(crate) fn add_process_factory_at(
        &mut self,
        name: &str,
        ip: IpAddr,
        locality: &Locality,
        factory: ProcessFactory,
    ) -> Result<ProcessId, SimError> {
        let id = self.register_at(name, ip, ProcessRole::Server, locality)?;
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

    /// Sets the topology handed to process bodies in [`ProcessContext::topology`] (the runner
    /// sets the one it declared, with groups). Without it, a world builds one from its
    /// registrations, each process its own group of one.
    pub fn set_topology(&mut self, topology: Arc<Topology>) {
        self.topology = Some(topology);
    }

    /// The topology process bodies see: the one set, or one built from the registrations.
    pub fn topology(&self) -> Arc<Topology> {
        if let Some(topology) = &self.topology {
            return Arc::clone(topology);
        }
        let members = self.handle.with(|state| {
            state
                .core
                .processes
                .iter()
                .map(|p| {
                    let member = Member {
                        name: p.name.clone(),
                        group: p.name.clone(),
                        ip: p.ip,
                        locality: p.locality.clone(),
                    };
                    (p.role, member)
                })
                .collect::<Vec<_>>()
        });
        let mut topology = Topology::default();
        for (role, member) in members {
            match role {
                ProcessRole::Server => topology.processes.push(member),
                ProcessRole::Workload => topology.workloads.push(member),
            }
        }
        Arc::new(topology)
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
        self.add_workload_process_at(name, parse_ip(name, ip)?)
    }

    /// [`add_workload_process`](Self::add_workload_process) at an address already parsed.
    pub(crate) fn add_workload_process_at(
        &mut self,
        name: &str,
        ip: IpAddr,
    ) -> Result<ProcessId, SimError> {
        let id = self.register_at(name, ip, ProcessRole::Workload, &Locality::default())?;
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
        self.add_workload_shown(name, parse_ip(name, ip)?, &ip, body)
    }

    /// [`add_workload`](Self::add_workload) at an address already parsed (the runner's own
    /// workload, at the same address every seed).
    pub(crate) fn add_workload_at<F, Fut>(
        &mut self,
        name: &str,
        ip: IpAddr,
        body: F,
    ) -> Result<ProcessId, SimError>
    where
        F: FnOnce(SimProviders) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        self.add_workload_shown(name, ip, &ip, body)
    }

    /// A workload at `ip`, whose span shows the address as `shown` (as the caller wrote it).
    fn add_workload_shown<F, Fut>(
        &mut self,
        name: &str,
        ip: IpAddr,
        shown: &dyn std::fmt::Display,
        body: F,
    ) -> Result<ProcessId, SimError>
    where
        F: FnOnce(SimProviders) -> Fut,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let id = self.register_at(name, ip, ProcessRole::Workload, &Locality::default())?;
        self.handle.with(|state| {
            if let Some(process) = state.core.process_mut(id) {
                process.alive = true;
                process.generation = 1;
            }
        });
        let span = tracing::info_span!("process", name = %name, ip = %shown);
        let future = body(self.providers(id));
        let left = Arc::clone(&self.workloads_left);
        left.fetch_add(1, Ordering::SeqCst);
        let guard = WorkloadGuard(left);
        // Boxed once here, and spawned as it is (`spawn_detached`). Wrapped in its span only when
        // the span is enabled (see `in_span`): what a subscriber sees does not change.
        let body: ProcessFuture = if span.is_disabled() {
            Box::pin(async move {
                let _guard = guard;
                future.await;
            })
        } else {
            let future = tracing::Instrument::instrument(future, span);
            Box::pin(async move {
                let _guard = guard;
                future.await;
            })
        };
        self.pending_workloads.push(PendingWorkload {
            id,
            name: self.executor.task_name(name, ""),
            body,
        });
        Ok(id)
    }

    /// Spawns the workloads that wait for the servers' boot, in the order they were added.
    fn start_pending_workloads(&mut self) {
        for workload in std::mem::take(&mut self.pending_workloads) {
            self.executor
                .spawn_detached(Some(workload.id), workload.name, workload.body);
        }
    }
}

impl Drop for SimWorld {
    fn drop(&mut self) {
        self.executor.shutdown();
        // Break reference cycles between the queue's wakers and the tasks.
        self.handle.with(|state| state.core.queue.clear());
        self.leave_spare();
    }
}

impl SimWorld {
    /// Leaves this world's parts for the next world of the thread (see `spare`). The lists of
    /// the world's state are taken only when nothing else holds the state (no `WorldControl` or
    /// provider outlives the world), so nobody sees them emptied.
    fn leave_spare(&mut self) {
        let mut spare = spare::Spare::default();
        if let Some(state) = self.handle.get_mut() {
            // A huge world's process list is freed rather than kept until the thread's next
            // world.
            if state.core.processes.capacity() <= spare::MAX_KEPT_PROCESSES {
                let mut processes = std::mem::take(&mut state.core.processes);
                let mut keys = std::mem::take(&mut state.core.names);
                let pool = std::mem::take(&mut self.name_pool);
                spare.names = spare::pool_names(&mut processes, &mut keys, pool);
                spare.processes = Some(processes);
            }
            let mut queue = std::mem::take(&mut state.core.queue);
            queue.recycle();
            spare.queue = Some(queue);
        }
        let mut factories = std::mem::take(&mut self.factories);
        factories.clear();
        spare.factories = factories;
        let mut pending = std::mem::take(&mut self.pending_workloads);
        pending.clear();
        spare.pending = pending;
        spare.chaos = self
            .chaos
            .take()
            .map(|(state, violated)| crate::chaos::KeptChaos(state, violated))
            .or_else(|| self.kept_chaos.take());
        spare.keep_shared(
            &self.executor,
            &self.select_rng,
            &self.app_rng,
            &self.workloads_left,
        );
        spare::keep(spare);
    }
}

/// `future` inside `span`; `future` itself when the span is disabled (nobody listens at its
/// level): a task polled through `tracing::Instrumented` enters and leaves its span at every
/// poll, which does nothing for a disabled span but still costs the wrapper on every poll. An
/// enabled span wraps as before, so what a subscriber sees does not change.
pub(crate) fn in_span<T: 'static>(
    future: std::pin::Pin<Box<dyn Future<Output = T> + Send>>,
    span: tracing::Span,
) -> std::pin::Pin<Box<dyn Future<Output = T> + Send>> {
    if span.is_disabled() {
        future
    } else {
        Box::pin(tracing::Instrument::instrument(future, span))
    }
}

/// `ip` parsed, or the setup error naming the process and the bad address.
fn parse_ip(name: &str, ip: &str) -> Result<IpAddr, SimError> {
    ip.parse()
        .map_err(|_| SimError::setup(format!("process '{name}' has an invalid IP address '{ip}'")))
}

struct WorkloadGuard(Arc<AtomicUsize>);

impl Drop for WorkloadGuard {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
