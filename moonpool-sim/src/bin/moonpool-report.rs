//! `moonpool-report`: show simulation reports and merge the JSON reports of shards.
//!
//! ```sh
//! moonpool-report show report.json
//! moonpool-report merge merged.json shard-0.json shard-1.json ...
//! ```
//!
//! Install it from a clone with `cargo install --path moonpool-sim --bin moonpool-report`
//! (or `cargo install --git <repository> moonpool-sim --bin moonpool-report`), or run it without
//! installing: `cargo run -p moonpool-sim --bin moonpool-report -- show report.json`.
//!
//! Its output may be cut short (`moonpool-report show report.json | head`): a closed pipe ends
//! it quietly, with the exit status the report gives.
//!
//! Exits 1 when the (merged) report has failed seeds or unreached `sometimes` assertions, or when
//! the merge lacks shards (it is written and shown anyway, and stderr names the missing shards);
//! 2 on a usage or file error, or when the reports cannot be merged (the same shard twice,
//! overlapping seeds, different simulations or shard counts): nothing is written then.

use std::io::Write;
use std::path::Path;
use std::process::ExitCode;

use moonpool_sim::SimulationReport;

fn read(path: &str) -> Result<SimulationReport, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("cannot read '{path}': {e}"))?;
    SimulationReport::from_json(&text)
        .map_err(|e| format!("'{path}' is not a Moonpool report: {e}"))
}

fn usage() -> String {
    "usage: moonpool-report show REPORT.json | moonpool-report merge OUT.json IN.json..."
        .to_string()
}

fn run(args: &[String]) -> Result<SimulationReport, String> {
    match args {
        [command, input] if command == "show" => read(input),
        [command, output, inputs @ ..] if command == "merge" && !inputs.is_empty() => {
            let reports = inputs
                .iter()
                .map(|p| read(p))
                .collect::<Result<Vec<_>, _>>()?;
            let merged = SimulationReport::merge(&reports).map_err(|e| {
                let inputs: Vec<String> = inputs
                    .iter()
                    .zip(&reports)
                    .enumerate()
                    .map(|(i, (path, report))| match report.shard {
                        Some(shard) => format!("#{i} {path} (shard {shard})"),
                        None => format!("#{i} {path} (not a shard)"),
                    })
                    .collect();
                format!("cannot merge: {e}\n  inputs: {}", inputs.join(", "))
            })?;
            merged
                .write_json(Path::new(output))
                .map_err(|e| format!("cannot write '{output}': {e}"))?;
            Ok(merged)
        }
        _ => Err(usage()),
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(report) => {
            let status = if report.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            };
            let mut stdout = std::io::stdout().lock();
            match writeln!(stdout, "{report}").and_then(|()| stdout.flush()) {
                Ok(()) => {}
                // The reader went away (`| head`): what it wanted, it has.
                Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => return status,
                Err(e) => {
                    eprintln!("moonpool-report: cannot write the report: {e}");
                    return ExitCode::from(2);
                }
            }
            if !report.missing_shards.is_empty() {
                let missing: Vec<String> = report
                    .missing_shards
                    .iter()
                    .map(|s| s.to_string())
                    .collect();
                eprintln!(
                    "moonpool-report: warning: the merge is partial, missing shards: {} ({})",
                    missing.join(", "),
                    report.stop_reason
                );
            }
            status
        }
        Err(message) => {
            eprintln!("moonpool-report: {message}");
            ExitCode::from(2)
        }
    }
}
