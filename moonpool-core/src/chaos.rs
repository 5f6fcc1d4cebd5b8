//! Chaos hooks: `buggify!` and the fifteen assertion macros.
//!
//! The macros live here, in the provider layer, so that any crate (including production crates
//! such as the transport) can place buggify points and assertions without depending on the
//! simulator. Outside a simulation they cost a thread-local read: `buggify!()` is always `false`,
//! knobs keep their default, and assertions record nothing. Inside a simulation, the simulator
//! installs [`ChaosHooks`] for the duration of each run ([`install_hooks`]) and every call is
//! recorded per seed, deterministically.
//!
//! # Assertions
//! Antithesis-style: they never panic. An `always` that fails fails the seed (the simulator reports
//! the message, file, line, process and simulated time); `sometimes` results are aggregated across
//! seeds into a coverage table, so a suite shows which rare paths it reached.
//!
//! | macro | passes when |
//! |---|---|
//! | `assert_always!(cond, "msg")` | `cond` is true every time, and it is reached (see [Catalog](#catalog)) |
//! | `assert_always_or_unreachable!(cond, "msg")` | `cond` is true every time it is reached |
//! | `assert_sometimes!(cond, "msg")` | `cond` is true at least once |
//! | `assert_reachable!("msg")` | reached at least once |
//! | `assert_unreachable!("msg")` | never reached |
//! | `assert_always_greater_than!(v, t, "msg")` and `_or_equal_to`, `less_than`, `less_than_or_equal_to` | the comparison holds every time (the watermark is the closest `v` came to breaking it) |
//! | `assert_sometimes_greater_than!(v, t, "msg")` and the other three | the comparison holds at least once (the watermark is the best `v` seen) |
//! | `assert_sometimes_all!("msg", [("a", a), ("b", b)])` | every named condition true together at least once (the frontier is the most true at once) |
//! | `assert_sometimes_each!("msg", [("key", k), ...])` | records one bucket per distinct combination of values |
//!
//! Each macro takes an optional last argument, a detail expression (`Debug`), evaluated and
//! formatted only when an `always`-type assertion fails. It is captured by a closure, so pass
//! references (`(&request, &reply)`) rather than values that are used afterwards.
//!
//! Messages must be string literals: they name the assertion in reports and across seeds.
//!
//! # Catalog
//! Every call site of these macros is a `static` [`Site`] registered at link time in
//! [`catalog::SITES`] (a `linkme` distributed slice), whether or not it ever runs. The simulator
//! compares the catalog with what its seeds reached: a `sometimes`-type or `reachable` site, or
//! an `assert_always!` (which must be reached: some site with its message is evaluated), that is
//! in the test's coverage scope and that no seed reached is listed with its `file:line` and
//! fails the run; every buggify site is listed
//! with how often it was enabled and fired. The catalog holds the sites of the code linked into
//! the binary (a library's object code the binary never references may be left out by the
//! linker).
//!
//! # Buggify
//! `buggify!()` is FoundationDB's `BUGGIFY`: each call site is enabled or not once per seed, and an
//! enabled site fires with probability 25% (`buggify_with_prob!(p)` to choose). Put them where a
//! real system would be slow or wrong: an extra delay, a smaller buffer, an early retry.
//! `buggify_knob!(default, lo..hi)` perturbs a configuration value per seed.

use std::cell::RefCell;
use std::fmt;

/// The kind of an assertion call site.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
// Not `#[non_exhaustive]` on purpose: the framework's crates map every kind exhaustively (the
// explorer's codes, the report), so a new kind fails to compile until each of them handles it.
pub enum AssertKind {
    /// `assert_always!`
    Always,
    /// `assert_always_or_unreachable!`
    AlwaysOrUnreachable,
    /// `assert_sometimes!`
    Sometimes,
    /// `assert_reachable!`
    Reachable,
    /// `assert_unreachable!`
    Unreachable,
    /// `assert_always_{greater,less}_than{,_or_equal_to}!`
    AlwaysCompare(Comparison),
    /// `assert_sometimes_{greater,less}_than{,_or_equal_to}!`
    SometimesCompare(Comparison),
    /// `assert_sometimes_all!`
    SometimesAll,
    /// `assert_sometimes_each!`
    SometimesEach,
}

impl AssertKind {
    /// True for kinds whose failure fails the seed.
    pub fn is_always(self) -> bool {
        matches!(
            self,
            AssertKind::Always
                | AssertKind::AlwaysOrUnreachable
                | AssertKind::Unreachable
                | AssertKind::AlwaysCompare(_)
        )
    }

    /// True for kinds that must be satisfied at least once across a run of seeds.
    pub fn is_coverage(self) -> bool {
        matches!(
            self,
            AssertKind::Sometimes
                | AssertKind::Reachable
                | AssertKind::SometimesCompare(_)
                | AssertKind::SometimesAll
                | AssertKind::SometimesEach
        )
    }

    /// The macro's name.
    pub fn macro_name(self) -> &'static str {
        use Comparison::*;
        match self {
            AssertKind::Always => "assert_always",
            AssertKind::AlwaysOrUnreachable => "assert_always_or_unreachable",
            AssertKind::Sometimes => "assert_sometimes",
            AssertKind::Reachable => "assert_reachable",
            AssertKind::Unreachable => "assert_unreachable",
            AssertKind::AlwaysCompare(GreaterThan) => "assert_always_greater_than",
            AssertKind::AlwaysCompare(GreaterThanOrEqualTo) => {
                "assert_always_greater_than_or_equal_to"
            }
            AssertKind::AlwaysCompare(LessThan) => "assert_always_less_than",
            AssertKind::AlwaysCompare(LessThanOrEqualTo) => "assert_always_less_than_or_equal_to",
            AssertKind::SometimesCompare(GreaterThan) => "assert_sometimes_greater_than",
            AssertKind::SometimesCompare(GreaterThanOrEqualTo) => {
                "assert_sometimes_greater_than_or_equal_to"
            }
            AssertKind::SometimesCompare(LessThan) => "assert_sometimes_less_than",
            AssertKind::SometimesCompare(LessThanOrEqualTo) => {
                "assert_sometimes_less_than_or_equal_to"
            }
            AssertKind::SometimesAll => "assert_sometimes_all",
            AssertKind::SometimesEach => "assert_sometimes_each",
        }
    }
}

/// A numeric comparison `value OP threshold`.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
pub enum Comparison {
    /// `>`
    GreaterThan,
    /// `>=`
    GreaterThanOrEqualTo,
    /// `<`
    LessThan,
    /// `<=`
    LessThanOrEqualTo,
}

impl Comparison {
    /// Evaluates the comparison.
    pub fn holds(self, value: f64, threshold: f64) -> bool {
        match self {
            Comparison::GreaterThan => value > threshold,
            Comparison::GreaterThanOrEqualTo => value >= threshold,
            Comparison::LessThan => value < threshold,
            Comparison::LessThanOrEqualTo => value <= threshold,
        }
    }

    /// True for `>` and `>=`.
    pub fn is_greater(self) -> bool {
        matches!(
            self,
            Comparison::GreaterThan | Comparison::GreaterThanOrEqualTo
        )
    }

    /// The operator.
    pub fn symbol(self) -> &'static str {
        match self {
            Comparison::GreaterThan => ">",
            Comparison::GreaterThanOrEqualTo => ">=",
            Comparison::LessThan => "<",
            Comparison::LessThanOrEqualTo => "<=",
        }
    }
}

/// One assertion or buggify call site, created as a `static` by the macros and registered in
/// the link-time [`catalog`].
#[derive(Debug)]
pub struct Site {
    /// The message (a literal).
    pub message: &'static str,
    /// The kind (assertions) or `None` (buggify sites).
    pub kind: Option<AssertKind>,
    /// Source file.
    pub file: &'static str,
    /// Source line.
    pub line: u32,
    /// Source column.
    pub column: u32,
    /// `module_path!()` where the macro was called.
    pub module: &'static str,
    /// Names the function the macro was called in (see [`Site::function`]).
    pub function: fn() -> &'static str,
    /// `file:line:column` as one literal (the macros build it with `concat!`), so that the
    /// tables keyed by location need no formatting; [`Site::location`] copies it.
    pub location_literal: &'static str,
}

impl Site {
    /// `file:line:column`, the site's identity.
    pub fn location(&self) -> String {
        self.location_literal.to_string()
    }

    /// [`Site::location`] without a copy.
    pub fn location_str(&self) -> &'static str {
        self.location_literal
    }

    /// `file:line`, as reports print it.
    pub fn file_line(&self) -> String {
        format!("{}:{}", self.file, self.line)
    }

    /// The path of the function the site is in (`crate::module::function`, a method as
    /// `crate::module::Type<_>::method`), closures and async blocks folded into the function
    /// that holds them.
    pub fn function_path(&self) -> String {
        catalog::clean_function_path((self.function)())
    }

    /// True for `buggify!`, `buggify_with_prob!` and `buggify_knob!` sites.
    pub fn is_buggify(&self) -> bool {
        self.kind.is_none()
    }
}

pub mod catalog;

/// What one evaluation of an assertion observed.
pub enum Observation<'a> {
    /// A boolean assertion (always, sometimes, reachable, unreachable: `true` when reached).
    Bool {
        /// The condition's value.
        holds: bool,
        /// Formats the optional detail argument (only called on failure).
        detail: Option<&'a dyn Fn() -> String>,
    },
    /// A numeric comparison.
    Numeric {
        /// The value.
        value: f64,
        /// The threshold.
        threshold: f64,
        /// Formats the optional detail argument (only called on failure).
        detail: Option<&'a dyn Fn() -> String>,
    },
    /// `sometimes_all`: named conditions.
    All(&'a [(&'a str, bool)]),
    /// `sometimes_each`: a bucket's key values.
    Each(&'a [(&'a str, i64)]),
}

impl fmt::Debug for Observation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Observation::Bool { holds, .. } => write!(f, "Bool({holds})"),
            Observation::Numeric {
                value, threshold, ..
            } => write!(f, "Numeric({value}, {threshold})"),
            Observation::All(conditions) => write!(f, "All({conditions:?})"),
            Observation::Each(keys) => write!(f, "Each({keys:?})"),
        }
    }
}

/// What a simulator installs to receive chaos calls during a run.
pub trait ChaosHooks {
    /// Whether the buggify `site` fires now, with `probability` once the site is enabled.
    fn buggify(&mut self, site: &'static Site, probability: f64) -> bool;
    /// A per-seed value for a buggified knob: `default` unless the site is enabled, else drawn
    /// from `[lo, hi)`.
    fn knob(&mut self, site: &'static Site, default: f64, lo: f64, hi: f64) -> f64;
    /// Records one evaluation of an assertion.
    fn record(&mut self, site: &'static Site, observation: Observation<'_>);
}

thread_local! {
    static HOOKS: RefCell<Option<Box<dyn ChaosHooks>>> = const { RefCell::new(None) };
}

/// Restores the previous hooks (usually none) when dropped.
#[must_use = "the hooks are uninstalled when the guard is dropped"]
pub struct HooksGuard {
    previous: Option<Box<dyn ChaosHooks>>,
    restored: bool,
}

impl HooksGuard {
    /// Uninstalls now and hands the installed hooks back (to read what they recorded).
    pub fn take(mut self) -> Option<Box<dyn ChaosHooks>> {
        let previous = self.previous.take();
        self.restored = true;
        HOOKS
            .try_with(|slot| {
                slot.try_borrow_mut()
                    .ok()
                    .map(|mut slot| std::mem::replace(&mut *slot, previous))
            })
            .ok()
            .flatten()
            .flatten()
    }
}

impl Drop for HooksGuard {
    fn drop(&mut self) {
        if self.restored {
            return;
        }
        let previous = self.previous.take();
        let _ = HOOKS.try_with(|slot| {
            if let Ok(mut slot) = slot.try_borrow_mut() {
                *slot = previous;
            }
        });
    }
}

/// Installs `hooks` on this thread until the guard is dropped or taken.
pub fn install_hooks(hooks: Box<dyn ChaosHooks>) -> HooksGuard {
    let previous = HOOKS.with(|slot| slot.borrow_mut().replace(hooks));
    HooksGuard {
        previous,
        restored: false,
    }
}

/// True while hooks are installed on this thread (inside a simulation run).
pub fn hooks_installed() -> bool {
    HOOKS
        .try_with(|slot| slot.try_borrow().map(|s| s.is_some()).unwrap_or(true))
        .unwrap_or(false)
}

fn with_hooks<R>(f: impl FnOnce(&mut dyn ChaosHooks) -> R) -> Option<R> {
    HOOKS
        .try_with(|slot| {
            // A re-entrant call (an assertion inside a hook) is ignored rather than panicking.
            let mut slot = slot.try_borrow_mut().ok()?;
            slot.as_mut().map(|hooks| f(hooks.as_mut()))
        })
        .ok()
        .flatten()
}

#[doc(hidden)]
pub fn __buggify(site: &'static Site, probability: f64) -> bool {
    with_hooks(|hooks| hooks.buggify(site, probability)).unwrap_or(false)
}

#[doc(hidden)]
pub fn __knob(site: &'static Site, default: f64, lo: f64, hi: f64) -> f64 {
    with_hooks(|hooks| hooks.knob(site, default, lo, hi)).unwrap_or(default)
}

#[doc(hidden)]
pub fn __record(site: &'static Site, observation: Observation<'_>) {
    let _ = with_hooks(|hooks| hooks.record(site, observation));
}

/// Converts numeric assertion operands.
#[doc(hidden)]
pub trait __AsF64 {
    fn __as_f64(&self) -> f64;
}

macro_rules! as_f64 {
    ($($t:ty),*) => {$(
        impl __AsF64 for $t {
            #[allow(clippy::cast_precision_loss, clippy::cast_lossless)]
            fn __as_f64(&self) -> f64 { *self as f64 }
        }
    )*};
}
as_f64!(
    u8, u16, u32, u64, u128, usize, i8, i16, i32, i64, i128, isize, f32, f64
);

impl __AsF64 for std::time::Duration {
    fn __as_f64(&self) -> f64 {
        self.as_secs_f64()
    }
}

impl<T: __AsF64 + ?Sized> __AsF64 for &T {
    fn __as_f64(&self) -> f64 {
        (**self).__as_f64()
    }
}

/// Builds the `static` site of a macro call.
#[doc(hidden)]
#[macro_export]
macro_rules! __chaos_site {
    ($message:expr, $kind:expr) => {{
        #[$crate::chaos::catalog::__linkme::distributed_slice($crate::chaos::catalog::SITES)]
        #[linkme(crate = $crate::chaos::catalog::__linkme)]
        static SITE: $crate::chaos::Site = $crate::chaos::Site {
            message: $message,
            kind: $kind,
            file: file!(),
            line: line!(),
            column: column!(),
            module: module_path!(),
            function: {
                fn __site_function() -> &'static str {
                    fn __site_marker() {}
                    ::core::any::type_name_of_val(&__site_marker)
                }
                __site_function
            },
            location_literal: concat!(file!(), ":", line!(), ":", column!()),
        };
        &SITE
    }};
}

/// FoundationDB's `BUGGIFY`: true when this call site is enabled for the seed and fires (25%).
/// Always false outside a simulation.
#[macro_export]
macro_rules! buggify {
    () => {
        $crate::chaos::__buggify($crate::__chaos_site!("buggify", None), 0.25)
    };
}

/// `buggify!` with a firing probability of your choice.
#[macro_export]
macro_rules! buggify_with_prob {
    ($probability:expr) => {
        $crate::chaos::__buggify($crate::__chaos_site!("buggify", None), $probability as f64)
    };
}

/// A configuration value perturbed per seed: `default`, or, when this site is enabled for the
/// seed, a value drawn from `lo..hi` (the same value for the whole seed). Integers and floats.
#[macro_export]
macro_rules! buggify_knob {
    ($default:expr, $lo:literal .. $hi:literal) => {{
        let default = $default;
        let value = $crate::chaos::__knob(
            $crate::__chaos_site!("buggify_knob", None),
            default as f64,
            $lo as f64,
            $hi as f64,
        );
        #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
        let value = value as _;
        if false { default } else { value }
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __assert_bool {
    ($kind:expr, $holds:expr, $message:literal) => {
        $crate::chaos::__record(
            $crate::__chaos_site!($message, Some($kind)),
            $crate::chaos::Observation::Bool {
                holds: $holds,
                detail: None,
            },
        )
    };
    ($kind:expr, $holds:expr, $message:literal, $detail:expr) => {{
        let detail = || format!("{:?}", $detail);
        $crate::chaos::__record(
            $crate::__chaos_site!($message, Some($kind)),
            $crate::chaos::Observation::Bool {
                holds: $holds,
                detail: Some(&detail),
            },
        )
    }};
}

#[doc(hidden)]
#[macro_export]
macro_rules! __assert_numeric {
    ($kind:expr, $value:expr, $threshold:expr, $message:literal $(, $detail:expr)?) => {{
        #[allow(unused_imports)]
        use $crate::chaos::__AsF64 as _;
        let value = $crate::chaos::__AsF64::__as_f64(&$value);
        let threshold = $crate::chaos::__AsF64::__as_f64(&$threshold);
        let detail: Option<&dyn Fn() -> String> = None;
        $( let formatted = || format!("{:?}", $detail); let detail: Option<&dyn Fn() -> String> = Some(&formatted); )?
        $crate::chaos::__record(
            $crate::__chaos_site!($message, Some($kind)),
            $crate::chaos::Observation::Numeric { value, threshold, detail },
        )
    }};
}

/// `cond` must hold every time, and the assertion must be reached: in a simulation, an
/// `assert_always!` in the test's coverage scope whose message no seed evaluated fails the run
/// (see the [catalog](crate::chaos#catalog)). For a check that may never run, use
/// [`assert_always_or_unreachable!`](crate::assert_always_or_unreachable).
#[macro_export]
macro_rules! assert_always {
    ($cond:expr, $message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_bool!($crate::chaos::AssertKind::Always, $cond, $message $(, $detail)?)
    };
}

/// `cond` must hold every time the assertion is reached (reaching it is optional).
#[macro_export]
macro_rules! assert_always_or_unreachable {
    ($cond:expr, $message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_bool!($crate::chaos::AssertKind::AlwaysOrUnreachable, $cond, $message $(, $detail)?)
    };
}

/// `cond` must hold at least once across the run's seeds.
#[macro_export]
macro_rules! assert_sometimes {
    ($cond:expr, $message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_bool!($crate::chaos::AssertKind::Sometimes, $cond, $message $(, $detail)?)
    };
}

/// This point must be reached at least once across the run's seeds.
#[macro_export]
macro_rules! assert_reachable {
    ($message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_bool!($crate::chaos::AssertKind::Reachable, true, $message $(, $detail)?)
    };
}

/// This point must never be reached.
#[macro_export]
macro_rules! assert_unreachable {
    ($message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_bool!($crate::chaos::AssertKind::Unreachable, false, $message $(, $detail)?)
    };
}

/// `value > threshold` every time.
#[macro_export]
macro_rules! assert_always_greater_than {
    ($value:expr, $threshold:expr, $message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_numeric!($crate::chaos::AssertKind::AlwaysCompare($crate::chaos::Comparison::GreaterThan), $value, $threshold, $message $(, $detail)?)
    };
}

/// `value >= threshold` every time.
#[macro_export]
macro_rules! assert_always_greater_than_or_equal_to {
    ($value:expr, $threshold:expr, $message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_numeric!($crate::chaos::AssertKind::AlwaysCompare($crate::chaos::Comparison::GreaterThanOrEqualTo), $value, $threshold, $message $(, $detail)?)
    };
}

/// `value < threshold` every time.
#[macro_export]
macro_rules! assert_always_less_than {
    ($value:expr, $threshold:expr, $message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_numeric!($crate::chaos::AssertKind::AlwaysCompare($crate::chaos::Comparison::LessThan), $value, $threshold, $message $(, $detail)?)
    };
}

/// `value <= threshold` every time.
#[macro_export]
macro_rules! assert_always_less_than_or_equal_to {
    ($value:expr, $threshold:expr, $message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_numeric!($crate::chaos::AssertKind::AlwaysCompare($crate::chaos::Comparison::LessThanOrEqualTo), $value, $threshold, $message $(, $detail)?)
    };
}

/// `value > threshold` at least once across the run's seeds.
#[macro_export]
macro_rules! assert_sometimes_greater_than {
    ($value:expr, $threshold:expr, $message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_numeric!($crate::chaos::AssertKind::SometimesCompare($crate::chaos::Comparison::GreaterThan), $value, $threshold, $message $(, $detail)?)
    };
}

/// `value >= threshold` at least once across the run's seeds.
#[macro_export]
macro_rules! assert_sometimes_greater_than_or_equal_to {
    ($value:expr, $threshold:expr, $message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_numeric!($crate::chaos::AssertKind::SometimesCompare($crate::chaos::Comparison::GreaterThanOrEqualTo), $value, $threshold, $message $(, $detail)?)
    };
}

/// `value < threshold` at least once across the run's seeds.
#[macro_export]
macro_rules! assert_sometimes_less_than {
    ($value:expr, $threshold:expr, $message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_numeric!($crate::chaos::AssertKind::SometimesCompare($crate::chaos::Comparison::LessThan), $value, $threshold, $message $(, $detail)?)
    };
}

/// `value <= threshold` at least once across the run's seeds.
#[macro_export]
macro_rules! assert_sometimes_less_than_or_equal_to {
    ($value:expr, $threshold:expr, $message:literal $(, $detail:expr)? $(,)?) => {
        $crate::__assert_numeric!($crate::chaos::AssertKind::SometimesCompare($crate::chaos::Comparison::LessThanOrEqualTo), $value, $threshold, $message $(, $detail)?)
    };
}

/// Every named condition true together at least once: `assert_sometimes_all!("msg", [("a", a), ("b", b)])`.
#[macro_export]
macro_rules! assert_sometimes_all {
    ($message:literal, [$(($name:expr, $cond:expr)),+ $(,)?] $(,)?) => {{
        let conditions = [$(($name, $cond)),+];
        $crate::chaos::__record(
            $crate::__chaos_site!($message, Some($crate::chaos::AssertKind::SometimesAll)),
            $crate::chaos::Observation::All(&conditions),
        )
    }};
}

/// Records the bucket named by the values: `assert_sometimes_each!("msg", [("phase", p), ("role", r)])`.
/// The report shows how many distinct buckets were reached.
#[macro_export]
macro_rules! assert_sometimes_each {
    ($message:literal, [$(($key:expr, $value:expr)),+ $(,)?] $(,)?) => {{
        #[allow(clippy::cast_possible_wrap, clippy::cast_possible_truncation, clippy::cast_lossless)]
        let keys = [$(($key, $value as i64)),+];
        $crate::chaos::__record(
            $crate::__chaos_site!($message, Some($crate::chaos::AssertKind::SometimesEach)),
            $crate::chaos::Observation::Each(&keys),
        )
    }};
}
