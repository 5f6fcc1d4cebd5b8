//! Draws a run's story (`kernel::story`) as Chrome trace events.
//!
//! Layout: one trace process (`pid`) per simulated process, in creation order, plus `world` for
//! the simulator's own tasks. In each, thread `0` is `lifecycle` (boots, stops, process faults,
//! failure markers), `1` is `network` (faults of the process's traffic as a whole: partitions
//! and clogs between two processes as spans, refused or hung connects), `2` is `disk` (storage
//! faults); every task name gets its own thread, named `process/task` as in the report, holding
//! one slice per poll; and every connection end the process owns gets its own thread, named
//! `conn#N local -> remote (peer)`, holding the connection's events (connect, accept, FIN,
//! reset, ...), the faults that hit it, the bytes delivered to it, and the partitions and clogs
//! that stop it as slices (a fault overlapping another without nesting goes on a second thread
//! of the connection, `... (overlapping faults)`).
//!
//! RPC (see `rpc`): a request is a flow from the caller's send to the task that runs its method,
//! and its reply a flow from there back to the caller's task that takes it, with the id of the
//! request's flow plus one.
//!
//! Time: simulated time, stretched by one nanosecond per note recorded at the same instant, so
//! that the order of the run shows (a poll's slice spans what it did). Every event's `args.sim_ns`
//! holds its exact simulated time.

use std::collections::BTreeMap;

use moonpool_core::UID;
use serde_json::{Value, json};

use crate::executor::PollEnd;
use crate::kernel::story::{Note, StorySnapshot, What};

mod connections;
mod marks;
mod messages;
mod rpc;

/// The lifecycle thread of a trace process.
pub(super) const LIFECYCLE: u64 = 0;
/// The network thread.
pub(super) const NETWORK: u64 = 1;
/// The disk thread.
pub(super) const DISK: u64 = 2;
/// Task and connection threads are numbered from here.
const FIRST_TASK_TID: u64 = 16;

/// Why the run failed, for its marker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureMark {
    /// What failed: `assertion`, `invariant`, `panic`, `deadlock`, `busy loop`, `hang`, ...
    pub kind: String,
    /// The failure as the report prints it.
    pub message: String,
    /// `process/task` where it happened, when one task did.
    pub task: Option<String>,
    /// Simulated time of the failure, when known.
    pub at_nanos: Option<u64>,
    /// The command that replays the seed.
    pub replay: String,
}

/// A trace event with the key it is sorted by.
pub(super) struct Emitted {
    pub(super) ts: u64,
    /// Order of emission, to keep sorting stable.
    pub(super) order: u64,
    pub(super) event: Value,
}

/// Where a trace event goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
struct Track {
    pid: u64,
    tid: u64,
}

/// An outstanding byte send, waiting for its delivery event.
struct PendingSend {
    flow: u64,
    track: Track,
    ts: u64,
    from: u32,
    bytes: u64,
    connection: u64,
    preview: String,
}

/// The delivery being applied: drawn once it is known not to be held back.
struct PendingDelivery {
    /// The sends it carries (several when a restore releases bytes held by a cut).
    sends: Vec<PendingSend>,
    /// The receiving process.
    process: u32,
    at: u64,
    ts: u64,
    /// Its bytes were flipped on the way.
    corrupted: bool,
}

/// An outstanding transport packet, waiting for its receipt.
struct PendingFrame {
    flow: u64,
    track: Track,
    ts: u64,
    name: String,
    received: bool,
}

/// The thread of one connection end, and its extra threads for overlapping fault spans.
struct ConnectionTrack {
    track: Track,
    /// The process at the other end (`u32::MAX`: unknown).
    peer: u32,
    /// No FIN or reset sent or received yet, its process not stopped.
    open: bool,
    /// A reset sent or received: bytes arriving here are dropped.
    reset: bool,
    /// Each lane's thread (the first is `track`) and the ends of the spans open on it,
    /// innermost last.
    lanes: Vec<(Track, Vec<u64>)>,
}

/// One RPC call, by its reply token.
struct Call {
    /// The request's endpoint and its name.
    token: UID,
    name: String,
    /// The request's flow; its reply's is this plus one.
    flow: u64,
    /// The request packet's slice on the caller, and the packet.
    sent: Option<(Track, u64, (UID, u32, usize))>,
    /// Where the method's task took it.
    handled: Option<(Track, u64)>,
    /// The reply packet's slice.
    reply: Option<(Track, u64)>,
}

struct Renderer<'a> {
    story: &'a StorySnapshot,
    names: &'a [String],
    world_pid: u64,
    out: Vec<Emitted>,
    order: u64,
    next_flow: u64,
    /// Task threads by (pid, name).
    threads: BTreeMap<(u64, String), u64>,
    /// Each task's thread.
    task_tracks: BTreeMap<u64, Track>,
    /// The poll in progress: task, its track, its start.
    polling: Option<(u64, Track, u64)>,
    /// The last poll of each task label: (start, end) in trace time and its track.
    last_polls: BTreeMap<String, (u64, u64, u64, Track)>,
    /// Where the first `always`-type assertion failed: its track and trace time.
    violation: Option<(Track, u64)>,
    /// Timers by key: the track of the task that set them.
    timers: BTreeMap<u64, Track>,
    sends: BTreeMap<u64, PendingSend>,
    /// Sends held back, by the delivery event that will carry them.
    released: BTreeMap<u64, Vec<PendingSend>>,
    /// Sends held by a scripted cut, by receiving end, until its restore.
    held: BTreeMap<(u64, u32), Vec<PendingSend>>,
    /// (token, checksum, len) of packets sent, oldest first.
    frames: BTreeMap<(UID, u32, usize), Vec<PendingFrame>>,
    /// Reply tokens: the endpoint of the request that wants the reply.
    replies: BTreeMap<UID, UID>,
    /// Deliveries not yet read, by (connection, receiving process): a flow from each goes to
    /// the read that consumes it.
    unread: BTreeMap<(u64, u64), Vec<(Track, u64)>>,
    /// Connection labels (`local -> remote`) by connection and owning process.
    connections: BTreeMap<(u64, u32), String>,
    /// Each connection's label as the end first heard of (its opener) sees it.
    openers: BTreeMap<u64, String>,
    /// Connection threads by connection and owning process.
    connection_tracks: BTreeMap<(u64, u32), ConnectionTrack>,
    /// The next thread number to hand out.
    next_tid: u64,
    /// RPC calls by reply token.
    calls: BTreeMap<UID, Call>,
    /// The reply token of the request being built (its packet comes next).
    building: Option<UID>,
    /// The delivery being applied.
    delivery: Option<PendingDelivery>,
    /// The process of the last event applied (where a fault outside a poll lands).
    event_process: Option<u32>,
    /// A fault counted but not yet drawn: the next connection note may say where it hit.
    pending_fault: Option<(&'static str, u64, u64, Option<Track>)>,
    /// Each process's open "up" span: its id and name.
    up: BTreeMap<u32, (u64, String)>,
    next_async: u64,
    last_ts: u64,
}

/// Renders `story`; `names[i]` names process `i`. Returns the events (unsorted, with metadata
/// first) and the last trace time.
pub(super) fn render(
    story: &StorySnapshot,
    names: &[String],
    failure: Option<&FailureMark>,
) -> (Vec<Value>, Vec<Emitted>) {
    let mut r = Renderer {
        story,
        names,
        world_pid: names.len() as u64,
        out: Vec::with_capacity(story.notes.len()),
        order: 0,
        next_flow: 1,
        threads: BTreeMap::new(),
        task_tracks: BTreeMap::new(),
        polling: None,
        last_polls: BTreeMap::new(),
        violation: None,
        timers: BTreeMap::new(),
        sends: BTreeMap::new(),
        released: BTreeMap::new(),
        held: BTreeMap::new(),
        frames: BTreeMap::new(),
        replies: BTreeMap::new(),
        unread: BTreeMap::new(),
        connections: BTreeMap::new(),
        openers: BTreeMap::new(),
        connection_tracks: BTreeMap::new(),
        next_tid: FIRST_TASK_TID,
        calls: BTreeMap::new(),
        building: None,
        delivery: None,
        event_process: None,
        pending_fault: None,
        up: BTreeMap::new(),
        next_async: 1,
        last_ts: 0,
    };
    if story.dropped > 0 {
        let first = story.notes.first().map_or(0, |n| n.at);
        r.instant(
            Track {
                pid: r.world_pid,
                tid: LIFECYCLE,
            },
            first,
            "trace cut".to_string(),
            "trace",
            json!({
                "note": format!(
                    "the story kept its last notes only: {} earlier notes (up to simulated {} ns) are not shown",
                    story.dropped, story.dropped_until
                ),
                "sim_ns": story.dropped_until,
            }),
        );
    }
    for note in &story.notes {
        let ts = note.at.max(r.last_ts + 1);
        r.last_ts = ts;
        r.note(note, ts);
    }
    r.end_delivery();
    r.flush_fault();
    r.finish(failure);
    let metadata = r.metadata();
    (metadata, r.out)
}

impl Renderer<'_> {
    fn emit(&mut self, ts: u64, event: Value) -> usize {
        self.order += 1;
        self.out.push(Emitted {
            ts,
            order: self.order,
            event,
        });
        self.out.len() - 1
    }

    fn pid(&self, process: u32) -> u64 {
        if (process as usize) < self.names.len() {
            u64::from(process)
        } else {
            self.world_pid
        }
    }

    fn process_name(&self, process: u32) -> &str {
        self.names
            .get(process as usize)
            .map_or("world", String::as_str)
    }

    /// The process at the other end of a connection, if it still has one.
    fn peer_name(&self, process: u32) -> &str {
        if process == u32::MAX {
            "none (closed)"
        } else {
            self.process_name(process)
        }
    }

    fn instant(&mut self, track: Track, ts: u64, name: String, cat: &str, args: Value) -> usize {
        self.emit(
            ts,
            json!({"name": name, "cat": cat, "ph": "i", "s": "t", "ts": micros(ts),
                   "pid": track.pid, "tid": track.tid, "args": args}),
        )
    }

    fn slice(
        &mut self,
        track: Track,
        ts: u64,
        dur: u64,
        name: String,
        cat: &str,
        args: Value,
    ) -> usize {
        self.emit(
            ts,
            json!({"name": name, "cat": cat, "ph": "X", "ts": micros(ts), "dur": micros(dur),
                   "pid": track.pid, "tid": track.tid, "args": args}),
        )
    }

    /// A flow `id` from the slice at `from` to the slice at `to` (both ends at once, so that
    /// every flow in a trace is matched).
    fn flow(&mut self, from: (Track, u64), to: (Track, u64), id: u64, name: &str, cat: &str) {
        let ((start, start_ts), (end, end_ts)) = (from, to);
        self.emit(
            start_ts,
            json!({"name": name, "cat": cat, "ph": "s", "id": id, "ts": micros(start_ts),
                   "pid": start.pid, "tid": start.tid}),
        );
        self.emit(
            end_ts,
            json!({"name": name, "cat": cat, "ph": "f", "bp": "e", "id": id,
                   "ts": micros(end_ts), "pid": end.pid, "tid": end.tid}),
        );
    }

    /// A new thread number.
    fn new_tid(&mut self) -> u64 {
        let tid = self.next_tid;
        self.next_tid += 1;
        tid
    }

    /// The track of a task, made on its first use.
    fn task_track(&mut self, task: u64) -> Track {
        if let Some(track) = self.task_tracks.get(&task) {
            return *track;
        }
        let (name, owner) = self
            .story
            .tasks
            .get(&task)
            .cloned()
            .unwrap_or_else(|| (format!("task#{task}"), None));
        let pid = owner.map_or(self.world_pid, |p| self.pid(p));
        let tid = match self.threads.get(&(pid, name.clone())) {
            Some(tid) => *tid,
            None => {
                let tid = self.new_tid();
                self.threads.insert((pid, name), tid);
                tid
            }
        };
        let track = Track { pid, tid };
        self.task_tracks.insert(task, track);
        track
    }

    fn task_label(&self, task: u64) -> String {
        let (name, owner) = self
            .story
            .tasks
            .get(&task)
            .cloned()
            .unwrap_or_else(|| (format!("task#{task}"), None));
        let process = owner.map_or("world", |p| self.process_name(p));
        format!("{process}/{name}")
    }

    /// Where something of `process` on thread `tid` goes: the polling task's process when the
    /// process is unknown.
    fn process_track(&self, process: Option<u32>, tid: u64) -> Track {
        let pid = match process {
            Some(p) if p != u32::MAX => self.pid(p),
            _ => self
                .polling
                .map_or(self.world_pid, |(_, track, _)| track.pid),
        };
        Track { pid, tid }
    }

    /// The current poll's track, or `fallback`.
    fn here(&self, fallback: Track) -> Track {
        self.polling.map_or(fallback, |(_, track, _)| track)
    }

    fn note(&mut self, note: &Note, ts: u64) {
        if let What::Span { from, detail, .. } = &note.what
            && let Some((kind, fault_ts, at, _)) = self.pending_fault.take()
        {
            // A partition or clog: the fault hit the process it cuts off.
            let track = self.process_track(Some(*from), NETWORK);
            self.instant(
                track,
                fault_ts,
                format!("fault: {kind}"),
                "fault",
                json!({"kind": kind, "detail": detail, "sim_ns": at}),
            );
        }
        if !matches!(note.what, What::Connection { .. }) {
            self.flush_fault();
        }
        if matches!(note.what, What::Connection { .. })
            && self
                .pending_fault
                .is_some_and(|(kind, _, _, _)| !kind.starts_with("network."))
        {
            self.flush_fault();
        }
        if !matches!(
            note.what,
            What::Connection { .. } | What::Rescheduled { .. } | What::Fault { .. } | What::Held
        ) {
            self.end_delivery();
        }
        match &note.what {
            What::PollBegin(task) => {
                let track = self.task_track(*task);
                self.polling = Some((*task, track, ts));
            }
            What::PollEnd(task, end) => {
                let Some((polled, track, start)) = self.polling.take() else {
                    return;
                };
                if polled != *task {
                    return;
                }
                let name = match end {
                    PollEnd::Pending => "poll",
                    PollEnd::Completed => "poll (completed)",
                    PollEnd::Panicked => "poll (panicked)",
                };
                let label = self.task_label(*task);
                self.slice(
                    track,
                    start,
                    ts - start,
                    name.to_string(),
                    "poll",
                    json!({"task": label, "task_id": task, "sim_ns": note.at}),
                );
                self.last_polls.insert(label, (start, ts, note.at, track));
            }
            What::Event {
                kind,
                object,
                sequence,
                process,
                ..
            } => self.event(*kind, *object, *sequence, *process, note.at, ts),
            What::Send { .. } => self.send(note, ts),
            What::Read { connection, bytes } => self.read(*connection, *bytes, note.at, ts),
            What::Rescheduled { sequence } => self.held_back(Some(*sequence)),
            What::Held => self.held_back(None),
            What::Released {
                connection,
                owner,
                sequence,
            } => self.released(*connection, *owner, *sequence),
            What::Connection {
                connection,
                owner,
                peer,
                event,
                detail,
            } => self.connection(*connection, *owner, *peer, event, detail, note.at, ts),
            What::Span { .. } => self.span(note, ts),
            What::Fault { kind } => {
                let here = self.polling.map(|(_, track, _)| track);
                self.pending_fault = Some((kind, ts, note.at, here));
            }
            What::Lifecycle { .. } => self.lifecycle(note, ts),
            What::TimerSet { key } => {
                if let Some((_, track, _)) = self.polling {
                    self.timers.insert(*key, track);
                }
            }
            What::Coverage {
                kind,
                message,
                location,
            } => {
                let fallback = self.process_track(None, LIFECYCLE);
                let track = self.here(fallback);
                self.instant(
                    track,
                    ts,
                    format!("reached: {message}"),
                    "assertion",
                    json!({"kind": kind, "message": message, "location": location,
                           "first": true, "sim_ns": note.at}),
                );
            }
            What::Buggify { location } => {
                let fallback = self.process_track(None, LIFECYCLE);
                let track = self.here(fallback);
                self.instant(
                    track,
                    ts,
                    format!("fault: buggify at {location}"),
                    "fault",
                    json!({"kind": "buggify.fired", "location": location, "sim_ns": note.at}),
                );
            }
            What::Violation => {
                if self.violation.is_none() {
                    let fallback = self.process_track(None, LIFECYCLE);
                    self.violation = Some((self.here(fallback), ts));
                }
            }
            What::Frame(frame) => self.frame(frame, note.at, ts),
            What::Request { token, reply_to } => self.request(*token, *reply_to),
            What::Handling { token, reply_to } => self.handling(*token, *reply_to, note.at, ts),
            What::ReplyTaken { reply_to, replied } => {
                self.reply_taken(*reply_to, *replied, note.at, ts);
            }
        }
    }
}

/// Trace time in the format's microseconds, keeping nanoseconds.
pub(super) fn micros(nanos: u64) -> f64 {
    nanos as f64 / 1_000.0
}
