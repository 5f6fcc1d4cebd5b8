//! The `SIGABRT` handler and the static table of running seeds it reads.

use std::sync::Once;
use std::sync::atomic::{AtomicBool, AtomicU8, AtomicU64, AtomicUsize, Ordering};

/// Worlds named at once; more are counted.
const SLOTS: usize = 64;
/// Bytes of a replay command kept for the handler; longer ones are cut.
const REPLAY_BYTES: usize = 256;

/// Aligned to two cache lines: the workers of a runner each write their own slot for every seed,
/// and slots sharing a line would move it between their cores at every write.
#[repr(align(128))]
struct Slot {
    /// Taken by a registration.
    claimed: AtomicBool,
    /// Seed and replay are written: the handler may read them.
    published: AtomicBool,
    seed: AtomicU64,
    replay_len: AtomicUsize,
    replay: [AtomicU8; REPLAY_BYTES],
}

static SLOT_TABLE: [Slot; SLOTS] = [const {
    Slot {
        claimed: AtomicBool::new(false),
        published: AtomicBool::new(false),
        seed: AtomicU64::new(0),
        replay_len: AtomicUsize::new(0),
        replay: [const { AtomicU8::new(0) }; REPLAY_BYTES],
    }
}; SLOTS];

/// Running worlds that found no free slot.
static UNLISTED: AtomicUsize = AtomicUsize::new(0);

/// Lists a running world for the handler; the slot it took, if any.
pub(super) fn publish(seed: u64, replay: &str) -> Option<usize> {
    thread_local! {
        /// The slot this thread took last: tried first, so that threads registering one world
        /// after another keep to their own slots instead of all trying (and writing) the first.
        static LAST: std::cell::Cell<usize> = const { std::cell::Cell::new(0) };
    }
    let start = LAST.with(std::cell::Cell::get) % SLOTS;
    let order = (start..SLOTS).chain(0..start);
    for index in order {
        let Some(slot) = SLOT_TABLE.get(index) else {
            continue;
        };
        if slot
            .claimed
            .compare_exchange(false, true, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            slot.seed.store(seed, Ordering::Relaxed);
            let bytes = replay.as_bytes();
            let len = bytes.len().min(REPLAY_BYTES);
            for (cell, byte) in slot.replay.iter().zip(bytes) {
                cell.store(*byte, Ordering::Relaxed);
            }
            slot.replay_len.store(len, Ordering::Relaxed);
            slot.published.store(true, Ordering::Release);
            LAST.with(|last| last.set(index));
            return Some(index);
        }
    }
    UNLISTED.fetch_add(1, Ordering::Relaxed);
    None
}

/// Unlists a world.
pub(super) fn withdraw(slot: Option<usize>) {
    match slot.and_then(|index| SLOT_TABLE.get(index)) {
        Some(slot) => {
            slot.published.store(false, Ordering::Release);
            slot.claimed.store(false, Ordering::Release);
        }
        None => {
            UNLISTED.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

/// Installs the handler once, unless `SIGABRT` already has a handler of someone else's.
pub(super) fn install() {
    static INSTALLED: Once = Once::new();
    INSTALLED.call_once(|| {
        // SAFETY: sigaction with a null new action only reads the current one into `old`,
        // a plain C struct for which all-zero bytes are a valid value.
        let current = unsafe {
            let mut old: libc::sigaction = std::mem::zeroed();
            (libc::sigaction(libc::SIGABRT, std::ptr::null(), &mut old) == 0)
                .then_some(old.sa_sigaction)
        };
        if current != Some(libc::SIG_DFL) {
            return;
        }
        let handler: extern "C" fn(libc::c_int) = on_abort;
        // SAFETY: `new` is fully initialised (zeroed, then an empty mask, the handler and
        // its flags); `on_abort` is async-signal-safe (it only reads atomics and calls
        // write(2) and raise(3)), and SA_RESETHAND makes the disposition default again on
        // entry, so a second abort inside it ends the process.
        unsafe {
            let mut new: libc::sigaction = std::mem::zeroed();
            libc::sigemptyset(&mut new.sa_mask);
            new.sa_sigaction = handler as libc::sighandler_t;
            new.sa_flags = libc::SA_RESETHAND;
            libc::sigaction(libc::SIGABRT, &new, std::ptr::null_mut());
        }
    });
}

/// Writes the running seeds, then re-raises `SIGABRT` with its default disposition.
extern "C" fn on_abort(_signal: libc::c_int) {
    let unlisted = UNLISTED.load(Ordering::Relaxed);
    let mut listed = 0usize;
    for slot in &SLOT_TABLE {
        if !slot.published.load(Ordering::Acquire) {
            continue;
        }
        write_bytes(if listed == 0 {
            b"\nmoonpool: the process aborted while running seed(s) "
        } else {
            b", "
        });
        write_u64(slot.seed.load(Ordering::Relaxed));
        listed += 1;
    }
    if listed == 0 && unlisted > 0 {
        write_bytes(b"\nmoonpool: the process aborted while running seeds");
    }
    if unlisted > 0 {
        write_bytes(b" (and ");
        write_u64(unlisted as u64);
        write_bytes(b" more not listed)");
    }
    if listed > 0 || unlisted > 0 {
        write_bytes(
            b" (a failed allocation aborts too: look for 'memory allocation of N bytes failed' \
              above).\n",
        );
    }
    for slot in &SLOT_TABLE {
        if !slot.published.load(Ordering::Acquire) {
            continue;
        }
        write_bytes(b"  seed ");
        write_u64(slot.seed.load(Ordering::Relaxed));
        write_bytes(b": replay: ");
        let mut replay = [0u8; REPLAY_BYTES];
        let len = slot.replay_len.load(Ordering::Relaxed).min(REPLAY_BYTES);
        for (byte, cell) in replay.iter_mut().zip(&slot.replay).take(len) {
            *byte = cell.load(Ordering::Relaxed);
        }
        write_bytes(replay.get(..len).unwrap_or_default());
        write_bytes(b"\n");
    }
    // SAFETY: raise is async-signal-safe. SA_RESETHAND restored the default disposition, so
    // the re-raised signal ends the process by SIGABRT once this handler returns (or at once).
    unsafe {
        libc::raise(libc::SIGABRT);
    }
}

/// A decimal number, formatted on the stack.
fn write_u64(mut value: u64) {
    let mut digits = [0u8; 20];
    let mut start = digits.len();
    loop {
        start -= 1;
        if let Some(digit) = digits.get_mut(start) {
            *digit = b'0' + (value % 10) as u8;
        }
        value /= 10;
        if value == 0 || start == 0 {
            break;
        }
    }
    write_bytes(digits.get(start..).unwrap_or_default());
}

/// write(2) to stderr until done or failing.
fn write_bytes(mut bytes: &[u8]) {
    while !bytes.is_empty() {
        // SAFETY: the pointer and length describe a live byte slice; write is
        // async-signal-safe.
        let written = unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
        match usize::try_from(written) {
            Ok(0) | Err(_) => return,
            Ok(n) => bytes = bytes.get(n..).unwrap_or_default(),
        }
    }
}
