//! Chrome trace-event JSON for one run: one track per process, messages as flows. Opens in
//! Perfetto (ui.perfetto.dev) and `chrome://tracing`.

use serde_json::{Value, json};

use crate::world::{TRACE_SEND, TraceEntry};

/// Renders `entries` (recorded with `WorldConfig::record_trace`) as trace-event JSON.
/// `process_names[i]` names process `i`; events that concern no process go on a "world" track.
pub fn chrome_trace(entries: &[TraceEntry], process_names: &[String]) -> String {
    let world_pid = process_names.len();
    let pid = |process: u32| {
        if (process as usize) < process_names.len() {
            process as usize
        } else {
            world_pid
        }
    };
    let mut events: Vec<Value> = Vec::with_capacity(entries.len() * 2 + process_names.len() + 1);
    for (index, name) in process_names
        .iter()
        .chain(std::iter::once(&"world".to_string()))
        .enumerate()
    {
        events.push(json!({"name": "process_name", "ph": "M", "pid": index, "tid": 0, "args": {"name": name}}));
        events.push(json!({"name": "process_sort_index", "ph": "M", "pid": index, "tid": 0, "args": {"sort_index": index}}));
    }
    for entry in entries {
        // Microseconds, as the format wants, keeping nanosecond precision.
        let ts = entry.at_nanos as f64 / 1_000.0;
        let name = entry.kind_name();
        if entry.kind == TRACE_SEND {
            events.push(json!({
                "name": "send", "cat": "network", "ph": "X", "ts": ts, "dur": 1,
                "pid": pid(entry.process), "tid": 0, "args": {"bytes": entry.object}
            }));
            events.push(json!({
                "name": "message", "cat": "network", "ph": "s", "id": entry.sequence,
                "ts": ts, "pid": pid(entry.process), "tid": 0
            }));
            continue;
        }
        events.push(json!({
            "name": name, "cat": name.split(' ').next().unwrap_or("event"), "ph": "X", "ts": ts,
            "dur": 1, "pid": pid(entry.process), "tid": 0,
            "args": {"object": format!("{:#x}", entry.object), "sequence": entry.sequence}
        }));
        if name == "network delivery" {
            events.push(json!({
                "name": "message", "cat": "network", "ph": "f", "bp": "e", "id": entry.sequence,
                "ts": ts, "pid": pid(entry.process), "tid": 0
            }));
        }
    }
    json!({"traceEvents": events, "displayTimeUnit": "ms"}).to_string()
}
