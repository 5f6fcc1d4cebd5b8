//! Unit tests of the executor's state: slot layout and the pick's random index.

use super::*;
use rand_core::Rng;
use std::mem::{align_of, offset_of, size_of};

#[test]
fn test_a_pick_and_a_settle_read_the_first_line_of_a_task_slot() {
    assert_eq!(align_of::<Slot>(), 64);
    assert_eq!(size_of::<Slot>(), 128, "two lines");
    assert_eq!(
        size_of::<Option<Task>>(),
        size_of::<Task>(),
        "occupancy is a niche"
    );
    for end in [
        offset_of!(Task, parked) + size_of::<Option<(BoxFuture, Waker)>>(),
        offset_of!(Task, waiting_on) + size_of::<Option<super::super::WaitReason>>(),
    ] {
        assert!(end <= 64, "{end}");
    }
    assert_eq!(size_of::<Mark>(), 24, "a wake's mark is dense");
}

/// Lemire's method as it was written before the split into a fast and a rejecting path.
fn reference_index(rng: &mut ChaCha8Rng, draws: &mut u64, len: usize) -> usize {
    let range = len as u64;
    let mut product = u128::from(rng.next_u64()) * u128::from(range);
    *draws += 1;
    let mut low = product as u64;
    if low < range {
        let threshold = range.wrapping_neg() % range;
        while low < threshold {
            product = u128::from(rng.next_u64()) * u128::from(range);
            *draws += 1;
            low = product as u64;
        }
    }
    (product >> 64) as usize
}

#[test]
#[cfg(target_pointer_width = "64")]
fn test_the_split_random_index_draws_what_the_single_function_drew() {
    let seed = <ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(7);
    let mut shared = Shared::new(seed.clone());
    let state = shared.state.get_mut();
    let mut rng = seed;
    let mut draws = 0;
    // Small lengths, and lengths near 2^63 where about half of the first draws are rejected.
    let lens = [
        2usize,
        3,
        5,
        7,
        100,
        1_000,
        (1 << 63) + 1,
        (1 << 63) + (1 << 62),
        usize::MAX,
    ];
    for round in 0..20_000 {
        let len = lens[round % lens.len()];
        let got = state.random_index(len);
        assert_eq!(
            got,
            reference_index(&mut rng, &mut draws, len),
            "round {round}"
        );
        assert!(got < len);
    }
    assert_eq!(state.random_draws, draws);
    assert!(draws > 20_000, "some draws were rejected: {draws}");
}

#[test]
#[cfg(target_pointer_width = "64")]
fn test_draws_read_ahead_are_handed_out_in_order_and_the_picks_do_not_change() {
    // The same picks as `test_the_split_random_index_draws_what_the_single_function_drew`, with
    // the drain's look-ahead (one or two draws peeked, at every pick or some) in between.
    let seed = <ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(11);
    let mut shared = Shared::new(seed.clone());
    let state = shared.state.get_mut();
    let mut rng = seed;
    let mut draws = 0;
    let lens = [2usize, 3, 1_000, (1 << 63) + 1, usize::MAX, 7];
    let mut guessed = 0;
    for round in 0..20_000 {
        let len = lens[round % lens.len()];
        let peeked = match round % 5 {
            0 => None,
            1 | 2 => Some(state.rng.peek(0)),
            3 => {
                state.rng.peek(1);
                Some(state.rng.peek(0))
            }
            _ => {
                let first = state.rng.peek(0);
                assert_eq!(state.rng.peek(0), first, "a peek is stable");
                Some(first)
            }
        };
        // The snapshot is the generator as if nothing had been read ahead.
        if round % 97 == 0 {
            assert!(state.rng.snapshot() == rng, "round {round}");
        }
        let got = state.random_index(len);
        let expected = reference_index(&mut rng, &mut draws, len);
        assert_eq!(got, expected, "round {round}");
        if let Some(raw) = peeked
            && super::super::ahead::guess_index(raw, len) == got
        {
            guessed += 1;
        }
    }
    assert_eq!(state.random_draws, draws);
    // A guess is wrong only when its first draw is rejected (about half the time at the two
    // lengths near 2^64 / 2, never at the small ones).
    assert!(guessed > 20_000 * 4 / 5 * 3 / 5, "{guessed}");
}

#[test]
fn test_a_reseed_drops_the_draws_read_ahead() {
    let seed = |n| <ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(n);
    let mut shared = Shared::new(seed(1));
    let state = shared.state.get_mut();
    state.rng.peek(1);
    state.rng = PickRng::new(seed(2));
    assert!(state.rng.snapshot() == seed(2));
    assert_eq!(state.rng.next_u64(), seed(2).next_u64());
}

#[test]
fn test_poll_counts_restart_when_the_instant_counter_wraps_its_low_bits() {
    let mut shared = Shared::new(<ChaCha8Rng as rand_core::SeedableRng>::seed_from_u64(1));
    let state = shared.state.get_mut();
    state.marks.push(Mark {
        drain_polls: 7,
        epoch: 0,
        ..Mark::spawned(TaskId(3))
    });
    // Instant 2^32 - 1 counted nothing for the mark; instant 2^32 shares its low bits (0)
    // with instant 0, whose 7 polls must not count in it.
    state.epoch = u64::from(u32::MAX) - 1;
    state.begin_instant();
    assert_eq!(state.marks[0].drain_polls, 7, "no wrap yet");
    state.begin_instant();
    assert_eq!(state.epoch as u32, 0);
    assert_eq!(
        state.marks[0].drain_polls, 0,
        "the wrap restarts every count"
    );
    assert_eq!(state.marks[0].epoch, 0);
    assert!(state.marks[0].holds(TaskId(3)), "and keeps the rest");
}
