#![cfg(feature = "sim")]
//! The main example with the simulator's TCP-layer faults on (loss as retransmission, read-side
//! clogs, random closes on reads, loss bursts, bandwidth-delay send buffers): 1,000 clean seeds
//! pass. Its own binary: the switch is an environment variable, which must not reach the
//! pinned-fingerprint tests.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

#[allow(dead_code, unreachable_pub)]
#[path = "../examples/replicated_kv.rs"]
mod replicated_kv;

#[test]
fn slow_simulation_main_example_with_tcp_faults() {
    // SAFETY: this binary has this one test, so no other thread reads the environment meanwhile.
    unsafe { std::env::set_var(moonpool::sim::network::TCP_FAULTS_ENV, "1") };
    let report = replicated_kv::simulation(false, 1_000)
        .progress(false)
        .ci_max_seeds(100)
        .run()
        .unwrap();
    assert_eq!(report.failed(), 0, "{report}");
    for fault in ["network.loss", "network.retransmit"] {
        assert!(
            report.faults.get(fault).copied().unwrap_or(0) > 0,
            "{fault} never fired: {report}"
        );
    }
}
