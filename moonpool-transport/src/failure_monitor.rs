//! [`FailureMonitor`]: which addresses are failed, and which endpoints are known not to exist.
//!
//! - **Addresses** are `Available` after a connection handshake and `Failed { since }` after a
//!   connection attempt or a connection fails. Waiters
//!   ([`on_failed_for`](FailureMonitor::on_failed_for)) register on the address's
//!   `tokio::sync::Notify` *before* reading the status, so a change between a check and a wait is
//!   never missed. (Not `tokio::sync::watch`: it spreads waiters over shards picked with a
//!   thread-local random number, which would make simulated runs depend on OS entropy.)
//! - **Endpoints** are marked failed when their transport answers EndpointNotFound. The mark is
//!   tied to the remote *instance* (the id in its Hello): it holds while that instance lives and is
//!   removed when the address comes back as a new instance (a restarted process may register the
//!   token again). Address status changes never touch endpoint marks, so a flapping connection
//!   cannot wipe them. Well-known tokens are never marked (they may be registered later, as in
//!   FoundationDB). The marks are bounded (`failed_endpoints_max`); the oldest is evicted first,
//!   which only costs one more round trip to learn the endpoint is gone.
//!
//! Floor 3 (endpoints and dispatch): fed by the transport's core, which the connections report to;
//! it knows time (the environment) and addresses, nothing of peers, connections or RPC.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use moonpool_core::{Endpoint, NetworkAddress, UID};
use tokio::sync::Notify;

use crate::env::Env;

/// What the failure monitor knows about an address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AddressStatus {
    /// Never connected yet.
    Unknown,
    /// The last connection completed its handshake and has not failed.
    Available,
    /// The last connection attempt or connection failed, at `since` (transport clock).
    Failed {
        /// When the failure started.
        since: Duration,
    },
}

struct AddressEntry {
    status: AddressStatus,
    instance: Option<UID>,
    changed: Arc<Notify>,
}

impl AddressEntry {
    fn set(&mut self, status: AddressStatus) {
        if self.status != status {
            self.status = status;
            self.changed.notify_waiters();
        }
    }
}

#[derive(Default)]
struct State {
    addresses: BTreeMap<NetworkAddress, AddressEntry>,
    /// Endpoint -> (instance it failed on, insertion sequence).
    failed_endpoints: BTreeMap<Endpoint, (UID, u64)>,
    /// Insertion sequence -> endpoint, for oldest-first eviction.
    failed_order: BTreeMap<u64, Endpoint>,
    next_sequence: u64,
    evicted: u64,
    closed: bool,
}

/// Tracks address and endpoint failures for one transport; see the module docs.
#[derive(Clone)]
pub struct FailureMonitor {
    state: Arc<Mutex<State>>,
    /// Mirrors `failed_endpoints.len()` so the common "nothing failed" check takes no lock.
    failed_count: Arc<std::sync::atomic::AtomicUsize>,
    env: Arc<dyn Env>,
    failed_endpoints_max: usize,
}

impl std::fmt::Debug for FailureMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = self.lock();
        f.debug_struct("FailureMonitor")
            .field("addresses", &state.addresses.len())
            .field("failed_endpoints", &state.failed_endpoints.len())
            .finish()
    }
}

impl FailureMonitor {
    pub(crate) fn new(env: Arc<dyn Env>, failed_endpoints_max: usize) -> Self {
        Self {
            state: Arc::new(Mutex::new(State::default())),
            failed_count: Arc::new(std::sync::atomic::AtomicUsize::new(0)),
            env,
            failed_endpoints_max,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts tracking `address` (idempotent).
    pub(crate) fn track(&self, address: NetworkAddress) {
        let mut state = self.lock();
        if state.closed {
            return;
        }
        state
            .addresses
            .entry(address)
            .or_insert_with(|| AddressEntry {
                status: AddressStatus::Unknown,
                instance: None,
                changed: Arc::new(Notify::new()),
            });
    }

    /// The status of `address` ([`AddressStatus::Unknown`] if untracked).
    pub fn status(&self, address: &NetworkAddress) -> AddressStatus {
        self.lock()
            .addresses
            .get(address)
            .map_or(AddressStatus::Unknown, |entry| entry.status)
    }

    /// True when `address`'s last connection failed.
    pub fn is_failed(&self, address: &NetworkAddress) -> bool {
        matches!(self.status(address), AddressStatus::Failed { .. })
    }

    /// A handshake with `address` completed; `instance` is the id it announced. When the instance
    /// changed, endpoint marks of the old instance are removed. Returns true in that case.
    pub(crate) fn set_available(&self, address: NetworkAddress, instance: UID) -> bool {
        let mut state = self.lock();
        let Some(entry) = state.addresses.get_mut(&address) else {
            return false;
        };
        entry.set(AddressStatus::Available);
        let previous = entry.instance.replace(instance);
        let changed = previous.is_some_and(|p| p != instance);
        if changed {
            let stale: Vec<(Endpoint, u64)> = state
                .failed_endpoints
                .iter()
                .filter(|(endpoint, (i, _))| endpoint.address == address && *i != instance)
                .map(|(endpoint, (_, sequence))| (*endpoint, *sequence))
                .collect();
            for (endpoint, sequence) in stale {
                state.failed_endpoints.remove(&endpoint);
                state.failed_order.remove(&sequence);
            }
            self.failed_count.store(
                state.failed_endpoints.len(),
                std::sync::atomic::Ordering::Release,
            );
        }
        changed
    }

    /// A connection attempt or connection to `address` failed (the first failure starts the
    /// clock; later ones keep it).
    pub(crate) fn set_failed(&self, address: NetworkAddress) {
        let now = self.env.now();
        let mut state = self.lock();
        if let Some(entry) = state.addresses.get_mut(&address)
            && !matches!(entry.status, AddressStatus::Failed { .. })
        {
            entry.set(AddressStatus::Failed { since: now });
        }
    }

    /// `endpoint`'s transport said it has no such endpoint. Returns true if the mark was recorded
    /// (not for well-known tokens, nor before the address's instance is known).
    pub(crate) fn endpoint_not_found(&self, endpoint: Endpoint) -> bool {
        if endpoint.token.is_well_known() {
            return false;
        }
        let mut state = self.lock();
        let Some(instance) = state
            .addresses
            .get(&endpoint.address)
            .and_then(|entry| entry.instance)
        else {
            return false;
        };
        if let Some((_, sequence)) = state.failed_endpoints.remove(&endpoint) {
            state.failed_order.remove(&sequence);
        }
        while state.failed_endpoints.len() >= self.failed_endpoints_max {
            let Some((_, oldest)) = state.failed_order.pop_first() else {
                break;
            };
            state.failed_endpoints.remove(&oldest);
            state.evicted += 1;
        }
        let sequence = state.next_sequence;
        state.next_sequence += 1;
        state
            .failed_endpoints
            .insert(endpoint, (instance, sequence));
        state.failed_order.insert(sequence, endpoint);
        self.failed_count.store(
            state.failed_endpoints.len(),
            std::sync::atomic::Ordering::Release,
        );
        true
    }

    /// True when `endpoint` is known not to exist on the instance currently at its address.
    pub fn is_endpoint_failed(&self, endpoint: &Endpoint) -> bool {
        if self.failed_count.load(std::sync::atomic::Ordering::Acquire) == 0 {
            return false;
        }
        let state = self.lock();
        let Some((instance, _)) = state.failed_endpoints.get(endpoint) else {
            return false;
        };
        state
            .addresses
            .get(&endpoint.address)
            .and_then(|entry| entry.instance)
            == Some(*instance)
    }

    /// Number of endpoints marked failed.
    pub fn failed_endpoints_len(&self) -> usize {
        self.lock().failed_endpoints.len()
    }

    /// Endpoint marks evicted because the bound was reached.
    pub fn failed_endpoints_evicted(&self) -> u64 {
        self.lock().evicted
    }

    /// Completes once `address` has been failed continuously for `duration` (at once if it
    /// already has), or when the transport shuts down. Never completes for an address the
    /// transport does not talk to.
    pub async fn on_failed_for(&self, address: NetworkAddress, duration: Duration) {
        let Some(changed) = self
            .lock()
            .addresses
            .get(&address)
            .map(|entry| Arc::clone(&entry.changed))
        else {
            std::future::pending::<()>().await;
            return;
        };
        loop {
            let notified = changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            let status = {
                let state = self.lock();
                match state.addresses.get(&address) {
                    Some(entry) => entry.status,
                    // Closed (transport shut down): nothing will ever change again.
                    None => return,
                }
            };
            match status {
                AddressStatus::Failed { since } => {
                    let elapsed = self.env.now().saturating_sub(since);
                    if elapsed >= duration {
                        return;
                    }
                    let sleep = self.env.sleep(duration - elapsed);
                    moonpool_core::select! {
                        biased;
                        () = notified => {}
                        () = sleep => {}
                    }
                }
                AddressStatus::Available | AddressStatus::Unknown => notified.await,
            }
        }
    }

    /// Stops tracking: every waiter completes.
    pub(crate) fn close(&self) {
        let addresses = {
            let mut state = self.lock();
            state.closed = true;
            std::mem::take(&mut state.addresses)
        };
        for entry in addresses.values() {
            entry.changed.notify_waiters();
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::env::tests::ManualEnv;

    fn endpoint(address: &str, token: UID) -> Endpoint {
        Endpoint::new(address.parse().unwrap(), token)
    }

    #[test]
    fn test_address_status_transitions() {
        let env = ManualEnv::new();
        let monitor = FailureMonitor::new(env.clone(), 10);
        let address: NetworkAddress = "10.0.0.1:1".parse().unwrap();
        assert_eq!(monitor.status(&address), AddressStatus::Unknown);
        monitor.track(address);
        monitor.set_failed(address);
        env.advance(Duration::from_secs(1));
        monitor.set_failed(address);
        assert_eq!(
            monitor.status(&address),
            AddressStatus::Failed {
                since: Duration::ZERO
            }
        );
        assert!(!monitor.set_available(address, UID::new(1, 1)));
        assert_eq!(monitor.status(&address), AddressStatus::Available);
    }

    #[test]
    fn test_endpoint_marks_survive_flapping_and_die_with_the_instance() {
        let env = ManualEnv::new();
        let monitor = FailureMonitor::new(env, 10);
        let address: NetworkAddress = "10.0.0.1:1".parse().unwrap();
        monitor.track(address);
        let gone = endpoint("10.0.0.1:1", UID::new(5, 5));
        // Unknown instance: nothing to tie the mark to.
        assert!(!monitor.endpoint_not_found(gone));
        monitor.set_available(address, UID::new(1, 1));
        assert!(monitor.endpoint_not_found(gone));
        assert!(monitor.is_endpoint_failed(&gone));
        // Well-known tokens are never marked.
        assert!(!monitor.endpoint_not_found(endpoint("10.0.0.1:1", UID::well_known(7))));
        // The address fails and comes back as the same instance: the mark stays (the upstream
        // bug wiped it here).
        monitor.set_failed(address);
        assert!(monitor.is_endpoint_failed(&gone));
        monitor.set_available(address, UID::new(1, 1));
        assert!(monitor.is_endpoint_failed(&gone));
        // A new instance clears it.
        assert!(monitor.set_available(address, UID::new(2, 2)));
        assert!(!monitor.is_endpoint_failed(&gone));
        assert_eq!(monitor.failed_endpoints_len(), 0);
    }

    #[test]
    fn test_endpoint_marks_are_bounded_oldest_first() {
        let env = ManualEnv::new();
        let monitor = FailureMonitor::new(env, 3);
        let address: NetworkAddress = "10.0.0.1:1".parse().unwrap();
        monitor.track(address);
        monitor.set_available(address, UID::new(1, 1));
        for i in 1..=5 {
            monitor.endpoint_not_found(endpoint("10.0.0.1:1", UID::new(9, i)));
        }
        assert_eq!(monitor.failed_endpoints_len(), 3);
        assert_eq!(monitor.failed_endpoints_evicted(), 2);
        assert!(!monitor.is_endpoint_failed(&endpoint("10.0.0.1:1", UID::new(9, 2))));
        assert!(monitor.is_endpoint_failed(&endpoint("10.0.0.1:1", UID::new(9, 5))));
    }
}
