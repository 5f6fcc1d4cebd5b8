//! The simulated TCP network.
//!
//! # Model
//! A connection is two *halves*, one per endpoint. Bytes written on one half are appended to the
//! other half's byte queue and a `Deliver { half, len }` event is scheduled after the write
//! latency; applying it marks `len` more bytes at the front of that queue as delivered (readable),
//! without copying them. Because events carry counts and bytes are always delivered and read from
//! the front, a stream's byte order is kept
//! even when faults delay or reorder delivery events. Deliveries of one direction are never
//! scheduled earlier than the previous one (TCP is in order).
//!
//! Faults hook into that path: clogs, cuts and partitions push delivery times back; bit flips
//! corrupt bytes as they are delivered; black holes drop bytes at write time; random closes,
//! resets and half-open peers change what reads and writes return. See `docs/fault-injection.md`.
//!
//! Each connection has a [`ConnectionId`] (stable for its life, shared by both ends) by which a
//! test addresses it through `WorldControl`: scripted cuts and restores, read-side clogs,
//! per-direction extra delay, loss bursts and send buffer capacity. Scripted cuts hold
//! deliveries in a per-half count (`held`) released at restore; loss is modelled as TCP sees it:
//! a lost segment is retransmitted after a retransmission timeout that doubles at each loss, so
//! bytes are never missing, only late, and a segment that exhausts its retransmissions fails the
//! connection with `TimedOut`.
//!
//! Every fault and every connection state change emits a `tracing` debug event (target
//! `moonpool_sim::network`) with the simulated time, the connection id and the process names.

mod addresses;
mod apply;
mod bytes;
pub(crate) mod config;
mod connection;
mod half;
mod slab;
mod swarm;
mod waker_slot;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

pub use config::{
    LatencyDistribution, MAX_LATENCY, NetworkConfiguration, SendBufferSizing, TCP_FAULTS_ENV,
};

pub(crate) use crate::kernel::event::{HalfId, NetworkEvent};

use crate::executor::ProcessId;
use crate::kernel::Core;
use crate::kernel::event::Event;
use crate::kernel::fault::FaultKind;
use crate::kernel::rng::StreamRng;
pub(crate) use half::{Half, HalfSpec, nanos};
use slab::Slab;
pub(crate) use slab::{Slots, append_to, live_pair_mut};
pub(crate) use waker_slot::WakerSlot;

pub(crate) use apply::{
    apply, is_unspecified, log, note_span, note_span_on, owners, process_down, wake,
};
pub(crate) use connection::connection_error;
pub use connection::{
    ConnectionEnd, ConnectionError, ConnectionId, ConnectionInfo, SendBufferState,
};

/// A listening socket, kept under its process's own address and port whatever address it was
/// bound to (so a wildcard, an own-address and a loopback bind of one port conflict).
pub(crate) struct Listener {
    pub(crate) owner: ProcessId,
    /// Accepted connections not taken yet, each with its client's address as the server sees it.
    pub(crate) backlog: VecDeque<(HalfId, SocketAddr)>,
    pub(crate) waker: WakerSlot,
    /// Which connects reach it.
    pub(crate) scope: ListenScope,
}

/// The address a listener was bound to, which decides who can connect to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ListenScope {
    /// `0.0.0.0` or `[::]`: every process at the process's address, and the process itself
    /// through a loopback address.
    Wildcard,
    /// The process's own address: every process, through that address only.
    Own,
    /// A loopback address (`127.0.0.0/8`, `::1`): the process itself only, through that
    /// address.
    Loopback(IpAddr),
}

impl ListenScope {
    /// Whether a connect through the loopback address `through` (`None`: through the process's
    /// own address) reaches a listener of this scope.
    pub(crate) fn reached(self, through: Option<IpAddr>) -> bool {
        match self {
            Self::Wildcard => true,
            Self::Own => through.is_none(),
            Self::Loopback(bound) => through == Some(bound),
        }
    }
}

/// What `config` lets take a quiet path: writes when no per-write fault can fire, deliveries
/// when no per-delivery fault can (in this crate's tests both may be switched off, to compare
/// them with the full paths).
fn quiet_paths(config: &NetworkConfiguration) -> (bool, bool) {
    #[cfg(test)]
    if testing::full_paths_only() {
        return (false, false);
    }
    (config.quiet_writes(), config.quiet_deliveries())
}

/// Test switches and counters of the network's quiet paths (this crate's unit tests only).
#[cfg(test)]
pub(crate) mod testing {
    use std::cell::Cell;

    thread_local! {
        static FULL_PATHS_ONLY: Cell<bool> = const { Cell::new(false) };
        static QUIET_WRITES: Cell<u64> = const { Cell::new(0) };
        static QUIET_DELIVERIES: Cell<u64> = const { Cell::new(0) };
    }

    /// Worlds made on this thread from now on send every write and every delivery down the full
    /// path (`true`), or let them take the quiet paths (`false`, the default).
    pub(crate) fn set_full_paths_only(on: bool) {
        FULL_PATHS_ONLY.with(|cell| cell.set(on));
    }

    pub(super) fn full_paths_only() -> bool {
        FULL_PATHS_ONLY.with(Cell::get)
    }

    /// Writes and deliveries that took the quiet paths on this thread so far.
    pub(crate) fn quiet_counts() -> (u64, u64) {
        (
            QUIET_WRITES.with(Cell::get),
            QUIET_DELIVERIES.with(Cell::get),
        )
    }

    /// Counts one write on the quiet path.
    pub(crate) fn note_quiet_write() {
        QUIET_WRITES.with(|cell| cell.set(cell.get() + 1));
    }

    /// Counts one delivery on the quiet path.
    pub(crate) fn note_quiet_delivery() {
        QUIET_DELIVERIES.with(|cell| cell.set(cell.get() + 1));
    }
}

/// A partition between two hosts.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Partition {
    pub(crate) from: IpAddr,
    pub(crate) to: IpAddr,
    pub(crate) until: Duration,
}

/// All network state of a world.
pub(crate) struct NetworkState {
    pub(crate) config: NetworkConfiguration,
    /// The halves (see `half.rs` and `slab.rs`), by `HalfId`.
    pub(crate) slots: slab::Slots,
    pub(crate) free: Vec<u32>,
    pub(crate) listeners: BTreeMap<SocketAddr, Listener>,
    /// The local addresses of live client halves (each took an ephemeral port at its connect),
    /// so that no port is handed out twice while in use (see `free_ephemeral_port`); a set with
    /// no iteration, O(1) per connect and close (see `addresses.rs`).
    pub(crate) client_locals: addresses::AddressSet,
    pub(crate) partitions: Vec<Partition>,
    pub(crate) pair_latency: BTreeMap<(IpAddr, IpAddr), Duration>,
    pub(crate) pair_clogs: BTreeMap<(IpAddr, IpAddr), Duration>,
    pub(crate) last_random_close: Option<Duration>,
    pub(crate) last_bit_flip: Option<Duration>,
    pub(crate) last_connection: u64,
    /// The identity of the executor whose tasks read these connections (0 until the first
    /// network event is applied): readers of it are kept by slot and id too (`Half::read_task`).
    pub(crate) executor: usize,
    /// The configuration makes every fault a write draws impossible (see
    /// [`NetworkConfiguration::quiet_writes`]): writes may take the quiet path. Kept with
    /// `config` by [`NetworkState::new`] and [`NetworkState::set_config`].
    pub(crate) quiet_writes: bool,
    /// The configuration makes every fault a delivery draws impossible (see
    /// [`NetworkConfiguration::quiet_deliveries`]): deliveries may take the quiet path. Kept
    /// with `config` too.
    pub(crate) quiet_deliveries: bool,
    /// The write latency in nanoseconds when it is fixed (no draw), kept with `config` too.
    pub(crate) fixed_write_latency: Option<u64>,
}

/// The addresses of a world's half slots, as numbers: hints for a prefetch, never read
/// through (a slot may be vacant, or the slab moved, by the time one is used).
#[derive(Clone, Copy)]
pub(crate) struct SlotAddresses {
    /// The first slot's address; 0: no hints.
    base: usize,
}

impl SlotAddresses {
    /// The address of the slot of half `id` (0 when there are no hints).
    #[inline]
    pub(crate) fn of(self, id: HalfId) -> usize {
        if self.base == 0 {
            return 0;
        }
        self.base
            .wrapping_add((id.index as usize).wrapping_mul(std::mem::size_of::<slab::Slot>()))
    }
}

/// Fewer halves than this (two per connection) and the run loop does not prefetch them, nor
/// does a delivery hint its peer: they mostly stay in the caches between deliveries (the same
/// bound as the drain's, in tasks).
const PREFETCH_MIN_HALVES: usize = 512;

impl NetworkState {
    pub(crate) fn new(config: NetworkConfiguration) -> Self {
        let (quiet_writes, quiet_deliveries) = quiet_paths(&config);
        Self {
            quiet_writes,
            quiet_deliveries,
            fixed_write_latency: config.write_latency.fixed().map(nanos),
            config,
            slots: slab::Slots::default(),
            free: Vec::new(),
            listeners: BTreeMap::new(),
            client_locals: addresses::AddressSet::default(),
            partitions: Vec::new(),
            pair_latency: BTreeMap::new(),
            pair_clogs: BTreeMap::new(),
            last_random_close: None,
            last_bit_flip: None,
            last_connection: 0,
            executor: 0,
        }
    }

    /// Replaces the configuration (and what is derived from it). Every change of `config` after
    /// construction goes through here.
    pub(crate) fn set_config(&mut self, config: NetworkConfiguration) {
        (self.quiet_writes, self.quiet_deliveries) = quiet_paths(&config);
        self.fixed_write_latency = config.write_latency.fixed().map(nanos);
        self.config = config;
    }

    /// Both live halves of `connection`, client first (either may be gone).
    pub(crate) fn halves_of(&self, connection: ConnectionId) -> Vec<HalfId> {
        let mut halves: Vec<(ConnectionEnd, HalfId)> = slab::iter(&self.slots)
            .filter(|(_, h)| h.connection == connection)
            .map(|(id, h)| (h.end, id))
            .collect();
        halves.sort();
        halves.into_iter().map(|(_, id)| id).collect()
    }

    /// The live half at `end` of `connection`.
    pub(crate) fn half_at(&self, connection: ConnectionId, end: ConnectionEnd) -> Option<HalfId> {
        self.halves_of(connection)
            .into_iter()
            .find(|id| self.half(*id).is_some_and(|h| h.end == end))
    }

    /// Send buffer of `id` (bytes in flight and unread towards its peer).
    pub(crate) fn send_buffer(&self, id: HalfId) -> Option<SendBufferState> {
        let h = self.half(id)?;
        let used = self.half(h.peer).map_or(0, |p| p.bytes.len());
        Some(SendBufferState {
            capacity: h.send_capacity,
            used,
            free: h.send_capacity.saturating_sub(used),
        })
    }

    /// Cuts `connection` (both directions stall, nothing is lost) until `restore_connection` or,
    /// with `duration`, until it passes. Returns false when the connection is gone.
    pub(crate) fn cut_connection(
        &mut self,
        core: &mut Core,
        connection: ConnectionId,
        duration: Option<Duration>,
    ) -> bool {
        let halves = self.halves_of(connection);
        if halves.is_empty() {
            return false;
        }
        for id in &halves {
            let Some(h) = self.model_mut(*id) else {
                continue;
            };
            h.scripted_cut = true;
            h.cut_epoch += 1;
            let epoch = h.cut_epoch;
            if let Some(duration) = duration {
                core.schedule(
                    duration,
                    Event::Network(NetworkEvent::CutEnd { half: *id, epoch }),
                );
                if core.story.is_some() {
                    let until = core.now.saturating_add(duration);
                    let on = Some((h.connection.0, h.owner.0));
                    apply::note_span_on(core, "cut", h.local.ip(), h.remote.ip(), until, on);
                }
            }
        }
        core.fault("network.cut_connection");
        if let Some(first) = halves.first() {
            log(
                self,
                core,
                *first,
                "cut",
                format_args!("scripted, for {duration:?}"),
            );
        }
        true
    }

    /// Ends a scripted cut of `connection` now: held bytes are delivered in order.
    pub(crate) fn restore_connection(&mut self, core: &mut Core, connection: ConnectionId) -> bool {
        let halves = self.halves_of(connection);
        let mut restored = false;
        for id in halves {
            restored |= self.restore_half(core, id);
        }
        restored
    }

    fn restore_half(&mut self, core: &mut Core, id: HalfId) -> bool {
        let Some(h) = self.model_mut(id) else {
            return false;
        };
        if !h.scripted_cut {
            return false;
        }
        h.scripted_cut = false;
        h.cut_epoch += 1;
        let held = std::mem::take(&mut h.held);
        let peer = h.peer;
        let (connection, owner) = (h.connection.0, h.owner.0);
        if held > 0 {
            let sequence = core.schedule_at(
                core.now,
                Event::Network(NetworkEvent::Deliver {
                    half: id,
                    len: held,
                }),
            );
            core.note(|| crate::kernel::story::What::Released {
                connection,
                owner,
                sequence,
            });
        }
        if self.half(peer).is_some_and(|p| p.scripted_cut) {
            // Logged once per connection, when its last half is restored.
            return true;
        }
        log(
            self,
            core,
            id,
            "restore",
            format_args!("{held} held bytes released"),
        );
        true
    }

    /// True while a scripted or random cut holds `connection`.
    pub(crate) fn is_cut(&self, now: Duration, connection: ConnectionId) -> bool {
        self.halves_of(connection).into_iter().any(|id| {
            self.half(id)
                .is_some_and(|h| h.scripted_cut || h.cut_until > nanos(now))
        })
    }

    /// Hides data delivered to `id` from its reader for `duration`.
    pub(crate) fn clog_reads(
        &mut self,
        core: &mut Core,
        id: HalfId,
        duration: Duration,
        scripted: bool,
    ) {
        let until = core.now.saturating_add(duration);
        let Some(h) = self.model_mut(id) else {
            return;
        };
        h.read_clogged_until = h.read_clogged_until.max(nanos(until));
        h.stalls = true;
        core.schedule_at(
            until,
            Event::Network(NetworkEvent::ReadClogEnd { half: id }),
        );
        core.fault(if scripted {
            "network.read_clog_connection"
        } else {
            "network.read_clog"
        });
        log(self, core, id, "read_clog", format_args!("until {until:?}"));
        if let Some(h) = self.half(id) {
            let on = Some((h.connection.0, h.owner.0));
            apply::note_span_on(core, "read clog", h.remote.ip(), h.local.ip(), until, on);
        }
    }

    #[inline]
    pub(crate) fn half(&self, id: HalfId) -> Option<&Half> {
        slab::get(&self.slots, id)
    }

    /// The half `id`, mutably, for a caller outside the network model (`WorldControl`), which
    /// may set any of its fault fields: the half is marked as possibly delayed and stalled
    /// ([`Half::delayed`], [`Half::stalls`]), so writes, deliveries and reads read those fields
    /// from then on.
    #[inline]
    pub(crate) fn half_mut(&mut self, id: HalfId) -> Option<&mut Half> {
        let h = slab::get_mut(&mut self.slots, id)?;
        h.delayed = true;
        h.stalls = true;
        Some(h)
    }

    /// The half `id`, mutably, for the network model itself: a caller that sets a field
    /// [`Half::delayed`] or [`Half::stalls`] covers sets that flag too.
    #[inline]
    pub(crate) fn model_mut(&mut self, id: HalfId) -> Option<&mut Half> {
        slab::get_mut(&mut self.slots, id)
    }

    /// Whether the world has so many halves (`PREFETCH_MIN_HALVES`) that they cannot all stay
    /// in the cache, so that prefetching one before its delivery pays.
    #[inline]
    pub(crate) fn has_many_halves(&self) -> bool {
        self.slots.len() >= PREFETCH_MIN_HALVES
    }

    /// Where the halves' slots are, for prefetch hints: each slot's address (see
    /// [`SlotAddresses`]), or none in a world of few halves.
    #[inline]
    pub(crate) fn slot_addresses(&self) -> SlotAddresses {
        SlotAddresses {
            base: if self.has_many_halves() {
                self.slots.base_address()
            } else {
                0
            },
        }
    }

    /// Starts loading the first line of the slot of half `id` into the cache (whatever it
    /// holds now): a hint, nothing is read.
    #[inline]
    pub(crate) fn prefetch_half(&self, id: HalfId) {
        if let Some(slot) = self.slots.get(id.index as usize) {
            // Both lines a delivery may read (the second holds the peer, for the hints).
            let address = std::ptr::from_ref(slot).cast::<u8>();
            crate::prefetch::prefetch(address);
            crate::prefetch::prefetch(address.wrapping_add(64));
        }
    }

    /// The live half `a` and, when live, `b`, both mutably (see [`slab::pair_mut`]).
    #[inline]
    pub(crate) fn pair_mut(
        &mut self,
        a: HalfId,
        b: HalfId,
    ) -> Option<(&mut Half, Option<&mut Half>)> {
        slab::pair_mut(&mut self.slots, a, b)
    }

    pub(crate) fn insert(&mut self, spec: &HalfSpec) -> HalfId {
        Slab {
            slots: &mut self.slots,
            free: &mut self.free,
        }
        .insert(spec)
    }

    /// Removes `id`; its peer no longer sees a cut of it, and a client half's port is free.
    pub(crate) fn remove(&mut self, id: HalfId) {
        let (peer, client_local) = match self.half(id) {
            Some(h) => (
                Some(h.peer),
                matches!(h.end, ConnectionEnd::Client).then_some(h.local),
            ),
            None => (None, None),
        };
        if let Some(local) = client_local {
            self.client_locals.remove(&local);
        }
        let removed = Slab {
            slots: &mut self.slots,
            free: &mut self.free,
        }
        .remove(id);
        if removed && let Some(p) = peer.and_then(|peer| self.model_mut(peer)) {
            p.peer_cut_until = 0;
        }
    }

    /// True when `address` is held: a listener's, or a live connection's local end.
    pub(crate) fn address_taken(&self, address: SocketAddr) -> bool {
        self.listeners.contains_key(&address) || self.client_locals.contains(&address)
    }

    /// Live connection halves.
    pub(crate) fn live_halves(&self) -> usize {
        slab::iter(&self.slots).count()
    }

    /// When the path `from -> to` is partitioned, the time the partition ends.
    pub(crate) fn partitioned_until(
        &self,
        now: Duration,
        from: IpAddr,
        to: IpAddr,
    ) -> Option<Duration> {
        // No partition separates a host from itself (its own address and loopback).
        if from == to {
            return None;
        }
        self.partitions
            .iter()
            .filter(|p| p.until > now && p.from == from && p.to == to)
            .map(|p| p.until)
            .max()
    }

    /// Removes every partition and pair clog.
    pub(crate) fn heal_all(&mut self) {
        self.partitions.clear();
        self.pair_clogs.clear();
    }

    /// Adds a partition, dropping the expired ones (every write and delivery scans the list).
    pub(crate) fn add_partition(
        &mut self,
        now: Duration,
        from: IpAddr,
        to: IpAddr,
        until: Duration,
    ) {
        self.partitions.retain(|p| p.until > now);
        self.partitions.push(Partition { from, to, until });
    }

    /// The permanent extra latency of `from -> to`, drawn at first contact.
    pub(crate) fn pair_latency(
        &mut self,
        rng: &mut StreamRng,
        from: IpAddr,
        to: IpAddr,
    ) -> Duration {
        if self.config.pair_latency_max.is_zero() {
            return Duration::ZERO;
        }
        let max = self.config.pair_latency_max;
        *self
            .pair_latency
            .entry((from, to))
            .or_insert_with(|| rng.duration(Duration::ZERO, max))
    }

    /// Creates the two halves of a new connection; returns (client half, server half).
    pub(crate) fn connect_pair(
        &mut self,
        core: &mut Core,
        client: (ProcessId, SocketAddr),
        server: (ProcessId, SocketAddr),
    ) -> (HalfId, HalfId) {
        let black_hole = core
            .rng
            .fault_if(
                FaultKind::NetworkBlackHole,
                self.config.black_hole_probability,
            )
            .is_some();
        if black_hole {
            core.fired(FaultKind::NetworkBlackHole, "network.black_hole");
        }
        let to_server = self.pair_latency(&mut core.rng, client.1.ip(), server.1.ip());
        let to_client = self.pair_latency(&mut core.rng, server.1.ip(), client.1.ip());
        self.last_connection += 1;
        let connection = ConnectionId(self.last_connection);
        let rtt = self.config.write_latency.mean() * 2 + to_server + to_client;
        let send_capacity = self
            .config
            .send_buffer_sizing
            .capacity(self.config.send_buffer_bytes, rtt);
        let mut spec = HalfSpec {
            connection,
            end: ConnectionEnd::Client,
            owner: client.0,
            local: client.1,
            remote: server.1,
            send_capacity,
            extra_latency: to_server,
            black_hole,
        };
        // The first connection makes room for two halves per process (see `slab::Slots`) and
        // for one client address per process.
        self.slots
            .reserve_for(core.processes.len().saturating_mul(2));
        self.client_locals.reserve_for(core.processes.len());
        let client_half = self.insert(&spec);
        self.client_locals.insert(client.1);
        spec.end = ConnectionEnd::Server;
        spec.owner = server.0;
        (spec.local, spec.remote) = (server.1, client.1);
        spec.extra_latency = to_client;
        let server_half = self.insert(&spec);
        if let Some(half) = self.model_mut(client_half) {
            half.peer = server_half;
        }
        if let Some(half) = self.model_mut(server_half) {
            half.peer = client_half;
        }
        log(
            self,
            core,
            client_half,
            "connect",
            format_args!("send buffer {send_capacity} bytes, rtt {rtt:?}"),
        );
        if black_hole {
            log(
                self,
                core,
                client_half,
                "black_hole",
                format_args!("writes vanish"),
            );
        }
        (client_half, server_half)
    }

    /// Closes a connection from `half`'s side: with `reset`, both sides see `ConnectionReset`;
    /// otherwise the peer reads end-of-file after the data in flight.
    pub(crate) fn close(&mut self, core: &mut Core, half: HalfId, reset: bool) {
        let Some(h) = self.model_mut(half) else {
            return;
        };
        let peer = h.peer;
        let at = Duration::from_nanos(h.last_delivery_at).max(core.now);
        let write_shut = h.write_shut;
        // Closing behind a segment that will never be acknowledged ends in a reset once the
        // retransmissions give up: a FIN would leave the peer waiting for bytes forever.
        let reset = reset || h.doomed;
        if reset {
            log(self, core, half, "reset", format_args!("sent RST"));
        } else if !write_shut {
            log(self, core, half, "fin", format_args!("sent FIN"));
        }
        let Some(h) = self.model_mut(half) else {
            return;
        };
        if reset {
            h.error = Some(io::ErrorKind::ConnectionReset);
            h.bytes.clear();
            h.delivered = 0;
            h.wake_both();
            core.schedule_at(at, Event::Network(NetworkEvent::Reset { half: peer }));
        } else if !h.write_shut {
            h.write_shut = true;
            core.schedule_at(at, Event::Network(NetworkEvent::Fin { half: peer }));
        }
    }
}
