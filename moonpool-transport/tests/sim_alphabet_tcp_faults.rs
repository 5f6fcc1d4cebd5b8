//! The transport's chaos alphabet with the simulator's TCP-layer faults on (loss as
//! retransmission, read-side clogs, random closes on reads, loss bursts, bandwidth-delay send
//! buffers), 1,000 seeds in the `sim` profile. Its own binary: the switch is an environment
//! variable, which must not reach the pinned-fingerprint tests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use moonpool_sim::IterationControl;

#[test]
fn slow_simulation_transport_alphabet_with_tcp_faults() {
    // SAFETY: this binary has this one test, so no other thread reads the environment meanwhile.
    unsafe { std::env::set_var(moonpool_sim::network::TCP_FAULTS_ENV, "1") };
    let report = common::alphabet::simulation("transport-alphabet-tcp-faults")
        .iterations(IterationControl::FixedCount(1_000))
        .ci_max_seeds(40)
        .run()
        .unwrap();
    println!("{report}");
    assert_eq!(report.failed(), 0, "{report}");
    for fault in ["network.loss", "network.retransmit"] {
        assert!(
            report.faults.get(fault).copied().unwrap_or(0) > 0,
            "{fault} never fired: {report}"
        );
    }
}
