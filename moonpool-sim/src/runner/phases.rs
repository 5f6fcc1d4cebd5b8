//! The phases of one seed, run by the world's `runner` workload: chaos (workloads, fault
//! injectors and swarm surfaces run), settle (faults off, every workload's `run` must finish),
//! check (each workload's `check` verifies the final state).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use moonpool_core::{JoinError, JoinHandle, Providers, TaskProvider, TimeProvider};

use super::chaos::{Attrition, Chaos, attrition, random_partitions};
use super::context::{FaultContext, Member, WorkloadContext, swarm_bit};
use super::spec::{Spec, WorkloadError, WorkloadFn};
use crate::error::SimError;
use crate::kernel::fault::{FaultKind, FaultSet};
use crate::kernel::rng;
use crate::providers::SimProviders;
use crate::world::{ShutdownSignal, StateHandle};

/// Where a seed's first failure is recorded (by the phases, read after the world stops).
pub(super) type FailureSlot = Arc<Mutex<Option<SimError>>>;

/// One workload instance of the seed's world.
pub(super) struct Instance {
    /// Its position in the topology's workloads (the member is read there: a copy of its names
    /// and locality per seed cost five allocations).
    pub(super) member: usize,
    /// Its index in its group.
    pub(super) index: usize,
    pub(super) providers: SimProviders,
    pub(super) run: WorkloadFn,
    pub(super) check: Option<WorkloadFn>,
}

/// What the phases of one seed need.
pub(super) struct Orchestration {
    pub(super) spec: Arc<Spec>,
    pub(super) seed: u64,
    pub(super) instances: Vec<Instance>,
    pub(super) state: StateHandle,
    pub(super) failure: FailureSlot,
    /// The fault kinds of this run: `partitions` and `attrition` outside it inject nothing.
    pub(super) faults: FaultSet,
}

/// A workload's `run`, spawned, with the instance's name.
/// A workload's `run` task, with the instance it belongs to (its index in the plan's instances:
/// its name is looked up only when it fails, so a seed copies no name for it).
type RunningWorkload = (usize, JoinHandle<Result<(), WorkloadError>>);

/// The runner's own view of a seed while its phases run.
struct Orchestrator {
    /// The runner workload's providers.
    providers: SimProviders,
    plan: Orchestration,
    chaos_over: ShutdownSignal,
    /// What [`Orchestrator::member`] answers for an instance outside the topology (not expected).
    missing: Member,
}

/// The phases of one seed: chaos (workloads and injectors run), settle (faults off, workloads
/// finish), check.
pub(super) async fn orchestrate(providers: SimProviders, plan: Orchestration) {
    let run = Orchestrator {
        providers,
        plan,
        chaos_over: ShutdownSignal::default(),
        missing: Member {
            name: String::new(),
            group: String::new(),
            ip: std::net::IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED),
            locality: crate::world::Locality::default(),
        },
    };
    let (mut runs, all_done) = run.start_workloads();
    let injectors = run.start_faults();
    run.chaos_phase(&all_done).await;
    run.end_chaos(&injectors);
    if !run.settle_phase(&mut runs).await || run.failed() {
        return;
    }
    run.check_phase().await;
}

impl Orchestrator {
    /// The topology member of `instance`.
    fn member(&self, instance: &Instance) -> &Member {
        // The runner builds one instance per workload member of this topology.
        match self.plan.spec.topology.workloads.get(instance.member) {
            Some(member) => member,
            None => &self.missing,
        }
    }

    /// Records `error` unless an earlier failure was recorded.
    fn fail(&self, error: SimError) {
        let mut slot = self
            .plan
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if slot.is_none() {
            *slot = Some(error);
        }
    }

    fn failed(&self) -> bool {
        self.plan
            .failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    fn context(&self, instance: &Instance) -> WorkloadContext {
        let member = self.member(instance);
        WorkloadContext {
            providers: instance.providers.clone(),
            name: member.name.clone(),
            index: instance.index,
            ip: member.ip,
            topology: Arc::clone(&self.plan.spec.topology),
            state: self.plan.state.clone(),
            chaos_over: self.chaos_over.clone(),
            seed: self.plan.seed,
        }
    }

    /// Spawns every workload's `run`; the notify fires when the last one returns.
    fn start_workloads(&self) -> (Vec<RunningWorkload>, Arc<tokio::sync::Notify>) {
        let remaining = Arc::new(AtomicUsize::new(self.plan.instances.len()));
        let all_done = Arc::new(tokio::sync::Notify::new());
        let mut runs = Vec::with_capacity(self.plan.instances.len());
        for (index, instance) in self.plan.instances.iter().enumerate() {
            let member = self.member(instance);
            let name = &member.name;
            let body = crate::world::in_span(
                (instance.run)(self.context(instance)),
                workload_span(member),
            );
            let (remaining, all_done) = (Arc::clone(&remaining), Arc::clone(&all_done));
            let handle = instance
                .providers
                .task()
                .spawn_suffixed(name, "::run", async move {
                    let result = body.await;
                    if remaining.fetch_sub(1, Ordering::SeqCst) == 1 {
                        all_done.notify_one();
                    }
                    result
                });
            runs.push((index, handle));
        }
        (runs, all_done)
    }

    /// Spawns the fault injectors, then the swarm surfaces on for this seed.
    fn start_faults(&self) -> Vec<JoinHandle<()>> {
        let (spec, task) = (&self.plan.spec, self.providers.task());
        let fault_ctx = FaultContext {
            providers: self.providers.clone(),
            topology: Arc::clone(&spec.topology),
            chaos_over: self.chaos_over.clone(),
        };
        let mut injectors = Vec::new();
        for injector in &spec.injectors {
            injectors.push(task.spawn(injector.name(), injector.inject(fault_ctx.clone())));
        }
        // The runner's own injectors draw from their fault kind's stream, and a kind outside
        // the run's set still runs its loop (same draws, same sleeps) without injecting, so
        // turning it off moves nothing else of the run until its first fault.
        let own = |kind: FaultKind| {
            let providers = self
                .providers
                .with_random(rng::stream(self.plan.seed, kind.stream()));
            let ctx = FaultContext {
                providers,
                ..fault_ctx.clone()
            };
            (ctx, self.plan.faults.contains(kind))
        };
        let surfaces = spec.chaos.iter().flatten();
        for surface in surfaces.filter(|s| swarm_bit(self.plan.seed, s.family())) {
            match surface {
                Chaos::Partitions => {
                    let (ctx, live) = own(FaultKind::Partitions);
                    injectors.push(task.spawn("random-partitions", random_partitions(ctx, live)));
                }
                Chaos::Attrition(config) => {
                    let config: Arc<Attrition> = Arc::new(config.clone());
                    let (ctx, live) = own(FaultKind::Attrition);
                    injectors.push(task.spawn("attrition", attrition(ctx, config, live)));
                }
                _ => {}
            }
        }
        injectors
    }

    /// Chaos phase: until its duration passes or every workload's run has returned.
    async fn chaos_phase(&self, all_done: &tokio::sync::Notify) {
        if self.plan.instances.is_empty() {
            return;
        }
        let sleep = self.providers.time().sleep(self.plan.spec.chaos_duration);
        moonpool_core::select! {
            biased;
            () = all_done.notified() => {}
            () = sleep => {}
        }
    }

    /// Faults stop: the world leaves chaos, workloads see `chaos_over`, injectors are aborted.
    fn end_chaos(&self, injectors: &[JoinHandle<()>]) {
        self.providers.control().end_chaos();
        self.chaos_over.trigger();
        for injector in injectors {
            injector.abort();
        }
    }

    /// Settle: every run must finish within the settle timeout. Returns `false` if one did not
    /// (the seed has failed and nothing more runs).
    async fn settle_phase(&self, runs: &mut [RunningWorkload]) -> bool {
        let (seed, time) = (self.plan.seed, self.providers.time());
        let deadline = time.now().saturating_add(self.plan.spec.settle_timeout);
        for (index, handle) in runs.iter_mut() {
            let name = self
                .plan
                .instances
                .get(*index)
                .map_or(&self.missing.name, |instance| &self.member(instance).name);
            let left = deadline.saturating_sub(time.now());
            match time.timeout(left, handle).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(error))) => self.fail(SimError::WorkloadFailed {
                    seed,
                    workload: name.clone(),
                    phase: "run".into(),
                    message: error.to_string(),
                }),
                Ok(Err(join)) => self.fail(join_failure(seed, name, "run", &join)),
                Err(_) => {
                    self.fail(self.settle_timeout());
                    return false;
                }
            }
        }
        true
    }

    /// Check: verify the final state, one workload at a time; the first failure ends the phase.
    async fn check_phase(&self) {
        let seed = self.plan.seed;
        for instance in &self.plan.instances {
            let Some(check) = &instance.check else {
                continue;
            };
            let member = self.member(instance);
            let name = &member.name;
            let body = crate::world::in_span(check(self.context(instance)), workload_span(member));
            let handle = instance
                .providers
                .task()
                .spawn_suffixed(name, "::check", body);
            let timeout = self.plan.spec.settle_timeout;
            let error = match self.providers.time().timeout(timeout, handle).await {
                Ok(Ok(Ok(()))) => continue,
                Ok(Ok(Err(error))) => SimError::WorkloadFailed {
                    seed,
                    workload: name.clone(),
                    phase: "check".into(),
                    message: error.to_string(),
                },
                Ok(Err(join)) => join_failure(seed, name, "check", &join),
                Err(_) => self.settle_timeout(),
            };
            self.fail(error);
            return;
        }
    }

    /// The settle timeout passed: names every task still running.
    fn settle_timeout(&self) -> SimError {
        SimError::SettleTimeout {
            seed: self.plan.seed,
            timeout: self.plan.spec.settle_timeout,
            running: stuck_tasks(&self.providers),
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

fn join_failure(seed: u64, workload: &str, phase: &str, error: &JoinError) -> SimError {
    SimError::WorkloadFailed {
        seed,
        workload: workload.to_string(),
        phase: phase.to_string(),
        message: error.to_string(),
    }
}

/// The span of a workload's `run` and `check` (and of the tasks they spawn): its own name and IP,
/// not those of the runner process that starts it.
fn workload_span(member: &super::context::Member) -> tracing::Span {
    tracing::info_span!(parent: None, "workload", name = %member.name, ip = %member.ip)
}
