//! One endpoint of a connection ([`Half`]) and the cell a slab slot holds it in (the slab is in
//! `slab.rs`), laid out for the round trip.
//!
//! A world with 1,000 connections keeps 2,000 halves, more than a core's L2 cache holds next to
//! the tasks and their futures, so every half a round trip touches is a cache miss per line it
//! touches. The fields are ordered (`repr(C)`) so that a write and a read on a connection
//! without faults touch the first two of the half's five lines, and a delivery the first only
//! (`sim_bench pp:1000x10` under cachegrind, see docs/benchmarks/engine.md):
//!
//! - line 1: what a delivery reads: the slot's generation and liveness, the scripted cut, the
//!   reader's armed flag and its task by slot and id (a delivery wakes it through the executor
//!   without reading the waker object), a flag that says whether the cut and read-clog times
//!   may be set, the delivered count and the byte queue;
//! - line 2: what writes and a reader's registration read besides: the peer, the reader's
//!   waker, the cut times (its own and its peer's, mirrored here so a delivery does not touch
//!   the peer), the send capacity, the in-order floor of the next delivery, the error and the
//!   other flags (with the one that says whether the fault times below may be set);
//! - line 3: the writer's waker (a write waits for room rarely) and the fault times (read-side
//!   clog, clog, extra latency, scripted delay), read only while the flags say they may be
//!   non-zero;
//! - from the end of line 3 to line 5: the loss burst (read only while the flags say it may be
//!   set), the bytes a scripted cut holds, the connection's identity and addresses.
//!
//! Times the network alone keeps are nanoseconds since the start of the run (`u64`, half a
//! `Duration`); the two that `WorldControl` sets stay `Duration`s.

use std::io;
use std::net::SocketAddr;
use std::task::Waker;
use std::time::Duration;

use super::bytes::ByteQueue;
use super::connection::{ConnectionEnd, ConnectionId};
use super::waker_slot::keep_waker;
use crate::executor::{Executor, ProcessId, TaskId, TaskRef, own_task};
use crate::kernel::event::HalfId;

/// The reading task of a half, by its slot and id in the world's executor, when it registered
/// with its own waker: a delivery wakes it through the executor without reading the waker
/// object (a cache line per delivery among many connections). `slot == u32::MAX`: none (a
/// wrapper waker, another executor's task, a registration outside a poll), the waker is woken.
///
/// Packed to 12 bytes (4-aligned) so that it and the flags around it fit in the half's first
/// line; it is only ever copied, never borrowed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[repr(C, packed(4))]
pub(crate) struct ReaderTask {
    slot: u32,
    id: TaskId,
}

impl ReaderTask {
    const NONE: ReaderTask = ReaderTask {
        slot: u32::MAX,
        id: TaskId(0),
    };

    /// The task `waker` belongs to, when it is a task of executor `executor` (its identity, 0 for
    /// not known) registering with its own waker.
    #[inline]
    fn of(waker: &Waker, executor: usize) -> Self {
        match own_task(waker) {
            Some(task) if executor != 0 && task.executor == executor && task.slot != u32::MAX => {
                ReaderTask {
                    slot: task.slot,
                    id: task.id,
                }
            }
            _ => Self::NONE,
        }
    }
}

/// Nanoseconds of a simulated time or delay; past `u64::MAX` (about 584 years) saturates, as
/// the event queue does.
#[inline]
pub(crate) fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// One endpoint of a connection.
#[repr(C)]
pub(crate) struct Half {
    // Line 1: what a delivery reads (and what a read of delivered bytes reads).
    /// Bumped each time the slot is reused, so a stale [`HalfId`] finds nothing.
    pub(crate) generation: u32,
    /// False once removed (the slot is free).
    live: bool,
    /// Scripted cut in force (both halves carry it); deliveries towards this half are held.
    pub(crate) scripted_cut: bool,
    /// `read_waker` holds a registration not yet woken.
    pub(super) read_armed: bool,
    /// Some of `cut_until`, `peer_cut_until` and `read_clogged_until` may be non-zero; while
    /// false they are all zero and neither a delivery nor a read looks at them. Set with them
    /// by the network model, and by every `NetworkState::half_mut`.
    pub(crate) stalls: bool,
    /// The reading task by slot and id, when known (what a delivery wakes).
    read_task: ReaderTask,
    /// The peer's writer may be waiting for room in this half's queue: set by the write that
    /// registered it (see `register_writer`), taken by the read that frees room, so a read
    /// looks at the peer only while it is set.
    pub(crate) writer_waits: bool,
    /// `read_waker` is the waker of the task that registered it, known by slot and id or not
    /// (so waking it runs no foreign code, and needs no deferring).
    read_own: bool,
    /// Bytes delivered and not yet read.
    pub(crate) delivered: usize,
    /// Bytes sent towards this half, oldest first: the first `delivered` are readable, the rest
    /// are in flight.
    pub(crate) bytes: ByteQueue,
    // Line 2: what a write and a reader's registration read besides.
    pub(crate) peer: HalfId,
    /// The waker of the task waiting to read, kept between waits (see `WakerSlot`).
    read_waker: Option<Waker>,
    /// Both directions wait until this (temporary random cut started by this half's write).
    pub(crate) cut_until: u64,
    /// The peer's `cut_until` (zero once the peer is gone), so a delivery here reads one half.
    pub(crate) peer_cut_until: u64,
    /// Bytes this half may have in flight and unread towards its peer.
    pub(crate) send_capacity: usize,
    /// Deliveries towards the peer are not scheduled before this (in-order delivery).
    pub(crate) last_delivery_at: u64,
    /// Reads and writes fail with this.
    pub(crate) error: Option<io::ErrorKind>,
    /// The peer shut down its write side (FIN received).
    pub(crate) fin_received: bool,
    /// This half shut down its write side.
    pub(crate) write_shut: bool,
    /// Writes from this half vanish.
    pub(crate) black_hole: bool,
    /// The peer crashed without telling; writes vanish until the half-open timeout.
    pub(crate) half_open: bool,
    /// A write ran out of retransmissions; the connection fails at the scheduled timeout.
    pub(crate) doomed: bool,
    /// `write_waker` holds a registration not yet woken.
    write_armed: bool,
    /// Some of `clogged_until`, `extra_latency`, `added_delay` and `loss_burst_until` may be
    /// non-zero; while false they are all zero and a write does not read their line. Set with
    /// them by the network model, and by every `NetworkState::half_mut` (the access
    /// `WorldControl` sets delays and loss bursts through).
    pub(crate) delayed: bool,
    // Line 3: the writer's waker (a write waits for room rarely), then the faults, read only
    // while `delayed` or `stalls` says they may be set.
    /// The waker of the task waiting for send buffer space, kept between waits.
    write_waker: Option<Waker>,
    /// `write_waker` is the waker of the task that registered it (so waking it runs no foreign
    /// code, and needs no deferring).
    write_own: bool,
    /// Delivered data stays hidden from the reader until this (read-side clog).
    pub(crate) read_clogged_until: u64,
    /// Deliveries towards the peer wait until this (clog).
    pub(crate) clogged_until: u64,
    /// Permanent extra one-way latency of this direction.
    pub(crate) extra_latency: u64,
    /// Scripted extra one-way delay of writes from this half (`set_connection_delay`).
    pub(crate) added_delay: Duration,
    // From the end of line 3: the loss burst (read by a write only while `delayed`), what a
    // scripted cut holds, then the identity, read by tests, logs and faults.
    /// Every transmission from this half is lost until this (loss burst).
    pub(crate) loss_burst_until: Duration,
    /// Bytes whose delivery a scripted cut held back (released, in order, at restore).
    pub(crate) held: usize,
    /// Bumped by every scripted cut and restore, so stale `CutEnd` events do nothing.
    pub(crate) cut_epoch: u64,
    pub(crate) connection: ConnectionId,
    pub(crate) owner: ProcessId,
    pub(crate) end: ConnectionEnd,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
}

impl Half {
    /// A new live half of `spec`, with no bytes, no faults and no waiting task.
    #[inline]
    pub(crate) fn new(spec: &HalfSpec) -> Self {
        Half {
            generation: 0,
            live: true,
            error: None,
            fin_received: false,
            write_shut: false,
            black_hole: spec.black_hole,
            half_open: false,
            scripted_cut: false,
            doomed: false,
            read_armed: false,
            write_armed: false,
            write_own: false,
            read_own: false,
            delayed: !spec.extra_latency.is_zero(),
            stalls: false,
            delivered: 0,
            peer: HalfId {
                index: 0,
                generation: 0,
            },
            bytes: ByteQueue::new(),
            read_waker: None,
            read_task: ReaderTask::NONE,
            writer_waits: false,
            write_waker: None,
            cut_until: 0,
            peer_cut_until: 0,
            send_capacity: spec.send_capacity,
            last_delivery_at: 0,
            read_clogged_until: 0,
            clogged_until: 0,
            extra_latency: nanos(spec.extra_latency),
            held: 0,
            added_delay: Duration::ZERO,
            loss_burst_until: Duration::ZERO,
            cut_epoch: 0,
            connection: spec.connection,
            owner: spec.owner,
            end: spec.end,
            local: spec.local,
            remote: spec.remote,
        }
    }

    /// Makes a vacant half the new live half of `spec`, field by field in place, keeping its
    /// generation and the byte queue's buffer (see `HalfCell::renew`).
    #[inline]
    fn reset(&mut self, spec: &HalfSpec) {
        self.live = true;
        self.error = None;
        self.fin_received = false;
        self.write_shut = false;
        self.black_hole = spec.black_hole;
        self.half_open = false;
        self.scripted_cut = false;
        self.doomed = false;
        self.read_armed = false;
        self.write_armed = false;
        self.delayed = !spec.extra_latency.is_zero();
        self.stalls = false;
        self.delivered = 0;
        self.peer = HalfId {
            index: 0,
            generation: 0,
        };
        self.bytes.clear();
        self.read_waker = None;
        self.read_task = ReaderTask::NONE;
        self.read_own = false;
        self.write_own = false;
        self.writer_waits = false;
        self.write_waker = None;
        self.cut_until = 0;
        self.peer_cut_until = 0;
        self.send_capacity = spec.send_capacity;
        self.last_delivery_at = 0;
        self.read_clogged_until = 0;
        self.clogged_until = 0;
        self.extra_latency = nanos(spec.extra_latency);
        self.held = 0;
        self.added_delay = Duration::ZERO;
        self.loss_burst_until = Duration::ZERO;
        self.cut_epoch = 0;
        self.connection = spec.connection;
        self.owner = spec.owner;
        self.end = spec.end;
        self.local = spec.local;
        self.remote = spec.remote;
    }

    /// Registers the reading task's waker for the next [`wake_reader`](Self::wake_reader);
    /// `executor` is the identity of the world's executor (0: not known), whose tasks are also
    /// kept by slot and id.
    #[inline]
    pub(crate) fn register_reader(&mut self, waker: &Waker, executor: usize) {
        // The same waker is the same task (the kept clone keeps its address taken), so a task
        // already known by slot and id is not looked up again: only the flag is set (inline,
        // the common case of a reader waiting again), the rest is out of line.
        let same = self
            .read_waker
            .as_ref()
            .is_some_and(|kept| kept.will_wake(waker));
        if same && self.read_task != ReaderTask::NONE {
            self.read_armed = true;
            return;
        }
        self.register_reader_slow(waker, executor, same);
    }

    /// [`register_reader`](Self::register_reader) of a new waker, or of one not yet known by
    /// slot and id.
    #[inline(never)]
    fn register_reader_slow(&mut self, waker: &Waker, executor: usize, same: bool) {
        if !same {
            let old = self.read_waker.replace(waker.clone());
            if !self.read_own {
                // A foreign waker let go of under the world's state: what it holds may reach
                // the world when dropped (see `kernel::wakes`).
                crate::kernel::wakes::drop_later(old);
            }
            self.read_task = ReaderTask::of(waker, executor);
            self.read_own = crate::executor::own_task(waker).is_some();
        } else if self.read_task == ReaderTask::NONE {
            self.read_task = ReaderTask::of(waker, executor);
        }
        self.read_armed = true;
    }

    /// Registers the writing task's waker for the next [`wake_writer`](Self::wake_writer); the
    /// caller sets the peer's `writer_waits`.
    #[inline]
    pub(crate) fn register_writer(&mut self, waker: &Waker) {
        keep_waker(&mut self.write_waker, waker);
        self.write_own = crate::executor::own_task(waker).is_some();
        self.write_armed = true;
    }

    /// Wakes the reading task, once per registration.
    #[inline]
    pub(crate) fn wake_reader(&mut self) {
        if std::mem::take(&mut self.read_armed)
            && let Some(waker) = &self.read_waker
        {
            if self.read_own {
                waker.wake_by_ref();
            } else {
                // Not known to be a task's own: woken once the world's state is let go.
                crate::kernel::wakes::wake_foreign(waker);
            }
        }
    }

    /// Wakes the reading task, once per registration, through `executor` when it is a task of
    /// it known by slot and id (the same wake as its waker's: the task is queued once, by the
    /// same `schedule`). Any other waker (a combinator's, another executor's) is returned for
    /// the caller to wake once it has let go of the world's state: its `wake`, or the drop of
    /// what it holds, may reach the world.
    #[inline]
    #[must_use = "a returned waker must be woken"]
    ///
    /// `peer` is the address of the peer's slot, or 0: a hint for the reader's next write (see
    /// `executor::ahead`), never read through.
    pub(crate) fn wake_reader_on(&mut self, executor: &Executor, peer: usize) -> Option<Waker> {
        if !std::mem::take(&mut self.read_armed) {
            return None;
        }
        let task = self.read_task;
        if task != ReaderTask::NONE {
            // What its read will look at first: this half's first two lines (see the layout
            // above) and the unread bytes; then the peer its reply is written to.
            let here = std::ptr::from_ref(self) as usize;
            executor.wake_task_hinted(
                TaskRef {
                    executor: executor.identity(),
                    slot: task.slot,
                    id: task.id,
                },
                [here, self.bytes.unread_address(), peer],
            );
            None
        } else {
            self.read_waker.clone()
        }
    }

    /// Wakes the writing task, once per registration.
    #[inline]
    pub(crate) fn wake_writer(&mut self) {
        if std::mem::take(&mut self.write_armed)
            && let Some(waker) = &self.write_waker
        {
            if self.write_own {
                waker.wake_by_ref();
            } else {
                // Not known to be a task's own: woken once the world's state is let go.
                crate::kernel::wakes::wake_foreign(waker);
            }
        }
    }

    /// Wakes both tasks (a failure both sides must see).
    pub(crate) fn wake_both(&mut self) {
        self.wake_reader();
        self.wake_writer();
    }
}

/// What a new half is made of.
#[derive(Clone, Copy)]
pub(crate) struct HalfSpec {
    pub(crate) connection: ConnectionId,
    pub(crate) end: ConnectionEnd,
    pub(crate) owner: ProcessId,
    pub(crate) local: SocketAddr,
    pub(crate) remote: SocketAddr,
    pub(crate) send_capacity: usize,
    /// Permanent extra one-way latency of writes from this half.
    pub(crate) extra_latency: Duration,
    /// Writes from this half vanish.
    pub(crate) black_hole: bool,
}

/// A slot's half, live or vacant. `as_ref` and `as_mut` give the live one, as an `Option` of a
/// half would, with the liveness in the half's first cache line (where an `Option`'s niche
/// would land is up to the compiler).
pub(crate) struct HalfCell(Half);

impl HalfCell {
    /// A slot's first half, live, of `spec`.
    #[inline]
    pub(super) fn new(spec: &HalfSpec) -> Self {
        HalfCell(Half::new(spec))
    }

    /// The live half, if any.
    #[inline]
    pub(crate) fn as_ref(&self) -> Option<&Half> {
        self.0.live.then_some(&self.0)
    }

    /// The live half, mutably, if any.
    #[inline]
    pub(crate) fn as_mut(&mut self) -> Option<&mut Half> {
        if self.0.live { Some(&mut self.0) } else { None }
    }

    /// The half, live or vacant: for a caller that checked it is live.
    #[inline]
    pub(super) fn any_mut(&mut self) -> &mut Half {
        &mut self.0
    }

    /// Makes the vacant half the new live half of `spec`, field by field in place (a whole new
    /// half written over it cost two copies of its five lines), with the next generation;
    /// returns that generation.
    #[inline]
    pub(super) fn renew(&mut self, spec: &HalfSpec) -> u32 {
        let generation = self.0.generation.wrapping_add(1);
        self.0.reset(spec);
        self.0.generation = generation;
        generation
    }

    /// Vacates the live half in place: the byte queue and the wakers are the only fields that
    /// own anything (writing a whole vacant half cost more than the rest of a removal). A small
    /// queue buffer is kept for the slot's next half.
    #[inline]
    pub(super) fn vacate(&mut self) {
        let half = &mut self.0;
        half.live = false;
        if half.bytes.capacity() > KEPT_QUEUE_BYTES {
            half.bytes = ByteQueue::new();
        } else {
            half.bytes.clear();
        }
        // Foreign wakers are let go of by the run loop: what they hold may reach the world when
        // dropped (see `kernel::wakes`); a task's own are dropped here.
        let read_waker = half.read_waker.take();
        if !half.read_own {
            crate::kernel::wakes::drop_later(read_waker);
        }
        half.read_task = ReaderTask::NONE;
        let write_waker = half.write_waker.take();
        if !half.write_own {
            crate::kernel::wakes::drop_later(write_waker);
        }
        half.read_armed = false;
        half.write_armed = false;
    }
}

/// A vacated slot keeps its byte queue's buffer up to this size for the next half.
const KEPT_QUEUE_BYTES: usize = 4096;

#[cfg(test)]
mod tests {
    use super::super::slab::Slot;
    use super::*;
    use std::mem::{align_of, offset_of, size_of};
    use std::net::{IpAddr, Ipv4Addr};

    fn addr(last: u8) -> SocketAddr {
        SocketAddr::new(IpAddr::V4(Ipv4Addr::new(10, 0, 0, last)), 4500)
    }

    fn spec(connection: u64) -> HalfSpec {
        HalfSpec {
            connection: ConnectionId(connection),
            end: ConnectionEnd::Client,
            owner: ProcessId(1),
            local: addr(1),
            remote: addr(2),
            send_capacity: 64,
            extra_latency: Duration::from_nanos(5),
            black_hole: false,
        }
    }

    #[test]
    fn test_a_half_keeps_what_a_delivery_reads_in_its_first_line() {
        assert_eq!(align_of::<Slot>(), 64);
        assert_eq!(size_of::<Slot>(), 320, "five lines");
        assert_eq!(offset_of!(Slot, half), 0);
        // Line 1: what a delivery reads (and a read of delivered bytes).
        for (offset, size) in [
            (offset_of!(Half, generation), 4),
            (offset_of!(Half, live), 1),
            (offset_of!(Half, scripted_cut), 1),
            (offset_of!(Half, read_armed), 1),
            (offset_of!(Half, stalls), 1),
            (offset_of!(Half, read_task), size_of::<ReaderTask>()),
            (offset_of!(Half, writer_waits), 1),
            (offset_of!(Half, read_own), 1),
            (offset_of!(Half, delivered), 8),
            (offset_of!(Half, bytes), size_of::<ByteQueue>()),
        ] {
            assert!(offset + size <= 64, "{offset} + {size}");
        }
        // Line 2: the peer, the reader's waker, cut times, send capacity, the in-order floor,
        // the error and the other flags.
        for offset in [
            offset_of!(Half, peer),
            offset_of!(Half, read_waker),
            offset_of!(Half, cut_until),
            offset_of!(Half, peer_cut_until),
            offset_of!(Half, send_capacity),
            offset_of!(Half, last_delivery_at),
            offset_of!(Half, error),
            offset_of!(Half, fin_received),
            offset_of!(Half, write_shut),
            offset_of!(Half, black_hole),
            offset_of!(Half, half_open),
            offset_of!(Half, doomed),
            offset_of!(Half, write_armed),
            offset_of!(Half, delayed),
        ] {
            assert!((64..128).contains(&offset), "{offset}");
        }
        assert!(offset_of!(Half, last_delivery_at) + 8 <= 128);
        // Line 3: the writer's waker, the fault times.
        for offset in [
            offset_of!(Half, write_waker),
            offset_of!(Half, write_own),
            offset_of!(Half, read_clogged_until),
            offset_of!(Half, clogged_until),
            offset_of!(Half, extra_latency),
            offset_of!(Half, added_delay),
        ] {
            assert!((128..192).contains(&offset), "{offset}");
        }
        assert!(offset_of!(Half, added_delay) + size_of::<Duration>() <= 192);
        // The loss burst follows, read only while `delayed` too.
        assert!(offset_of!(Half, loss_burst_until) > offset_of!(Half, added_delay));
        assert!(offset_of!(Half, local) >= 192);
    }

    #[test]
    fn test_a_wake_fires_once_per_registration() {
        use std::sync::Arc;
        use std::sync::atomic::{AtomicUsize, Ordering};
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut h = Half::new(&spec(1));
        h.wake_reader();
        assert_eq!(count.0.load(Ordering::SeqCst), 0, "nothing registered");
        h.register_reader(&waker, 0);
        h.register_writer(&waker);
        h.wake_reader();
        h.wake_reader();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
        h.wake_both();
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            2,
            "only the writer was armed"
        );
    }

    /// A task of the executor registering with its own waker is kept by slot and id, and a
    /// delivery's wake through the executor polls it again, once per registration; a wrapper
    /// waker is not (it is woken as a waker), nor is a task registered for another executor.
    #[test]
    fn test_a_reader_known_by_slot_is_woken_through_the_executor() {
        use rand_core::SeedableRng;
        use std::sync::atomic::{AtomicUsize, Ordering};
        use std::sync::{Arc, Mutex};
        use std::task::Poll;

        let executor = Executor::new(rand_chacha::ChaCha8Rng::seed_from_u64(3));
        let identity = executor.identity();
        let half = Arc::new(Mutex::new(Half::new(&spec(1))));
        let polls = Arc::new(AtomicUsize::new(0));
        let (h, n) = (Arc::clone(&half), Arc::clone(&polls));
        let _task = executor.spawn_in(
            None,
            "reader",
            std::future::poll_fn(move |cx| {
                n.fetch_add(1, Ordering::SeqCst);
                if let Ok(mut h) = h.lock() {
                    h.register_reader(cx.waker(), identity);
                }
                Poll::<()>::Pending
            }),
        );
        executor.run_until_stalled().unwrap();
        assert_eq!(polls.load(Ordering::SeqCst), 1);
        let known = half.lock().unwrap().read_task;
        assert_ne!(known, ReaderTask::NONE, "kept by slot and id");
        assert!(half.lock().unwrap().wake_reader_on(&executor, 0).is_none());
        assert!(half.lock().unwrap().wake_reader_on(&executor, 0).is_none());
        executor.run_until_stalled().unwrap();
        assert_eq!(polls.load(Ordering::SeqCst), 2, "woken once");
        // Registered for another executor's identity: not kept, woken through its waker.
        let other = Arc::clone(&half);
        let _other = executor.spawn_in(
            None,
            "other",
            std::future::poll_fn(move |cx| {
                if let Ok(mut h) = other.lock() {
                    h.register_reader(cx.waker(), identity + 1);
                }
                Poll::<()>::Pending
            }),
        );
        executor.run_until_stalled().unwrap();
        assert_eq!(half.lock().unwrap().read_task, ReaderTask::NONE);
        // Outside any poll nothing is known either; the waker is returned (once) to be woken.
        struct Count(AtomicUsize);
        impl std::task::Wake for Count {
            fn wake(self: Arc<Self>) {
                self.0.fetch_add(1, Ordering::SeqCst);
            }
        }
        let count = Arc::new(Count(AtomicUsize::new(0)));
        let waker = Waker::from(Arc::clone(&count));
        let mut h = Half::new(&spec(2));
        h.register_reader(&waker, identity);
        assert_eq!(h.read_task, ReaderTask::NONE);
        let returned = h.wake_reader_on(&executor, 0);
        assert!(
            h.wake_reader_on(&executor, 0).is_none(),
            "once per registration"
        );
        assert_eq!(
            count.0.load(Ordering::SeqCst),
            0,
            "not woken under the state"
        );
        returned.expect("the foreign waker").wake();
        assert_eq!(count.0.load(Ordering::SeqCst), 1);
    }
}
