//! The Chrome trace of a seed tells its story: a planted failure's trace shows, in order, the
//! fault that caused it, the messages involved and the failing assertion on the failing task's
//! track; boots and stops carry their kind; timers sit on their owner's track; `sometimes`
//! assertions reached for the first time are marked; any seed can be traced on demand.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use common::trace::{Trace, echo_server, failed_trace, sim_ns};
use moonpool_core::{
    NetworkProvider, Providers, RandomProvider, TaskProvider, TimeProvider, assert_always,
    assert_sometimes,
};
use moonpool_sim::{FaultContext, IterationControl, RebootKind, SimulationBuilder, WorldConfig};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

/// Serializes the tests that set `MOONPOOL_*` variables (one process may run several tests).
static ENV: Mutex<()> = Mutex::new(());

fn env_lock() -> MutexGuard<'static, ()> {
    ENV.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Thirty pings, one every 100 ms, each answered within 500 ms or the seed fails. At 450 ms the
/// injector partitions the client from the server for 3 s: the ping sent then is held back and
/// its reply comes too late.
fn planted(dir: &std::path::Path) -> SimulationBuilder {
    SimulationBuilder::new("planted")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(1))
        .chaos_duration(Duration::from_secs(10))
        .chrome_trace_dir(dir)
        .process("server", 1, echo_server)
        .fault_injector("partitioner", |ctx: FaultContext| async move {
            ctx.providers.time().sleep(Duration::from_millis(450)).await;
            let client = ctx.topology.member("client-0").unwrap().ip;
            let server = ctx.topology.ips_of("server")[0];
            ctx.control()
                .partition(client, server, Duration::from_secs(3));
        })
        .workload("client", 1, |ctx| async move {
            let server = ctx.topology.ips_of("server")[0];
            let stream = ctx
                .providers
                .network()
                .connect(&format!("{server}:4500"))
                .await?;
            let (reader, mut writer) = tokio::io::split(stream);
            let mut reader = BufReader::new(reader);
            for i in 0..30 {
                writer.write_all(format!("ping {i}\n").as_bytes()).await?;
                let mut line = String::new();
                let answered = ctx
                    .providers
                    .time()
                    .timeout(Duration::from_millis(500), reader.read_line(&mut line))
                    .await
                    .is_ok();
                assert_sometimes!(answered, "a ping is answered");
                assert_always!(answered, "every ping is answered within 500 ms", i);
                ctx.providers.time().sleep(Duration::from_millis(100)).await;
            }
            Ok(())
        })
}

#[test]
fn test_planted_failure_trace_shows_fault_then_messages_then_the_failing_assertion() {
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    let report = planted(dir.path()).run().unwrap();
    let failure = report
        .failures()
        .next()
        .unwrap_or_else(|| panic!("{report}"))
        .failure
        .clone()
        .unwrap();
    assert!(
        failure.contains("every ping is answered within 500 ms"),
        "{failure}"
    );
    let trace = failed_trace(&report);
    let client = trace.pid("client-0");
    let server = trace.pid("server-0");
    let client_task = trace.thread(client, "client-0/client-0::run");

    // 0. The connection: one thread per end, named by its two endpoints and the peer, under
    // the process that owns the end; the client's starts with `connect`, the server's with
    // `accept`.
    let client_ip = trace.events.iter().find_map(|e| {
        let name = e["args"]["name"].as_str()?;
        (e["pid"] == client && name.starts_with("conn#1 ")).then(|| name.to_string())
    });
    let client_conn_name = client_ip.expect("the client's connection thread");
    assert!(
        client_conn_name.ends_with(":4500 (server-0)") && client_conn_name.contains(" -> 10."),
        "{client_conn_name}"
    );
    let client_conn = trace.connection_thread(client, "conn#1 ");
    let server_conn = trace.connection_thread(server, "conn#1 10.0.0.1:4500 -> ");
    assert!(
        trace
            .thread_name(&serde_json::json!({"pid": server, "tid": server_conn}))
            .ends_with("(client-0)")
    );
    let on = |pid: u64, tid: u64| move |e: &Value| e["pid"] == pid && e["tid"] == tid;
    let connect = trace.first(|e| e["cat"] == "connection" && on(client, client_conn)(e));
    assert_eq!(connect.1["name"], "connect");
    let accept = trace.first(|e| e["cat"] == "connection" && on(server, server_conn)(e));
    assert_eq!(accept.1["name"], "accept");

    // 1. The fault: a partition 450 ms into the chaos phase, drawn on a process it cuts off,
    // with a span per direction lasting its 3 s on the `network` thread, and across the
    // connection it separates: a slice on each end's thread.
    let (fault_index, fault) =
        trace.first(|e| e["cat"] == "fault" && e["args"]["kind"] == "network.partition");
    let partitioned = sim_ns(fault);
    assert!(
        [client, server].contains(&fault["pid"].as_u64().unwrap()),
        "{fault}"
    );
    let spans = trace.all(|e| e["cat"] == "fault-span" && e["ph"] == "b");
    assert_eq!(spans.len(), 2, "one span per direction: {spans:?}");
    assert!(
        spans
            .iter()
            .all(|s| s["args"]["until_sim_ns"] == partitioned + 3_000_000_000)
    );
    let across = trace.all(|e| e["cat"] == "fault-span" && e["ph"] == "X");
    let mut ends: Vec<(u64, u64)> = across
        .iter()
        .map(|e| (e["pid"].as_u64().unwrap(), e["tid"].as_u64().unwrap()))
        .collect();
    ends.sort_unstable();
    let mut expected = vec![(client, client_conn), (server, server_conn)];
    expected.sort_unstable();
    assert_eq!(ends, expected, "{across:?}");
    for slice in &across {
        assert!(slice["name"].as_str().unwrap().starts_with("partition: "));
        // 3 s long, in the trace's microseconds.
        let dur = slice["dur"].as_f64().unwrap();
        assert!((dur - 3_000_000.0).abs() < 1.0, "{slice}");
    }

    // 2. The messages: the pings before the partition, each a flow from the client's task to
    // the server, and the ping sent after it, held back: still in flight when the run ended.
    let (send_index, send) = trace.first(|e| {
        e["ph"] == "X"
            && e["cat"] == "message"
            && e["pid"] == client
            && e["tid"] == client_task
            && e["name"].as_str().unwrap().starts_with("send")
            && sim_ns(e) > partitioned
    });
    assert!(send_index > fault_index, "the fault comes first");
    assert!(
        send["name"].as_str().unwrap().contains("to server-0"),
        "{send}"
    );
    assert!(
        send["args"]["data"].as_str().unwrap().starts_with("ping "),
        "{send}"
    );
    let held = trace.first(|e| e["cat"] == "message-lost" && e["pid"] == client);
    assert_eq!(held.1["args"]["data"], send["args"]["data"]);
    assert_eq!(
        (held.1["tid"].as_u64(), &held.1["ts"]),
        (Some(client_task), &send["ts"])
    );
    assert!(held.1["name"].as_str().unwrap().contains("still in flight"));
    // An earlier ping: a flow from the client's task to the server's end of the connection,
    // where it is delivered, then a flow to the server task that reads it.
    let (first_send_index, first_send) = trace.first(|e| {
        e["ph"] == "X" && e["pid"] == client && e["name"].as_str().unwrap().starts_with("send")
    });
    assert!(first_send_index < fault_index);
    let flow = trace.first(|e| e["ph"] == "s" && e["pid"] == client && e["ts"] == first_send["ts"]);
    let id = &flow.1["id"];
    let finish = trace.first(|e| e["ph"] == "f" && &e["id"] == id);
    assert_eq!(
        (finish.1["pid"].as_u64(), finish.1["tid"].as_u64()),
        (Some(server), Some(server_conn))
    );
    let delivery = trace.first(|e| {
        e["ph"] == "X" && e["pid"] == server && e["ts"] == finish.1["ts"] && e["cat"] == "message"
    });
    assert_eq!(delivery.1["args"]["data"], first_send["args"]["data"]);
    let echo = trace.thread(server, "server-0/echo");
    let read = trace
        .first(|e| e["ph"] == "f" && e["name"] == "read" && e["pid"] == server && e["tid"] == echo);
    assert!(read.0 > finish.0);

    // 3. The failing assertion: on the client's task track, 500 ms after that ping, after the
    // fault and the send, with the message and the replay command.
    let (marker_index, marker) = trace.first(|e| e["cat"] == "failure");
    assert!(marker_index > send_index);
    assert_eq!(
        (marker["pid"].as_u64(), marker["tid"].as_u64()),
        (Some(client), Some(client_task))
    );
    assert_eq!(marker["args"]["kind"], "assertion");
    assert_eq!(sim_ns(marker), sim_ns(send) + 500_000_000);
    assert!(
        marker["args"]["message"]
            .as_str()
            .unwrap()
            .contains("every ping is answered")
    );
    assert!(
        marker["args"]["replay"]
            .as_str()
            .unwrap()
            .starts_with("MOONPOOL_SEED=")
    );
    // The marker sits inside the task's last poll slice.
    let ts = marker["ts"].as_f64().unwrap();
    assert!(trace.events.iter().any(|e| {
        e["ph"] == "X"
            && e["cat"] == "poll"
            && e["pid"] == client
            && e["tid"] == client_task
            && e["ts"].as_f64().unwrap() <= ts
            && ts <= e["ts"].as_f64().unwrap() + e["dur"].as_f64().unwrap() + 1e-6
    }));

    // `sometimes` reached for the first time: marked once, before the fault.
    let reached =
        trace.all(|e| e["cat"] == "assertion" && e["args"]["message"] == "a ping is answered");
    assert_eq!(reached.len(), 1);
    assert!(sim_ns(reached[0]) < partitioned);
}

#[test]
fn test_trace_tracks_tasks_polls_timers_and_lifecycle_kinds() {
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    // A passing run with reboots of every kind, traced on demand through MOONPOOL_SEED.
    let sim = SimulationBuilder::new("lifecycle")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(5))
        .chaos_duration(Duration::from_secs(3))
        .process("server", 1, echo_server)
        .fault_injector("rebooter", |ctx: FaultContext| async move {
            let server = ctx.control().process("server-0").unwrap();
            for kind in [
                RebootKind::Graceful,
                RebootKind::Crash,
                RebootKind::CrashAndWipe,
            ] {
                ctx.providers.time().sleep(Duration::from_millis(500)).await;
                ctx.control()
                    .reboot(server, kind, Some(Duration::from_millis(100)));
            }
        })
        .workload("client", 1, |ctx| async move {
            let _ = ctx.providers.random().random_bool(0.5);
            while ctx.chaos_active() {
                ctx.providers.time().sleep(Duration::from_millis(50)).await;
            }
            Ok(())
        });
    let report = {
        let dir = dir.path().to_str().unwrap();
        let _vars = Vars::set(&[("MOONPOOL_SEED", "42"), ("MOONPOOL_TRACE_DIR", dir)]);
        sim.run().unwrap()
    };
    assert_eq!((report.seeds_run(), report.failed()), (1, 0), "{report}");
    let path = report.seeds[0]
        .trace_file
        .clone()
        .expect("a passing seed traced on demand");
    let trace = Trace::read(&path);
    let server = trace.pid("server-0");
    let lifecycle: Vec<&str> = trace
        .all(|e| e["cat"] == "lifecycle" && e["ph"] == "i" && e["pid"] == server)
        .iter()
        .map(|e| e["args"]["kind"].as_str().unwrap())
        .collect();
    // The graceful stop comes after its 2 s grace period, so after the two crashes.
    assert_eq!(
        lifecycle,
        [
            "boot", "crash", "restart", "wipe", "restart", "graceful", "restart"
        ]
    );
    // One track per task name, named as in the report, with a slice per poll.
    let client = trace.pid("client-0");
    let client_task = trace.thread(client, "client-0/client-0::run");
    let polls = trace.all(|e| e["cat"] == "poll" && e["pid"] == client && e["tid"] == client_task);
    assert!(polls.len() > 50, "{}", polls.len());
    // Every timer fires on its owner's track: a task track, never a process-wide one.
    let timers = trace.all(|e| e["cat"] == "timer");
    assert!(!timers.is_empty());
    assert!(
        timers.iter().all(|e| e["tid"].as_u64().unwrap() >= 16),
        "timers on task tracks"
    );
    assert!(
        timers
            .iter()
            .any(|e| e["pid"] == client && e["tid"] == client_task)
    );
    // No failure marker on a passing seed.
    assert!(trace.all(|e| e["cat"] == "failure").is_empty());
}

#[test]
fn test_trace_is_bounded_with_a_note_when_cut() {
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    let report = {
        let _vars = Vars::set(&[("MOONPOOL_TRACE_MAX_MB", "1")]);
        long_failing(dir.path()).run().unwrap()
    };
    let failed = report.failures().next().unwrap();
    let path = failed.trace_file.as_deref().unwrap();
    let size = std::fs::metadata(path).unwrap().len();
    assert!(size <= 1 << 20, "{size}");
    let trace = Trace::read(path);
    let cut = trace.all(|e| e["name"] == "trace cut");
    assert_eq!(cut.len(), 1);
    assert!(cut[0]["args"]["dropped_events"].as_u64().unwrap() > 0);
    // The end, where the failure is, is kept.
    assert_eq!(trace.all(|e| e["cat"] == "failure").len(), 1);
}

#[test]
fn test_bad_trace_size_bound_is_refused() {
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    for bad in ["0", "-1", "1.5", "lots"] {
        let _vars = Vars::set(&[("MOONPOOL_TRACE_MAX_MB", bad)]);
        let error = long_failing(dir.path()).run().unwrap_err().to_string();
        assert!(
            error.contains("MOONPOOL_TRACE_MAX_MB") && error.contains(bad),
            "{error}"
        );
    }
}

/// Two tasks chattering for 5 simulated seconds, then a failure.
fn long_failing(dir: &std::path::Path) -> SimulationBuilder {
    SimulationBuilder::new("long")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(1))
        .chrome_trace_dir(dir)
        .workload("chatter", 2, |ctx| async move {
            for _ in 0..5_000 {
                ctx.providers.time().sleep(Duration::from_millis(1)).await;
            }
            assert_always!(ctx.index == 1, "only the second chatter may finish");
            Ok(())
        })
}

/// Sets `MOONPOOL_*` variables for one scope (the caller holds `ENV`).
struct Vars(Vec<&'static str>);

impl Vars {
    fn set(vars: &[(&'static str, &str)]) -> Self {
        for (name, value) in vars {
            // SAFETY: every test of this file holds `ENV` while the variables are set.
            unsafe { std::env::set_var(name, value) };
        }
        Self(vars.iter().map(|(name, _)| *name).collect())
    }
}

impl Drop for Vars {
    fn drop(&mut self) {
        for name in &self.0 {
            // SAFETY: as in `set`.
            unsafe { std::env::remove_var(name) };
        }
    }
}

/// Recording the story changes nothing in the run: with network faults on, every seed has the
/// same fingerprint and outcome with and without it.
#[test]
fn test_recording_the_story_leaves_the_run_unchanged() {
    const SEEDS: u64 = 8;
    use moonpool_sim::{Locality, NetworkConfiguration, SimWorld};
    let run = |seed: u64, record_story: bool| {
        let config = {
            let mut cfg = WorldConfig::default();
            cfg.network = NetworkConfiguration::random_for_seed(seed);
            cfg.record_story = record_story;
            cfg
        };
        let mut world = SimWorld::with_config(seed, config).unwrap();
        world
            .add_process("server", "10.0.0.1", Locality::default(), echo_server)
            .unwrap();
        world
            .add_workload("client", "10.0.0.2", |providers| async move {
                for i in 0..20 {
                    let Ok(stream) = providers.network().connect("10.0.0.1:4500").await else {
                        providers.time().sleep(Duration::from_millis(10)).await;
                        continue;
                    };
                    let (reader, mut writer) = tokio::io::split(stream);
                    let mut reader = BufReader::new(reader);
                    let _ = writer.write_all(format!("ping {i}\n").as_bytes()).await;
                    let mut line = String::new();
                    let _ = providers
                        .time()
                        .timeout(Duration::from_millis(200), reader.read_line(&mut line))
                        .await;
                }
            })
            .unwrap();
        let result = world.run();
        let summary = world.summary();
        (summary.fingerprint, summary.events, result.map(|_| ()))
    };
    let mut real = 0;
    for seed in 0..SEEDS {
        let plain = run(seed, false);
        real += u64::from(plain.1 > 100);
        assert_eq!(plain, run(seed, true), "seed {seed}");
    }
    assert!(
        real * 4 >= SEEDS * 3,
        "most seeds make real runs: {real} of {SEEDS}"
    );
}

/// The failure marker of each kind of failure: a panic on the panicking task's track, a hang
/// (a workload that never finishes) where the run stopped, each with its kind and replay command.
#[test]
fn test_failure_markers_of_panics_and_hangs() {
    let _env = env_lock();
    let dir = tempfile::tempdir().unwrap();
    let base = |name: &str| {
        SimulationBuilder::new(name)
            .world_config(WorldConfig::quiet())
            .progress(false)
            .jobs(1)
            .iterations(IterationControl::FixedCount(1))
            .chaos_duration(Duration::from_secs(1))
            .settle_timeout(Duration::from_secs(2))
            .chrome_trace_dir(dir.path())
    };
    let panicking = base("panicking")
        .process("server", 1, |ctx| async move {
            let time = ctx.providers.time().clone();
            drop(ctx.providers.task().spawn("doomed", async move {
                time.sleep(Duration::from_millis(300)).await;
                panic!("planted panic");
            }));
            std::future::pending::<()>().await;
        })
        .workload("client", 1, |ctx| async move {
            ctx.providers.time().sleep(Duration::from_millis(500)).await;
            Ok(())
        })
        .run()
        .unwrap();
    let trace = failed_trace(&panicking);
    let (_, marker) = trace.first(|e| e["cat"] == "failure");
    assert_eq!(marker["args"]["kind"], "panic");
    let server = trace.pid("server-0");
    let doomed = trace.thread(server, "server-0/doomed");
    assert_eq!(
        (marker["pid"].as_u64(), marker["tid"].as_u64()),
        (Some(server), Some(doomed))
    );
    assert!(
        trace
            .events
            .iter()
            .any(|e| e["name"] == "poll (panicked)" && e["tid"] == doomed)
    );

    let hanging = base("hanging")
        .workload("client", 1, |_ctx| async move {
            std::future::pending::<()>().await;
            Ok(())
        })
        .run()
        .unwrap();
    let trace = failed_trace(&hanging);
    let (index, marker) = trace.first(|e| e["cat"] == "failure");
    assert_eq!(marker["args"]["kind"], "hang");
    assert!(
        marker["args"]["message"]
            .as_str()
            .unwrap()
            .contains("settle timeout")
    );
    assert!(
        marker["args"]["replay"]
            .as_str()
            .unwrap()
            .starts_with("MOONPOOL_SEED=")
    );
    // At the end of the run, on the simulator's own track.
    assert_eq!(marker["pid"].as_u64(), Some(trace.pid("world")));
    let last = trace.events.iter().rposition(|e| e["ph"] != "M").unwrap();
    let max_ts = trace.events[..=last]
        .iter()
        .filter_map(|e| e["ts"].as_f64())
        .fold(0.0, f64::max);
    assert!(marker["ts"].as_f64().unwrap() >= max_ts - 1e-6, "{index}");
}
