//! The run loop of a [`SimWorld`]: boot the servers, then drain ready tasks, pop and apply the
//! next event, check the invariants, until every workload has finished or a verdict ends the run.

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use moonpool_core::select::install_offset_source;
use rand_core::Rng;

use super::{ProcessContext, RunSummary, SimWorld};
use crate::chaos::{RunChaos, SimChaos};
use crate::error::SimError;
use crate::executor::{ExecutorError, ProcessId};
use crate::handle::WorldState;
use crate::kernel::Core;
use crate::kernel::clock::install_current_clock;
use crate::kernel::event::{Event, NetworkEvent};
use crate::kernel::process::{ProcessEvent, ProcessRole, RebootKind, ShutdownSignal};
use crate::kernel::timers::Waiter;
use crate::kernel::trace::TraceEntry;
use crate::{network, storage};

/// At most this many events at one instant are applied in a row before the tasks run.
const SAME_INSTANT_BATCH: u32 = 1_024;

/// How many events ahead of the one just applied the run loop prefetches a delivery's half
/// (see `EventQueue::upcoming`).
const PREFETCH_EVENTS_AHEAD: usize = 2;

impl SimWorld {
    /// Runs until every workload has finished; returns the run's figures, or why it failed.
    pub fn run(&mut self) -> Result<RunSummary, SimError> {
        match self.run_summarized(true)? {
            Some(summary) => Ok(summary),
            // Not reached: a summarized run returns its summary.
            None => Ok(self.summary()),
        }
    }

    /// [`run`](Self::run) for a caller that takes the summary itself afterwards (the runner,
    /// with [`take_summary`](Self::take_summary)): the summary of the end of the run, a copy of
    /// the assertion table, the fault counts and the trace, is not made.
    pub(crate) fn run_unsummarized(&mut self) -> Result<(), SimError> {
        self.run_summarized(false).map(drop)
    }

    /// The run; with `summarize`, the summary as the last workload ends.
    fn run_summarized(&mut self, summarize: bool) -> Result<Option<RunSummary>, SimError> {
        // The world's state and its executor's are leased to this thread for the whole run, so
        // the providers, wakers and spawns of its tasks reach them without a lock.
        let handle = self.handle.clone();
        let spawner = self.executor.spawner();
        let (select, app) = (Arc::clone(&self.select_rng), Arc::clone(&self.app_rng));
        // Sleeps made during the run reach the world through the thread's current world.
        let _current = crate::handle::install_current(handle.clone());
        // The same world for the sleeps' deadline checks, with a copy of its clock.
        let _running = crate::kernel::clock::install_running(handle.id(), self.clock.nanos());
        // Foreign wakers found under the world's state wait for the run loop (see `turn`).
        let _deferred = crate::kernel::wakes::defer();
        handle.with_lease(|| {
            spawner
                .with_lease(|| select.with_lease(|| app.with_lease(|| self.run_leased(summarize))))
        })
    }

    fn run_leased(&mut self, summarize: bool) -> Result<Option<RunSummary>, SimError> {
        let select_rng = Arc::clone(&self.select_rng);
        let _select = install_offset_source(move |branches| {
            let mut rng = select_rng.lock();
            #[allow(clippy::cast_possible_truncation)]
            let offset = ((u64::from(rng.next_u32()) * u64::from(branches)) >> 32) as u32;
            offset
        });
        // One list of names for the run, shared by the chaos hooks and the watchdog's probe.
        let names = self.run_names();
        let (hooks, chaos, violated) = SimChaos::new(
            self.seed,
            self.buggify.clone(),
            self.handle.with(|state| state.core.shared_clock.clone()),
            self.executor.spawner(),
            Arc::clone(&names),
            self.splits(),
            self.kept_chaos.take(),
        );
        // The chaos state is leased to this thread too: every buggify call and assertion of the
        // run reaches it without a lock.
        let chaos_state = Arc::clone(&chaos);
        self.handle
            .with(|state| state.chaos = Some(RunChaos::new(Arc::clone(&chaos))));
        self.chaos = Some((chaos, violated));
        let result = chaos_state.with_lease(|| self.run_with_hooks(hooks, names, summarize));
        // The calls counted beside the world's state go into the chaos state's counters before
        // anything reads them; between runs the simulator's own sites ask the hooks again (there
        // are none then).
        if let Some(mut run_chaos) = self.handle.with(|state| state.chaos.take()) {
            run_chaos.flush();
        }
        result
    }

    fn run_with_hooks(
        &mut self,
        hooks: SimChaos,
        names: Arc<[String]>,
        summarize: bool,
    ) -> Result<Option<RunSummary>, SimError> {
        let hooks_guard = moonpool_core::chaos::install_hooks(Box::new(hooks));
        let _clock_guard = install_current_clock(self.handle.with(|s| s.core.shared_clock.clone()));
        let _watch = self.watch(names);
        let _ambient = super::ambient::install(
            self.handle.clone(),
            self.executor.spawner(),
            Arc::clone(&self.app_rng),
        );
        // A recorded story also hears the chaos hooks and the transport's annotations.
        let story = self.handle.with(|state| state.core.story.clone());
        let _story = story.map(|story| {
            let annotator = crate::kernel::story::StoryAnnotator(story.clone());
            (
                crate::kernel::story::install_current(story),
                moonpool_core::annotate::install(Box::new(annotator)),
            )
        });
        // Servers boot before any workload code runs, so that at time zero the cluster is up.
        // In registration order; booting one process changes no other's state (its task is
        // only spawned), so this visits the same servers a list made first would.
        let registered = self.handle.with(|state| state.core.processes.len());
        let handle = self.handle.clone();
        let result = (0..registered)
            .map(Core::id_at)
            .filter(|&id| {
                handle.with(|state| {
                    state
                        .core
                        .process(id)
                        .is_some_and(|p| p.role == ProcessRole::Server && p.generation == 0)
                })
            })
            .try_for_each(|process| self.boot(process))
            .and_then(|()| self.boot_drain())
            .and_then(|()| self.run_loop(summarize));
        // Kill-on-drop: nothing from this run survives into the next one. Futures dropped here may
        // still evaluate assertions, so the hooks stay installed until after.
        self.executor.shutdown();
        drop(hooks_guard);
        result
    }

    /// The boot instant: the booted servers run, and the events they schedule for the current
    /// instant are applied, until nothing more is due at this instant; then the workloads are
    /// spawned. So everything a server does at time zero with zero latencies (open and read its
    /// files, bind its listeners) is done before any workload code runs.
    fn boot_drain(&mut self) -> Result<(), SimError> {
        if self.pending_workloads.is_empty() {
            return Ok(());
        }
        self.run_turns(Turns::BootInstant)?;
        self.start_pending_workloads();
        Ok(())
    }

    fn run_loop(&mut self, summarize: bool) -> Result<Option<RunSummary>, SimError> {
        // A world run again with no workload left and no task at all (its earlier run ended and
        // nothing was added since): nothing can happen, so nothing is done, not even the events
        // left due at the last instant.
        let nothing_to_run =
            self.workloads_left.load(Ordering::SeqCst) == 0 && self.executor.task_count() == 0;
        if nothing_to_run {
            return Ok(summarize.then(|| self.summary()));
        }
        self.run_turns(Turns::UntilWorkloadsEnd)?;
        Ok(summarize.then(|| self.summary()))
    }

    /// Drains ready tasks and applies events, checking invariants after each, until `turns` says
    /// stop: at the end of the boot instant, or when every workload has finished.
    ///
    /// Every event due at the current instant is applied before the tasks it woke run, so the
    /// executor's seeded pick orders those tasks: with faults off, different seeds still give
    /// different executions. (Bytes of one connection keep their order: its deliveries are
    /// applied in the order they were scheduled.) A long run of events at one instant is cut
    /// into batches, so that it cannot starve the tasks.
    fn run_turns(&mut self, turns: Turns) -> Result<(), SimError> {
        let boot_instant = self.now();
        let mut batched = Batch {
            count: 0,
            budget: u64::try_from(self.time_budget.as_nanos()).unwrap_or(u64::MAX),
            world: self.handle.id(),
        };
        // Whether the next event is due at the current instant: asked once here, then told by
        // each turn (which sees the queue while it holds the state anyway).
        let mut next_now = self.next_event_is_now();
        loop {
            let schedule_hash = if batched.count < SAME_INSTANT_BATCH && next_now {
                batched.count += 1;
                0
            } else {
                batched.count = 0;
                let schedule_hash = self.drain()?;
                let stop = match turns {
                    Turns::UntilWorkloadsEnd => self.workloads_left.load(Ordering::SeqCst) == 0,
                    Turns::BootInstant => self.handle.with(|state| {
                        state
                            .core
                            .queue
                            .next_at()
                            .is_none_or(|at| at > boot_instant)
                    }),
                };
                if stop {
                    self.handle
                        .with(|state| state.core.trace.fold(schedule_hash));
                    return Ok(());
                }
                schedule_hash
            };
            next_now = self.turn(schedule_hash, &mut batched)?;
        }
    }

    /// True when an event is due at the current instant and at least one event was applied
    /// already (the first event of a run always follows a drain).
    fn next_event_is_now(&self) -> bool {
        self.handle.with(|state| {
            let core = &state.core;
            core.events > 0
                && u64::try_from(core.now.as_nanos())
                    .is_ok_and(|now| core.queue.next_at_nanos() == Some(now))
        })
    }

    /// One event and the invariants after it (without invariants, the events of this instant
    /// that `batched` still allows: see [`step`](Self::step)); whether the next event is due at
    /// this instant.
    fn turn(&mut self, schedule_hash: u64, batched: &mut Batch) -> Result<bool, SimError> {
        let next_now = match self.step(schedule_hash, batched) {
            Step::Applied { next_now } => next_now,
            Step::Process(event) => {
                self.apply_process_event(event)?;
                self.next_event_is_now()
            }
            Step::Wake(waker) => {
                // A waker that is not a task's own (a combinator's, a test's) runs user code
                // here, outside every task's poll: its panic is this seed's failure.
                self.user_callback(
                    "a waker woken by a timer, a delivery or a disk operation (not a task's own)",
                    || waker.wake(),
                )?;
                self.next_event_is_now()
            }
            Step::Empty if self.wake_deferred()? => self.next_event_is_now(),
            // A task woken from another thread since the last drain: the next drain runs it.
            Step::Empty if self.executor.has_remote_wakes() => self.next_event_is_now(),
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
        };
        self.wake_deferred()?;
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
        Ok(next_now)
    }

    /// Pops the next event and applies it, all under one lock (the hot path of the simulator).
    ///
    /// Without a step hook (no invariants to check between events), the events due at the same
    /// instant that follow are applied here too, under the same lock, exactly as the run loop
    /// would apply them one turn at a time: each folds the schedule hash of an empty drain (0)
    /// first, and `batched` counts them against [`SAME_INSTANT_BATCH`] as the loop does. So the
    /// fingerprint, the order of events and every wake are the same; only the lock, the turn's
    /// return and the loop's checks between two events of one instant are saved.
    fn step(&mut self, schedule_hash: u64, batched: &mut Batch) -> Step {
        let (budget, world) = (batched.budget, batched.world);
        let batch = self.step_hook.is_none();
        let mut state = self.handle.lock();
        let state = &mut *state;
        let mut schedule_hash = schedule_hash;
        loop {
            let core = &mut state.core;
            core.trace.fold(schedule_hash);
            let Some((at, sequence, event)) = core.queue.pop_nanos() else {
                return Step::Empty;
            };
            if at > budget {
                return Step::OverBudget;
            }
            // Events of one instant leave the clock where it is.
            if at != core.shared_clock.nanos() {
                core.set_now_nanos(at);
                crate::kernel::clock::advance_running(world, at);
            }
            core.events += 1;
            // A timer on a path of its own (its fingerprint known here), the rest through one
            // match: the same folds, notes and applications as one match over every event, with
            // one dispatch on the kind instead of two.
            if let Event::Timer(key) = event {
                let (kind, object) = event.fingerprint();
                core.trace.fold(at);
                core.trace.fold(kind);
                core.trace.fold(object);
                if core.trace_log.is_some() || core.story.is_some() {
                    note_event(state, &event, at, sequence, schedule_hash, kind, object);
                }
                match state.timers.fire(key) {
                    Some(Waiter::Task(task)) => self.executor.wake_task(task),
                    // Any other waker is woken without the world's state (by the turn): its
                    // `wake` (or the drop of what it holds, a sleep for one) may reach the world.
                    Some(Waiter::Waker(waker)) => return Step::Wake(waker),
                    None => {}
                }
            } else {
                let (kind, object) = event.fingerprint();
                core.trace.fold(at);
                core.trace.fold(kind);
                core.trace.fold(object);
                if core.trace_log.is_some() || core.story.is_some() {
                    note_event(state, &event, at, sequence, schedule_hash, kind, object);
                }
                match event {
                    Event::Network(event) => {
                        let foreign = network::apply(
                            &mut state.network,
                            &mut state.core,
                            event,
                            &self.executor,
                        );
                        if let Some(waker) = foreign {
                            // A reader's waker that is not a task's own: woken by the turn,
                            // without the world's state, as a timer's.
                            return Step::Wake(waker);
                        }
                    }
                    Event::Storage(event) => match storage::apply(&mut state.storage, event) {
                        Some(Waiter::Task(task)) => self.executor.wake_task(task),
                        // Woken without the world's state, by the turn, as a timer's.
                        Some(Waiter::Waker(waker)) => return Step::Wake(waker),
                        None => {}
                    },
                    Event::Process(event) => return Step::Process(event),
                    Event::Timer(_) => {}
                }
            }
            // Among many connections the half a delivery marks is out of the cache: the one two
            // events ahead starts loading now (nothing is read through the guess).
            if state.network.has_many_halves()
                && let Some(Event::Network(NetworkEvent::Deliver { half, .. })) =
                    state.core.queue.upcoming(PREFETCH_EVENTS_AHEAD)
            {
                state.network.prefetch_half(*half);
            }
            let next_now = state.core.queue.next_at_nanos() == Some(at);
            if !(batch && next_now && batched.count < SAME_INSTANT_BATCH) {
                return Step::Applied { next_now };
            }
            // The run loop's next turn, without leaving the lock: the same count, and the
            // schedule hash of the drain it would skip.
            batched.count += 1;
            schedule_hash = 0;
        }
    }

    /// Wakes the foreign wakers kept since the last call (see `kernel::wakes`), with nothing
    /// held; whether there were any. A panicking one fails the seed.
    #[inline]
    fn wake_deferred(&self) -> Result<bool, SimError> {
        if !crate::kernel::wakes::any_kept() {
            return Ok(false);
        }
        self.wake_kept()
    }

    #[cold]
    #[inline(never)]
    fn wake_kept(&self) -> Result<bool, SimError> {
        let (wakers, drops) = crate::kernel::wakes::take_kept();
        for waker in drops {
            self.user_callback(
                "the drop of a waker a stream or a listener let go of (not a task's own)",
                || drop(waker),
            )?;
        }
        for waker in wakers {
            self.user_callback(
                "a waker woken by the network or a process event (a FIN, a reset, a crash, a \
                 connect, room to write, a shutdown signal; not a task's own)",
                || waker.wake(),
            )?;
        }
        Ok(true)
    }

    /// Runs `f`, code of the user's outside every task's poll (`callback` says what it is): its
    /// panic is this seed's failure.
    fn user_callback(&self, callback: &str, f: impl FnOnce()) -> Result<(), SimError> {
        catch_unwind(AssertUnwindSafe(f)).map_err(|payload| SimError::CallbackPanicked {
            seed: self.seed,
            callback: callback.to_string(),
            now: self.now(),
            message: moonpool_core::task::panic_message(&*payload),
        })
    }

    fn apply_process_event(&mut self, event: ProcessEvent) -> Result<(), SimError> {
        match event {
            ProcessEvent::Stop {
                process,
                kind,
                restart_after,
            } => {
                let restart_after = restart_after.get();
                let stopped = self.handle.with(|state| {
                    let Some(p) = state.core.process_mut(process) else {
                        return false;
                    };
                    if !p.alive || p.role == ProcessRole::Workload {
                        return false;
                    }
                    p.alive = false;
                    let generation = p.generation;
                    state.core.note(|| crate::kernel::story::What::Lifecycle {
                        process: process.0,
                        what: match kind {
                            RebootKind::Graceful => "graceful",
                            RebootKind::Crash => "crash",
                            RebootKind::CrashAndWipe => "wipe",
                        },
                        generation,
                        detail: restart_after.map_or_else(
                            || "no restart".to_string(),
                            |delay| format!("restarts after {delay:?}"),
                        ),
                    });
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
            // A fresh signal for every boot; at the first boot the one made at registration is
            // still fresh (handed to nobody, never requested: a process that never ran cannot
            // be rebooted), so it is kept rather than replaced.
            if p.generation > 0 || p.shutdown.is_requested() {
                p.shutdown = ShutdownSignal::default();
            }
            p.alive = true;
            p.generation += 1;
            p.timer_time = now;
            let booted = (p.name.clone(), p.ip, p.generation, p.shutdown.clone());
            state.core.note(|| crate::kernel::story::What::Lifecycle {
                process: process.0,
                what: if booted.2 == 1 { "boot" } else { "restart" },
                generation: booted.2,
                detail: format!("{} at {}", booted.0, booted.1),
            });
            Some(booted)
        });
        let Some((name, ip, boot, shutdown)) = booted else {
            return Ok(());
        };
        let topology = self.topology();
        let index = topology.index_of(&name).unwrap_or(0);
        let span = tracing::info_span!("process", name = %name, ip = %ip, boot);
        // The task's name is taken before the context takes the process's name; the executor
        // gives it from its recent names (a runner's seeds boot the same names: no copy).
        let task_name = self.executor.task_name(&name, "#main");
        let ctx = ProcessContext {
            providers: self.providers(process),
            name,
            index,
            topology,
            ip,
            boot,
            shutdown,
            state: self.state.clone(),
        };
        let body = catch_unwind(AssertUnwindSafe(|| factory(ctx))).map_err(|payload| {
            let name = task_name.strip_suffix("#main").unwrap_or(&task_name);
            SimError::CallbackPanicked {
                seed: self.seed,
                callback: format!("the factory of process '{name}' (boot {boot})"),
                now: self.now(),
                message: moonpool_core::task::panic_message(&*payload),
            }
        })?;
        let body = super::in_span(body, span);
        self.executor.spawn_detached(Some(process), task_name, body);
        Ok(())
    }

    fn drain(&mut self) -> Result<u64, SimError> {
        let mut schedule_hash = self.drain_tasks()?;
        // Foreign wakers the tasks' polls found under the world's state: woken now, and the
        // tasks they made ready drained too, before the next event.
        while self.wake_deferred()? {
            self.handle
                .with(|state| state.core.trace.fold(schedule_hash));
            schedule_hash = self.drain_tasks()?;
        }
        if let Some((chaos, violated)) = &self.chaos
            && violated.load(Ordering::Relaxed)
        {
            let violation = chaos.lock().table.violation.clone();
            if let Some(violation) = violation {
                return Err(SimError::AssertionFailed {
                    seed: self.seed,
                    violation: Box::new(violation),
                });
            }
        }
        Ok(schedule_hash)
    }

    fn drain_tasks(&mut self) -> Result<u64, SimError> {
        // The poll bound counts polls without the clock advancing, across drains.
        let schedule_hash = match self.executor.run_until_stalled_at(self.clock.nanos()) {
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
            Err(ExecutorError::TaskLimitExceeded(details)) => {
                let crate::executor::TaskLimitExceeded {
                    limit,
                    refused,
                    spawner,
                    most_common,
                } = *details;
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
                message: crate::executor::with_hint(panic.message),
            });
        }
        Ok(schedule_hash)
    }
}

/// Records an applied event in the trace log and the story, when they are kept (out of line:
/// most runs keep neither).
#[cold]
#[inline(never)]
fn note_event(
    state: &mut WorldState,
    event: &Event,
    at: u64,
    sequence: u64,
    schedule_hash: u64,
    kind: u64,
    object: u64,
) {
    if state.core.trace_log.is_some() {
        let (process, peer) = attribute(state, event);
        if let Some(log) = state.core.trace_log.as_mut() {
            log.push(TraceEntry {
                at_nanos: at,
                kind,
                object,
                schedule_hash,
                sequence,
                process,
                peer,
            });
        }
    }
    if let Some(story) = &state.core.story {
        let (process, _) = attribute(state, event);
        story.note(crate::kernel::story::What::Event {
            kind,
            object,
            sequence,
            process,
        });
    }
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

/// The run loop's count of events applied at one instant since the last drain, with what every
/// turn of a run reads: the time budget and the world's id.
struct Batch {
    count: u32,
    /// [`SimWorld::time_budget`] in nanoseconds (`u64::MAX` past it).
    budget: u64,
    world: u64,
}

/// How long [`SimWorld::run_turns`] goes on.
#[derive(Clone, Copy)]
enum Turns {
    /// Until nothing more is due at the instant the turns began (the servers' boot).
    BootInstant,
    /// Until every workload has finished.
    UntilWorkloadsEnd,
}

/// What one step of the event loop did.
enum Step {
    /// Applied; whether the next event is due at the same instant.
    Applied {
        next_now: bool,
    },
    Process(ProcessEvent),
    /// Applied a timer whose waiter is not a task of the world's executor: wake it, then look
    /// at the queue.
    Wake(std::task::Waker),
    Empty,
    OverBudget,
}
