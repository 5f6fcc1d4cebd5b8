//! What the event queue holds: the vocabulary of everything that can be scheduled. Each floor
//! above gives its events their meaning (the network applies `NetworkEvent`s, storage its
//! `StorageEvent`s, the world process events); the kernel only orders and fingerprints them.

use super::process::ProcessEvent;
use super::timers::TimerKey;

/// One scheduled happening. Applying it changes world state and wakes the tasks waiting on it.
/// `Copy`: the event queue's heap moves events by plain assignment.
#[derive(Clone, Copy)]
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

/// Identifies a connection half; the generation makes stale events harmless.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct HalfId {
    pub(crate) index: u32,
    pub(crate) generation: u32,
}

impl HalfId {
    pub(crate) fn fingerprint(self) -> u64 {
        (u64::from(self.generation) << 32) | u64::from(self.index)
    }
}

/// Network events.
///
/// `repr(u64)`: a tag word, then the fields from the second word on. The [`Event`] around it
/// keeps its own tag in that word, so every event is a tag word and two payload words, and a
/// copy of one moves whole words (with Rust's layout a `bool` of one variant sat in byte 1, and
/// the run loop copied bytes 1 to 23 as overlapping pieces that it then read back wider: a
/// store-forwarding stall on every event).
#[derive(Debug, Clone, Copy)]
#[repr(u64)]
pub(crate) enum NetworkEvent {
    /// `len` more bytes of `half`'s queue arrive.
    Deliver { half: HalfId, len: usize },
    /// The peer of `half` shut down its write side.
    Fin { half: HalfId },
    /// The peer of `half` reset the connection.
    Reset { half: HalfId },
    /// A half-open `half` finally notices its peer is gone.
    HalfOpenTimeout { half: HalfId },
    /// A scripted cut of `half`'s connection ends, unless a later cut or restore moved on
    /// (`epoch` no longer current).
    CutEnd { half: HalfId, epoch: u64 },
    /// A read clog on `half` may have ended: wake its reader to look again.
    ReadClogEnd { half: HalfId },
    /// `half` ran out of retransmissions (a long loss burst): its connection fails.
    RetransmitTimeout { half: HalfId },
    /// A random clog or cut of this sending half was due to end: logged, nothing else changes
    /// (delivery times were computed when the fault fired).
    RandomFaultEnd { half: HalfId, cut: bool },
}

impl NetworkEvent {
    pub(crate) fn fingerprint(&self) -> (u64, u64) {
        match self {
            // The byte count is folded into the object, keeping the kind a pure kind code.
            NetworkEvent::Deliver { half, len } => (
                1,
                half.fingerprint() ^ (*len as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15),
            ),
            NetworkEvent::Fin { half } => (2, half.fingerprint()),
            NetworkEvent::Reset { half } => (3, half.fingerprint()),
            NetworkEvent::HalfOpenTimeout { half } => (4, half.fingerprint()),
            NetworkEvent::CutEnd { half, epoch } => (5, half.fingerprint() ^ epoch.rotate_left(17)),
            NetworkEvent::ReadClogEnd { half } => (6, half.fingerprint()),
            NetworkEvent::RetransmitTimeout { half } => (7, half.fingerprint()),
            NetworkEvent::RandomFaultEnd { half, cut } => (8, half.fingerprint() ^ u64::from(*cut)),
        }
    }
}

/// Storage events.
#[derive(Debug, Clone, Copy)]
pub(crate) enum StorageEvent {
    /// Operation `op` completes.
    Complete { op: u64 },
}

impl StorageEvent {
    pub(crate) fn fingerprint(&self) -> (u64, u64) {
        match self {
            StorageEvent::Complete { op } => (1, *op),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::process::RestartAfter;
    use std::time::Duration;

    #[test]
    fn test_an_event_fits_in_24_bytes() {
        // The event queue moves events on every push and pop: keep them three words.
        assert!(
            std::mem::size_of::<Event>() <= 24,
            "{}",
            std::mem::size_of::<Event>()
        );
    }

    #[test]
    fn test_restart_after_keeps_its_delay() {
        for delay in [
            None,
            Some(Duration::ZERO),
            Some(Duration::from_nanos(1)),
            Some(Duration::from_secs(3)),
            Some(Duration::from_nanos(u64::MAX - 1)),
        ] {
            assert_eq!(RestartAfter::new(delay).get(), delay);
        }
        // Past the last representable nanosecond a delay saturates, and stays a delay.
        assert_eq!(
            RestartAfter::new(Some(Duration::MAX)).get(),
            Some(Duration::from_nanos(u64::MAX - 1))
        );
    }
}
