//! What the event queue holds.

use crate::network::NetworkEvent;
use crate::storage::StorageEvent;

use super::process::ProcessEvent;
use super::timers::TimerKey;

/// One scheduled happening. Applying it changes world state and wakes the tasks waiting on it.
pub(crate) enum Event {
    /// A sleep's deadline.
    Timer(TimerKey),
    /// Data, connection and fault events of the simulated network.
    Network(NetworkEvent),
    /// Completion of a simulated disk operation.
    Storage(StorageEvent),
    /// Process lifecycle: end of a grace period, restart after a reboot.
    Process(ProcessEvent),
}

impl Event {
    /// Two words identifying the event for the run fingerprint: a kind code and an object id.
    pub(crate) fn fingerprint(&self) -> (u64, u64) {
        match self {
            Event::Timer(key) => (1, key.fingerprint()),
            Event::Network(event) => {
                let (kind, object) = event.fingerprint();
                (0x100 | kind, object)
            }
            Event::Storage(event) => {
                let (kind, object) = event.fingerprint();
                (0x200 | kind, object)
            }
            Event::Process(event) => {
                let (kind, object) = event.fingerprint();
                (0x300 | kind, object)
            }
        }
    }
}
