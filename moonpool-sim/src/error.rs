//! Why a simulation run failed.

use std::fmt;
use std::time::Duration;

/// A run that did not complete. Every variant carries the seed; `Display` ends with the
/// environment variable that replays it.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SimError {
    /// Workloads are unfinished but no task can run and no event is scheduled: everything waits on
    /// something that will never happen.
    #[error(
        "seed {seed}: deadlock at simulated {now:?}: nothing runnable and nothing scheduled, \
         but workloads are unfinished; stuck tasks: {}{}",
        TaskList(stuck),
        replay(*seed)
    )]
    Deadlock {
        /// The seed.
        seed: u64,
        /// Simulated time of the deadlock.
        now: Duration,
        /// Every live task, as `process/task`.
        stuck: Vec<String>,
    },
    /// One drain of ready tasks polled more than the bound: a task busy-loops without waiting.
    #[error(
        "seed {seed}: busy loop at simulated {now:?}: {polls} polls without the clock advancing; \
         busiest tasks: {}{}",
        TaskList(busiest),
        replay(*seed)
    )]
    BusyLoop {
        /// The seed.
        seed: u64,
        /// Simulated time.
        now: Duration,
        /// Polls in the drain.
        polls: u64,
        /// The most-polled tasks with their poll counts.
        busiest: Vec<String>,
    },
    /// Simulated time passed the run's budget while workloads were unfinished (for example a
    /// timer that re-arms itself forever, or a retry loop that never gives up).
    #[error(
        "seed {seed}: simulated-time budget of {budget:?} exceeded with workloads unfinished; \
         live tasks: {}{}",
        TaskList(live),
        replay(*seed)
    )]
    TimeBudgetExceeded {
        /// The seed.
        seed: u64,
        /// The budget.
        budget: Duration,
        /// Live tasks, as `process/task`.
        live: Vec<String>,
    },
    /// A task panicked.
    #[error("seed {seed}: task '{task}' panicked at simulated {now:?}: {message}{}", replay(*seed))]
    TaskPanicked {
        /// The seed.
        seed: u64,
        /// Simulated time.
        now: Duration,
        /// `process/task` of the panicking task.
        task: String,
        /// The panic message.
        message: String,
    },
    /// An `always`-type assertion failed.
    #[error(
        "seed {seed}: {} \"{}\" failed at {} in task '{}' at simulated {:?}{}{}",
        .violation.kind.macro_name(),
        .violation.message,
        .violation.location,
        .violation.task,
        .violation.at,
        if .violation.detail.is_empty() { String::new() } else { format!(": {}", .violation.detail) },
        replay(*seed)
    )]
    AssertionFailed {
        /// The seed.
        seed: u64,
        /// What failed, where and when.
        violation: Box<crate::chaos::AssertionViolation>,
    },
    /// An invariant checked after every event was violated.
    #[error(
        "seed {seed}: invariant '{name}' violated at simulated {now:?} (event {event}): {message}{}",
        replay(*seed)
    )]
    InvariantViolated {
        /// The seed.
        seed: u64,
        /// The invariant's name.
        name: String,
        /// What it said.
        message: String,
        /// Simulated time.
        now: Duration,
        /// Index of the event after which it failed.
        event: u64,
    },
    /// The settle phase ended with workloads still running.
    #[error(
        "seed {seed}: workloads did not finish within the settle timeout of {timeout:?} after the \
         chaos phase; still running: {}{}",
        TaskList(running),
        replay(*seed)
    )]
    SettleTimeout {
        /// The seed.
        seed: u64,
        /// The timeout.
        timeout: Duration,
        /// Workload tasks still running, as `process/task`.
        running: Vec<String>,
    },
    /// A workload's run or check returned an error.
    #[error("seed {seed}: workload '{workload}' failed in its {phase} phase: {message}{}", replay(*seed))]
    WorkloadFailed {
        /// The seed.
        seed: u64,
        /// The workload instance.
        workload: String,
        /// `run` or `check`.
        phase: String,
        /// The error it returned.
        message: String,
    },
    /// The same seed ran twice and diverged: something other than the seed influences the run.
    #[error(
        "seed {seed}: nondeterminism: the two runs diverge at event {index}: first run {first}, \
         second run {second}{}",
        replay(*seed)
    )]
    Nondeterministic {
        /// The seed.
        seed: u64,
        /// Index of the first differing event.
        index: usize,
        /// The first run's event there.
        first: String,
        /// The second run's event there.
        second: String,
    },
    /// More tasks were alive at once than the world's limit (`WorldConfig::max_tasks`): a
    /// workload or process spawns without bound.
    #[error(
        "seed {seed}: task limit of {limit} live tasks reached at simulated {now:?}: the spawn of \
         '{refused}' by {spawner} was refused; most common live tasks: {}{}",
        TaskList(most_common),
        replay(*seed)
    )]
    TaskLimitExceeded {
        /// The seed.
        seed: u64,
        /// Simulated time.
        now: Duration,
        /// The limit.
        limit: usize,
        /// The task whose spawn was refused.
        refused: String,
        /// `process/task` that spawned it.
        spawner: String,
        /// The most common live tasks, as `process/task xN`.
        most_common: Vec<String>,
    },
    /// A callback the runner calls outside any task panicked: an invariant, a process factory,
    /// or the simulation's own setup code.
    #[error("seed {seed}: {callback} panicked at simulated {now:?}: {message}{}", replay(*seed))]
    CallbackPanicked {
        /// The seed.
        seed: u64,
        /// Which callback, e.g. `invariant 'balance'` or `the factory of process 'server-1'`.
        callback: String,
        /// Simulated time.
        now: Duration,
        /// The panic message.
        message: String,
    },
    /// The world was set up wrongly (duplicate IP, unknown process, invalid configuration).
    #[error("invalid simulation setup: {message}")]
    InvalidSetup {
        /// What is wrong, naming the bad value.
        message: String,
    },
}

impl SimError {
    /// The seed of the failed run, when the error comes from a run.
    pub fn seed(&self) -> Option<u64> {
        match self {
            SimError::Deadlock { seed, .. }
            | SimError::BusyLoop { seed, .. }
            | SimError::TimeBudgetExceeded { seed, .. }
            | SimError::TaskPanicked { seed, .. }
            | SimError::AssertionFailed { seed, .. }
            | SimError::InvariantViolated { seed, .. }
            | SimError::SettleTimeout { seed, .. }
            | SimError::WorkloadFailed { seed, .. }
            | SimError::Nondeterministic { seed, .. }
            | SimError::TaskLimitExceeded { seed, .. }
            | SimError::CallbackPanicked { seed, .. } => Some(*seed),
            SimError::InvalidSetup { .. } => None,
        }
    }

    pub(crate) fn setup(message: impl Into<String>) -> Self {
        SimError::InvalidSetup {
            message: message.into(),
        }
    }
}

struct TaskList<'a>(&'a [String]);

impl fmt::Display for TaskList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.is_empty() {
            return f.write_str("(none)");
        }
        const SHOWN: usize = 12;
        for (i, task) in self.0.iter().take(SHOWN).enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(task)?;
        }
        if self.0.len() > SHOWN {
            write!(f, " and {} more", self.0.len() - SHOWN)?;
        }
        Ok(())
    }
}

fn replay(seed: u64) -> String {
    format!("\n  replay: MOONPOOL_SEED={seed}")
}
