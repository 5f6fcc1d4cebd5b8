//! The report as a table: what `Display` prints for a [`SimulationReport`] (and for a
//! [`ShardInfo`]).

use std::fmt;
use std::time::Duration;

use super::report::{ShardInfo, SimulationReport};
use super::report_merge::ShardList;
use crate::chaos::AssertionRecord;

impl fmt::Display for ShardInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

fn format_duration(d: Duration) -> String {
    let secs = d.as_secs_f64();
    if secs >= 3600.0 {
        format!("{:.1} h", secs / 3600.0)
    } else if secs >= 60.0 {
        format!("{:.1} min", secs / 60.0)
    } else if secs >= 1.0 {
        format!("{secs:.2} s")
    } else {
        format!("{:.1} ms", secs * 1e3)
    }
}

fn assertion_figures(record: &AssertionRecord) -> String {
    use moonpool_core::chaos::AssertKind;
    let mut text = format!("{} pass / {} fail", record.passes, record.failures);
    match record.kind {
        AssertKind::AlwaysCompare(_) | AssertKind::SometimesCompare(_) => {
            if let Some(w) = record.watermark {
                text.push_str(&format!(", watermark {w}"));
            }
        }
        AssertKind::SometimesAll => {
            text = format!(
                "{} calls, frontier {}/{}",
                record.evaluations(),
                record.frontier,
                record.conditions
            );
        }
        AssertKind::SometimesEach => {
            text = format!("{} hits, {} buckets", record.passes, record.buckets.len());
        }
        _ => {}
    }
    text
}

impl fmt::Display for SimulationReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.write_totals(f)?;
        self.write_assertions(f)?;
        self.write_unmet(f)?;
        if !self.faults.is_empty() {
            writeln!(f, "\nfaults fired")?;
            for (kind, count) in &self.faults {
                writeln!(f, "  {kind:<36} {count}")?;
            }
        }
        self.write_failures(f)
    }
}

impl SimulationReport {
    /// Seeds, time, events, the shard, the shards a merge lacks.
    fn write_totals(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "=== simulation '{}' ===", self.name)?;
        writeln!(
            f,
            "seeds     {} run, {} passed, {} failed ({})",
            self.seeds_run(),
            self.passed(),
            self.failed(),
            self.stop_reason
        )?;
        writeln!(
            f,
            "time      {} wall, {} simulated, {}x compression",
            format_duration(self.wall_time),
            format_duration(self.sim_time()),
            self.time_compression().round()
        )?;
        writeln!(f, "events    {}", self.events())?;
        if let Some(shard) = &self.shard {
            writeln!(f, "shard     {shard}")?;
        }
        if !self.missing_shards.is_empty() {
            writeln!(
                f,
                "\nmissing shards ({}): {} (their seeds were not run; this merge is partial)",
                self.missing_shards.len(),
                ShardList(&self.missing_shards)
            )?;
        }
        Ok(())
    }

    /// Every assertion, failures first, then those never reached, then by message.
    fn write_assertions(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.assertions.records.is_empty() {
            return Ok(());
        }
        writeln!(f, "\nassertions ({})", self.assertions.records.len())?;
        let mut records: Vec<&AssertionRecord> = self.assertions.records.values().collect();
        records.sort_by(|a, b| {
            (a.status() != "FAIL", a.status() != "MISS", &a.message).cmp(&(
                b.status() != "FAIL",
                b.status() != "MISS",
                &b.message,
            ))
        });
        for record in records {
            writeln!(
                f,
                "  {} {:<40} {:<44} {} (in {} of {} seeds)",
                record.status(),
                record.kind.macro_name(),
                format!("\"{}\"", record.message),
                assertion_figures(record),
                record.seeds_evaluated,
                self.seeds_run()
            )?;
        }
        Ok(())
    }

    /// Coverage assertions never reached and expected assertions never evaluated.
    fn write_unmet(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let missing = self.sometimes_never_reached();
        if !missing.is_empty() {
            writeln!(f, "\nsometimes never reached ({})", missing.len())?;
            for record in missing {
                writeln!(f, "  \"{}\" at {}", record.message, record.location)?;
            }
        }
        if !self.never_evaluated.is_empty() {
            writeln!(
                f,
                "\nexpected assertions never evaluated ({})",
                self.never_evaluated.len()
            )?;
            for message in &self.never_evaluated {
                writeln!(f, "  \"{message}\"")?;
            }
        }
        Ok(())
    }

    /// Each failed seed with its replay command and trace file.
    fn write_failures(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.failed() == 0 {
            return Ok(());
        }
        writeln!(f, "\nfailed seeds ({})", self.failed())?;
        for outcome in self.failures() {
            writeln!(f, "  {}", outcome.failure.as_deref().unwrap_or(""))?;
            if let Some(replay) = &outcome.replay {
                writeln!(f, "    replay: {replay}")?;
            }
            if let Some(trace) = &outcome.trace_file {
                writeln!(f, "    trace:  {trace} (open in ui.perfetto.dev)")?;
            }
        }
        Ok(())
    }
}
