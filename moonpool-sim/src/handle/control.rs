//! [`WorldControl`]: fault injection and inspection from inside a run.

use std::time::Duration;

use super::WorldHandle;
use crate::error::SimError;
use crate::executor::ProcessId;
use crate::kernel::Core;
use crate::kernel::clock::ClockConfiguration;
use crate::kernel::event::Event;
use crate::kernel::process::{Locality, ProcessEvent, ProcessRole, RebootKind};

/// A cheap, cloneable handle on a running world for workloads and fault injectors: reboot and
/// crash processes, partition and clog the network, read the clock and the fault counters.
#[derive(Clone)]
pub struct WorldControl {
    pub(crate) handle: WorldHandle,
}

impl WorldControl {
    pub(crate) fn new(handle: WorldHandle) -> Self {
        Self { handle }
    }

    /// Current simulated time.
    pub fn now(&self) -> Duration {
        self.handle.with(|state| state.core.now)
    }

    /// The seed of this world.
    pub fn seed(&self) -> u64 {
        self.handle.with(|state| state.core.seed)
    }

    /// The process named `name`.
    pub fn process(&self, name: &str) -> Result<ProcessId, SimError> {
        self.handle.with(|state| {
            state
                .core
                .processes
                .iter()
                .position(|p| p.name == name)
                .map(Core::id_at)
                .ok_or_else(|| SimError::setup(format!("no process is named '{name}'")))
        })
    }

    /// Names of the processes, in creation order.
    pub fn process_names(&self) -> Vec<String> {
        self.handle.with(|state| {
            state
                .core
                .processes
                .iter()
                .map(|p| p.name.clone())
                .collect()
        })
    }

    /// True when the process is up.
    pub fn is_alive(&self, process: ProcessId) -> bool {
        self.handle.with(|state| state.core.is_alive(process))
    }

    /// True when the process was asked to shut down gracefully and has not stopped yet.
    pub fn is_stopping(&self, process: ProcessId) -> bool {
        self.handle.with(|state| {
            state
                .core
                .process(process)
                .is_some_and(|p| p.alive && p.shutdown.is_requested())
        })
    }

    /// Takes `process` down by `kind`, restarting it `restart_after` later (never, if `None`).
    ///
    /// A graceful reboot fires the process's shutdown signal now and stops it after the grace
    /// period; a crash stops it at once.
    pub fn reboot(&self, process: ProcessId, kind: RebootKind, restart_after: Option<Duration>) {
        self.handle.with(|state| {
            let core = &mut state.core;
            let Some(p) = core.process(process) else {
                return;
            };
            if !p.alive {
                return;
            }
            let delay = if kind == RebootKind::Graceful {
                p.shutdown.trigger();
                core.grace
            } else {
                Duration::ZERO
            };
            core.schedule(
                delay,
                Event::Process(ProcessEvent::Stop {
                    process,
                    kind,
                    restart_after: crate::kernel::process::RestartAfter::new(restart_after),
                }),
            );
        });
    }

    /// Takes down every process on `machine` at once (a correlated failure).
    pub fn reboot_machine(&self, machine: &str, kind: RebootKind, restart_after: Option<Duration>) {
        for process in self.processes_where(|l| l.machine == machine) {
            self.reboot(process, kind, restart_after);
        }
    }

    /// Takes down every process in `zone` at once.
    pub fn reboot_zone(&self, zone: &str, kind: RebootKind, restart_after: Option<Duration>) {
        for process in self.processes_where(|l| l.zone == zone) {
            self.reboot(process, kind, restart_after);
        }
    }

    /// Takes down every process in `datacenter` at once.
    pub fn reboot_datacenter(
        &self,
        datacenter: &str,
        kind: RebootKind,
        restart_after: Option<Duration>,
    ) {
        for process in self.processes_where(|l| l.datacenter == datacenter) {
            self.reboot(process, kind, restart_after);
        }
    }

    fn processes_where(&self, select: impl Fn(&Locality) -> bool) -> Vec<ProcessId> {
        self.handle.with(|state| {
            state
                .core
                .processes
                .iter()
                .enumerate()
                .filter(|(_, p)| p.role == ProcessRole::Server && select(&p.locality))
                .map(|(index, _)| Core::id_at(index))
                .collect()
        })
    }

    /// Ends the chaos phase: from now on no new network, storage or clock fault fires, partitions
    /// and pair clogs are healed; latencies stay. Processes already down stay down until their
    /// scheduled restart; existing black-holed connections and failed disks stay as they are.
    pub fn end_chaos(&self) {
        self.handle.with(|state| {
            state
                .network
                .set_config(state.network.config.without_faults());
            state.network.heal_all();
            state.storage.config = state.storage.config.without_faults();
            state.core.clock = ClockConfiguration::disabled();
        });
    }

    /// Records that a fault of `kind` fired (the runner's injectors; see `Core::mark`).
    pub(crate) fn mark_fault(&self, kind: crate::kernel::fault::FaultKind) {
        self.handle.with(|state| state.core.mark(kind));
    }

    /// How many times each fault kind has fired so far.
    pub fn faults(&self) -> std::collections::BTreeMap<&'static str, u64> {
        self.handle.with(|state| state.core.faults.clone())
    }
}
