//! What a [`SimWorld`] tells about itself: time, live tasks and what they wait on, the event
//! trace, the assertion table, the run's figures.

use std::time::Duration;

use super::{RunSummary, SimWorld};
use crate::chaos::AssertionTable;
use crate::executor::{ProcessId, TaskInfo};
use crate::kernel::trace::TraceEntry;

impl SimWorld {
    /// Current simulated time.
    pub fn now(&self) -> Duration {
        self.handle.with(|state| state.core.now)
    }

    /// Every live task as `process/task (waits on ...)`: those waiting on a wake-up the simulator
    /// does not schedule first, each group sorted by task id.
    pub fn live_tasks(&self) -> Vec<String> {
        describe_waiting(&self.executor.spawner(), &self.process_names(), None)
    }

    /// `process/task` for a task.
    pub(super) fn task_label(&self, task: &TaskInfo) -> String {
        self.label(task.owner, &task.name)
    }

    /// `process/task`, with `world` for tasks that belong to no process.
    pub(super) fn label(&self, owner: Option<ProcessId>, task: &str) -> String {
        let owner = owner
            .and_then(|id| {
                self.handle
                    .with(|s| s.core.process(id).map(|p| p.name.clone()))
            })
            .unwrap_or_else(|| "world".to_string());
        format!("{owner}/{task}")
    }

    /// The events recorded so far when [`WorldConfig::record_trace`](crate::WorldConfig::record_trace) is on (also after a failed
    /// run).
    pub fn trace(&self) -> Vec<TraceEntry> {
        self.handle
            .with(|state| state.core.trace_log.clone().unwrap_or_default())
    }

    /// The story recorded so far when [`WorldConfig::record_story`] is on (also after a failed
    /// run).
    pub(crate) fn story(&self) -> Option<crate::kernel::story::StorySnapshot> {
        self.handle
            .with(|state| state.core.story.as_ref().map(|story| story.snapshot()))
    }

    /// Process names by index (the `process` field of trace entries).
    pub fn process_names(&self) -> Vec<String> {
        self.control().process_names()
    }

    /// The assertion table of the last run (empty before a run).
    pub fn assertions(&self) -> AssertionTable {
        self.chaos
            .as_ref()
            .map(|(chaos, _)| chaos.lock().table_snapshot())
            .unwrap_or_default()
    }

    /// [`summary`](Self::summary) for a world whose run is over and which is about to be
    /// dropped: the assertion table, the fault counts and the trace are moved out instead of
    /// copied (a seed's table and maps are a tenth of the allocations of a small seed). A later
    /// `summary` sees them empty.
    pub(crate) fn take_summary(&mut self) -> RunSummary {
        let (assertions, buggify_fired) = match &self.chaos {
            Some((chaos, _)) => {
                let mut chaos = chaos.lock();
                (chaos.take_table(), chaos.buggify_fired)
            }
            None => (AssertionTable::default(), 0),
        };
        let (seed, polls) = (self.seed, self.polls);
        self.handle.with(|state| {
            let mut faults = std::mem::take(&mut state.core.faults);
            let mut fault_kinds = std::mem::take(&mut state.core.fault_kinds);
            if buggify_fired > 0 {
                faults.insert("buggify.fired", buggify_fired);
                fault_kinds.insert(crate::kernel::fault::FaultKind::Buggify, buggify_fired);
            }
            RunSummary {
                seed,
                fingerprint: state.core.trace.value(),
                sim_time: state.core.now,
                events: state.core.events,
                polls,
                faults,
                fault_kinds,
                assertions,
                trace: state.core.trace_log.take().unwrap_or_default(),
            }
        })
    }

    /// The run's figures so far; after a failed run, what it did until it failed.
    pub fn summary(&self) -> RunSummary {
        let (assertions, buggify_fired) = match &self.chaos {
            Some((chaos, _)) => {
                let chaos = chaos.lock();
                (chaos.table_snapshot(), chaos.buggify_fired)
            }
            None => (AssertionTable::default(), 0),
        };
        self.handle.with(|state| {
            let mut faults = state.core.faults.clone();
            let mut fault_kinds = state.core.fault_kinds.clone();
            if buggify_fired > 0 {
                faults.insert("buggify.fired", buggify_fired);
                fault_kinds.insert(crate::kernel::fault::FaultKind::Buggify, buggify_fired);
            }
            RunSummary {
                seed: self.seed,
                fingerprint: state.core.trace.value(),
                sim_time: state.core.now,
                events: state.core.events,
                polls: self.polls,
                faults,
                fault_kinds,
                assertions,
                trace: state.core.trace_log.clone().unwrap_or_default(),
            }
        })
    }
}

/// Every live task of `spawner` but those owned by `except`, as `process/task (waits on ...)`:
/// those waiting on a wake-up the simulator does not schedule first, then the others, each group
/// by task id. What hang reports list.
pub(crate) fn describe_waiting(
    spawner: &crate::executor::Spawner,
    process_names: &[String],
    except: Option<ProcessId>,
) -> Vec<String> {
    let mut tasks = spawner.waiting_tasks();
    tasks.retain(|(task, _)| except.is_none() || task.owner != except);
    // Tasks waiting on nothing the simulator schedules are the usual culprits: list them first.
    tasks.sort_by_key(|(task, waiting)| (waiting.is_some(), task.id));
    tasks
        .into_iter()
        .map(|(task, waiting)| {
            let owner = task
                .owner
                .and_then(|id| process_names.get(id.0 as usize).map(String::as_str))
                .unwrap_or("world");
            match waiting {
                Some(reason) => format!("{owner}/{} (waits on {reason})", task.name),
                None => format!(
                    "{owner}/{} (waits on {})",
                    task.name,
                    crate::executor::UNSCHEDULED_WAIT
                ),
            }
        })
        .collect()
}
