//! Memory shared by every process of an exploration: one anonymous `MAP_SHARED` mapping, made by
//! the root before its first fork (so every child inherits it) and unmapped when the root drops it.
//! Children never unmap it: they leave with `_exit` and the kernel releases their view.

use std::ptr::NonNull;

use crate::error::ExploreError;

/// A type whose all-zero bit pattern is a valid value (a fresh anonymous mapping is zero-filled).
///
/// # Safety
/// Implement only for types made of atomics and arrays of atomics (or other zero-valid types),
/// with no invariant that zero bytes would break.
pub(crate) unsafe trait ZeroValid: Sync {}

/// One value of `T` in shared memory.
pub(crate) struct Region<T: ZeroValid> {
    ptr: NonNull<T>,
    len: usize,
}

// SAFETY: the region is a pointer to memory that stays mapped as long as the `Region` lives, and
// `T: Sync` (atomics only), so it may be used and moved across threads like `&T`.
unsafe impl<T: ZeroValid> Send for Region<T> {}
// SAFETY: as above; shared access goes through `&T`, which is `Sync`.
unsafe impl<T: ZeroValid> Sync for Region<T> {}

impl<T: ZeroValid> Region<T> {
    /// Maps a zero-filled shared region holding one `T`.
    #[cfg(unix)]
    pub(crate) fn new() -> Result<Self, ExploreError> {
        let len = std::mem::size_of::<T>().max(1);
        // SAFETY: an anonymous mapping with no address hint and no file descriptor has no
        // preconditions; the result is checked against MAP_FAILED below.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANON,
                -1,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(ExploreError::SharedMemory {
                bytes: len,
                reason: std::io::Error::last_os_error().to_string(),
            });
        }
        let ptr = NonNull::new(ptr.cast::<T>()).ok_or_else(|| ExploreError::SharedMemory {
            bytes: len,
            reason: "mmap returned a null pointer".to_string(),
        })?;
        Ok(Self { ptr, len })
    }

    /// Without `fork`, there is nothing to share with.
    #[cfg(not(unix))]
    pub(crate) fn new() -> Result<Self, ExploreError> {
        Err(ExploreError::Unsupported {
            platform: std::env::consts::OS,
        })
    }

    /// The shared value.
    pub(crate) fn get(&self) -> &T {
        // SAFETY: the mapping is page-aligned (so aligned for `T`), `len` bytes long, zero-filled
        // at creation (a valid `T`, see `ZeroValid`), and mapped until `self` is dropped; `T` is
        // only accessed through shared references to atomics.
        unsafe { self.ptr.as_ref() }
    }

    /// The mapping's address, for tests that check it is gone after the drop.
    pub(crate) fn address(&self) -> usize {
        self.ptr.as_ptr() as usize
    }

    /// The mapping's length in bytes.
    pub(crate) fn len(&self) -> usize {
        self.len
    }
}

impl<T: ZeroValid> Drop for Region<T> {
    fn drop(&mut self) {
        #[cfg(unix)]
        // SAFETY: `ptr` and `len` are exactly what mmap returned and was asked for; nothing
        // borrows the region any more (the borrow checker ties every `&T` to `self`).
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}
