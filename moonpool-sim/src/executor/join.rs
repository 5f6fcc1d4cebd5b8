//! The join cell shared by a task and its [`JoinHandle`](moonpool_core::JoinHandle).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Context, Poll, Waker};

use moonpool_core::{JoinError, RawJoinHandle};

use super::waker::TaskCell;

/// The executor's view of a join cell, independent of the output type.
pub(crate) trait Completer: Send + Sync {
    /// Resolves the cell with `error` unless it is already resolved.
    fn fail(&self, error: JoinError);
    /// Resolves the cell as cancelled unless it is already resolved; the error (and its copy of
    /// the task's name) is made only when a handle can still read it.
    fn cancel(&self, name: &str);
    /// True once the handle was dropped.
    fn is_detached(&self) -> bool;
    /// False for a task spawned without a handle, which has nobody to tell anything.
    fn has_handle(&self) -> bool {
        true
    }
}

struct Slot<T> {
    /// The result, until the handle takes it.
    result: Option<Result<T, JoinError>>,
    /// True once the handle returned the result.
    taken: bool,
    /// Who awaits the handle.
    waker: Option<Waker>,
}

/// Where a task leaves its result for its handle.
pub(crate) struct JoinCell<T> {
    name: Arc<str>,
    slot: Mutex<Slot<T>>,
    finished: AtomicBool,
    detached: AtomicBool,
}

impl<T> JoinCell<T> {
    pub(crate) fn new(name: Arc<str>) -> Self {
        Self {
            name,
            slot: Mutex::new(Slot {
                result: None,
                taken: false,
                waker: None,
            }),
            finished: AtomicBool::new(false),
            detached: AtomicBool::new(false),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Slot<T>> {
        self.slot.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stores `result` unless the cell is already resolved, and wakes the handle's awaiter.
    ///
    /// Nothing is dropped or woken while the cell's lock is held: a result that is not kept (the
    /// cell was already resolved, or the handle is gone) is dropped after unlocking.
    pub(crate) fn complete(&self, result: Result<T, JoinError>) {
        let (discarded, waker) = {
            let mut slot = self.lock();
            if self.finished.load(Ordering::Acquire) {
                (Some(result), None)
            } else {
                self.finished.store(true, Ordering::Release);
                if self.detached.load(Ordering::Acquire) {
                    // Nobody can read it: drop the output now, as Tokio does.
                    (Some(result), None)
                } else {
                    slot.result = Some(result);
                    (None, slot.waker.take())
                }
            }
        };
        drop(discarded);
        if let Some(waker) = waker {
            waker.wake();
        }
    }
}

impl<T: Send> Completer for JoinCell<T> {
    fn fail(&self, error: JoinError) {
        self.complete(Err(error));
    }

    fn cancel(&self, name: &str) {
        if self.is_detached() {
            // Nobody can read it: only mark the cell finished, as `complete` would.
            let _slot = self.lock();
            self.finished.store(true, Ordering::Release);
            return;
        }
        self.complete(Err(JoinError::Cancelled {
            task: name.to_string(),
        }));
    }

    fn is_detached(&self) -> bool {
        self.detached.load(Ordering::Acquire)
    }
}

/// The simulator's [`RawJoinHandle`]: the task's cell (its waker names its slot, its id and its
/// executor).
pub(crate) struct SimJoin<T> {
    pub(crate) cell: Arc<TaskCell<JoinCell<T>>>,
    pub(crate) owner: Option<super::ProcessId>,
}

impl<T: Send + 'static> RawJoinHandle<T> for SimJoin<T> {
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let mut slot = self.cell.join.lock();
        if let Some(result) = slot.result.take() {
            slot.taken = true;
            return Poll::Ready(result);
        }
        if slot.taken {
            // Polled again after it returned its result: there is nothing left to give.
            return Poll::Ready(Err(JoinError::Cancelled {
                task: self.cell.join.name.to_string(),
            }));
        }
        match &slot.waker {
            Some(existing) if existing.will_wake(cx.waker()) => {}
            _ => {
                let previous = slot.waker.replace(cx.waker().clone());
                drop(slot);
                drop(previous);
            }
        }
        super::note_wait(super::WaitReason::Join(self.cell.waker.id));
        Poll::Pending
    }

    fn abort(&self) {
        if self.cell.join.finished.load(Ordering::Acquire) {
            return;
        }
        let waker = &self.cell.waker;
        waker.shared.request_abort(waker.slot, waker.id);
    }

    fn is_finished(&self) -> bool {
        self.cell.join.finished.load(Ordering::Acquire)
    }
}

impl<T> Drop for SimJoin<T> {
    fn drop(&mut self) {
        let join = &self.cell.join;
        join.detached.store(true, Ordering::Release);
        // A result nobody will read is dropped now rather than when the task leaves the slab.
        let unread = {
            let mut slot = join.lock();
            (slot.result.take(), slot.waker.take())
        };
        // A panic that the handle held but nobody read is now lost to the program: record it as
        // unobserved, as the panic of a detached task is, so the seed fails.
        if let (Some(Err(JoinError::Panicked { task, message })), _) = &unread {
            self.cell.waker.shared.lock().panics.push(super::TaskPanic {
                id: self.cell.waker.id,
                task: task.clone(),
                owner: self.owner,
                message: message.clone(),
                detached: true,
                during_drop: false,
            });
        }
        drop(unread);
    }
}
