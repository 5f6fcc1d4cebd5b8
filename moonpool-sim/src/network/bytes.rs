//! [`ByteQueue`]: the bytes sent towards a half, oldest first.

/// The bytes sent towards a half, oldest first: one contiguous buffer and the index of its
/// first unread byte.
///
/// A write appends at the back and a read takes from the front. A `VecDeque` did the same,
/// but its `extend` stayed out of line and a read had to ask for its two slices; here an
/// append is `Vec::extend_from_slice` and a read copies one slice. Bytes read are not moved
/// at once: the front index advances, the buffer is emptied when the index reaches its end
/// (the common case: every byte read), and the unread bytes are moved to the front before an
/// append when the read part is at least as long as they are. So the buffer holds at most twice
/// its unread bytes plus the last append, and each byte is moved at most once per byte read
/// before it.
#[derive(Default)]
pub(crate) struct ByteQueue {
    buffer: Vec<u8>,
    /// Index of the first unread byte (0 whenever the queue is empty).
    head: usize,
}

impl ByteQueue {
    /// An empty queue that allocates nothing.
    pub(crate) const fn new() -> Self {
        Self {
            buffer: Vec::new(),
            head: 0,
        }
    }

    /// The address of the first unread byte (of the buffer's end when none is queued): a hint
    /// for a prefetch, never read through.
    #[inline]
    pub(crate) fn unread_address(&self) -> usize {
        self.buffer.as_ptr() as usize + self.head
    }

    /// Bytes queued.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        self.buffer.len() - self.head
    }

    /// No byte queued.
    #[inline]
    pub(crate) fn is_empty(&self) -> bool {
        self.buffer.len() == self.head
    }

    /// The buffer's room (queued bytes included).
    #[inline]
    pub(crate) fn capacity(&self) -> usize {
        self.buffer.capacity()
    }

    /// Drops every byte, keeping the buffer.
    #[inline]
    pub(crate) fn clear(&mut self) {
        self.buffer.clear();
        self.head = 0;
    }

    /// Appends `bytes` at the back.
    #[inline]
    pub(crate) fn extend_from_slice(&mut self, bytes: &[u8]) {
        if self.head > 0 && self.head >= self.len() {
            self.compact();
        }
        self.buffer.extend_from_slice(bytes);
    }

    /// Moves the unread bytes to the front of the buffer.
    #[cold]
    fn compact(&mut self) {
        self.buffer.drain(..self.head);
        self.head = 0;
    }

    /// Every queued byte, oldest first.
    #[inline]
    pub(crate) fn as_slice(&self) -> &[u8] {
        self.buffer.get(self.head..).unwrap_or_default()
    }

    /// Drops the `n` oldest bytes (all of them when fewer are queued).
    #[inline]
    pub(crate) fn consume(&mut self, n: usize) {
        if n >= self.len() {
            self.clear();
        } else {
            self.head += n;
        }
    }

    /// The byte `index` places after the oldest, mutably.
    #[inline]
    pub(crate) fn get_mut(&mut self, index: usize) -> Option<&mut u8> {
        let at = self.head.checked_add(index)?;
        self.buffer.get_mut(at)
    }

    /// The queued bytes, oldest first (for tests).
    #[cfg(test)]
    pub(crate) fn iter(&self) -> impl Iterator<Item = &u8> {
        self.as_slice().iter()
    }

    /// Where the buffer's first byte is (for tests: which buffer a queue holds).
    #[cfg(test)]
    pub(crate) fn buffer_ptr(&self) -> *const u8 {
        self.buffer.as_ptr()
    }
}

impl Extend<u8> for ByteQueue {
    /// Appends every byte of `bytes` (tests and rare paths; writes use `extend_from_slice`).
    fn extend<I: IntoIterator<Item = u8>>(&mut self, bytes: I) {
        let bytes: Vec<u8> = bytes.into_iter().collect();
        self.extend_from_slice(&bytes);
    }
}

#[cfg(test)]
mod tests {
    use super::ByteQueue;
    use std::collections::VecDeque;

    /// Random appends and reads of random sizes give the same bytes as a `VecDeque` doing the
    /// same, and the buffer stays within twice the unread bytes plus the last append.
    #[test]
    fn test_a_byte_queue_reads_what_a_deque_would_and_stays_bounded() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = |bound: usize| {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            (state % bound as u64) as usize
        };
        let mut queue = ByteQueue::new();
        let mut model: VecDeque<u8> = VecDeque::new();
        let mut counter = 0u8;
        for _ in 0..20_000 {
            if next(2) == 0 {
                let n = next(300);
                let bytes: Vec<u8> = (0..n)
                    .map(|_| {
                        counter = counter.wrapping_add(1);
                        counter
                    })
                    .collect();
                queue.extend_from_slice(&bytes);
                model.extend(&bytes);
                assert!(
                    queue.buffer.len() <= 2 * queue.len() + n,
                    "{} bytes held for {} unread",
                    queue.buffer.len(),
                    queue.len()
                );
            } else {
                let n = next(400).min(queue.len());
                let front: Vec<u8> = queue.as_slice()[..n].to_vec();
                let expected: Vec<u8> = model.drain(..n).collect();
                assert_eq!(front, expected);
                queue.consume(n);
            }
            assert_eq!(queue.len(), model.len());
            assert_eq!(queue.is_empty(), model.is_empty());
            if let (Some(byte), Some(expected)) = (queue.get_mut(0), model.front()) {
                assert_eq!(*byte, *expected);
            }
            assert!(queue.get_mut(queue.len()).is_none());
        }
        assert!(queue.iter().copied().eq(model.iter().copied()));
    }

    #[test]
    fn test_an_emptied_byte_queue_starts_at_the_front_of_its_buffer() {
        let mut queue = ByteQueue::new();
        queue.extend_from_slice(&[1, 2, 3, 4]);
        let buffer = queue.buffer_ptr();
        queue.consume(3);
        assert_eq!(queue.as_slice(), &[4]);
        queue.consume(5);
        assert!(queue.is_empty());
        queue.extend([9u8, 8]);
        assert_eq!(queue.as_slice(), &[9, 8]);
        assert_eq!(queue.buffer_ptr(), buffer, "the buffer is kept");
        if let Some(byte) = queue.get_mut(1) {
            *byte ^= 1;
        }
        assert_eq!(queue.as_slice(), &[9, 9]);
        assert!(queue.get_mut(usize::MAX).is_none());
        queue.clear();
        assert_eq!((queue.len(), queue.as_slice()), (0, &[][..]));
        assert!(queue.capacity() >= 4);
    }
}
