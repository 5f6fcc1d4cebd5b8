//! Messages: bytes sent, delivered and read, connection events, the transport's packets.

use moonpool_core::UID;
use moonpool_core::annotate::FrameDirection;
use serde_json::json;

use super::{NETWORK, PendingFrame, PendingSend, Renderer, Track};
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
                self.flow(track, ts, flow, true, "message");
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
        for (from, from_ts) in delivered {
            let flow = self.next_flow;
            self.next_flow += 1;
            self.flow(from, from_ts, flow, true, "read");
            self.flow(track, ts, flow, false, "read");
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
                let track = Track {
                    pid: self.pid(process),
                    tid: NETWORK,
                };
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
                self.flow(track, ts, send.flow, false, "message");
                self.unread
                    .entry((send.connection, track.pid))
                    .or_default()
                    .push((track, ts));
                self.delivering = Some((sequence, Some(index)));
            }
            _ => {}
        }
    }

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
        }
        let track = Track {
            pid: self.pid(owner),
            tid: NETWORK,
        };
        let args = json!({"connection": self.connection_label(connection),
                          "peer": self.peer_name(peer), "detail": detail, "sim_ns": at});
        if event == "bit_flip"
            && let Some((_, Some(index))) = self.delivering
            && let Some(emitted) = self.out.get_mut(index)
        {
            let name = emitted.event["name"]
                .as_str()
                .unwrap_or("deliver")
                .to_string();
            emitted.event["name"] = json!(format!("{name} (corrupted)"));
            emitted.event["cat"] = json!("message-corrupt");
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

    /// An endpoint's name: as the transport announced it, a well-known token's name, or the
    /// token itself.
    fn endpoint_name(&self, token: UID) -> String {
        if token == UID::new(0, 0) {
            return "control".to_string();
        }
        if let Some(name) = self.story.endpoints.get(&token) {
            return name.clone();
        }
        if token.first == u64::MAX
            && let Some(known) = u32::try_from(token.second)
                .ok()
                .and_then(moonpool_core::WellKnownToken::from_index)
        {
            return format!("{known:?}");
        }
        format!("token {:x}:{:x}", token.first, token.second)
    }

    /// A packet's name: its endpoint's, or `reply to` the endpoint of the request it answers.
    pub(super) fn frame_name(&self, token: UID) -> String {
        match self.replies.get(&token) {
            Some(request) if !self.story.endpoints.contains_key(&token) => {
                format!("reply to {}", self.endpoint_name(*request))
            }
            _ => self.endpoint_name(token),
        }
    }

    pub(super) fn frame(&mut self, frame: &moonpool_core::annotate::FrameNote, at: u64, ts: u64) {
        let fallback = self.process_track(None, NETWORK);
        let track = self.here(fallback);
        let name = self.frame_name(frame.token);
        let key = (frame.token, frame.checksum, frame.len);
        let request = self.replies.get(&frame.token).copied();
        let args = json!({"endpoint": name, "token": format!("{}", frame.token),
            "bytes": frame.len, "checksum": format!("{:08x}", frame.checksum), "sim_ns": at,
            "in_reply_to": request.map(|r| self.frame_name(r))});
        match frame.direction {
            FrameDirection::Sent => {
                let flow = self.next_flow;
                self.next_flow += 1;
                self.slice(track, ts, 1, format!("→ {name}"), "rpc", args);
                self.flow(track, ts, flow, true, "packet");
                self.frames.entry(key).or_default().push(PendingFrame {
                    flow,
                    track,
                    ts,
                    name,
                    received: false,
                });
            }
            FrameDirection::Received => {
                let matched = self.frames.get_mut(&key).and_then(|sent| {
                    // The oldest copy not yet received; a resent copy received twice draws from
                    // the last one.
                    let index = sent
                        .iter()
                        .position(|f| !f.received)
                        .unwrap_or(sent.len().saturating_sub(1));
                    sent.get_mut(index).map(|f| {
                        let first = !f.received;
                        f.received = true;
                        (f.flow, first)
                    })
                });
                self.slice(track, ts, 1, format!("← {name}"), "rpc", args);
                if let Some((flow, true)) = matched {
                    self.flow(track, ts, flow, false, "packet");
                }
            }
            FrameDirection::Corrupt => {
                self.instant(
                    track,
                    ts,
                    format!("corrupt packet dropped: {name}"),
                    "message-corrupt",
                    args,
                );
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
