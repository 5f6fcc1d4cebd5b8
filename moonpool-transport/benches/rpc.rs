//! RPC benchmarks that print their figures (run in release):
//!
//! ```sh
//! cargo bench -p moonpool-transport --bench rpc
//! ```
//!
//! 0. `#[service]` against hand-written `RequestStream` code on the same workloads, interleaved
//!    in one run (in alternating order): the simulated ping-pong shape of 3. (both codecs) and
//!    loopback TCP one request at a time; the simulated figures also in CPU time of the
//!    simulation's thread (it runs on one thread, so its CPU time does not count the time other
//!    processes held the core), the loopback ones in CPU time of the whole process.
//!    `-- service-only` prints only these; `-- profile-raw` / `-- profile-service` run one
//!    simulated side alone, for `perf`; `-- profile-json` / `-- profile-binary` run the
//!    hand-written side with one codec only (200,000 round trips), for per-codec counts.
//! 1. Loopback TCP on Tokio, one request at a time (`get_reply`, 16-byte JSON request).
//! 2. Loopback TCP on Tokio, 64 requests in flight.
//! 3. Simulation, the shape of moonpool-sim's ping-pong benchmark: 1 server, 10 clients, 1,000
//!    sequential RPCs each, fixed 1 ms latency, no faults, with the JSON codec and with the binary
//!    one; next to the same shape with raw frames echoed over simulated TCP (no transport), for
//!    the ratio; and next to a minimal hand-written RPC over the same simulated streams (framing,
//!    checksum, JSON, a reply map and a request queue, nothing else), which shows how much of the
//!    ratio any RPC layer on this engine pays before doing anything a real transport must do.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::time::{Duration, Instant};

use futures::StreamExt;
use futures::stream::FuturesUnordered;
use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::task::{Poll, Waker};

use moonpool_core::{
    BinaryCodec, Endpoint, JsonCodec, MessageCodec, NetworkAddress, NetworkProvider, Providers,
    TaskProvider, TcpListener, TimeProvider, TokioProviders, UID,
};
use moonpool_sim::{Locality, NetworkConfiguration, SimProviders, SimWorld, WorldConfig};
use moonpool_transport::{NetTransport, NetTransportBuilder, service};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const TOKEN: UID = UID::well_known(3);

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq)]
struct Request {
    seq: u64,
}

async fn start_server<P: Providers, C: MessageCodec>(
    providers: P,
    address: &str,
    codec: C,
) -> NetTransport<C> {
    let transport = NetTransportBuilder::new(providers.clone())
        .codec(codec)
        .local_address(address.parse().unwrap())
        .build_listening()
        .await
        .unwrap();
    let stream = transport.register_stream_at::<Request, u64>(TOKEN).unwrap();
    providers.task().spawn("server", async move {
        while let Some((request, reply)) = stream.recv().await {
            reply.send(request.seq);
        }
    });
    transport
}

/// The benchmark's echo as a `#[service]`.
#[service]
pub trait Bench {
    async fn echo(&self, seq: u64) -> u64;
}

struct Echo;

impl Bench for Echo {
    async fn echo(&self, seq: u64) -> u64 {
        seq
    }
}

/// The fixed base the generated server serves at, so that clients know it.
const BENCH_BASE: UID = UID::new(0xBE4C, 1);

/// A listening transport serving `Bench` at `BENCH_BASE`; the handle keeps it served.
async fn start_service<P: Providers, C: MessageCodec>(
    providers: P,
    address: &str,
    codec: C,
) -> (NetTransport<C>, BenchServer) {
    let transport = NetTransportBuilder::new(providers)
        .codec(codec)
        .local_address(address.parse().unwrap())
        .build_listening()
        .await
        .unwrap();
    let server = BenchServer::serve_at(&transport, BENCH_BASE, Echo).unwrap();
    (transport, server)
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// Runs `future` as a task on a 2-worker runtime (not on the `block_on` thread, which is not a
/// worker: every wake-up would cross threads).
fn on_runtime<T: Send + 'static, F: std::future::Future<Output = T> + Send + 'static>(
    future: F,
) -> T {
    runtime().block_on(async { tokio::spawn(future).await.unwrap() })
}

fn loopback_sequential(round_trips: u64) -> f64 {
    let (wall, _) = loopback_sequential_timed(round_trips);
    round_trips as f64 / wall.as_secs_f64()
}

/// (wall time, CPU time of the whole process) of `round_trips` sequential hand-written
/// `get_reply`s over loopback TCP, after 1,000 to warm up.
fn loopback_sequential_timed(round_trips: u64) -> (Duration, Duration) {
    on_runtime(async move {
        let providers = TokioProviders::new();
        let server = start_server(providers.clone(), "127.0.0.1:0", JsonCodec).await;
        let address = server.local_address().unwrap();
        let client = NetTransportBuilder::new(providers).build().unwrap();
        let rpc = client.client::<Request, u64>(Endpoint::new(address, TOKEN));
        for seq in 0..1_000 {
            rpc.get_reply(&Request { seq }).await.unwrap();
        }
        let (start, cpu) = (Instant::now(), process_cpu_time());
        for seq in 0..round_trips {
            assert_eq!(rpc.get_reply(&Request { seq }).await.unwrap(), seq);
        }
        (start.elapsed(), process_cpu_time() - cpu)
    })
}

/// `loopback_sequential_timed` with the `#[service]` client and server.
fn loopback_sequential_service(round_trips: u64) -> (Duration, Duration) {
    on_runtime(async move {
        let providers = TokioProviders::new();
        let (server, _serving) = start_service(providers.clone(), "127.0.0.1:0", JsonCodec).await;
        let address = server.local_address().unwrap();
        let client = NetTransportBuilder::new(providers).build().unwrap();
        let bench = BenchClient::new(Endpoint::new(address, BENCH_BASE));
        for seq in 0..1_000 {
            bench.echo(&client, seq).get_reply().await.unwrap();
        }
        let (start, cpu) = (Instant::now(), process_cpu_time());
        for seq in 0..round_trips {
            assert_eq!(bench.echo(&client, seq).get_reply().await.unwrap(), seq);
        }
        (start.elapsed(), process_cpu_time() - cpu)
    })
}

fn loopback_pipelined(round_trips: u64, in_flight: usize) -> f64 {
    on_runtime(async move {
        let providers = TokioProviders::new();
        let server = start_server(providers.clone(), "127.0.0.1:0", JsonCodec).await;
        let address: NetworkAddress = server.local_address().unwrap();
        let client = NetTransportBuilder::new(providers).build().unwrap();
        let rpc = client.client::<Request, u64>(Endpoint::new(address, TOKEN));
        let start = Instant::now();
        let mut pending = FuturesUnordered::new();
        let mut sent = 0u64;
        let mut done = 0u64;
        while done < round_trips {
            while pending.len() < in_flight && sent < round_trips {
                pending.push(rpc.get_reply(&Request { seq: sent }));
                sent += 1;
            }
            if let Some(result) = pending.next().await {
                result.unwrap();
                done += 1;
            }
        }
        let rate = round_trips as f64 / start.elapsed().as_secs_f64();
        assert_eq!(client.metrics().pending_replies, 0);
        rate
    })
}

fn sim_config() -> WorldConfig {
    let mut cfg = WorldConfig::quiet();
    cfg.network = NetworkConfiguration::with_fixed_latency(Duration::from_millis(1));
    cfg.time_budget = Duration::from_secs(1_000_000);
    cfg
}

const SIM_CLIENTS: u32 = 10;
const SIM_ROUND_TRIPS: u64 = 1_000;
/// Runs of each simulation figure (the median is reported).
const SIM_RUNS: usize = 21;

fn client_ip(c: u32) -> String {
    format!("10.0.1.{}", c + 1)
}

/// (wall time, events, task polls) of one simulated RPC ping-pong run with `codec`.
fn sim_rpc_once<C: MessageCodec>(codec: C) -> (Duration, u64, u64) {
    let mut world = SimWorld::with_config(1, sim_config()).unwrap();
    world
        .add_process("server", "10.0.0.1", Locality::default(), {
            let codec = codec.clone();
            move |ctx| {
                let codec = codec.clone();
                async move {
                    let _server = start_server(ctx.providers.clone(), "10.0.0.1:4500", codec).await;
                    std::future::pending::<()>().await;
                }
            }
        })
        .unwrap();
    for c in 0..SIM_CLIENTS {
        let codec = codec.clone();
        world
            .add_workload(
                &format!("client-{c}"),
                &client_ip(c),
                move |p: SimProviders| async move {
                    p.time().sleep(Duration::from_millis(1)).await;
                    let client = NetTransportBuilder::new(p).codec(codec).build().unwrap();
                    let rpc = client.client::<Request, u64>(Endpoint::new(
                        "10.0.0.1:4500".parse().unwrap(),
                        TOKEN,
                    ));
                    for seq in 0..SIM_ROUND_TRIPS {
                        assert_eq!(rpc.get_reply(&Request { seq }).await.unwrap(), seq);
                    }
                },
            )
            .unwrap();
    }
    let start = Instant::now();
    let summary = world.run().unwrap();
    (start.elapsed(), summary.events, summary.polls)
}

/// The CPU time of the calling thread so far (`CLOCK_THREAD_CPUTIME_ID`), or zero where that
/// clock is not known. A simulated world runs on one thread, so this is its CPU time, not
/// counting the time other processes of the machine held the core.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn thread_cpu_time() -> Duration {
    cpu_clock(3)
}

/// `clock_gettime(clock)` (3: `CLOCK_THREAD_CPUTIME_ID`, 2: `CLOCK_PROCESS_CPUTIME_ID`), or
/// zero if it fails.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn cpu_clock(clock: i32) -> Duration {
    #[repr(C)]
    struct Timespec {
        seconds: i64,
        nanoseconds: i64,
    }
    unsafe extern "C" {
        fn clock_gettime(clock: i32, time: *mut Timespec) -> i32;
    }
    let mut time = Timespec {
        seconds: 0,
        nanoseconds: 0,
    };
    // SAFETY: `time` is a valid, writable timespec for the duration of the call.
    let status = unsafe { clock_gettime(clock, &mut time) };
    if status != 0 {
        return Duration::ZERO;
    }
    Duration::new(time.seconds as u64, time.nanoseconds as u32)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn thread_cpu_time() -> Duration {
    Duration::ZERO
}

/// The CPU time of the whole process so far (`CLOCK_PROCESS_CPUTIME_ID`: every thread, so both
/// transports and the runtime's workers), or zero where that clock is not known.
#[cfg(all(target_os = "linux", target_pointer_width = "64"))]
fn process_cpu_time() -> Duration {
    cpu_clock(2)
}

#[cfg(not(all(target_os = "linux", target_pointer_width = "64")))]
fn process_cpu_time() -> Duration {
    Duration::ZERO
}

/// (wall time, thread CPU time, events, task polls) of one simulated run of the ping-pong shape
/// with the `#[service]` client and server and `codec`.
fn sim_service_once<C: MessageCodec>(codec: C) -> (Duration, Duration, u64, u64) {
    let mut world = SimWorld::with_config(1, sim_config()).unwrap();
    world
        .add_process("server", "10.0.0.1", Locality::default(), {
            let codec = codec.clone();
            move |ctx| {
                let codec = codec.clone();
                async move {
                    let _server =
                        start_service(ctx.providers.clone(), "10.0.0.1:4500", codec).await;
                    std::future::pending::<()>().await;
                }
            }
        })
        .unwrap();
    for c in 0..SIM_CLIENTS {
        let codec = codec.clone();
        world
            .add_workload(
                &format!("client-{c}"),
                &client_ip(c),
                move |p: SimProviders| async move {
                    p.time().sleep(Duration::from_millis(1)).await;
                    let client = NetTransportBuilder::new(p).codec(codec).build().unwrap();
                    let bench = BenchClient::new(Endpoint::new(
                        "10.0.0.1:4500".parse().unwrap(),
                        BENCH_BASE,
                    ));
                    for seq in 0..SIM_ROUND_TRIPS {
                        assert_eq!(bench.echo(&client, seq).get_reply().await.unwrap(), seq);
                    }
                },
            )
            .unwrap();
    }
    let start = Instant::now();
    let cpu = thread_cpu_time();
    let summary = world.run().unwrap();
    (
        start.elapsed(),
        thread_cpu_time() - cpu,
        summary.events,
        summary.polls,
    )
}

/// `sim_rpc_once` with the thread's CPU time too.
fn sim_rpc_timed<C: MessageCodec>(codec: C) -> (Duration, Duration, u64, u64) {
    let cpu = thread_cpu_time();
    let (wall, events, polls) = sim_rpc_once(codec);
    (wall, thread_cpu_time() - cpu, events, polls)
}

/// The same shape with raw 64-byte frames echoed over simulated TCP, as moonpool-sim's bench.
fn sim_raw_once() -> (Duration, u64, u64) {
    const PAYLOAD: usize = 64;
    let mut world = SimWorld::with_config(1, sim_config()).unwrap();
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                let p = ctx.providers;
                let listener = p.network().bind("10.0.0.1:4500").await.unwrap();
                while let Ok((mut stream, _)) = listener.accept().await {
                    p.task().spawn("echo", async move {
                        let mut frame = vec![0u8; 4 + PAYLOAD];
                        while stream.read_exact(&mut frame).await.is_ok() {
                            if stream.write_all(&frame).await.is_err() {
                                return;
                            }
                        }
                    });
                }
            },
        )
        .unwrap();
    for c in 0..SIM_CLIENTS {
        world
            .add_workload(
                &format!("client-{c}"),
                &client_ip(c),
                |p: SimProviders| async move {
                    p.time().sleep(Duration::from_millis(1)).await;
                    let mut stream = p.network().connect("10.0.0.1:4500").await.unwrap();
                    let frame = vec![7u8; 4 + PAYLOAD];
                    let mut reply = vec![0u8; 4 + PAYLOAD];
                    for _ in 0..SIM_ROUND_TRIPS {
                        stream.write_all(&frame).await.unwrap();
                        stream.read_exact(&mut reply).await.unwrap();
                    }
                },
            )
            .unwrap();
    }
    let start = Instant::now();
    let summary = world.run().unwrap();
    (start.elapsed(), summary.events, summary.polls)
}

/// The smallest RPC layer worth the name over the same simulated streams, written for this
/// benchmark only: length + crc32c + reply-token frames, JSON bodies, a reply map of one-shot
/// channels, a request queue between the connection's reader task and the handler task, so four
/// task polls per round trip as in the transport. No reliability, reconnection, failure
/// detection, bounds, metrics or error replies. It measures what an RPC costs on this engine
/// before it does anything a real transport must do.
mod minimal {
    use super::*;

    /// A request queue: the reader pushes, the handler waits.
    struct Queue<T> {
        items: VecDeque<T>,
        waiter: Option<Waker>,
    }

    type Shared<T> = Arc<Mutex<Queue<T>>>;

    fn push<T>(queue: &Shared<T>, item: T) {
        let waiter = {
            let mut queue = queue.lock().unwrap();
            queue.items.push_back(item);
            queue.waiter.take()
        };
        if let Some(waiter) = waiter {
            waiter.wake();
        }
    }

    async fn pop<T>(queue: &Shared<T>) -> T {
        std::future::poll_fn(|cx| {
            let mut queue = queue.lock().unwrap();
            match queue.items.pop_front() {
                Some(item) => Poll::Ready(item),
                None => {
                    queue.waiter = Some(cx.waker().clone());
                    Poll::Pending
                }
            }
        })
        .await
    }

    /// `[len u32][crc32c u32][token u64][body]`.
    fn encode(token: u64, body: &[u8], out: &mut Vec<u8>) {
        out.clear();
        out.extend_from_slice(&((12 + body.len()) as u32).to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(body).to_le_bytes());
        out.extend_from_slice(&token.to_le_bytes());
        out.extend_from_slice(body);
    }

    async fn read_frame<R: tokio::io::AsyncBufRead + Unpin>(
        reader: &mut R,
        body: &mut Vec<u8>,
    ) -> Option<u64> {
        let mut header = [0u8; 16];
        reader.read_exact(&mut header).await.ok()?;
        let len = u32::from_le_bytes(header[0..4].try_into().unwrap()) as usize - 12;
        let token = u64::from_le_bytes(header[8..16].try_into().unwrap());
        body.resize(len, 0);
        reader.read_exact(body).await.ok()?;
        assert_eq!(
            crc32c::crc32c(body),
            u32::from_le_bytes(header[4..8].try_into().unwrap())
        );
        Some(token)
    }

    pub(super) fn once<C: MessageCodec>(codec: C) -> (Duration, u64, u64) {
        let mut world = SimWorld::with_config(1, sim_config()).unwrap();
        world
            .add_process("server", "10.0.0.1", Locality::default(), {
                let codec = codec.clone();
                move |ctx| {
                    let codec = codec.clone();
                    async move {
                        let p = ctx.providers;
                        let listener = p.network().bind("10.0.0.1:4500").await.unwrap();
                        while let Ok((stream, _)) = listener.accept().await {
                            let (reader, writer) = tokio::io::split(stream);
                            let mut reader = tokio::io::BufReader::new(reader);
                            let writer = Arc::new(Mutex::new(writer));
                            let requests: Shared<(u64, Request)> = Arc::new(Mutex::new(Queue {
                                items: VecDeque::new(),
                                waiter: None,
                            }));
                            let handler_requests = Arc::clone(&requests);
                            let (reader_codec, codec) = (codec.clone(), codec.clone());
                            p.task().spawn("reader", async move {
                                let mut body = Vec::new();
                                while let Some(token) = read_frame(&mut reader, &mut body).await {
                                    push(&requests, (token, reader_codec.decode(&body).unwrap()));
                                }
                            });
                            p.task().spawn("handler", async move {
                                let mut frame = Vec::new();
                                loop {
                                    let (token, request) = pop(&handler_requests).await;
                                    let body = codec.encode(&request.seq).unwrap();
                                    encode(token, &body, &mut frame);
                                    // Written without awaiting, as the transport's direct replies.
                                    let mut writer = writer.lock().unwrap();
                                    let mut cx = std::task::Context::from_waker(Waker::noop());
                                    let written = tokio::io::AsyncWrite::poll_write(
                                        std::pin::Pin::new(&mut *writer),
                                        &mut cx,
                                        &frame,
                                    );
                                    assert!(
                                        matches!(written, Poll::Ready(Ok(n)) if n == frame.len())
                                    );
                                }
                            });
                        }
                    }
                }
            })
            .unwrap();
        for c in 0..SIM_CLIENTS {
            let codec = codec.clone();
            world
                .add_workload(
                    &format!("client-{c}"),
                    &client_ip(c),
                    move |p: SimProviders| async move {
                        p.time().sleep(Duration::from_millis(1)).await;
                        let stream = p.network().connect("10.0.0.1:4500").await.unwrap();
                        let (reader, mut writer) = tokio::io::split(stream);
                        let mut reader = tokio::io::BufReader::new(reader);
                        type Replies = BTreeMap<u64, tokio::sync::oneshot::Sender<Vec<u8>>>;
                        let replies: Arc<Mutex<Replies>> = Arc::default();
                        let reader_replies = Arc::clone(&replies);
                        p.task().spawn("reader", async move {
                            let mut body = Vec::new();
                            while let Some(token) = read_frame(&mut reader, &mut body).await {
                                let sender = reader_replies.lock().unwrap().remove(&token);
                                if let Some(sender) = sender {
                                    let _ = sender.send(body.clone());
                                }
                            }
                        });
                        let mut frame = Vec::new();
                        for seq in 0..SIM_ROUND_TRIPS {
                            let body = codec.encode(&Request { seq }).unwrap();
                            let (sender, receiver) = tokio::sync::oneshot::channel();
                            replies.lock().unwrap().insert(seq, sender);
                            encode(seq, &body, &mut frame);
                            writer.write_all(&frame).await.unwrap();
                            let reply: u64 = codec.decode(&receiver.await.unwrap()).unwrap();
                            assert_eq!(reply, seq);
                        }
                    },
                )
                .unwrap();
        }
        let start = Instant::now();
        let summary = world.run().unwrap();
        (start.elapsed(), summary.events, summary.polls)
    }
}

fn median(mut runs: Vec<(Duration, u64, u64)>) -> (Duration, u64, u64) {
    runs.sort_by_key(|run| run.0);
    runs[runs.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` runs this once, quickly.
    let quick = !std::env::args().any(|a| a == "--bench");
    let scale = if quick { 100 } else { 1 };
    // `cargo bench -p moonpool-transport --bench rpc -- sim-only` skips the loopback figures
    // (for profiling the simulated path).
    let sim_only = std::env::args().any(|a| a == "sim-only");
    // `-- service-only` prints only the `#[service]` comparison.
    let service_only = std::env::args().any(|a| a == "service-only");
    // `-- profile-raw` / `-- profile-service`: only that simulated variant, 20 times, for
    // `perf stat` / `perf record` of one side of the comparison.
    // `-- profile-json` / `-- profile-binary`: the hand-written side with one codec only, 20
    // times, for `valgrind --tool=callgrind` counts per codec.
    for (flag, json) in [("profile-json", true), ("profile-binary", false)] {
        if std::env::args().any(|a| a == flag) {
            for _ in 0..20 {
                if json {
                    sim_rpc_timed(JsonCodec);
                } else {
                    sim_rpc_timed(BinaryCodec);
                }
            }
            return;
        }
    }
    for (flag, service) in [("profile-raw", false), ("profile-service", true)] {
        if std::env::args().any(|a| a == flag) {
            for _ in 0..20 {
                if service {
                    sim_service_once(JsonCodec);
                    sim_service_once(BinaryCodec);
                } else {
                    sim_rpc_timed(JsonCodec);
                    sim_rpc_timed(BinaryCodec);
                }
            }
            return;
        }
    }
    service_figures(quick, sim_only);
    if service_only {
        return;
    }
    if !sim_only {
        loopback_figures(scale);
    }
    if quick {
        return;
    }
    simulation_figures();
}

/// `#[service]` against the hand-written `RequestStream` code, interleaved.
fn service_figures(quick: bool, sim_only: bool) {
    let runs = if quick { 1 } else { 41 };
    let total = u64::from(SIM_CLIENTS) * SIM_ROUND_TRIPS;
    let mut sim: [Vec<(Duration, Duration, u64, u64)>; 4] = Default::default();
    // Interleaved, and in the opposite order every other round (hand-written first, then
    // `#[service]` first), so that neither side always runs right after the other.
    for round in 0..runs {
        for codec in 0..2 {
            for generated in [round % 2 == 1, round % 2 == 0] {
                let run = match (codec, generated) {
                    (0, false) => sim_rpc_timed(JsonCodec),
                    (0, true) => sim_service_once(JsonCodec),
                    (_, false) => sim_rpc_timed(BinaryCodec),
                    (_, true) => sim_service_once(BinaryCodec),
                };
                sim[codec * 2 + usize::from(generated)].push(run);
            }
        }
    }
    let median_by = |runs: &[(Duration, Duration, u64, u64)],
                     key: fn(&(Duration, Duration, u64, u64)) -> Duration| {
        let mut values: Vec<Duration> = runs.iter().map(key).collect();
        values.sort();
        values[values.len() / 2]
    };
    println!(
        "#[service] vs hand-written RequestStream, simulation ({SIM_CLIENTS} clients x \
         {SIM_ROUND_TRIPS} sequential get_reply, 1 ms latency, no faults), median of {runs}, \
         interleaved in alternating order (wall, and CPU time of the simulation's thread):"
    );
    for (codec, raw, generated) in [
        ("JsonCodec", &sim[0], &sim[1]),
        ("BinaryCodec", &sim[2], &sim[3]),
    ] {
        let (raw_wall, raw_cpu) = (median_by(raw, |r| r.0), median_by(raw, |r| r.1));
        let (gen_wall, gen_cpu) = (median_by(generated, |r| r.0), median_by(generated, |r| r.1));
        let rate = |d: Duration| total as f64 / d.as_secs_f64();
        let ns = |d: Duration| d.as_nanos() as f64 / total as f64;
        println!(
            "  {codec:<12} hand-written {:>9.0}/s wall ({:>5.0} ns), {:>9.0}/s CPU ({:>5.0} ns); \
             #[service] {:>9.0}/s wall ({:>5.0} ns), {:>9.0}/s CPU ({:>5.0} ns); overhead \
             {:+.1}% wall, {:+.1}% CPU (task polls {} vs {}, events {} vs {})",
            rate(raw_wall),
            ns(raw_wall),
            rate(raw_cpu),
            ns(raw_cpu),
            rate(gen_wall),
            ns(gen_wall),
            rate(gen_cpu),
            ns(gen_cpu),
            (gen_wall.as_secs_f64() / raw_wall.as_secs_f64() - 1.0) * 100.0,
            (gen_cpu.as_secs_f64() / raw_cpu.as_secs_f64() - 1.0) * 100.0,
            raw[0].3,
            generated[0].3,
            raw[0].2,
            generated[0].2,
        );
    }
    if sim_only {
        return;
    }
    let (round_trips, runs) = if quick { (300, 1) } else { (30_000, 9) };
    let mut raw = Vec::new();
    let mut generated = Vec::new();
    for round in 0..runs {
        if round % 2 == 0 {
            raw.push(loopback_sequential_timed(round_trips));
            generated.push(loopback_sequential_service(round_trips));
        } else {
            generated.push(loopback_sequential_service(round_trips));
            raw.push(loopback_sequential_timed(round_trips));
        }
    }
    let pick = |runs: &[(Duration, Duration)], key: fn(&(Duration, Duration)) -> Duration| {
        let mut values: Vec<Duration> = runs.iter().map(key).collect();
        values.sort();
        values[values.len() / 2]
    };
    let rate = |d: Duration| round_trips as f64 / d.as_secs_f64();
    let (raw_wall, raw_cpu) = (pick(&raw, |r| r.0), pick(&raw, |r| r.1));
    let (gen_wall, gen_cpu) = (pick(&generated, |r| r.0), pick(&generated, |r| r.1));
    println!(
        "#[service] vs hand-written RequestStream, loopback TCP, {round_trips} sequential \
         get_reply, median of {runs}, interleaved in alternating order (wall, and CPU time of \
         the whole process):\n  \
         JsonCodec    hand-written {:>9.0}/s wall, {:>9.0}/s CPU; #[service] {:>9.0}/s wall, \
         {:>9.0}/s CPU; overhead {:+.1}% wall, {:+.1}% CPU",
        rate(raw_wall),
        rate(raw_cpu),
        rate(gen_wall),
        rate(gen_cpu),
        (gen_wall.as_secs_f64() / raw_wall.as_secs_f64() - 1.0) * 100.0,
        (gen_cpu.as_secs_f64() / raw_cpu.as_secs_f64() - 1.0) * 100.0,
    );
}

fn loopback_figures(scale: u64) {
    let sequential: Vec<f64> = (0..3)
        .map(|_| loopback_sequential(30_000 / scale))
        .collect();
    let best = sequential.iter().copied().fold(0.0, f64::max);
    println!(
        "loopback TCP, 1 in flight: {:.0} round trips/s (best of 3; runs: {:.0?})",
        best, sequential
    );
    let pipelined: Vec<f64> = (0..3)
        .map(|_| loopback_pipelined(300_000 / scale, 64))
        .collect();
    let best = pipelined.iter().copied().fold(0.0, f64::max);
    println!(
        "loopback TCP, 64 in flight: {:.0} round trips/s (best of 3; runs: {:.0?})",
        best, pipelined
    );
}

fn simulation_figures() {
    let total = u64::from(SIM_CLIENTS) * SIM_ROUND_TRIPS;
    let rate = |(wall, _, _): (Duration, u64, u64)| total as f64 / wall.as_secs_f64();
    // Interleaved, so that a slow spell of the machine hits every figure alike.
    let mut runs: [Vec<(Duration, u64, u64)>; 5] = Default::default();
    for _ in 0..SIM_RUNS {
        runs[0].push(sim_raw_once());
        runs[1].push(minimal::once(JsonCodec));
        runs[2].push(minimal::once(BinaryCodec));
        runs[3].push(sim_rpc_once(JsonCodec));
        runs[4].push(sim_rpc_once(BinaryCodec));
    }
    let [raw, minimal_json, minimal_binary, json, binary] = runs.map(median);
    let raw_rate = rate(raw);
    println!(
        "simulation, {SIM_CLIENTS} clients x {SIM_ROUND_TRIPS} sequential round trips, 1 ms latency, \
         no faults, median of {SIM_RUNS}:"
    );
    for (name, run) in [
        ("raw 64-byte frames, no transport", raw),
        ("minimal hand-written RPC, JsonCodec", minimal_json),
        ("minimal hand-written RPC, BinaryCodec", minimal_binary),
        ("moonpool-transport get_reply, JsonCodec", json),
        ("moonpool-transport get_reply, BinaryCodec", binary),
    ] {
        println!(
            "  {name:<44} {:>9.0} round trips/s  {:>5.0} ns each  {:.2}x raw  ({} events, {} task polls)",
            rate(run),
            run.0.as_nanos() as f64 / total as f64,
            raw_rate / rate(run),
            run.1,
            run.2
        );
    }
}
