//! Chrome trace-event JSON of a run, for Perfetto (ui.perfetto.dev) and `chrome://tracing`.
//!
//! - [`chrome_trace`] draws the bare event trace (`WorldConfig::record_trace`): one track per
//!   process, byte deliveries as flows.
//! - The runner writes the full story of a seed (`WorldConfig::record_story`) for every failed
//!   seed, and for any seed replayed with `MOONPOOL_SEED`, into `MOONPOOL_TRACE_DIR`: a track
//!   per task with a slice per poll, a track per connection end (its events, the faults that hit
//!   it, the bytes delivered to it), boots and stops with their kind, every fault on the track
//!   it hit, partitions and clogs as spans across the tracks they separate, every message a flow
//!   from sender to receiver (named by endpoint and RPC method when the transport annotates its
//!   packets; an RPC request a flow to the task that runs the method, its reply a flow back to
//!   the caller's task), held-back, lost and corrupted messages marked, `sometimes` assertions
//!   reached for the first time, and the failure with its replay command (see `render`).
//! - A trace is kept under [`TraceLimits::max_bytes`]: past it, the oldest events are left out
//!   and a `trace cut` marker says how many and up to when.
//! - [`check_chrome_trace`] checks a trace against the format's rules.

mod check;
mod entries;
mod render;

use serde_json::{Value, json};

pub use check::{TraceCheck, check_chrome_trace};
pub use entries::chrome_trace;
pub use render::FailureMark;

use crate::error::SimError;
use crate::kernel::story::StorySnapshot;
use render::{Emitted, LIFECYCLE, micros};

/// Default bound on a written trace: 48 MiB, which Perfetto opens in a few seconds.
pub const DEFAULT_TRACE_MAX_BYTES: usize = 48 << 20;

/// Bounds on a written trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceLimits {
    /// Most bytes of JSON; the oldest events are left out past it.
    pub max_bytes: usize,
}

impl TraceLimits {
    /// The default limits with the size bound `max_mb` MiB, when given.
    pub(crate) fn with_max_mb(max_mb: Option<usize>) -> Self {
        max_mb.map_or_else(Self::default, |mb| Self {
            max_bytes: mb.saturating_mul(1 << 20),
        })
    }
}

impl Default for TraceLimits {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_TRACE_MAX_BYTES,
        }
    }
}

/// The failure marker of a run that failed with `error`, replayed by `replay`.
pub(crate) fn failure_mark(error: &SimError, replay: String) -> FailureMark {
    let nanos = |d: std::time::Duration| u64::try_from(d.as_nanos()).ok();
    let (kind, task, at) = match error {
        SimError::AssertionFailed { violation, .. } => (
            "assertion",
            Some(violation.task.clone()),
            nanos(violation.at),
        ),
        SimError::TaskPanicked { task, now, .. } => ("panic", Some(task.clone()), nanos(*now)),
        SimError::InvariantViolated { now, .. } => ("invariant", None, nanos(*now)),
        SimError::Deadlock { now, .. } => ("deadlock", None, nanos(*now)),
        SimError::BusyLoop { now, .. } => ("busy loop", None, nanos(*now)),
        SimError::TimeBudgetExceeded { budget, .. } => ("hang", None, nanos(*budget)),
        SimError::SettleTimeout { .. } => ("hang", None, None),
        SimError::WorkloadFailed { .. } => ("workload failed", None, None),
        SimError::TaskLimitExceeded { now, .. } => ("task limit", None, nanos(*now)),
        SimError::CallbackPanicked { now, .. } => ("panic", None, nanos(*now)),
        SimError::Nondeterministic { .. } => ("nondeterminism", None, None),
        SimError::InvalidSetup { .. } => ("setup", None, None),
    };
    FailureMark {
        kind: kind.to_string(),
        message: super::report::failure_text(error),
        task,
        at_nanos: at,
        replay,
    }
}

/// Renders a story as trace-event JSON within `limits`.
pub(crate) fn story_trace(
    story: &StorySnapshot,
    process_names: &[String],
    failure: Option<&FailureMark>,
    limits: TraceLimits,
) -> String {
    let (metadata, mut events) = render::render(story, process_names, failure);
    events.sort_by_key(|e| (e.ts, e.order));
    let world_pid = process_names.len();
    let events = bound(events, &metadata, limits, world_pid);
    let all: Vec<Value> = metadata.into_iter().chain(events).collect();
    json!({"traceEvents": all, "displayTimeUnit": "ms"}).to_string()
}

/// Leaves out the oldest events past `limits.max_bytes`, with a note where the trace starts.
fn bound(
    events: Vec<Emitted>,
    metadata: &[Value],
    limits: TraceLimits,
    world_pid: usize,
) -> Vec<Value> {
    let sizes: Vec<usize> = events
        .iter()
        .map(|e| e.event.to_string().len() + 1)
        .collect();
    let fixed: usize = metadata
        .iter()
        .map(|m| m.to_string().len() + 1)
        .sum::<usize>()
        + 512;
    let total: usize = sizes.iter().sum();
    if fixed + total <= limits.max_bytes {
        return events.into_iter().map(|e| e.event).collect();
    }
    let budget = limits.max_bytes.saturating_sub(fixed);
    let mut kept = 0usize;
    let mut first = events.len();
    for (index, size) in sizes.iter().enumerate().rev() {
        if kept + size > budget {
            break;
        }
        kept += size;
        first = index;
    }
    let cut_at = events.get(first).map_or(0, |e| e.ts);
    let cut_sim = events
        .get(first.saturating_sub(1))
        .and_then(|e| e.event["args"]["sim_ns"].as_u64())
        .unwrap_or(cut_at);
    let dropped = first;
    let tail: Vec<Value> = events.into_iter().skip(first).map(|e| e.event).collect();
    // A flow or an asynchronous span whose start was left out is left out too.
    let mut started_flows = std::collections::BTreeSet::new();
    let mut begun = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(tail.len() + 1);
    out.push(json!({
        "name": "trace cut", "cat": "trace", "ph": "i", "s": "g", "ts": micros(cut_at),
        "pid": world_pid, "tid": LIFECYCLE,
        "args": {"note": format!(
            "trace bounded to {} bytes: the {dropped} oldest events (up to simulated {cut_sim} ns) are left out",
            limits.max_bytes
        ), "dropped_events": dropped, "sim_ns": cut_sim}
    }));
    for event in tail {
        let ph = event["ph"].as_str().unwrap_or("");
        let keep = match ph {
            "s" => {
                started_flows.insert(event["id"].as_u64());
                true
            }
            "f" => started_flows.contains(&event["id"].as_u64()),
            "b" => {
                begun.insert((event["pid"].as_u64(), event["id"].as_u64()));
                true
            }
            "e" => begun.contains(&(event["pid"].as_u64(), event["id"].as_u64())),
            _ => true,
        };
        if keep {
            out.push(event);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kernel::story::{Note, What};

    #[test]
    fn test_bound_keeps_the_end_and_says_so() {
        let notes: Vec<Note> = (0..2_000u64)
            .map(|i| Note {
                at: i * 1_000,
                what: What::Fault {
                    kind: "storage.read_corruption",
                },
            })
            .collect();
        let story = StorySnapshot {
            notes,
            ..StorySnapshot::default()
        };
        let names = vec!["a".to_string()];
        let full = story_trace(&story, &names, None, TraceLimits::default());
        assert!(!full.contains("trace cut"));
        let small = story_trace(&story, &names, None, TraceLimits { max_bytes: 40_000 });
        assert!(small.len() <= 40_000, "{}", small.len());
        assert!(small.contains("trace cut"), "{small}");
        let check = check_chrome_trace(&small).unwrap();
        assert!(check.events > 10);
        // The newest fault is kept, the oldest is not.
        let value: Value = serde_json::from_str(&small).unwrap();
        let faults: Vec<f64> = value["traceEvents"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["cat"] == "fault")
            .map(|e| e["ts"].as_f64().unwrap())
            .collect();
        assert_eq!(faults.last().copied(), Some(1_999.0));
        assert!(faults.first().is_some_and(|ts| *ts > 0.0));
    }

    fn story_of(notes: Vec<(u64, What)>) -> StorySnapshot {
        StorySnapshot {
            notes: notes
                .into_iter()
                .map(|(at, what)| Note { at, what })
                .collect(),
            ..StorySnapshot::default()
        }
    }

    fn connect() -> What {
        What::Connection {
            connection: 1,
            owner: 0,
            peer: 1,
            event: "connect",
            detail: "10.0.0.1:5 -> 10.0.0.2:4500: send buffer 64 bytes".to_string(),
        }
    }

    fn send(sequence: u64) -> What {
        What::Send {
            connection: 1,
            from: 0,
            to: 1,
            bytes: 4,
            sequence: Some(sequence),
            fate: "delivered",
            preview: "ping".to_string(),
        }
    }

    fn deliver(sequence: u64) -> What {
        What::Event {
            kind: 0x101,
            object: 0,
            sequence,
            process: 1,
        }
    }

    fn events_of(json: &str) -> Vec<Value> {
        check_chrome_trace(json).unwrap();
        let value: Value = serde_json::from_str(json).unwrap();
        value["traceEvents"].as_array().unwrap().clone()
    }

    fn named<'a>(events: &'a [Value], name: &str) -> Vec<&'a Value> {
        events
            .iter()
            .filter(|e| e["name"].as_str().is_some_and(|n| n.starts_with(name)))
            .collect()
    }

    #[test]
    fn test_held_back_bytes_are_delivered_once_when_released() {
        let names = ["a".to_string(), "b".to_string()];
        // Rescheduled (a partition began after the write), then a scripted cut and its restore.
        let story = story_of(vec![
            (1, connect()),
            (2, send(7)),
            (10, deliver(7)),
            (10, What::Rescheduled { sequence: 9 }),
            (50, deliver(9)),
            (60, send(11)),
            (70, deliver(11)),
            (70, What::Held),
            (
                90,
                What::Released {
                    connection: 1,
                    owner: 1,
                    sequence: 12,
                },
            ),
            (90, deliver(12)),
        ]);
        let json = story_trace(&story, &names, None, TraceLimits::default());
        let events = events_of(&json);
        let held = named(&events, "held back: 4 B from a");
        assert_eq!(held.len(), 2, "{json}");
        assert_eq!(
            held[0]["args"]["why"],
            "a partition or cut began after the write"
        );
        assert_eq!(
            held[1]["args"]["why"],
            "the connection is cut until restored"
        );
        // Each send delivered once, when it really arrived, on b's end of the connection.
        let delivered = named(&events, "deliver 4 B from a");
        let at: Vec<u64> = delivered
            .iter()
            .map(|e| e["args"]["sim_ns"].as_u64().unwrap())
            .collect();
        assert_eq!(at, [50, 90]);
        let thread = events
            .iter()
            .find(|m| {
                m["name"] == "thread_name" && m["pid"] == 1 && m["tid"] == delivered[0]["tid"]
            })
            .unwrap();
        assert_eq!(
            thread["args"]["name"],
            "conn#1 10.0.0.2:4500 -> 10.0.0.1:5 (a)"
        );
        assert_eq!(
            named(&events, "message").len(),
            4,
            "two flows, both ends each"
        );
        assert!(named(&events, "4 B: still in flight").is_empty());
    }

    #[test]
    fn test_bytes_reaching_a_reset_end_are_dropped_and_unread_ones_discarded() {
        let names = ["a".to_string(), "b".to_string()];
        let reset = |event| What::Connection {
            connection: 1,
            owner: 1,
            peer: 0,
            event,
            detail: "10.0.0.2:4500 -> 10.0.0.1:5: reset".to_string(),
        };
        let story = story_of(vec![
            (1, connect()),
            (2, send(7)),
            (3, send(8)),
            (10, deliver(7)),
            (15, reset("reset_received")),
            (20, deliver(8)),
        ]);
        let json = story_trace(&story, &names, None, TraceLimits::default());
        let events = events_of(&json);
        // The first was delivered, never read, and discarded by the reset.
        assert_eq!(named(&events, "deliver 4 B from a").len(), 1);
        let discarded = named(&events, "discarded unread: 1 deliveries");
        assert_eq!(discarded.len(), 1, "{json}");
        assert_eq!(discarded[0]["cat"], "message-lost");
        // The second arrived after the reset: dropped, its flow ending there.
        let dropped = named(
            &events,
            "dropped 4 B from a: ping: the connection was reset",
        );
        assert_eq!(dropped.len(), 1, "{json}");
        assert_eq!(dropped[0]["cat"], "message-lost");
        assert!(events.iter().any(|f| {
            f["ph"] == "f" && f["ts"] == dropped[0]["ts"] && f["tid"] == dropped[0]["tid"]
        }));
    }

    #[test]
    fn test_overlapping_spans_on_a_connection_get_a_second_thread() {
        let names = ["a".to_string(), "b".to_string()];
        let span = |kind, until| What::Span {
            kind,
            from: 0,
            to: 1,
            until,
            detail: String::new(),
            on: Some((1, 0)),
        };
        let story = story_of(vec![
            (1, connect()),
            (10, span("clog", 100)),
            (20, span("cut", 50)),
            (60, span("cut", 200)),
            (300, span("clog", 400)),
        ]);
        let json = story_trace(&story, &names, None, TraceLimits::default());
        let events = events_of(&json);
        let spans: Vec<&Value> = events
            .iter()
            .filter(|e| e["cat"] == "fault-span" && e["ph"] == "X")
            .collect();
        assert_eq!(spans.len(), 4);
        let tids: Vec<&Value> = spans.iter().map(|e| &e["tid"]).collect();
        // The nested cut shares the clog's thread; the one that outlasts it does not; the last
        // clog starts after both ended.
        assert_eq!((tids[1], tids[3]), (tids[0], tids[0]));
        assert_ne!(tids[0], tids[2]);
        let lane = events
            .iter()
            .find(|m| m["name"] == "thread_name" && &m["tid"] == tids[2])
            .unwrap();
        assert_eq!(
            lane["args"]["name"],
            "conn#1 10.0.0.1:5 -> 10.0.0.2:4500 (b) (overlapping faults)"
        );
        // No asynchronous span for a fault on one connection.
        assert!(events.iter().all(|e| e["ph"] != "b"));
    }

    #[test]
    fn test_packets_are_named_by_endpoint_well_known_token_or_request() {
        use moonpool_core::UID;
        use moonpool_core::annotate::{FrameDirection, FrameNote};
        let frame = |token, direction| {
            What::Frame(FrameNote {
                direction,
                token,
                checksum: 7,
                len: 40,
            })
        };
        let (named, reply) = (UID::new(5, 6), UID::new(8, 9));
        let notes = vec![
            frame(UID::well_known(1), FrameDirection::Sent),
            What::Request {
                token: named,
                reply_to: reply,
            },
            frame(named, FrameDirection::Sent),
            frame(named, FrameDirection::Received),
            frame(reply, FrameDirection::Sent),
            frame(UID::new(1, 1), FrameDirection::Corrupt),
        ];
        let story = StorySnapshot {
            notes: notes
                .into_iter()
                .enumerate()
                .map(|(i, what)| Note {
                    at: i as u64 * 10,
                    what,
                })
                .collect(),
            endpoints: [(named, "Kv::get".to_string())].into_iter().collect(),
            ..StorySnapshot::default()
        };
        let json = story_trace(&story, &["a".to_string()], None, TraceLimits::default());
        check_chrome_trace(&json).unwrap();
        for name in [
            "→ Ping",
            "→ Kv::get",
            "← Kv::get",
            "→ reply to Kv::get",
            "corrupt packet dropped: token 1:1",
            "never received: Ping",
            "never received: reply to Kv::get",
        ] {
            assert!(json.contains(&format!("\"{name}\"")), "{name}: {json}");
        }
        assert!(!json.contains("never received: Kv::get"), "{json}");
    }
}
