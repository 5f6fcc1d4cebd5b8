//! How network events apply: deliveries (with bit flips, clogs and read-side clogs), FINs,
//! resets, half-open timeouts, retransmissions; who an event concerns; what a process crash does
//! to its connections; the debug log of every fault and state change.

use crate::kernel::fault::FaultKind;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::task::Waker;
use std::time::Duration;

use crate::kernel::event::{HalfId, NetworkEvent};

use crate::executor::{Executor, ProcessId};
use crate::kernel::Core;
use crate::kernel::event::Event;
use crate::kernel::process::RebootKind;

use super::*;

/// Wakes the task waiting on a listener (or any other [`WakerSlot`]).
pub(crate) fn wake(slot: &mut WakerSlot) {
    slot.wake();
}

/// Applies one network event; a delivery wakes its reader through `executor` (the world's), or
/// returns the reader's waker when it is not a task of `executor`, for the caller to wake once
/// it has let go of the world's state.
pub(crate) fn apply(
    net: &mut NetworkState,
    core: &mut Core,
    event: NetworkEvent,
    executor: &Executor,
) -> Option<Waker> {
    net.executor = executor.identity();
    match event {
        NetworkEvent::Deliver { half, len } => return deliver(net, core, half, len, executor),
        NetworkEvent::Fin { half } => {
            if let Some(h) = net.model_mut(half) {
                h.fin_received = true;
                h.wake_reader();
                log(
                    net,
                    core,
                    half,
                    "fin_received",
                    format_args!("peer closed its side"),
                );
            }
        }
        NetworkEvent::Reset { half } => {
            if net.half(half).is_some() {
                log(
                    net,
                    core,
                    half,
                    "reset_received",
                    format_args!("peer reset"),
                );
            }
            if let Some(h) = net.model_mut(half) {
                if h.error.is_none() {
                    h.error = Some(io::ErrorKind::ConnectionReset);
                }
                h.bytes.clear();
                h.delivered = 0;
                h.wake_both();
            }
        }
        NetworkEvent::HalfOpenTimeout { half } => {
            if let Some(h) = net.model_mut(half) {
                h.error = Some(io::ErrorKind::ConnectionReset);
                h.wake_both();
                log(
                    net,
                    core,
                    half,
                    "half_open_timeout",
                    format_args!("now ConnectionReset"),
                );
            }
        }
        NetworkEvent::CutEnd { half, epoch } => {
            if net.half(half).is_some_and(|h| h.cut_epoch == epoch) {
                net.restore_half(core, half);
            }
        }
        NetworkEvent::ReadClogEnd { half } => {
            if let Some(h) = net.model_mut(half)
                && h.read_clogged_until <= nanos(core.now)
            {
                h.wake_reader();
                log(
                    net,
                    core,
                    half,
                    "read_clog_end",
                    format_args!("reader resumes"),
                );
            }
        }
        NetworkEvent::RandomFaultEnd { half, cut } => {
            // A longer fault of the same kind fired since: that one's end event logs it.
            let over = net.half(half).is_some_and(|h| {
                let until = if cut { h.cut_until } else { h.clogged_until };
                until <= nanos(core.now)
            });
            if over {
                let (event, detail) = if cut {
                    ("cut_end", "random cut over")
                } else {
                    ("clog_end", "sending direction flows again")
                };
                log(net, core, half, event, format_args!("{detail}"));
            }
        }
        NetworkEvent::RetransmitTimeout { half } => {
            let h = net.model_mut(half)?;
            if h.error.is_some() {
                return None;
            }
            h.error = Some(io::ErrorKind::TimedOut);
            h.bytes.clear();
            h.delivered = 0;
            h.wake_both();
            let peer = h.peer;
            if let Some(p) = net.model_mut(peer) {
                if p.error.is_none() {
                    p.error = Some(io::ErrorKind::ConnectionReset);
                }
                p.bytes.clear();
                p.delivered = 0;
                p.wake_both();
            }
            core.fault("network.retransmit_timeout");
            log(
                net,
                core,
                half,
                "retransmit_timeout",
                format_args!(
                    "retransmissions exhausted: TimedOut here, ConnectionReset at the peer"
                ),
            );
        }
    }
    None
}

/// A debug event about `half`'s connection: simulated time, connection id, end, addresses, the
/// owning process and its peer's process.
pub(crate) fn log(
    net: &NetworkState,
    core: &Core,
    half: HalfId,
    event: &'static str,
    detail: fmt::Arguments<'_>,
) {
    if core.story.is_some() {
        note_connection(net, core, half, event, detail);
    }
    if !tracing::enabled!(target: "moonpool_sim::network", tracing::Level::DEBUG) {
        return;
    }
    let Some(h) = net.half(half) else {
        return;
    };
    let name = |id: ProcessId| core.process(id).map_or("?", |p| p.name.as_str());
    let peer = net.half(h.peer).map_or("gone", |p| name(p.owner));
    tracing::debug!(
        target: "moonpool_sim::network",
        at = ?core.now,
        connection = %h.connection,
        end = ?h.end,
        process = name(h.owner),
        peer_process = peer,
        local = %h.local,
        remote = %h.remote,
        "{event}: {detail}"
    );
}

fn deliver(
    net: &mut NetworkState,
    core: &mut Core,
    half: HalfId,
    len: usize,
    executor: &Executor,
) -> Option<Waker> {
    // The quiet path: with no partition, no fault a delivery draws possible, and nothing set on
    // the half that can hold its bytes (a scripted cut, or any cut or read clog: `stalls`), a
    // delivery marks the bytes readable and wakes the reader, in one lookup; what the full path
    // below does then, without its checks.
    let slots = net.slot_addresses();
    if net.quiet_deliveries
        && net.partitions.is_empty()
        && let Some(h) = net.model_mut(half)
        && !h.scripted_cut
        && !h.stalls
    {
        #[cfg(test)]
        crate::network::testing::note_quiet_delivery();
        let start = h.delivered;
        h.delivered += len.min(h.bytes.len() - start);
        let peer = slots.of(h.peer);
        return h.wake_reader_on(executor, peer);
    }
    let now = core.now;
    let h = net.half(half)?;
    if h.scripted_cut {
        // A scripted cut holds the bytes (a count, so order is kept) until restore.
        if let Some(h) = net.model_mut(half) {
            h.held += len;
        }
        core.note(|| crate::kernel::story::What::Held);
        return None;
    }
    // Partitions and cuts that started after the write hold the bytes back until they end.
    // (The addresses, in a line of the half a delivery does not otherwise read, are looked at
    // only while some partition exists; with none, `partitioned_until` is `None` anyway.)
    let mut hold_until = if net.partitions.is_empty() {
        None
    } else {
        net.partitioned_until(now, h.remote.ip(), h.local.ip())
    };
    // The cut times sit in the half's second line: read only while `stalls` says they may be
    // set (with it false both are zero).
    let cut = if h.stalls {
        h.cut_until.max(h.peer_cut_until)
    } else {
        0
    };
    if cut > nanos(now) {
        let cut = Duration::from_nanos(cut);
        hold_until = Some(hold_until.map_or(cut, |t| t.max(cut)));
    }
    if let Some(until) = hold_until {
        let sequence = core.schedule_at(until, Event::Network(NetworkEvent::Deliver { half, len }));
        core.note(|| crate::kernel::story::What::Rescheduled { sequence });
        return None;
    }
    let flip = net.config.bit_flip_probability > 0.0
        && net
            .last_bit_flip
            .is_none_or(|last| now >= last + net.config.bit_flip_cooldown)
        && core
            .rng
            .fault(FaultKind::NetworkBitFlip)
            .chance(net.config.bit_flip_probability);
    if flip {
        net.last_bit_flip = Some(now);
    }
    let h = net.model_mut(half)?;
    let start = h.delivered;
    let len = len.min(h.bytes.len() - start);
    h.delivered += len;
    if flip && len > 0 {
        // Power law: usually one bit, sometimes many.
        let rng = core.rng.fault(FaultKind::NetworkBitFlip);
        let bits = 1 + (32.0 * rng.ratio().powi(4)) as usize;
        for _ in 0..bits {
            let index = start + rng.range(0..len);
            let bit: u32 = rng.range(0..8);
            if let Some(byte) = h.bytes.get_mut(index) {
                *byte ^= 1 << bit;
            }
        }
        core.fired(FaultKind::NetworkBitFlip, "network.bit_flip");
        log(
            net,
            core,
            half,
            "bit_flip",
            format_args!("in {len} delivered bytes"),
        );
    }
    maybe_clog_reads(net, core, half, len);
    let h = net.model_mut(half)?;
    let peer = slots.of(h.peer);
    h.wake_reader_on(executor, peer)
}

/// Random read-side clog, decided per delivery of at least one byte: the reader will not see
/// the delivered data until the clog ends. Draws nothing at probability zero.
fn maybe_clog_reads(net: &mut NetworkState, core: &mut Core, half: HalfId, len: usize) {
    let p = net.config.read_clog_probability;
    if p <= 0.0 || len == 0 {
        return;
    }
    if net
        .half(half)
        .is_none_or(|h| h.read_clogged_until > nanos(core.now))
    {
        return;
    }
    let rng = core.rng.fault(FaultKind::NetworkReadClog);
    if rng.chance(p) {
        let (lo, hi) = net.config.read_clog_duration;
        let duration = rng.duration(lo, hi);
        core.mark(FaultKind::NetworkReadClog);
        net.clog_reads(core, half, duration, false);
    }
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
        | NetworkEvent::HalfOpenTimeout { half }
        | NetworkEvent::CutEnd { half, .. }
        | NetworkEvent::ReadClogEnd { half }
        | NetworkEvent::RetransmitTimeout { half }
        | NetworkEvent::RandomFaultEnd { half, .. } => *half,
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
    let owned: Vec<HalfId> = super::slab::iter(&net.slots)
        .filter(|(_, half)| half.owner == process)
        .map(|(id, _)| id)
        .collect();
    let half_open_timeout = net.config.half_open_timeout;
    for id in owned {
        let Some(peer) = net.half(id).map(|h| h.peer) else {
            continue;
        };
        match kind {
            RebootKind::Graceful => net.close(core, id, false),
            RebootKind::Crash | RebootKind::CrashAndWipe => {
                if let Some(p) = net.model_mut(peer)
                    && p.error.is_none()
                {
                    p.half_open = true;
                    core.schedule(
                        half_open_timeout,
                        Event::Network(NetworkEvent::HalfOpenTimeout { half: peer }),
                    );
                    core.fault("network.half_open");
                    log(net, core, peer, "half_open", format_args!("peer crashed"));
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

/// The story's note of a connection event (see [`log`]).
#[inline(never)]
fn note_connection(
    net: &NetworkState,
    core: &Core,
    half: HalfId,
    event: &'static str,
    detail: fmt::Arguments<'_>,
) {
    let Some(h) = net.half(half) else {
        return;
    };
    let peer = net.half(h.peer).map_or(u32::MAX, |p| p.owner.0);
    core.note(|| crate::kernel::story::What::Connection {
        connection: h.connection.0,
        owner: h.owner.0,
        peer,
        event,
        detail: format!("{} -> {}: {detail}", h.local, h.remote),
    });
}

/// The story's note of a partition or clog from `from` to `to` until `until`.
pub(crate) fn note_span(
    core: &Core,
    kind: &'static str,
    from: IpAddr,
    to: IpAddr,
    until: Duration,
) {
    note_span_on(core, kind, from, to, until, None);
}

/// The story's note of a partition or clog from `from` to `to` until `until`; `on`: the one
/// connection end it hits (connection, owning process), drawn on that connection's track.
pub(crate) fn note_span_on(
    core: &Core,
    kind: &'static str,
    from: IpAddr,
    to: IpAddr,
    until: Duration,
    on: Option<(u64, u32)>,
) {
    let process = |ip: IpAddr| core.process_at(ip).map_or(u32::MAX, |p| p.0);
    #[allow(clippy::cast_possible_truncation)]
    core.note(|| crate::kernel::story::What::Span {
        kind,
        from: process(from),
        to: process(to),
        until: until.as_nanos() as u64,
        detail: format!("{from} -> {to} until {until:?}"),
        on,
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::queue::EventQueue;
    use crate::kernel::rng::WorldRng;
    use crate::kernel::trace::TraceHash;
    use rand_core::SeedableRng;
    use std::collections::BTreeMap;

    fn core() -> Core {
        Core {
            now: Duration::ZERO,
            shared_clock: Default::default(),
            seed: 1,
            queue: EventQueue::default(),
            rng: WorldRng::new(1),
            processes: Vec::new(),
            ips: BTreeMap::new(),
            names: BTreeMap::new(),
            faults: BTreeMap::new(),
            fault_kinds: BTreeMap::new(),
            trace: TraceHash::for_seed(1),
            events: 0,
            clock: Default::default(),
            grace: Duration::ZERO,
            trace_log: None,
            story: None,
        }
    }

    fn addr(last: u8, port: u16) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), port)
    }

    /// A connection with 4 bytes in flight towards its server half.
    fn connection_with_bytes_in_flight(core: &mut Core) -> (NetworkState, HalfId, HalfId) {
        let config = NetworkConfiguration::with_fixed_latency(Duration::from_millis(1));
        let mut net = NetworkState::new(config);
        let (client, server) = net.connect_pair(
            core,
            (ProcessId(1), addr(2, 49_152)),
            (ProcessId(0), addr(1, 4500)),
        );
        if let Some(s) = net.model_mut(server) {
            s.bytes.extend([1u8, 2, 3, 4]);
        }
        (net, client, server)
    }

    #[test]
    fn test_a_delivery_is_held_by_its_peers_cut_until_the_peer_is_gone() {
        let executor = Executor::new(rand_chacha::ChaCha8Rng::seed_from_u64(1));
        let mut core = core();
        let (mut net, client, server) = connection_with_bytes_in_flight(&mut core);
        // A random cut started by the client's write: the write path records it on the client
        // and mirrors it on the server half, whose deliveries it holds.
        let cut_end = Duration::from_millis(7);
        if let Some(c) = net.model_mut(client) {
            c.cut_until = nanos(cut_end);
            c.stalls = true;
        }
        if let Some(s) = net.model_mut(server) {
            s.peer_cut_until = nanos(cut_end);
            s.stalls = true;
        }
        apply(
            &mut net,
            &mut core,
            NetworkEvent::Deliver {
                half: server,
                len: 4,
            },
            &executor,
        );
        assert_eq!(net.half(server).map(|h| h.delivered), Some(0), "held");
        assert_eq!(
            core.queue.next_at(),
            Some(cut_end),
            "rescheduled at the cut's end"
        );
        let _ = core.queue.pop();
        // Once the client half is gone its cut holds nothing: the server half forgets it.
        net.remove(client);
        assert_eq!(net.half(server).map(|h| h.peer_cut_until), Some(0));
        apply(
            &mut net,
            &mut core,
            NetworkEvent::Deliver {
                half: server,
                len: 4,
            },
            &executor,
        );
        assert_eq!(net.half(server).map(|h| h.delivered), Some(4));
        assert_eq!(core.queue.next_at(), None);
    }

    #[test]
    fn test_world_control_access_marks_a_half_as_delayed() {
        let mut core = core();
        let (mut net, client, _) = connection_with_bytes_in_flight(&mut core);
        assert_eq!(net.half(client).map(|h| h.delayed), Some(false));
        let _ = net.model_mut(client);
        assert_eq!(
            net.half(client).map(|h| h.delayed),
            Some(false),
            "the model's own access leaves the flag"
        );
        if let Some(h) = net.half_mut(client) {
            h.added_delay = Duration::from_millis(3);
        }
        assert_eq!(net.half(client).map(|h| h.delayed), Some(true));
    }
}
