//! A wall-clock watchdog outside every world: the last resort against a run that cannot end by
//! itself.
//!
//! A task that spins inside one poll (`loop {}`) never returns control to the executor, so no
//! simulated check can see it; a workload that allocates without bound takes the machine down
//! before any check runs; an abort (a failed allocation aborts) ends the process without naming
//! the seed. The watchdog covers these three cases. It only reads: it never touches a world's
//! state, its clock, its random streams or its schedule, so it cannot change what a run does (a
//! seed replays the same with or without it). It acts only to end a process that is already lost.
//!
//! # What is watched
//!
//! One thread per process (`moonpool-watchdog`), started by the first [`SimWorld::run`] of the
//! process. Each run registers its world for its length; several worlds (the runner's parallel
//! seeds) are watched at once. A run is listed in its thread's post (`post.rs`: listed in the
//! registry once per thread, then written by that thread alone), so the runner's workers list
//! their seeds without a lock they share; a world run while its thread's post is taken (from
//! inside another world's task) is listed in the registry itself. While no world is registered the thread sleeps on a condition
//! variable and costs nothing; otherwise it wakes every [`TICK`] (200 ms) and:
//!
//! - **Stalls.** For each world it reads the number of polls the world's executor has started
//!   and the task being polled now. If the number has not moved for the world's stall limit, the
//!   world's thread is stuck: either a task is inside one poll (a loop that never awaits:
//!   simulated time cannot advance until it returns), or no task is being polled and the thread
//!   is busy outside the executor (a long invariant or other callback, or a hang in the simulator
//!   itself). Either way the watchdog prints the seed, the task (or that no task is being
//!   polled), how long, and the replay command to stderr, then ends the process with exit code
//!   [`WATCHDOG_EXIT_CODE`] (86): a poll cannot be interrupted from outside. A stall is noticed
//!   at most two ticks after its limit. The limit is `WorldConfig::watchdog_stall` (default 60 s;
//!   `None`: the world's stalls are not watched); `MOONPOOL_WATCHDOG_SECS` overrides it for every
//!   world: a non-negative decimal number of seconds (`2`, `0.5`), `0` turns stall watching off.
//! - **Memory** (Linux). It reads the process's resident set size (`/proc/self/statm`). Above
//!   the limit it prints the resident size, the limit, and the seed and replay command of every
//!   world registered at that moment (one of them allocates without bound), then ends the
//!   process with the same exit code. The limit is `MOONPOOL_MEMORY_LIMIT_MB` (a non-negative
//!   whole number of mebibytes; `0` turns the memory check off), by default three quarters of the
//!   machine's memory (`MemTotal` in `/proc/meminfo`, or the cgroup v2 `memory.max` of the
//!   process if that is smaller); no limit if neither can be read, and none on other systems. The
//!   limit is read when the watchdog thread starts.
//! - **Aborts** (Unix). On the first run of the process, if `SIGABRT` has its default
//!   disposition, a handler is installed that writes the seeds (and replay commands) of the
//!   worlds running at that moment to stderr, then lets the abort go on with the default
//!   disposition, so the process still dies by `SIGABRT`. The handler only reads a fixed static
//!   table (64 worlds at once, more are counted but not named; replay commands cut at 256
//!   bytes) and calls `write(2)`: it allocates nothing and takes no lock. It stays installed
//!   after the runs end and writes nothing while no world runs.
//!
//! A bad `MOONPOOL_WATCHDOG_SECS` or `MOONPOOL_MEMORY_LIMIT_MB` is reported once on stderr and
//! ignored here (the watchdog cannot return errors); [`stall_override`] and
//! [`memory_limit_override`] let a caller refuse it at setup instead.
//!
//! Wall-clock time ([`Instant`]) is used only here, outside every simulated world, to observe.
//!
//! [`SimWorld::run`]: crate::SimWorld::run

use std::collections::BTreeMap;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Once, OnceLock, PoisonError};
use std::time::{Duration, Instant};

/// What the watchdog reads from a world: polls started so far and the `process/task` label of
/// the task being polled now.
pub(crate) type ProgressProbe = Arc<dyn Fn() -> (u64, Option<String>) + Send + Sync + 'static>;

/// The exit code of a process ended by the watchdog (a stall or the memory limit). An abort keeps
/// its own status (killed by `SIGABRT`).
pub const WATCHDOG_EXIT_CODE: i32 = 86;

/// How often the watchdog thread looks at the registered worlds.
pub(crate) const TICK: Duration = Duration::from_millis(200);

/// A gap between two looks this much longer than [`TICK`] means the whole process was suspended
/// (`SIGSTOP`, a debugger): every stall clock restarts rather than firing on time nobody ran.
const SUSPENDED_GAP: Duration = Duration::from_secs(5);

/// The environment variable that overrides every world's stall limit.
const STALL_VAR: &str = "MOONPOOL_WATCHDOG_SECS";

/// The environment variable that sets the resident memory limit.
const MEMORY_VAR: &str = "MOONPOOL_MEMORY_LIMIT_MB";

/// A world to watch.
pub(crate) struct Watched {
    /// The world's seed.
    pub(crate) seed: u64,
    /// The command that replays the seed.
    pub(crate) replay: String,
    /// How long the progress may stand still before the process is ended; `None`: not watched.
    pub(crate) stall_limit: Option<Duration>,
    /// Reads the world's progress.
    pub(crate) probe: ProgressProbe,
}

/// Keeps a world watched; dropping it stops watching.
pub(crate) struct Registration {
    /// Where the world is listed: its thread's post, or an entry of the registry's own.
    listing: Listing,
    #[cfg(unix)]
    abort_slot: Option<usize>,
}

/// Where a watched world is listed.
enum Listing {
    /// Not listed (a forked child).
    Nowhere,
    /// In the registry's entries, under this id (a world run while its thread's post is taken,
    /// for instance a world run from inside a task of another).
    Entry(u64),
    /// In its thread's post (see [`post`]).
    Post(Arc<post::Post>),
}

/// Set in a process forked by the determinism check or by an exploration: its watchdog thread did
/// not survive the fork and its registry lock may have been held by a thread that is gone, so
/// worlds there are not watched (the parent, or the explorer's timeline budget, bounds the
/// child's time instead).
static FORKED_CHILD: AtomicBool = AtomicBool::new(false);

/// Marks this process as a forked child: from now on `watch` registers nothing.
pub(crate) fn in_forked_child() {
    FORKED_CHILD.store(true, Ordering::SeqCst);
}

/// True in a process forked by the determinism check or an exploration.
pub(crate) fn is_forked_child() -> bool {
    FORKED_CHILD.load(Ordering::SeqCst)
}

impl Drop for Registration {
    fn drop(&mut self) {
        // In a forked child the registry is a copy nobody reads, and its lock may have been held
        // by the watchdog thread at the fork (that thread does not exist here): leave it alone.
        if FORKED_CHILD.load(Ordering::SeqCst) {
            return;
        }
        match &self.listing {
            Listing::Nowhere => return,
            Listing::Entry(id) => {
                lock(&registry().worlds).entries.remove(id);
            }
            Listing::Post(post) => post.vacate(),
        }
        #[cfg(unix)]
        abort::withdraw(self.abort_slot);
    }
}

/// Starts watching `world` until the returned registration is dropped.
pub(crate) fn watch(world: Watched) -> Registration {
    if FORKED_CHILD.load(Ordering::SeqCst) {
        return Registration {
            listing: Listing::Nowhere,
            #[cfg(unix)]
            abort_slot: None,
        };
    }
    let world = Watched {
        stall_limit: effective_stall_limit(world.stall_limit),
        ..world
    };
    register(world)
}

/// [`watch`] for a world whose stall limit is already what the environment says (see
/// [`stall_limit_once`]).
pub(crate) fn watch_resolved(world: Watched) -> Registration {
    if FORKED_CHILD.load(Ordering::SeqCst) {
        return Registration {
            listing: Listing::Nowhere,
            #[cfg(unix)]
            abort_slot: None,
        };
    }
    register(world)
}

fn register(world: Watched) -> Registration {
    #[cfg(unix)]
    abort::install();
    #[cfg(unix)]
    let abort_slot = abort::publish(world.seed, &world.replay);
    let registry = registry();
    start_thread(registry);
    // The common case (the runner's seeds, one world after another on each worker thread): the
    // thread's own post, taken without the registry's lock. The registry is locked only once per
    // thread, when its post is first listed.
    let world = match post::occupy(registry, world) {
        Ok(post) => {
            wake_if_idle(registry);
            return Registration {
                listing: Listing::Post(post),
                #[cfg(unix)]
                abort_slot,
            };
        }
        Err(world) => world,
    };
    let id = {
        let mut worlds = lock(&registry.worlds);
        let id = worlds.next_id;
        worlds.next_id += 1;
        worlds.entries.insert(id, Arc::new(world));
        id
    };
    wake_if_idle(registry);
    Registration {
        listing: Listing::Entry(id),
        #[cfg(unix)]
        abort_slot,
    }
}

/// Wakes the watchdog thread if it sleeps without a timeout (no world was watched): called after
/// a world is listed. Otherwise it looks again within a tick anyway, and waking it for every
/// short run (the runner's seeds, thousands a second) would cost a context switch per seed.
///
/// No wake is lost: the lister writes its listing, then reads `idle` (both sequentially
/// consistent); the watchdog writes `idle`, then reads every listing under the registry's lock
/// before it waits. One of the two sees the other's write: either the lister sees `idle` and
/// notifies under the lock (which the watchdog holds from its reads until it waits), or the
/// watchdog sees the listing and does not sleep.
fn wake_if_idle(registry: &Registry) {
    if registry.idle.load(Ordering::SeqCst) {
        let _worlds = lock(&registry.worlds);
        registry.changed.notify_all();
    }
}

/// `MOONPOOL_WATCHDOG_SECS`: `Ok(None)` if unset or empty, `Ok(Some(None))` for `0` (stall
/// watching off), `Ok(Some(Some(limit)))` otherwise; `Err` names the bad value.
pub(crate) fn stall_override() -> Result<Option<Option<Duration>>, String> {
    let Some(value) = read_var(STALL_VAR)? else {
        return Ok(None);
    };
    let limit = parse_seconds(&value).ok_or_else(|| {
        format!(
            "{STALL_VAR}='{value}' is not a non-negative number of seconds (e.g. 2 or 0.5; 0 turns \
             the watchdog off)"
        )
    })?;
    if limit.is_zero() && value.bytes().any(|b| (b'1'..=b'9').contains(&b)) {
        // Not the documented off value: a limit finer than a `Duration` holds.
        return Err(format!(
            "{STALL_VAR}='{value}' is below a nanosecond, the finest limit there is (0 turns the \
             watchdog off)"
        ));
    }
    Ok(Some((!limit.is_zero()).then_some(limit)))
}

/// `MOONPOOL_MEMORY_LIMIT_MB` in bytes: `Ok(None)` if unset or empty, `Ok(Some(None))` for `0`
/// (memory check off), `Ok(Some(Some(bytes)))` otherwise; `Err` names the bad value.
pub(crate) fn memory_limit_override() -> Result<Option<Option<u64>>, String> {
    let Some(value) = read_var(MEMORY_VAR)? else {
        return Ok(None);
    };
    let megabytes = parse_whole(&value).ok_or_else(|| {
        format!(
            "{MEMORY_VAR}='{value}' is not a non-negative whole number of mebibytes (e.g. 4096; 0 \
             turns the memory check off)"
        )
    })?;
    Ok(Some(
        (megabytes > 0).then(|| megabytes.saturating_mul(1 << 20)),
    ))
}

/// Reads an environment variable; unset and empty are the same.
fn read_var(name: &str) -> Result<Option<String>, String> {
    match std::env::var(name) {
        Ok(value) if value.is_empty() => Ok(None),
        Ok(value) => Ok(Some(value)),
        Err(std::env::VarError::NotPresent) => Ok(None),
        Err(std::env::VarError::NotUnicode(_)) => Err(format!("{name} is not valid UTF-8")),
    }
}

/// `digits` or `digits.digits`, nothing else (no sign, exponent, spaces, `inf`).
fn parse_seconds(value: &str) -> Option<Duration> {
    let (whole, fraction) = value.split_once('.').unwrap_or((value, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    if !digits(whole) || !digits(fraction) {
        return None;
    }
    let seconds: f64 = value.parse().ok()?;
    Duration::try_from_secs_f64(seconds).ok()
}

/// ASCII digits only.
fn parse_whole(value: &str) -> Option<u64> {
    if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    value.parse().ok()
}

/// The world's own limit unless `MOONPOOL_WATCHDOG_SECS` overrides it (a bad value is reported
/// once and ignored).
/// The stall limit a world configured with `configured` gets, for a caller that registers many
/// worlds with the same configuration: `None` when `MOONPOOL_WATCHDOG_SECS` has a bad value (each
/// world then reads it again and the first reports it, as [`watch`] does).
pub(crate) fn stall_limit_once(configured: Option<Duration>) -> Option<Option<Duration>> {
    match stall_override() {
        Ok(Some(limit)) => Some(limit),
        Ok(None) => Some(configured),
        Err(_) => None,
    }
}

fn effective_stall_limit(configured: Option<Duration>) -> Option<Duration> {
    static REPORTED: AtomicBool = AtomicBool::new(false);
    match stall_override() {
        Ok(Some(limit)) => limit,
        Ok(None) => configured,
        Err(message) => {
            if !REPORTED.swap(true, Ordering::Relaxed) {
                report(&format!("moonpool watchdog: {message}; ignored.\n"));
            }
            configured
        }
    }
}

/// Writes straight to the process's stderr (not through `eprint!`, which a test harness may
/// capture into a buffer that is lost when the process ends).
fn report(text: &str) {
    let mut stderr = std::io::stderr().lock();
    let _ = stderr.write_all(text.as_bytes());
    let _ = stderr.flush();
}

// ---------------------------------------------------------------------------------------------
// The registry and the thread

struct Registry {
    worlds: Mutex<Worlds>,
    /// Signalled when the first world registers while none was.
    changed: Condvar,
    /// True while the thread sleeps without a timeout (no world watched): only then does a
    /// registration need to wake it (see [`wake_if_idle`]). Written by the watchdog thread only,
    /// and only when it goes to sleep or wakes, so reading it costs a world's thread no shared
    /// write.
    idle: AtomicBool,
}

struct Worlds {
    next_id: u64,
    entries: BTreeMap<u64, Arc<Watched>>,
    /// Every thread's post, listed once per thread (see [`post`]).
    posts: Vec<Arc<post::Post>>,
}

fn registry() -> &'static Registry {
    static REGISTRY: OnceLock<Registry> = OnceLock::new();
    REGISTRY.get_or_init(|| Registry {
        worlds: Mutex::new(Worlds {
            next_id: 0,
            entries: BTreeMap::new(),
            posts: Vec::new(),
        }),
        changed: Condvar::new(),
        idle: AtomicBool::new(false),
    })
}

/// Which world a stall clock belongs to: `(ENTRY, id)` for an entry of the registry,
/// `(post id, run)` for a run in a thread's post, so that every run has a clock of its own.
type Key = (u64, u64);

/// The first half of an entry's [`Key`] (posts are numbered from 0).
const ENTRY: u64 = u64::MAX;

impl Worlds {
    /// True while some world is watched.
    fn watching(&self) -> bool {
        !self.entries.is_empty() || self.posts.iter().any(|post| post.occupied())
    }

    /// Every world watched now.
    fn snapshot(&self) -> Vec<(Key, Arc<Watched>)> {
        let mut worlds: Vec<(Key, Arc<Watched>)> = self
            .entries
            .iter()
            .map(|(id, world)| ((ENTRY, *id), Arc::clone(world)))
            .collect();
        worlds.extend(self.posts.iter().filter_map(|post| post.look()));
        worlds
    }
}

/// The registry's lock; a panic elsewhere never disables the watchdog.
fn lock(worlds: &Mutex<Worlds>) -> MutexGuard<'_, Worlds> {
    worlds.lock().unwrap_or_else(PoisonError::into_inner)
}

fn start_thread(registry: &'static Registry) {
    static STARTED: Once = Once::new();
    STARTED.call_once(|| {
        let spawned = std::thread::Builder::new()
            .name("moonpool-watchdog".to_string())
            .spawn(move || watchdog_loop(registry));
        if let Err(error) = spawned {
            report(&format!(
                "moonpool watchdog: cannot start its thread ({error}); runs are not watched.\n"
            ));
        }
    });
}

fn watchdog_loop(registry: &'static Registry) -> ! {
    let memory_limit = memory_limit();
    let mut stalls = Stalls::default();
    let mut last_look = Instant::now();
    loop {
        let worlds: Vec<(Key, Arc<Watched>)> = {
            let mut guard = lock(&registry.worlds);
            if !guard.watching() {
                // Idle: sleep until a world registers (it wakes us, seeing `idle`; see
                // `wake_if_idle` for why no wake is lost).
                registry.idle.store(true, Ordering::SeqCst);
                while !guard.watching() {
                    guard = registry
                        .changed
                        .wait(guard)
                        .unwrap_or_else(PoisonError::into_inner);
                }
                registry.idle.store(false, Ordering::SeqCst);
                stalls.clear();
            } else {
                guard = registry
                    .changed
                    .wait_timeout(guard, TICK)
                    .map_or_else(|e| e.into_inner().0, |(guard, _)| guard);
            }
            guard.snapshot()
        };
        // The probes take each executor's lock: called with the registry unlocked, so that a
        // world thread registering or leaving never waits on us.
        let now = Instant::now();
        if now.duration_since(last_look) > TICK + SUSPENDED_GAP {
            stalls.restart(now);
        }
        last_look = now;
        if let Some(limit) = memory_limit
            && let Some(resident) = resident_bytes()
            && resident > limit
        {
            report(&memory_report(resident, limit, &worlds));
            std::process::exit(WATCHDOG_EXIT_CODE);
        }
        stalls.retain(|id| worlds.iter().any(|(known, _)| *known == id));
        for (id, world) in &worlds {
            let Some(limit) = world.stall_limit else {
                continue;
            };
            // A probe that panics (it should not) leaves the world unwatched this tick rather
            // than ending the watchdog thread.
            let probe = std::panic::AssertUnwindSafe(|| (world.probe)());
            let Ok((polls, current)) = std::panic::catch_unwind(probe) else {
                continue;
            };
            let stalled = stalls.observe(*id, polls, now);
            if stalled >= limit {
                report(&stall_report(
                    *id,
                    world,
                    current.as_deref(),
                    stalled,
                    limit,
                    &worlds,
                ));
                std::process::exit(WATCHDOG_EXIT_CODE);
            }
        }
    }
}

/// When each world's poll count last moved.
#[derive(Default)]
struct Stalls {
    seen: BTreeMap<Key, (u64, Instant)>,
}

impl Stalls {
    /// Records `polls` for world `id` at `now`; returns how long the count has stood still.
    fn observe(&mut self, id: Key, polls: u64, now: Instant) -> Duration {
        let entry = self.seen.entry(id).or_insert((polls, now));
        if entry.0 != polls {
            *entry = (polls, now);
        }
        now.saturating_duration_since(entry.1)
    }

    fn retain(&mut self, mut keep: impl FnMut(Key) -> bool) {
        self.seen.retain(|id, _| keep(*id));
    }

    fn restart(&mut self, now: Instant) {
        for entry in self.seen.values_mut() {
            entry.1 = now;
        }
    }

    fn clear(&mut self) {
        self.seen.clear();
    }
}

fn stall_report(
    id: Key,
    world: &Watched,
    task: Option<&str>,
    stalled: Duration,
    limit: Duration,
    worlds: &[(Key, Arc<Watched>)],
) -> String {
    let seconds = stalled.as_secs_f64();
    let mut text = match task {
        Some(task) => format!(
            "moonpool watchdog: seed {seed}: task '{task}' has run inside one poll for at least \
             {seconds:.1} s of wall time without returning to the executor (a loop that never awaits: \
             simulated time cannot advance until it does). The watchdog ends the process because \
             a poll cannot be interrupted.\n",
            seed = world.seed,
        ),
        None => format!(
            "moonpool watchdog: seed {seed}: the world's thread has made no progress for at \
             least {seconds:.1} s of wall time and no task is being polled: it is stuck outside the \
             executor (a long invariant or other callback, or a hang in the simulator itself). The \
             watchdog ends the process because the run cannot be interrupted.\n",
            seed = world.seed,
        ),
    };
    text.push_str(&format!("  replay: {}\n", world.replay));
    text.push_str(&format!(
        "  limit: {:.1} s (WorldConfig::watchdog_stall; {STALL_VAR} overrides it, 0 turns the \
         watchdog off)\n",
        limit.as_secs_f64()
    ));
    let others: Vec<String> = worlds
        .iter()
        .filter(|(other_id, _)| *other_id != id)
        .map(|(_, other)| other.seed.to_string())
        .collect();
    if !others.is_empty() {
        text.push_str(&format!(
            "  also running in this process, unfinished: seed(s) {}\n",
            others.join(", ")
        ));
    }
    text
}

fn memory_report(resident: u64, limit: u64, worlds: &[(Key, Arc<Watched>)]) -> String {
    let mut text = format!(
        "moonpool watchdog: the process's resident memory is {} MiB, above the limit of {} MiB \
         ({MEMORY_VAR}; default 3/4 of the machine's memory): a workload allocates without bound. \
         The watchdog ends the process before the machine runs out of memory. Seed(s) running:\n",
        resident >> 20,
        limit >> 20,
    );
    for (_, world) in worlds {
        text.push_str(&format!(
            "  seed {}: replay: {}\n",
            world.seed, world.replay
        ));
    }
    text
}

#[cfg(unix)]
mod abort;
mod memory;
mod post;

use memory::{memory_limit, resident_bytes};

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_parse_strictly() {
        assert_eq!(parse_seconds("2"), Some(Duration::from_secs(2)));
        assert_eq!(parse_seconds("0.5"), Some(Duration::from_millis(500)));
        assert_eq!(parse_seconds("0"), Some(Duration::ZERO));
        assert_eq!(parse_seconds("10.25"), Some(Duration::from_millis(10_250)));
        for bad in [
            "", "-1", "+1", " 2", "2 ", "1e3", "inf", "NaN", ".5", "1.", "1.2.3", "abc", "2s",
        ] {
            assert_eq!(parse_seconds(bad), None, "{bad:?}");
        }
        assert_eq!(parse_seconds(&"9".repeat(400)), None);
    }

    #[test]
    fn whole_numbers_parse_strictly() {
        assert_eq!(parse_whole("300"), Some(300));
        assert_eq!(parse_whole("0"), Some(0));
        for bad in ["", "-1", "+1", "1.5", " 1", "1k", "99999999999999999999999"] {
            assert_eq!(parse_whole(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn meminfo_total_is_read_in_bytes() {
        let text = "MemTotal:       24683652 kB\nMemFree:  1 kB\n";
        assert_eq!(memory::meminfo_total(text), Some(24_683_652 * 1024));
        assert_eq!(memory::meminfo_total("MemFree: 1 kB\n"), None);
        assert_eq!(memory::meminfo_total("MemTotal: 12 MB\n"), None);
    }

    #[test]
    fn a_count_that_moves_is_not_a_stall() {
        let mut stalls = Stalls::default();
        let start = Instant::now();
        let later = |ms| start + Duration::from_millis(ms);
        assert_eq!(stalls.observe((0, 1), 5, start), Duration::ZERO);
        assert_eq!(
            stalls.observe((0, 1), 5, later(300)),
            Duration::from_millis(300)
        );
        assert_eq!(stalls.observe((0, 1), 6, later(600)), Duration::ZERO);
        assert_eq!(
            stalls.observe((0, 1), 6, later(1000)),
            Duration::from_millis(400)
        );
        // Another world keeps its own clock.
        assert_eq!(stalls.observe((0, 2), 6, later(1000)), Duration::ZERO);
        stalls.restart(later(2000));
        assert_eq!(
            stalls.observe((0, 1), 6, later(2100)),
            Duration::from_millis(100)
        );
        stalls.retain(|id| id == (0, 2));
        assert_eq!(stalls.observe((0, 1), 6, later(3000)), Duration::ZERO);
    }
}
