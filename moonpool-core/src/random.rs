//! Randomness: one `next_u64` primitive, and typed sampling built on it.
//!
//! Every sampling method is derived from [`RandomProvider::next_u64`], so a provider backed by a
//! seeded generator (the simulator's) yields the same values for the same seed on every platform.

use std::ops::{Range, RangeInclusive};
use std::time::Duration;

/// A source of raw 64-bit random words; the input of [`Random`] and [`SampleRange`].
pub trait RandomSource {
    /// The next uniformly distributed 64-bit word.
    fn next_u64(&mut self) -> u64;
}

impl<F: FnMut() -> u64> RandomSource for F {
    fn next_u64(&mut self) -> u64 {
        self()
    }
}

/// Types that can be drawn uniformly from their whole domain.
///
/// Floats are drawn from `[0, 1)`.
pub trait Random: Sized {
    /// Draws one value.
    fn random(source: &mut impl RandomSource) -> Self;
}

macro_rules! random_int {
    ($($t:ty),*) => {$(
        impl Random for $t {
            #[allow(clippy::cast_possible_truncation, clippy::cast_possible_wrap)]
            fn random(source: &mut impl RandomSource) -> Self {
                source.next_u64() as $t
            }
        }
    )*};
}
random_int!(u8, u16, u32, u64, usize, i8, i16, i32, i64, isize);

impl Random for u128 {
    fn random(source: &mut impl RandomSource) -> Self {
        (u128::from(source.next_u64()) << 64) | u128::from(source.next_u64())
    }
}

impl Random for i128 {
    #[allow(clippy::cast_possible_wrap)]
    fn random(source: &mut impl RandomSource) -> Self {
        u128::random(source) as i128
    }
}

impl Random for bool {
    fn random(source: &mut impl RandomSource) -> Self {
        source.next_u64() >> 63 == 1
    }
}

impl Random for f64 {
    fn random(source: &mut impl RandomSource) -> Self {
        unit_f64(source.next_u64())
    }
}

impl Random for f32 {
    #[allow(clippy::cast_precision_loss)]
    fn random(source: &mut impl RandomSource) -> Self {
        (source.next_u64() >> 40) as f32 * (1.0 / (1u32 << 24) as f32)
    }
}

impl<const N: usize> Random for [u8; N] {
    fn random(source: &mut impl RandomSource) -> Self {
        let mut out = [0u8; N];
        fill_bytes(source, &mut out);
        out
    }
}

/// Maps a word onto `[0, 1)` using its top 53 bits.
#[allow(clippy::cast_precision_loss)]
fn unit_f64(word: u64) -> f64 {
    (word >> 11) as f64 * (1.0 / (1u64 << 53) as f64)
}

/// Fills `dest` from `source`, eight bytes per word, little-endian.
pub fn fill_bytes(source: &mut impl RandomSource, dest: &mut [u8]) {
    for chunk in dest.chunks_mut(8) {
        let word = source.next_u64().to_le_bytes();
        chunk.copy_from_slice(&word[..chunk.len()]);
    }
}

/// An unbiased draw in `[0, span)` (Lemire's multiply-and-reject). `span` must be non-zero.
fn below(source: &mut impl RandomSource, span: u64) -> u64 {
    let threshold = span.wrapping_neg() % span;
    loop {
        let product = u128::from(source.next_u64()) * u128::from(span);
        #[allow(clippy::cast_possible_truncation)]
        let low = product as u64;
        if low >= threshold {
            #[allow(clippy::cast_possible_truncation)]
            return (product >> 64) as u64;
        }
    }
}

/// Ranges that values can be drawn from.
///
/// An empty range (`5..5`) or an inverted one yields its start **without consuming randomness**:
/// a configuration range of zero width means "always this value", and drawing nothing keeps the
/// rest of a seeded run unchanged.
pub trait SampleRange<T> {
    /// Draws a value in the range.
    fn sample(self, source: &mut impl RandomSource) -> T;
}

macro_rules! sample_int {
    ($($t:ty => $u:ty),*) => {$(
        impl SampleRange<$t> for Range<$t> {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
            fn sample(self, source: &mut impl RandomSource) -> $t {
                if self.start >= self.end {
                    return self.start;
                }
                let span = (self.end as $u).wrapping_sub(self.start as $u) as u64;
                (self.start as $u).wrapping_add(below(source, span) as $u) as $t
            }
        }
        impl SampleRange<$t> for RangeInclusive<$t> {
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss, clippy::cast_possible_wrap)]
            fn sample(self, source: &mut impl RandomSource) -> $t {
                let (start, end) = self.into_inner();
                if start >= end {
                    return start;
                }
                let span = ((end as $u).wrapping_sub(start as $u) as u64).wrapping_add(1);
                let offset = if span == 0 { source.next_u64() } else { below(source, span) };
                (start as $u).wrapping_add(offset as $u) as $t
            }
        }
    )*};
}
sample_int!(
    u8 => u8, u16 => u16, u32 => u32, u64 => u64, usize => usize,
    i8 => u8, i16 => u16, i32 => u32, i64 => u64, isize => usize
);

impl SampleRange<f64> for Range<f64> {
    fn sample(self, source: &mut impl RandomSource) -> f64 {
        if self.start.partial_cmp(&self.end) != Some(std::cmp::Ordering::Less) {
            return self.start;
        }
        let value = between(self.start, self.end, unit_f64(source.next_u64()));
        // Rounding can land exactly on `end`; keep the range half-open.
        if value < self.end { value } else { self.start }
    }
}

impl SampleRange<f64> for RangeInclusive<f64> {
    fn sample(self, source: &mut impl RandomSource) -> f64 {
        let (start, end) = self.into_inner();
        if start.partial_cmp(&end) != Some(std::cmp::Ordering::Less) {
            return start;
        }
        between(start, end, unit_f64(source.next_u64())).min(end)
    }
}

/// `start + unit * (end - start)` for `start < end`, also when the span is wider than `f64::MAX`
/// (`f64::MIN..f64::MAX`): then at half scale, which cannot overflow, and doubled.
fn between(start: f64, end: f64, unit: f64) -> f64 {
    let span = end - start;
    if span.is_finite() {
        start + unit * span
    } else {
        let (half_start, half_end) = (start / 2.0, end / 2.0);
        (half_start + unit * (half_end - half_start)) * 2.0
    }
}

#[allow(clippy::cast_possible_truncation)]
fn duration_from_nanos(nanos: u128) -> Duration {
    let secs = (nanos / 1_000_000_000) as u64;
    Duration::new(secs, (nanos % 1_000_000_000) as u32)
}

impl SampleRange<Duration> for Range<Duration> {
    fn sample(self, source: &mut impl RandomSource) -> Duration {
        if self.start >= self.end {
            return self.start;
        }
        let span = (self.end - self.start).as_nanos();
        self.start + duration_from_nanos(nanos_below(source, span))
    }
}

/// A uniform count of nanoseconds in `0..span` (`span > 0`).
fn nanos_below(source: &mut impl RandomSource, span: u128) -> u128 {
    match u64::try_from(span) {
        Ok(span) => u128::from(below(source, span)),
        Err(_) => u128::random(source) % span,
    }
}

impl SampleRange<Duration> for RangeInclusive<Duration> {
    fn sample(self, source: &mut impl RandomSource) -> Duration {
        let (start, end) = self.into_inner();
        if start >= end {
            return start;
        }
        // The span in nanoseconds plus one, not `end + 1ns`, which overflows at `Duration::MAX`
        // (the same draws otherwise).
        let span = (end - start).as_nanos() + 1;
        start + duration_from_nanos(nanos_below(source, span))
    }
}

/// Randomness.
///
/// Implementations provide [`next_u64`](Self::next_u64); everything else derives from it.
/// Production uses an OS-seeded ChaCha generator ([`crate::TokioRandomProvider`]); simulation uses
/// the world's seeded generator, so the same seed draws the same values.
pub trait RandomProvider: Clone + Send + Sync + 'static {
    /// The next uniformly distributed 64-bit word.
    fn next_u64(&self) -> u64;

    /// A value of any [`Random`] type (integers, `bool`, floats in `[0, 1)`, byte arrays).
    fn random<T: Random>(&self) -> T {
        T::random(&mut || self.next_u64())
    }

    /// A value in `range` (`a..b` or `a..=b`; integers, floats and [`Duration`]s).
    ///
    /// An empty or inverted range yields its start and consumes no randomness.
    fn random_range<T, R: SampleRange<T>>(&self, range: R) -> T {
        range.sample(&mut || self.next_u64())
    }

    /// A float in `[0, 1)`.
    fn random_ratio(&self) -> f64 {
        unit_f64(self.next_u64())
    }

    /// `true` with probability `probability`.
    ///
    /// A probability of zero or less is always `false` and one or more always `true`; neither
    /// consumes randomness, so a fault configured off never shifts the rest of a seeded run.
    fn random_bool(&self, probability: f64) -> bool {
        if probability.is_nan() || probability <= 0.0 {
            false
        } else if probability >= 1.0 {
            true
        } else {
            self.random_ratio() < probability
        }
    }

    /// Fills `dest` with random bytes.
    fn fill_bytes(&self, dest: &mut [u8]) {
        fill_bytes(&mut || self.next_u64(), dest);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Counter(u64);
    impl RandomSource for Counter {
        fn next_u64(&mut self) -> u64 {
            // SplitMix64: well distributed and reproducible.
            self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
            let mut z = self.0;
            z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
            z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
            z ^ (z >> 31)
        }
    }

    #[test]
    fn test_ranges_stay_in_bounds() {
        let mut source = Counter(7);
        for _ in 0..10_000 {
            let v: i32 = (-5..5).sample(&mut source);
            assert!((-5..5).contains(&v));
            let v: u8 = (250..=255u8).sample(&mut source);
            assert!(v >= 250);
            let v: f64 = (1.0..2.0).sample(&mut source);
            assert!((1.0..2.0).contains(&v));
            let d = (Duration::from_millis(1)..Duration::from_millis(3)).sample(&mut source);
            assert!(d >= Duration::from_millis(1) && d < Duration::from_millis(3));
        }
    }

    #[test]
    fn test_full_inclusive_range_and_all_values_reached() {
        let mut source = Counter(1);
        let _: u64 = (0..=u64::MAX).sample(&mut source);
        let mut seen = [false; 6];
        for _ in 0..1_000 {
            let v: usize = (0..6).sample(&mut source);
            seen[v] = true;
        }
        assert!(seen.iter().all(|s| *s));
    }

    #[test]
    #[allow(clippy::reversed_empty_ranges)]
    fn test_empty_range_consumes_nothing() {
        let mut draws = 0;
        let mut source = || {
            draws += 1;
            42
        };
        assert_eq!((5u32..5).sample(&mut source), 5);
        assert_eq!((9i64..3).sample(&mut source), 9);
        assert_eq!((2.0..2.0).sample(&mut source), 2.0);
        assert_eq!(draws, 0);
    }
}
