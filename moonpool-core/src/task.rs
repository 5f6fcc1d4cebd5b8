//! Tasks: spawning named futures and awaiting them through a Tokio-shaped [`JoinHandle`].

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

/// Why a task did not produce its output.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum JoinError {
    /// The task was aborted (or its world or runtime shut down) before it completed.
    #[error("task '{task}' was cancelled")]
    Cancelled {
        /// The name given at spawn.
        task: String,
    },
    /// The task panicked; its siblings keep running.
    #[error("task '{task}' panicked: {message}")]
    Panicked {
        /// The name given at spawn.
        task: String,
        /// The panic payload, when it was a string.
        message: String,
    },
    /// There was no runtime to run the task on (a Tokio provider used outside a Tokio runtime).
    #[error("task '{task}' could not start: {reason}")]
    NoRuntime {
        /// The name given at spawn.
        task: String,
        /// What was missing.
        reason: String,
    },
}

impl JoinError {
    /// True when the task was cancelled.
    pub fn is_cancelled(&self) -> bool {
        matches!(self, JoinError::Cancelled { .. })
    }

    /// True when the task panicked.
    pub fn is_panic(&self) -> bool {
        matches!(self, JoinError::Panicked { .. })
    }

    /// The name of the task this error is about.
    pub fn task_name(&self) -> &str {
        match self {
            JoinError::Cancelled { task }
            | JoinError::Panicked { task, .. }
            | JoinError::NoRuntime { task, .. } => task,
        }
    }
}

/// Turns a panic payload into a readable message.
pub fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&'static str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "non-string panic payload".to_string()
    }
}

/// What a [`TaskProvider`] implementation hands back for one spawned task.
///
/// Implemented by each backend (Tokio, the simulator); application code only sees [`JoinHandle`].
pub trait RawJoinHandle<T>: Send + Sync {
    /// Polls for the task's result.
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>>;
    /// Requests cancellation. A task that already completed keeps its output.
    fn abort(&self);
    /// True once the task has completed, panicked or been cancelled.
    fn is_finished(&self) -> bool;
}

/// A handle to a spawned task, shaped like `tokio::task::JoinHandle`.
///
/// - `.await` yields the task's output or a [`JoinError`];
/// - [`abort`](Self::abort) cancels it;
/// - [`is_finished`](Self::is_finished) tells whether it is done;
/// - dropping the handle **detaches** the task: it keeps running.
pub struct JoinHandle<T> {
    name: HandleName,
    raw: Box<dyn RawJoinHandle<T>>,
}

/// A handle's task name: its own copy, or one shared with the backend's task.
enum HandleName {
    Owned(String),
    Shared(std::sync::Arc<str>),
}

impl<T> JoinHandle<T> {
    /// Wraps a backend's handle. Only provider implementations need this.
    pub fn from_raw(name: impl Into<String>, raw: Box<dyn RawJoinHandle<T>>) -> Self {
        Self {
            name: HandleName::Owned(name.into()),
            raw,
        }
    }

    /// [`from_raw`](Self::from_raw) with a name the backend's task already holds (no copy).
    pub fn from_raw_shared(name: std::sync::Arc<str>, raw: Box<dyn RawJoinHandle<T>>) -> Self {
        Self {
            name: HandleName::Shared(name),
            raw,
        }
    }

    /// Cancels the task. Awaiting the handle afterwards yields [`JoinError::Cancelled`] unless the
    /// task had already completed.
    pub fn abort(&self) {
        self.raw.abort();
    }

    /// True once the task has completed, panicked or been cancelled.
    pub fn is_finished(&self) -> bool {
        self.raw.is_finished()
    }

    /// The name given at spawn.
    pub fn name(&self) -> &str {
        match &self.name {
            HandleName::Owned(name) => name,
            HandleName::Shared(name) => name,
        }
    }
}

impl<T> Future for JoinHandle<T> {
    type Output = Result<T, JoinError>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.get_mut().raw.poll_join(cx)
    }
}

impl<T> fmt::Debug for JoinHandle<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("JoinHandle")
            .field("name", &self.name())
            .field("finished", &self.is_finished())
            .finish()
    }
}

/// Spawning tasks.
///
/// Spawned futures are `Send + 'static`, exactly as with `tokio::spawn`, so code written for Tokio's
/// multi-threaded runtime moves onto the provider by changing the call, not the code.
pub trait TaskProvider: Clone + Send + Sync + 'static {
    /// Spawns `future` as a task named `name` (the name appears in traces, errors and, in
    /// simulation, in hang reports).
    fn spawn<F>(&self, name: &str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static;

    /// Lets other ready tasks run before this one continues.
    ///
    /// In simulation the yielding task goes back among the ready tasks and the seeded scheduler
    /// picks who runs next.
    fn yield_now(&self) -> impl Future<Output = ()> + Send;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Done;

    impl RawJoinHandle<u8> for Done {
        fn poll_join(&mut self, _cx: &mut Context<'_>) -> Poll<Result<u8, JoinError>> {
            Poll::Ready(Ok(7))
        }
        fn abort(&self) {}
        fn is_finished(&self) -> bool {
            true
        }
    }

    #[test]
    fn test_a_handle_keeps_its_name_owned_or_shared() {
        let owned = JoinHandle::from_raw("owned-task", Box::new(Done));
        let shared_name: std::sync::Arc<str> = std::sync::Arc::from("shared-task");
        let shared =
            JoinHandle::from_raw_shared(std::sync::Arc::clone(&shared_name), Box::new(Done));
        assert_eq!(owned.name(), "owned-task");
        assert_eq!(shared.name(), "shared-task");
        assert_eq!(std::sync::Arc::strong_count(&shared_name), 2);
        assert!(format!("{shared:?}").contains("shared-task"));
        drop(shared);
        assert_eq!(std::sync::Arc::strong_count(&shared_name), 1);
    }
}
