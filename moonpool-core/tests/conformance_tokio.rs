//! The provider conformance suite against the Tokio providers: real loopback TCP, real files in a
//! temporary directory, the real clock.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::future::Future;

use moonpool_core::conformance::{ContractViolation, Fixture};
use moonpool_core::{TokioProviders, TokioStorageProvider};

fn run<F, Fut>(contract: &str, body: F)
where
    F: FnOnce(Fixture<TokioProviders>) -> Fut,
    Fut: Future<Output = Result<(), ContractViolation>> + Send + 'static,
{
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let providers = TokioProviders::new().with_storage(TokioStorageProvider::with_root(dir.path()));
    let fixture = Fixture::new(providers, "127.0.0.1:0", "");
    let outcome = runtime.block_on(async move { tokio::spawn(body(fixture)).await });
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(violation)) => panic!("{contract}: {violation}"),
        Err(join_error) => panic!("{contract}: contract task failed: {join_error}"),
    }
}

moonpool_core::provider_conformance_tests!(run);
