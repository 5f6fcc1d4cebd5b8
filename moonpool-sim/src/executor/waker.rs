//! Safe wakers: one `Arc<TaskWaker>` per task, turned into a [`Waker`] through [`Wake`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Wake;

use super::TaskId;
use super::state::Shared;

/// The waker of one task.
///
/// Created once at spawn and reused for every poll, so polling allocates nothing. `scheduled` is
/// true while the task sits in the ready queue (so repeated wakes push it once) and stays true
/// forever once the task is gone (so a stale waker is a no-op that does not even take the lock).
pub(crate) struct TaskWaker {
    /// Index of the task's slot in the slab.
    pub(crate) slot: u32,
    /// The task's unique id: a stale waker whose slot was reused carries an older id.
    pub(crate) id: TaskId,
    /// True while queued, and forever after the task left the slab.
    pub(crate) scheduled: AtomicBool,
    shared: Arc<Shared>,
}

impl TaskWaker {
    pub(crate) fn new(slot: u32, id: TaskId, shared: Arc<Shared>) -> Self {
        Self {
            slot,
            id,
            // A new task is ready at once: the spawner queues it itself.
            scheduled: AtomicBool::new(true),
            shared,
        }
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        if self.scheduled.swap(true, Ordering::AcqRel) {
            return;
        }
        // Under the lock the slot check is exact: removal forces `scheduled` to true first, so a
        // task that left the slab cannot reach here, but it is checked anyway rather than trusted.
        self.shared.wake(self.slot, self.id);
    }
}
