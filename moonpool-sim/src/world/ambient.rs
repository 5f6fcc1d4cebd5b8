//! The providers of the task being polled, for code that cannot take them as a parameter
//! (adapters behind a fixed signature, libraries that construct their own clients).

use std::cell::RefCell;
use std::sync::Arc;

use crate::kernel::rng::SharedStream;

use crate::executor::Spawner;
use crate::handle::WorldHandle;
use crate::providers::SimProviders;

/// What building a task's providers takes, installed on the thread for the length of a run.
struct Ambient {
    handle: WorldHandle,
    spawner: Spawner,
    app_rng: SharedStream,
}

thread_local! {
    static AMBIENT: RefCell<Option<Ambient>> = const { RefCell::new(None) };
}

/// Removes the run's ambient parts when the run ends, on every exit path.
pub(super) struct AmbientGuard {
    previous: Option<Ambient>,
}

impl Drop for AmbientGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        AMBIENT.with(|slot| *slot.borrow_mut() = previous);
    }
}

/// Installs a run's parts on this thread until the guard drops.
pub(super) fn install(
    handle: WorldHandle,
    spawner: Spawner,
    app_rng: SharedStream,
) -> AmbientGuard {
    let ambient = Ambient {
        handle,
        spawner,
        app_rng,
    };
    let previous = AMBIENT.with(|slot| slot.borrow_mut().replace(ambient));
    AmbientGuard { previous }
}

/// The providers of the simulated process whose task is running now, as its body received them:
/// the same IP, disk, drifting clock and seeded randomness. `None` outside a simulated task (on
/// Tokio, outside a run, or in an invariant).
///
/// Prefer passing providers as a parameter; this is for code that cannot take one. It never
/// reads anything outside the world, so it keeps runs deterministic.
///
/// ```
/// use moonpool_core::{NetworkProvider, Providers};
/// use moonpool_sim::{Locality, SimWorld, WorldConfig, current_providers};
///
/// /// A library function with a fixed signature: it finds its own providers.
/// async fn bind_default() -> bool {
///     let Some(providers) = current_providers() else { return false };
///     providers.network().bind("0.0.0.0:80").await.is_ok()
/// }
///
/// let mut world = SimWorld::with_config(1, WorldConfig::quiet()).unwrap();
/// world.add_process("server", "10.0.0.1", Locality::default(), |_ctx| async {
///     assert!(bind_default().await);
/// }).unwrap();
/// world.add_workload("client", "10.0.0.2", |_p| async {}).unwrap();
/// world.run().unwrap();
/// assert!(current_providers().is_none(), "outside a run there are none");
/// ```
pub fn current_providers() -> Option<SimProviders> {
    AMBIENT.with(|slot| {
        let slot = slot.borrow();
        let ambient = slot.as_ref()?;
        let owner = ambient.spawner.current_owner()??;
        Some(SimProviders::new(
            ambient.handle.clone(),
            ambient.spawner.clone(),
            owner,
            Arc::clone(&ambient.app_rng),
        ))
    })
}
