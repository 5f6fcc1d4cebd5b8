//! [`SimTaskProvider`]: the simulator's [`TaskProvider`].

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};

use moonpool_core::{JoinHandle, TaskProvider};

use super::{ProcessId, Spawner};

/// Spawns onto the simulator's [`Executor`](super::Executor), tagging every task with one owner.
///
/// Each simulated process gets a provider with its [`ProcessId`], so a crash of that process
/// ([`Executor::kill_owner`](super::Executor::kill_owner)) drops exactly its tasks; workloads get
/// one with `None`.
#[derive(Debug, Clone)]
pub struct SimTaskProvider {
    spawner: Spawner,
    owner: Option<ProcessId>,
}

impl SimTaskProvider {
    /// A provider spawning on `spawner` for `owner`.
    pub fn new(spawner: Spawner, owner: Option<ProcessId>) -> Self {
        Self { spawner, owner }
    }

    /// The owner given to every task this provider spawns.
    pub fn owner(&self) -> Option<ProcessId> {
        self.owner
    }

    /// The spawner underneath.
    pub fn spawner(&self) -> &Spawner {
        &self.spawner
    }
}

impl SimTaskProvider {
    /// [`TaskProvider::spawn`] of a task named `name` followed by `suffix`, the name taken from
    /// the executor's recent names when it is one of them (the runner's workloads are
    /// `<name>::run`, seed after seed: no string is made for them).
    pub(crate) fn spawn_suffixed<F>(
        &self,
        name: &str,
        suffix: &str,
        future: F,
    ) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let name = self.spawner.task_name(name, suffix);
        let span = tracing::Span::current();
        if span.is_disabled() {
            self.spawner.spawn_named(self.owner, name, future)
        } else {
            self.spawner.spawn_named(
                self.owner,
                name,
                tracing::Instrument::instrument(future, span),
            )
        }
    }
}

impl TaskProvider for SimTaskProvider {
    fn spawn<F>(&self, name: &str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        // Like `tokio::spawn` used with `.in_current_span()`: the task keeps the span of the code
        // that spawned it (for simulated processes, their `process` span).
        let span = tracing::Span::current();
        if span.is_disabled() {
            self.spawner.spawn_in(self.owner, name, future)
        } else {
            self.spawner.spawn_in(
                self.owner,
                name,
                tracing::Instrument::instrument(future, span),
            )
        }
    }

    fn yield_now(&self) -> impl Future<Output = ()> + Send {
        yield_now()
    }
}

/// Returns to the executor once: the task goes back among the ready tasks and the seeded pick
/// chooses who runs next (possibly this task again).
pub fn yield_now() -> YieldNow {
    YieldNow { yielded: false }
}

/// The future returned by [`yield_now`]: wakes itself and returns `Pending` once, then `Ready`.
#[derive(Debug)]
#[must_use = "futures do nothing unless awaited"]
pub struct YieldNow {
    yielded: bool,
}

impl Future for YieldNow {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        if self.yielded {
            return Poll::Ready(());
        }
        self.yielded = true;
        cx.waker().wake_by_ref();
        Poll::Pending
    }
}
