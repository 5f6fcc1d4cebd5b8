//! What a run shows and writes besides its report: the progress line on a terminal and the
//! Chrome trace of each failed seed.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::report::SimulationReport;
use super::seed::{build_world, resolve_config};
use super::spec::Spec;

/// Re-runs a seed with its story recorded and writes it as a Chrome trace (with the failure
/// marker when it fails); returns the file's path (or `None` if it could not be written, which
/// is logged).
pub(super) fn write_chrome_trace(
    spec: &Arc<Spec>,
    dir: &Path,
    name: &str,
    seed: u64,
    limits: super::trace::TraceLimits,
) -> Option<String> {
    let mut config = resolve_config(spec, seed);
    config.record_story = true;
    let (mut world, failure) = build_world(spec, seed, config).ok()?;
    let result = world.run();
    let error = result.err().or_else(|| {
        failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
    });
    let replay = spec.replay.replace("{seed}", &seed.to_string());
    let mark = error
        .as_ref()
        .map(|error| super::trace::failure_mark(error, replay));
    let story = world.story().unwrap_or_default();
    let json = super::trace::story_trace(&story, &world.process_names(), mark.as_ref(), limits);
    let safe: String = name
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let path = dir.join(format!("{safe}-seed-{seed}.trace.json"));
    let written = std::fs::create_dir_all(dir).and_then(|()| std::fs::write(&path, json));
    match written {
        Ok(()) => Some(path.display().to_string()),
        Err(error) => {
            tracing::warn!(path = %path.display(), %error, "could not write the Chrome trace");
            None
        }
    }
}

/// Progress on a terminal for long runs: seeds done out of the planned total, and an estimate
/// of the time left.
///
/// It shows only when stderr is a terminal, after the run's first 3 seconds. Under
/// `cargo nextest`, whose captured output is not a terminal, pass `--no-capture` to see it
/// (`cargo test` shows it with `-- --nocapture`).
pub(super) struct Progress {
    enabled: bool,
    /// The most seeds the run may take (`None`: bounded by time only).
    total: Option<usize>,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    pub(super) fn new(enabled: bool, total: Option<usize>) -> Self {
        use std::io::IsTerminal;
        Self {
            enabled: enabled && std::io::stderr().is_terminal(),
            total,
            last: None,
            shown: false,
        }
    }

    pub(super) fn tick(&mut self, report: &SimulationReport, started: Instant) {
        if !self.enabled || started.elapsed() < Duration::from_secs(3) {
            return;
        }
        if self
            .last
            .is_some_and(|last| last.elapsed() < Duration::from_secs(1))
        {
            return;
        }
        self.last = Some(Instant::now());
        self.shown = true;
        let line = progress_line(
            &report.name,
            Counts {
                done: report.seeds_run(),
                passed: report.passed(),
                failed: report.failed(),
                reached: report.assertions.satisfied_count(),
            },
            self.total,
            started.elapsed(),
        );
        eprint!("\r{line}  ");
    }

    pub(super) fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}

/// What the progress line counts.
#[derive(Debug, Clone, Copy)]
struct Counts {
    done: usize,
    passed: usize,
    failed: usize,
    reached: usize,
}

/// One progress line: `[name] 120/300 seeds, 118 passed, 2 failed, 5 coverage assertions
/// reached, 12 s, about 18 s left`. The estimate assumes the remaining seeds take as long as
/// the finished ones; a run that stops early (coverage reached) ends sooner.
fn progress_line(name: &str, counts: Counts, total: Option<usize>, elapsed: Duration) -> String {
    let seeds = match total {
        Some(total) => format!("{}/{total} seeds", counts.done),
        None => format!("{} seeds", counts.done),
    };
    let left = match total {
        Some(total) if counts.done > 0 && total > counts.done => {
            #[allow(clippy::cast_precision_loss)]
            let per_seed = elapsed.as_secs_f64() / counts.done as f64;
            #[allow(clippy::cast_precision_loss)]
            let left = per_seed * (total - counts.done) as f64;
            format!(", about {} left", short_duration(left))
        }
        _ => String::new(),
    };
    format!(
        "[{name}] {seeds}, {} passed, {} failed, {} coverage assertions reached, {}{left}",
        counts.passed,
        counts.failed,
        counts.reached,
        short_duration(elapsed.as_secs_f64())
    )
}

/// `42 s`, `3 min 20 s`, `1 h 05 min`.
fn short_duration(secs: f64) -> String {
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let secs = secs.max(0.0).round() as u64;
    match secs {
        0..60 => format!("{secs} s"),
        60..3600 => format!("{} min {:02} s", secs / 60, secs % 60),
        _ => format!("{} h {:02} min", secs / 3600, (secs % 3600) / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const COUNTS: Counts = Counts {
        done: 100,
        passed: 98,
        failed: 2,
        reached: 5,
    };

    #[test]
    fn test_progress_shows_the_total_and_the_time_left() {
        let line = progress_line("kv", COUNTS, Some(400), Duration::from_secs(20));
        assert_eq!(
            line,
            "[kv] 100/400 seeds, 98 passed, 2 failed, 5 coverage assertions reached, 20 s, \
             about 1 min 00 s left"
        );
    }

    #[test]
    fn test_progress_without_a_seed_bound_has_no_estimate() {
        let line = progress_line("kv", COUNTS, None, Duration::from_secs(20));
        assert_eq!(
            line,
            "[kv] 100 seeds, 98 passed, 2 failed, 5 coverage assertions reached, 20 s"
        );
        let done = progress_line("kv", COUNTS, Some(100), Duration::from_secs(4000));
        assert!(done.ends_with("reached, 1 h 06 min"), "{done}");
    }
}
