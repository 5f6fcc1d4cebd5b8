//! Floor 2: the activation-local timers of one activation. [`Timers`] numbers them, keeps each
//! one's task (started by the host, which owns the mailbox its ticks go to), and cancels them all
//! when the activation ends ([`Timers::close`]); a closed registry starts nothing.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

use moonpool_core::JoinHandle;

use super::identity::ActorId;
use super::ticks::{self, TimerError};

/// Starts the task of one timer (the host's side).
pub(crate) trait TimerSpawn: Send + Sync {
    /// The task of timer `timer`, or `None` when its node is gone.
    fn spawn(
        &self,
        timer: u64,
        name: String,
        delay: Duration,
        period: Option<Duration>,
    ) -> Option<JoinHandle<()>>;
}

#[derive(Default)]
struct State {
    closed: bool,
    next: u64,
    running: BTreeMap<u64, JoinHandle<()>>,
}

/// The timers of one activation.
pub(crate) struct Timers {
    id: ActorId,
    grant: u64,
    spawn: Box<dyn TimerSpawn>,
    state: Mutex<State>,
}

impl Timers {
    pub(crate) fn new(id: ActorId, grant: u64, spawn: Box<dyn TimerSpawn>) -> Self {
        Self {
            id,
            grant,
            spawn,
            state: Mutex::new(State::default()),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Starts a timer; its number.
    pub(crate) fn start(
        &self,
        name: &str,
        delay: Duration,
        period: Option<Duration>,
    ) -> Result<u64, TimerError> {
        ticks::check(name, delay, period).map_err(|bad| bad.timer(&self.id, name))?;
        let mut state = self.state();
        let ended = TimerError::Ended {
            id: self.id.clone(),
            grant: self.grant,
        };
        if state.closed {
            return Err(ended);
        }
        let timer = state.next;
        let Some(task) = self.spawn.spawn(timer, name.to_string(), delay, period) else {
            return Err(ended);
        };
        state.next += 1;
        // Finished one-shot timers' handles are dropped here (dropping detaches, and they ended).
        state.running.retain(|_, task| !task.is_finished());
        state.running.insert(timer, task);
        Ok(timer)
    }

    /// Stops timer `timer`; true if it was running (a tick already in the mailbox still runs).
    pub(crate) fn stop(&self, timer: u64) -> bool {
        match self.state().running.remove(&timer) {
            Some(task) => {
                let running = !task.is_finished();
                task.abort();
                running
            }
            None => false,
        }
    }

    /// Cancels every timer; nothing starts after.
    pub(crate) fn close(&self) {
        let running = {
            let mut state = self.state();
            state.closed = true;
            std::mem::take(&mut state.running)
        };
        for task in running.into_values() {
            task.abort();
        }
    }
}

/// Closes the timers when the activation ends, however it ends.
pub(crate) struct CloseOnDrop(pub(crate) std::sync::Arc<Timers>);

impl Drop for CloseOnDrop {
    fn drop(&mut self) {
        self.0.close();
    }
}
