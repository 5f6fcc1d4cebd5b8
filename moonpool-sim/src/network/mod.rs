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

pub(crate) mod config;

use std::collections::{BTreeMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::task::Waker;
use std::time::Duration;

pub use config::{LatencyDistribution, NetworkConfiguration};

pub(crate) use crate::kernel::event::{HalfId, NetworkEvent};

use crate::executor::ProcessId;
use crate::kernel::Core;
use crate::kernel::event::Event;
use crate::kernel::process::RebootKind;
use crate::kernel::rng::WorldRng;

/// One endpoint of a connection.
pub(crate) struct Half {
    pub(crate) owner: ProcessId,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) peer: HalfId,
    /// Bytes in transit towards this half.
    /// Bytes sent towards this half, oldest first: the first `delivered` are readable, the rest
    /// are in flight.
    pub(crate) bytes: VecDeque<u8>,
    /// Bytes delivered and not yet read.
    pub(crate) delivered: usize,
    /// The peer shut down its write side (FIN received).
    pub(crate) fin_received: bool,
    /// Reads and writes fail with this.
    pub(crate) error: Option<io::ErrorKind>,
    pub(crate) read_waker: Option<Waker>,
    pub(crate) write_waker: Option<Waker>,
    /// This half shut down its write side.
    pub(crate) write_shut: bool,
    /// Deliveries towards the peer are not scheduled before this (in-order delivery).
    pub(crate) last_delivery_at: Duration,
    /// Deliveries towards the peer wait until this (clog).
    pub(crate) clogged_until: Duration,
    /// Both directions wait until this (temporary cut).
    pub(crate) cut_until: Duration,
    /// Writes from this half vanish.
    pub(crate) black_hole: bool,
    /// The peer crashed without telling; writes vanish until the half-open timeout.
    pub(crate) half_open: bool,
    /// Permanent extra one-way latency of this direction.
    pub(crate) extra_latency: Duration,
}

pub(crate) struct Slot {
    pub(crate) generation: u32,
    pub(crate) half: Option<Half>,
}

/// A listening socket.
pub(crate) struct Listener {
    pub(crate) owner: ProcessId,
    pub(crate) backlog: VecDeque<(HalfId, SocketAddr)>,
    pub(crate) waker: Option<Waker>,
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
    pub(crate) slots: Vec<Slot>,
    pub(crate) free: Vec<u32>,
    pub(crate) listeners: BTreeMap<SocketAddr, Listener>,
    pub(crate) partitions: Vec<Partition>,
    pub(crate) pair_latency: BTreeMap<(IpAddr, IpAddr), Duration>,
    pub(crate) pair_clogs: BTreeMap<(IpAddr, IpAddr), Duration>,
    pub(crate) last_random_close: Option<Duration>,
    pub(crate) last_bit_flip: Option<Duration>,
}

impl NetworkState {
    pub(crate) fn new(config: NetworkConfiguration) -> Self {
        Self {
            config,
            slots: Vec::new(),
            free: Vec::new(),
            listeners: BTreeMap::new(),
            partitions: Vec::new(),
            pair_latency: BTreeMap::new(),
            pair_clogs: BTreeMap::new(),
            last_random_close: None,
            last_bit_flip: None,
        }
    }

    pub(crate) fn half(&self, id: HalfId) -> Option<&Half> {
        self.slots
            .get(id.index as usize)
            .filter(|slot| slot.generation == id.generation)
            .and_then(|slot| slot.half.as_ref())
    }

    pub(crate) fn half_mut(&mut self, id: HalfId) -> Option<&mut Half> {
        self.slots
            .get_mut(id.index as usize)
            .filter(|slot| slot.generation == id.generation)
            .and_then(|slot| slot.half.as_mut())
    }

    pub(crate) fn insert(&mut self, half: Half) -> HalfId {
        if let Some(index) = self.free.pop() {
            let slot = &mut self.slots[index as usize];
            slot.generation = slot.generation.wrapping_add(1);
            slot.half = Some(half);
            return HalfId {
                index,
                generation: slot.generation,
            };
        }
        let index = u32::try_from(self.slots.len()).unwrap_or(u32::MAX);
        self.slots.push(Slot {
            generation: 0,
            half: Some(half),
        });
        HalfId {
            index,
            generation: 0,
        }
    }

    pub(crate) fn remove(&mut self, id: HalfId) {
        if let Some(slot) = self
            .slots
            .get_mut(id.index as usize)
            .filter(|slot| slot.generation == id.generation && slot.half.is_some())
        {
            slot.half = None;
            self.free.push(id.index);
        }
    }

    /// Live connection halves.
    pub(crate) fn live_halves(&self) -> usize {
        self.slots.iter().filter(|s| s.half.is_some()).count()
    }

    /// When the path `from -> to` is partitioned, the time the partition ends.
    pub(crate) fn partitioned_until(
        &self,
        now: Duration,
        from: IpAddr,
        to: IpAddr,
    ) -> Option<Duration> {
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
        rng: &mut WorldRng,
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
        let black_hole = core.rng.chance(self.config.black_hole_probability);
        if black_hole {
            core.fault("network.black_hole");
        }
        let to_server = self.pair_latency(&mut core.rng, client.1.ip(), server.1.ip());
        let to_client = self.pair_latency(&mut core.rng, server.1.ip(), client.1.ip());
        let template = |owner: ProcessId, local, remote, extra_latency| Half {
            owner,
            local,
            remote,
            peer: HalfId {
                index: 0,
                generation: 0,
            },
            bytes: VecDeque::new(),
            delivered: 0,
            fin_received: false,
            error: None,
            read_waker: None,
            write_waker: None,
            write_shut: false,
            last_delivery_at: Duration::ZERO,
            clogged_until: Duration::ZERO,
            cut_until: Duration::ZERO,
            black_hole,
            half_open: false,
            extra_latency,
        };
        let client_half = self.insert(template(client.0, client.1, server.1, to_server));
        let server_half = self.insert(template(server.0, server.1, client.1, to_client));
        if let Some(half) = self.half_mut(client_half) {
            half.peer = server_half;
        }
        if let Some(half) = self.half_mut(server_half) {
            half.peer = client_half;
        }
        (client_half, server_half)
    }

    /// Closes a connection from `half`'s side: with `reset`, both sides see `ConnectionReset`;
    /// otherwise the peer reads end-of-file after the data in flight.
    pub(crate) fn close(&mut self, core: &mut Core, half: HalfId, reset: bool) {
        let Some(h) = self.half_mut(half) else {
            return;
        };
        let peer = h.peer;
        let at = h.last_delivery_at.max(core.now);
        if reset {
            h.error = Some(io::ErrorKind::ConnectionReset);
            h.bytes.clear();
            h.delivered = 0;
            wake(&mut h.read_waker);
            wake(&mut h.write_waker);
            core.schedule_at(at, Event::Network(NetworkEvent::Reset { half: peer }));
        } else if !h.write_shut {
            h.write_shut = true;
            core.schedule_at(at, Event::Network(NetworkEvent::Fin { half: peer }));
        }
    }
}

pub(crate) fn wake(slot: &mut Option<Waker>) {
    if let Some(waker) = slot.take() {
        waker.wake();
    }
}

/// Applies one network event.
pub(crate) fn apply(net: &mut NetworkState, core: &mut Core, event: NetworkEvent) {
    match event {
        NetworkEvent::Deliver { half, len } => deliver(net, core, half, len),
        NetworkEvent::Fin { half } => {
            if let Some(h) = net.half_mut(half) {
                h.fin_received = true;
                wake(&mut h.read_waker);
            }
        }
        NetworkEvent::Reset { half } => {
            if let Some(h) = net.half_mut(half) {
                if h.error.is_none() {
                    h.error = Some(io::ErrorKind::ConnectionReset);
                }
                h.bytes.clear();
                h.delivered = 0;
                wake(&mut h.read_waker);
                wake(&mut h.write_waker);
            }
        }
        NetworkEvent::HalfOpenTimeout { half } => {
            if let Some(h) = net.half_mut(half) {
                h.error = Some(io::ErrorKind::ConnectionReset);
                wake(&mut h.read_waker);
                wake(&mut h.write_waker);
            }
        }
    }
}

fn deliver(net: &mut NetworkState, core: &mut Core, half: HalfId, len: usize) {
    let now = core.now;
    let Some(h) = net.half(half) else {
        return;
    };
    let (from, to, peer) = (h.remote.ip(), h.local.ip(), h.peer);
    // Partitions and cuts that started after the write hold the bytes back until they end.
    let mut hold_until = net.partitioned_until(now, from, to);
    let cut = h
        .cut_until
        .max(net.half(peer).map_or(Duration::ZERO, |p| p.cut_until));
    if cut > now {
        hold_until = Some(hold_until.map_or(cut, |t| t.max(cut)));
    }
    if let Some(until) = hold_until {
        core.schedule_at(until, Event::Network(NetworkEvent::Deliver { half, len }));
        return;
    }
    let flip = net.config.bit_flip_probability > 0.0
        && net
            .last_bit_flip
            .is_none_or(|last| now >= last + net.config.bit_flip_cooldown)
        && core.rng.chance(net.config.bit_flip_probability);
    if flip {
        net.last_bit_flip = Some(now);
    }
    let Some(h) = net.half_mut(half) else {
        return;
    };
    let start = h.delivered;
    let len = len.min(h.bytes.len() - start);
    h.delivered += len;
    if flip && len > 0 {
        // Power law: usually one bit, sometimes many.
        let bits = 1 + (32.0 * core.rng.ratio().powi(4)) as usize;
        for _ in 0..bits {
            let index = start + core.rng.range(0..len);
            let bit: u32 = core.rng.range(0..8);
            if let Some(byte) = h.bytes.get_mut(index) {
                *byte ^= 1 << bit;
            }
        }
        core.fault("network.bit_flip");
    }
    wake(&mut h.read_waker);
}

/// The owner of the half an event is about, and the owner of its peer half.
pub(crate) fn owners(
    net: &NetworkState,
    event: &NetworkEvent,
) -> (Option<ProcessId>, Option<ProcessId>) {
    let half = match event {
        NetworkEvent::Deliver { half, .. }
        | NetworkEvent::Fin { half }
        | NetworkEvent::Reset { half }
        | NetworkEvent::HalfOpenTimeout { half } => *half,
    };
    let Some(h) = net.half(half) else {
        return (None, None);
    };
    (Some(h.owner), net.half(h.peer).map(|p| p.owner))
}

/// A process went down: its listeners vanish; its connections close (graceful: the peers read
/// EOF) or vanish silently (crash: the peers are left half-open until `half_open_timeout`).
pub(crate) fn process_down(
    net: &mut NetworkState,
    core: &mut Core,
    process: ProcessId,
    kind: RebootKind,
) {
    let listeners: Vec<SocketAddr> = net
        .listeners
        .iter()
        .filter(|(_, l)| l.owner == process)
        .map(|(addr, _)| *addr)
        .collect();
    for address in listeners {
        if let Some(listener) = net.listeners.remove(&address) {
            for (server_half, _) in listener.backlog {
                net.close(core, server_half, true);
                net.remove(server_half);
            }
        }
    }
    let owned: Vec<HalfId> = net
        .slots
        .iter()
        .enumerate()
        .filter_map(|(index, slot)| {
            let half = slot.half.as_ref()?;
            (half.owner == process).then_some(HalfId {
                index: u32::try_from(index).unwrap_or(u32::MAX),
                generation: slot.generation,
            })
        })
        .collect();
    let half_open_timeout = net.config.half_open_timeout;
    for id in owned {
        let Some(peer) = net.half(id).map(|h| h.peer) else {
            continue;
        };
        match kind {
            RebootKind::Graceful => net.close(core, id, false),
            RebootKind::Crash | RebootKind::CrashAndWipe => {
                if let Some(p) = net.half_mut(peer) {
                    if p.error.is_none() {
                        p.half_open = true;
                        core.schedule(
                            half_open_timeout,
                            Event::Network(NetworkEvent::HalfOpenTimeout { half: peer }),
                        );
                        core.fault("network.half_open");
                    }
                }
            }
        }
        net.remove(id);
    }
}

/// Wildcard bind addresses stand for the process's own IP.
pub(crate) fn is_unspecified(ip: IpAddr) -> bool {
    ip.is_unspecified() || ip == IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}
