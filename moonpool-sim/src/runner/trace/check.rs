//! Checks a trace against the rules of the Chrome trace-event format that Perfetto relies on.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

/// What a valid trace holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceCheck {
    /// Events, metadata included.
    pub events: usize,
    /// Flows (matched start and finish pairs).
    pub flows: usize,
    /// Complete (`X`) slices.
    pub slices: usize,
    /// Threads (`pid`, `tid`) holding at least one timed event.
    pub tracks: usize,
}

/// Checks `json` against the trace-event format's rules: a `traceEvents` array; on every event
/// the fields its phase requires (`name`, `ph`, `pid`, and `tid` and a numeric `ts` on every
/// timed event, `dur` on slices, `id` on flows and asynchronous spans); flows matched: every flow
/// id started once and finished once, the finish no earlier than the start; every asynchronous
/// end after a begin of the same id in the same process; timestamps in order on every thread;
/// slices on a thread nested, never partly overlapping.
///
/// # Errors
/// The first rule broken, naming the event (its index and its text).
pub fn check_chrome_trace(json: &str) -> Result<TraceCheck, String> {
    let value: Value = serde_json::from_str(json).map_err(|e| format!("not JSON: {e}"))?;
    let events = value["traceEvents"]
        .as_array()
        .ok_or("no traceEvents array")?;
    let mut check = TraceCheck {
        events: events.len(),
        ..TraceCheck::default()
    };
    let mut last_ts: BTreeMap<(u64, u64), f64> = BTreeMap::new();
    let mut stacks: BTreeMap<(u64, u64), Vec<f64>> = BTreeMap::new();
    let mut flow_starts: BTreeMap<u64, (f64, usize)> = BTreeMap::new();
    let mut flow_ends: BTreeSet<u64> = BTreeSet::new();
    let mut begun: BTreeMap<(u64, u64), f64> = BTreeMap::new();
    const EPSILON: f64 = 1e-6;
    for (index, event) in events.iter().enumerate() {
        let fail = |what: &str| format!("event {index} {what}: {event}");
        let ph = event["ph"].as_str().ok_or_else(|| fail("has no ph"))?;
        if event["name"].as_str().is_none() {
            return Err(fail("has no name"));
        }
        let pid = event["pid"].as_u64().ok_or_else(|| fail("has no pid"))?;
        if ph == "M" {
            if !event["args"].is_object() {
                return Err(fail("(metadata) has no args"));
            }
            continue;
        }
        let tid = event["tid"].as_u64().ok_or_else(|| fail("has no tid"))?;
        let ts = event["ts"]
            .as_f64()
            .ok_or_else(|| fail("has no numeric ts"))?;
        if !ts.is_finite() || ts < 0.0 {
            return Err(fail("has a bad ts"));
        }
        let id = || event["id"].as_u64().ok_or_else(|| fail("has no id"));
        match ph {
            "b" => {
                begun.insert((pid, id()?), ts);
                continue;
            }
            "e" => {
                let begin = begun
                    .remove(&(pid, id()?))
                    .ok_or_else(|| fail("ends a span never begun"))?;
                if ts + EPSILON < begin {
                    return Err(fail("ends before its begin"));
                }
                continue;
            }
            _ => {}
        }
        let track = (pid, tid);
        if let Some(previous) = last_ts.get(&track)
            && ts + EPSILON < *previous
        {
            return Err(fail(&format!(
                "is out of order on its thread (after ts {previous})"
            )));
        }
        last_ts.insert(track, ts);
        let stack = stacks.entry(track).or_default();
        while stack.last().is_some_and(|end| *end <= ts + EPSILON) {
            stack.pop();
        }
        match ph {
            "X" => {
                let dur = event["dur"].as_f64().ok_or_else(|| fail("has no dur"))?;
                if !dur.is_finite() || dur < 0.0 {
                    return Err(fail("has a bad dur"));
                }
                let end = ts + dur;
                if let Some(parent) = stack.last()
                    && end > *parent + EPSILON
                {
                    return Err(fail(&format!(
                        "overlaps the slice ending at {parent} without nesting"
                    )));
                }
                stack.push(end);
                check.slices += 1;
            }
            "s" => {
                if flow_starts.insert(id()?, (ts, index)).is_some() {
                    return Err(fail("starts a flow already started"));
                }
            }
            "f" => {
                let id = id()?;
                let (start, _) = flow_starts
                    .get(&id)
                    .ok_or_else(|| fail("finishes a flow never started"))?;
                if ts + EPSILON < *start {
                    return Err(fail("finishes a flow before its start"));
                }
                if !flow_ends.insert(id) {
                    return Err(fail("finishes a flow already finished"));
                }
            }
            "i" | "I" | "n" | "C" => {}
            other => return Err(fail(&format!("has an unexpected phase {other}"))),
        }
    }
    if let Some((id, (_, index))) = flow_starts.iter().find(|(id, _)| !flow_ends.contains(id)) {
        return Err(format!(
            "event {index} starts flow {id}, which is never finished: {}",
            events
                .get(*index)
                .map_or_else(String::new, Value::to_string)
        ));
    }
    check.flows = flow_ends.len();
    check.tracks = last_ts.len();
    Ok(check)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn test_check_refuses_broken_traces() {
        let ok = r#"{"traceEvents":[
            {"name":"process_name","ph":"M","pid":0,"tid":0,"args":{"name":"a"}},
            {"name":"poll","ph":"X","ts":1.0,"dur":2.0,"pid":0,"tid":16},
            {"name":"send","ph":"X","ts":1.5,"dur":0.001,"pid":0,"tid":16},
            {"name":"m","ph":"s","id":1,"ts":1.5,"pid":0,"tid":16},
            {"name":"m","ph":"f","bp":"e","id":1,"ts":4.0,"pid":1,"tid":1}
        ]}"#;
        let check = check_chrome_trace(ok).unwrap();
        assert_eq!((check.flows, check.slices), (1, 2));
        let cases = [
            (
                r#"{"traceEvents":[{"ph":"X","ts":1,"dur":1,"pid":0,"tid":0}]}"#,
                "no name",
            ),
            (
                r#"{"traceEvents":[{"name":"a","ph":"X","ts":1,"pid":0,"tid":0}]}"#,
                "no dur",
            ),
            (
                r#"{"traceEvents":[{"name":"a","ph":"i","pid":0,"tid":0}]}"#,
                "no numeric ts",
            ),
            (
                r#"{"traceEvents":[{"name":"a","ph":"f","id":3,"ts":1,"pid":0,"tid":0}]}"#,
                "never started",
            ),
            (
                r#"{"traceEvents":[{"name":"a","ph":"i","ts":2,"pid":0,"tid":0},{"name":"b","ph":"i","ts":1,"pid":0,"tid":0}]}"#,
                "out of order",
            ),
            (
                r#"{"traceEvents":[{"name":"a","ph":"X","ts":1,"dur":2,"pid":0,"tid":0},{"name":"b","ph":"X","ts":2,"dur":2,"pid":0,"tid":0}]}"#,
                "without nesting",
            ),
            (
                r#"{"traceEvents":[{"name":"a","ph":"e","id":1,"ts":1,"pid":0,"tid":0}]}"#,
                "never begun",
            ),
            (
                r#"{"traceEvents":[{"name":"a","ph":"s","id":4,"ts":1,"pid":0,"tid":0}]}"#,
                "never finished",
            ),
            (
                r#"{"traceEvents":[{"name":"a","ph":"s","id":4,"ts":1,"pid":0,"tid":0},{"name":"a","ph":"s","id":4,"ts":2,"pid":0,"tid":0}]}"#,
                "already started",
            ),
            (
                r#"{"traceEvents":[{"name":"a","ph":"s","id":4,"ts":1,"pid":0,"tid":0},{"name":"a","ph":"f","id":4,"ts":2,"pid":0,"tid":1},{"name":"a","ph":"f","id":4,"ts":3,"pid":0,"tid":1}]}"#,
                "already finished",
            ),
            (
                r#"{"traceEvents":[{"name":"a","ph":"s","id":4,"ts":2,"pid":0,"tid":0},{"name":"a","ph":"f","id":4,"ts":1,"pid":0,"tid":1}]}"#,
                "before its start",
            ),
        ];
        for (json, expected) in cases {
            let error = check_chrome_trace(json).unwrap_err();
            assert!(error.contains(expected), "{expected}: {error}");
        }
    }
}
