//! Connections: a thread per connection end, its events and faults, and the partitions and
//! clogs that stop it, as slices.

use serde_json::json;

use super::{ConnectionTrack, NETWORK, Renderer, Track};
use crate::kernel::story::{Note, What};

/// Connection events after which its owner's direction carries nothing more.
const CLOSING: [&str; 5] = [
    "fin",
    "reset",
    "reset_received",
    "retransmit_timeout",
    "half_open_timeout",
];

impl Renderer<'_> {
    /// The thread of the end of `connection` owned by `owner`, made on first use.
    pub(super) fn connection_track(&mut self, connection: u64, owner: u32) -> Track {
        if let Some(known) = self.connection_tracks.get(&(connection, owner)) {
            return known.track;
        }
        let track = Track {
            pid: self.pid(owner),
            tid: self.new_tid(),
        };
        self.connection_tracks.insert(
            (connection, owner),
            ConnectionTrack {
                track,
                peer: u32::MAX,
                open: true,
                reset: false,
                lanes: vec![(track, Vec::new())],
            },
        );
        track
    }

    /// The name of a connection end's thread: `conn#N local -> remote (peer process)`.
    pub(super) fn connection_track_name(&self, connection: u64, owner: u32) -> String {
        let label = self
            .connections
            .get(&(connection, owner))
            .map_or_else(String::new, |l| format!(" {l}"));
        let peer = self
            .connection_tracks
            .get(&(connection, owner))
            .filter(|t| t.peer != u32::MAX)
            .map_or_else(String::new, |t| format!(" ({})", self.process_name(t.peer)));
        format!("conn#{connection}{label}{peer}")
    }

    /// A connection event, or the fault that just fired on it, on the connection's thread.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn connection(
        &mut self,
        connection: u64,
        owner: u32,
        peer: u32,
        event: &str,
        detail: &str,
        at: u64,
        ts: u64,
    ) {
        if !self.connections.contains_key(&(connection, owner))
            && let Some((addresses, _)) = detail.split_once(": ")
        {
            self.connections
                .insert((connection, owner), addresses.to_string());
            self.openers
                .entry(connection)
                .or_insert_with(|| addresses.to_string());
            // The other end sees the same addresses the other way round.
            if let Some((local, remote)) = addresses.split_once(" -> ")
                && peer != u32::MAX
                && peer != owner
            {
                self.connections
                    .entry((connection, peer))
                    .or_insert_with(|| format!("{remote} -> {local}"));
                self.connection_track(connection, peer);
                if let Some(other) = self.connection_tracks.get_mut(&(connection, peer)) {
                    other.peer = owner;
                }
            }
        }
        let track = self.connection_track(connection, owner);
        if matches!(event, "reset" | "reset_received") {
            // A delivery being applied came before the reset.
            self.end_delivery();
        }
        if let Some(known) = self.connection_tracks.get_mut(&(connection, owner)) {
            if peer != u32::MAX {
                known.peer = peer;
            }
            if CLOSING.contains(&event) {
                known.open = false;
            }
            if matches!(event, "reset" | "reset_received") {
                known.reset = true;
            }
        }
        if matches!(event, "reset" | "reset_received") {
            self.discard_unread(connection, owner, track, at, ts);
        }
        let args = json!({"connection": self.connection_label(connection),
                          "peer": self.peer_name(peer), "detail": detail, "sim_ns": at});
        if event == "bit_flip"
            && let Some(delivery) = self.delivery.as_mut()
        {
            delivery.corrupted = true;
        }
        if let Some((kind, fault_ts, _, _)) = self
            .pending_fault
            .take_if(|(kind, _, _, _)| kind.starts_with("network."))
        {
            self.instant(
                track,
                fault_ts,
                format!("fault: {kind}"),
                "fault",
                json!({"kind": kind, "event": event, "connection": self.connection_label(connection),
                       "peer": self.peer_name(peer), "detail": detail, "sim_ns": at}),
            );
            return;
        }
        self.instant(track, ts, event.to_string(), "connection", args);
    }

    /// A reset cleared what was delivered to this end and not read yet.
    fn discard_unread(&mut self, connection: u64, owner: u32, track: Track, at: u64, ts: u64) {
        let pid = self.pid(owner);
        let Some(unread) = self.unread.remove(&(connection, pid)) else {
            return;
        };
        if unread.is_empty() {
            return;
        }
        self.instant(
            track,
            ts,
            format!(
                "discarded unread: {} deliveries (connection reset)",
                unread.len()
            ),
            "message-lost",
            json!({"deliveries": unread.len(), "connection": self.connection_label(connection),
                   "sim_ns": at}),
        );
    }

    /// Whether the end of `connection` owned by `owner` was reset (bytes arriving are dropped).
    pub(super) fn is_reset(&self, connection: u64, owner: u32) -> bool {
        self.connection_tracks
            .get(&(connection, owner))
            .is_some_and(|t| t.reset)
    }

    /// Every connection end `process` owns is closed (the process stopped).
    pub(super) fn close_connections_of(&mut self, process: u32) {
        for ((_, owner), known) in &mut self.connection_tracks {
            if *owner == process {
                known.open = false;
            }
        }
    }

    /// A partition or clog: a slice on the connection end it hits, or, between two processes,
    /// an asynchronous span on the sending process's `network` thread and a slice on each of
    /// its open connection ends to the other process.
    pub(super) fn span(&mut self, note: &Note, ts: u64) {
        let What::Span {
            kind,
            from,
            to,
            until,
            detail,
            on,
        } = &note.what
        else {
            return;
        };
        let end = (*until).max(ts + 1);
        let other = self.process_name(*to).to_string();
        let name = format!("{kind}: {} -> {other}", self.process_name(*from));
        let args = json!({"detail": detail, "sim_ns": note.at, "until_sim_ns": until});
        let hit: Vec<(u64, u32)> = match on {
            Some(end) => vec![*end],
            None => self
                .connection_tracks
                .iter()
                .filter(|((_, owner), t)| owner == from && t.peer == *to && t.open)
                .map(|(key, _)| *key)
                .collect(),
        };
        for (connection, owner) in hit {
            let lane = self.free_lane(connection, owner, ts, end);
            self.slice(lane, ts, end - ts, name.clone(), "fault-span", args.clone());
        }
        if on.is_some() {
            return;
        }
        let pid = self.pid(*from);
        let id = self.next_async;
        self.next_async += 1;
        self.emit(
            ts,
            json!({"name": name, "cat": "fault-span", "ph": "b", "id": id,
            "ts": super::micros(ts), "pid": pid, "tid": NETWORK, "args": args}),
        );
        self.emit(
            end,
            json!({"name": name, "cat": "fault-span", "ph": "e", "id": id,
            "ts": super::micros(end), "pid": pid, "tid": NETWORK}),
        );
    }

    /// The first thread of a connection end where a slice from `ts` to `end` nests with the
    /// spans open there (a new one when none does).
    fn free_lane(&mut self, connection: u64, owner: u32, ts: u64, end: u64) -> Track {
        let track = self.connection_track(connection, owner);
        let Some(known) = self.connection_tracks.get_mut(&(connection, owner)) else {
            return track;
        };
        for (lane, open) in &mut known.lanes {
            while open.last().is_some_and(|e| *e <= ts) {
                open.pop();
            }
            if open.last().is_none_or(|outer| end <= *outer) {
                open.push(end);
                return *lane;
            }
        }
        let lane = Track {
            pid: track.pid,
            tid: self.next_tid,
        };
        self.next_tid += 1;
        if let Some(known) = self.connection_tracks.get_mut(&(connection, owner)) {
            known.lanes.push((lane, vec![end]));
        }
        lane
    }
}
