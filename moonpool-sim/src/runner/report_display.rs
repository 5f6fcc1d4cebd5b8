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
        self.write_exploration(f)?;
        self.write_assertions(f)?;
        self.write_unmet(f)?;
        self.write_coverage(f)?;
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

    /// What the exploration did and the bugs it found, each with its recipe and replay command.
    fn write_exploration(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let Some(e) = &self.exploration else {
            return Ok(());
        };
        writeln!(
            f,
            "explore   {} timelines ({} roots, {} children), {} split points ({} fresh, {} \
             repeat), depth {} reached; not split: {} at the depth bound, {} out of energy, {} \
             stopping",
            e.timelines,
            e.roots,
            e.children,
            e.split_points,
            e.fresh_splits,
            e.repeat_splits,
            e.max_depth,
            e.skipped_depth,
            e.skipped_energy,
            e.skipped_stopped
        )?;
        writeln!(
            f,
            "energy    {} of {} used ({} left), {} returned to the pool, {} drawn from it; {} \
             children at once at most ({} allowed)",
            e.energy_used,
            e.energy_budget,
            e.energy_left,
            e.energy_returned,
            e.energy_drawn,
            e.peak_children,
            e.parallelism
        )?;
        let overflow: Vec<String> = e
            .overflow
            .iter()
            .filter(|(_, n)| **n > 0)
            .map(|(table, n)| format!("{table} {n}"))
            .collect();
        writeln!(
            f,
            "coverage  {} keys of {}; overflow: {}",
            e.coverage_bits,
            e.coverage_capacity,
            if overflow.is_empty() {
                "none".to_string()
            } else {
                overflow.join(", ")
            }
        )?;
        let first = match (e.first_bug_timeline, e.first_bug_wall) {
            (Some(t), Some(w)) => {
                format!(", the first after {t} timelines and {}", format_duration(w))
            }
            _ => String::new(),
        };
        writeln!(
            f,
            "bugs      {} found in timelines ({} distinct; {} hung, {} died){first}",
            e.bugs_found,
            e.distinct_bugs().len(),
            e.hangs,
            e.died
        )?;
        if e.bugs.is_empty() {
            return Ok(());
        }
        writeln!(
            f,
            "
explored bugs ({} distinct)",
            e.distinct_bugs().len()
        )?;
        // One example of each distinct bug, the first found, with how many timelines found it.
        let mut shown: Vec<&str> = Vec::new();
        for bug in &e.bugs {
            if shown.contains(&bug.signature.as_str()) {
                continue;
            }
            shown.push(&bug.signature);
            let count = e
                .bugs
                .iter()
                .filter(|b| b.signature == bug.signature)
                .count();
            writeln!(
                f,
                "  {} in {count} timeline(s), first at timeline {}: {}",
                bug.kind, bug.timeline, bug.failure
            )?;
            if let Some(info) = &bug.failure_info {
                super::report_failure::write_details(info, f)?;
            }
            writeln!(f, "    recipe: {}", bug.recipe)?;
            writeln!(f, "    replay: {}", bug.replay)?;
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
            if let Some(info) = &outcome.failure_info {
                super::report_failure::write_details(info, f)?;
            }
        }
        Ok(())
    }
}
