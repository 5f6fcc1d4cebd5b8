//! # Moonpool
//!
//! Deterministic simulation testing for Rust distributed systems, in the tradition of
//! FoundationDB's simulator. Write a service once against the provider traits (time, tasks,
//! randomness, network, storage); in production it runs on Tokio, under test it runs inside one
//! single-threaded simulated world whose network, disks and clocks misbehave on purpose, across
//! thousands of seeds, each replayable bit for bit.
//!
//! This facade re-exports what users need:
//!
//! | feature | what you get |
//! |---|---|
//! | `tokio` (default) | [`TokioProviders`] and the other production providers |
//! | `sim` (default) | the simulator, as [`sim`] |
//! | `transport` (default) | FDB-style transport and RPC, as [`transport`] |
//! | `actors` | virtual actors (on the transport) |
//! | `explorer` | fork-based multiverse exploration, as `explorer` |
//!
//! A production build takes `default-features = false, features = ["tokio", "transport"]` and
//! pulls in no simulator code.
//!
//! ```
//! use std::time::Duration;
//! use moonpool::{Providers, TaskProvider, TimeProvider, TokioProviders};
//!
//! async fn tick<P: Providers>(providers: &P) -> Duration {
//!     let start = providers.time().now();
//!     let time = providers.time().clone();
//!     let handle = providers.task().spawn("ticker", async move {
//!         time.sleep(Duration::from_millis(2)).await;
//!     });
//!     let _ = handle.await;
//!     providers.time().now() - start
//! }
//!
//! let runtime = tokio::runtime::Runtime::new().unwrap();
//! assert!(runtime.block_on(tick(&TokioProviders::new())) >= Duration::from_millis(2));
//! ```

pub use moonpool_core::*;

#[cfg(feature = "sim")]
pub use moonpool_sim as sim;

#[cfg(feature = "transport")]
pub use moonpool_transport as transport;

#[cfg(feature = "explorer")]
pub use moonpool_explorer as explorer;

/// The README's code blocks, compiled as doctests so the first example cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
