//! Messages: bytes sent, delivered (on the receiving connection's track) and read.

use serde_json::json;

use super::{NETWORK, PendingDelivery, PendingSend, Renderer};
use crate::kernel::story::{Note, What};

impl Renderer<'_> {
    pub(super) fn send(&mut self, note: &Note, ts: u64) {
        let What::Send {
            connection,
            from,
            to,
            bytes,
            sequence,
            fate,
            preview,
        } = &note.what
        else {
            return;
        };
        let fallback = self.process_track(Some(*from), NETWORK);
        let track = self.here(fallback);
        let target = self.peer_name(*to).to_string();
        let conn = self.connection_label(*connection);
        let endpoint = self
            .connections
            .get(&(*connection, *from))
            .and_then(|l| l.split(" -> ").nth(1))
            .map_or_else(String::new, |remote| format!(" ({remote})"));
        let target = format!("{target}{endpoint}");
        let args = json!({"bytes": bytes, "to": target, "connection": conn,
                          "fate": fate, "data": preview, "sim_ns": note.at});
        match sequence {
            Some(sequence) => {
                let flow = self.next_flow;
                self.next_flow += 1;
                self.slice(
                    track,
                    ts,
                    1,
                    format!("send {bytes} B to {target}: {}", short(preview)),
                    "message",
                    args,
                );
                self.sends.insert(
                    *sequence,
                    PendingSend {
                        flow,
                        track,
                        ts,
                        from: *from,
                        bytes: *bytes,
                        connection: *connection,
                        preview: preview.clone(),
                    },
                );
            }
            None => {
                self.instant(
                    track,
                    ts,
                    format!("send {bytes} B to {target}: never delivered"),
                    "message-lost",
                    args,
                );
            }
        }
    }

    pub(super) fn read(&mut self, connection: u64, bytes: u64, at: u64, ts: u64) {
        let fallback = self.process_track(None, NETWORK);
        let track = self.here(fallback);
        let label = self.connection_label(connection);
        self.slice(
            track,
            ts,
            1,
            format!("read {bytes} B"),
            "message",
            json!({"bytes": bytes, "connection": label, "sim_ns": at}),
        );
        let delivered = self
            .unread
            .remove(&(connection, track.pid))
            .unwrap_or_default();
        for from in delivered {
            let flow = self.next_flow;
            self.next_flow += 1;
            self.flow(from, (track, ts), flow, "read", "message");
        }
    }

    /// `conn#N local -> remote`, as its opener sees it.
    pub(super) fn connection_label(&self, connection: u64) -> String {
        self.openers.get(&connection).map_or_else(
            || format!("conn#{connection}"),
            |l| format!("conn#{connection} {l}"),
        )
    }

    pub(super) fn event(
        &mut self,
        kind: u64,
        object: u64,
        sequence: u64,
        process: u32,
        at: u64,
        ts: u64,
    ) {
        if process != u32::MAX {
            self.event_process = Some(process);
        }
        match kind {
            1 => {
                if let Some(track) = self.timers.remove(&object) {
                    self.instant(
                        track,
                        ts,
                        "timer fired".to_string(),
                        "timer",
                        json!({"sim_ns": at}),
                    );
                }
            }
            0x101 => {
                let sends = match self.sends.remove(&sequence) {
                    Some(send) => vec![send],
                    None => self.released.remove(&sequence).unwrap_or_default(),
                };
                if sends.is_empty() {
                    return;
                }
                if process == u32::MAX {
                    // The connection is gone: the bytes are never read.
                    for send in sends {
                        self.instant(
                            send.track,
                            send.ts,
                            format!("{} B: never delivered (connection gone)", send.bytes),
                            "message-lost",
                            json!({"connection": self.connection_label(send.connection), "sim_ns": at}),
                        );
                    }
                    return;
                }
                // Drawn once the delivery is known not to be held back (see `end_delivery`).
                self.delivery = Some(PendingDelivery {
                    sends,
                    process,
                    at,
                    ts,
                    corrupted: false,
                });
            }
            _ => {}
        }
    }

    /// The delivery being applied was held back: rescheduled as event `sequence` (a partition
    /// or a cut that began after the write), or, with `None`, until a scripted cut's restore.
    pub(super) fn held_back(&mut self, sequence: Option<u64>) {
        let Some(delivery) = self.delivery.take() else {
            return;
        };
        let Some(first) = delivery.sends.first() else {
            return;
        };
        let connection = first.connection;
        let bytes: u64 = delivery.sends.iter().map(|s| s.bytes).sum();
        let from = self.process_name(first.from).to_string();
        let track = self.connection_track(connection, delivery.process);
        let why = if sequence.is_some() {
            "a partition or cut began after the write"
        } else {
            "the connection is cut until restored"
        };
        self.instant(
            track,
            delivery.ts,
            format!("held back: {bytes} B from {from}"),
            "message",
            json!({"bytes": bytes, "from": from, "why": why,
                   "connection": self.connection_label(connection), "sim_ns": delivery.at}),
        );
        match sequence {
            Some(sequence) => {
                self.released.insert(sequence, delivery.sends);
            }
            None => self
                .held
                .entry((connection, delivery.process))
                .or_default()
                .extend(delivery.sends),
        }
    }

    /// A restore released the bytes held on an end, as delivery event `sequence`.
    pub(super) fn released(&mut self, connection: u64, owner: u32, sequence: u64) {
        if let Some(sends) = self.held.remove(&(connection, owner)) {
            self.released.entry(sequence).or_default().extend(sends);
        }
    }

    /// Draws the delivery being applied, now known to have reached the receiving end: a slice
    /// on that end's thread per send it carries (marked when its bytes were flipped, `dropped`
    /// when that end was reset), the end of each send's flow.
    pub(super) fn end_delivery(&mut self) {
        let Some(delivery) = self.delivery.take() else {
            return;
        };
        let ts = delivery.ts;
        for send in delivery.sends {
            let track = self.connection_track(send.connection, delivery.process);
            let from = self.process_name(send.from).to_string();
            let reset = self.is_reset(send.connection, delivery.process);
            let (verb, suffix, cat) = if reset {
                ("dropped", ": the connection was reset", "message-lost")
            } else if delivery.corrupted {
                ("deliver", " (corrupted)", "message-corrupt")
            } else {
                ("deliver", "", "message")
            };
            self.slice(
                track,
                ts,
                1,
                format!(
                    "{verb} {} B from {from}: {}{suffix}",
                    send.bytes,
                    short(&send.preview)
                ),
                cat,
                json!({"bytes": send.bytes, "from": from, "data": send.preview,
                       "connection": self.connection_label(send.connection),
                       "sim_ns": delivery.at}),
            );
            self.flow(
                (send.track, send.ts),
                (track, ts),
                send.flow,
                "message",
                "message",
            );
            if !reset {
                self.unread
                    .entry((send.connection, track.pid))
                    .or_default()
                    .push((track, ts));
            }
        }
    }
}

/// The first characters of a data preview, for a slice's name.
pub(super) fn short(preview: &str) -> String {
    const SHOWN: usize = 40;
    if preview.chars().count() <= SHOWN {
        return preview.to_string();
    }
    let mut shown: String = preview.chars().take(SHOWN).collect();
    shown.push('…');
    shown
}
