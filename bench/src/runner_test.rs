use super::*;

/// The executed-command log grows by one entry per command and replica: a benchmark
/// run (up to millions of commands) must not keep it.
#[test]
fn benchmark_epaxos_keeps_no_execution_log() {
    let tuning = Tuning::default();
    assert!(EpaxosConfig::default().record_execution);
    assert!(!tuning.epaxos(false).record_execution);
    assert!(!tuning.epaxos(true).record_execution);
}
