//! The watchdog's memory ceiling: the resident set size of the process and its limit.

use std::sync::OnceLock;

use super::{memory_limit_override, report};

/// The resident memory limit in bytes, if any (see the module docs).
pub(super) fn memory_limit() -> Option<u64> {
    match memory_limit_override() {
        Ok(Some(limit)) => limit,
        Ok(None) => default_memory_limit(),
        Err(message) => {
            report(&format!("moonpool watchdog: {message}; ignored.\n"));
            default_memory_limit()
        }
    }
}

/// Three quarters of the memory the process may use.
#[cfg(target_os = "linux")]
fn default_memory_limit() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|text| meminfo_total(&text));
    let cgroup = cgroup_memory_max();
    let available = match (total, cgroup) {
        (Some(a), Some(b)) => a.min(b),
        (a, b) => a.or(b)?,
    };
    Some(available / 4 * 3)
}

#[cfg(not(target_os = "linux"))]
fn default_memory_limit() -> Option<u64> {
    None
}

/// `MemTotal` of `/proc/meminfo`, in bytes.
#[cfg_attr(not(target_os = "linux"), allow(dead_code))]
pub(super) fn meminfo_total(meminfo: &str) -> Option<u64> {
    let line = meminfo.lines().find(|l| l.starts_with("MemTotal:"))?;
    let mut fields = line.split_whitespace().skip(1);
    let amount: u64 = fields.next()?.parse().ok()?;
    let unit = match fields.next() {
        Some("kB") => 1024,
        None => 1,
        Some(_) => return None,
    };
    amount.checked_mul(unit)
}

/// The cgroup v2 `memory.max` of this process, if it is a number.
#[cfg(target_os = "linux")]
fn cgroup_memory_max() -> Option<u64> {
    let cgroups = std::fs::read_to_string("/proc/self/cgroup").ok()?;
    let path = cgroups.lines().find_map(|line| line.strip_prefix("0::"))?;
    let max = std::fs::read_to_string(format!("/sys/fs/cgroup{}/memory.max", path.trim())).ok()?;
    max.trim().parse().ok()
}

/// The process's resident set size in bytes.
#[cfg(target_os = "linux")]
pub(super) fn resident_bytes() -> Option<u64> {
    static PAGE: OnceLock<Option<u64>> = OnceLock::new();
    let page = (*PAGE.get_or_init(|| {
        // SAFETY: sysconf has no preconditions; it only reads a system constant.
        let size = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        u64::try_from(size).ok().filter(|size| *size > 0)
    }))?;
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    pages.checked_mul(page)
}

#[cfg(not(target_os = "linux"))]
pub(super) fn resident_bytes() -> Option<u64> {
    None
}
