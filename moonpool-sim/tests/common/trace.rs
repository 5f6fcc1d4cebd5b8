//! Helpers shared by the trace test files: a line echo server, and a trace read back and
//! checked, with lookups of its processes, threads and events.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use moonpool_core::{NetworkProvider, Providers, TaskProvider, TcpListener};
use moonpool_sim::{SimulationReport, check_chrome_trace};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// A line echo server on port 4500.
pub async fn echo_server(ctx: moonpool_sim::ProcessContext) {
    let Ok(listener) = ctx
        .providers
        .network()
        .bind(&format!("{}:4500", ctx.ip))
        .await
    else {
        return;
    };
    while let Ok((stream, _)) = listener.accept().await {
        let providers = ctx.providers.clone();
        drop(providers.clone().task().spawn("echo", async move {
            let (reader, mut writer) = tokio::io::split(stream);
            let mut reader = BufReader::new(reader);
            let mut line = String::new();
            while matches!(reader.read_line(&mut line).await, Ok(n) if n > 0) {
                if writer.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
                line.clear();
            }
        }));
    }
}

pub struct Trace {
    pub events: Vec<Value>,
}

impl Trace {
    pub fn read(path: &str) -> Self {
        let text = std::fs::read_to_string(path).unwrap();
        check_chrome_trace(&text).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        Self {
            events: value["traceEvents"].as_array().unwrap().clone(),
        }
    }

    pub fn pid(&self, process: &str) -> u64 {
        self.events
            .iter()
            .find(|e| e["ph"] == "M" && e["name"] == "process_name" && e["args"]["name"] == process)
            .and_then(|e| e["pid"].as_u64())
            .unwrap_or_else(|| panic!("no process {process}"))
    }

    /// The name of the thread an event is on.
    pub fn thread_name(&self, event: &Value) -> String {
        self.events
            .iter()
            .find(|m| {
                m["ph"] == "M"
                    && m["name"] == "thread_name"
                    && m["pid"] == event["pid"]
                    && m["tid"] == event["tid"]
            })
            .and_then(|m| m["args"]["name"].as_str())
            .unwrap_or_default()
            .to_string()
    }

    /// The thread of the one connection end `pid` owns whose name starts with `prefix`.
    pub fn connection_thread(&self, pid: u64, prefix: &str) -> u64 {
        let found: Vec<u64> = self
            .all(|e| {
                e["ph"] == "M"
                    && e["name"] == "thread_name"
                    && e["pid"] == pid
                    && e["args"]["name"].as_str().unwrap().starts_with(prefix)
            })
            .iter()
            .filter_map(|e| e["tid"].as_u64())
            .collect();
        assert_eq!(found.len(), 1, "one connection thread {prefix}: {found:?}");
        found[0]
    }

    pub fn thread(&self, pid: u64, name: &str) -> u64 {
        self.events
            .iter()
            .find(|e| {
                e["ph"] == "M"
                    && e["name"] == "thread_name"
                    && e["pid"] == pid
                    && e["args"]["name"] == name
            })
            .and_then(|e| e["tid"].as_u64())
            .unwrap_or_else(|| panic!("no thread {name} in pid {pid}"))
    }

    /// Index and event of the first event matching `pred`.
    pub fn first(&self, pred: impl Fn(&Value) -> bool) -> (usize, &Value) {
        self.events
            .iter()
            .enumerate()
            .find(|(_, e)| pred(e))
            .expect("an event matches")
    }

    pub fn all(&self, pred: impl Fn(&Value) -> bool) -> Vec<&Value> {
        self.events.iter().filter(|e| pred(e)).collect()
    }
}

pub fn sim_ns(event: &Value) -> u64 {
    event["args"]["sim_ns"].as_u64().expect("sim_ns")
}

pub fn failed_trace(report: &SimulationReport) -> Trace {
    let failed = report.failures().next().expect("the planted failure");
    Trace::read(failed.trace_file.as_deref().expect("a trace was written"))
}
