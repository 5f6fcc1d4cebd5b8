//! `SimTime` through the facade (feature `tracing-subscriber`): log lines stamped with simulated
//! time and the process that wrote them.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
#![cfg(feature = "tracing-subscriber")]

use std::sync::{Arc, Mutex};
use std::time::Duration;

use moonpool::prelude::*;
use moonpool::sim::SimTime;

#[derive(Clone, Default)]
struct Lines(Arc<Mutex<Vec<u8>>>);

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
    fn make_writer(&'a self) -> Lines {
        self.clone()
    }
}

#[test]
fn test_sim_time_stamps_log_lines_through_the_facade() {
    let lines = Lines::default();
    let subscriber = tracing_subscriber::fmt()
        .with_timer(SimTime)
        .with_writer(lines.clone())
        .with_ansi(false)
        .finish();
    tracing::subscriber::with_default(subscriber, || {
        let mut world = SimWorld::with_config(5, WorldConfig::quiet()).unwrap();
        world
            .add_workload("client", "10.0.0.9", |providers| async move {
                providers.time().sleep(Duration::from_secs(2)).await;
                tracing::info!("two seconds in");
            })
            .unwrap();
        world.run().unwrap();
        tracing::info!("after the run");
    });
    let text = String::from_utf8(lines.0.lock().unwrap().clone()).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with("sim+2.000000s")
            && l.contains("process{name=client ip=10.0.0.9}")
            && l.contains("two seconds in")),
        "{text}"
    );
    assert!(
        text.lines()
            .any(|l| l.starts_with("sim:-") && l.contains("after the run")),
        "{text}"
    );
}
