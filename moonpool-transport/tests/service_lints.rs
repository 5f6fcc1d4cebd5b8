//! The code `#[service]` generates compiles without a warning in a crate that denies missing
//! docs and warns on `clippy::pedantic` (clippy runs this file with `-D warnings`), for public and
//! private services, plain and fallible methods, no arguments, many arguments, defaults, bounds
//! and a well-known base.
#![deny(missing_docs)]
#![warn(clippy::pedantic)]

use moonpool_transport::service;
use serde::{Deserialize, Serialize};

/// An error of the linted service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum LintError {
    /// Something went wrong.
    Wrong,
}

/// A public service with every method shape.
#[service(well_known = 9)]
pub trait Linted {
    /// No argument.
    async fn ping(&self) -> ();
    /// Several arguments, owned.
    async fn join(&self, left: String, right: String, separator: char) -> String;
    /// Fallible.
    #[serve(in_flight_max = 4)]
    async fn check(&self, value: u64) -> Result<u64, LintError>;
    /// A default body.
    async fn answer(&self) -> u64 {
        42
    }
}

/// A bound named by a constant.
const SLOW_IN_FLIGHT_MAX: usize = 2;

#[service(in_flight_max = SLOW_IN_FLIGHT_MAX)]
trait Private {
    async fn slow(&self, millis: u64) -> u64;
}

struct Implementation;

impl Linted for Implementation {
    async fn ping(&self) {}
    async fn join(&self, left: String, right: String, separator: char) -> String {
        format!("{left}{separator}{right}")
    }
    async fn check(&self, value: u64) -> Result<u64, LintError> {
        if value == 0 {
            Err(LintError::Wrong)
        } else {
            Ok(value)
        }
    }
}

impl Private for Implementation {
    async fn slow(&self, millis: u64) -> u64 {
        millis
    }
}

#[test]
fn test_generated_code_is_lint_clean() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let providers = moonpool_core::TokioProviders::new();
        let transport = moonpool_transport::NetTransportBuilder::new(providers)
            .local_address("127.0.0.1:0".parse().unwrap())
            .build_listening()
            .await
            .unwrap();
        let server = LintedServer::serve_well_known(&transport, Implementation).unwrap();
        let private = PrivateServer::serve(&transport, Implementation).unwrap();
        let client = LintedClient::well_known(transport.local_address().unwrap());
        assert_eq!(client, server.client());
        client.ping(&transport).get_reply().await.unwrap();
        let joined = client
            .join(&transport, "a".into(), "b".into(), '-')
            .get_reply()
            .await;
        assert_eq!(joined.as_deref(), Ok("a-b"));
        assert_eq!(client.check(&transport, 3).get_reply().await, Ok(3));
        assert_eq!(
            client.check(&transport, 0).get_reply().await,
            Err(moonpool_transport::CallError::Service(LintError::Wrong))
        );
        assert_eq!(client.answer(&transport).get_reply().await, Ok(42));
        assert_eq!(
            private.client().slow(&transport, 5).get_reply().await,
            Ok(5)
        );
    });
}
