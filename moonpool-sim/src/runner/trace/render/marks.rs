//! Marks: faults, boots and stops, what the run left open, the failure, and the names of
//! processes and threads.

use serde_json::{Value, json};

use super::{DISK, FailureMark, LIFECYCLE, NETWORK, Renderer, Track, micros};
use crate::kernel::story::{Note, What};

/// Connection threads sort after every task thread.
const CONNECTION_SORT: u64 = 1 << 32;

impl Renderer<'_> {
    pub(super) fn lifecycle(&mut self, note: &Note, ts: u64) {
        let What::Lifecycle {
            process,
            what,
            generation,
            detail,
        } = &note.what
        else {
            return;
        };
        let track = Track {
            pid: self.pid(*process),
            tid: LIFECYCLE,
        };
        let name = match *what {
            "boot" | "restart" => format!("{what} (boot #{generation})"),
            stop => format!("{stop} (boot #{generation} ends)"),
        };
        self.instant(
            track,
            ts,
            name.clone(),
            "lifecycle",
            json!({"kind": what, "boot": generation, "detail": detail, "sim_ns": note.at}),
        );
        if matches!(*what, "boot" | "restart") {
            let id = self.next_async;
            self.next_async += 1;
            let name = format!("up (boot #{generation})");
            self.emit(
                ts,
                json!({"name": name, "cat": "lifecycle",
                "ph": "b", "id": id, "ts": micros(ts), "pid": track.pid, "tid": LIFECYCLE}),
            );
            self.up.insert(*process, (id, name));
        } else {
            self.close_connections_of(*process);
            if let Some((id, name)) = self.up.remove(process) {
                self.emit(
                    ts,
                    json!({"name": name, "cat": "lifecycle",
                    "ph": "e", "id": id, "ts": micros(ts), "pid": track.pid, "tid": LIFECYCLE}),
                );
            }
        }
        self.event_process = Some(*process);
    }

    /// Draws a fault that no connection note claimed, on the track it hit: the disk of the
    /// process whose task hit a storage fault, the lifecycle of a process for the others.
    pub(super) fn flush_fault(&mut self) {
        let Some((kind, ts, at, here)) = self.pending_fault.take() else {
            return;
        };
        let tid = if kind.starts_with("storage.") {
            DISK
        } else if kind.starts_with("network.") {
            NETWORK
        } else {
            LIFECYCLE
        };
        let pid = match (kind.starts_with("process."), here) {
            (false, Some(track)) => track.pid,
            _ => self
                .event_process
                .map_or(self.world_pid, |process| self.pid(process)),
        };
        self.instant(
            Track { pid, tid },
            ts,
            format!("fault: {kind}"),
            "fault",
            json!({"kind": kind, "sim_ns": at}),
        );
    }

    /// Bytes and packets never delivered, open "up" spans, the failure marker.
    pub(super) fn finish(&mut self, failure: Option<&FailureMark>) {
        let end = self.last_ts + 1;
        self.finish_calls();
        let held: Vec<_> = std::mem::take(&mut self.held)
            .into_values()
            .flatten()
            .collect();
        for send in held {
            let to = self.connection_label(send.connection);
            self.instant(
                send.track,
                send.ts,
                format!("{} B: held by a cut when the run ended", send.bytes),
                "message-lost",
                json!({"connection": to, "data": send.preview}),
            );
        }
        let in_flight: Vec<_> = std::mem::take(&mut self.sends)
            .into_values()
            .chain(std::mem::take(&mut self.released).into_values().flatten())
            .collect();
        for send in in_flight {
            let to = self.connection_label(send.connection);
            self.instant(
                send.track,
                send.ts,
                format!("{} B: still in flight when the run ended", send.bytes),
                "message-lost",
                json!({"connection": to, "data": send.preview}),
            );
        }
        let lost: Vec<(Track, u64, String)> = self
            .frames
            .values()
            .flatten()
            .filter(|f| !f.received)
            .map(|f| (f.track, f.ts, f.name.clone()))
            .collect();
        for (track, ts, name) in lost {
            self.instant(
                track,
                ts,
                format!("never received: {name}"),
                "message-lost",
                json!({"endpoint": name}),
            );
        }
        for (process, (id, name)) in std::mem::take(&mut self.up) {
            let pid = self.pid(process);
            self.emit(
                end,
                json!({"name": name, "cat": "lifecycle", "ph": "e", "id": id,
                "ts": micros(end), "pid": pid, "tid": LIFECYCLE}),
            );
        }
        let Some(failure) = failure else {
            return;
        };
        // Where the assertion failed; else on the failing task's last poll at the failure's
        // time; else where the run stopped.
        let violated = self.violation.filter(|_| failure.kind == "assertion");
        let at_poll = violated.or_else(|| {
            failure.task.as_ref().and_then(|task| {
                self.last_polls
                    .get(task)
                    .filter(|(_, _, sim, _)| failure.at_nanos.is_none_or(|at| at == *sim))
                    .map(|(_, end, _, track)| (*track, *end))
            })
        });
        let (track, ts) = at_poll.unwrap_or((
            Track {
                pid: self.world_pid,
                tid: LIFECYCLE,
            },
            end,
        ));
        self.instant(
            track,
            ts,
            format!("FAILED: {}", failure.kind),
            "failure",
            json!({"kind": failure.kind, "message": failure.message, "task": failure.task,
                   "sim_ns": failure.at_nanos, "replay": failure.replay}),
        );
    }

    pub(super) fn metadata(&self) -> Vec<Value> {
        let mut events = Vec::new();
        let pids = (0..=self.world_pid).map(|pid| {
            let name = self.names.get(pid as usize).map_or("world", String::as_str);
            (pid, name)
        });
        for (pid, name) in pids {
            events.push(json!({"name": "process_name", "ph": "M", "pid": pid, "tid": 0, "args": {"name": name}}));
            events.push(json!({"name": "process_sort_index", "ph": "M", "pid": pid, "tid": 0, "args": {"sort_index": pid}}));
            for (tid, thread) in [
                (LIFECYCLE, "lifecycle"),
                (NETWORK, "network"),
                (DISK, "disk"),
            ] {
                events.push(json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid, "args": {"name": thread}}));
                events.push(json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid, "args": {"sort_index": tid}}));
            }
        }
        for ((pid, name), tid) in &self.threads {
            let process = self
                .names
                .get(*pid as usize)
                .map_or("world", String::as_str);
            events.push(
                json!({"name": "thread_name", "ph": "M", "pid": pid, "tid": tid,
                               "args": {"name": format!("{process}/{name}")}}),
            );
            events.push(
                json!({"name": "thread_sort_index", "ph": "M", "pid": pid, "tid": tid,
                               "args": {"sort_index": tid}}),
            );
        }
        // Connection threads after the task threads, in the order they were made.
        for (connection, owner) in self.connection_tracks.keys() {
            let name = self.connection_track_name(*connection, *owner);
            let Some(known) = self.connection_tracks.get(&(*connection, *owner)) else {
                continue;
            };
            for (lane, (track, _)) in known.lanes.iter().enumerate() {
                let name = if lane == 0 {
                    name.clone()
                } else {
                    format!("{name} (overlapping faults)")
                };
                events.push(
                    json!({"name": "thread_name", "ph": "M", "pid": track.pid, "tid": track.tid,
                           "args": {"name": name}}),
                );
                events.push(
                    json!({"name": "thread_sort_index", "ph": "M", "pid": track.pid,
                           "tid": track.tid, "args": {"sort_index": CONNECTION_SORT + track.tid}}),
                );
            }
        }
        events
    }
}
