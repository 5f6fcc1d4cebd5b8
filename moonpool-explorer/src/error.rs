//! [`ExploreError`]: why an exploration cannot start.

use std::fmt;

/// Why an [`Explorer`](crate::Explorer) could not be made.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ExploreError {
    /// Exploration forks the process: it runs on Linux and macOS only.
    Unsupported {
        /// The platform it was asked to run on (`std::env::consts::OS`).
        platform: &'static str,
    },
    /// A configuration field has a value it cannot take.
    InvalidConfig {
        /// The field of [`ExplorationConfig`](crate::ExplorationConfig).
        field: &'static str,
        /// Its value.
        value: String,
        /// What it must be.
        expected: &'static str,
    },
    /// The shared memory could not be mapped.
    SharedMemory {
        /// Bytes asked for.
        bytes: usize,
        /// What the system said.
        reason: String,
    },
}

impl fmt::Display for ExploreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ExploreError::Unsupported { platform } => write!(
                f,
                "exploration forks child processes and runs on Linux and macOS only; this is \
                 {platform} (run the same simulation without exploration, or on Linux or macOS)"
            ),
            ExploreError::InvalidConfig {
                field,
                value,
                expected,
            } => write!(
                f,
                "exploration configuration: {field} is {value}, expected {expected}"
            ),
            ExploreError::SharedMemory { bytes, reason } => write!(
                f,
                "exploration: cannot map {bytes} bytes of shared memory: {reason}"
            ),
        }
    }
}

impl std::error::Error for ExploreError {}
