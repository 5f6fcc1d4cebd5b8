//! Helpers shared by integration tests.

pub mod network;
pub mod storage;
pub mod trace;
