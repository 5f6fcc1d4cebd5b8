//! Hints added to panic messages whose cause is a known mistake: calling a Tokio runtime API
//! (which needs a Tokio reactor or timer) from code running in the simulator.

/// What Tokio's runtime APIs panic with when no Tokio runtime is running.
const TOKIO_RUNTIME_PANICS: [&str; 3] = [
    "there is no reactor running",
    "must be called from the context of a Tokio",
    "A Tokio 1.x context was found, but",
];

/// The hint for a simulated task that called a Tokio runtime API.
pub(crate) const TOKIO_IN_SIMULATION_HINT: &str = "hint: this task called a Tokio runtime API \
     (tokio::time, tokio::spawn, tokio::net, tokio::fs, Handle::current) inside the simulator, \
     which has no Tokio runtime. Use the providers instead: providers.time().sleep/timeout, \
     providers.task().spawn, providers.network(), providers.storage() (see \
     docs/guides/migrating-to-providers.md)";

/// `message` with the hint appended when it is one of Tokio's "no runtime" panics.
pub(crate) fn with_hint(message: String) -> String {
    if TOKIO_RUNTIME_PANICS.iter().any(|p| message.contains(p))
        && !message.contains(TOKIO_IN_SIMULATION_HINT)
    {
        format!("{message}\n{TOKIO_IN_SIMULATION_HINT}")
    } else {
        message
    }
}
