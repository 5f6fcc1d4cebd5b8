//! # Moonpool
//!
//! Deterministic simulation testing for Rust distributed systems, in the tradition of
//! FoundationDB's simulator. Write a service once against the provider traits (time, tasks,
//! randomness, network, storage); in production it runs on Tokio, under test it runs inside one
//! single-threaded simulated world whose network, disks and clocks misbehave on purpose, across
//! thousands of seeds, each replayable bit for bit.
//!
//! A typed RPC interface is one trait. `#[service]` generates its server and a client that is
//! plain data (an address and a base token, so it can travel inside messages); the same code
//! runs over real TCP on Tokio, as here, and in the simulator:
//!
//! ```
//! use moonpool::service;
//! use moonpool::transport::NetTransportBuilder;
//! use moonpool::TokioProviders;
//!
//! /// A greeting service.
//! #[service]
//! pub trait Greeter {
//!     async fn greet(&self, name: String) -> String;
//! }
//!
//! struct Polite;
//!
//! impl Greeter for Polite {
//!     async fn greet(&self, name: String) -> String {
//!         format!("hello, {name}")
//!     }
//! }
//!
//! let runtime = tokio::runtime::Runtime::new().unwrap();
//! runtime.block_on(async {
//!     let providers = TokioProviders::new();
//!     let server = NetTransportBuilder::new(providers.clone())
//!         .local_address("127.0.0.1:0".parse().unwrap())
//!         .build_listening()
//!         .await
//!         .unwrap();
//!     let greeter = GreeterServer::serve(&server, Polite).unwrap();
//!
//!     let transport = NetTransportBuilder::new(providers).build().unwrap();
//!     let reply = greeter.client().greet(&transport, "moon".into()).get_reply().await;
//!     assert_eq!(reply.as_deref(), Ok("hello, moon"));
//! });
//! ```
//!
//! The generated items (`GreeterClient`, `GreeterServer`, one request type per method) and the
//! options (well-known services, in-flight bounds) are documented on [`service`].
//!
//! Start with the prelude: `use moonpool::prelude::*;` brings in every provider trait, Tokio's
//! `AsyncReadExt`/`AsyncWriteExt`, the chaos macros and, with their features, the simulation and
//! transport types (see [`prelude`]).
//!
//! This facade re-exports what users need, by feature:
//!
//! | feature | what you get |
//! |---|---|
//! | `tokio` (default) | [`TokioProviders`] and the other production providers |
//! | `sim` (default) | the simulator, as [`moonpool::sim`](crate::sim): [`SimulationBuilder`](crate::sim::SimulationBuilder), [`SimWorld`](crate::sim::SimWorld), the simulated providers |
//! | `transport` (default) | FDB-style transport and RPC, as [`moonpool::transport`](crate::transport), and the [`service`] attribute |
//! | `tracing-subscriber` | `sim::SimTime`, a log timer that stamps lines with simulated time |
//! | `explorer` | fork-based multiverse exploration, as `moonpool::explorer`, and `SimulationBuilder::explore` (Linux and macOS) |
//! | `actors` | virtual actors on the transport, as [`actors`] (see `docs/actors.md`) |
//!
//! The guides in the repository's `docs/guides/` walk through a whole service
//! (`end-to-end-service.md`), writing a simulation test, diagnosing failures, running seeds on
//! many machines and using Moonpool from your own project.
//!
//! Application code written against the providers, without the transport:
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
//!
//! A production build takes `default-features = false, features = ["tokio", "transport"]` and
//! pulls in no simulator code.

pub use moonpool_core::*;

pub mod prelude;

/// The deterministic simulator (feature `sim`): the crate `moonpool-sim`, inline.
#[cfg(feature = "sim")]
#[doc(inline)]
pub use moonpool_sim as sim;

/// FDB-style transport and RPC (feature `transport`): the crate `moonpool-transport`, inline.
#[cfg(feature = "transport")]
#[doc(inline)]
pub use moonpool_transport as transport;

/// `#[service]`: a typed RPC interface from one trait (see [`transport::interface`]).
#[cfg(feature = "transport")]
pub use moonpool_transport::service;

/// Fork-based multiverse exploration (feature `explorer`): the crate `moonpool-explorer`.
#[cfg(feature = "explorer")]
#[doc(inline)]
pub use moonpool_explorer as explorer;

/// Virtual actors (feature `actors`).
#[cfg(feature = "actors")]
pub mod actors;

/// The README's code blocks, compiled as doctests so the first example cannot rot.
#[doc = include_str!("../../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

/// The guides' code blocks, compiled as doctests from outside the crate, as a user's crate is.
#[doc = include_str!("../../docs/guides/using-moonpool-from-another-project.md")]
#[cfg(doctest)]
pub struct GuideDoctests;
