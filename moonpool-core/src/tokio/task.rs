use std::future::Future;
use std::task::{Context, Poll};

use tracing::Instrument;

use crate::task::{JoinError, JoinHandle, RawJoinHandle, TaskProvider, panic_message};

/// Spawns onto the current Tokio runtime.
///
/// Each task runs inside a `task` tracing span carrying its name. Spawning outside a runtime does
/// not panic: the handle resolves to [`JoinError::NoRuntime`].
#[derive(Debug, Clone, Copy, Default)]
pub struct TokioTaskProvider;

impl TokioTaskProvider {
    /// The provider.
    pub fn new() -> Self {
        Self
    }
}

struct TokioJoin<T> {
    name: String,
    inner: Option<tokio::task::JoinHandle<T>>,
}

impl<T: Send + 'static> RawJoinHandle<T> for TokioJoin<T> {
    fn poll_join(&mut self, cx: &mut Context<'_>) -> Poll<Result<T, JoinError>> {
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(Err(JoinError::NoRuntime {
                task: self.name.clone(),
                reason: "spawned outside a Tokio runtime".to_string(),
            }));
        };
        match std::pin::Pin::new(inner).poll(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Ok(value)) => Poll::Ready(Ok(value)),
            Poll::Ready(Err(error)) => {
                let task = self.name.clone();
                Poll::Ready(Err(if error.is_panic() {
                    JoinError::Panicked {
                        task,
                        message: panic_message(&*error.into_panic()),
                    }
                } else {
                    JoinError::Cancelled { task }
                }))
            }
        }
    }

    fn abort(&self) {
        if let Some(inner) = &self.inner {
            inner.abort();
        }
    }

    fn is_finished(&self) -> bool {
        self.inner.as_ref().is_none_or(|inner| inner.is_finished())
    }
}

impl TaskProvider for TokioTaskProvider {
    fn spawn<F>(&self, name: &str, future: F) -> JoinHandle<F::Output>
    where
        F: Future + Send + 'static,
        F::Output: Send + 'static,
    {
        let inner = match tokio::runtime::Handle::try_current() {
            Ok(handle) => {
                let span = tracing::info_span!("task", name = name);
                Some(handle.spawn(future.instrument(span)))
            }
            Err(_) => {
                tracing::error!(task = name, "spawned outside a Tokio runtime; not started");
                None
            }
        };
        JoinHandle::from_raw(
            name,
            Box::new(TokioJoin {
                name: name.to_string(),
                inner,
            }),
        )
    }

    fn yield_now(&self) -> impl Future<Output = ()> + Send {
        tokio::task::yield_now()
    }
}
