//! What a world tells the parts of a run that watch it from outside its tasks: the wall-clock
//! watchdog (its registration, stall limit and replay command) and the list of process names the
//! watchdog's labels and the chaos hooks' violations use.

use std::sync::Arc;
use std::time::Duration;

use super::SimWorld;

impl SimWorld {
    /// Registers this world with the wall-clock watchdog for the length of a run.
    /// The replay command moves into the registration (a world runs once: its executor is shut
    /// down at the end of the run).
    pub(super) fn watch(&mut self, names: Arc<[String]>) -> crate::watchdog::Registration {
        let spawner = self.executor.spawner();
        let probe = move || {
            // An exploring run forks in the middle of a poll: the watchdog must not hold the
            // executor's lock at that instant (the child would inherit it locked).
            #[cfg(feature = "explorer")]
            let _gate = moonpool_explorer::ForkGate::enter();
            let (polls, current) = spawner.progress();
            // While the world waits for its child timelines its polls stand still; the hint
            // keeps moving then, so waiting is not mistaken for a stall.
            #[cfg(feature = "explorer")]
            let polls = polls.wrapping_add(moonpool_explorer::progress_hint());
            let label = current.map(|task| {
                let owner = task
                    .owner
                    .and_then(|id| names.get(id.0 as usize).cloned())
                    .unwrap_or_else(|| "world".to_string());
                format!("{owner}/{}", task.name)
            });
            (polls, label)
        };
        let watched = crate::watchdog::Watched {
            seed: self.seed,
            replay: self
                .replay
                .take()
                .unwrap_or_else(|| format!("MOONPOOL_SEED={}", self.seed)),
            stall_limit: self.watchdog_stall,
            probe: Arc::new(probe),
        };
        if self.watchdog_stall_resolved {
            crate::watchdog::watch_resolved(watched)
        } else {
            crate::watchdog::watch(watched)
        }
    }

    /// Tells the world the names its processes will have, in registration order, as a list
    /// shared across runs (the runner's, the same for every seed of a worker): a run then lists
    /// them without copying each name, when they match.
    pub(crate) fn set_expected_names(&mut self, names: Arc<[String]>) {
        self.expected_names = Some(names);
    }

    /// The names of the processes, by index: the expected list when it matches, else a new one.
    pub(crate) fn run_names(&self) -> Arc<[String]> {
        if let Some(expected) = &self.expected_names {
            let matches = self.handle.with(|state| {
                state.core.processes.len() == expected.len()
                    && state
                        .core
                        .processes
                        .iter()
                        .zip(expected.iter())
                        .all(|(process, name)| process.name == *name)
            });
            if matches {
                return Arc::clone(expected);
            }
        }
        self.process_names().into()
    }

    /// Sets the watchdog's stall limit to `limit`, the environment's override already applied
    /// (see `watchdog::stall_limit_once`): the run does not read `MOONPOOL_WATCHDOG_SECS` again.
    pub(crate) fn set_resolved_stall_limit(&mut self, limit: Option<Duration>) {
        self.watchdog_stall = limit;
        self.watchdog_stall_resolved = true;
    }
}
