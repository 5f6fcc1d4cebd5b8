//! The network's verbs on [`WorldControl`]: partitions, clogs, per-connection controls
//! (cut, restore, read clog, per-direction delay, loss burst, send buffer), inspection.

use std::net::IpAddr;
use std::time::Duration;

use super::WorldControl;
use crate::executor::ProcessId;
use crate::network::{
    ConnectionEnd, ConnectionId, ConnectionInfo, SendBufferState, log, note_span,
};
use crate::providers::network::set_capacity;

impl WorldControl {
    /// Partitions `a` and `b` in both directions for `duration`: existing connections stall,
    /// new connects time out.
    pub fn partition(&self, a: IpAddr, b: IpAddr, duration: Duration) {
        self.handle.with(|state| {
            let until = state.core.now.saturating_add(duration);
            let now = state.core.now;
            state.network.add_partition(now, a, b, until);
            state.network.add_partition(now, b, a, until);
            state.core.fault("network.partition");
            note_span(&state.core, "partition", a, b, until);
            note_span(&state.core, "partition", b, a, until);
            tracing::debug!(target: "moonpool_sim::network", at = ?now, "partition: {a} <-> {b} until {until:?} (scripted)");
        });
    }

    /// Partitions traffic from `from` to `to` only.
    pub fn partition_one_way(&self, from: IpAddr, to: IpAddr, duration: Duration) {
        self.handle.with(|state| {
            let until = state.core.now.saturating_add(duration);
            state.network.add_partition(state.core.now, from, to, until);
            state.core.fault("network.partition_one_way");
            note_span(&state.core, "partition (one way)", from, to, until);
            tracing::debug!(target: "moonpool_sim::network", at = ?state.core.now, "partition_one_way: {from} -> {to} until {until:?} (scripted)");
        });
    }

    /// Cuts `ip` off from every other process for `duration`.
    pub fn isolate(&self, ip: IpAddr, duration: Duration) {
        self.handle.with(|state| {
            let until = state.core.now.saturating_add(duration);
            let others: Vec<IpAddr> = state
                .core
                .ips
                .keys()
                .copied()
                .filter(|o| *o != ip)
                .collect();
            for other in others {
                note_span(&state.core, "isolate", ip, other, until);
                note_span(&state.core, "isolate", other, ip, until);
                state
                    .network
                    .add_partition(state.core.now, ip, other, until);
                state
                    .network
                    .add_partition(state.core.now, other, ip, until);
            }
            state.core.fault("network.isolate");
            tracing::debug!(target: "moonpool_sim::network", at = ?state.core.now, "isolate: {ip} until {until:?} (scripted)");
        });
    }

    /// Ends every partition now (bytes held back are delivered when their hold expires).
    pub fn heal_partitions(&self) {
        self.handle.with(|state| state.network.partitions.clear());
    }

    /// Clogs traffic from `from` to `to` for `duration`: writes are accepted, deliveries wait.
    pub fn clog(&self, from: IpAddr, to: IpAddr, duration: Duration) {
        self.handle.with(|state| {
            let until = state.core.now.saturating_add(duration);
            state.network.pair_clogs.insert((from, to), until);
            state.core.fault("network.clog_pair");
            note_span(&state.core, "clog", from, to, until);
            tracing::debug!(target: "moonpool_sim::network", at = ?state.core.now, "clog_pair: {from} -> {to} until {until:?} (scripted)");
        });
    }

    /// Number of connection halves currently open in the world.
    pub fn open_connections(&self) -> usize {
        self.handle.with(|state| state.network.live_halves())
    }

    /// Every live connection end owned by `process`, in connection order.
    pub fn connections_of(&self, process: ProcessId) -> Vec<ConnectionInfo> {
        self.handle.with(|state| {
            let mut ends: Vec<ConnectionInfo> = state
                .network
                .slots
                .iter()
                .filter_map(|slot| slot.half.as_ref())
                .filter(|h| h.owner == process)
                .map(|h| ConnectionInfo {
                    id: h.connection,
                    end: h.end,
                    local: h.local,
                    remote: h.remote,
                })
                .collect();
            ends.sort_by_key(|info| (info.id, info.end));
            ends
        })
    }

    /// Cuts `connection`: both directions stall (writes are accepted, nothing is delivered,
    /// nothing is lost) until [`restore_connection`](Self::restore_connection) or, with
    /// `Some(duration)`, until it passes. Returns false when the connection is gone.
    pub fn cut_connection(&self, connection: ConnectionId, duration: Option<Duration>) -> bool {
        self.handle.with(|state| {
            state
                .network
                .cut_connection(&mut state.core, connection, duration)
        })
    }

    /// Ends a scripted cut now; the bytes it held back are delivered in order. Returns false
    /// when the connection is gone or was not cut by a script.
    pub fn restore_connection(&self, connection: ConnectionId) -> bool {
        self.handle.with(|state| {
            state
                .network
                .restore_connection(&mut state.core, connection)
        })
    }

    /// True while a scripted or random cut holds `connection`.
    pub fn is_connection_cut(&self, connection: ConnectionId) -> bool {
        self.handle
            .with(|state| state.network.is_cut(state.core.now, connection))
    }

    /// Read-side clog: data already delivered to `end` of `connection` is hidden from its
    /// reader for `duration` (the reader waits as if nothing had arrived). Returns false when
    /// that end is gone.
    pub fn clog_connection_reads(
        &self,
        connection: ConnectionId,
        end: ConnectionEnd,
        duration: Duration,
    ) -> bool {
        self.handle.with(|state| {
            let Some(half) = state.network.half_at(connection, end) else {
                return false;
            };
            state
                .network
                .clog_reads(&mut state.core, half, duration, true);
            true
        })
    }

    /// Extra one-way delay per direction of `connection`, on top of the write latency:
    /// `to_server` for bytes the client writes, `to_client` for bytes the server writes.
    /// Applies to later writes. Returns false when the connection is gone.
    pub fn set_connection_delay(
        &self,
        connection: ConnectionId,
        to_server: Duration,
        to_client: Duration,
    ) -> bool {
        self.handle.with(|state| {
            let net = &mut state.network;
            let halves = net.halves_of(connection);
            for id in &halves {
                if let Some(h) = net.half_mut(*id) {
                    h.added_delay = match h.end {
                        ConnectionEnd::Client => to_server,
                        ConnectionEnd::Server => to_client,
                    };
                }
            }
            if let Some(first) = halves.first() {
                state.core.fault("network.connection_delay");
                log(
                    net,
                    &state.core,
                    *first,
                    "delay",
                    format_args!("to server +{to_server:?}, to client +{to_client:?}"),
                );
            }
            !halves.is_empty()
        })
    }

    /// A loss burst on the direction written by `from` of `connection`: every transmission is
    /// lost for `duration`. Short bursts delay the stream (retransmissions with backoff); one
    /// longer than `NetworkConfiguration::retransmission_budget` fails the connection with
    /// `TimedOut`. Returns false when that end is gone.
    pub fn loss_burst(
        &self,
        connection: ConnectionId,
        from: ConnectionEnd,
        duration: Duration,
    ) -> bool {
        self.handle.with(|state| {
            let now = state.core.now;
            let net = &mut state.network;
            let Some(half) = net.half_at(connection, from) else {
                return false;
            };
            let until = now.saturating_add(duration);
            if let Some(h) = net.half_mut(half) {
                h.loss_burst_until = h.loss_burst_until.max(until);
            }
            state.core.fault("network.loss_burst_connection");
            log(
                net,
                &state.core,
                half,
                "loss_burst",
                format_args!("scripted, every segment lost until {until:?}"),
            );
            true
        })
    }

    /// The send buffer of `end` of `connection`: capacity, use, free space.
    pub fn send_buffer(
        &self,
        connection: ConnectionId,
        end: ConnectionEnd,
    ) -> Option<SendBufferState> {
        self.handle.with(|state| {
            let half = state.network.half_at(connection, end)?;
            state.network.send_buffer(half)
        })
    }

    /// Sets the send buffer capacity of `end` of `connection` (at least 1 byte). Returns false
    /// when that end is gone.
    pub fn set_send_buffer_capacity(
        &self,
        connection: ConnectionId,
        end: ConnectionEnd,
        bytes: usize,
    ) -> bool {
        self.handle.with(|state| {
            let Some(half) = state.network.half_at(connection, end) else {
                return false;
            };
            set_capacity(&mut state.network, &mut state.core, half, bytes)
        })
    }
}
