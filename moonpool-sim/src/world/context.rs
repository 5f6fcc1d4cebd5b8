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
    /// Faults that fired, by kind (`buggify` counts fired `buggify!` sites).
    pub fault_kinds: BTreeMap<crate::kernel::fault::FaultKind, u64>,
    /// What every assertion site observed in this run.
    pub assertions: AssertionTable,
    /// Every processed event, when [`WorldConfig::record_trace`] is on (empty otherwise).
    pub trace: Vec<TraceEntry>,
}
