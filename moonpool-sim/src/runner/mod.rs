//! The simulation runner: [`SimulationBuilder`], iteration control, chaos surfaces, reports.
//!
//! A simulation declares server processes (rebuilt at every boot), workloads (the test drivers,
//! each with a `run` and an optional `check`), invariants, and which faults may fire. Each seed
//! then goes through three phases:
//!
//! 1. **chaos**: workloads run while faults fire, for `chaos_duration` of simulated time or until
//!    every `run` returns;
//! 2. **settle**: faults stop (partitions heal, no new network, disk or clock faults, fault
//!    injectors stop); every `run` must return within `settle_timeout` (liveness);
//! 3. **check**: each workload's `check` verifies the final state.
//!
//! The report aggregates assertions and faults over the seeds and prints a replay command for each
//! failed seed.
//!
//! Environment: `MOONPOOL_SEED` (replay one seed), `MOONPOOL_SHARD=index/count` (run one shard of
//! the seed sequence), `MOONPOOL_JOBS` (worker threads), `MOONPOOL_MAX_SEEDS` (cap the seed count,
//! for CI), `MOONPOOL_CHECK_DETERMINISM=1` (run every seed twice), `MOONPOOL_REPORT=path` (write
//! the JSON report), `MOONPOOL_TRACE_DIR=dir` (write a Chrome trace of every failed seed).

mod builder;
mod chaos;
mod context;
mod environment;
mod iteration;
mod report;
mod trace;
mod validate;

pub use crate::world::StateHandle;
pub use builder::{SimulationBuilder, WorkloadError};
pub use chaos::{Attrition, Chaos, FaultAction, FaultFuture, FaultInjector, ScriptedFaults};
pub use context::{FaultContext, Member, Topology, WorkloadContext};
pub use iteration::IterationControl;
pub use report::{SeedOutcome, SimulationReport};
pub use trace::chrome_trace;
