//! # moonpool-core
//!
//! The provider layer of [Moonpool](https://docs.rs/moonpool): application code reaches time,
//! tasks, randomness, network and storage only through the traits here, so the same code runs on
//! Tokio in production and inside Moonpool's deterministic simulator in tests.
//!
//! ```
//! use std::time::Duration;
//! use moonpool_core::{Providers, TaskProvider, TimeProvider, TokioProviders};
//!
//! /// Application code: generic over the providers, never touching Tokio directly.
//! async fn heartbeat<P: Providers>(providers: P, beats: u32) -> u32 {
//!     let time = providers.time().clone();
//!     let handle = providers.task().spawn("heartbeat", async move {
//!         for _ in 0..beats {
//!             time.sleep(Duration::from_millis(1)).await;
//!         }
//!         beats
//!     });
//!     handle.await.unwrap_or(0)
//! }
//!
//! let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
//! assert_eq!(runtime.block_on(heartbeat(TokioProviders::new(), 3)), 3);
//! ```
//!
//! ## What is here
//! - Provider traits: [`TimeProvider`], [`TaskProvider`] (with a Tokio-shaped [`JoinHandle`]),
//!   [`RandomProvider`], [`NetworkProvider`], [`StorageProvider`], bundled by [`Providers`].
//! - Tokio implementations (feature `tokio`, on by default): [`TokioProviders`].
//! - Types shared by every layer: [`UID`], [`NetworkAddress`], [`Endpoint`], [`WellKnownToken`].
//! - [`MessageCodec`] with the default [`JsonCodec`] and the compact [`BinaryCodec`].
//! - A deterministic [`select!`] whose fair branch order is seeded in simulation.
//! - [`chaos`]: `buggify!` and the fifteen assertion macros, no-ops outside a simulation.
//! - With feature `conformance`: contract tests written once over the traits, run against every
//!   backend (the `conformance` module).
//!
//! ## Rules for code that runs in simulation
//! Spawned and provider futures are `Send + 'static`, as with `tokio::spawn`. Do not call
//! `tokio::spawn`, `tokio::time`, `tokio::net`, `std::time::Instant`, `SystemTime`, thread RNGs or
//! `std::thread`, and do not iterate a `HashMap` with the default hasher: all of them leak
//! something other than the seed into the run. `tokio::sync` and `futures` combinators are fine.
//!
//! This crate must never depend on the simulator.

pub mod annotate;
pub mod chaos;
pub mod codec;
pub mod network;
pub mod providers;
pub mod random;
pub mod select;
pub mod storage;
pub mod task;
pub mod time;
pub mod types;

#[cfg(feature = "tokio")]
mod tokio;

#[cfg(feature = "conformance")]
pub mod conformance;

pub use codec::{BinaryCodec, CodecError, JsonCodec, MessageCodec};
pub use network::{NetworkError, NetworkOperation, NetworkProvider, TcpListener};
pub use providers::Providers;
pub use random::{Random, RandomProvider, RandomSource, SampleRange};
pub use storage::{
    InvalidOpenOptions, OpenOptions, StorageError, StorageFile, StorageOperation, StorageProvider,
};
pub use task::{JoinError, JoinHandle, RawJoinHandle, TaskProvider};
pub use time::{Elapsed, TimeProvider};
pub use types::{
    AddressParseError, Endpoint, FLAG_PUBLIC, FLAG_TLS, NetworkAddress, UID, UidParseError,
    WELL_KNOWN_RESERVED_COUNT, WellKnownToken,
};

#[cfg(feature = "tokio")]
pub use crate::tokio::{
    TokioFile, TokioNetworkProvider, TokioProviders, TokioRandomProvider, TokioStorageProvider,
    TokioTaskProvider, TokioTcpListener, TokioTimeProvider,
};

/// Re-exports used by this crate's macros. Not part of the public API.
#[doc(hidden)]
pub mod __private {
    pub use ::tokio;
}

/// The crate README's code blocks, compiled as doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
