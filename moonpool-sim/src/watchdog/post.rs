//! A thread's post: where the worlds one thread runs, one after another, are listed for the
//! watchdog without the registry's lock.
//!
//! The runner's workers run thousands of short seeds a second each. Listing every seed in the
//! registry took its global mutex twice a seed on every worker (and wrote its cache line from
//! both cores). Instead each thread lists one post in the registry, once, the first time it runs
//! a world; a run then writes its world into its own thread's post, under the post's own mutex,
//! which only that thread and the watchdog (once a tick) ever take. Each run has a run number of
//! its own, so the watchdog keeps a stall clock per run exactly as it kept one per registration.
//!
//! A thread runs one world at a time in its post; a world run while its thread's post is taken
//! (a world run from inside a task of another world) is listed in the registry as before.

use std::cell::RefCell;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use super::{Key, Registry, Watched, lock};

/// One thread's post.
pub(super) struct Post {
    /// Its number, unique among the posts of the process (the first half of its runs' keys).
    id: u64,
    /// The world watched now, if any.
    current: Mutex<Current>,
    /// True while a world is in the post: read by the watchdog to tell whether anything is
    /// watched at all, without the post's lock.
    occupied: AtomicBool,
}

/// What a post holds.
struct Current {
    /// Runs listed in this post so far (the second half of a run's key).
    run: u64,
    world: Option<Watched>,
}

impl Post {
    fn lock(&self) -> MutexGuard<'_, Current> {
        self.current.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// True while a world is in the post.
    pub(super) fn occupied(&self) -> bool {
        self.occupied.load(Ordering::SeqCst)
    }

    /// The world in the post, with its run's key (for the watchdog's look, once a tick).
    pub(super) fn look(&self) -> Option<(Key, Arc<Watched>)> {
        let current = self.lock();
        let world = current.world.as_ref()?;
        let copy = Watched {
            seed: world.seed,
            replay: world.replay.clone(),
            stall_limit: world.stall_limit,
            probe: Arc::clone(&world.probe),
        };
        Some(((self.id, current.run), Arc::new(copy)))
    }

    /// Ends the run in the post: its world is no longer watched.
    pub(super) fn vacate(&self) {
        let world = {
            let mut current = self.lock();
            self.occupied.store(false, Ordering::SeqCst);
            current.world.take()
        };
        // The probe (which holds the world's executor) is dropped outside the post's lock.
        drop(world);
    }
}

/// The calling thread's post, listed in the registry on the thread's first use and unlisted
/// when the thread ends.
struct Listed(Arc<Post>);

impl Drop for Listed {
    fn drop(&mut self) {
        let mut worlds = lock(&super::registry().worlds);
        worlds.posts.retain(|post| !Arc::ptr_eq(post, &self.0));
    }
}

thread_local! {
    static POST: RefCell<Option<Listed>> = const { RefCell::new(None) };
}

/// Puts `world` in the calling thread's post (listing the post first if this thread has none);
/// gives the world back when the post is taken (a world already runs in it) or the thread is
/// ending (its post is gone).
pub(super) fn occupy(registry: &Registry, world: Watched) -> Result<Arc<Post>, Watched> {
    let post = POST.try_with(|slot| {
        let mut slot = slot.try_borrow_mut().ok()?;
        if slot.is_none() {
            let mut worlds = lock(&registry.worlds);
            let post = Arc::new(Post {
                id: worlds.next_id,
                current: Mutex::new(Current {
                    run: 0,
                    world: None,
                }),
                occupied: AtomicBool::new(false),
            });
            worlds.next_id += 1;
            worlds.posts.push(Arc::clone(&post));
            *slot = Some(Listed(post));
        }
        slot.as_ref().map(|listed| Arc::clone(&listed.0))
    });
    let Some(post) = post.ok().flatten() else {
        return Err(world);
    };
    let old = {
        let mut current = post.lock();
        if current.world.is_some() {
            return Err(world);
        }
        current.run = current.run.wrapping_add(1);
        let old = current.world.replace(world);
        // Written after the world, under the lock: the watchdog that reads `true` and then
        // locks the post finds the world (or a later one).
        post.occupied.store(true, Ordering::SeqCst);
        old
    };
    drop(old);
    Ok(post)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn watched(seed: u64) -> Watched {
        Watched {
            seed,
            replay: format!("MOONPOOL_SEED={seed}"),
            stall_limit: Some(Duration::from_secs(1)),
            probe: Arc::new(|| (0, None)),
        }
    }

    #[test]
    fn test_a_thread_reuses_its_post_with_a_new_key_per_run() {
        std::thread::spawn(|| {
            let registry = super::super::registry();
            let first = occupy(registry, watched(1)).ok().expect("the post is free");
            let (key1, seen) = first.look().expect("a world is in the post");
            assert_eq!(seen.seed, 1);
            assert!(first.occupied());
            // A second world while the first runs is refused (it goes to the registry instead).
            assert!(occupy(registry, watched(2)).is_err());
            first.vacate();
            assert!(!first.occupied());
            assert!(first.look().is_none());
            let second = occupy(registry, watched(3))
                .ok()
                .expect("the post is free again");
            assert!(Arc::ptr_eq(&first, &second), "one post per thread");
            let (key2, seen) = second.look().expect("a world is in the post");
            assert_eq!(seen.seed, 3);
            assert_eq!(key1.0, key2.0);
            assert_ne!(key1, key2, "each run has a stall clock of its own");
            second.vacate();
            let listed = lock(&registry.worlds)
                .posts
                .iter()
                .any(|post| Arc::ptr_eq(post, &second));
            assert!(listed, "the post is listed while its thread lives");
            second
        })
        .join()
        .map(|post| {
            let listed = lock(&super::super::registry().worlds)
                .posts
                .iter()
                .any(|listed| Arc::ptr_eq(listed, &post));
            assert!(!listed, "a thread's post is unlisted when the thread ends");
        })
        .expect("the thread ran");
    }
}
