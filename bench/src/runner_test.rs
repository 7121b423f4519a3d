use super::*;

/// The executed-command log grows by one entry per command and replica: a benchmark
/// run (up to millions of commands) must not keep it.
#[test]
fn benchmark_epaxos_keeps_no_execution_log() {
    let tuning = Tuning::default();
    assert!(EpaxosConfig::default().record_execution);
    for (thrifty, ordered) in [(false, false), (true, false), (false, true)] {
        let config = tuning.epaxos(thrifty, ordered);
        assert!(!config.record_execution);
        assert_eq!(
            (config.thrifty, config.ordered_delivery),
            (thrifty, ordered)
        );
    }
}
