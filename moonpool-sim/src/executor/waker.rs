//! Safe wakers: one `Arc<TaskCell>` per task (its waker and its join cell in one allocation),
//! turned into a [`Waker`](std::task::Waker) through [`Wake`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::Wake;

use moonpool_core::JoinError;

use super::TaskId;
use super::join::Completer;
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
    pub(crate) shared: Arc<Shared>,
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

    /// The waker of task `id` that never got a slot (its spawn was refused): inert from the
    /// start, as the waker of a task that left the slab is.
    pub(crate) fn inert(id: TaskId, shared: Arc<Shared>) -> Self {
        Self {
            slot: u32::MAX,
            id,
            remote: AtomicBool::new(true),
            shared,
        }
    }

    /// Marks the remote queue as holding this task; false when it already did (or the task is
    /// gone).
    pub(crate) fn claim_remote(&self) -> bool {
        !self.remote.swap(true, Ordering::AcqRel)
    }
}

/// What the executor keeps of one task besides its future: its waker and, for a task spawned
/// with a handle, its join cell, in one allocation (a spawn made two before: the join cell and
/// the waker). `J` is a [`JoinCell`](super::join::JoinCell) or [`NoJoin`]; the slab holds the
/// cell as `TaskCell<dyn Completer>`.
///
/// A clone of the task's waker kept somewhere (a channel, after the task ended) keeps this
/// allocation, not the task's output: the output is the handle's to take or to drop (see
/// `JoinCell::complete` and `SimJoin`'s `Drop`), and the awaiter's waker leaves the cell when
/// the task resolves or its handle is dropped.
pub(crate) struct TaskCell<J: ?Sized> {
    pub(crate) waker: TaskWaker,
    pub(crate) join: J,
}

impl<J: Completer + 'static> Wake for TaskCell<J> {
    fn wake(self: Arc<Self>) {
        self.wake_by_ref();
    }

    fn wake_by_ref(self: &Arc<Self>) {
        // Under the state the slot check is exact: a task that left the slab (or a slot reused
        // by a newer task) is not queued.
        self.waker.shared.wake(&self.waker);
    }
}

/// The join part of a task spawned without a handle: nobody to tell.
pub(crate) struct NoJoin;

impl Completer for NoJoin {
    fn fail(&self, _error: JoinError) {}

    fn cancel(&self, _name: &str) {}

    fn is_detached(&self) -> bool {
        true
    }

    fn has_handle(&self) -> bool {
        false
    }
}
