#![cfg(all(feature = "sim", feature = "transport"))]
//! The trace names RPC messages: the transport annotates every packet it builds and decodes, so
//! a `#[service]` call shows as a flow named `Interface::method` from the caller's task to the
//! task that decodes it on the server (its connection reader), and its reply as a flow named
//! `reply to Interface::method` from the method's task back, linked to its request.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::Duration;

use moonpool::sim::{
    IterationControl, ProcessContext, SimulationBuilder, WorkloadContext, WorkloadError,
    WorldConfig, check_chrome_trace,
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
    let flow_of = |e: &Value, ph: &str| {
        events
            .iter()
            .find(|f| {
                f["ph"] == ph && f["ts"] == e["ts"] && f["pid"] == e["pid"] && f["tid"] == e["tid"]
            })
            .map(|f| f["id"].clone())
            .unwrap()
    };
    for (sent, got) in requests
        .iter()
        .zip(&received)
        .chain(replies.iter().zip(&answered))
    {
        assert_eq!(flow_of(sent, "s"), flow_of(got, "f"));
    }
    // A reply names the request it answers.
    assert!(
        replies
            .iter()
            .all(|r| r["args"]["in_reply_to"] == "Counter::bump"),
        "{replies:?}"
    );
    assert!(check.flows >= 6);
    // The failure is marked where the assertion failed: on the caller's track, after the third
    // answer, before the fourth request.
    let marker = events.iter().find(|e| e["cat"] == "failure").unwrap();
    assert_eq!(thread(marker), "client-0/client-0::run");
    let ts = marker["ts"].as_f64().unwrap();
    assert!(answered[2]["ts"].as_f64().unwrap() < ts && ts < requests[3]["ts"].as_f64().unwrap());
}
