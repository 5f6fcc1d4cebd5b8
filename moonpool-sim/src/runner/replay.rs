//! A replay command derived from where `run` was called, printed for every failed seed unless
//! the builder sets its own ([`replay_command`](super::SimulationBuilder::replay_command)).

use std::panic::Location;

/// A replay command derived from the call site of `run`.
pub(super) fn default_replay_template(caller: &Location<'_>) -> String {
    let file = caller.file().replace('\\', "/");
    let parts: Vec<&str> = file.split('/').collect();
    let (package, rest) = match parts
        .iter()
        .position(|p| *p == "tests" || *p == "examples" || *p == "src")
    {
        Some(0) | None => (None, parts.as_slice()),
        Some(i) => (Some(parts[..i].join("/")), &parts[i..]),
    };
    let package_flag = package
        .as_deref()
        .and_then(|p| p.rsplit('/').next())
        .map(|p| format!(" -p {p}"))
        .unwrap_or_default();
    let stem = rest
        .last()
        .and_then(|f| f.strip_suffix(".rs"))
        .unwrap_or("");
    let thread = std::thread::current().name().map(str::to_string);
    match (rest.first().copied(), thread.as_deref()) {
        (Some("examples"), _) => {
            let args: Vec<String> = std::env::args().skip(1).collect();
            let args = if args.is_empty() {
                String::new()
            } else {
                format!(" -- {}", args.join(" "))
            };
            format!(
                "MOONPOOL_SEED={{seed}} cargo run --release{package_flag} --example {stem}{args}"
            )
        }
        (Some("tests"), Some(test)) if test != "main" => {
            format!(
                "MOONPOOL_SEED={{seed}} cargo nextest run{package_flag} --test {stem} -E 'test(={test})'"
            )
        }
        (_, Some(test)) if test != "main" => {
            format!("MOONPOOL_SEED={{seed}} cargo nextest run{package_flag} -E 'test(={test})'")
        }
        _ => {
            let args: Vec<String> = std::env::args().collect();
            format!("MOONPOOL_SEED={{seed}} {}", args.join(" "))
        }
    }
}
