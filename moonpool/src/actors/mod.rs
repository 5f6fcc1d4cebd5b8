//! Virtual actors, Orleans style, on the transport (feature `actors`).
//!
//! A caller addresses an actor by type and key and never creates, finds or destroys it: the
//! runtime activates it on some node when a message arrives, runs one message at a time
//! (methods marked `#[reentrant]` excepted: their calls interleave with each other, never with
//! another method's), persists its state when it asks, and deactivates it when idle. The model,
//! the guarantees and why they hold, re-entrancy, placement, state and the limits are in
//! `docs/actors.md`.
//!
//! An actor is a `#[service]` trait whose methods take `&mut self` (or `&self` with
//! `#[reentrant]`), and an implementation marked `#[actor_impl]` that also implements
//! [`Actor`](crate::actors::Actor) (its lifecycle):
//!
//! ```
//! use moonpool::actors::{Actor, ActorContext, ActorError, PersistentState, actor_impl};
//! use moonpool::service;
//!
//! /// A counter per key.
//! #[service]
//! pub trait Counter {
//!     /// Adds `by`; the new value.
//!     async fn add(&mut self, by: u64) -> u64;
//! }
//!
//! pub struct CounterActor {
//!     state: PersistentState<u64>,
//! }
//!
//! impl Actor for CounterActor {
//!     async fn on_activate(context: ActorContext) -> Result<Self, ActorError> {
//!         Ok(Self { state: context.load_state().await? })
//!     }
//! }
//!
//! #[actor_impl]
//! impl Counter for CounterActor {
//!     async fn add(&mut self, by: u64) -> u64 {
//!         *self.state.state_mut() += by;
//!         // A real actor would report a failed write to its caller.
//!         let _ = self.state.write_state().await;
//!         *self.state.state()
//!     }
//! }
//!
//! // `CounterRef` is data: the identity, with typed methods.
//! let counter = CounterRef::new("visits");
//! assert_eq!(counter.id().to_string(), "Counter/\"visits\"");
//! ```
//!
//! Nodes: [`ActorNode::builder`](crate::actors::ActorNode::builder) over a listening
//! `NetTransport`, a [`MembershipView`](crate::actors::MembershipView) and the actor types with
//! their [`Placement`](crate::actors::Placement); calls go through an
//! [`ActorClient`](crate::actors::ActorClient) (a node's
//! [`ActorNode::client`](crate::actors::ActorNode::client), or
//! [`ActorClient::external`](crate::actors::ActorClient::external) from outside the cluster).
//! Durable reminders and activation-local timers:
//! [`ActorContext::register_reminder`](crate::actors::ActorContext::register_reminder) and
//! [`ActorContext::start_timer`](crate::actors::ActorContext::start_timer) (see
//! `docs/actors.md`, Reminders and timers).
//!
//! Inside, by floor (each file looks only down): `identity`, `error`, `config`, `fencing`,
//! `durable`, `ticks` (the reminder table trait, ticks and their errors) → `state`,
//! `membership`, `placement`, `timers`, `actor` → `wire` (the node protocol), `directory`,
//! `cluster` (the membership table and its process), `reminders` (the durable reminder
//! table), `reminder_server` (its server and remote client) → `client`, `router`, `host` with
//! `grant` (leases) → `node` with `heartbeat` and `reminding` (delivering the reminders a node
//! owns).

mod actor;
mod client;
mod cluster;
mod config;
mod directory;
mod durable;
mod error;
mod fencing;
mod grant;
mod heartbeat;
mod host;
mod identity;
mod inflight;
mod membership;
mod node;
mod placement;
mod reminder_server;
mod reminders;
mod reminding;
mod router;
mod starting;
mod state;
mod ticks;
mod timers;
mod wire;

pub use actor::{
    ActivationObserver, Actor, ActorClock, ActorContext, ActorDispatch, SharedDispatch,
};
pub use client::ActorClient;
pub use cluster::{
    CLUSTER_SERVICE_BASE, ClusterServer, RemoteMembershipTable, StorageMembershipTable,
};
pub use config::{ActorConfig, ActorConfigError};
pub use error::{ActorError, StateError};
pub use fencing::{ClusterConfig, ClusterConfigError, PlantedBug};
pub use identity::{ActorId, ActorKey};
pub use membership::{MembershipError, MembershipTable, MembershipView};
pub use node::{ActorNode, ActorNodeBuilder, ActorStartError};
pub use placement::{Placement, PlacementContext, PlacementStrategy, RoundRobin};
pub use reminder_server::{REMINDER_SERVICE_BASE, ReminderServer, RemoteReminderTable};
pub use reminders::{ReminderConfig, ReminderConfigError, StorageReminderTable};
pub use state::{FileStateStore, MemoryStateStore, PersistentState, StateStore, StoredState};
pub use ticks::{
    DueReminder, MAX_TICK_DELAY, MAX_TICK_NAME, ReminderError, ReminderTable, ReminderTick,
    TimerError, TimerTick,
};
pub use wire::Entry;

/// `#[actor_impl]`: wires an implementation of a `#[service]` actor trait into the host.
pub use moonpool_transport_derive::actor_impl;

/// The code blocks of `docs/actors.md`, compiled as doctests so that the page cannot rot.
#[doc = include_str!("../../../docs/actors.md")]
#[cfg(doctest)]
pub struct ActorsDocDoctests;

/// What generated code uses. Not an API.
#[doc(hidden)]
pub mod __private {
    pub use super::client::{decode, encode};
    pub use futures::future::BoxFuture;
    pub use serde;
}
