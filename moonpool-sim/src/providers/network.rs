//! [`SimNetworkProvider`], [`SimTcpListener`] and [`SimTcpStream`].

use crate::kernel::fault::FaultKind;
use std::future::{Future, poll_fn};
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use moonpool_core::{NetworkError, NetworkOperation, NetworkProvider, TcpListener};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::time::{sleep_for, sleep_until};
use crate::executor::ProcessId;
use crate::handle::WorldHandle;
use crate::kernel::Core;
use crate::kernel::event::Event;
use crate::network::{
    ConnectionEnd, ConnectionId, HalfId, Listener, NetworkEvent, NetworkState, SendBufferState,
    connection_error, is_unspecified, log, wake,
};

/// The network as seen by one simulated process.
#[derive(Clone)]
pub struct SimNetworkProvider {
    world: WorldHandle,
    process: ProcessId,
}

impl SimNetworkProvider {
    pub(crate) fn new(world: WorldHandle, process: ProcessId) -> Self {
        Self { world, process }
    }
}

/// How late a buggified accept is.
const SLOW_ACCEPT: Duration = Duration::from_millis(50);

fn parse_address(operation: NetworkOperation, address: &str) -> Result<SocketAddr, NetworkError> {
    address.parse().map_err(|_| {
        NetworkError::with_kind(
            operation,
            address,
            io::ErrorKind::InvalidInput,
            "not an ip:port socket address (the simulator has no DNS)",
        )
    })
}

enum ConnectPlan {
    Hang,
    Fail(Duration, io::ErrorKind, &'static str),
    Proceed(Duration),
}

impl NetworkProvider for SimNetworkProvider {
    type TcpStream = SimTcpStream;
    type TcpListener = SimTcpListener;

    fn bind(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Self::TcpListener, NetworkError>> + Send {
        let given = address.to_string();
        let world = self.world.clone();
        let process = self.process;
        async move {
            let requested = parse_address(NetworkOperation::Bind, &given)?;
            let latency = world.with(|state| {
                let core = &mut state.core;
                state.network.config.bind_latency.sample(&mut core.rng)
            });
            if !latency.is_zero() {
                sleep_for(&world, latency).await;
            }
            world.with(|state| {
                let core = &mut state.core;
                let net = &mut state.network;
                let me = core
                    .process_mut(process)
                    .filter(|p| p.alive)
                    .ok_or_else(|| {
                        NetworkError::with_kind(
                            NetworkOperation::Bind,
                            given.as_str(),
                            io::ErrorKind::NotConnected,
                            "the binding process is down",
                        )
                    })?;
                let ip = if is_unspecified(requested.ip()) {
                    me.ip
                } else {
                    requested.ip()
                };
                if ip != me.ip {
                    return Err(NetworkError::with_kind(
                        NetworkOperation::Bind,
                        given.as_str(),
                        io::ErrorKind::AddrNotAvailable,
                        &format!("process '{}' owns {}, not {ip}", me.name, me.ip),
                    ));
                }
                let port = if requested.port() == 0 {
                    let mut port = me.ephemeral_port();
                    while net.listeners.contains_key(&SocketAddr::new(ip, port)) {
                        port = me.ephemeral_port();
                    }
                    port
                } else {
                    requested.port()
                };
                let local = SocketAddr::new(ip, port);
                if net.listeners.contains_key(&local) {
                    return Err(NetworkError::with_kind(
                        NetworkOperation::Bind,
                        given.as_str(),
                        io::ErrorKind::AddrInUse,
                        "address already in use",
                    ));
                }
                net.listeners.insert(
                    local,
                    Listener {
                        owner: process,
                        backlog: Default::default(),
                        waker: crate::network::WakerSlot::default(),
                    },
                );
                Ok(SimTcpListener {
                    world: world.clone(),
                    local,
                    owner: process,
                })
            })
        }
    }

    fn connect(
        &self,
        address: &str,
    ) -> impl Future<Output = Result<Self::TcpStream, NetworkError>> + Send {
        let given = address.to_string();
        let world = self.world.clone();
        let process = self.process;
        async move {
            let target = parse_address(NetworkOperation::Connect, &given)?;
            let fail = |kind: io::ErrorKind, message: &str| {
                NetworkError::with_kind(NetworkOperation::Connect, given.as_str(), kind, message)
            };
            let plan =
                world.with(|state| plan_connect(&mut state.network, &mut state.core, process));
            let latency = match plan {
                ConnectPlan::Hang => {
                    std::future::pending::<()>().await;
                    return Err(fail(io::ErrorKind::TimedOut, "connect never completed"));
                }
                ConnectPlan::Fail(latency, kind, message) => {
                    sleep_for(&world, latency).await;
                    return Err(fail(kind, message));
                }
                ConnectPlan::Proceed(latency) => latency,
            };
            let started = world.with(|state| state.core.now);
            sleep_until(&world, started + latency).await;
            let outcome = world.with(|state| {
                establish(&mut state.network, &mut state.core, process, target, &world)
            });
            match outcome {
                Ok(stream) => Ok(stream),
                Err(Some((kind, message))) => Err(fail(kind, message)),
                Err(None) => {
                    // No answer: the host is down or partitioned away. Wait out the timeout.
                    let timeout = world.with(|state| state.network.config.connect_timeout);
                    sleep_until(&world, started + timeout.max(latency)).await;
                    Err(fail(io::ErrorKind::TimedOut, "no answer from the host"))
                }
            }
        }
    }
}

fn plan_connect(net: &mut NetworkState, core: &mut Core, process: ProcessId) -> ConnectPlan {
    if !core.is_alive(process) {
        return ConnectPlan::Fail(
            Duration::ZERO,
            io::ErrorKind::NotConnected,
            "the connecting process is down",
        );
    }
    if core
        .rng
        .fault(FaultKind::NetworkConnectHang)
        .chance(net.config.connect_hang_probability)
    {
        core.fired(FaultKind::NetworkConnectHang, "network.connect_hang");
        log_connect(core, process, "connect_hang: this connect never completes");
        return ConnectPlan::Hang;
    }
    let latency = net.config.connect_latency.sample(&mut core.rng);
    if core
        .rng
        .fault(FaultKind::NetworkConnectRefuse)
        .chance(net.config.connect_refuse_probability)
    {
        core.fired(FaultKind::NetworkConnectRefuse, "network.connect_refused");
        log_connect(core, process, "connect_refused: refused (injected)");
        return ConnectPlan::Fail(
            latency,
            io::ErrorKind::ConnectionRefused,
            "connection refused (injected)",
        );
    }
    ConnectPlan::Proceed(latency)
}

/// A debug event about a connect before any connection exists.
fn log_connect(core: &Core, process: ProcessId, what: &str) {
    tracing::debug!(
        target: "moonpool_sim::network",
        at = ?core.now,
        process = core.process(process).map_or("?", |p| p.name.as_str()),
        "{what}"
    );
}

/// Completes a connect: `Err(None)` means no answer at all (timeout), `Err(Some)` a refusal.
#[allow(clippy::type_complexity)]
fn establish(
    net: &mut NetworkState,
    core: &mut Core,
    process: ProcessId,
    target: SocketAddr,
    world: &WorldHandle,
) -> Result<SimTcpStream, Option<(io::ErrorKind, &'static str)>> {
    let Some(me) = core.process(process).filter(|p| p.alive) else {
        return Err(Some((
            io::ErrorKind::NotConnected,
            "the connecting process is down",
        )));
    };
    let my_ip = me.ip;
    let now = core.now;
    if net.partitioned_until(now, my_ip, target.ip()).is_some()
        || net.partitioned_until(now, target.ip(), my_ip).is_some()
    {
        return Err(None);
    }
    let Some(server) = core.process_at(target.ip()).filter(|id| core.is_alive(*id)) else {
        return Err(None);
    };
    if !net.listeners.contains_key(&target) {
        return Err(Some((
            io::ErrorKind::ConnectionRefused,
            "connection refused: nothing listens there",
        )));
    }
    let port = match core.process_mut(process) {
        Some(me) => me.ephemeral_port(),
        None => {
            return Err(Some((
                io::ErrorKind::NotConnected,
                "the connecting process is down",
            )));
        }
    };
    let local = SocketAddr::new(my_ip, port);
    let (client_half, server_half) = net.connect_pair(core, (process, local), (server, target));
    if let Some(listener) = net.listeners.get_mut(&target) {
        listener.backlog.push_back((server_half, local));
        wake(&mut listener.waker);
    }
    let connection = net
        .half(client_half)
        .map_or(ConnectionId(0), |h| h.connection);
    Ok(SimTcpStream {
        world: world.clone(),
        half: client_half,
        connection,
        end: ConnectionEnd::Client,
        local,
        peer: target,
    })
}

/// A simulated listening socket. Dropping it stops listening; queued connections are reset.
pub struct SimTcpListener {
    world: WorldHandle,
    local: SocketAddr,
    owner: ProcessId,
}

impl TcpListener for SimTcpListener {
    type Stream = SimTcpStream;

    async fn accept(&self) -> Result<(Self::Stream, SocketAddr), NetworkError> {
        let local = self.local;
        let world = &self.world;
        let (half, peer) = poll_fn(|cx| {
            let mut state = world.lock();
            match state.network.listeners.get_mut(&local) {
                Some(listener) if listener.owner == self.owner => {
                    if let Some(next) = listener.backlog.pop_front() {
                        Poll::Ready(Ok(next))
                    } else {
                        listener.waker.register(cx.waker());
                        crate::executor::note_wait(crate::executor::WaitReason::Accept);
                        Poll::Pending
                    }
                }
                _ => Poll::Ready(Err(NetworkError::with_kind(
                    NetworkOperation::Accept,
                    local.to_string(),
                    io::ErrorKind::NotConnected,
                    "the listener is closed (its process went down)",
                ))),
            }
        })
        .await?;
        let latency = world.with(|state| {
            let core = &mut state.core;
            state.network.config.accept_latency.sample(&mut core.rng)
        });
        if !latency.is_zero() {
            sleep_for(world, latency).await;
        }
        // Buggify: a busy server accepts late; the connection waits in the backlog (its client
        // may already be writing).
        if moonpool_core::buggify!() {
            sleep_for(world, SLOW_ACCEPT).await;
        }
        let connection = world.with(|state| {
            let connection = state
                .network
                .half(half)
                .map_or(ConnectionId(0), |h| h.connection);
            log(
                &state.network,
                &state.core,
                half,
                "accept",
                format_args!("on {local}"),
            );
            connection
        });
        Ok((
            SimTcpStream {
                world: world.clone(),
                half,
                connection,
                end: ConnectionEnd::Server,
                local,
                peer,
            },
            peer,
        ))
    }

    fn local_addr(&self) -> Result<SocketAddr, NetworkError> {
        Ok(self.local)
    }
}

impl Drop for SimTcpListener {
    fn drop(&mut self) {
        self.world.with(|state| {
            let owned = state
                .network
                .listeners
                .get(&self.local)
                .is_some_and(|l| l.owner == self.owner);
            if owned && let Some(listener) = state.network.listeners.remove(&self.local) {
                for (half, _) in listener.backlog {
                    state.network.close(&mut state.core, half, true);
                    state.network.remove(half);
                }
            }
        });
    }
}

/// A simulated TCP stream: Tokio's `AsyncRead` and `AsyncWrite`, so hyper and codecs run on it.
pub struct SimTcpStream {
    world: WorldHandle,
    half: HalfId,
    connection: ConnectionId,
    end: ConnectionEnd,
    local: SocketAddr,
    peer: SocketAddr,
}

impl SimTcpStream {
    /// The connection's id, shared by both ends; address it through `WorldControl`.
    pub fn connection_id(&self) -> ConnectionId {
        self.connection
    }

    /// Which end of the connection this stream is.
    pub fn end(&self) -> ConnectionEnd {
        self.end
    }

    /// This end's send buffer (capacity, bytes in flight or unread by the peer, free space), or
    /// `None` once the connection is gone.
    pub fn send_buffer(&self) -> Option<SendBufferState> {
        self.world
            .with(|state| state.network.send_buffer(self.half))
    }

    /// Sets this end's send buffer capacity (at least 1 byte); a writer waiting for space is
    /// woken to look again. Returns false once the connection is gone.
    pub fn set_send_buffer_capacity(&self, bytes: usize) -> bool {
        self.world
            .with(|state| set_capacity(&mut state.network, &mut state.core, self.half, bytes))
    }

    /// This end's address (the process IP and, for outbound connections, an ephemeral port).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The other end's address.
    pub fn peer_addr(&self) -> SocketAddr {
        self.peer
    }
}

/// Sets `half`'s send buffer capacity; false when it is gone.
pub(crate) fn set_capacity(
    net: &mut NetworkState,
    core: &mut Core,
    half: HalfId,
    bytes: usize,
) -> bool {
    let Some(h) = net.half_mut(half) else {
        return false;
    };
    h.send_capacity = bytes.max(1);
    wake(&mut h.write_waker);
    log(
        net,
        core,
        half,
        "send_buffer",
        format_args!("capacity set to {} bytes", bytes.max(1)),
    );
    true
}

fn not_connected(connection: ConnectionId) -> io::Error {
    connection_error(
        connection,
        io::ErrorKind::NotConnected,
        "connection no longer exists",
    )
}

/// Random close of a connection (FDB's random connection failures), with a world-wide cooldown.
/// Returns true when it fired.
fn maybe_random_close(
    net: &mut NetworkState,
    core: &mut Core,
    half: HalfId,
    p: f64,
    on_read: bool,
) -> bool {
    if p <= 0.0 {
        return false;
    }
    let now = core.now;
    if net
        .last_random_close
        .is_some_and(|last| now < last + net.config.random_close_cooldown)
    {
        return false;
    }
    let fault = if on_read {
        FaultKind::NetworkRandomCloseRead
    } else {
        FaultKind::NetworkRandomClose
    };
    if !core.rng.fault(fault).chance(p) {
        return false;
    }
    net.last_random_close = Some(now);
    let Some(peer) = net.half(half).map(|h| h.peer) else {
        return false;
    };
    // Closes on reads are counted under their own names (the write names are pinned).
    let name = |write: &'static str, read: &'static str| if on_read { read } else { write };
    let kind = if core
        .rng
        .fault(fault)
        .chance(net.config.random_close_reset_share)
    {
        net.close(core, half, true);
        name(
            "network.random_close.reset",
            "network.random_close_read.reset",
        )
    } else if core
        .rng
        .fault(fault)
        .chance(net.config.random_close_one_way_share)
    {
        net.close(core, half, false);
        name(
            "network.random_close.one_way",
            "network.random_close_read.one_way",
        )
    } else {
        net.close(core, half, false);
        net.close(core, peer, false);
        name("network.random_close.fin", "network.random_close_read.fin")
    };
    core.fired(fault, kind);
    log(net, core, half, "random_close", format_args!("{kind}"));
    true
}

impl AsyncRead for SimTcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let mut guard = this.world.lock();
        let state = &mut *guard;
        let (net, core, chaos) = (&mut state.network, &mut state.core, state.chaos.as_mut());
        let connection = this.connection;
        let partial_p = net.config.partial_read_probability;
        let close_p = net.config.random_close_read_probability;
        let Some(h) = net.half(this.half) else {
            return Poll::Ready(Err(not_connected(connection)));
        };
        if close_p > 0.0
            && h.error.is_none()
            && maybe_random_close(net, core, this.half, close_p, true)
            && let Some(kind) = net.half(this.half).and_then(|h| h.error)
        {
            return Poll::Ready(Err(connection_error(
                connection,
                kind,
                "connection closed (injected, on read)",
            )));
        }
        let Some(h) = net.half_mut(this.half) else {
            return Poll::Ready(Err(not_connected(connection)));
        };
        if h.delivered > 0 && h.read_clogged_until > core.now {
            // Read-side clog: the data is here, the reader may not see it yet.
            h.read_waker.register(cx.waker());
            crate::executor::note_wait(crate::executor::WaitReason::NetworkRead);
            return Poll::Pending;
        }
        // Buggify: a spurious would-block. The data is here but this poll says "not yet" and
        // wakes the reader at once, as a readiness-based socket may.
        if h.delivered > 0
            && crate::chaos::buggify_at(chaos, moonpool_core::__chaos_site!("buggify", None), 0.05)
        {
            drop(guard);
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let Some(h) = net.half_mut(this.half) else {
            return Poll::Ready(Err(not_connected(connection)));
        };
        if h.delivered > 0 {
            let mut n = buf.remaining().min(h.delivered);
            if n > 1
                && let Some(partial) = core.rng.fault_if(FaultKind::NetworkPartialRead, partial_p)
            {
                n = partial.range(1..=n);
                core.fired(FaultKind::NetworkPartialRead, "network.partial_read");
                tracing::debug!(
                    target: "moonpool_sim::network",
                    at = ?core.now,
                    connection = %connection,
                    "partial_read: {n} of {} bytes",
                    buf.remaining().min(h.delivered)
                );
            }
            let (front, back) = h.bytes.as_slices();
            let from_front = n.min(front.len());
            buf.put_slice(&front[..from_front]);
            if from_front < n {
                buf.put_slice(&back[..n - from_front]);
            }
            h.bytes.drain(..n);
            h.delivered -= n;
            core.note(|| crate::kernel::story::What::Read {
                connection: connection.0,
                bytes: n as u64,
            });
            let peer = h.peer;
            if let Some(p) = net.half_mut(peer) {
                wake(&mut p.write_waker);
            }
            return Poll::Ready(Ok(()));
        }
        if let Some(kind) = h.error {
            return Poll::Ready(Err(connection_error(connection, kind, error_reason(kind))));
        }
        if h.fin_received && h.bytes.is_empty() {
            return Poll::Ready(Ok(()));
        }
        h.read_waker.register(cx.waker());
        crate::executor::note_wait(crate::executor::WaitReason::NetworkRead);
        Poll::Pending
    }
}

fn error_reason(kind: io::ErrorKind) -> &'static str {
    match kind {
        io::ErrorKind::TimedOut => "connection timed out (retransmissions exhausted)",
        io::ErrorKind::ConnectionReset => "connection reset by peer",
        _ => "connection failed",
    }
}

impl AsyncWrite for SimTcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let mut guard = this.world.lock();
        let state = &mut *guard;
        let (net, core, chaos) = (&mut state.network, &mut state.core, state.chaos.as_mut());
        poll_write_locked(net, core, chaos, this.half, this.connection, cx, buf)
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        this.world.with(|state| {
            if state.network.half(this.half).is_some() {
                state.network.close(&mut state.core, this.half, false);
            }
        });
        Poll::Ready(Ok(()))
    }
}

fn poll_write_locked(
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
    let Some(h) = net.half(id) else {
        return Poll::Ready(Err(not_connected(connection)));
    };
    if let Some(kind) = h.error {
        return Poll::Ready(Err(connection_error(connection, kind, error_reason(kind))));
    }
    if h.write_shut {
        return Poll::Ready(Err(connection_error(
            connection,
            io::ErrorKind::BrokenPipe,
            "write after shutdown",
        )));
    }
    let close_p = net.config.random_close_probability;
    if maybe_random_close(net, core, id, close_p, false) {
        let kind = net
            .half(id)
            .and_then(|h| h.error)
            .unwrap_or(io::ErrorKind::BrokenPipe);
        return Poll::Ready(Err(connection_error(
            connection,
            kind,
            "connection closed (injected)",
        )));
    }
    let Some(h) = net.half(id) else {
        return Poll::Ready(Err(not_connected(connection)));
    };
    if h.half_open || h.black_hole {
        // The bytes leave and go nowhere: a dead peer or a black hole never answers.
        let fate = if h.half_open {
            "never delivered: the peer crashed (half-open)"
        } else {
            "never delivered: black hole"
        };
        note_send(net, core, id, buf, None, fate);
        return Poll::Ready(Ok(buf.len()));
    }
    let (peer, from, to) = (h.peer, h.local.ip(), h.remote.ip());
    let capacity = h.send_capacity;
    let Some(p) = net.half(peer) else {
        return Poll::Ready(Err(connection_error(
            connection,
            io::ErrorKind::ConnectionReset,
            "peer closed the connection",
        )));
    };
    let used = p.bytes.len();
    if used >= capacity {
        if let Some(h) = net.half_mut(id) {
            h.write_waker.register(cx.waker());
        }
        crate::executor::note_wait(crate::executor::WaitReason::NetworkWrite);
        return Poll::Pending;
    }
    let mut n = buf.len().min(capacity - used);
    // Buggify: a short write, the socket takes only half of what it was offered.
    if n > 1 && crate::chaos::buggify_at(chaos, moonpool_core::__chaos_site!("buggify", None), 0.05)
    {
        n /= 2;
    }
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
    let mut at = now + net.config.write_latency.sample(&mut core.rng);
    // Faults decided per write.
    if let Some(partition) = core.rng.fault_if(
        FaultKind::NetworkPartition,
        net.config.partition_probability,
    ) {
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
    if let Some(until) = net.partitioned_until(now, from, to) {
        at = at.max(until);
    }
    if !net.pair_clogs.is_empty()
        && let Some(until) = net.pair_clogs.get(&(from, to))
    {
        at = at.max(*until);
    }
    let clog_until = if let Some(clog) = core
        .rng
        .fault_if(FaultKind::NetworkClog, net.config.clog_probability)
    {
        let until = now + clog.duration(net.config.clog_duration.0, net.config.clog_duration.1);
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
        let until = now + cut.duration(net.config.cut_duration.0, net.config.cut_duration.1);
        core.fired(FaultKind::NetworkCut, "network.cut");
        log(net, core, id, "cut", format_args!("random, temporary"));
        Some(until)
    } else {
        None
    };
    let Some(h) = net.half_mut(id) else {
        return Poll::Ready(Err(not_connected(connection)));
    };
    let mut ends = [None, None];
    if let Some(until) = clog_until {
        h.clogged_until = h.clogged_until.max(until);
        ends[0] = Some((until, false));
    }
    if let Some(until) = cut_until {
        h.cut_until = h.cut_until.max(until);
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
    let at = at + h.extra_latency + h.added_delay;
    // Loss as TCP sees it: late, never missing. Retransmissions are timed from the segment's
    // own send; the head-of-line wait behind earlier segments comes after.
    let outcome = transmit(net, core, id, now, at);
    let Some(h) = net.half_mut(id) else {
        return Poll::Ready(Err(not_connected(connection)));
    };
    let at = match outcome {
        Transmission::Delivered(at) => at
            .max(h.last_delivery_at)
            .max(h.clogged_until)
            .max(h.cut_until),
        Transmission::Failed(fail_at) => {
            // Accepted by the kernel, never acknowledged: the connection dies at `fail_at`.
            h.doomed = true;
            h.last_delivery_at = h.last_delivery_at.max(fail_at);
            core.schedule_at(
                fail_at,
                Event::Network(NetworkEvent::RetransmitTimeout { half: id }),
            );
            if let Some(p) = net.half_mut(peer) {
                p.bytes.extend(&buf[..n]);
            }
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
    h.last_delivery_at = at;
    let doomed = h.doomed;
    if let Some(p) = net.half_mut(peer) {
        p.bytes.extend(&buf[..n]);
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
    note_send(net, core, id, &buf[..n], Some(sequence), "delivered");
    Poll::Ready(Ok(n))
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
) -> Transmission {
    let config = &net.config;
    let (loss_p, burst_p) = (config.loss_probability, config.loss_burst_probability);
    let (rto0, max_retransmits) = (config.retransmit_timeout, config.max_retransmits);
    let burst_range = config.loss_burst_duration;
    if let Some(burst) = core.rng.fault_if(FaultKind::NetworkLossBurst, burst_p) {
        let until = now.saturating_add(burst.duration(burst_range.0, burst_range.1));
        if let Some(h) = net.half_mut(id) {
            h.loss_burst_until = h.loss_burst_until.max(until);
        }
        core.fired(FaultKind::NetworkLossBurst, "network.loss_burst");
        log(
            net,
            core,
            id,
            "loss_burst",
            format_args!("every segment lost until {until:?}"),
        );
    }
    let burst_until = net.half(id).map_or(Duration::ZERO, |h| h.loss_burst_until);
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

impl Drop for SimTcpStream {
    fn drop(&mut self) {
        self.world.with(|state| {
            if state.network.half(self.half).is_some() {
                log(
                    &state.network,
                    &state.core,
                    self.half,
                    "close",
                    format_args!("stream dropped"),
                );
            }
            if let Some(h) = state.network.half(self.half) {
                if h.error.is_none() && !h.half_open {
                    state.network.close(&mut state.core, self.half, false);
                }
                state.network.remove(self.half);
            }
        });
    }
}
