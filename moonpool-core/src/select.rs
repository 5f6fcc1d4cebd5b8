//! Deterministic [`select!`](crate::select!).
//!
//! `tokio::select!` polls its branches starting from a random index drawn from a thread-local
//! generator seeded by the operating system. That keeps production fair, but it makes a simulated
//! run depend on something other than its seed. Moonpool's `select!` has the same syntax and
//! semantics; only the starting branch comes from [`select_offset`]:
//!
//! - inside a simulation, from a source the simulator installs with [`install_offset_source`]
//!   (drawn from the world's seeded generator, so a seed replays exactly);
//! - everywhere else, from a per-thread generator seeded from the operating system, as Tokio does.
//!
//! # `biased;` or fair?
//!
//! - **Guards** (work versus shutdown, work versus timeout): write `biased;` and put the work
//!   branch first. The order is then fixed by the code, which is what you mean.
//! - **Genuine races** (send versus receive on one connection, accept versus progress): leave the
//!   order fair. In simulation each seed then explores a different winner when both are ready.

use std::cell::{Cell, RefCell};
use std::hash::{BuildHasher, Hasher};

type OffsetSource = Box<dyn FnMut(u32) -> u32>;

thread_local! {
    static OFFSET_SOURCE: RefCell<Option<OffsetSource>> = const { RefCell::new(None) };
    static FALLBACK_STATE: Cell<u64> = const { Cell::new(0) };
}

/// Removes the installed source when dropped (restoring the one it replaced).
#[must_use = "the source is uninstalled when the guard is dropped"]
pub struct OffsetSourceGuard {
    previous: Option<OffsetSource>,
}

impl Drop for OffsetSourceGuard {
    fn drop(&mut self) {
        let previous = self.previous.take();
        // `try_with`: during thread teardown the slot may already be gone; nothing to restore then.
        let _ = OFFSET_SOURCE.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                *slot = previous;
            }
        });
    }
}

/// Installs `source` as this thread's origin of `select!` starting offsets until the guard drops.
///
/// `source(n)` must return a value in `0..n`. Used by the simulator for the duration of a run; the
/// guard makes sure no run leaves its source behind, even when it panics.
pub fn install_offset_source(source: impl FnMut(u32) -> u32 + 'static) -> OffsetSourceGuard {
    let previous = OFFSET_SOURCE.with(|slot| slot.borrow_mut().replace(Box::new(source)));
    OffsetSourceGuard { previous }
}

/// The branch a fair `select!` with `branches` branches polls first this time.
///
/// Called by the macro on every poll. Not meant to be called by hand.
#[doc(hidden)]
pub fn select_offset(branches: u32) -> u32 {
    if branches <= 1 {
        return 0;
    }
    let installed = OFFSET_SOURCE.with(|slot| {
        slot.try_borrow_mut()
            .ok()
            .and_then(|mut source| source.as_mut().map(|source| source(branches)))
    });
    match installed {
        Some(offset) => offset % branches,
        None => fallback_offset(branches),
    }
}

/// Per-thread xorshift generator seeded from the OS (through `RandomState`), used outside
/// simulations. Lemire's reduction keeps it unbiased enough for fairness.
fn fallback_offset(branches: u32) -> u32 {
    FALLBACK_STATE.with(|state| {
        let mut x = state.get();
        if x == 0 {
            x = std::collections::hash_map::RandomState::new()
                .build_hasher()
                .finish()
                | 1;
        }
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        state.set(x);
        #[allow(clippy::cast_possible_truncation)]
        let offset = ((u64::from(x as u32) * u64::from(branches)) >> 32) as u32;
        offset
    })
}

/// Waits on several futures at once and runs the handler of the first to complete.
///
/// Same syntax and semantics as `tokio::select!` (patterns, `if` preconditions, `else`,
/// `biased;`), but the starting branch of a fair select comes from [`select_offset`], so it is
/// seeded in simulation. See the [module docs](mod@crate::select) for when to use `biased;`.
///
/// ```
/// # let rt = tokio::runtime::Builder::new_current_thread().build().unwrap();
/// # rt.block_on(async {
/// let (tx, mut rx) = tokio::sync::mpsc::channel::<u32>(1);
/// tx.send(7).await.unwrap();
/// let got = moonpool_core::select! {
///     Some(v) = rx.recv() => v,
///     _ = std::future::pending::<()>() => 0,
/// };
/// assert_eq!(got, 7);
/// # });
/// ```
#[macro_export]
macro_rules! select {
    (biased; $($rest:tt)*) => {
        $crate::__private::tokio::select!(biased; $($rest)*)
    };
    (else => $($rest:tt)*) => {
        $crate::__private::tokio::select!(else => $($rest)*)
    };
    ($($rest:tt)+) => {
        $crate::__private::tokio::select!(@{
            start = { $crate::select::select_offset(BRANCHES) };
            ()
        } $($rest)+)
    };
    () => {
        compile_error!("select! requires at least one branch.")
    };
}
