use super::*;

#[test]
fn stat_ticks_counts_user_and_system_after_the_name() {
    // Fields from a real /proc/PID/stat, with a name holding a space and a ')'.
    let line =
        "4242 (meridian bench)) S 1 4242 4242 0 -1 4194560 1234 0 0 0 250 75 0 0 20 0 9 0 100 0 0";
    assert_eq!(stat_ticks(line), Some(325));
    assert_eq!(stat_ticks("4242 (x) S 1"), None);
    assert_eq!(stat_ticks("no parenthesis"), None);
}

#[test]
fn own_process_cpu_is_readable() {
    let pid = std::process::id();
    let cpu = cpu_seconds(pid).expect("own /proc stat");
    assert!(cpu >= 0.0);
    assert_eq!(total_cpu_seconds(&[]), None);
}

#[test]
fn figures_divide_by_ops_fsyncs_and_instances() {
    let mut counters = Metrics::new();
    counters.add("host_fsyncs", 300);
    counters.add("instances_led", 50);
    counters.add("commands_led", 400);
    let figures = Efficiency::of(1_000, Some(0.29), Some(0.5), 3, &counters);
    assert_eq!(figures.replica_cpu_s_per_kop, Some(0.29));
    assert_eq!(figures.client_cpu_s_per_kop, Some(0.5));
    assert_eq!(figures.ops_per_fsync, Some(10.0));
    assert_eq!(figures.commands_per_instance, Some(8.0));

    let mut paxos = Metrics::new();
    paxos.add("slots_proposed", 10);
    paxos.add("commands_proposed", 25);
    let figures = Efficiency::of(0, None, Some(1.0), 3, &paxos);
    assert_eq!(figures.replica_cpu_s_per_kop, None);
    assert_eq!(
        figures.client_cpu_s_per_kop, None,
        "no operations: no figure"
    );
    assert_eq!(figures.ops_per_fsync, None);
    assert_eq!(figures.commands_per_instance, Some(2.5));
}

/// A run's replica CPU counts the replicas there at its start, those it started, and
/// those it stopped as last read before the stop (their pids may be reused by then);
/// one that cannot be had makes the figure unknown rather than low.
#[test]
fn the_ledger_counts_started_and_stopped_replicas() {
    let ledger = ProcessLedger {
        started: vec![3, 4],
        stopped: [(2, 5.0), (4, 7.0)].into_iter().collect(),
    };
    let read = |pid: u32| match pid {
        1 => Some(10.0),
        2 => Some(99.0), // pid 2 was stopped; this is another process now
        3 => Some(1.5),
        _ => None,
    };
    assert_eq!(ledger.total(&[1, 2], read), Some(23.5));
    assert_eq!(ledger.total(&[1, 2, 9], read), None, "pid 9 cannot be read");
    assert_eq!(ledger.total(&[], read), None, "no replica process of ours");
}
