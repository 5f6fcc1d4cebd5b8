//! The simulator's kernel: what every part of a world shares, below the network, the disks, the
//! providers and the run loop.
//!
//! It owns the world clock ([`clock`]), the event vocabulary and queue (`event`, `queue`), the
//! seeded random streams ([`rng`]), the process table (`process`), timers (`timers`), the run
//! fingerprint and event trace ([`trace`]) and the test's blackboard (`state`), gathered in
//! `Core`. It must not know how an event is applied (the network and storage floors do that),
//! how simulated code reaches the world (the providers) or how a run proceeds (the world).
//! It depends only on the executor's ids.

pub mod clock;
pub(crate) mod event;
pub mod fault;
pub(crate) mod process;
pub(crate) mod queue;
pub mod rng;
pub(crate) mod state;
pub(crate) mod story;
pub(crate) mod timers;
pub mod trace;
pub(crate) mod wakes;

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use crate::executor::ProcessId;
use clock::{ClockConfiguration, SharedClock};
use event::Event;
use fault::FaultKind;
use process::ProcessState;
use queue::EventQueue;
use rng::WorldRng;
use trace::{TraceEntry, TraceHash};

/// State shared by every part of the world.
pub(crate) struct Core {
    pub(crate) now: Duration,
    /// `now` mirrored for lock-free reads by the time providers.
    pub(crate) shared_clock: SharedClock,
    pub(crate) seed: u64,
    pub(crate) queue: EventQueue,
    pub(crate) rng: WorldRng,
    pub(crate) processes: Vec<ProcessState>,
    pub(crate) ips: BTreeMap<IpAddr, ProcessId>,
    /// Process ids by name (names are unique), so registering stays cheap at 10,000 processes.
    pub(crate) names: BTreeMap<String, ProcessId>,
    pub(crate) faults: BTreeMap<&'static str, u64>,
    /// Faults that fired, by kind (what shrinking and structured failures use).
    pub(crate) fault_kinds: BTreeMap<FaultKind, u64>,
    pub(crate) trace: TraceHash,
    pub(crate) events: u64,
    pub(crate) clock: ClockConfiguration,
    pub(crate) grace: Duration,
    pub(crate) trace_log: Option<Vec<TraceEntry>>,
    /// What the Chrome trace is drawn from, when a trace is recorded.
    pub(crate) story: Option<Arc<story::Story>>,
}

impl Core {
    /// Advances the clock to `nanos` nanoseconds since the start of the run.
    #[inline]
    pub(crate) fn set_now_nanos(&mut self, nanos: u64) {
        self.now = Duration::from_nanos(nanos);
        self.shared_clock.store_nanos(nanos);
    }

    /// Schedules `event` after `delay`.
    #[inline]
    pub(crate) fn schedule(&mut self, delay: Duration, event: Event) -> u64 {
        self.queue.push(self.now.saturating_add(delay), event)
    }

    /// Schedules `event` at absolute time `at` (not before now).
    #[inline]
    pub(crate) fn schedule_at(&mut self, at: Duration, event: Event) -> u64 {
        self.queue.push(at.max(self.now), event)
    }

    /// Counts a fault that fired, for the report, and folds it into the fingerprint.
    pub(crate) fn fault(&mut self, kind: &'static str) {
        *self.faults.entry(kind).or_insert(0) += 1;
        for byte in kind.bytes() {
            self.trace.fold(u64::from(byte));
        }
        if let Some(story) = &self.story {
            story.note(story::What::Fault { kind });
        }
    }

    /// Adds a note to the story, when one is recorded (`what` is only built then).
    #[inline]
    pub(crate) fn note(&self, what: impl FnOnce() -> story::What) {
        if let Some(story) = &self.story {
            story.note(what());
        }
    }

    /// A fault of `kind` fired: counted by kind and, when the trace is recorded, marked in it
    /// ([`trace::TRACE_FAULT`]). The counter of [`fault`](Self::fault) is the caller's business.
    pub(crate) fn mark(&mut self, kind: FaultKind) {
        *self.fault_kinds.entry(kind).or_insert(0) += 1;
        if let Some(log) = self.trace_log.as_mut() {
            #[allow(clippy::cast_possible_truncation)]
            log.push(TraceEntry {
                at_nanos: self.now.as_nanos() as u64,
                kind: trace::TRACE_FAULT,
                object: kind.stream(),
                schedule_hash: 0,
                sequence: self.events,
                process: u32::MAX,
                peer: u32::MAX,
            });
        }
    }

    /// A fault of `kind` fired, counted under `counter` too ([`mark`](Self::mark) and
    /// [`fault`](Self::fault)).
    pub(crate) fn fired(&mut self, kind: FaultKind, counter: &'static str) {
        self.mark(kind);
        self.fault(counter);
    }

    /// The process with this id.
    pub(crate) fn process(&self, id: ProcessId) -> Option<&ProcessState> {
        self.processes.get(id.0 as usize)
    }

    /// The process with this id, mutably.
    pub(crate) fn process_mut(&mut self, id: ProcessId) -> Option<&mut ProcessState> {
        self.processes.get_mut(id.0 as usize)
    }

    /// The process owning `ip`.
    pub(crate) fn process_at(&self, ip: IpAddr) -> Option<ProcessId> {
        self.ips.get(&ip).copied()
    }

    /// The process named `name`.
    pub(crate) fn process_named(&self, name: &str) -> Option<ProcessId> {
        self.names.get(name).copied()
    }

    /// The id of the process at `index` in creation order.
    pub(crate) fn id_at(index: usize) -> ProcessId {
        ProcessId(u32::try_from(index).unwrap_or(u32::MAX))
    }

    /// True when the process exists and is up.
    pub(crate) fn is_alive(&self, id: ProcessId) -> bool {
        self.process(id).is_some_and(|p| p.alive)
    }
}
