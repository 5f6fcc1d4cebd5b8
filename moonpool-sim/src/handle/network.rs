//! The network's verbs on [`WorldControl`]: partitions, clogs, inspection.

use std::net::IpAddr;
use std::time::Duration;

use super::WorldControl;

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
        });
    }

    /// Partitions traffic from `from` to `to` only.
    pub fn partition_one_way(&self, from: IpAddr, to: IpAddr, duration: Duration) {
        self.handle.with(|state| {
            let until = state.core.now.saturating_add(duration);
            state.network.add_partition(state.core.now, from, to, until);
            state.core.fault("network.partition_one_way");
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
                state
                    .network
                    .add_partition(state.core.now, ip, other, until);
                state
                    .network
                    .add_partition(state.core.now, other, ip, until);
            }
            state.core.fault("network.isolate");
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
        });
    }

    /// Number of connection halves currently open in the world.
    pub fn open_connections(&self) -> usize {
        self.handle.with(|state| state.network.live_halves())
    }
}
