//! Safe wakers: one `Arc<TaskWaker>` per task, turned into a [`Waker`] through [`Wake`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Wake;

use super::TaskId;
use super::state::Shared;

/// The waker of one task.
///
/// Created once at spawn and reused for every poll, so polling allocates nothing, and waking by
/// reference touches no reference count. On the thread that holds the executor's state (the
/// world's, for a whole run) a wake is a plain check of the task's `queued` flag under the state
/// (no atomic read-modify-write). From another thread, while the state is leased, the wake is
/// queued for the next drain; `remote` makes repeated remote wakes queue it once, and stays true
/// forever once the task is gone (so a stale waker woken from another thread queues nothing).
pub(crate) struct TaskWaker {
    /// Index of the task's slot in the slab.
    pub(crate) slot: u32,
    /// The task's unique id: a stale waker whose slot was reused carries an older id.
    pub(crate) id: TaskId,
    /// True while a wake from another thread waits in the remote queue, and forever after the
    /// task left the slab.
    pub(crate) remote: AtomicBool,
    shared: Arc<Shared>,
}

impl TaskWaker {
    pub(crate) fn new(slot: u32, id: TaskId, shared: Arc<Shared>) -> Self {
        Self {
            slot,
            id,
            remote: AtomicBool::new(false),
            shared,
        }
    }

    /// Marks the remote queue as holding this task; false when it already did (or the task is
    /// gone).
    pub(crate) fn claim_remote(&self) -> bool {
        !self.remote.swap(true, Ordering::AcqRel)
    }
}

impl Wake for TaskWaker {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Under the state the slot check is exact: a task that left the slab (or a slot reused
        // by a newer task) is not queued.
        self.shared.wake(self);
    }
}
