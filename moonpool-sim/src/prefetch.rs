//! A cache prefetch: the one CPU hint the engine gives, for memory it is about to read among
//! many connections or tasks (see `executor::ahead` and the run loop's delivery prefetch).

/// Asks the CPU to bring the line at `address` into its caches; does nothing elsewhere than
/// x86-64. Never faults and has no effect a program can observe but its speed.
#[inline(always)]
pub(crate) fn prefetch<T: ?Sized>(address: *const T) {
    #[cfg(target_arch = "x86_64")]
    {
        use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
        // SAFETY: `_mm_prefetch` is `unsafe` only for its `#[target_feature(enable = "sse")]`:
        // the caller must run on a CPU with SSE. Every x86-64 CPU has it (SSE and SSE2 are part
        // of the x86-64 baseline, which is why rustc's `x86_64` targets enable them), so this
        // code cannot run on a CPU without it. The instruction itself reads nothing the program
        // sees and never faults, whatever `address` is (dangling, null, unmapped): it is a hint
        // the CPU may ignore, so no requirement on `address` exists to be broken.
        unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast::<i8>()) };
    }
    #[cfg(not(target_arch = "x86_64"))]
    let _ = address;
}
