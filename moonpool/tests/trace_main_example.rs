#![cfg(feature = "sim")]
//! The trace of the main example's first `--bug` failure: under 16 MiB, valid by the trace-event
//! format's rules, and telling the story the guide (docs/guides/reading-a-trace.md) reads in it:
//! the replica that served the stale read had been cut off by a partition, the read's request
//! and its stale reply are flows on the failing client's tracks (the reply delivered on the
//! thread of the client's end of that connection), and the failing assertion is marked on the
//! client's task track, with the replay command.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/replicated_kv.rs"]
mod replicated_kv;

use moonpool::sim::check_chrome_trace;
use serde_json::Value;

/// The size the trace of the first failure stays under.
const MAX_TRACE_BYTES: u64 = 16 << 20;

#[test]
fn test_first_bug_failure_trace_is_small_valid_and_tells_the_story() {
    // The example's seeds come in a fixed order; its first failure is among the first ten.
    let report = replicated_kv::simulation(true, 10)
        .progress(false)
        .run()
        .unwrap();
    let first = report
        .failures()
        .next()
        .expect("the planted bug is found")
        .clone();
    let dir = tempfile::tempdir().unwrap();
    let traced = replicated_kv::simulation(true, 1)
        .progress(false)
        .seeds([first.seed])
        .chrome_trace_dir(dir.path())
        .run()
        .unwrap();
    let outcome = &traced.seeds[0];
    assert_eq!(outcome.failure, first.failure);
    let path = outcome
        .trace_file
        .as_deref()
        .expect("a trace of the failure");
    let size = std::fs::metadata(path).unwrap().len();
    assert!(size < MAX_TRACE_BYTES, "{size} bytes");
    let text = std::fs::read_to_string(path).unwrap();
    let check = check_chrome_trace(&text).unwrap();
    assert!(check.flows > 100 && check.slices > 1000, "{check:?}");
    assert!(!text.contains("\"trace cut\""), "the whole run fits");

    let value: Value = serde_json::from_str(&text).unwrap();
    let events = value["traceEvents"].as_array().unwrap();
    let thread_name = |e: &Value| {
        events
            .iter()
            .find(|m| m["name"] == "thread_name" && m["pid"] == e["pid"] && m["tid"] == e["tid"])
            .and_then(|m| m["args"]["name"].as_str())
            .unwrap_or("")
            .to_string()
    };
    let process_name = |pid: &Value| {
        events
            .iter()
            .find(|m| m["name"] == "process_name" && &m["pid"] == pid)
            .and_then(|m| m["args"]["name"].as_str())
            .unwrap()
            .to_string()
    };
    // The marker: on the task the report names, with the message and the replay command.
    let (marker_index, marker) = events
        .iter()
        .enumerate()
        .find(|(_, e)| e["cat"] == "failure")
        .unwrap();
    let failure = first.failure.as_deref().unwrap();
    assert_eq!(marker["args"]["kind"], "assertion");
    let task = marker["args"]["task"].as_str().unwrap();
    assert!(failure.contains(&format!("in task '{task}'")), "{failure}");
    assert_eq!(thread_name(marker), task);
    assert_eq!(marker["args"]["replay"].as_str(), first.replay.as_deref());
    // The traced re-run failed exactly as the run that found the seed.
    assert_eq!(marker["args"]["message"].as_str(), first.failure.as_deref());
    assert!(
        marker["args"]["message"]
            .as_str()
            .unwrap()
            .contains("reads never go back in time")
    );
    let client = marker["pid"].clone();

    // The stale reply: the last bytes delivered to the client before the marker, from a
    // replica, carrying a `Value`.
    let (reply_index, reply) = events[..marker_index]
        .iter()
        .enumerate()
        .rev()
        .find(|(_, e)| {
            e["pid"] == client
                && e["ph"] == "X"
                && e["name"].as_str().unwrap().starts_with("deliver")
        })
        .unwrap();
    let replica = reply["args"]["from"].as_str().unwrap().to_string();
    assert!(replica.starts_with("replica-"), "{reply}");
    // ... delivered on the client's end of its connection to that replica: a thread named by
    // the connection's two endpoints and the replica, which the client opened with `connect`.
    let connection = thread_name(reply);
    assert!(
        connection.starts_with("conn#") && connection.ends_with(&format!(":4500 ({replica})")),
        "{connection}"
    );
    let opened = events[..reply_index]
        .iter()
        .rev()
        .find(|e| e["pid"] == client && e["tid"] == reply["tid"] && e["cat"] == "connection")
        .unwrap();
    assert_eq!(opened["name"], "connect");
    assert!(
        reply["args"]["data"].as_str().unwrap().contains("Value"),
        "{reply}"
    );
    // ... is the end of a flow from that replica's request task, and the client's request to
    // it (a `Read`) is a flow from the client's task.
    let flow_end = events[reply_index..marker_index]
        .iter()
        .find(|e| e["ph"] == "f" && e["pid"] == client && e["ts"] == reply["ts"])
        .unwrap();
    let flow_start = events
        .iter()
        .find(|e| e["ph"] == "s" && e["id"] == flow_end["id"])
        .unwrap();
    assert_eq!(process_name(&flow_start["pid"]), replica);
    assert_eq!(thread_name(flow_start), format!("{replica}/request"));
    let request = events[..reply_index]
        .iter()
        .rev()
        .find(|e| {
            e["pid"] == client
                && e["ph"] == "X"
                && e["name"].as_str().unwrap().starts_with("send")
                && e["args"]["to"].as_str().unwrap_or("").starts_with(&replica)
        })
        .unwrap();
    assert!(
        request["args"]["data"].as_str().unwrap().contains("Read"),
        "{request}"
    );
    assert_eq!(thread_name(request), task);

    // The cause: that replica had been partitioned from the other replicas before the read.
    let cut_off = events[..marker_index].iter().any(|e| {
        e["cat"] == "fault-span"
            && e["ph"] == "b"
            && process_name(&e["pid"]) == replica
            && e["name"].as_str().unwrap().starts_with("partition")
    });
    assert!(cut_off, "{replica} was partitioned before the stale read");
    let fault = events[..marker_index]
        .iter()
        .any(|e| e["cat"] == "fault" && e["args"]["kind"] == "network.partition");
    assert!(fault);
}
