//! Everything a test or a service usually needs, in one import: `use moonpool::prelude::*;`.
//!
//! Provider methods come from traits, so without the trait in scope a call such as
//! `providers.random().random::<u64>()` fails with "no method named `random`". The prelude
//! brings in every provider trait, Tokio's `AsyncReadExt`/`AsyncWriteExt`/`AsyncSeekExt` (for
//! streams and files), the chaos macros, `select!`, and, with their features, the simulation
//! types and the transport's types.
//!
//! ```
//! use moonpool::prelude::*;
//!
//! async fn roll<P: Providers>(providers: &P) -> u64 {
//!     providers.random().random_range(1..7)
//! }
//!
//! let report = SimulationBuilder::new("prelude")
//!     .workload("dice", 1, |ctx| async move {
//!         let face = roll(&ctx.providers).await;
//!         assert_always!((1..7).contains(&face), "a die shows one to six");
//!         Ok(())
//!     })
//!     .iterations(IterationControl::FixedCount(3))
//!     .run()
//!     .unwrap();
//! report.assert_success();
//! ```

pub use moonpool_core::{
    JoinHandle, NetworkProvider, OpenOptions, Providers, RandomProvider, StorageFile,
    StorageProvider, TaskProvider, TcpListener, TimeProvider,
};
pub use moonpool_core::{
    assert_always, assert_always_or_unreachable, assert_reachable, assert_sometimes,
    assert_sometimes_all, assert_sometimes_each, assert_unreachable, buggify, buggify_with_prob,
    select,
};
pub use tokio::io::{AsyncReadExt, AsyncSeekExt, AsyncWriteExt};

#[cfg(feature = "tokio")]
pub use moonpool_core::TokioProviders;

#[cfg(feature = "sim")]
pub use moonpool_sim::{
    Chaos, FaultContext, IterationControl, Locality, ProcessContext, RebootKind, SimProviders,
    SimWorld, SimulationBuilder, SimulationReport, StateHandle, Topology, WorkloadContext,
    WorkloadError, WorldConfig,
};

#[cfg(feature = "transport")]
pub use moonpool_transport::{
    NetTransport, NetTransportBuilder, ReplyError, TransportError, service,
};
