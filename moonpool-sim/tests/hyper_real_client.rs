//! An unmodified hyper 1.x HTTP/1.1 client and server exchange requests over the simulated TCP
//! network with chaos on. Nothing in hyper knows it is simulated: the streams are plain Tokio
//! `AsyncRead + AsyncWrite`, wrapped by hyper-util's `TokioIo`.
//!
//! The server turns off hyper's automatic `Date` header: it is the only wall-clock read in hyper's
//! HTTP/1 path, and under bit flips its content could decide whether a corrupted header parses.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::field_reassign_with_default,
    clippy::let_and_return,
    missing_docs
)]

use std::convert::Infallible;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming, service::service_fn};
use hyper_util::rt::TokioIo;
use moonpool_core::{NetworkProvider, Providers, TaskProvider, TcpListener, TimeProvider};
use moonpool_sim::{
    Locality, NetworkConfiguration, RunSummary, SimProviders, SimWorld, WorldConfig,
};

const REQUESTS: usize = 100;
const SEEDS: u64 = 50;

async fn handle(request: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    let path = request.uri().path().to_string();
    let body = match request.into_body().collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => Bytes::new(),
    };
    let mut reply = path.into_bytes();
    reply.extend_from_slice(b":");
    reply.extend_from_slice(&body);
    Ok(Response::new(Full::new(Bytes::from(reply))))
}

async fn server(providers: SimProviders) {
    let Ok(listener) = providers.network().bind("10.0.0.2:8080").await else {
        return;
    };
    while let Ok((stream, _)) = listener.accept().await {
        drop(providers.task().spawn("http-connection", async move {
            let _ = hyper::server::conn::http1::Builder::new()
                .auto_date_header(false)
                .serve_connection(TokioIo::new(stream), service_fn(handle))
                .await;
        }));
    }
}

type Sender = hyper::client::conn::http1::SendRequest<Full<Bytes>>;

async fn connect(providers: &SimProviders) -> Option<Sender> {
    let stream = providers.network().connect("10.0.0.2:8080").await.ok()?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .ok()?;
    drop(
        providers
            .task()
            .spawn("http-client-connection", async move {
                let _ = connection.await;
            }),
    );
    Some(sender)
}

/// Sends REQUESTS requests, reconnecting after any failure; returns (successes, retries).
async fn client(providers: SimProviders) -> (usize, usize) {
    providers.time().sleep(Duration::from_millis(1)).await;
    let mut sender: Option<Sender> = None;
    let mut ok = 0;
    let mut retries = 0;
    for i in 0..REQUESTS {
        loop {
            if sender.is_none() {
                sender = providers
                    .time()
                    .timeout(Duration::from_secs(2), connect(&providers))
                    .await
                    .ok()
                    .flatten();
            }
            let Some(current) = sender.as_mut() else {
                retries += 1;
                providers.time().sleep(Duration::from_millis(100)).await;
                continue;
            };
            let body = format!("request-{i}");
            let request = Request::post(format!("/echo/{i}"))
                .header("host", "10.0.0.2")
                .body(Full::new(Bytes::from(body.clone())))
                .unwrap();
            let attempt = providers
                .time()
                .timeout(Duration::from_secs(2), async {
                    let response = current.send_request(request).await.ok()?;
                    let bytes = response.into_body().collect().await.ok()?.to_bytes();
                    Some(bytes)
                })
                .await;
            match attempt {
                Ok(Some(bytes)) if bytes == format!("/echo/{i}:{body}").as_bytes() => {
                    ok += 1;
                    break;
                }
                _ => {
                    // Broken, corrupted or stuck: drop the connection and try again.
                    sender = None;
                    retries += 1;
                }
            }
        }
    }
    (ok, retries)
}

fn run(seed: u64) -> (RunSummary, usize, usize) {
    let mut network = NetworkConfiguration::default();
    network.random_close_probability = 0.002;
    network.random_close_cooldown = Duration::from_millis(200);
    network.clog_probability = 0.01;
    network.bit_flip_probability = 0.002;
    let config = {
        let mut cfg = WorldConfig::default();
        cfg.network = network;
        cfg
    };
    let mut world = SimWorld::with_config(seed, config).unwrap();
    world
        .add_process("server", "10.0.0.2", Locality::default(), |ctx| {
            server(ctx.providers)
        })
        .unwrap();
    let result = std::sync::Arc::new(std::sync::Mutex::new((0, 0)));
    let slot = std::sync::Arc::clone(&result);
    world
        .add_workload("client", "10.0.0.1", move |providers| async move {
            let outcome = client(providers).await;
            *slot.lock().unwrap() = outcome;
        })
        .unwrap();
    let summary = world.run().unwrap_or_else(|e| panic!("{e}"));
    let (ok, retries) = *result.lock().unwrap();
    (summary, ok, retries)
}

#[test]
fn test_hyper_client_and_server_over_simulated_tcp_with_chaos() {
    let mut retries_total = 0;
    let mut faults_total = 0;
    for seed in 0..SEEDS {
        let (summary, ok, retries) = run(seed);
        assert_eq!(
            ok, REQUESTS,
            "seed {seed}: every request eventually answered correctly"
        );
        retries_total += retries;
        faults_total += summary.faults.values().sum::<u64>();
    }
    assert!(faults_total > 0, "chaos fired");
    assert!(
        retries_total > 0,
        "chaos forced some retries ({faults_total} faults)"
    );
}

#[test]
fn test_hyper_run_is_deterministic() {
    for seed in [3, 17] {
        assert_eq!(run(seed), run(seed), "seed {seed}");
    }
}
