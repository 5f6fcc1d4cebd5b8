//! The disks' verbs on [`WorldControl`]: failed, stalled and throttled disks, inspection.

use std::path::PathBuf;
use std::time::Duration;

use super::WorldControl;
use crate::executor::ProcessId;

impl WorldControl {
    /// Fails `process`'s disk: from now on no operation on it completes (operations already in
    /// flight still do). A wipe gives the process a fresh, working disk.
    pub fn fail_disk(&self, process: ProcessId) {
        self.handle.with(|state| {
            state.storage.disk(process).failed = Some(true);
            state.core.fault("storage.failed_disk");
        });
    }

    /// Stalls `process`'s disk for `duration`: no operation starts before it ends.
    pub fn stall_disk(&self, process: ProcessId, duration: Duration) {
        self.handle.with(|state| {
            let until = state.core.now.saturating_add(duration);
            let disk = state.storage.disk(process);
            disk.stall_until = disk.stall_until.max(until);
            state.core.fault("storage.stall");
        });
    }

    /// Throttles `process`'s disk for `duration`: operations starting meanwhile take `factor`
    /// times longer and keep the disk busy `factor` times longer. A factor below 1 counts as 1.
    pub fn throttle_disk(&self, process: ProcessId, factor: f64, duration: Duration) {
        self.handle.with(|state| {
            let until = state.core.now.saturating_add(duration);
            let disk = state.storage.disk(process);
            disk.throttle_until = until;
            disk.throttle_factor = if factor.is_finite() {
                factor.max(1.0)
            } else {
                1.0
            };
            state.core.fault("storage.throttle");
        });
    }

    /// The paths on `process`'s disk, sorted (inspection for tests; takes no simulated time).
    pub fn disk_paths(&self, process: ProcessId) -> Vec<PathBuf> {
        self.handle.with(|state| state.storage.paths(process))
    }
}
