//! Simulated processes: identity, locality, lifecycle.

use std::fmt;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Poll, Waker};
use std::time::Duration;

use crate::executor::ProcessId;

/// Where a process runs; correlated failures take down a whole machine, zone or datacenter.
#[derive(Debug, Clone, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Locality {
    /// Datacenter name.
    pub datacenter: String,
    /// Zone (rack, availability zone) name.
    pub zone: String,
    /// Machine name.
    pub machine: String,
}

impl Locality {
    /// A locality from its three levels.
    pub fn new(
        datacenter: impl Into<String>,
        zone: impl Into<String>,
        machine: impl Into<String>,
    ) -> Self {
        Self {
            datacenter: datacenter.into(),
            zone: zone.into(),
            machine: machine.into(),
        }
    }
}

/// How a process goes down.
///
/// `#[non_exhaustive]`, like the other public enums that will grow (fault kinds, chaos families,
/// scripted fault actions, errors): a match outside this crate needs a wildcard arm, so a new
/// kind of reboot is not a breaking change.
///
/// ```compile_fail,E0004
/// use moonpool_sim::RebootKind;
/// fn name(kind: RebootKind) -> &'static str {
///     match kind {
///         RebootKind::Graceful => "graceful",
///         RebootKind::Crash => "crash",
///         RebootKind::CrashAndWipe => "wipe",
///     }
/// }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[non_exhaustive]
pub enum RebootKind {
    /// Shutdown signal, a grace period, then a stop; unsynced writes survive (the OS flushes its
    /// cache), peers see their connections closed (FIN).
    Graceful,
    /// Immediate stop: tasks dropped, unsynced writes lost or torn, peers left half-open.
    Crash,
    /// A crash that also wipes the disk.
    CrashAndWipe,
}

impl fmt::Display for RebootKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            RebootKind::Graceful => "graceful reboot",
            RebootKind::Crash => "crash",
            RebootKind::CrashAndWipe => "crash and wipe",
        })
    }
}

/// Process lifecycle events.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProcessEvent {
    /// Stop the process now.
    Stop {
        process: ProcessId,
        kind: RebootKind,
        restart_after: RestartAfter,
    },
    /// Boot the process again.
    Start { process: ProcessId },
}

/// When a stopped process restarts: an `Option<Duration>` in one word (nanoseconds, `u64::MAX`
/// for never), so that every event fits in 24 bytes (the event queue moves events on every push
/// and pop). A delay past `u64::MAX - 1` nanoseconds (about 584 years) is that many: the queue
/// saturates times there anyway.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RestartAfter(u64);

impl RestartAfter {
    pub(crate) fn new(delay: Option<Duration>) -> Self {
        Self(delay.map_or(u64::MAX, |delay| {
            u64::try_from(delay.as_nanos()).map_or(u64::MAX - 1, |nanos| nanos.min(u64::MAX - 1))
        }))
    }

    pub(crate) fn get(self) -> Option<Duration> {
        (self.0 != u64::MAX).then(|| Duration::from_nanos(self.0))
    }
}

impl ProcessEvent {
    pub(crate) fn fingerprint(&self) -> (u64, u64) {
        match self {
            ProcessEvent::Stop { process, kind, .. } => (1 + *kind as u64, u64::from(process.0)),
            ProcessEvent::Start { process } => (8, u64::from(process.0)),
        }
    }
}

/// Whether a process is a rebootable server or a workload (test driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProcessRole {
    /// A server, rebuilt by its factory at every boot.
    Server,
    /// A test driver: never rebooted by faults; the run ends when every workload finishes.
    Workload,
}

/// The world's record of one process.
#[derive(Debug)]
pub(crate) struct ProcessState {
    pub(crate) name: String,
    pub(crate) ip: IpAddr,
    pub(crate) role: ProcessRole,
    pub(crate) locality: Locality,
    pub(crate) alive: bool,
    /// Incremented at every boot.
    pub(crate) generation: u64,
    /// The drifting local timer (FDB's formula), never behind the world clock.
    pub(crate) timer_time: Duration,
    pub(crate) shutdown: ShutdownSignal,
    pub(crate) next_ephemeral_port: u16,
}

impl ProcessState {
    pub(crate) fn new(name: String, ip: IpAddr, role: ProcessRole, locality: Locality) -> Self {
        Self {
            name,
            ip,
            role,
            locality,
            alive: false,
            generation: 0,
            timer_time: Duration::ZERO,
            shutdown: ShutdownSignal::default(),
            next_ephemeral_port: EPHEMERAL_PORT_FIRST,
        }
    }

    /// The next ephemeral port (49152..=65535, wrapping) that `taken` does not hold, or `None`
    /// once every one of the 16,384 is (a real stack then fails the connect or the bind).
    pub(crate) fn free_ephemeral_port(&mut self, taken: impl Fn(u16) -> bool) -> Option<u16> {
        let ports = usize::from(u16::MAX - EPHEMERAL_PORT_FIRST) + 1;
        (0..ports)
            .map(|_| self.ephemeral_port())
            .find(|&port| !taken(port))
    }

    /// Allocates the next ephemeral port (49152..=65535, wrapping).
    fn ephemeral_port(&mut self) -> u16 {
        let port = self.next_ephemeral_port;
        self.next_ephemeral_port = if port == u16::MAX {
            EPHEMERAL_PORT_FIRST
        } else {
            port + 1
        };
        port
    }
}

/// First port of the ephemeral range.
pub const EPHEMERAL_PORT_FIRST: u16 = 49_152;

#[derive(Debug, Default)]
struct ShutdownState {
    requested: bool,
    /// Each waiting task's waker, and whether it is that task's own (waking it runs no foreign
    /// code).
    wakers: Vec<(Waker, bool)>,
}

/// Tells a process that a graceful shutdown was requested.
///
/// Await [`ShutdownSignal::requested`] in a server's main loop (with `select! { biased; ... }`) to
/// stop accepting work and flush state before the grace period ends.
#[derive(Debug, Clone, Default)]
pub struct ShutdownSignal {
    state: Arc<Mutex<ShutdownState>>,
}

impl ShutdownSignal {
    /// True once shutdown was requested.
    pub fn is_requested(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .requested
    }

    /// Completes once shutdown is requested.
    pub async fn requested(&self) {
        std::future::poll_fn(|cx| {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            if state.requested {
                Poll::Ready(())
            } else {
                if !state.wakers.iter().any(|(w, _)| w.will_wake(cx.waker())) {
                    let own = crate::executor::own_task(cx.waker()).is_some();
                    state.wakers.push((cx.waker().clone(), own));
                }
                Poll::Pending
            }
        })
        .await;
    }

    pub(crate) fn trigger(&self) {
        let wakers = {
            let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            state.requested = true;
            std::mem::take(&mut state.wakers)
        };
        // Triggered under the world's state (a reboot): a waker not known to be a task's own
        // is woken once the state is let go (see `kernel::wakes`).
        for (waker, own) in wakers {
            if own {
                waker.wake();
            } else {
                super::wakes::wake_foreign_owned(waker);
            }
        }
    }
}
