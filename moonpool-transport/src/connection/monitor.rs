//! The monitor of a connection (its own task, aborted with the connection): every
//! `ping_interval` it fails a connection on which no whole packet arrived for `ping_timeout`,
//! pings the remote on outbound connections (FoundationDB's connectionMonitor), and on accepted
//! ones asks for an acknowledgement when no reply is about to carry one.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use moonpool_core::{UID, WellKnownToken};

use super::host::ConnectionHost;
use super::shared::{ConnectionError, ConnectionShared};
use crate::peer::Peer;
use crate::protocol;

/// Pings (outbound connections) and checks liveness every `ping_interval`; a connection on
/// which nothing arrived for `ping_timeout` is failed through its writer.
pub(super) async fn monitor_loop(
    host: Arc<dyn ConnectionHost>,
    conn: Arc<ConnectionShared>,
    owner: Option<(Arc<Peer>, u64)>,
    last_received: Arc<AtomicU64>,
    monitor_token: UID,
) {
    let interval = host.config().ping_interval;
    let timeout = host.config().ping_timeout;
    let mut nonce: u64 = 0;
    let mut ticks: u64 = 0;
    loop {
        host.env().sleep(interval).await;
        if conn.closed.load(Ordering::Acquire) {
            return;
        }
        if host.is_shut_down() {
            conn.fail(ConnectionError::Shutdown);
            return;
        }
        let silent = host
            .env()
            .now()
            .saturating_sub(Duration::from_nanos(last_received.load(Ordering::Relaxed)));
        // Buggify: an early ping timeout, a live but quiet connection given up on after one
        // silent interval (a monitor that is too eager, as under load).
        if silent >= timeout || (silent >= interval && moonpool_core::buggify!()) {
            conn.fail(ConnectionError::PingTimeout(silent));
            return;
        }
        match &owner {
            Some((peer, _)) => {
                // A ping is an ordinary request to the remote's well-known Ping endpoint, sent
                // unreliably; its reply comes back to this connection's monitor token.
                nonce += 1;
                let mut payload = Vec::with_capacity(24);
                protocol::write_uid(&mut payload, monitor_token);
                payload.extend_from_slice(&nonce.to_le_bytes());
                if peer
                    .send_unreliable(WellKnownToken::Ping.uid(), &payload)
                    .is_ok()
                {
                    peer.record_ping();
                }
            }
            None => {
                // Acknowledge at every tick when no reply is pending (it would carry the ack),
                // and at every third tick regardless (a handler may hold a promise for long).
                ticks += 1;
                let quiet = conn.outstanding() == 0;
                if conn.received.load(Ordering::Relaxed) > 0 && (quiet || ticks.is_multiple_of(3)) {
                    conn.request_ack();
                }
            }
        }
    }
}
