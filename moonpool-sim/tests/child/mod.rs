//! Re-running the calling test binary as a child process on one ignored `child_*` case (a no-op
//! unless `MOONPOOL_WATCHDOG_CHILD=1`), for tests of what ends a process (the watchdog, aborts):
//! `watchdog.rs` and `hostile_watchdog.rs`.
#![allow(dead_code)]

use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Set in a child: run the `child_*` case for real.
pub const CHILD_VAR: &str = "MOONPOOL_WATCHDOG_CHILD";
/// The watchdog's exit code (`WATCHDOG_EXIT_CODE` in `src/watchdog.rs`).
pub const WATCHDOG_EXIT_CODE: i32 = 86;
/// Longest a child may take before the test kills it and fails.
pub const CHILD_WALL_BOUND: Duration = Duration::from_secs(60);

/// Variables of the parent's environment that would change what a child does.
const INHERITED: &[&str] = &[
    "MOONPOOL_SEED",
    "MOONPOOL_JOBS",
    "MOONPOOL_MAX_SEEDS",
    "MOONPOOL_SHARD",
    "MOONPOOL_CHECK_DETERMINISM",
    "MOONPOOL_REPORT",
    "MOONPOOL_TRACE_DIR",
    "MOONPOOL_WATCHDOG_SECS",
    "MOONPOOL_MEMORY_LIMIT_MB",
    "MOONPOOL_FAULTS",
];

/// How a child ended.
pub struct Child {
    pub status: ExitStatus,
    pub stderr: String,
    pub wall: Duration,
}

/// Runs the ignored case `name` of the calling test binary in a child process with `env`.
pub fn run_child(name: &str, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(std::env::current_exe().unwrap());
    command
        .args([
            "--exact",
            name,
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_VAR, "1")
        // A panic's backtrace, symbolized inside the poll, can take longer than the 1 s limits
        // some cases use on a loaded machine: the watchdog would report the panicking poll.
        .env("RUST_BACKTRACE", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for var in INHERITED {
        command.env_remove(var);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    #[cfg(unix)]
    {
        use std::os::unix::process::CommandExt;
        // SAFETY: the closure runs in the forked child before exec and only calls setrlimit,
        // which is async-signal-safe; no core file is left behind by the abort cases.
        unsafe {
            command.pre_exec(|| {
                let none = libc::rlimit {
                    rlim_cur: 0,
                    rlim_max: 0,
                };
                libc::setrlimit(libc::RLIMIT_CORE, &none);
                Ok(())
            });
        }
    }
    let started = Instant::now();
    let mut child = command.spawn().unwrap();
    let mut stdout = child.stdout.take().unwrap();
    let mut stderr = child.stderr.take().unwrap();
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stdout.read_to_string(&mut text);
        text
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        let _ = stderr.read_to_string(&mut text);
        text
    });
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if started.elapsed() > CHILD_WALL_BOUND {
            let _ = child.kill();
            let _ = child.wait();
            let (out, err) = (out.join().unwrap(), err.join().unwrap());
            panic!(
                "child {name} still running after {CHILD_WALL_BOUND:?}: killed\n--- stdout\n{out}\n--- \
                 stderr\n{err}"
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let wall = started.elapsed();
    let _ = out.join().unwrap();
    let stderr = err.join().unwrap();
    eprintln!("child {name}: {status} after {wall:.2?}");
    Child {
        status,
        stderr,
        wall,
    }
}

/// True in a child started by [`run_child`].
pub fn is_child() -> bool {
    std::env::var(CHILD_VAR).is_ok_and(|v| v == "1")
}

pub fn assert_contains(child: &Child, needles: &[&str]) {
    for needle in needles {
        assert!(
            child.stderr.contains(needle),
            "stderr lacks {needle:?} ({}):\n{}",
            child.status,
            child.stderr
        );
    }
}

pub fn assert_watchdog_exit(child: &Child) {
    assert_eq!(
        child.status.code(),
        Some(WATCHDOG_EXIT_CODE),
        "{}:\n{}",
        child.status,
        child.stderr
    );
}

/// Burns wall time inside the current poll.
pub fn spin_for(wall: Duration) {
    let started = Instant::now();
    while started.elapsed() < wall {
        std::hint::spin_loop();
    }
}
