//! Logging in simulation: [`sim_now`](crate::sim_now) and, with the `tracing-subscriber` feature,
//! the `SimTime` timer.
//!
//! Every process body runs in a `process` span (`name`, `ip`, and `boot` for servers) and every
//! task spawned through the providers inherits the span of the code that spawned it, so log lines
//! say which simulated process wrote them:
//!
//! ```text
//! sim+12.004318s  INFO process{name=replica-1 ip=10.0.0.2 boot=2}: became leader epoch=7
//! ```

/// A `tracing-subscriber` timer printing the simulated time of the world running on this thread
/// (`sim+12.004318s`), or `sim:-` outside a run.
///
/// ```
/// # #[cfg(feature = "tracing-subscriber")] {
/// let subscriber = tracing_subscriber::fmt().with_timer(moonpool_sim::SimTime).finish();
/// # let _ = subscriber;
/// # }
/// ```
#[cfg(feature = "tracing-subscriber")]
#[derive(Debug, Clone, Copy, Default)]
pub struct SimTime;

#[cfg(feature = "tracing-subscriber")]
impl tracing_subscriber::fmt::time::FormatTime for SimTime {
    fn format_time(&self, w: &mut tracing_subscriber::fmt::format::Writer<'_>) -> std::fmt::Result {
        match crate::kernel::clock::sim_now() {
            Some(now) => write!(w, "sim+{:.6}s", now.as_secs_f64()),
            None => write!(w, "sim:-"),
        }
    }
}
