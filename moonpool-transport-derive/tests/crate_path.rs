//! `#[service(crate = path)]` reaches `moonpool_transport` through any path, as a crate that
//! depends only on the `moonpool` facade does (`::moonpool::transport`, which the macro picks
//! by itself when the facade is the dependency it finds in `Cargo.toml`).
#![allow(missing_docs, clippy::unwrap_used)]

/// A stand-in for the facade: the transport re-exported under another path.
mod facade {
    pub use moonpool_transport as transport;
}

#[facade::transport::service(crate = crate::facade::transport)]
pub trait Doubler {
    async fn double(&self, x: u64) -> u64;
}

struct Two;

impl Doubler for Two {
    async fn double(&self, x: u64) -> u64 {
        2 * x
    }
}

#[test]
fn test_the_crate_path_can_be_given() {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let providers = moonpool_core::TokioProviders::new();
        let transport = facade::transport::NetTransportBuilder::new(providers)
            .local_address("127.0.0.1:0".parse().unwrap())
            .build_listening()
            .await
            .unwrap();
        let server = DoublerServer::serve(&transport, Two).unwrap();
        // Local delivery: the client calls through the server's own transport.
        let doubled = server.client().double(&transport, 21).get_reply().await;
        assert_eq!(doubled, Ok(42));
    });
}
