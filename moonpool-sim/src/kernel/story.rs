//! The story of a run: what a Chrome trace is drawn from, recorded in the order it happened when
//! [`WorldConfig::record_trace`](crate::WorldConfig::record_trace) is on.
//!
//! Every part of a world appends [`Note`]s to one [`Story`]: the executor its spawns and polls
//! (through [`PollObserver`]), the run loop every event it applies and every boot and stop, the
//! network its connection changes and faults, the kernel every fault counted, the chaos hooks the
//! first success of each coverage assertion, and the transport (through
//! `moonpool_core::annotate`) the packets it builds and decodes, the requests its method tasks
//! take and the outcomes its callers take. A note made during a poll
//! belongs to the task polled; the order of the notes is the order of the run.
//!
//! Off (the default), nothing here runs: the world holds no story, the executor no observer,
//! and no annotator is installed. Recording never draws randomness and never touches the run
//! fingerprint. The story keeps at most [`DEFAULT_STORY_NOTES`] notes: past it, the oldest are dropped
//! (counted), so a long run keeps its end, where failures are.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use moonpool_core::UID;
use moonpool_core::annotate::{Annotator, FrameNote};

use super::clock::SharedClock;
use crate::executor::{PollEnd, PollObserver, ProcessId, TaskId};

/// Notes a story keeps before it drops the oldest: about what a trace of
/// `DEFAULT_TRACE_MAX_BYTES` shows, so that a long run's story stays a few hundred MB at most.
pub const DEFAULT_STORY_NOTES: usize = 250_000;

/// One thing that happened, at simulated nanosecond `at`.
#[derive(Debug, Clone)]
pub(crate) struct Note {
    pub(crate) at: u64,
    pub(crate) what: What,
}

/// What a note records.
#[derive(Debug, Clone)]
pub(crate) enum What {
    /// The executor starts polling a task.
    PollBegin(u64),
    /// The poll returned.
    PollEnd(u64, PollEnd),
    /// The run loop applied an event (kind code and object as in the fingerprint).
    Event {
        kind: u64,
        object: u64,
        sequence: u64,
        process: u32,
    },
    /// Bytes written on a connection; `sequence` is their delivery event's, `None` when they
    /// will never be delivered (`fate` says why).
    Send {
        connection: u64,
        from: u32,
        to: u32,
        bytes: u64,
        sequence: Option<u64>,
        fate: &'static str,
        /// The first bytes, printable characters kept, others as `.`.
        preview: String,
    },
    /// A task read `bytes` delivered on `connection`.
    Read { connection: u64, bytes: u64 },
    /// The delivery being applied was held back and rescheduled as event `sequence`.
    Rescheduled { sequence: u64 },
    /// The delivery being applied was held back by a scripted cut, until its restore.
    Held,
    /// A restore released the bytes held on the end of `connection` owned by `owner`, to be
    /// delivered as event `sequence`.
    Released {
        connection: u64,
        owner: u32,
        sequence: u64,
    },
    /// A connection changed state or was hit by a fault (the network's debug log).
    Connection {
        connection: u64,
        owner: u32,
        peer: u32,
        event: &'static str,
        detail: String,
    },
    /// A partition or clog from `from` to `to` (IPs' processes) until `until` nanoseconds;
    /// `on`: the one connection end it hits (connection, owning process), when it hits one.
    Span {
        kind: &'static str,
        from: u32,
        to: u32,
        until: u64,
        detail: String,
        on: Option<(u64, u32)>,
    },
    /// A fault fired (counted in the report under `kind`).
    Fault { kind: &'static str },
    /// A process booted (`generation` counts boots) or was stopped.
    Lifecycle {
        process: u32,
        what: &'static str,
        generation: u64,
        detail: String,
    },
    /// A sleep registered timer `key`.
    TimerSet { key: u64 },
    /// A coverage assertion succeeded for the first time in this run.
    Coverage {
        kind: String,
        message: String,
        location: String,
    },
    /// A `buggify!` point fired.
    Buggify { location: String },
    /// An `always`-type assertion failed here (the run's failure marker goes here).
    Violation,
    /// A packet built, decoded or found corrupt by the transport.
    Frame(FrameNote),
    /// A request for `token` wants its reply at `reply_to`.
    Request { token: UID, reply_to: UID },
    /// The task polled took the request for `token` whose reply goes to `reply_to`.
    Handling { token: UID, reply_to: UID },
    /// The task polled took the outcome of the request answered at `reply_to` (`replied`: a
    /// reply arrived).
    ReplyTaken { reply_to: UID, replied: bool },
}

/// What a story holds.
#[derive(Debug, Default)]
pub(crate) struct StoryLog {
    pub(crate) notes: VecDeque<Note>,
    /// Notes dropped from the front to stay under the limit.
    pub(crate) dropped: u64,
    /// Simulated time of the last dropped note.
    pub(crate) dropped_until: u64,
    /// Every task spawned: name and owner.
    pub(crate) tasks: BTreeMap<u64, (String, Option<u32>)>,
    /// Endpoint names announced by the transport.
    pub(crate) endpoints: BTreeMap<UID, String>,
}

/// The story of one run (see the [module docs](self)).
pub(crate) struct Story {
    clock: SharedClock,
    limit: usize,
    log: Mutex<StoryLog>,
}

impl std::fmt::Debug for Story {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Story")
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

impl Story {
    pub(crate) fn new(clock: SharedClock, limit: usize) -> Arc<Self> {
        Arc::new(Self {
            clock,
            limit: limit.max(1),
            log: Mutex::new(StoryLog::default()),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoryLog> {
        self.log.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Appends a note at the current simulated time.
    pub(crate) fn note(&self, what: What) {
        let at = self.clock.nanos();
        let mut log = self.lock();
        if log.notes.len() >= self.limit
            && let Some(oldest) = log.notes.pop_front()
        {
            log.dropped += 1;
            log.dropped_until = oldest.at;
        }
        log.notes.push_back(Note { at, what });
    }

    /// A copy of everything recorded so far.
    pub(crate) fn snapshot(&self) -> StorySnapshot {
        let log = self.lock();
        StorySnapshot {
            notes: log.notes.iter().cloned().collect(),
            dropped: log.dropped,
            dropped_until: log.dropped_until,
            tasks: log.tasks.clone(),
            endpoints: log.endpoints.clone(),
        }
    }
}

/// A copy of a story, for rendering.
#[derive(Debug, Clone, Default)]
pub(crate) struct StorySnapshot {
    pub(crate) notes: Vec<Note>,
    pub(crate) dropped: u64,
    pub(crate) dropped_until: u64,
    pub(crate) tasks: BTreeMap<u64, (String, Option<u32>)>,
    pub(crate) endpoints: BTreeMap<UID, String>,
}

impl PollObserver for Story {
    fn spawned(&self, task: TaskId, name: &str, owner: Option<ProcessId>) {
        self.lock()
            .tasks
            .insert(task.0, (name.to_string(), owner.map(|p| p.0)));
    }

    fn poll_begin(&self, task: TaskId) {
        self.note(What::PollBegin(task.0));
    }

    fn poll_end(&self, task: TaskId, end: PollEnd) {
        self.note(What::PollEnd(task.0, end));
    }
}

/// Records the transport's annotations into a story.
pub(crate) struct StoryAnnotator(pub(crate) Arc<Story>);

impl Annotator for StoryAnnotator {
    fn endpoint(&mut self, token: UID, name: &str) {
        self.0.lock().endpoints.insert(token, name.to_string());
    }

    fn frame(&mut self, note: FrameNote) {
        self.0.note(What::Frame(note));
    }

    fn request(&mut self, token: UID, reply_to: UID) {
        self.0.note(What::Request { token, reply_to });
    }

    fn handling(&mut self, token: UID, reply_to: UID) {
        self.0.note(What::Handling { token, reply_to });
    }

    fn reply_taken(&mut self, reply_to: UID, replied: bool) {
        self.0.note(What::ReplyTaken { reply_to, replied });
    }
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<Story>>> = const { RefCell::new(None) };
}

/// Makes `story` this thread's current story until the guard drops (for code with no access to
/// the world's state, such as the chaos hooks).
pub(crate) fn install_current(story: Arc<Story>) -> CurrentGuard {
    let previous = CURRENT.with(|slot| slot.borrow_mut().replace(story));
    CurrentGuard(previous)
}

/// Restores the previous current story when dropped.
pub(crate) struct CurrentGuard(Option<Arc<Story>>);

impl Drop for CurrentGuard {
    fn drop(&mut self) {
        let previous = self.0.take();
        let _ = CURRENT.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                *slot = previous;
            }
        });
    }
}

/// Calls `f` with this thread's current story, if a recorded run is in progress.
pub(crate) fn with_current(f: impl FnOnce(&Story)) {
    let _ = CURRENT.try_with(|slot| {
        if let Ok(slot) = slot.try_borrow()
            && let Some(story) = slot.as_ref()
        {
            f(story);
        }
    });
}

/// Most bytes of a send shown in its preview.
pub(crate) const PREVIEW_BYTES: usize = 64;

/// `bytes` (at most [`PREVIEW_BYTES`]) with printable ASCII kept and everything else as `.`.
pub(crate) fn preview(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take(PREVIEW_BYTES)
        .map(|b| {
            if b.is_ascii_graphic() || *b == b' ' {
                char::from(*b)
            } else {
                '.'
            }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_story_keeps_its_last_notes_and_counts_the_others() {
        let clock = SharedClock::default();
        let story = Story::new(clock.clone(), 3);
        for at in 1..=5u64 {
            clock.store_nanos(at);
            story.note(What::Fault {
                kind: "clock.drift",
            });
        }
        let snapshot = story.snapshot();
        let kept: Vec<u64> = snapshot.notes.iter().map(|n| n.at).collect();
        assert_eq!(kept, [3, 4, 5]);
        assert_eq!((snapshot.dropped, snapshot.dropped_until), (2, 2));
    }

    #[test]
    fn test_preview_keeps_printable_ascii_only() {
        assert_eq!(preview(b"ping 1\n\xff"), "ping 1..");
        assert_eq!(preview(&[b'a'; 100]).len(), PREVIEW_BYTES);
    }
}
