#![doc = include_str!("../README.md")]

mod config;
mod error;
mod explorer;
mod gate;
#[cfg(unix)]
mod process;
mod shm;
mod tables;

pub use config::ExplorationConfig;
pub use error::ExploreError;
pub use explorer::{
    Branch, ExplorationFigures, Explorer, Failure, Overflow, SplitPoint, TimelineEnd, TreeReport,
    in_child_timeline, mix,
};
pub use gate::{ForkGate, progress_hint};
pub use tables::{
    BUCKET_CAPACITY, BUG_CAPACITY, BucketStats, Bug, BugKind, COVERAGE_CAPACITY, Coverage,
    MAX_DEPTH, SITE_CAPACITY, SiteDelta, SiteInfo, SiteStats, Step,
};
