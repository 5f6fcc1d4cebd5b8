//! Messages: bytes sent, delivered (on the receiving connection's track) and read.

use serde_json::json;

use super::{NETWORK, PendingSend, Renderer};
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
        self.connections
            .range((connection, 0)..=(connection, u32::MAX))
            .next()
            .map_or_else(
                || format!("conn#{connection}"),
                |(_, l)| format!("conn#{connection} {l}"),
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
                let Some(send) = self.sends.remove(&sequence) else {
                    self.delivering = Some((sequence, None));
                    return;
                };
                if process == u32::MAX {
                    // The connection is gone: the bytes are never read.
                    self.instant(
                        send.track,
                        send.ts,
                        format!("{} B: never delivered (connection gone)", send.bytes),
                        "message-lost",
                        json!({"connection": self.connection_label(send.connection), "sim_ns": at}),
                    );
                    return;
                }
                let track = self.connection_track(send.connection, process);
                let from = self.process_name(send.from).to_string();
                let index = self.slice(
                    track,
                    ts,
                    1,
                    format!(
                        "deliver {} B from {from}: {}",
                        send.bytes,
                        short(&send.preview)
                    ),
                    "message",
                    json!({"bytes": send.bytes, "from": from, "data": send.preview,
                           "connection": self.connection_label(send.connection), "sim_ns": at}),
                );
                self.flow(
                    (send.track, send.ts),
                    (track, ts),
                    send.flow,
                    "message",
                    "message",
                );
                self.unread
                    .entry((send.connection, track.pid))
                    .or_default()
                    .push((track, ts));
                self.delivering = Some((sequence, Some(index)));
            }
            _ => {}
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
