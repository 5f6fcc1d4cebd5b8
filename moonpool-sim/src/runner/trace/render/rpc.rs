//! The transport's packets and RPC calls: every packet a flow from the task that built it to the
//! task that decoded it; every request a flow from the caller's send to the task that runs its
//! method, and its reply a flow from that task back to the caller's task that takes it (the
//! reply's flow id is the request's plus one), both named by interface and method.

use moonpool_core::UID;
use moonpool_core::annotate::{FrameDirection, FrameNote};
use serde_json::json;

use super::{Call, NETWORK, PendingFrame, Renderer, Track};

impl Renderer<'_> {
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

    pub(super) fn frame(&mut self, frame: &FrameNote, at: u64, ts: u64) {
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
                self.frames.entry(key).or_default().push(PendingFrame {
                    flow,
                    track,
                    ts,
                    name,
                    received: false,
                });
                self.call_packet(frame.token, key, track, ts);
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
                        (f.flow, f.track, f.ts, first)
                    })
                });
                self.slice(track, ts, 1, format!("← {name}"), "rpc", args);
                if let Some((flow, from, from_ts, true)) = matched {
                    self.flow((from, from_ts), (track, ts), flow, "packet", "message");
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

    /// A request for `token` answered at `reply_to` is being built: its packet comes next.
    pub(super) fn request(&mut self, token: UID, reply_to: UID) {
        self.replies.insert(reply_to, token);
        // A request rebuilt under another reply token replaces the one never sent.
        if let Some(previous) = self.building.take()
            && self.calls.get(&previous).is_some_and(|c| c.sent.is_none())
        {
            self.calls.remove(&previous);
        }
        let flow = self.next_flow;
        self.next_flow += 2;
        let name = self.endpoint_name(token);
        self.calls.insert(
            reply_to,
            Call {
                token,
                name,
                flow,
                sent: None,
                handled: None,
                reply: None,
            },
        );
        self.building = Some(reply_to);
    }

    /// A packet was built: the request being built, or the reply of a call being handled.
    fn call_packet(&mut self, token: UID, key: (UID, u32, usize), track: Track, ts: u64) {
        if let Some(building) = self.building
            && let Some(call) = self.calls.get_mut(&building)
            && call.token == token
            && call.sent.is_none()
        {
            call.sent = Some((track, ts, key));
            self.building = None;
            return;
        }
        if let Some(call) = self.calls.get_mut(&token)
            && call.handled.is_some()
            && call.reply.is_none()
        {
            call.reply = Some((track, ts));
        }
    }

    /// The task polled (the one running the method) took the request answered at `reply_to`.
    pub(super) fn handling(&mut self, token: UID, reply_to: UID, at: u64, ts: u64) {
        let fallback = self.process_track(None, NETWORK);
        let track = self.here(fallback);
        let name = self
            .calls
            .get(&reply_to)
            .map_or_else(|| self.endpoint_name(token), |c| c.name.clone());
        let flow = self.calls.get(&reply_to).map(|c| c.flow);
        self.slice(
            track,
            ts,
            1,
            format!("handle {name}"),
            "rpc",
            json!({"endpoint": name, "token": format!("{token}"),
                   "reply_token": format!("{reply_to}"), "request_flow": flow, "sim_ns": at}),
        );
        let Some(call) = self.calls.get_mut(&reply_to) else {
            return;
        };
        if call.handled.is_some() {
            return;
        }
        call.handled = Some((track, ts));
        let Some((from, from_ts, key)) = call.sent else {
            return;
        };
        let (flow, name) = (call.flow, call.name.clone());
        self.flow((from, from_ts), (track, ts), flow, &name, "rpc");
        // Delivered within the process (no packet decoded): the packet did arrive.
        if let Some(copies) = self.frames.get_mut(&key)
            && let Some(copy) = copies
                .iter_mut()
                .find(|f| f.track == from && f.ts == from_ts)
        {
            copy.received = true;
        }
    }

    /// The task polled took the outcome of the call answered at `reply_to`.
    pub(super) fn reply_taken(&mut self, reply_to: UID, replied: bool, at: u64, ts: u64) {
        let Some(call) = self.calls.remove(&reply_to) else {
            return;
        };
        let fallback = self.process_track(None, NETWORK);
        let track = self.here(fallback);
        let reply_flow = call.flow + 1;
        if !replied {
            self.instant(
                track,
                ts,
                format!("no reply to {}: the transport failed the call", call.name),
                "message-lost",
                json!({"endpoint": call.name, "request_flow": call.flow, "sim_ns": at}),
            );
            return;
        }
        self.slice(
            track,
            ts,
            1,
            format!("reply taken: {}", call.name),
            "rpc",
            json!({"endpoint": call.name, "request_flow": call.flow,
                   "reply_flow": call.reply.map(|_| reply_flow), "sim_ns": at}),
        );
        if let Some(from) = call.reply {
            let name = format!("reply to {}", call.name);
            self.flow(from, (track, ts), reply_flow, &name, "rpc");
        }
    }

    /// Calls the run left unfinished: requests no method took, replies no caller took.
    pub(super) fn finish_calls(&mut self) {
        for call in std::mem::take(&mut self.calls).into_values() {
            match (call.sent, call.handled, call.reply) {
                (Some((track, ts, _)), None, _) => {
                    self.instant(
                        track,
                        ts,
                        format!("request never handled: {}", call.name),
                        "message-lost",
                        json!({"endpoint": call.name, "request_flow": call.flow}),
                    );
                }
                (_, Some(_), Some((track, ts))) => {
                    self.instant(
                        track,
                        ts,
                        format!("reply never taken: reply to {}", call.name),
                        "message-lost",
                        json!({"endpoint": call.name, "request_flow": call.flow}),
                    );
                }
                _ => {}
            }
        }
    }
}
