//! [`TransportHandle`]: what user-facing types hold, the core and a share of the transport's
//! lifetime; the last one dropped shuts the transport down.

use std::sync::Arc;

use super::core::Core;

/// Shuts the transport down when the last user-facing handle goes.
struct Lifetime {
    core: Arc<Core>,
}

impl Drop for Lifetime {
    fn drop(&mut self) {
        self.core.shutdown();
    }
}

/// What user-facing types hold: a share of the transport's lifetime, which holds the core. One
/// reference count, so cloning a handle (each request's future holds one) is one atomic
/// increment.
#[derive(Clone)]
pub(crate) struct TransportHandle {
    lifetime: Arc<Lifetime>,
}

impl TransportHandle {
    /// The first handle of a transport: when it and every clone are gone, the core shuts down.
    pub(crate) fn new(core: Arc<Core>) -> Self {
        Self {
            lifetime: Arc::new(Lifetime { core }),
        }
    }

    /// The transport's shared state.
    #[inline]
    pub(crate) fn core(&self) -> &Arc<Core> {
        &self.lifetime.core
    }
}
