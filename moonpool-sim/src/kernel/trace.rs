//! The run fingerprint: a hash folded over every processed event and every scheduling decision.
//!
//! Two runs of one seed must produce the same fingerprint; a difference means something other than
//! the seed leaked into the run.

/// A 64-bit running hash (FNV-1a over words, then a final mix).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceHash {
    state: u64,
    words: u64,
}

impl Default for TraceHash {
    fn default() -> Self {
        Self {
            state: 0xcbf2_9ce4_8422_2325,
            words: 0,
        }
    }
}

impl TraceHash {
    /// A hash that starts from `seed`, so that two seeds' runs differ in fingerprint even when
    /// they fail before their first event.
    pub fn for_seed(seed: u64) -> Self {
        let mut hash = Self::default();
        hash.fold(seed);
        hash
    }

    /// Folds one word.
    #[inline]
    pub fn fold(&mut self, word: u64) {
        self.state = (self.state ^ word).wrapping_mul(0x0000_0100_0000_01b3);
        self.words += 1;
    }

    /// The fingerprint so far.
    pub fn value(&self) -> u64 {
        let mut z = self.state ^ self.words;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
}

/// One processed event, as recorded when [`WorldConfig::record_trace`](crate::WorldConfig::record_trace) is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TraceEntry {
    /// Simulated time, in nanoseconds.
    pub at_nanos: u64,
    /// Event kind code (see [`TraceEntry::kind_name`]).
    pub kind: u64,
    /// The object the event is about (timer, connection half, file operation, process).
    pub object: u64,
    /// Hash of the task polls that ran before this event.
    pub schedule_hash: u64,
    /// The event's sequence number (for a send record: the sequence of its delivery).
    pub sequence: u64,
    /// Index of the process the event concerns, or `u32::MAX`.
    pub process: u32,
    /// For deliveries and sends, the process at the other end, or `u32::MAX`.
    pub peer: u32,
}

/// `TraceEntry::kind` of a send record (a write whose delivery is scheduled).
pub const TRACE_SEND: u64 = 0x180;

/// `TraceEntry::kind` of a fault mark: a fault of the kind whose stream number is `object`
/// fired here (see `Core::mark`). Recorded in the trace only, never folded into the fingerprint.
pub const TRACE_FAULT: u64 = 0x500;

impl TraceEntry {
    /// A readable name for the event kind.
    pub fn kind_name(&self) -> &'static str {
        match self.kind >> 8 {
            0 => "timer",
            1 if self.kind == TRACE_SEND => "network send",
            1 => match self.kind & 0xff {
                1 => "network delivery",
                2 => "network FIN",
                3 => "network reset",
                4 => "network half-open timeout",
                _ => "network event",
            },
            2 => "storage completion",
            3 => "process lifecycle",
            5 => "fault",
            _ => "event",
        }
    }
}
