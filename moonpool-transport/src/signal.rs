//! [`Signal`]: a flag plus one waiter's waker, the cheapest "something changed" notification for
//! a single consumer (a peer's keeper, a connection's writer).
//!
//! The waiter's waker stays in the signal until the consumer replaces it (a notify wakes it by
//! reference, never takes it), so a consumer that registered once knows it is still registered
//! at every later poll and needs no lock or read-modify-write to wait again:
//! [`poll_notified`](Signal::poll_notified) keeps that knowledge in a [`Registration`].
//! No randomness, no queue of waiters: the wake order is the call order.
//!
//! Floor 1: a primitive with no knowledge of the transport.
//!
//! Why no notify is lost (the consumer registers before it tests the flag; a notify sets the
//! flag before it wakes):
//! - the consumer's registration and the notify's wake both hold the waiter's lock, so one
//!   comes first. If the wake comes after the registration, it wakes the waker registered (the
//!   consumer's current one, since only the consumer replaces it). If it comes before, the
//!   flag's store happened before the consumer took the lock (release and acquire of the lock),
//!   so the consumer's test of the flag, after the registration, sees it.
//! - a consumer that did not register at this poll (its waker is the one it registered
//!   earlier, still there: nobody else removes it) tests the flag; if the test misses a
//!   notify's store, that notify's wake of the registered waker has not happened before this
//!   poll began (a wake happens before the poll it causes, which would then see the store), so
//!   it happens during or after this poll and polls the consumer again.
//!
//! (An earlier version kept the waker in a `futures::task::AtomicWaker`, whose wake takes the
//! waker out. A consumer that saw the flag of a notify whose wake had not run yet, and
//! registered again, lost that registration to the late wake; at its next poll it believed
//! itself registered, so the next notify woke nobody: a connection's writer then slept until
//! something else woke its task. `test_signal_late_wake_keeps_the_waiter` replays that
//! interleaving.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Waker};

use crate::spin::SpinLock;

/// A single-consumer notification.
#[derive(Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    /// The consumer's waker, kept until the consumer replaces it. Short critical sections: a
    /// wake by reference (it only schedules the task) or a replacement.
    waiter: SpinLock<Option<Waker>>,
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("set", &self.set.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What a consumer remembers between polls: the waker it left in the signal last (held, so
/// that `will_wake` compares it with a live waker, never with a reused address).
#[derive(Default)]
pub(crate) struct Registration {
    waker: Option<Waker>,
}

impl Signal {
    /// Sets the flag and wakes the registered waiter, if any (by reference: it stays
    /// registered).
    pub(crate) fn notify(&self) {
        self.set_flag();
        self.wake_waiter();
    }

    /// The first half of [`notify`](Self::notify).
    fn set_flag(&self) {
        self.set.store(true, Ordering::Release);
    }

    /// The second half of [`notify`](Self::notify).
    fn wake_waiter(&self) {
        if let Some(waker) = &*self.waiter.lock() {
            waker.wake_by_ref();
        }
    }

    /// Leaves `cx`'s waker in the signal for the next [`notify`](Self::notify), replacing
    /// whatever was there.
    pub(crate) fn register(&self, cx: &Context<'_>) {
        let replaced = {
            let mut waiter = self.waiter.lock();
            if waiter
                .as_ref()
                .is_some_and(|held| held.will_wake(cx.waker()))
            {
                return;
            }
            waiter.replace(cx.waker().clone())
        };
        // Dropped once the lock is released (dropping a waker may run a task's drop).
        drop(replaced);
    }

    /// Clears the flag; true if it was set. A load first: the flag is usually clear (the
    /// connection's writer looks at every poll of its task), and a load is no read-modify-write.
    pub(crate) fn take(&self) -> bool {
        self.set.load(Ordering::Acquire) && self.set.swap(false, Ordering::AcqRel)
    }

    /// For the signal's one consumer, at each poll: makes sure `cx`'s waker is the one
    /// registered (registering it only when it is not the one `registration` says was left
    /// last), then clears the flag; true if it was set (something to do). When false, the
    /// next notify wakes `cx`'s waker. The module docs prove that no notify is lost.
    pub(crate) fn poll_notified(&self, cx: &Context<'_>, registration: &mut Registration) -> bool {
        if !registration
            .waker
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()))
        {
            self.register(cx);
            registration.waker = Some(cx.waker().clone());
        }
        self.take()
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::AtomicUsize;
    use std::task::Wake;

    /// A waker that counts its wakes.
    #[derive(Default)]
    struct Count(AtomicUsize);

    impl Wake for Count {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
        fn wake_by_ref(self: &Arc<Self>) {
            self.0.fetch_add(1, Ordering::SeqCst);
        }
    }

    fn woken(count: &Arc<Count>) -> usize {
        count.0.load(Ordering::SeqCst)
    }

    #[test]
    fn test_signal_late_wake_keeps_the_waiter() {
        // The interleaving of a notify on another thread, one step at a time: its flag is
        // seen before its wake runs.
        let signal = Signal::default();
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let cx = Context::from_waker(&waker);
        let mut registration = Registration::default();
        assert!(!signal.poll_notified(&cx, &mut registration));

        signal.set_flag(); // notify A, first half
        assert!(signal.poll_notified(&cx, &mut registration)); // the consumer sees it
        assert!(!signal.poll_notified(&cx, &mut registration)); // and waits again
        signal.wake_waiter(); // notify A, second half, late
        assert_eq!(woken(&count), 1);
        assert!(!signal.poll_notified(&cx, &mut registration)); // woken: nothing new

        signal.notify(); // notify B must still reach the consumer
        assert_eq!(woken(&count), 2, "notify B woke nobody");
        assert!(signal.poll_notified(&cx, &mut registration));
    }

    #[test]
    fn test_signal_new_waker_replaces_the_old_one() {
        let signal = Signal::default();
        let (first, second) = (Arc::new(Count::default()), Arc::new(Count::default()));
        let first_waker = Waker::from(Arc::clone(&first));
        let second_waker = Waker::from(Arc::clone(&second));
        let mut registration = Registration::default();
        assert!(!signal.poll_notified(&Context::from_waker(&first_waker), &mut registration));
        assert!(!signal.poll_notified(&Context::from_waker(&second_waker), &mut registration));
        signal.notify();
        assert_eq!((woken(&first), woken(&second)), (0, 1));
        // A notify before any registration is kept in the flag.
        let fresh = Signal::default();
        fresh.notify();
        assert!(fresh.poll_notified(
            &Context::from_waker(&first_waker),
            &mut Registration::default()
        ));
    }

    #[test]
    fn test_signal_notifies_across_threads_are_never_lost() {
        // A consumer thread waits (parks) for each of many notifies from another thread,
        // acknowledging each through `done`: a lost notify leaves it parked, and the producer
        // fails after a minute (far longer than any scheduling delay).
        const ROUNDS: usize = 20_000;
        struct Unpark(std::thread::Thread);
        impl Wake for Unpark {
            fn wake(self: Arc<Self>) {
                self.0.unpark();
            }
            fn wake_by_ref(self: &Arc<Self>) {
                self.0.unpark();
            }
        }
        let signal = Arc::new(Signal::default());
        let done = Arc::new(AtomicUsize::new(0));
        let consumer = {
            let (signal, done) = (Arc::clone(&signal), Arc::clone(&done));
            std::thread::spawn(move || {
                let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
                let cx = Context::from_waker(&waker);
                let mut registration = Registration::default();
                let mut seen = 0;
                while seen < ROUNDS {
                    if signal.poll_notified(&cx, &mut registration) {
                        seen += 1;
                        done.store(seen, Ordering::SeqCst);
                    } else {
                        std::thread::park();
                    }
                }
            })
        };
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        for round in 1..=ROUNDS {
            signal.notify();
            while done.load(Ordering::SeqCst) < round {
                assert!(
                    std::time::Instant::now() < deadline,
                    "notify {round} was lost: the consumer sleeps"
                );
                std::thread::yield_now();
            }
        }
        consumer.join().unwrap();
    }
}
