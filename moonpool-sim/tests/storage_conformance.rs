#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]
//! The provider conformance suite (every contract: time, task, random, network, storage) against
//! the simulator's providers, with every fault off: once on the quiet world (fixed 10 µs disk),
//! once with the default disk latencies, bandwidth and IOPS limits (`disabled()`).

use std::future::Future;
use std::sync::{Arc, Mutex};

use moonpool_core::conformance::{ContractViolation, Fixture};
use moonpool_sim::{SimProviders, SimWorld, StorageConfiguration, WorldConfig};

fn run_with<F, Fut>(contract: &str, storage: StorageConfiguration, body: F)
where
    F: FnOnce(Fixture<SimProviders>) -> Fut,
    Fut: Future<Output = Result<(), ContractViolation>> + Send + 'static,
{
    let outcome: Arc<Mutex<Option<Result<(), ContractViolation>>>> = Arc::new(Mutex::new(None));
    let config = {
        let mut cfg = WorldConfig::quiet();
        cfg.storage = storage;
        cfg
    };
    let mut world = SimWorld::with_config(0x5eed, config).unwrap();
    let slot = Arc::clone(&outcome);
    world
        .add_workload("conformance", "10.0.0.1", move |providers| {
            let fixture = Fixture::new(providers, "10.0.0.1:0", "conformance");
            let contract = body(fixture);
            async move {
                let result = contract.await;
                *slot.lock().unwrap() = Some(result);
            }
        })
        .unwrap();
    if let Err(error) = world.run() {
        panic!("{contract}: the simulation failed: {error}");
    }
    match outcome.lock().unwrap().take() {
        Some(Ok(())) => {}
        Some(Err(violation)) => panic!("{contract}: {violation}"),
        None => panic!("{contract}: the contract never finished"),
    }
}

fn run<F, Fut>(contract: &str, body: F)
where
    F: FnOnce(Fixture<SimProviders>) -> Fut,
    Fut: Future<Output = Result<(), ContractViolation>> + Send + 'static,
{
    run_with(contract, StorageConfiguration::fast_local(), body);
}

moonpool_core::provider_conformance_tests!(run);

/// The same contracts on a disk with realistic latencies, bandwidth and IOPS limits.
mod default_latencies {
    use super::*;

    fn run<F, Fut>(contract: &str, body: F)
    where
        F: FnOnce(Fixture<SimProviders>) -> Fut,
        Fut: Future<Output = Result<(), ContractViolation>> + Send + 'static,
    {
        run_with(contract, StorageConfiguration::disabled(), body);
    }

    moonpool_core::provider_conformance_tests!(run);
}
