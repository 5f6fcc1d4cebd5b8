#![cfg(all(feature = "sim", feature = "transport"))]
//! The trace names RPC messages: the transport annotates every packet it builds and decodes and
//! every request a method's task takes and every outcome a caller takes, so a `#[service]` call
//! shows as a packet flow from the caller's task to the server's connection reader that decodes
//! it, a request flow named `Interface::method` from the caller's send to the task that runs the
//! method, and a reply flow named `reply to Interface::method`, whose id is the request flow's
//! plus one, from that task back to the caller's task that takes the reply.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool::sim::{
    FaultContext, IterationControl, ProcessContext, SimulationBuilder, WorkloadContext,
    WorkloadError, WorldConfig, check_chrome_trace,
};
use moonpool::transport::NetTransportBuilder;
use moonpool::{NetworkAddress, Providers, TimeProvider, assert_always, service};
use serde_json::Value;

/// A counter: `bump` adds one and answers the new value.
#[service]
pub trait Counter {
    async fn bump(&self, by: u64) -> u64;
}

struct Node(std::sync::Mutex<u64>);

impl Counter for Node {
    async fn bump(&self, by: u64) -> u64 {
        let mut value = self.0.lock().unwrap();
        *value += by;
        *value
    }
}

async fn server(ctx: ProcessContext) {
    let address: NetworkAddress = format!("{}:4500", ctx.ip).parse().unwrap();
    let Ok(transport) = NetTransportBuilder::new(ctx.providers.clone())
        .local_address(address)
        .build_listening()
        .await
    else {
        return;
    };
    let Ok(counter) = CounterServer::serve(&transport, Node(std::sync::Mutex::new(0))) else {
        return;
    };
    ctx.state.publish("counter", counter.client());
    ctx.shutdown.requested().await;
    counter.stop();
}

/// Bumps the counter five times; the third answer breaks a planted assertion.
async fn client(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    let counter = loop {
        if let Some(counter) = ctx.state.get::<CounterClient>("counter") {
            break counter;
        }
        ctx.providers.time().sleep(Duration::from_millis(10)).await;
    };
    for _ in 0..5 {
        let value = counter
            .bump(&transport, 1)
            .get_reply()
            .await
            .map_err(|e| e.to_string())?;
        assert_always!(value < 3, "the counter stays under three", value);
    }
    Ok(())
}

#[test]
fn test_rpc_calls_are_flows_named_by_interface_and_method() {
    let dir = tempfile::tempdir().unwrap();
    let report = SimulationBuilder::new("traced-rpc")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(1))
        .chrome_trace_dir(dir.path())
        .process("server", 1, server)
        .workload("client", 1, client)
        .run()
        .unwrap();
    let failed = report.failures().next().expect("the planted failure");
    let text = std::fs::read_to_string(failed.trace_file.as_deref().unwrap()).unwrap();
    let check = check_chrome_trace(&text).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    let events = value["traceEvents"].as_array().unwrap();
    let named = |prefix: &str| -> Vec<&Value> {
        events
            .iter()
            .filter(|e| e["cat"] == "rpc" && e["name"].as_str().unwrap().starts_with(prefix))
            .collect()
    };
    let requests = named("→ Counter::bump");
    let received = named("← Counter::bump");
    let replies = named("→ reply to Counter::bump");
    let answered = named("← reply to Counter::bump");
    // Three calls answered; the run goes on to the end of the instant after the failure, so
    // the fourth request is sent, never received.
    assert_eq!(
        (
            requests.len(),
            received.len(),
            replies.len(),
            answered.len()
        ),
        (4, 3, 3, 3)
    );
    let lost = named("never received");
    assert!(
        lost.is_empty(),
        "lost packets are marked as message-lost, not rpc"
    );
    let never: Vec<&Value> = events
        .iter()
        .filter(|e| e["cat"] == "message-lost" && e["name"] == "never received: Counter::bump")
        .collect();
    assert_eq!(never.len(), 1);
    assert_eq!(never[0]["ts"], requests[3]["ts"]);
    let thread = |e: &Value| {
        events
            .iter()
            .find(|m| m["name"] == "thread_name" && m["pid"] == e["pid"] && m["tid"] == e["tid"])
            .map(|m| m["args"]["name"].as_str().unwrap().to_string())
            .unwrap()
    };
    // From the caller's task to the server's connection reader (which decodes the packet and
    // hands it to the method's queue), and from the method's task back to the caller's reader.
    assert_eq!(thread(requests[0]), "client-0/client-0::run");
    assert!(
        thread(received[0]).starts_with("server-0/moonpool-transport/in/"),
        "{}",
        thread(received[0])
    );
    assert_eq!(thread(replies[0]), "server-0/Counter::bump");
    assert!(
        thread(answered[0]).starts_with("client-0/moonpool-transport/"),
        "{}",
        thread(answered[0])
    );
    // Each request and its receipt are one flow; so are each reply and its receipt.
    let flow_of = |e: &Value, ph: &str, cat: &str| {
        events
            .iter()
            .find(|f| f["ph"] == ph && f["cat"] == cat && at(f) == at(e))
            .map(|f| f["id"].clone())
            .unwrap()
    };
    for (sent, got) in requests
        .iter()
        .zip(&received)
        .chain(replies.iter().zip(&answered))
    {
        assert_eq!(flow_of(sent, "s", "message"), flow_of(got, "f", "message"));
    }
    // A reply names the request it answers.
    assert!(
        replies
            .iter()
            .all(|r| r["args"]["in_reply_to"] == "Counter::bump"),
        "{replies:?}"
    );
    assert!(check.flows >= 6);

    // The request flow goes on from the caller's send to the task that runs the method, and the
    // reply flow (the request's id plus one) from there back to the caller's task.
    let handled = named("handle Counter::bump");
    let taken = named("reply taken: Counter::bump");
    assert_eq!((handled.len(), taken.len()), (3, 3));
    for i in 0..3 {
        assert_eq!(thread(handled[i]), "server-0/Counter::bump");
        assert_eq!(thread(taken[i]), "client-0/client-0::run");
        let request = flow_of(requests[i], "s", "rpc");
        let request_flows: Vec<&Value> = events
            .iter()
            .filter(|f| f["cat"] == "rpc" && f["id"] == request)
            .collect();
        assert_eq!(request_flows.len(), 2, "{request_flows:?}");
        assert!(request_flows.iter().all(|f| f["name"] == "Counter::bump"));
        assert_eq!(flow_end(events, &request), at(handled[i]));
        let reply = serde_json::json!(request.as_u64().unwrap() + 1);
        assert_eq!(flow_start(events, &reply), at(replies[i]));
        assert_eq!(flow_end(events, &reply), at(taken[i]));
        assert!(
            events
                .iter()
                .any(|f| f["id"] == reply && f["name"] == "reply to Counter::bump")
        );
        assert_eq!(handled[i]["args"]["request_flow"], request);
    }
    // The fourth request was never handled: marked so, and its flow is not drawn.
    let unhandled: Vec<&Value> = events
        .iter()
        .filter(|e| e["name"] == "request never handled: Counter::bump")
        .collect();
    assert_eq!(unhandled.len(), 1);
    assert_eq!(unhandled[0]["cat"], "message-lost");
    assert_eq!(at(unhandled[0]), at(requests[3]));
    let fourth = unhandled[0]["args"]["request_flow"].clone();
    assert!(
        events
            .iter()
            .all(|f| f["id"] != fourth || f["cat"] != "rpc")
    );
    // The failure is marked where the assertion failed: on the caller's track, after the third
    // answer, before the fourth request.
    let marker = events.iter().find(|e| e["cat"] == "failure").unwrap();
    assert_eq!(thread(marker), "client-0/client-0::run");
    let ts = marker["ts"].as_f64().unwrap();
    assert!(answered[2]["ts"].as_f64().unwrap() < ts && ts < requests[3]["ts"].as_f64().unwrap());
}

/// Where an event is: process, thread, time.
fn at(event: &Value) -> (Value, Value, Value) {
    (
        event["pid"].clone(),
        event["tid"].clone(),
        event["ts"].clone(),
    )
}

fn flow_start(events: &[Value], id: &Value) -> (Value, Value, Value) {
    at(events
        .iter()
        .find(|f| f["ph"] == "s" && &f["id"] == id)
        .unwrap())
}

fn flow_end(events: &[Value], id: &Value) -> (Value, Value, Value) {
    at(events
        .iter()
        .find(|f| f["ph"] == "f" && &f["id"] == id)
        .unwrap())
}

/// Calls the counter every 100 ms and fails the first call answered later than 300 ms. At
/// 420 ms the injector cuts the client's connection for 600 ms: the call sent at about 450 ms
/// is held back, handled when the cut ends, and answered late.
async fn impatient_client(ctx: WorkloadContext) -> Result<(), WorkloadError> {
    let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
    let counter = loop {
        if let Some(counter) = ctx.state.get::<CounterClient>("counter") {
            break counter;
        }
        ctx.providers.time().sleep(Duration::from_millis(10)).await;
    };
    for _ in 0..10 {
        let start = ctx.providers.time().now();
        counter
            .bump(&transport, 1)
            .get_reply()
            .await
            .map_err(|e| e.to_string())?;
        let waited = ctx.providers.time().now() - start;
        assert_always!(
            waited < Duration::from_millis(300),
            "every call is answered within 300 ms",
            waited
        );
        ctx.providers.time().sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

#[test]
fn test_planted_connection_fault_then_request_and_reply_flows_then_the_failure() {
    let dir = tempfile::tempdir().unwrap();
    let report = SimulationBuilder::new("traced-cut")
        .world_config(WorldConfig::quiet())
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(1))
        .chaos_duration(Duration::from_secs(5))
        .chrome_trace_dir(dir.path())
        .process("server", 1, server)
        .fault_injector("cutter", |ctx: FaultContext| async move {
            ctx.providers.time().sleep(Duration::from_millis(420)).await;
            let control = ctx.control();
            let client = control.process("client-0").unwrap();
            let connection = control.connections_of(client)[0].id;
            assert!(control.cut_connection(connection, Some(Duration::from_millis(600))));
        })
        .workload("client", 1, impatient_client)
        .run()
        .unwrap();
    let failed = report.failures().next().expect("the planted failure");
    assert!(
        failed
            .failure
            .as_deref()
            .unwrap()
            .contains("every call is answered within 300 ms")
    );
    let text = std::fs::read_to_string(failed.trace_file.as_deref().unwrap()).unwrap();
    check_chrome_trace(&text).unwrap();
    let value: Value = serde_json::from_str(&text).unwrap();
    let events = value["traceEvents"].as_array().unwrap();
    let thread = |e: &Value| {
        events
            .iter()
            .find(|m| m["name"] == "thread_name" && m["pid"] == e["pid"] && m["tid"] == e["tid"])
            .map(|m| m["args"]["name"].as_str().unwrap().to_string())
            .unwrap()
    };
    let index = |pred: &dyn Fn(&Value) -> bool| events.iter().position(pred).unwrap();
    let sim_ns = |e: &Value| e["args"]["sim_ns"].as_u64().unwrap();

    // 1. The fault, on the thread of the client's end of the connection it cut (named by both
    // endpoints and the server), and the cut as a 600 ms slice on both ends' threads.
    let fault_at = index(&|e| e["cat"] == "fault" && e["args"]["kind"] == "network.cut_connection");
    let fault = &events[fault_at];
    let connection = thread(fault);
    assert!(
        connection.starts_with("conn#") && connection.ends_with(":4500 (server-0)"),
        "{connection}"
    );
    assert_eq!(fault["args"]["event"], "cut");
    let cut = sim_ns(fault);
    let spans: Vec<&Value> = events
        .iter()
        .filter(|e| e["cat"] == "fault-span" && e["ph"] == "X")
        .collect();
    assert_eq!(spans.len(), 2, "{spans:?}");
    assert!(spans.iter().any(|e| thread(e) == connection));
    assert!(spans.iter().any(|e| thread(e).ends_with("(client-0)")));
    assert!(
        spans
            .iter()
            .all(|e| e["args"]["until_sim_ns"] == cut + 600_000_000)
    );

    // 2. The messages: the first call sent after the cut, its request flow to the method's task,
    // handled once the cut ended, and its reply flow back to the caller's task.
    let sent_at = index(&|e| {
        e["ph"] == "X" && e["name"] == "→ Counter::bump" && e["args"]["sim_ns"].as_u64() > Some(cut)
    });
    assert!(sent_at > fault_at);
    let sent = &events[sent_at];
    assert_eq!(thread(sent), "client-0/client-0::run");
    let request = events
        .iter()
        .find(|f| f["ph"] == "s" && f["cat"] == "rpc" && at(f) == at(sent))
        .unwrap()["id"]
        .clone();
    let handled_at = index(&|e| {
        e["ph"] == "X"
            && e["name"] == "handle Counter::bump"
            && e["args"]["request_flow"] == request
    });
    let handled = &events[handled_at];
    assert_eq!(thread(handled), "server-0/Counter::bump");
    // On the way, the server's end of the connection shows the request's bytes held back by
    // the cut, then delivered when it ended.
    let held_at = index(&|e| {
        e["name"] == "held back: 48 B from client-0" && e["args"]["sim_ns"].as_u64() > Some(cut)
    });
    assert!(sent_at < held_at && held_at < handled_at);
    assert!(thread(&events[held_at]).ends_with("(client-0)"));
    assert_eq!(
        events[held_at]["args"]["why"],
        "the connection is cut until restored"
    );
    assert_eq!(flow_end(events, &request), at(handled));
    assert!(
        sim_ns(handled) >= cut + 600_000_000,
        "handled after the cut ended"
    );
    let reply = serde_json::json!(request.as_u64().unwrap() + 1);
    let reply_start = flow_start(events, &reply);
    let replied_at = index(&|e| e["ph"] == "X" && at(e) == reply_start);
    assert!(replied_at > handled_at);
    assert_eq!(events[replied_at]["name"], "→ reply to Counter::bump");
    let taken_at = index(&|e| {
        e["ph"] == "X"
            && e["name"] == "reply taken: Counter::bump"
            && e["args"]["request_flow"] == request
    });
    let taken = &events[taken_at];
    assert!(taken_at > replied_at);
    assert_eq!(flow_end(events, &reply), at(taken));
    assert_eq!(thread(taken), "client-0/client-0::run");

    // 3. The failure: on the caller's task, right after it took the late reply, at the same
    // simulated time, with the replay command.
    let marker_at = index(&|e| e["cat"] == "failure");
    let marker = &events[marker_at];
    assert!(marker_at > taken_at);
    assert_eq!(
        (&marker["pid"], &marker["tid"]),
        (&taken["pid"], &taken["tid"])
    );
    assert_eq!(marker["args"]["sim_ns"].as_u64(), Some(sim_ns(taken)));
    assert!(
        marker["args"]["replay"]
            .as_str()
            .unwrap()
            .starts_with("MOONPOOL_SEED=")
    );
}

/// Every trace of an RPC chaos run is valid: seeds with the swarm network chaos, random
/// partitions and server reboots, where requests are resent, answered late, lost with their
/// connection or never handled; each seed fails at its end so that its trace is written.
/// Seeds: `MOONPOOL_TRACE_CHAOS_SEEDS` (default 12, 6 in CI).
#[test]
fn test_traces_of_rpc_chaos_seeds_are_valid() {
    use moonpool::sim::{Attrition, Chaos, NetworkConfiguration, ShrinkMode};
    let seeds: usize = match std::env::var("MOONPOOL_TRACE_CHAOS_SEEDS") {
        Ok(count) => count.parse().unwrap(),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => 6,
        Err(_) => 12,
    };
    let dir = tempfile::tempdir().unwrap();
    let mut config = WorldConfig::quiet();
    config.network = NetworkConfiguration::random_for_seed(11);
    let report = SimulationBuilder::new("rpc-chaos-traced")
        .world_config(config)
        .progress(false)
        .jobs(1)
        .iterations(IterationControl::FixedCount(seeds))
        .chaos_duration(Duration::from_secs(3))
        .enable_chaos([
            Chaos::Network,
            Chaos::Partitions,
            Chaos::Attrition(Attrition::default()),
        ])
        .shrink(ShrinkMode::Off)
        .chrome_trace_dir(dir.path())
        .process("server", 2, server)
        .workload("client", 2, |ctx: WorkloadContext| async move {
            let transport = NetTransportBuilder::new(ctx.providers.clone()).build()?;
            for _ in 0..40 {
                if let Some(counter) = ctx.state.get::<CounterClient>("counter") {
                    let _ = counter
                        .bump(&transport, 1)
                        .get_reply()
                        .timeout(Duration::from_millis(300))
                        .await;
                }
                ctx.providers.time().sleep(Duration::from_millis(20)).await;
            }
            assert_always!(
                false,
                "planted: every seed fails, so that its trace is written"
            );
            Ok(())
        })
        .run()
        .unwrap();
    let (mut traced, mut handled, mut taken) = (0, 0, 0);
    for failed in report.failures() {
        let path = failed
            .trace_file
            .as_deref()
            .expect("a trace per failed seed");
        let text = std::fs::read_to_string(path).unwrap();
        check_chrome_trace(&text).unwrap_or_else(|e| panic!("seed {}: {e}", failed.seed));
        traced += 1;
        handled += text.matches("\"handle Counter::bump\"").count();
        taken += text.matches("\"reply taken: Counter::bump\"").count();
    }
    assert_eq!(traced, seeds, "{report}");
    assert!(handled > 0 && taken > 0, "{handled} {taken}");
}
