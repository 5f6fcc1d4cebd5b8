//! Workloads shared by several simulation tests.
#![allow(dead_code)]

pub mod alphabet;
