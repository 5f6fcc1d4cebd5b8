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
//! Before the first seed, `run` refuses a declaration that cannot run as written (a probability
//! outside `[0, 1]`, an attrition range upside down, two groups with one name, no workloads, a
//! zero settle timeout, ...) and outputs that cannot be written, each with an error naming the
//! field or variable and the value.
//!
//! Environment, parsed strictly (a value that is not exactly what the variable accepts is an
//! error, never a silent default): `MOONPOOL_SEED` (replay one seed), `MOONPOOL_SHARD=index/count`
//! (run one shard of the seed sequence), `MOONPOOL_JOBS` (worker threads, 1 to 256),
//! `MOONPOOL_MAX_SEEDS` (cap the seed count, for CI), `MOONPOOL_CHECK_DETERMINISM` (`1`, `true`,
//! `on`, `yes` run every seed twice; `0`, `false`, `off`, `no` do not), `MOONPOOL_REPORT=path`
//! (write the JSON report; checked writable before the first seed; if the final write fails the
//! report goes to a file in the temporary directory, named on stderr), `MOONPOOL_TRACE_DIR=dir`
//! (write a Chrome trace of every failed seed; created and checked before the first seed), and
//! the watchdog's `MOONPOOL_WATCHDOG_SECS` and `MOONPOOL_MEMORY_LIMIT_MB`.
//!
//! The determinism check runs each seed's second run in a child process forked before the
//! first (Unix), so state captured by the simulation's closures is the same in both runs; see
//! `docs/guides/diagnosing-failures.md` in the repository for what each failure means.

mod builder;
mod chaos;
mod context;
mod environment;
mod fork;
mod iteration;
mod report;
mod trace;
mod validate;

pub use crate::world::StateHandle;
pub use builder::{SimulationBuilder, WorkloadError};
pub use chaos::{Attrition, Chaos, FaultAction, FaultFuture, FaultInjector, ScriptedFaults};
pub use context::{FaultContext, Member, Topology, WorkloadContext};
pub use iteration::IterationControl;
pub use report::{MergeError, SeedOutcome, ShardInfo, SimulationReport};
pub use trace::chrome_trace;
