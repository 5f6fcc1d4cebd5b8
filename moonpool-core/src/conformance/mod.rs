//! Contract tests for the provider traits, written once and run against every backend.
//!
//! Each contract is an `async fn(&Fixture<P>) -> Result<(), ContractViolation>` generic over
//! [`Providers`]. A backend runs the whole suite with
//! [`provider_conformance_tests!`](crate::provider_conformance_tests), which generates one
//! `#[test]` per contract around a
//! runner function the backend supplies:
//!
//! ```ignore
//! fn run<F, Fut>(contract: &str, body: F)
//! where
//!     F: FnOnce(Fixture<MyProviders>) -> Fut,
//!     Fut: Future<Output = Result<(), ContractViolation>> + Send + 'static,
//! {
//!     // build the providers and a runtime, run `body(fixture)`, panic on a violation
//! }
//! moonpool_core::provider_conformance_tests!(run);
//! ```
//!
//! The Tokio backend runs it in `moonpool-core/tests/conformance_tokio.rs` (real loopback TCP and a
//! temp directory); the simulator runs the very same contracts on its own providers.

use std::fmt;
use std::path::PathBuf;

use crate::Providers;

pub mod network;
pub mod random;
pub mod storage;
pub mod task;
pub mod time;

/// What a contract runs against.
#[derive(Debug, Clone)]
pub struct Fixture<P: Providers> {
    /// The providers under test.
    pub providers: P,
    /// An address listeners may bind to, with port 0 (`"127.0.0.1:0"` on loopback).
    pub bind_address: String,
    /// A directory, in the storage provider's namespace, where contracts create their files.
    pub storage_dir: PathBuf,
}

impl<P: Providers> Fixture<P> {
    /// A fixture over `providers`.
    pub fn new(
        providers: P,
        bind_address: impl Into<String>,
        storage_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            providers,
            bind_address: bind_address.into(),
            storage_dir: storage_dir.into(),
        }
    }

    /// A path for a contract's file.
    pub fn path(&self, name: &str) -> PathBuf {
        self.storage_dir.join(name)
    }
}

/// A provider broke a contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractViolation {
    /// What went wrong, with the values seen.
    pub message: String,
}

impl fmt::Display for ContractViolation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "contract violated: {}", self.message)
    }
}

impl std::error::Error for ContractViolation {}

impl ContractViolation {
    /// A violation with `message`.
    pub fn new(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
        }
    }
}

/// Result of one contract.
pub type ContractResult = Result<(), ContractViolation>;

/// Fails the contract with a formatted message unless `condition` holds.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err($crate::conformance::ContractViolation::new(format!($($message)+)));
        }
    };
}
pub(crate) use ensure;

/// Unwraps a `Result`, turning an error into a violation that says what was being done.
macro_rules! attempt {
    ($result:expr, $what:expr) => {
        match $result {
            Ok(value) => value,
            Err(error) => {
                return Err($crate::conformance::ContractViolation::new(format!(
                    "{}: unexpected error: {}",
                    $what, error
                )))
            }
        }
    };
}
pub(crate) use attempt;

/// Generates one `#[test]` per provider contract, each calling `$runner(name, body)`.
///
/// See the [module docs](crate::conformance) for the runner's shape.
#[macro_export]
macro_rules! provider_conformance_tests {
    ($runner:path) => {
        $crate::provider_conformance_tests!(@tests $runner;
            test_time_sleep_advances_now => time::sleep_advances_now,
            test_time_timer_never_behind_now => time::timer_never_behind_now,
            test_time_timeout_elapses => time::timeout_elapses,
            test_time_timeout_returns_ready_value => time::timeout_returns_ready_value,
            test_time_sleeps_wake_in_deadline_order => time::sleeps_wake_in_deadline_order,
            test_task_spawn_and_join => task::spawn_and_join,
            test_task_abort_cancels => task::abort_cancels,
            test_task_panic_is_isolated => task::panic_is_isolated,
            test_task_dropped_handle_detaches => task::dropped_handle_detaches,
            test_task_is_finished_tracks_completion => task::is_finished_tracks_completion,
            test_task_yield_now_lets_others_run => task::yield_now_lets_others_run,
            test_random_range_in_bounds => random::range_in_bounds,
            test_random_bool_extremes => random::bool_extremes,
            test_random_values_vary => random::values_vary,
            test_network_echo_round_trip => network::echo_round_trip,
            test_network_half_close_gives_eof => network::half_close_gives_eof,
            test_network_connect_to_closed_port_fails => network::connect_to_closed_port_fails,
            test_network_accept_reports_peer_address => network::accept_reports_peer_address,
            test_network_several_clients_before_accept => network::several_clients_before_accept,
            test_network_bind_in_use_fails => network::bind_in_use_fails,
            test_network_invalid_address_names_input => network::invalid_address_names_input,
            test_network_large_transfer_arrives_intact => network::large_transfer_arrives_intact,
            test_storage_write_sync_reopen_read => storage::write_sync_reopen_read,
            test_storage_open_missing_without_create_fails => storage::open_missing_without_create_fails,
            test_storage_create_new_on_existing_fails => storage::create_new_on_existing_fails,
            test_storage_invalid_options_rejected => storage::invalid_options_rejected,
            test_storage_rename_moves_and_replaces => storage::rename_moves_and_replaces,
            test_storage_remove_deletes => storage::remove_deletes,
            test_storage_trailing_separator_names_no_file => storage::trailing_separator_names_no_file,
            test_storage_set_len_truncates_and_zero_extends => storage::set_len_truncates_and_zero_extends,
            test_storage_read_past_end_returns_zero => storage::read_past_end_returns_zero,
            test_storage_seek_and_overwrite => storage::seek_and_overwrite,
            test_storage_append_writes_at_end => storage::append_writes_at_end,
        );
    };
    (@tests $runner:path; $($test:ident => $module:ident :: $contract:ident),* $(,)?) => {
        $(
            #[test]
            fn $test() {
                $runner(stringify!($test), |fixture| async move {
                    $crate::conformance::$module::$contract(&fixture).await
                });
            }
        )*
    };
}
