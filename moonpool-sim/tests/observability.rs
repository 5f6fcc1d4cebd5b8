//! Chrome traces of failed seeds, process spans in logs, and the simulated-time log timer.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::io::Write;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool_core::{
    NetworkProvider, Providers, TaskProvider, TcpListener, TimeProvider, assert_always,
};
use moonpool_sim::{IterationControl, SimWorld, SimulationBuilder, WorldConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

fn echo_sim(dir: &std::path::Path) -> SimulationBuilder {
    SimulationBuilder::new("traced")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(1))
        .chrome_trace_dir(dir)
        .process("server", 1, |ctx| async move {
            let listener = ctx
                .providers
                .network()
                .bind(&format!("{}:4500", ctx.ip))
                .await
                .unwrap();
            while let Ok((mut stream, _)) = listener.accept().await {
                let mut buffer = [0u8; 4];
                while stream.read_exact(&mut buffer).await.is_ok() {
                    let _ = stream.write_all(&buffer).await;
                }
            }
        })
        .workload("client", 1, |ctx| async move {
            let server = ctx.topology.ips_of("server")[0];
            let mut stream = ctx
                .providers
                .network()
                .connect(&format!("{server}:4500"))
                .await?;
            for i in 0u32..5 {
                stream.write_all(&i.to_le_bytes()).await?;
                let mut reply = [0u8; 4];
                stream.read_exact(&mut reply).await?;
            }
            assert_always!(false, "fails after five round trips");
            Ok(())
        })
}

#[test]
fn test_failed_seed_writes_a_chrome_trace_with_tracks_and_flows() {
    let dir = tempfile::tempdir().unwrap();
    let report = echo_sim(dir.path()).run().unwrap();
    let failed = report.failures().next().unwrap();
    let path = failed.trace_file.as_deref().expect("a trace was written");
    assert!(report.to_string().contains("trace:  "), "{report}");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let events = json["traceEvents"].as_array().unwrap();
    let names: Vec<&str> = events
        .iter()
        .filter(|e| e["ph"] == "M" && e["name"] == "process_name")
        .map(|e| e["args"]["name"].as_str().unwrap())
        .collect();
    assert!(
        names.contains(&"server-0") && names.contains(&"client-0") && names.contains(&"world"),
        "{names:?}"
    );
    let starts: Vec<u64> = events
        .iter()
        .filter(|e| e["ph"] == "s")
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    let finishes: Vec<u64> = events
        .iter()
        .filter(|e| e["ph"] == "f")
        .map(|e| e["id"].as_u64().unwrap())
        .collect();
    assert!(
        starts.len() >= 10,
        "five requests and five replies: {}",
        starts.len()
    );
    assert!(
        finishes.iter().all(|id| starts.contains(id)),
        "every flow end has a start"
    );
    // A message from the client ends on the server's track.
    let server_pid = events
        .iter()
        .find(|e| e["ph"] == "M" && e["args"]["name"] == "server-0")
        .map(|e| e["pid"].clone())
        .unwrap();
    assert!(
        events
            .iter()
            .any(|e| e["ph"] == "f" && e["pid"] == server_pid)
    );
}

#[derive(Clone, Default)]
struct Buffer(Arc<Mutex<Vec<u8>>>);

impl Write for Buffer {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(bytes);
        Ok(bytes.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[test]
fn test_logs_carry_process_spans_and_simulated_time() {
    let buffer = Buffer::default();
    let writer = buffer.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_timer(SimTimeForTest)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut world = SimWorld::with_config(1, WorldConfig::quiet()).unwrap();
        world
            .add_workload("worker", "10.0.0.9", |p| async move {
                p.time().sleep(Duration::from_millis(1500)).await;
                let inner = p
                    .task()
                    .spawn("child", async { tracing::info!("from a spawned task") });
                inner.await.unwrap();
                tracing::info!(step = 1, "from the workload");
            })
            .unwrap();
        world.run().unwrap();
    });
    let text = String::from_utf8(buffer.0.lock().unwrap().clone()).unwrap();
    assert!(text.contains("sim+1.500000s"), "{text}");
    assert!(text.contains("process{name=worker ip=10.0.0.9}"), "{text}");
    let spawned = text
        .lines()
        .find(|l| l.contains("from a spawned task"))
        .unwrap();
    assert!(
        spawned.contains("process{name=worker"),
        "spawned tasks inherit the span: {spawned}"
    );
    assert_eq!(
        moonpool_sim::sim_now(),
        None,
        "no clock left behind after the run"
    );
}

/// The same as `moonpool_sim::SimTime` (behind a feature), built from the public `sim_now`.
struct SimTimeForTest;

impl tracing_subscriber::fmt::time::FormatTime for SimTimeForTest {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match moonpool_sim::sim_now() {
            Some(now) => write!(w, "sim+{:.6}s", now.as_secs_f64()),
            None => write!(w, "sim:-"),
        }
    }
}
