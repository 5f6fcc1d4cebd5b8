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
//! error, never a silent default): `MOONPOOL_SEED` (replay one seed), `MOONPOOL_RECIPE` (replay
//! one timeline of an exploration, in one process), `MOONPOOL_SHARD=index/count`
//! (run one shard of the seed sequence), `MOONPOOL_JOBS` (worker threads, 1 to 256),
//! `MOONPOOL_MAX_SEEDS` (cap the seed count, for CI), `MOONPOOL_CHECK_DETERMINISM` (`1`, `true`,
//! `on`, `yes` run every seed twice; `0`, `false`, `off`, `no` do not), `MOONPOOL_REPORT=path`
//! (write the JSON report; checked writable before the first seed; if the final write fails the
//! report goes to a file in the temporary directory, named on stderr), `MOONPOOL_TRACE_DIR=dir`
//! (write a Chrome trace of every failed seed; created and checked before the first seed),
//! `MOONPOOL_FAULTS` (the fault kinds seeds may inject, narrowing
//! [`SimulationBuilder::faults`]; the replay of a shrunk seed sets it), `MOONPOOL_SHRINK`
//! (`off`, `first`, `all`: which failing seeds are shrunk), and the watchdog's
//! `MOONPOOL_WATCHDOG_SECS` and `MOONPOOL_MEMORY_LIMIT_MB`.
//!
//! The determinism check runs each seed's second run in a child process forked before the
//! first (Unix), so state captured by the simulation's closures is the same in both runs; see
//! `docs/guides/diagnosing-failures.md` in the repository for what each failure means.
//!
//! Exploration ([`SimulationBuilder::explore`], feature `explorer`, Linux and macOS) splits each
//! root seed's run at its discoveries into child timelines, in child processes, with the
//! world's random streams reseeded in each; every bug it finds has a [`Recipe`] and a replay
//! command (`MOONPOOL_RECIPE=...`) that runs that timeline in one process.
//!
//! # Code map
//!
//! A run flows `builder` -> `run` -> `schedule` -> `seed` -> `phases`: each file calls only the
//! ones after it in that chain (`run` and `plan` read the builder's fields), plus side files;
//! the side files call nothing in the chain, but for `outputs`, which re-runs a failed seed
//! (`seed`) for its trace.
//!
//! - `builder.rs`: the [`SimulationBuilder`] type and its setters (the declaration);
//! - `run.rs`: `run` step by step: environment, validation, seed plan, scheduler, and the report
//!   assembled seed by seed;
//! - `plan.rs`: the seed plan: seed sequence, shard, caps, minimum seeds, stop control;
//! - `schedule.rs`: the seed scheduler: worker threads, a window ahead of the results consumed,
//!   results handed on in seed order;
//! - `seed.rs`: one seed's life: its per-seed (swarm) configuration, its world, its run (with a
//!   recipe's reseeds, or explored), and the determinism check's double run (with `fork.rs`, the
//!   forked child);
//! - `phases.rs`: the chaos, settle and check phases, run inside the world;
//! - `spec.rs`: what every seed shares, read-only: the declaration and its topology.
//!
//! At the side: `environment.rs` (the `MOONPOOL_*` variables), `delivery.rs` (output checks
//! before the first seed, the report file written at the end), `validate.rs` (setup mistakes),
//! `iteration.rs` (when to stop), `report.rs` (the report, a failure's text), `report_merge.rs`
//! (shard merges), `report_coverage.rs` (the site catalog against the run: scope, unreached
//! sites, buggify sites), `report_display.rs` (the report as a table), `outputs.rs` (progress line,
//! Chrome traces of failed seeds), `trace.rs` (the Chrome trace format), `replay.rs` (the
//! default replay command), `chaos.rs` (swarm surfaces, attrition, fault injectors),
//! `context.rs` (what workloads and fault injectors see), `explore.rs` (exploration mode: the
//! explorer's hooks in each world, the children's statistics and bugs into the report),
//! `recipe.rs` (a recipe's one-line form and replay command), `shrink.rs` (which fault kinds a
//! failed seed needs: re-runs with kinds turned off), `report_failure.rs` (a failure's kind,
//! site, fault kinds fired and shrink result, in the report and its JSON).

mod builder;
mod chaos;
mod context;
mod delivery;
mod environment;
mod explore;
mod fork;
mod iteration;
mod outputs;
mod phases;
mod plan;
mod recipe;
mod replay;
mod report;
mod report_coverage;
mod report_display;
mod report_failure;
mod report_merge;
mod run;
mod schedule;
mod seed;
mod shrink;
mod spec;
mod trace;
mod validate;

pub use crate::world::StateHandle;
pub use builder::SimulationBuilder;
pub use chaos::{Attrition, Chaos, FaultAction, FaultFuture, FaultInjector, ScriptedFaults};
pub use context::{FaultContext, Member, Topology, WorkloadContext};
#[cfg(feature = "explorer")]
pub use explore::ExplorationConfig;
pub use iteration::IterationControl;
pub use recipe::{Recipe, RecipeError, RecipeStep};
pub use report::{
    EXPLORED_BUGS_LISTED, ExplorationSummary, ExploredBug, SeedOutcome, ShardInfo, SimulationReport,
};
pub use report_coverage::{CoverageReport, IdleBuggifySite, UnreachedSite};
pub use report_failure::{FailureInfo, FailureKind, ShrinkOutcome};
pub use report_merge::MergeError;
pub use shrink::ShrinkMode;
pub use spec::WorkloadError;
pub use trace::{
    DEFAULT_TRACE_MAX_BYTES, TraceCheck, TraceLimits, check_chrome_trace, chrome_trace,
};
