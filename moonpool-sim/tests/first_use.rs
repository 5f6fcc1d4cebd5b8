#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! What a first user relies on without reading the source: a server that binds at boot is up
//! before any workload connects.

use std::time::Duration;

use moonpool_core::{NetworkProvider, Providers, TcpListener, TimeProvider};
use moonpool_sim::{Locality, NetworkConfiguration, SimWorld, WorldConfig};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A server that binds at once and echoes one byte per connection.
async fn echo_once<P: Providers>(providers: P) {
    let Ok(listener) = providers.network().bind("10.0.0.1:4500").await else {
        return;
    };
    while let Ok((mut stream, _)) = listener.accept().await {
        let mut byte = [0u8; 1];
        if stream.read_exact(&mut byte).await.is_ok() {
            let _ = stream.write_all(&byte).await;
        }
    }
}

/// One seed: a server and a workload connecting at time zero, without retrying.
fn connect_at_time_zero(seed: u64, config: WorldConfig) -> Result<(), String> {
    let mut world = SimWorld::with_config(seed, config).map_err(|e| e.to_string())?;
    world
        .add_process("server", "10.0.0.1", Locality::default(), |ctx| {
            echo_once(ctx.providers)
        })
        .map_err(|e| e.to_string())?;
    let outcome = std::sync::Arc::new(std::sync::Mutex::new(None));
    let slot = std::sync::Arc::clone(&outcome);
    world
        .add_workload("client", "10.0.0.2", move |providers| async move {
            assert_eq!(providers.time().now(), Duration::ZERO);
            let result = async {
                let mut stream = providers.network().connect("10.0.0.1:4500").await?;
                stream.write_all(&[7]).await?;
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).await?;
                Ok::<u8, std::io::Error>(byte[0])
            }
            .await;
            *slot.lock().unwrap() = Some(result.map_err(|e| e.to_string()));
        })
        .map_err(|e| e.to_string())?;
    world.run().map_err(|e| e.to_string())?;
    match outcome.lock().unwrap().take() {
        Some(Ok(7)) => Ok(()),
        other => Err(format!("seed {seed}: {other:?}")),
    }
}

#[test]
fn test_server_bound_at_boot_accepts_a_connect_at_time_zero_in_every_seed() {
    let failures: Vec<String> = (0..400)
        .filter_map(|seed| connect_at_time_zero(seed, WorldConfig::quiet()).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} refused: {failures:?}",
        failures.len()
    );
}

#[test]
fn test_boot_guarantee_holds_with_zero_latency_everywhere() {
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.network = NetworkConfiguration::with_fixed_latency(Duration::ZERO);
        cfg
    };
    let failures: Vec<String> = (0..400)
        .filter_map(|seed| connect_at_time_zero(seed, config.clone()).err())
        .collect();
    assert!(
        failures.is_empty(),
        "{} refused: {failures:?}",
        failures.len()
    );
}

#[test]
fn test_server_spawned_listener_is_up_before_workloads() {
    // The body spawns the listener task and returns: the spawned task also runs before any
    // workload code.
    for seed in 0..200 {
        let mut world = SimWorld::with_config(seed, WorldConfig::quiet()).unwrap();
        world
            .add_process(
                "server",
                "10.0.0.1",
                Locality::default(),
                |ctx| async move {
                    let providers = ctx.providers.clone();
                    use moonpool_core::TaskProvider;
                    drop(
                        ctx.providers
                            .task()
                            .spawn("listener", async move { echo_once(providers).await }),
                    );
                },
            )
            .unwrap();
        world
            .add_workload("client", "10.0.0.2", |providers| async move {
                let stream = providers.network().connect("10.0.0.1:4500").await;
                assert!(stream.is_ok(), "seed refused: {:?}", stream.err());
            })
            .unwrap();
        world.run().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
}

/// The same guarantee through `SimulationBuilder`, with a zero-latency network.
#[test]
fn test_builder_server_is_up_for_a_workload_at_time_zero() {
    use moonpool_sim::{IterationControl, SimulationBuilder};
    let report = SimulationBuilder::new("first-use-boot")
        .network(NetworkConfiguration::with_fixed_latency(Duration::ZERO))
        .process("server", 1, |ctx| echo_once(ctx.providers))
        .workload("client", 1, |ctx| async move {
            let mut stream = ctx
                .providers
                .network()
                .connect("10.0.0.1:4500")
                .await
                .map_err(|e| format!("connect at {:?}: {e}", ctx.providers.time().now()))?;
            stream.write_all(&[7]).await.map_err(|e| e.to_string())?;
            Ok(())
        })
        .iterations(IterationControl::FixedCount(300))
        .run()
        .unwrap();
    assert_eq!(report.failed(), 0, "{report}");
}

/// A server that reads its data file before it binds (a store recovering at boot).
async fn recover_then_serve<P: Providers>(providers: P) {
    use moonpool_core::{OpenOptions, StorageFile, StorageProvider};
    let Ok(mut file) = providers
        .storage()
        .open("data", OpenOptions::read_write_create())
        .await
    else {
        return;
    };
    let mut contents = Vec::new();
    if file.read_to_end(&mut contents).await.is_err() || file.size().await.is_err() {
        return;
    }
    echo_once(providers).await;
}

#[test]
fn test_server_recovering_with_zero_latency_storage_is_up_before_workloads() {
    use moonpool_sim::StorageConfiguration;
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.network = NetworkConfiguration::with_fixed_latency(Duration::ZERO);
        cfg.storage = StorageConfiguration::with_fixed_latency(Duration::ZERO);
        cfg
    };
    let failures: Vec<String> = (0..400)
        .filter_map(|seed| {
            let mut world = SimWorld::with_config(seed, config.clone()).unwrap();
            world
                .add_process("server", "10.0.0.1", Locality::default(), |ctx| {
                    recover_then_serve(ctx.providers)
                })
                .unwrap();
            let refused = std::sync::Arc::new(std::sync::Mutex::new(None));
            let slot = std::sync::Arc::clone(&refused);
            world
                .add_workload("client", "10.0.0.2", move |providers| async move {
                    if let Err(e) = providers.network().connect("10.0.0.1:4500").await {
                        *slot.lock().unwrap() = Some(format!("seed {seed}: {e}"));
                    }
                })
                .unwrap();
            world.run().unwrap();
            refused.lock().unwrap().take()
        })
        .collect();
    assert!(
        failures.is_empty(),
        "{} refused: {failures:?}",
        failures.len()
    );
}

/// A `MakeWriter` collecting every log line.
#[derive(Clone, Default)]
struct Lines(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);

impl std::io::Write for Lines {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for Lines {
    type Writer = Lines;
    fn make_writer(&'a self) -> Self::Writer {
        self.clone()
    }
}

#[test]
fn test_workload_log_lines_carry_the_workload_name() {
    use moonpool_core::TaskProvider;
    use moonpool_sim::{IterationControl, SimulationBuilder};
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(lines.clone())
        .with_ansi(false)
        .finish();
    let report = tracing::subscriber::with_default(subscriber, || {
        SimulationBuilder::new("first-use-spans")
            .workload_with_check(
                "client",
                2,
                |ctx| async move {
                    tracing::info!("run says hello");
                    let child = ctx.providers.task().spawn("child", async {
                        tracing::info!("child says hello");
                    });
                    let _ = child.await;
                    Ok(())
                },
                |_ctx| async move {
                    tracing::info!("check says hello");
                    Ok(())
                },
            )
            .iterations(IterationControl::FixedCount(1))
            .jobs(1)
            .run()
            .unwrap()
    });
    report.assert_success();
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    for what in ["run", "child", "check"] {
        for client in ["client-0", "client-1"] {
            assert!(
                text.lines()
                    .any(|l| l.contains(&format!("workload{{name={client} "))
                        && l.contains(&format!("{what} says hello"))),
                "no '{what}' line of {client} in:\n{text}"
            );
        }
    }
    assert!(!text.contains("name=runner"), "{text}");
}

#[test]
fn test_process_context_has_index_and_topology() {
    use moonpool_sim::{IterationControl, SimulationBuilder, StateHandle};
    let report = SimulationBuilder::new("first-use-topology")
        .process("replica", 3, |ctx| async move {
            assert_eq!(ctx.name, format!("replica-{}", ctx.index));
            assert_eq!(ctx.topology.ip_of(&ctx.name), Some(ctx.ip));
            assert_eq!(ctx.topology.index_of(&ctx.name), Some(ctx.index));
            assert_eq!(ctx.topology.ips_of("replica").len(), 3);
            let seen: StateHandle = ctx.state.clone();
            seen.publish(&format!("seen-{}", ctx.index), ctx.ip.to_string());
        })
        .workload("client", 1, |ctx| async move {
            // Address a process by name, not by position.
            let address = ctx.topology.address_of("replica-2", 4500).unwrap();
            assert_eq!(
                address,
                format!("{}:4500", ctx.topology.ip_of("replica-2").unwrap())
            );
            assert_eq!(ctx.topology.index_of("client-0"), Some(0));
            assert_eq!(ctx.topology.ip_of("nobody"), None);
            for i in 0..3 {
                let ip: Option<String> = ctx.state.get(&format!("seen-{i}"));
                assert!(ip.is_some(), "replica-{i} booted before the workload");
            }
            Ok(())
        })
        .iterations(IterationControl::FixedCount(4))
        .run()
        .unwrap();
    report.assert_success();
}

#[test]
fn test_a_task_reaches_its_own_providers_without_a_parameter() {
    use moonpool_core::TaskProvider;
    use moonpool_sim::current_providers;
    assert!(current_providers().is_none());
    for seed in 0..50 {
        let mut world = SimWorld::with_config(seed, WorldConfig::quiet()).unwrap();
        world
            .add_process(
                "server",
                "10.0.0.1",
                Locality::default(),
                |ctx| async move {
                    drop(ctx.providers.task().spawn("adapter", async {
                        // Deep inside a library: no providers were passed.
                        let providers = current_providers().expect("inside a simulated task");
                        echo_once(providers).await;
                    }));
                },
            )
            .unwrap();
        world
            .add_workload("client", "10.0.0.2", |_providers| async move {
                let mine = current_providers().expect("a workload task");
                let mut stream = mine.network().connect("10.0.0.1:4500").await.unwrap();
                stream.write_all(&[9]).await.unwrap();
                let mut byte = [0u8; 1];
                stream.read_exact(&mut byte).await.unwrap();
                assert_eq!(byte, [9]);
            })
            .unwrap();
        world.run().unwrap_or_else(|e| panic!("seed {seed}: {e}"));
    }
    assert!(current_providers().is_none(), "removed when the run ends");
}

#[test]
fn test_moonpool_report_show_into_a_closed_pipe_does_not_panic() {
    use moonpool_sim::{IterationControl, SimulationBuilder};
    use std::process::{Command, Stdio};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("report.json");
    SimulationBuilder::new("first-use-pipe")
        .world_config(WorldConfig::quiet())
        .workload("w", 1, |_ctx| async { Ok(()) })
        .iterations(IterationControl::FixedCount(2))
        .progress(false)
        .run()
        .unwrap()
        .write_json(&path)
        .unwrap();
    for _ in 0..5 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_moonpool-report"))
            .arg("show")
            .arg(&path)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        // Like `| head -0`: the reader is gone before the report is written.
        drop(child.stdout.take());
        let output = child.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!stderr.contains("panicked"), "{stderr}");
        assert_eq!(output.status.code(), Some(0), "{stderr}");
    }
}

#[test]
fn test_topology_can_be_built_outside_the_crate() {
    use moonpool_sim::{Member, Topology};
    let ip = |n: u8| std::net::IpAddr::from([10, 0, 0, n]);
    let topology = Topology::new(
        vec![
            Member::new("db-0", "db", ip(1), Locality::default()),
            Member::new("db-1", "db", ip(2), Locality::default()),
        ],
        vec![Member::new(
            "client-0",
            "client",
            ip(9),
            Locality::default(),
        )],
    );
    assert_eq!(topology.index_of("db-1"), Some(1));
    assert_eq!(
        topology.address_of("db-1", 80).as_deref(),
        Some("10.0.0.2:80")
    );
    assert_eq!(topology.ips_of("db"), vec![ip(1), ip(2)]);
    assert_eq!(topology.index_of("client-0"), Some(0));
}

#[test]
fn test_a_server_spinning_at_its_boot_instant_ends_as_a_busy_loop() {
    // Zero sleeps forever at time 0: the boot instant never ends on its own; the per-instant
    // poll bound names it instead of hanging before the workloads start.
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.poll_bound = 5_000;
        cfg
    };
    let mut world = SimWorld::with_config(1, config).unwrap();
    world
        .add_process(
            "server",
            "10.0.0.1",
            Locality::default(),
            |ctx| async move {
                loop {
                    ctx.providers.time().sleep(Duration::ZERO).await;
                }
            },
        )
        .unwrap();
    world
        .add_workload("client", "10.0.0.2", |_p| async {
            panic!("never reached: the server never finishes booting");
        })
        .unwrap();
    let error = world.run().unwrap_err().to_string();
    assert!(error.contains("without the clock advancing"), "{error}");
}
