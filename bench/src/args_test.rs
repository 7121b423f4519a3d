use super::*;

fn args(line: &str) -> Args {
    Args::try_parse_from(std::iter::once("meridian-bench").chain(line.split_whitespace()))
        .expect("options parse")
}

fn refusal(line: &str) -> String {
    match args(line).plan() {
        Ok(_) => panic!("accepted: {line}"),
        Err(e) => e.to_string(),
    }
}

const NODES: &str = "--backend cluster --topology lan-3 --protocols epaxos --nodes 10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000 --certs /c";

#[test]
fn with_nodes_replica_tuning_options_are_refused_not_ignored() {
    for (extra, option) in [
        ("--batch 16", "--batch"),
        ("--epaxos-in-flight 2", "--epaxos-in-flight"),
        ("--dir /tmp/x", "--dir"),
        ("--replica-program /tmp/old", "--replica-program"),
        ("--no-wan", "--no-wan"),
    ] {
        let err = refusal(&format!("{NODES} {extra}"));
        assert!(
            err.contains(option) && err.contains("existing deployment"),
            "{err}"
        );
    }
    // The same options are fine when the bench starts the replicas.
    args("--backend cluster --topology lan-3 --protocols epaxos --batch 16 --epaxos-in-flight 2 --no-wan")
        .plan()
        .unwrap();
    assert!(refusal("--protocols epaxos --no-wan").contains("--backend cluster only"));
}

#[test]
fn metrics_addresses_come_one_per_node_and_only_with_nodes() {
    let ok = args(&format!(
        "{NODES} --metrics 10.0.0.1:9100,10.0.0.2:9100,10.0.0.3:9100"
    ));
    ok.plan().unwrap();
    assert_eq!(ok.metrics.len(), 3);
    let err = refusal(&format!("{NODES} --metrics 10.0.0.1:9100"));
    assert!(err.contains("one per node"), "{err}");
    let err =
        refusal("--backend cluster --topology lan-3 --protocols epaxos --metrics 10.0.0.1:9100");
    assert!(
        err.contains("--metrics applies to an existing deployment"),
        "{err}"
    );
    let err = refusal(
        "--topology lan-3 --protocols epaxos --nodes 10.0.0.1:7000,10.0.0.2:7000,10.0.0.3:7000",
    );
    assert!(err.contains("--backend cluster"), "{err}");
}

#[test]
fn read_levels_apply_to_reads_and_leader_levels_need_multipaxos() {
    let plan = args("--protocols multipaxos --zipf 0.99 --reads 0.9 --read-level stale:1s")
        .plan()
        .unwrap();
    assert_eq!(
        plan.workloads[0].read_level,
        Some(Consistency::Stale {
            bound_us: 1_000_000
        })
    );
    assert_eq!(plan.workloads[0].consistency, Consistency::Linearizable);
    let plan = args("--protocols multipaxos --read-level lease --quorum-leases")
        .plan()
        .unwrap();
    assert!(plan.tuning.quorum_leases && plan.tuning.lease.is_some());
    let err = refusal("--protocols epaxos,multipaxos --read-level lease");
    assert!(err.contains("needs a leader"), "{err}");
    let err = refusal("--protocols multipaxos --read-level stale");
    assert!(err.contains("--read-level"), "{err}");
    let err = refusal("--protocols multipaxos --quorum-leases --lease-ms 0");
    assert!(err.contains("--quorum-leases"), "{err}");
    // Linearizable and local reads apply to every consensus protocol.
    args("--protocols epaxos,multipaxos --read-level local")
        .plan()
        .unwrap();
}

#[test]
fn reconfigure_is_refused_where_it_cannot_run() {
    let local = "--backend cluster --topology lan-3 --warmup 1 --duration 9";
    let plan = args(&format!(
        "{local} --protocols epaxos,multipaxos:rack-1 --reconfigure add:rack-2@2,remove:added@6"
    ))
    .plan()
    .unwrap();
    assert_eq!(plan.reconfigure.len(), 2);
    assert_eq!(plan.timeline, Some(Duration::from_secs(1)), "implied");
    for (line, expected) in [
        (format!("{NODES} --reconfigure add:rack-2@2"), "not --nodes"),
        (
            "--topology lan-3 --protocols epaxos --reconfigure add:rack-2@2".to_owned(),
            "--backend cluster only",
        ),
        (
            format!("{local} --protocols epaxos --reconfigure add:mars@2"),
            "not in topology",
        ),
        (
            format!("{local} --protocols epaxos --reconfigure remove:added@10"),
            "the run ends 10.0 s",
        ),
        (
            format!("{local} --protocols epaxos --timeline 0"),
            "bucket length",
        ),
    ] {
        let err = refusal(&line);
        assert!(err.contains(expected), "{line}: {err}");
    }
    let malformed = Args::try_parse_from(
        format!("meridian-bench {local} --reconfigure add:rack-2").split_whitespace(),
    )
    .unwrap_err();
    assert!(
        malformed.to_string().contains("add:REGION@SECONDS"),
        "{malformed}"
    );
}

#[test]
fn outstanding_requests_are_for_closed_loop_cluster_clients() {
    args("--backend cluster --topology lan-3 --protocols epaxos --outstanding 64")
        .plan()
        .unwrap();
    assert!(
        refusal("--topology lan-3 --protocols epaxos --outstanding 4")
            .contains("--backend cluster only")
    );
    assert!(refusal(
        "--backend cluster --topology lan-3 --protocols epaxos --outstanding 4 --rate 100"
    )
    .contains("closed-loop"));
    assert!(
        refusal("--backend cluster --topology lan-3 --protocols epaxos --outstanding 0")
            .contains("at least 1")
    );
}
