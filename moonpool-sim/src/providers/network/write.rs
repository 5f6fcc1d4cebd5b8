//! The write path of a [`SimTcpStream`](super::SimTcpStream): the faults decided per write
//! (short and partial writes, partitions, clogs, cuts, black holes, half-open peers), the
//! delivery time (latency, in-order delivery, retransmissions of lost segments) and the
//! delivery event, with the trace and story notes of what was sent.

use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::task::{Context, Poll};
use std::time::Duration;

use super::stream::{error_reason, maybe_random_close, not_connected};
use crate::kernel::Core;
use crate::kernel::event::Event;
use crate::kernel::fault::FaultKind;
use crate::network::{
    ConnectionId, Half, HalfId, NetworkEvent, NetworkState, Slots, append_to, connection_error,
    log, nanos,
};

pub(super) fn poll_write_locked(
    net: &mut NetworkState,
    core: &mut Core,
    chaos: Option<&mut crate::chaos::RunChaos>,
    id: HalfId,
    connection: ConnectionId,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Poll<io::Result<usize>> {
    if buf.is_empty() {
        return Poll::Ready(Ok(0));
    }
    // Buggify: a short write, the socket takes only half of what it was offered. One site for
    // both paths below.
    let short_write = moonpool_core::__chaos_site!("buggify", None);
    // A write that no fault drawn per write can reach takes the quiet path (see `quiet_pair`):
    // the same checks, draws, state and event as the full path below, with nothing else read.
    if net.quiet_writes
        && net.partitions.is_empty()
        && net.pair_clogs.is_empty()
        && let Some((h, p)) = quiet_pair(&mut net.slots, id)
    {
        #[cfg(test)]
        crate::network::testing::note_quiet_write();
        let mut n = buf.len().min(h.send_capacity - p.bytes.len());
        if n > 1 && crate::chaos::buggify_at(chaos, short_write, 0.05) {
            n /= 2;
        }
        let bytes = &buf[..n];
        // The latency draw, the in-order delivery time, the bytes into the peer's queue and
        // the delivery event, exactly as the full path does them when no fault can fire (every
        // time in nanoseconds, as the half keeps them: `nanos` is monotonic and saturating, so
        // the maxima and the saturated sum are the full path's on `Duration`s).
        let latency = match net.fixed_write_latency {
            Some(latency) => latency,
            None => nanos(net.config.write_latency.sample(&mut core.rng)),
        };
        let at = nanos(core.now)
            .saturating_add(latency)
            .max(h.last_delivery_at)
            .max(h.cut_until);
        h.last_delivery_at = at;
        let peer = h.peer;
        append_to(h, p, bytes);
        // `at` is not before now: the same push as `Core::schedule_at`'s.
        let sequence = core.queue.push_nanos(
            at,
            Event::Network(NetworkEvent::Deliver { half: peer, len: n }),
        );
        if core.trace_log.is_some() {
            note_trace(net, core, id, peer, n, sequence);
        }
        if core.story.is_some() {
            note_send(net, core, id, bytes, Some(sequence), "delivered");
        }
        return Poll::Ready(Ok(n));
    }
    let (peer, room) = match admit(net, core, id, connection, cx, buf) {
        Ok(found) => found,
        Err(done) => return done,
    };
    let mut n = buf.len().min(room);
    if n > 1 && crate::chaos::buggify_at(chaos, short_write, 0.05) {
        n /= 2;
    }
    send(net, core, id, peer, connection, buf, n)
}

/// For a write on `id` that no fault drawn per write can reach, the half and its peer; `None`
/// sends it down the full path. The caller checked that the configuration makes every fault the
/// full path draws per write impossible (`NetworkState::quiet_writes`: random close, partial
/// write, partition, clog, cut, loss and loss burst at probability zero) and that no partition
/// or pair clog exists; here the half and its peer must be live, the half free of errors,
/// shutdown, half-open peer, black hole, pending retransmission failure and any delay or loss
/// burst set on it (`delayed`), and the peer's queue must have room. Changes nothing, so the
/// full path can start from scratch when it answers `None`.
#[inline]
fn quiet_pair(slots: &mut Slots, id: HalfId) -> Option<(&mut Half, &mut Half)> {
    let (h, p) = crate::network::live_pair_mut(slots, id)?;
    let blocked =
        h.error.is_some() || h.write_shut || h.half_open || h.black_hole || h.delayed || h.doomed;
    (!blocked && p.bytes.len() < h.send_capacity).then_some((h, p))
}

/// The full path's checks before a write takes bytes: errors, shutdown, a random close, a
/// half-open peer or a black hole (the bytes vanish), a gone peer, a full send buffer (the
/// writer waits). `Ok((peer, room))` lets the write go on; `Err` is what it returns.
#[inline(never)]
fn admit(
    net: &mut NetworkState,
    core: &mut Core,
    id: HalfId,
    connection: ConnectionId,
    cx: &mut Context<'_>,
    buf: &[u8],
) -> Result<(HalfId, usize), Poll<io::Result<usize>>> {
    let close_p = net.config.random_close_probability;
    let Some(mut h) = net.half(id) else {
        return Err(Poll::Ready(Err(not_connected(connection))));
    };
    if let Some(kind) = h.error {
        return Err(Poll::Ready(Err(connection_error(
            connection,
            kind,
            error_reason(kind),
        ))));
    }
    if h.write_shut {
        return Err(Poll::Ready(Err(connection_error(
            connection,
            io::ErrorKind::BrokenPipe,
            "write after shutdown",
        ))));
    }
    if close_p > 0.0 {
        if maybe_random_close(net, core, id, close_p, false) {
            let kind = net
                .half(id)
                .and_then(|h| h.error)
                .unwrap_or(io::ErrorKind::BrokenPipe);
            return Err(Poll::Ready(Err(connection_error(
                connection,
                kind,
                "connection closed (injected)",
            ))));
        }
        let Some(again) = net.half(id) else {
            return Err(Poll::Ready(Err(not_connected(connection))));
        };
        h = again;
    }
    if h.half_open || h.black_hole {
        // The bytes leave and go nowhere: a dead peer or a black hole never answers.
        let fate = if h.half_open {
            "never delivered: the peer crashed (half-open)"
        } else {
            "never delivered: black hole"
        };
        note_send(net, core, id, buf, None, fate);
        return Err(Poll::Ready(Ok(buf.len())));
    }
    let peer = h.peer;
    let capacity = h.send_capacity;
    let Some(p) = net.half(peer) else {
        return Err(Poll::Ready(Err(connection_error(
            connection,
            io::ErrorKind::ConnectionReset,
            "peer closed the connection",
        ))));
    };
    let used = p.bytes.len();
    if used >= capacity {
        if let Some(h) = net.model_mut(id) {
            h.register_writer(cx.waker());
        }
        // The read that frees room looks at this half only while its reader's half says so.
        if let Some(p) = net.model_mut(peer) {
            p.writer_waits = true;
        }
        crate::executor::note_wait(crate::executor::WaitReason::NetworkWrite);
        return Err(Poll::Pending);
    }
    Ok((peer, capacity - used))
}

/// The full path's send of the first `n` bytes of `buf` from `id` to `peer`: the faults decided
/// per write (partial write, partition, clog, cut, loss and loss burst), the delivery time and
/// the delivery event.
#[inline(never)]
fn send(
    net: &mut NetworkState,
    core: &mut Core,
    id: HalfId,
    peer: HalfId,
    connection: ConnectionId,
    buf: &[u8],
    mut n: usize,
) -> Poll<io::Result<usize>> {
    if n > 1
        && let Some(partial) = core.rng.fault_if(
            FaultKind::NetworkPartialWrite,
            net.config.partial_write_probability,
        )
    {
        n = partial.range(1..=n);
        core.fired(FaultKind::NetworkPartialWrite, "network.partial_write");
        log(
            net,
            core,
            id,
            "partial_write",
            format_args!("{n} of {} bytes", buf.len()),
        );
    }
    let now = core.now;
    let mut at = now.saturating_add(net.config.write_latency.sample(&mut core.rng));
    // Faults decided per write.
    if let Some(partition) = core.rng.fault_if(
        FaultKind::NetworkPartition,
        net.config.partition_probability,
    ) && let Some((from, to)) = ips(net, id)
    {
        let until = now
            + partition.duration(
                net.config.partition_duration.0,
                net.config.partition_duration.1,
            );
        net.add_partition(now, from, to, until);
        net.add_partition(now, to, from, until);
        core.fired(FaultKind::NetworkPartition, "network.partition");
        crate::network::note_span(core, "partition", from, to, until);
        crate::network::note_span(core, "partition", to, from, until);
        log(
            net,
            core,
            id,
            "partition",
            format_args!("{from} <-> {to} until {until:?}"),
        );
    }
    // The addresses sit in a line of the half the write does not otherwise read: looked at
    // only when some partition or pair clog exists (with none, neither can delay the write).
    if !net.partitions.is_empty()
        && let Some((from, to)) = ips(net, id)
        && let Some(until) = net.partitioned_until(now, from, to)
    {
        at = at.max(until);
    }
    if !net.pair_clogs.is_empty()
        && let Some((from, to)) = ips(net, id)
        && let Some(until) = net.pair_clogs.get(&(from, to))
    {
        at = at.max(*until);
    }
    let clog_until = if let Some(clog) = core
        .rng
        .fault_if(FaultKind::NetworkClog, net.config.clog_probability)
    {
        let until = now
            .saturating_add(clog.duration(net.config.clog_duration.0, net.config.clog_duration.1));
        core.fired(FaultKind::NetworkClog, "network.clog");
        log(net, core, id, "clog", format_args!("sending direction"));
        Some(until)
    } else {
        None
    };
    let cut_until = if let Some(cut) = core
        .rng
        .fault_if(FaultKind::NetworkCut, net.config.cut_probability)
    {
        let until =
            now.saturating_add(cut.duration(net.config.cut_duration.0, net.config.cut_duration.1));
        core.fired(FaultKind::NetworkCut, "network.cut");
        log(net, core, id, "cut", format_args!("random, temporary"));
        Some(until)
    } else {
        None
    };
    let (from, to) = if clog_until.is_some() || cut_until.is_some() {
        ips(net, id).unwrap_or((unspecified(), unspecified()))
    } else {
        (unspecified(), unspecified())
    };
    let Some(h) = net.model_mut(id) else {
        return Poll::Ready(Err(not_connected(connection)));
    };
    let mut ends = [None, None];
    if let Some(until) = clog_until {
        h.clogged_until = h.clogged_until.max(nanos(until));
        h.delayed = true;
        ends[0] = Some((until, false));
    }
    let mut mirror_cut = None;
    if let Some(until) = cut_until {
        h.cut_until = h.cut_until.max(nanos(until));
        h.stalls = true;
        mirror_cut = Some(h.cut_until);
        ends[1] = Some((until, true));
    }
    // Each random clog or cut logs its end too (an event that changes nothing else).
    for (until, cut) in ends.into_iter().flatten() {
        let kind = if cut { "cut" } else { "clog" };
        let on = Some((h.connection.0, h.owner.0));
        crate::network::note_span_on(core, kind, from, to, until, on);
        core.schedule_at(
            until,
            Event::Network(NetworkEvent::RandomFaultEnd { half: id, cut }),
        );
    }
    // The fault times are all zero unless `delayed` says otherwise (their line stays unread).
    let delayed = h.delayed;
    let (extra, added, clogged) = if delayed {
        (h.extra_latency, h.added_delay, h.clogged_until)
    } else {
        (0, Duration::ZERO, 0)
    };
    // Saturating: a delay set by `WorldControl::set_connection_delay` may be `Duration::MAX`.
    let at = at
        .saturating_add(Duration::from_nanos(extra))
        .saturating_add(added);
    if let Some(cut) = mirror_cut
        && let Some(p) = net.model_mut(peer)
    {
        // A delivery towards the peer reads the cut from the peer's own half.
        p.peer_cut_until = cut;
        p.stalls = true;
    }
    // Loss as TCP sees it: late, never missing. Retransmissions are timed from the segment's
    // own send; the head-of-line wait behind earlier segments comes after.
    let outcome = transmit(net, core, id, now, at, delayed);
    // One lookup for both halves (the peer was live above, and nothing since removes a half).
    let Some((h, mut p)) = net.pair_mut(id, peer) else {
        return Poll::Ready(Err(not_connected(connection)));
    };
    let at = match outcome {
        Transmission::Delivered(at) => at
            .max(Duration::from_nanos(h.last_delivery_at))
            .max(Duration::from_nanos(clogged))
            .max(Duration::from_nanos(h.cut_until)),
        Transmission::Failed(fail_at) => {
            // Accepted by the kernel, never acknowledged: the connection dies at `fail_at`.
            h.doomed = true;
            h.last_delivery_at = h.last_delivery_at.max(nanos(fail_at));
            if let Some(p) = p.as_deref_mut() {
                append_to(h, p, &buf[..n]);
            }
            core.schedule_at(
                fail_at,
                Event::Network(NetworkEvent::RetransmitTimeout { half: id }),
            );
            note_send(
                net,
                core,
                id,
                &buf[..n],
                None,
                "never delivered: every retransmission lost (the connection times out)",
            );
            return Poll::Ready(Ok(n));
        }
    };
    h.last_delivery_at = nanos(at);
    let doomed = h.doomed;
    if let Some(p) = p {
        append_to(h, p, &buf[..n]);
    }
    if doomed {
        // Behind a segment that will never arrive: the connection fails first.
        note_send(
            net,
            core,
            id,
            &buf[..n],
            None,
            "never delivered: behind a segment that never arrives",
        );
        return Poll::Ready(Ok(n));
    }
    let sequence = core.schedule_at(
        at,
        Event::Network(NetworkEvent::Deliver { half: peer, len: n }),
    );
    if core.trace_log.is_some() {
        note_trace(net, core, id, peer, n, sequence);
    }
    note_send(net, core, id, &buf[..n], Some(sequence), "delivered");
    Poll::Ready(Ok(n))
}

/// The event trace's entry of `n` bytes sent from `id` to `peer` as event `sequence`.
#[inline(never)]
fn note_trace(
    net: &NetworkState,
    core: &mut Core,
    id: HalfId,
    peer: HalfId,
    n: usize,
    sequence: u64,
) {
    let writer = net.half(id).map_or(u32::MAX, |h| h.owner.0);
    let reader = net.half(peer).map_or(u32::MAX, |h| h.owner.0);
    #[allow(clippy::cast_possible_truncation)]
    let entry = crate::kernel::trace::TraceEntry {
        at_nanos: core.now.as_nanos() as u64,
        kind: crate::kernel::trace::TRACE_SEND,
        object: n as u64,
        schedule_hash: 0,
        sequence,
        process: writer,
        peer: reader,
    };
    if let Some(log) = core.trace_log.as_mut() {
        log.push(entry);
    }
}

/// The local and remote IPs of `id`.
fn ips(net: &NetworkState, id: HalfId) -> Option<(IpAddr, IpAddr)> {
    net.half(id).map(|h| (h.local.ip(), h.remote.ip()))
}

fn unspecified() -> IpAddr {
    IpAddr::V4(Ipv4Addr::UNSPECIFIED)
}

/// The story's note of `bytes` written on `id` (delivered as event `sequence`, or never).
#[inline]
fn note_send(
    net: &NetworkState,
    core: &Core,
    id: HalfId,
    bytes: &[u8],
    sequence: Option<u64>,
    fate: &'static str,
) {
    if core.story.is_none() {
        return;
    }
    let Some(h) = net.half(id) else {
        return;
    };
    let to = net.half(h.peer).map_or(u32::MAX, |p| p.owner.0);
    core.note(|| crate::kernel::story::What::Send {
        connection: h.connection.0,
        from: h.owner.0,
        to,
        bytes: bytes.len() as u64,
        sequence,
        fate,
        preview: crate::kernel::story::preview(bytes),
    });
}

enum Transmission {
    /// Arrives at this time (after any retransmissions).
    Delivered(Duration),
    /// Every retransmission was lost; the connection fails at this time.
    Failed(Duration),
}

/// Sends one segment from `id` at `now`, arriving at `at` if nothing is lost. Each lost
/// transmission (random loss, or any transmission inside a loss burst) is retried after the
/// retransmission timeout, doubling each time; past `max_retransmits` the connection fails.
/// Draws randomness only when `loss_probability` or `loss_burst_probability` is non-zero.
fn transmit(
    net: &mut NetworkState,
    core: &mut Core,
    id: HalfId,
    now: Duration,
    at: Duration,
    mut delayed: bool,
) -> Transmission {
    let config = &net.config;
    let (loss_p, burst_p) = (config.loss_probability, config.loss_burst_probability);
    let (rto0, max_retransmits) = (config.retransmit_timeout, config.max_retransmits);
    let burst_range = config.loss_burst_duration;
    if let Some(burst) = core.rng.fault_if(FaultKind::NetworkLossBurst, burst_p) {
        let until = now.saturating_add(burst.duration(burst_range.0, burst_range.1));
        if let Some(h) = net.model_mut(id) {
            h.loss_burst_until = h.loss_burst_until.max(until);
            h.delayed = true;
        }
        delayed = true;
        core.fired(FaultKind::NetworkLossBurst, "network.loss_burst");
        log(
            net,
            core,
            id,
            "loss_burst",
            format_args!("every segment lost until {until:?}"),
        );
    }
    // `delayed` is the half's flag (the caller read it; a burst just started sets it): with it
    // false the loss burst is zero and the half is not looked up again.
    let burst_until = if delayed {
        net.half(id)
            .filter(|h| h.delayed)
            .map_or(Duration::ZERO, |h| h.loss_burst_until)
    } else {
        Duration::ZERO
    };
    if loss_p <= 0.0 && burst_until <= now {
        return Transmission::Delivered(at);
    }
    let one_way = at.saturating_sub(now);
    let mut sent = now;
    let mut rto = rto0;
    let mut losses = 0u32;
    loop {
        let in_burst = sent < burst_until;
        let lost =
            in_burst || (loss_p > 0.0 && core.rng.fault(FaultKind::NetworkLoss).chance(loss_p));
        if !lost {
            break;
        }
        core.fired(
            if in_burst {
                FaultKind::NetworkLossBurst
            } else {
                FaultKind::NetworkLoss
            },
            "network.loss",
        );
        log(
            net,
            core,
            id,
            "loss",
            format_args!("segment sent at {sent:?} lost; retransmit after {rto:?}"),
        );
        if losses >= max_retransmits {
            let fail_at = sent.saturating_add(rto);
            log(
                net,
                core,
                id,
                "retransmit_exhausted",
                format_args!("{} transmissions lost; fails at {fail_at:?}", losses + 1),
            );
            return Transmission::Failed(fail_at);
        }
        losses += 1;
        sent = sent.saturating_add(rto);
        rto = rto.saturating_mul(2);
    }
    if losses > 0 {
        core.fault("network.retransmit");
    }
    Transmission::Delivered(at.max(sent.saturating_add(one_way)))
}
