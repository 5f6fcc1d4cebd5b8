//! # moonpool-sim
//!
//! Moonpool's deterministic simulator: one thread runs a whole cluster while its network, disks
//! and clocks misbehave on purpose, and everything that happens is a function of the seed.
//!
//! ```
//! use std::time::Duration;
//! use moonpool_core::{NetworkProvider, Providers, TcpListener, TimeProvider};
//! use moonpool_sim::{Locality, SimWorld, WorldConfig};
//! use tokio::io::{AsyncReadExt, AsyncWriteExt};
//!
//! let mut world = SimWorld::with_config(42, WorldConfig::quiet()).unwrap();
//! world.add_process("server", "10.0.0.1", Locality::default(), |ctx| async move {
//!     let Ok(listener) = ctx.providers.network().bind("10.0.0.1:4500").await else { return };
//!     while let Ok((mut stream, _peer)) = listener.accept().await {
//!         let mut byte = [0u8; 1];
//!         if stream.read_exact(&mut byte).await.is_ok() {
//!             let _ = stream.write_all(&byte).await;
//!         }
//!     }
//! }).unwrap();
//! world.add_workload("client", "10.0.0.2", |providers| async move {
//!     providers.time().sleep(Duration::from_millis(1)).await;
//!     let mut stream = providers.network().connect("10.0.0.1:4500").await.unwrap();
//!     stream.write_all(b"x").await.unwrap();
//!     let mut reply = [0u8; 1];
//!     stream.read_exact(&mut reply).await.unwrap();
//!     assert_eq!(&reply, b"x");
//! }).unwrap();
//! let summary = world.run().unwrap();
//! println!("fingerprint {:016x} after {:?} simulated", summary.fingerprint, summary.sim_time);
//! ```
//!
//! ## Map
//! - [`executor`]: the seeded single-threaded executor (which ready task runs next is a seeded
//!   random pick, so seeds explore interleavings).
//! - [`world`]: [`SimWorld`], the event loop, processes and failure domains, [`WorldControl`].
//! - [`network`]: the simulated TCP network and its fault catalog.
//! - [`storage`]: the simulated disks and their fault catalog.
//! - [`time`]: simulated clocks with drift and buggified sleeps.
//! - [`chaos`]: per-seed `buggify!` decisions and the assertion table behind the assertion macros
//!   of `moonpool_core::chaos`.
//! - [`SimProviders`]: the provider bundle of one simulated process.
//! - [`runner`]: [`SimulationBuilder`], iteration control, swarm chaos, attrition, invariants,
//!   exploration (feature `explorer`: fork-based, Linux and macOS) and recipe replay, and the
//!   [`SimulationReport`].
//!
//! No Tokio runtime runs inside a simulation; the crate uses only Tokio's I/O traits.

pub mod chaos;
pub mod error;
pub mod executor;
pub(crate) mod handle;
pub mod kernel;
pub mod log;
pub mod network;
mod prefetch;
pub mod providers;
mod run_lock;
pub mod runner;
pub mod storage;
mod watchdog;

/// Simulated time, by topic: the clock's configuration and the time provider.
pub mod time {
    pub use crate::kernel::clock::ClockConfiguration;
    pub use crate::providers::time::SimTimeProvider;
}
pub use watchdog::WATCHDOG_EXIT_CODE;
pub mod world;

pub use chaos::{
    AssertionRecord, AssertionTable, AssertionViolation, BuggifyConfig, BuggifyRecord,
};
pub use error::SimError;
pub use executor::{ProcessId, SimTaskProvider};
pub use kernel::clock::ClockConfiguration;
pub use kernel::fault::{FaultKind, FaultSet, FaultSetError};
pub use kernel::trace::TRACE_FAULT;
pub use network::{LatencyDistribution, MAX_LATENCY, NetworkConfiguration};
pub use providers::SimProviders;
pub use providers::network::{SimNetworkProvider, SimTcpListener, SimTcpStream};
pub use providers::random::SimRandomProvider;
pub use providers::storage::{SimFile, SimStorageProvider};
pub use providers::time::SimTimeProvider;
#[cfg(feature = "explorer")]
pub use runner::ExplorationConfig;
pub use runner::{
    Attrition, Chaos, ExplorationSummary, ExploredBug, FaultAction, FaultContext, FaultInjector,
    IterationControl, Member, MergeError, Recipe, RecipeError, RecipeStep, ScriptedFaults,
    SeedOutcome, ShardInfo, SimulationBuilder, SimulationReport, Topology, WorkloadContext,
    WorkloadError, chrome_trace,
};
pub use runner::{CoverageReport, IdleBuggifySite, UnreachedSite};
pub use runner::{DEFAULT_TRACE_MAX_BYTES, TraceCheck, TraceLimits, check_chrome_trace};
pub use runner::{FailureInfo, FailureKind, ShrinkMode, ShrinkOutcome};
pub use storage::StorageConfiguration;
pub use world::{
    Locality, ProcessContext, ProcessRole, RebootKind, RunSummary, ShutdownSignal, SimWorld,
    StateHandle, TRACE_SEND, TraceEntry, WorldConfig, WorldControl, current_providers, sim_now,
};

#[cfg(feature = "tracing-subscriber")]
pub use log::SimTime;

/// The README's code blocks, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
