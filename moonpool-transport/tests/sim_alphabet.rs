//! The transport under swarm chaos, written as an operation alphabet with cross-process
//! invariants and run by `SimulationBuilder` until every `sometimes` on an error path has been
//! reached (the report lists them all).
//!
//! Three servers answer requests (or drop the promise, or answer late); five clients draw
//! operations from an alphabet of the four delivery modes plus a call to an endpoint nobody
//! registered; attrition crashes servers in the middle of requests. Invariants: replies are never
//! misrouted, `get_reply` never surfaces a connection error, nothing is delivered that was not
//! sent, at-most-once requests are never delivered twice, every client's pending-reply map is back
//! to zero after the settle phase, and every transport stays within its bounds.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use moonpool_sim::IterationControl;

#[test]
fn slow_simulation_transport_alphabet_under_chaos() {
    let report = common::alphabet::simulation("transport-alphabet")
        .iterations(IterationControl::UntilAllSometimesReached(400))
        .min_seeds(100)
        .ci_max_seeds(40)
        .run()
        .unwrap();
    println!("{report}");
    report.assert_success();
}
