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

/// Progress on a terminal for long runs.
pub(super) struct Progress {
    enabled: bool,
    last: Option<Instant>,
    shown: bool,
}

impl Progress {
    pub(super) fn new(enabled: bool) -> Self {
        use std::io::IsTerminal;
        Self {
            enabled: enabled && std::io::stderr().is_terminal(),
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
        eprint!(
            "\r[{}] {} seeds, {} passed, {} failed, {} coverage assertions reached, {:.0} s  ",
            report.name,
            report.seeds_run(),
            report.passed(),
            report.failed(),
            report.assertions.satisfied_count(),
            started.elapsed().as_secs_f64()
        );
    }

    pub(super) fn finish(&self) {
        if self.shown {
            eprintln!();
        }
    }
}
