//! One seed's life: its configuration (swarm choices applied), its world (processes, workload
//! processes, invariants, the phase orchestrator), its run, and the determinism check that runs
//! it twice (the second run in a forked child, see [`fork`](super::fork)).

use std::sync::{Arc, PoisonError};
use std::time::Duration;

use super::context::swarm_bit;
use super::phases::{FailureSlot, Instance, Orchestration, orchestrate};
use super::report::failure_text;
use super::spec::Spec;
use crate::chaos::BuggifyConfig;
use crate::error::SimError;
use crate::kernel::fault::FaultSet;
use crate::time::ClockConfiguration;
use crate::world::StateHandle;
use crate::world::{RunSummary, SimWorld, TraceEntry, WorldConfig};

/// The runner's own workload process's address in every seed's world (10.255.255.254).
const RUNNER_IP: std::net::IpAddr =
    std::net::IpAddr::V4(std::net::Ipv4Addr::new(10, 255, 255, 254));

/// What one run of a seed gives: its summary (if its world was built) and its failure (if any).
pub(super) type SeedRun = (Option<RunSummary>, Option<SimError>);

/// One seed: builds the world, runs the phases, returns the summary or the failure (with the
/// trace recorded so far).
pub(super) fn run_seed(spec: &Arc<Spec>, seed: u64, record_trace: bool) -> SeedRun {
    if let Some(exploration) = &spec.explore {
        exploration.begin_tree(seed);
    }
    let run = guarded(spec, seed, spec.faults, record_trace);
    if let Some(exploration) = &spec.explore {
        // In a child timeline of an exploration, the process ends here.
        exploration.end_timeline(seed, run.0.as_ref(), run.1.as_ref());
    }
    run
}

/// One seed with only the fault kinds in `faults` (shrinking; never explored).
pub(super) fn run_seed_with_faults(
    spec: &Arc<Spec>,
    seed: u64,
    faults: FaultSet,
    record_trace: bool,
) -> SeedRun {
    guarded(spec, seed, faults, record_trace)
}

fn guarded(spec: &Arc<Spec>, seed: u64, faults: FaultSet, record_trace: bool) -> SeedRun {
    // Whatever panics outside the tasks (a user callback the world does not guard, the runner's
    // own code) fails this seed, named, instead of unwinding through the worker thread.
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        run_seed_unguarded(spec, seed, faults, record_trace)
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
    faults: FaultSet,
    record_trace: bool,
) -> SeedRun {
    let mut config = resolve_config_with(spec, seed, faults);
    config.record_trace = record_trace;
    match build_world_with(spec, seed, config, faults) {
        Ok((mut world, failure)) => {
            world.set_replay_command(super::shrink::replay_command(spec, seed, faults));
            if let Some(limit) = spec.stall_limit {
                world.set_resolved_stall_limit(limit);
            }
            if let Some(recipe) = spec.recipe.as_ref().filter(|r| r.seed == seed) {
                world.set_reseed_plan(recipe.reseeds());
            }
            if let Some(exploration) = &spec.explore {
                exploration.install(&mut world);
            }
            let result = world.run_unsummarized();
            let summary = world.take_summary();
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
pub(super) fn build_world(
    spec: &Arc<Spec>,
    seed: u64,
    config: WorldConfig,
) -> Result<(SimWorld, FailureSlot), SimError> {
    build_world_with(spec, seed, config, spec.faults)
}

/// [`build_world`] with the runner's injectors restricted to `faults`.
fn build_world_with(
    spec: &Arc<Spec>,
    seed: u64,
    config: WorldConfig,
    faults: FaultSet,
) -> Result<(SimWorld, FailureSlot), SimError> {
    let mut world = SimWorld::with_config(seed, config)?;
    world.set_topology(Arc::clone(&spec.topology));
    add_processes(&mut world, spec)?;
    let instances = add_workload_processes(&mut world, spec)?;
    let state = world.state();
    add_invariants(&mut world, spec, &state);
    let failure = FailureSlot::default();
    let plan = Orchestration {
        spec: Arc::clone(spec),
        seed,
        instances,
        state,
        failure: Arc::clone(&failure),
        faults,
    };
    world.set_expected_names(Arc::clone(&spec.process_names));
    world.add_workload_at(super::spec::RUNNER_PROCESS, RUNNER_IP, move |providers| {
        orchestrate(providers, plan)
    })?;
    Ok((world, failure))
}

/// The server processes, one per topology member, in declaration order.
fn add_processes(world: &mut SimWorld, spec: &Spec) -> Result<(), SimError> {
    let groups = spec
        .processes
        .iter()
        .flat_map(|g| std::iter::repeat_n(g, g.count));
    for (member, group) in spec.topology.processes.iter().zip(groups) {
        world.add_process_factory_at(
            &member.name,
            member.ip,
            &member.locality,
            Arc::clone(&group.factory),
        )?;
    }
    Ok(())
}

/// The workload processes, one per topology member; their `run`s start with the chaos phase.
fn add_workload_processes(world: &mut SimWorld, spec: &Spec) -> Result<Vec<Instance>, SimError> {
    let mut instances = Vec::with_capacity(spec.topology.workloads.len());
    let groups = spec
        .workloads
        .iter()
        .flat_map(|g| (0..g.count).map(move |i| (g, i)));
    for (position, (member, (group, index))) in
        spec.topology.workloads.iter().zip(groups).enumerate()
    {
        let id = world.add_workload_process_at(&member.name, member.ip)?;
        instances.push(Instance {
            member: position,
            index,
            providers: world.providers(id),
            run: Arc::clone(&group.run),
            check: group.check.clone(),
        });
    }
    Ok(instances)
}

/// The invariants, checked after every event (none installed if there are none).
fn add_invariants(world: &mut SimWorld, spec: &Spec, state: &StateHandle) {
    if spec.invariants.is_empty() {
        return;
    }
    let invariants = spec.invariants.clone();
    let shared = state.clone();
    world.set_step_hook(Box::new(move || {
        for (name, check) in &invariants {
            // A panicking invariant fails the seed at this event, named, like a violated one.
            let verdict = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| check(&shared)))
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

/// The per-seed configuration: the builder's, with swarm choices applied and the fault kinds
/// outside the spec's set off.
pub(super) fn resolve_config(spec: &Spec, seed: u64) -> WorldConfig {
    resolve_config_with(spec, seed, spec.faults)
}

/// [`resolve_config`] with only the fault kinds in `faults`. The swarm's choices are made first,
/// from the seed alone, so a mask changes nothing but the kinds it turns off.
pub(super) fn resolve_config_with(spec: &Spec, seed: u64, faults: FaultSet) -> WorldConfig {
    swarm_config(spec, seed).with_fault_kinds(faults)
}

/// The builder's configuration with the swarm's choices for `seed`: a family on for the seed
/// perturbs the user's own configuration (its latencies kept, its zero faults left off), a
/// family off turns its faults off.
fn swarm_config(spec: &Spec, seed: u64) -> WorldConfig {
    let mut config = spec.config.clone();
    let Some(surfaces) = &spec.chaos else {
        return config;
    };
    let on =
        |family: &str| surfaces.iter().any(|c| c.family() == family) && swarm_bit(seed, family);
    config.network = if on("network") {
        config.network.perturbed_for_seed(seed)
    } else {
        config.network.without_faults()
    };
    config.storage = if on("storage") {
        config.storage.perturbed_for_seed(seed)
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

/// Runs a seed twice with event traces and compares them. The second run is made in a child
/// process forked before the first (see [`fork`](super::fork)), so state the user's closures
/// capture cannot leak from one run into the other; without a child, it runs here after the first.
pub(super) fn run_twice(spec: &Arc<Spec>, seed: u64) -> SeedRun {
    let child = || {
        let (summary, error) = run_seed(spec, seed, true);
        super::fork::ChildRun {
            trace: summary.map(|s| s.trace).unwrap_or_default(),
            failure: error.as_ref().map(failure_text),
        }
    };
    let ((mut first, first_error), second) =
        super::fork::run_both(child, || run_seed(spec, seed, true));
    let second = second.unwrap_or_else(|why| {
        tracing::warn!(seed, %why, "determinism check: no forked child; second run in-process");
        child()
    });
    let a = first
        .as_mut()
        .map(|s| std::mem::take(&mut s.trace))
        .unwrap_or_default();
    let first_failure = first_error.as_ref().map(failure_text);
    let Some(index) = divergence(&a, &second.trace, &first_failure, &second.failure) else {
        return (first, first_error);
    };
    let error = SimError::Nondeterministic {
        seed,
        index,
        first: describe_divergence(a.get(index), &first_failure),
        second: describe_divergence(second.trace.get(index), &second.failure),
    };
    (first, Some(error))
}

/// The index of the first event where two runs differ; the length of the second trace when the
/// events are the same but the verdicts are not (the difference is outside the trace).
fn divergence(
    a: &[TraceEntry],
    b: &[TraceEntry],
    first_failure: &Option<String>,
    second_failure: &Option<String>,
) -> Option<usize> {
    match (0..a.len().max(b.len())).find(|i| a.get(*i) != b.get(*i)) {
        Some(index) => Some(index),
        None if first_failure != second_failure => Some(b.len()),
        None => None,
    }
}

/// One side of a divergence: the event there (or the end of the run) and that run's verdict.
fn describe_divergence(entry: Option<&TraceEntry>, failure: &Option<String>) -> String {
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
}
