//! A peer's connection state machine: no connection, open (TCP up, epoch `n`), connected (its
//! Hello arrived), failed (back off, then try again), closed (for good). Each connection opened
//! starts a new *epoch*, which the fates of the packets written on it record.

use std::time::Duration;

use moonpool_core::UID;

use crate::config::TransportConfig;

/// Where a peer's connection stands.
#[derive(Debug, Default)]
pub(super) struct Link {
    /// Incremented when a connection is established; fates record it.
    pub(super) epoch: u64,
    /// A connection task is running.
    pub(super) connection_open: bool,
    /// The current connection completed its handshake.
    pub(super) connected: bool,
    pub(super) remote_instance: Option<UID>,
    pub(super) closed: bool,
    pub(super) consecutive_failures: u32,
}

impl Link {
    /// A connection was established at the TCP level: starts a new epoch and returns it.
    pub(super) fn opened(&mut self) -> u64 {
        self.epoch += 1;
        self.connection_open = true;
        self.connected = false;
        self.epoch
    }

    /// The remote's Hello arrived. Returns the previous instance if it changed.
    pub(super) fn handshake_done(&mut self, instance: UID) -> Option<UID> {
        self.connected = true;
        self.consecutive_failures = 0;
        let previous = self.remote_instance.replace(instance);
        previous.filter(|p| *p != instance)
    }

    /// A connection attempt or a connection failed. Returns the epoch of the connection that
    /// failed (0 if none was established).
    pub(super) fn failed(&mut self) -> u64 {
        let epoch = if self.connection_open { self.epoch } else { 0 };
        self.connection_open = false;
        self.connected = false;
        self.consecutive_failures = self.consecutive_failures.saturating_add(1);
        epoch
    }

    /// The delay before the next connection attempt: exponential in the number of consecutive
    /// failures, capped, times a jitter factor drawn from `random_ratio` (in `[0, 1)`).
    pub(super) fn reconnect_delay(
        failures: u32,
        config: &TransportConfig,
        random_ratio: f64,
    ) -> Duration {
        let failures = failures.saturating_sub(1);
        let growth = config
            .reconnect_delay_growth
            .powi(i32::try_from(failures.min(64)).unwrap_or(64));
        let base = config
            .reconnect_delay_initial
            .mul_f64(growth.min(1e6))
            .min(config.reconnect_delay_max);
        let factor = 1.0 - config.reconnect_jitter + 2.0 * config.reconnect_jitter * random_ratio;
        base.mul_f64(factor)
    }
}
