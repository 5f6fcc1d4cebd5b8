//! [`Signal`]: a flag plus one waiter's waker, the cheapest "something changed" notification for
//! a single consumer (a peer's keeper, a connection's writer).
//!
//! The consumer arms the signal with its waker; a notify sets the flag and, if the signal is
//! armed, disarms it and wakes that waker (by reference: the waker stays, so arming it again
//! clones nothing). The consumer arms it again when it sees the flag, or when its waker
//! changed; otherwise it knows it is still armed and waits again with no lock or
//! read-modify-write ([`poll_notified`](Signal::poll_notified)). A notify and an arming each
//! take the waiter's lock, and a notify sets the flag inside it. No randomness, no queue of
//! waiters: the wake order is the call order, and one wake per arming, as before the lock.
//!
//! Floor 1: a primitive with no knowledge of the transport.
//!
//! Why no notify is lost:
//! - while the consumer is armed with its current waker, a notify wakes it. The consumer is
//!   disarmed only by a notify, which sets the flag in the same critical section.
//! - a consumer that sees the flag arms again under the lock, so after the critical section of
//!   the notify that set it (which may still be running when the flag is seen): that notify's
//!   disarming cannot undo the new arming, and the next notify finds it armed.
//! - a consumer that does not see the flag and believes itself armed: either it is armed, or
//!   a notify disarmed it after setting a flag this poll's test missed. That notify's wake then
//!   did not happen before this poll began (a wake happens before the poll it causes, which would
//!   see the flag), so it happens during or after this poll and polls the consumer again.
//! - a consumer that arms (a new waker) tests the flag after arming: a notify whose critical
//!   section came first set the flag before the arming took the lock, so the test sees it; one
//!   that came after wakes the new waker.
//!
//! (An earlier version kept the waker in a `futures::task::AtomicWaker` and set the flag before
//! the wake, outside any lock. A consumer that saw the flag of a notify whose wake had not run
//! yet, and registered again, lost that registration to the late wake (which takes the waker
//! out); at its next poll it believed itself registered, so the next notify woke nobody: a
//! connection's writer then slept until something else woke its task.
//! `test_signal_flag_seen_before_the_wake_keeps_the_consumer_armed` replays that interleaving.)

use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Waker};

use crate::spin::SpinLock;

/// A single-consumer notification.
#[derive(Default)]
pub(crate) struct Signal {
    set: AtomicBool,
    /// The consumer's waker and whether it is armed. Short critical sections: a wake by
    /// reference (it only schedules the task) or an arming.
    waiter: SpinLock<Waiter>,
}

#[derive(Default)]
struct Waiter {
    waker: Option<Waker>,
    armed: bool,
}

impl std::fmt::Debug for Signal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Signal")
            .field("set", &self.set.load(Ordering::Relaxed))
            .finish_non_exhaustive()
    }
}

/// What a consumer remembers between polls: the waker it armed the signal with last (held, so
/// that `will_wake` compares it with a live waker, never with a reused address).
#[derive(Default)]
pub(crate) struct Registration {
    waker: Option<Waker>,
}

impl Signal {
    /// Sets the flag and, if the signal is armed, disarms it and wakes its waker.
    pub(crate) fn notify(&self) {
        let mut waiter = self.waiter.lock();
        self.set.store(true, Ordering::Release);
        if std::mem::take(&mut waiter.armed)
            && let Some(waker) = &waiter.waker
        {
            waker.wake_by_ref();
        }
    }

    /// Arms the signal with `cx`'s waker for the next [`notify`](Self::notify).
    pub(crate) fn register(&self, cx: &Context<'_>) {
        let replaced = {
            let mut waiter = self.waiter.lock();
            waiter.armed = true;
            if waiter
                .waker
                .as_ref()
                .is_some_and(|held| held.will_wake(cx.waker()))
            {
                return;
            }
            waiter.waker.replace(cx.waker().clone())
        };
        // Dropped once the lock is released (dropping a waker may run a task's drop).
        drop(replaced);
    }

    /// Clears the flag; true if it was set. A load first: the flag is usually clear (the
    /// connection's writer looks at every poll of its task), and a load is no read-modify-write.
    #[inline]
    pub(crate) fn take(&self) -> bool {
        self.set.load(Ordering::Acquire) && self.set.swap(false, Ordering::AcqRel)
    }

    /// For the signal's one consumer, at each poll: arms the signal with `cx`'s waker when it
    /// is not the one `registration` says was armed last, then clears the flag; when the flag
    /// was set (something to do, and the notify that set it disarmed the signal), arms it again
    /// and returns true. When false, the next notify wakes `cx`'s waker. The module docs prove
    /// that no notify is lost.
    #[inline]
    pub(crate) fn poll_notified(&self, cx: &Context<'_>, registration: &mut Registration) -> bool {
        let fresh = !registration
            .waker
            .as_ref()
            .is_some_and(|waker| waker.will_wake(cx.waker()));
        if fresh {
            self.register(cx);
            registration.waker = Some(cx.waker().clone());
        }
        let notified = self.take();
        if notified && !fresh {
            self.register(cx);
        }
        notified
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
    fn test_signal_flag_seen_before_the_wake_keeps_the_consumer_armed() {
        // The interleaving that lost notifies: a consumer on another thread sees a notify's flag
        // while that notify has yet to wake it. Here the notify's critical section is opened
        // by hand (the lock held, the flag set), the consumer polls meanwhile, then the section
        // ends (disarm and wake); a second notify must still reach the consumer.
        let signal = Arc::new(Signal::default());
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let mut registration = Registration::default();
        assert!(!signal.poll_notified(&Context::from_waker(&waker), &mut registration));

        let section = signal.waiter.lock(); // notify A begins
        signal.set.store(true, Ordering::Release);
        let consumer = {
            let (signal, waker) = (Arc::clone(&signal), waker.clone());
            std::thread::spawn(move || {
                // Sees A's flag; arms again once A's section is over.
                let seen = signal.poll_notified(&Context::from_waker(&waker), &mut registration);
                (seen, registration)
            })
        };
        std::thread::sleep(std::time::Duration::from_millis(50));
        let mut section = section; // notify A ends: disarm, wake
        assert!(std::mem::take(&mut section.armed));
        if let Some(waker) = &section.waker {
            waker.wake_by_ref();
        }
        drop(section);
        let (seen, mut registration) = consumer.join().unwrap();
        assert!(seen);
        assert_eq!(woken(&count), 1);
        assert!(!signal.poll_notified(&Context::from_waker(&waker), &mut registration));

        signal.notify(); // notify B must still reach the consumer
        assert_eq!(woken(&count), 2, "notify B woke nobody");
        assert!(signal.poll_notified(&Context::from_waker(&waker), &mut registration));
    }

    #[test]
    fn test_signal_wakes_once_per_arming() {
        // As the AtomicWaker it replaced: notifies after a wake wake nobody until the
        // consumer arms again (what seeds replay).
        let signal = Signal::default();
        let count = Arc::new(Count::default());
        let waker = Waker::from(Arc::clone(&count));
        let cx = Context::from_waker(&waker);
        let mut registration = Registration::default();
        assert!(!signal.poll_notified(&cx, &mut registration));
        signal.notify();
        signal.notify();
        assert_eq!(woken(&count), 1);
        assert!(signal.poll_notified(&cx, &mut registration));
        signal.notify();
        assert_eq!(woken(&count), 2);
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
