//! [`SimNetworkProvider`], [`SimTcpListener`] and [`SimTcpStream`]: binding and connecting here;
//! the listener in `listener.rs`, the stream's reads, options and close in `stream.rs`, and its
//! write path (faults decided per write, delivery scheduling, retransmissions) in `write.rs`.

mod listener;
mod stream;
#[cfg(test)]
mod tests;
mod write;

pub use listener::SimTcpListener;
pub use stream::SimTcpStream;
pub(crate) use stream::set_capacity;

use crate::kernel::fault::FaultKind;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use moonpool_core::{NetworkError, NetworkOperation, NetworkProvider};

use super::time::{sleep_for, sleep_until};
use crate::executor::ProcessId;
use crate::handle::WorldHandle;
use crate::kernel::Core;
use crate::network::{
    ConnectionEnd, ConnectionId, ListenScope, Listener, NetworkState, is_unspecified, wake,
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
                // A wildcard or loopback bind listens under the process's own address, with a
                // scope that says who reaches it.
                let (ip, scope) = if is_unspecified(requested.ip()) {
                    (me.ip, ListenScope::Wildcard)
                } else if let Some(loopback) = loopback_ip(requested.ip()) {
                    (me.ip, ListenScope::Loopback(loopback))
                } else {
                    (requested.ip(), ListenScope::Own)
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
                    let taken = |port| net.address_taken(SocketAddr::new(ip, port));
                    me.free_ephemeral_port(taken).ok_or_else(|| {
                        NetworkError::with_kind(
                            NetworkOperation::Bind,
                            given.as_str(),
                            io::ErrorKind::AddrInUse,
                            &format!(
                                "every ephemeral port of {ip} (49152-65535) is in use by a \
                                 listener or a connection"
                            ),
                        )
                    })?
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
                        scope,
                    },
                );
                let shown = match scope {
                    ListenScope::Loopback(loopback) => SocketAddr::new(loopback, port),
                    _ => local,
                };
                Ok(SimTcpListener {
                    world: world.clone(),
                    local,
                    shown,
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
            sleep_until(&world, started.saturating_add(latency)).await;
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
    // `fault_if`: the same draw as `fault(..).chance(..)`, and none at all (not even the
    // stream's creation) at probability zero.
    if core
        .rng
        .fault_if(
            FaultKind::NetworkConnectHang,
            net.config.connect_hang_probability,
        )
        .is_some()
    {
        core.fired(FaultKind::NetworkConnectHang, "network.connect_hang");
        log_connect(core, process, "connect_hang: this connect never completes");
        return ConnectPlan::Hang;
    }
    let latency = net.config.connect_latency.sample(&mut core.rng);
    if core
        .rng
        .fault_if(
            FaultKind::NetworkConnectRefuse,
            net.config.connect_refuse_probability,
        )
        .is_some()
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

/// `ip` as a loopback address (`127.0.0.0/8`, `::1`, and their IPv4-mapped forms as the IPv4
/// address), or `None` when it is not one.
fn loopback_ip(ip: std::net::IpAddr) -> Option<std::net::IpAddr> {
    let canonical = ip.to_canonical();
    canonical.is_loopback().then_some(canonical)
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
    // A loopback address is the connecting process itself: its listeners are kept under its own
    // address, and no partition separates a process from itself.
    let through = loopback_ip(target.ip());
    let (server, listening_at) = if through.is_some() {
        (process, SocketAddr::new(my_ip, target.port()))
    } else {
        if net.partitioned_until(now, my_ip, target.ip()).is_some()
            || net.partitioned_until(now, target.ip(), my_ip).is_some()
        {
            return Err(None);
        }
        let Some(server) = core.process_at(target.ip()).filter(|id| core.is_alive(*id)) else {
            return Err(None);
        };
        (server, target)
    };
    if !net
        .listeners
        .get(&listening_at)
        .is_some_and(|listener| listener.scope.reached(through))
    {
        return Err(Some((
            io::ErrorKind::ConnectionRefused,
            if through.is_some() {
                "connection refused: nothing of this process listens on that port at a \
                 loopback or wildcard address"
            } else {
                "connection refused: nothing listens there"
            },
        )));
    }
    // Through loopback the connection's own address is the loopback one (its ports are apart
    // from those of the process's address, as on a real host).
    let local_ip = through.unwrap_or(my_ip);
    let port = match core.process_mut(process) {
        Some(me) => me.free_ephemeral_port(|port| {
            net.address_taken(SocketAddr::new(local_ip, port))
                || (through.is_some() && net.address_taken(SocketAddr::new(my_ip, port)))
        }),
        None => {
            return Err(Some((
                io::ErrorKind::NotConnected,
                "the connecting process is down",
            )));
        }
    };
    let Some(port) = port else {
        return Err(Some((
            io::ErrorKind::AddrNotAvailable,
            "every ephemeral port (49152-65535) is in use by a listener or a connection",
        )));
    };
    // Through a loopback address both ends have loopback addresses, as on a real host: the
    // streams report them, and so do the connection's halves (`WorldControl::connections_of`).
    let local = SocketAddr::new(local_ip, port);
    let server_address = SocketAddr::new(through.unwrap_or(listening_at.ip()), target.port());
    let (client_half, server_half) =
        net.connect_pair(core, (process, local), (server, server_address));
    if let Some(listener) = net.listeners.get_mut(&listening_at) {
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
        peer: server_address,
    })
}
