//! # moonpool-explorer
//!
//! Multiverse exploration for Moonpool: when an assertion or coverage mark sees something new, the
//! process `fork()`s child timelines that continue with different random streams; coverage bitmaps
//! and assertion statistics live in shared memory; an energy budget bounds the work; a bug found in
//! a timeline is reported as a replayable recipe (seed plus fork points). Linux and macOS only.
//!
//! **Status:** a documented shell; exploration is built in a later issue.
