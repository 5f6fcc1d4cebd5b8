//! [`TransportConfig`]: timings and the named bound of every internal map and queue.
//!
//! Floor 1: plain values and their validation; it knows nothing of who reads them.

use std::time::Duration;

use crate::wire::{DEFAULT_MAX_PACKET_SIZE, HEADER_SIZE};

/// Timings and bounds of a [`NetTransport`](crate::NetTransport).
///
/// Every map and queue inside the transport has a bound here; exceeding one is a typed error
/// returned to the caller (or, for a queue filled from the network, a connection teardown that
/// the sender notices), never unbounded growth. [`NetTransport::metrics`](crate::NetTransport::metrics)
/// shows the current sizes next to these bounds.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct TransportConfig {
    /// Largest packet accepted or sent, header included.
    pub max_packet_size: usize,
    /// Reliable packets one peer may hold (queued, or sent and not yet acknowledged or answered).
    pub peer_reliable_queue_max: usize,
    /// Unreliable packets one peer may hold waiting for its connection.
    pub peer_unreliable_queue_max: usize,
    /// Bytes one peer may hold in its queues.
    pub peer_queue_bytes_max: usize,
    /// Packets an accepted connection may hold waiting to be written (replies, acknowledgements,
    /// pongs). Exceeding it closes the connection, so the caller notices and retries.
    pub connection_outbox_max: usize,
    /// Outbound peers (distinct remote addresses) a transport keeps.
    pub peers_max: usize,
    /// Accepted connections a listening transport keeps at once.
    pub incoming_connections_max: usize,
    /// Registered endpoints (request streams and message queues), well-known ones excluded.
    pub endpoints_max: usize,
    /// Replies awaited at once (one per outstanding request).
    pub pending_replies_max: usize,
    /// Messages one receive queue ([`NetNotifiedQueue`](crate::NetNotifiedQueue) or
    /// [`RequestStream`](crate::RequestStream)) may hold before new ones are refused.
    pub receive_queue_max: usize,
    /// Endpoints the failure monitor remembers as permanently failed.
    pub failed_endpoints_max: usize,
    /// How often a connection's initiator pings the other side.
    pub ping_interval: Duration,
    /// A connection on which nothing arrived for this long is considered dead and closed.
    pub ping_timeout: Duration,
    /// How long a connect may take.
    pub connect_timeout: Duration,
    /// First reconnection delay after a failure.
    pub reconnect_delay_initial: Duration,
    /// Largest reconnection delay.
    pub reconnect_delay_max: Duration,
    /// Factor applied to the delay after each consecutive failure.
    pub reconnect_delay_growth: f64,
    /// Every delay is multiplied by a random factor in `[1 - jitter, 1 + jitter)`.
    pub reconnect_jitter: f64,
    /// A receiver acknowledges reliable traffic at least every this many packets (and at every
    /// ping interval, and whenever it writes anything).
    pub ack_every_packets: u64,
}

impl Default for TransportConfig {
    fn default() -> Self {
        Self {
            max_packet_size: DEFAULT_MAX_PACKET_SIZE,
            peer_reliable_queue_max: 16_384,
            peer_unreliable_queue_max: 16_384,
            peer_queue_bytes_max: 64 << 20,
            connection_outbox_max: 16_384,
            peers_max: 1_024,
            incoming_connections_max: 1_024,
            endpoints_max: 16_384,
            pending_replies_max: 65_536,
            receive_queue_max: 16_384,
            failed_endpoints_max: 4_096,
            ping_interval: Duration::from_secs(1),
            ping_timeout: Duration::from_secs(3),
            connect_timeout: Duration::from_secs(3),
            reconnect_delay_initial: Duration::from_millis(50),
            reconnect_delay_max: Duration::from_millis(1_000),
            reconnect_delay_growth: 1.5,
            reconnect_jitter: 0.5,
            ack_every_packets: 64,
        }
    }
}

/// A configuration value that cannot work; names the field and its value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("transport configuration: {field} is {value}: {reason}")]
pub struct ConfigError {
    /// The field.
    pub field: &'static str,
    /// Its value, printed.
    pub value: String,
    /// Why it is invalid.
    pub reason: &'static str,
}

impl TransportConfig {
    /// Checks every field.
    pub fn validate(&self) -> Result<(), ConfigError> {
        let bad = |field, value: String, reason| {
            Err(ConfigError {
                field,
                value,
                reason,
            })
        };
        if self.max_packet_size < HEADER_SIZE + 64 || u32::try_from(self.max_packet_size).is_err() {
            return bad(
                "max_packet_size",
                self.max_packet_size.to_string(),
                "must hold a header plus 64 bytes and fit in a u32",
            );
        }
        for (field, value) in [
            ("peer_reliable_queue_max", self.peer_reliable_queue_max),
            ("peer_unreliable_queue_max", self.peer_unreliable_queue_max),
            ("peer_queue_bytes_max", self.peer_queue_bytes_max),
            ("connection_outbox_max", self.connection_outbox_max),
            ("peers_max", self.peers_max),
            ("incoming_connections_max", self.incoming_connections_max),
            ("endpoints_max", self.endpoints_max),
            ("pending_replies_max", self.pending_replies_max),
            ("receive_queue_max", self.receive_queue_max),
            ("failed_endpoints_max", self.failed_endpoints_max),
        ] {
            if value == 0 {
                return bad(field, value.to_string(), "a bound of zero admits nothing");
            }
        }
        if self.peer_queue_bytes_max < self.max_packet_size {
            return bad(
                "peer_queue_bytes_max",
                self.peer_queue_bytes_max.to_string(),
                "must hold at least one packet of max_packet_size",
            );
        }
        if self.ping_interval.is_zero() {
            return bad("ping_interval", "0s".into(), "must be positive");
        }
        if self.ping_timeout <= self.ping_interval {
            return bad(
                "ping_timeout",
                format!("{:?}", self.ping_timeout),
                "must exceed ping_interval, or live connections would be closed",
            );
        }
        if self.connect_timeout.is_zero() {
            return bad("connect_timeout", "0s".into(), "must be positive");
        }
        if self.reconnect_delay_initial > self.reconnect_delay_max {
            return bad(
                "reconnect_delay_initial",
                format!("{:?}", self.reconnect_delay_initial),
                "exceeds reconnect_delay_max",
            );
        }
        if !(self.reconnect_delay_growth >= 1.0 && self.reconnect_delay_growth.is_finite()) {
            return bad(
                "reconnect_delay_growth",
                self.reconnect_delay_growth.to_string(),
                "must be a finite factor of at least 1",
            );
        }
        if !(0.0..1.0).contains(&self.reconnect_jitter) {
            return bad(
                "reconnect_jitter",
                self.reconnect_jitter.to_string(),
                "must be in [0, 1)",
            );
        }
        if self.ack_every_packets == 0 {
            return bad("ack_every_packets", "0".into(), "must be positive");
        }
        Ok(())
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn test_default_is_valid_and_errors_name_the_field() {
        TransportConfig::default().validate().unwrap();
        let config = TransportConfig {
            pending_replies_max: 0,
            ..TransportConfig::default()
        };
        let error = config.validate().unwrap_err();
        assert_eq!(error.field, "pending_replies_max");
        assert!(error.to_string().contains("pending_replies_max is 0"));
        let config = TransportConfig {
            ping_timeout: Duration::from_millis(10),
            ..TransportConfig::default()
        };
        assert_eq!(config.validate().unwrap_err().field, "ping_timeout");
    }
}
