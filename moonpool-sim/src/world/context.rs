//! What a process body receives at boot, the hook called after every event, and the figures of
//! a finished run.

use std::collections::BTreeMap;
use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use crate::chaos::AssertionTable;
use crate::kernel::process::ShutdownSignal;
use crate::kernel::state::StateHandle;
use crate::kernel::trace::TraceEntry;
use crate::providers::SimProviders;
use crate::world::Topology;

/// Called after every event; an `Err((name, message))` fails the run at that event.
pub type StepHook = Box<dyn FnMut() -> Result<(), (String, String)> + Send>;

/// A boxed process body.
pub type ProcessFuture = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Builds a process's body at every boot.
pub type ProcessFactory = Arc<dyn Fn(ProcessContext) -> ProcessFuture + Send + Sync + 'static>;

/// What a process body receives at boot.
///
/// The body is built again at every boot. When it returns, the process stays up and the tasks
/// it spawned keep running (a body may spawn its listeners and return); nothing reboots it. A
/// panic in the body fails the seed. A crash or reboot drops every task of the process and
/// calls the factory again with `boot` one higher.
#[derive(Clone)]
#[non_exhaustive]
pub struct ProcessContext {
    /// The process's providers (its IP, its disk, its drifting clock).
    pub providers: SimProviders,
    /// The process's name, e.g. `replica-1`.
    pub name: String,
    /// Its index among the processes of its group (`replica-1` is 1), as in `WorkloadContext`;
    /// 0 for a process added to a [`SimWorld`](crate::SimWorld) directly.
    pub index: usize,
    /// Everyone's names, groups, IPs and localities: find a peer with
    /// [`Topology::ip_of`](crate::Topology::ip_of) instead of counting IPs.
    pub topology: Arc<Topology>,
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
#[non_exhaustive]
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
    /// Faults that fired, by kind (`buggify` counts fired `buggify!` sites).
    pub fault_kinds: BTreeMap<crate::kernel::fault::FaultKind, u64>,
    /// What every assertion site observed in this run.
    pub assertions: AssertionTable,
    /// Every processed event, when [`WorldConfig::record_trace`](crate::WorldConfig::record_trace) is on (empty otherwise).
    pub trace: Vec<TraceEntry>,
}
