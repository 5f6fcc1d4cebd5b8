//! [`Spec`]: what a simulation declares, shared read-only by every seed, and the topology that
//! places its processes and workloads on IPs and failure domains.

use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use super::chaos::{Chaos, FaultInjector};
use super::context::{Member, Topology, WorkloadContext};
use super::explore::Exploration;
use super::recipe::Recipe;
use crate::error::SimError;
use crate::kernel::fault::FaultSet;
use crate::world::StateHandle;
use crate::world::{Locality, ProcessFactory, WorldConfig};

/// The error a workload's `run` or `check` may return.
pub type WorkloadError = Box<dyn std::error::Error + Send + Sync>;

/// The future of a workload's `run` or `check`.
pub(super) type WorkloadFuture =
    Pin<Box<dyn Future<Output = Result<(), WorkloadError>> + Send + 'static>>;
/// A workload's `run` or `check`, as declared.
pub(super) type WorkloadFn = Arc<dyn Fn(WorkloadContext) -> WorkloadFuture + Send + Sync + 'static>;
/// An invariant over the shared state.
pub(super) type InvariantFn =
    Arc<dyn Fn(&StateHandle) -> Result<(), String> + Send + Sync + 'static>;

/// `count` server processes built by `factory`.
pub(super) struct ProcessGroup {
    pub(super) name: String,
    pub(super) count: usize,
    pub(super) factory: ProcessFactory,
}

/// `count` workload instances sharing a `run` and an optional `check`.
pub(super) struct WorkloadGroup {
    pub(super) name: String,
    pub(super) count: usize,
    pub(super) run: WorkloadFn,
    pub(super) check: Option<WorkloadFn>,
}

/// Everything a seed needs, shared read-only by the worker threads.
pub(super) struct Spec {
    pub(super) processes: Vec<ProcessGroup>,
    pub(super) workloads: Vec<WorkloadGroup>,
    pub(super) invariants: Vec<(String, InvariantFn)>,
    pub(super) injectors: Vec<Arc<dyn FaultInjector>>,
    pub(super) config: WorldConfig,
    pub(super) chaos: Option<Vec<Chaos>>,
    pub(super) chaos_duration: Duration,
    pub(super) settle_timeout: Duration,
    pub(super) topology: Arc<Topology>,
    /// The replay command template (`{seed}` stands for the seed).
    pub(super) replay: String,
    /// The recipe replayed, if any: its root seed's world reseeds at its split points.
    pub(super) recipe: Option<Recipe>,
    /// The exploration, when the run explores.
    pub(super) explore: Option<Arc<Exploration>>,
    /// The fault kinds seeds may inject (the builder's, narrowed by `MOONPOOL_FAULTS`).
    pub(super) faults: FaultSet,
    /// Which failing seeds are shrunk, and within what budget.
    pub(super) shrink: super::shrink::ShrinkPolicy,
    /// The watchdog's stall limit of every seed's world, `MOONPOOL_WATCHDOG_SECS` read once for
    /// the run (a read per seed takes the environment's lock, which every worker shares); `None`
    /// when the variable's value is bad, so that each world reads and reports it as before.
    pub(super) stall_limit: Option<Option<Duration>>,
    /// The names of a seed's processes in the order its world registers them (servers, workload
    /// processes, then the runner's own), shared by its runs (see `SimWorld::set_expected_names`).
    pub(super) process_names: Arc<[String]>,
}

/// The names [`Spec::process_names`] holds for `topology`.
pub(super) fn registered_names(topology: &Topology) -> Arc<[String]> {
    topology
        .processes
        .iter()
        .chain(&topology.workloads)
        .map(|member| member.name.clone())
        .chain(std::iter::once(RUNNER_PROCESS.to_string()))
        .collect()
}

/// The name of the runner's own workload process in every seed's world.
pub(super) const RUNNER_PROCESS: &str = "runner";

/// Places the declared processes and workloads: servers get `10.0.x.y` and are spread
/// round-robin over `shape` = (datacenters, zones per datacenter, machines per zone; 0 machines:
/// one machine per process); workloads get `10.1.x.y` and no locality.
impl Spec {
    /// A copy for one worker thread: the same declaration, with every shared part a seed takes a
    /// reference to (the topology, each factory, workload and invariant) behind a reference count
    /// of the worker's own. A seed clones and drops those references a dozen times; with one count
    /// for every worker, each of those was an atomic write to a cache line the other workers write
    /// too. The exploration stays shared: it is the whole run's.
    pub(super) fn for_worker(&self) -> Spec {
        Spec {
            processes: self
                .processes
                .iter()
                .map(|group| {
                    let shared = Arc::clone(&group.factory);
                    let factory: ProcessFactory = Arc::new(move |ctx| shared(ctx));
                    ProcessGroup {
                        name: group.name.clone(),
                        count: group.count,
                        factory,
                    }
                })
                .collect(),
            workloads: self
                .workloads
                .iter()
                .map(|group| WorkloadGroup {
                    name: group.name.clone(),
                    count: group.count,
                    run: own_workload_fn(&group.run),
                    check: group.check.as_ref().map(own_workload_fn),
                })
                .collect(),
            invariants: self
                .invariants
                .iter()
                .map(|(name, check)| {
                    let shared = Arc::clone(check);
                    let own: InvariantFn = Arc::new(move |state| shared(state));
                    (name.clone(), own)
                })
                .collect(),
            injectors: self.injectors.clone(),
            config: self.config.clone(),
            chaos: self.chaos.clone(),
            chaos_duration: self.chaos_duration,
            settle_timeout: self.settle_timeout,
            topology: Arc::new((*self.topology).clone()),
            process_names: self.process_names.iter().cloned().collect(),
            replay: self.replay.clone(),
            recipe: self.recipe.clone(),
            explore: self.explore.clone(),
            faults: self.faults,
            shrink: self.shrink,
            stall_limit: self.stall_limit,
        }
    }
}

/// `run` behind a reference count of its own (see [`Spec::for_worker`]).
fn own_workload_fn(run: &WorkloadFn) -> WorkloadFn {
    let shared = Arc::clone(run);
    Arc::new(move |ctx| shared(ctx))
}

pub(super) fn build_topology(
    processes: &[ProcessGroup],
    workloads: &[WorkloadGroup],
    shape: (usize, usize, usize),
) -> Result<Topology, SimError> {
    let mut topology = Topology::default();
    let (dcs, zones, machines) = shape;
    let mut process_index = 0usize;
    for group in processes {
        for i in 0..group.count {
            let slot = process_index;
            process_index += 1;
            // Products too large for a usize count as "more machines than there are slots":
            // every slot then gets a machine of its own.
            let per_dc = zones.saturating_mul(machines).max(1);
            let (dcs, zones) = (dcs.max(1), zones.max(1));
            let (machine, dc, zone) = match std::num::NonZeroUsize::new(machines) {
                None => (slot, slot % dcs, (slot / dcs) % zones),
                Some(machines) => {
                    let machine = slot % per_dc.saturating_mul(dcs);
                    (machine, machine / per_dc, (machine / machines) % zones)
                }
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
    for group in workloads {
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
