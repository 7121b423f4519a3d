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
    ] {
        let err = refusal(&format!("{NODES} {extra}"));
        assert!(
            err.contains(option) && err.contains("existing deployment"),
            "{err}"
        );
    }
    // The same options are fine when the bench starts the replicas.
    args("--backend cluster --topology lan-3 --protocols epaxos --batch 16 --epaxos-in-flight 2")
        .plan()
        .unwrap();
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
