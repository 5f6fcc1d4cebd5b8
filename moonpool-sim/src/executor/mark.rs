//! What a wake and a pick check of a task, kept densely beside the executor's slab.

use super::TaskId;

/// What a wake, a pick and the poll bound read of a slot, kept densely beside the slab (see
/// [`Task`](super::state::Task)). `live` says whether the slot holds a task; the other fields mean something only
/// then.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Mark {
    /// The id of the slot's task (of its last task once it left).
    pub(crate) id: TaskId,
    /// Polls in the instant `epoch`.
    pub(crate) drain_polls: u64,
    /// The low 32 bits of the instant counter in which `drain_polls` was counted (exact: every
    /// mark is reset when those bits wrap, see `State::begin_instant`).
    pub(crate) epoch: u32,
    /// True while the slot holds a task.
    pub(crate) live: bool,
    /// True while the task sits in the ready queue (so repeated wakes queue it once).
    pub(crate) queued: bool,
    /// Set by `abort`, `kill_owner` or `shutdown` while the task was being polled, or by `abort`
    /// at any time: the executor drops the future instead of polling it again.
    pub(crate) abort_requested: bool,
}

impl Default for Mark {
    /// The mark of an empty slot.
    fn default() -> Self {
        Self {
            live: false,
            queued: false,
            ..Self::spawned(TaskId(0))
        }
    }
}

impl Mark {
    /// The mark of a new task `id`, queued.
    pub(crate) fn spawned(id: TaskId) -> Self {
        Self {
            id,
            drain_polls: 0,
            epoch: 0,
            live: true,
            queued: true,
            abort_requested: false,
        }
    }

    /// True when the slot holds task `id`.
    #[inline(always)]
    pub(crate) fn holds(&self, id: TaskId) -> bool {
        self.live && self.id == id
    }
}
