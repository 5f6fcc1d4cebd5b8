//! An optional observer of the executor's work, for the trace of a run: every spawn and every
//! poll, in order. Unset (the default), the drain pays one branch per poll and a spawn one more.

use super::{ProcessId, TaskId};

/// How a poll ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PollEnd {
    /// The task waits for a wake.
    Pending,
    /// The task finished.
    Completed,
    /// The task panicked.
    Panicked,
}

/// Sees the executor's spawns and polls as they happen. Called from the executor's thread; a
/// spawn is reported under the executor's lock, so an observer must never call back into the
/// executor.
pub trait PollObserver: Send + Sync {
    /// Task `task` named `name` was spawned for `owner`.
    fn spawned(&self, task: TaskId, name: &str, owner: Option<ProcessId>);
    /// The executor is about to poll `task`.
    fn poll_begin(&self, task: TaskId);
    /// The poll of `task` returned (or panicked).
    fn poll_end(&self, task: TaskId, end: PollEnd);
}
