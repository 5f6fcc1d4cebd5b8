//! The Unix side of a split: forking batches of child timelines, reaping them, sharing the
//! parallelism slots, and what a forked child does first.

use super::*;
use crate::gate;
use crate::process::{self, Ended, Forked};

/// How a batch ended, on this side of the forks.
enum BatchEnd {
    Done { novel: bool },
    Child(u64),
}

/// A child running.
struct Running {
    pid: i32,
    seed: u64,
}

impl Explorer {
    pub(super) fn split_unix(&mut self, point: SplitPoint) -> Branch {
        let c = self.counters();
        if c.stop.load(Ordering::Acquire) != 0 {
            c.skipped_stopped.fetch_add(1, Ordering::AcqRel);
            return Branch::Parent;
        }
        if self.local.depth >= self.config.max_depth {
            c.skipped_depth.fetch_add(1, Ordering::AcqRel);
            return Branch::Parent;
        }
        if c.energy_left.load(Ordering::Acquire) == 0 {
            c.skipped_energy.fetch_add(1, Ordering::AcqRel);
            return Branch::Parent;
        }
        self.leave_if_orphaned();
        c.split_points.fetch_add(1, Ordering::AcqRel);
        if point.fresh {
            c.fresh_splits.fetch_add(1, Ordering::AcqRel);
        } else {
            c.repeat_splits.fetch_add(1, Ordering::AcqRel);
        }
        let budget_left = if self.local.child {
            process::pause_timer()
        } else {
            None
        };
        gate::set_waiting(true);
        process::flush_std();
        let branch = self.run_split(point);
        if branch == Branch::Parent {
            gate::set_waiting(false);
            if let Some(left) = budget_left {
                process::arm_timer(left);
            }
        }
        branch
    }

    fn run_split(&mut self, point: SplitPoint) -> Branch {
        let batch = self.config.batch;
        let (allowance, warmup) = if point.fresh {
            (self.config.per_split, self.config.min_per_split)
        } else {
            (batch.min(self.config.per_split), 0)
        };
        let mut own = allowance;
        let mut spawned = 0u64;
        let mut holding_slot = true;
        let mut last_novel = true;
        loop {
            let c = self.counters();
            if c.stop.load(Ordering::Acquire) != 0 {
                break;
            }
            let (wanted, from_pool) = if own > 0 {
                let n = batch.min(own);
                own -= n;
                (n, false)
            } else if last_novel {
                let n = take(&c.pool, batch);
                c.drawn.fetch_add(n, Ordering::AcqRel);
                (n, true)
            } else {
                break;
            };
            if wanted == 0 {
                break;
            }
            let granted = take(&c.energy_left, wanted);
            let unused = wanted - granted;
            if from_pool {
                c.pool.fetch_add(unused, Ordering::AcqRel);
                c.drawn.fetch_sub(unused, Ordering::AcqRel);
            } else {
                own += unused;
            }
            if granted == 0 {
                break;
            }
            match self.run_batch(point.position, spawned, granted, &mut holding_slot) {
                BatchEnd::Child(seed) => return Branch::Child { seed },
                BatchEnd::Done { novel } => {
                    spawned += granted;
                    last_novel = novel;
                    if !novel && spawned >= warmup {
                        break;
                    }
                }
            }
        }
        let c = self.counters();
        if own > 0 {
            c.pool.fetch_add(own, Ordering::AcqRel);
            c.returned.fetch_add(own, Ordering::AcqRel);
        }
        if !holding_slot {
            self.acquire_slot_blocking();
        }
        Branch::Parent
    }

    fn run_batch(
        &mut self,
        position: u64,
        first_index: u64,
        n: u64,
        holding_slot: &mut bool,
    ) -> BatchEnd {
        let mut running: Vec<Running> = Vec::new();
        let mut novel = false;
        for j in 0..n {
            if *holding_slot {
                *holding_slot = false;
            } else {
                loop {
                    if self.try_acquire_slot() {
                        break;
                    }
                    if running.is_empty() {
                        self.acquire_slot_blocking();
                        break;
                    }
                    novel |= self.reap_one(&mut running, position);
                }
            }
            let c = self.counters();
            if c.stop.load(Ordering::Acquire) != 0 {
                c.slots_free.fetch_add(1, Ordering::AcqRel);
                c.energy_left.fetch_add(n - j, Ordering::AcqRel);
                break;
            }
            let seed = mix(mix(self.local.lineage, position), first_index + j);
            let parent = process::pid();
            gate::close();
            match process::fork() {
                Forked::Child => {
                    gate::reset_in_child();
                    self.become_child(parent, position, seed);
                    return BatchEnd::Child(seed);
                }
                Forked::Parent(pid) => {
                    gate::open();
                    let c = self.counters();
                    c.children.fetch_add(1, Ordering::AcqRel);
                    let now = c.running.fetch_add(1, Ordering::AcqRel) + 1;
                    c.peak_running.fetch_max(now, Ordering::AcqRel);
                    running.push(Running { pid, seed });
                }
                Forked::Failed => {
                    gate::open();
                    let c = self.counters();
                    c.fork_failures.fetch_add(1, Ordering::AcqRel);
                    c.slots_free.fetch_add(1, Ordering::AcqRel);
                    c.energy_left.fetch_add(n - j, Ordering::AcqRel);
                    break;
                }
            }
        }
        while !running.is_empty() {
            novel |= self.reap_one(&mut running, position);
        }
        BatchEnd::Done { novel }
    }

    fn become_child(&mut self, parent: i32, position: u64, seed: u64) {
        process::setup_child(parent, self.config.timeline_budget);
        IN_CHILD.store(true, Ordering::Release);
        let local = &mut self.local;
        local.child = true;
        local.parent = parent;
        local.depth += 1;
        local.steps.push(Step { position, seed });
        local.lineage = mix(local.lineage ^ position, seed);
        local.novel = false;
        let depth = local.depth;
        let c = self.counters();
        c.timelines.fetch_add(1, Ordering::AcqRel);
        c.max_depth_reached.fetch_max(depth, Ordering::AcqRel);
    }

    /// Waits for one of `running` to end and reaps it; returns whether it (or its subtree)
    /// found something new or a bug.
    fn reap_one(&mut self, running: &mut Vec<Running>, position: u64) -> bool {
        let (index, ended) = self.wait_one(running);
        let child = running.swap_remove(index);
        let c = self.counters();
        c.slots_free.fetch_add(1, Ordering::AcqRel);
        c.running.fetch_sub(1, Ordering::AcqRel);
        let abnormal = match ended {
            Ended::Exited(process::EXIT_PLAIN) => return false,
            Ended::Exited(process::EXIT_NOVEL) => return true,
            Ended::Signaled(libc::SIGALRM) => {
                c.hangs.fetch_add(1, Ordering::AcqRel);
                (
                    BugKind::Hung,
                    format!(
                        "timeline killed: it ran past its wall-clock budget of {:?} \
                         (timeline_budget)",
                        self.config.timeline_budget
                    ),
                    "hang: ran past its wall-clock budget".to_string(),
                )
            }
            Ended::Signaled(signal) => {
                c.died.fetch_add(1, Ordering::AcqRel);
                let name = process::signal_name(signal);
                (
                    BugKind::Died,
                    format!("timeline's process killed by {name}"),
                    format!("died: killed by {name}"),
                )
            }
            Ended::Lost => {
                c.died.fetch_add(1, Ordering::AcqRel);
                (
                    BugKind::Died,
                    "timeline's process could not be waited for (something else reaped it: \
                     is SIGCHLD ignored?)"
                        .to_string(),
                    "died: lost".to_string(),
                )
            }
            Ended::Exited(code) => {
                c.died.fetch_add(1, Ordering::AcqRel);
                (
                    BugKind::Died,
                    format!(
                        "timeline's process exited with code {code} before its timeline \
                         ended (std::process::exit in the workload, or a panic that \
                         escaped the simulator)"
                    ),
                    format!("died: exit code {code}"),
                )
            }
        };
        let mut steps = self.local.steps.clone();
        steps.push(Step {
            position,
            seed: child.seed,
        });
        let (kind, text, signature) = abnormal;
        self.record_bug(kind, steps, text, signature, String::new(), None);
        true
    }

    /// Blocks until one of `running` has ended; returns its index and how it ended.
    fn wait_one(&self, running: &[Running]) -> (usize, Ended) {
        if let [only] = running {
            return (0, process::wait(only.pid));
        }
        // Several: block until any child of ours is waitable, without reaping it.
        if let Some(pid) = process::peek_any()
            && let Some(index) = running.iter().position(|r| r.pid == pid)
        {
            return (index, process::wait(pid));
        }
        // A waitable child that is not one of these (or none at all): poll ours.
        let mut pause = Duration::from_micros(20);
        loop {
            for (index, child) in running.iter().enumerate() {
                if let Some(ended) = process::try_wait(child.pid) {
                    return (index, ended);
                }
            }
            self.leave_if_orphaned();
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    fn try_acquire_slot(&self) -> bool {
        self.counters()
            .slots_free
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |free| {
                free.checked_sub(1)
            })
            .is_ok()
    }

    fn acquire_slot_blocking(&self) {
        let mut pause = Duration::from_micros(20);
        while !self.try_acquire_slot() {
            self.leave_if_orphaned();
            std::thread::sleep(pause);
            pause = (pause * 2).min(Duration::from_millis(2));
        }
    }

    /// A child whose parent died leaves (its subtree follows).
    fn leave_if_orphaned(&self) {
        if self.local.child && process::orphaned(self.local.parent) {
            process::exit_now(process::EXIT_ORPHANED);
        }
    }
}
