//! `moonpool-report`: show simulation reports and merge the JSON reports of shards.
//!
//! ```sh
//! moonpool-report show report.json
//! moonpool-report merge merged.json shard-0.json shard-1.json ...
//! ```
//!
//! Exits 1 when the (merged) report has failed seeds or unreached `sometimes` assertions, 2 on a
//! usage or file error.

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
            let names: Vec<&str> = reports.iter().map(|r| r.name.as_str()).collect();
            if names.windows(2).any(|w| w[0] != w[1]) {
                return Err(format!(
                    "the reports are of different simulations: {names:?}"
                ));
            }
            let merged = SimulationReport::merge(&reports).ok_or_else(usage)?;
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
            println!("{report}");
            if report.is_success() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(message) => {
            eprintln!("moonpool-report: {message}");
            ExitCode::from(2)
        }
    }
}
