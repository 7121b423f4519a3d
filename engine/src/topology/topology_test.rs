//! Tests of the builtin topologies (against the source `.dat` numbers) and of every loader
//! error.

use super::{Topology, TopologyError};
use crate::id::NodeId;

/// Expected region count of every builtin.
const REGION_COUNTS: &[(&str, usize)] = &[
    ("lan-3", 3),
    ("lan-5", 5),
    ("epaxos-3", 3),
    ("epaxos-5", 5),
    ("aws-5-tempo", 5),
    ("gcp-13", 13),
    ("gcp-20", 20),
    ("aws-19", 19),
];

/// `(topology, region a, region b, expected rtt_ms, expected jitter_ms)`. Expected values
/// are the mean of the two `.dat` lines quoted beside each row (avg and mdev fields), from
/// `shared/data/latency`, rounded half-up to 0.001 ms as the README says.
const SPOT_CHECKS: &[(&str, &str, &str, f64, f64)] = &[
    // latency_aws/2020_06_05 us-east-1.dat: 59.836/59.911/60.591/0.304:us-west-1
    //                        us-west-1.dat: 59.834/59.912/60.704/0.160:us-east-1
    ("epaxos-5", "us-east-1", "us-west-1", 59.912, 0.232),
    // eu-west-1.dat:      199.294/204.431/210.627/5.546:ap-northeast-1
    // ap-northeast-1.dat: 199.265/204.446/210.591/5.557:eu-west-1
    ("epaxos-5", "IE", "JP", 204.439, 5.552),
    // us-west-1.dat: 141.120/141.152/142.142/0.232:eu-west-1
    // eu-west-1.dat: 141.107/141.142/142.106/0.453:us-west-1
    ("epaxos-3", "CA", "IE", 141.147, 0.343),
    // us-east-1.dat: 70.459/70.508/73.658/0.146:eu-west-1
    // eu-west-1.dat: 70.463/70.501/71.153/0.367:us-east-1
    ("epaxos-3", "us-east-1", "eu-west-1", 70.505, 0.257),
    // latency_aws/2021_02_13 sa-east-1.dat:      321.027/321.086/323.049/0.790:ap-southeast-1
    //                        ap-southeast-1.dat: 321.030/321.092/324.399/0.583:sa-east-1
    ("aws-5-tempo", "sa-east-1", "ap-southeast-1", 321.089, 0.687),
    // eu-west-1.dat: 135.457/135.900/136.610/0.576:us-west-1
    // us-west-1.dat: 135.456/135.902/136.607/0.412:eu-west-1
    ("aws-5-tempo", "eu-west-1", "us-west-1", 135.901, 0.494),
    // latency_gcp us-east4.dat:     74.856/75.549/84.444/0.762:europe-west2
    //             europe-west2.dat: 74.839/75.558/78.405/0.763:us-east4
    ("gcp-13", "us-east4", "europe-west2", 75.554, 0.763),
    // australia-southeast1.dat: 301.106/302.748/307.602/0.911:southamerica-east1
    // southamerica-east1.dat:   301.118/302.746/313.247/0.852:australia-southeast1
    ("gcp-13", "sydney", "sao-paulo", 302.747, 0.882),
    // asia-east2.dat:   273.034/274.074/287.055/1.558:europe-west6
    // europe-west6.dat: 273.048/274.060/278.518/1.617:asia-east2
    ("gcp-20", "asia-east2", "europe-west6", 274.067, 1.588),
    ("gcp-20", "us-east4", "europe-west2", 75.554, 0.763),
    // latency_aws/2020_06_05 af-south-1.dat:     412.849/412.886/413.272/0.176:ap-southeast-2
    //                        ap-southeast-2.dat: 412.856/412.888/413.240/0.782:af-south-1
    ("aws-19", "af-south-1", "ap-southeast-2", 412.887, 0.479),
    ("aws-19", "virginia", "n-california", 59.912, 0.232),
    // Synthetic.
    ("lan-3", "rack-1", "rack-3", 0.2, 0.02),
    ("lan-5", "rack-2", "rack-5", 0.2, 0.02),
];

fn builtin(name: &str) -> Topology {
    Topology::builtin(name).unwrap_or_else(|| panic!("builtin {name} must parse"))
}

#[test]
fn every_builtin_name_has_a_region_count_to_check() {
    let mut names: Vec<&str> = REGION_COUNTS.iter().map(|(name, _)| *name).collect();
    let mut builtins = Topology::builtin_names().to_vec();
    names.sort_unstable();
    builtins.sort_unstable();
    assert_eq!(names, builtins);
}

#[test]
fn builtin_names_list_exactly_the_compiled_in_files() {
    let compiled: Vec<&str> = super::builtin::BUILTINS
        .iter()
        .map(|(name, _)| *name)
        .collect();
    assert_eq!(compiled, Topology::builtin_names());
}

#[test]
fn every_builtin_parses_with_its_name_and_region_count() {
    for &(name, regions) in REGION_COUNTS {
        // Parse the text directly too, so a failure shows the loader's message.
        let text = super::builtin::text(name).expect("listed builtin has a text");
        let topology = Topology::parse(text).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(topology.name(), name);
        assert!(!topology.description().is_empty(), "{name}: no description");
        assert!(topology.source().is_some(), "{name}: no source");
        assert_eq!(topology.regions().len(), regions, "{name}");
        assert_eq!(Topology::builtin(name), Some(topology));
    }
}

#[test]
fn every_builtin_matrix_is_complete_symmetric_and_plausible() {
    for &name in Topology::builtin_names() {
        let topology = builtin(name);
        let n = topology.regions().len();
        for a in 0..n {
            assert_eq!(topology.rtt_ms(a, a), topology.regions()[a].intra_rtt_ms);
            for b in 0..n {
                let (rtt, jitter) = (topology.rtt_ms(a, b), topology.jitter_ms(a, b));
                assert!(rtt.is_finite() && rtt > 0.0, "{name} {a}->{b}: rtt {rtt}");
                assert!(jitter.is_finite() && jitter >= 0.0, "{name} {a}->{b}");
                assert_eq!(rtt, topology.rtt_ms(b, a), "{name} {a}<->{b}");
                assert_eq!(jitter, topology.jitter_ms(b, a), "{name} {a}<->{b}");
                // Within a region is faster than between any two (holds in all the data).
                if a != b {
                    assert!(rtt > topology.rtt_ms(a, a), "{name} {a}<->{b}");
                }
            }
        }
        // Builtins place one replica and one client site per region.
        assert_eq!(topology.replicas().len(), n, "{name}");
        assert!(topology.regions().iter().all(|r| r.clients == 1), "{name}");
    }
}

#[test]
fn builtin_rtts_match_the_dat_files() {
    for &(name, a, b, rtt_ms, jitter_ms) in SPOT_CHECKS {
        let topology = builtin(name);
        let ia = topology
            .region_index(a)
            .unwrap_or_else(|| panic!("{name}: {a}"));
        let ib = topology
            .region_index(b)
            .unwrap_or_else(|| panic!("{name}: {b}"));
        assert!(
            (topology.rtt_ms(ia, ib) - rtt_ms).abs() < 1e-9,
            "{name} {a}<->{b}: rtt {} != {rtt_ms}",
            topology.rtt_ms(ia, ib)
        );
        assert!(
            (topology.jitter_ms(ib, ia) - jitter_ms).abs() < 1e-9,
            "{name} {a}<->{b}: jitter {} != {jitter_ms}",
            topology.jitter_ms(ib, ia)
        );
    }
}

#[test]
fn epaxos_5_is_the_papers_sites_in_order_with_aliases() {
    let topology = builtin("epaxos-5");
    let labels: Vec<&str> = topology.regions().iter().map(|r| r.label()).collect();
    assert_eq!(labels, ["VA", "CA", "OR", "IE", "JP"]);
    assert_eq!(topology.region_index("us-west-2"), Some(2));
    assert_eq!(topology.region_index("OR"), Some(2));
    assert_eq!(topology.region_index("or"), None);
    // us-east-1.dat self line: 0.239/0.264/0.733/0.025:us-east-1
    assert_eq!(topology.rtt_ms(0, 0), 0.264);
    assert_eq!(topology.jitter_ms(0, 0), 0.025);
}

const SMALL: &str = r#"
name = "small"
description = "two regions, three replicas"
[[regions]]
name = "east"
alias = "E"
replicas = 2
clients = 3
intra_rtt_ms = 0.5
[[regions]]
name = "west"
replicas = 1
[[regions]]
name = "edge"
replicas = 0
clients = 4
[[links]]
a = "east"
b = "west"
rtt_ms = 61.9
jitter_ms = 0.4
[[links]]
a = "E"
b = "edge"
rtt_ms = 10.0003
[[links]]
a = "edge"
b = "west"
rtt_ms = 70
"#;

#[test]
fn parse_reads_defaults_aliases_and_both_link_directions() {
    let topology = Topology::parse(SMALL).expect("valid");
    assert_eq!(topology.name(), "small");
    assert_eq!(topology.source(), None);
    let west = &topology.regions()[1];
    // Defaults: one client site, no in-region RTT, no alias.
    assert_eq!(
        (west.replicas, west.clients, west.intra_rtt_ms),
        (1, 1, 0.0)
    );
    assert_eq!(west.alias, None);
    assert_eq!(topology.rtt_ms(0, 1), 61.9);
    assert_eq!(topology.rtt_ms(1, 0), 61.9);
    assert_eq!(topology.jitter_ms(1, 0), 0.4);
    // An integer rtt is accepted; jitter defaults to 0.
    assert_eq!(topology.rtt_ms(2, 1), 70.0);
    assert_eq!(topology.jitter_ms(2, 0), 0.0);
    assert_eq!(topology.one_way_us(0, 1), 30_950);
    // 10.0003 ms / 2 = 5000.15 µs, rounded to nearest.
    assert_eq!(topology.one_way_us(2, 0), 5_000);
    assert_eq!(topology.one_way_us(0, 0), 250);
}

#[test]
fn replicas_are_numbered_region_by_region() {
    let topology = Topology::parse(SMALL).expect("valid");
    assert_eq!(
        topology.replicas(),
        vec![(NodeId(0), 0), (NodeId(1), 0), (NodeId(2), 1)]
    );
    assert_eq!(topology.region_of_node(NodeId(1)), Some(0));
    assert_eq!(topology.region_of_node(NodeId(2)), Some(1));
    assert_eq!(topology.region_of_node(NodeId(3)), None);
}

#[test]
fn membership_has_members_and_replica_rtts() {
    let cluster = Topology::parse(SMALL).expect("valid").membership();
    let members: Vec<(NodeId, &str)> = cluster
        .members
        .iter()
        .map(|m| (m.id, m.region.as_str()))
        .collect();
    assert_eq!(
        members,
        [
            (NodeId(0), "east"),
            (NodeId(1), "east"),
            (NodeId(2), "west")
        ]
    );
    // Self 0; two replicas of `east` are the in-region RTT apart; east-west 61.9 ms.
    assert_eq!(
        cluster.rtt_us,
        vec![
            vec![0, 500, 61_900],
            vec![500, 0, 61_900],
            vec![61_900, 61_900, 0]
        ]
    );
    assert_eq!(
        cluster.by_distance(NodeId(2)),
        [NodeId(2), NodeId(0), NodeId(1)]
    );
}

#[test]
fn overrides_change_placement() {
    let topology = builtin("epaxos-3").with_clients_per_region(5);
    assert!(topology.regions().iter().all(|r| r.clients == 5));
    let topology = topology.with_replicas_per_region(2).expect("6 replicas");
    assert_eq!(topology.replicas().len(), 6);
    assert_eq!(topology.region_of_node(NodeId(3)), Some(1));
    assert_eq!(topology.membership().len(), 6);
    assert_eq!(
        topology.with_replicas_per_region(0),
        Err(TopologyError::NoReplicas)
    );
}

#[test]
fn resolve_takes_a_builtin_name_or_a_path() {
    assert_eq!(
        Topology::resolve("epaxos-5").expect("builtin"),
        builtin("epaxos-5")
    );
    let path = std::env::temp_dir().join(format!("meridian-topology-{}.toml", std::process::id()));
    std::fs::write(&path, SMALL).expect("write temp file");
    let loaded = Topology::resolve(path.to_str().expect("utf-8 temp path"));
    std::fs::remove_file(&path).expect("remove temp file");
    assert_eq!(
        loaded.expect("file"),
        Topology::parse(SMALL).expect("valid")
    );

    let err = Topology::resolve("epaxos-7").expect_err("unknown");
    assert!(matches!(err, TopologyError::UnknownTopology { .. }));
    assert!(err.to_string().contains("epaxos-7"), "{err}");
    assert!(
        err.to_string().contains("epaxos-5"),
        "lists builtins: {err}"
    );
}

#[test]
fn load_errors_name_the_path() {
    let missing = std::env::temp_dir().join("meridian-no-such-topology.toml");
    let err = Topology::load(&missing).expect_err("missing file");
    assert!(matches!(err, TopologyError::Read { .. }));
    assert!(
        err.to_string().contains("meridian-no-such-topology.toml"),
        "{err}"
    );

    let path =
        std::env::temp_dir().join(format!("meridian-bad-topology-{}.toml", std::process::id()));
    std::fs::write(&path, "name = \"x\"\n").expect("write temp file");
    let err = Topology::load(&path);
    std::fs::remove_file(&path).expect("remove temp file");
    let err = err.expect_err("no regions");
    match &err {
        TopologyError::InFile { path: p, error } => {
            assert_eq!(p, &path);
            assert_eq!(**error, TopologyError::NoRegions);
        }
        other => panic!("expected InFile, got {other:?}"),
    }
    assert!(err.to_string().contains("meridian-bad-topology"), "{err}");
    assert!(err.to_string().contains("no regions"), "{err}");
}

/// Two regions `a`, `b` with the given extra region lines and links.
fn two_regions(region_extra: &str, links: &str) -> String {
    format!(
        "name = \"t\"\n[[regions]]\nname = \"a\"\n{region_extra}\n[[regions]]\nname = \"b\"\n{links}"
    )
}

const AB: &str = "[[links]]\na = \"a\"\nb = \"b\"\nrtt_ms = 10\n";

/// Parses `text`, expects an error, checks its message mentions every `needle`.
fn parse_err(text: &str, needles: &[&str]) -> TopologyError {
    let err = Topology::parse(text).expect_err("must be rejected");
    let message = err.to_string();
    for needle in needles {
        assert!(message.contains(needle), "`{needle}` not in: {message}");
    }
    err
}

#[test]
fn two_regions_helper_is_valid_with_one_link() {
    let topology = Topology::parse(&two_regions("", AB)).expect("valid");
    assert_eq!(topology.rtt_ms(0, 1), 10.0);
}

#[test]
fn rejects_toml_syntax_errors_with_the_toml_message() {
    let err = parse_err("name = \"t\"\n[[regions]\n", &["line 2"]);
    assert!(matches!(err, TopologyError::Toml { .. }));
}

#[test]
fn rejects_unknown_fields_naming_them() {
    let err = parse_err(&two_regions("replica = 2", AB), &["replica", "line"]);
    assert!(matches!(err, TopologyError::Toml { .. }));
    let err = parse_err(&two_regions("", &format!("{AB}rtt = 3\n")), &["rtt"]);
    assert!(matches!(err, TopologyError::Toml { .. }));
    let err = parse_err(&format!("nmae = \"x\"\n{}", two_regions("", AB)), &["nmae"]);
    assert!(matches!(err, TopologyError::Toml { .. }));
}

#[test]
fn rejects_missing_and_mistyped_fields() {
    let err = parse_err("[[regions]]\nname = \"a\"\n", &["name"]);
    assert!(matches!(err, TopologyError::Toml { .. }));
    let err = parse_err(&two_regions("replicas = -1", AB), &["replicas"]);
    assert!(matches!(err, TopologyError::Toml { .. }));
    let err = parse_err(
        &two_regions("", "[[links]]\na = \"a\"\nb = \"b\"\n"),
        &["rtt_ms"],
    );
    assert!(matches!(err, TopologyError::Toml { .. }));
}

#[test]
fn rejects_zero_regions() {
    assert_eq!(
        parse_err("name = \"t\"\n", &["no regions"]),
        TopologyError::NoRegions
    );
    assert_eq!(
        parse_err("name = \"t\"\nregions = []\n", &["no regions"]),
        TopologyError::NoRegions
    );
}

#[test]
fn rejects_zero_replicas_overall() {
    let text = "name = \"t\"\n[[regions]]\nname = \"a\"\nreplicas = 0\n";
    assert_eq!(parse_err(text, &["no replica"]), TopologyError::NoReplicas);
}

#[test]
fn rejects_more_replicas_than_node_ids() {
    let text = two_regions("replicas = 65535", AB);
    let err = parse_err(&text, &["65536"]);
    assert!(matches!(
        err,
        TopologyError::TooManyReplicas { count: 65536, .. }
    ));
}

#[test]
fn rejects_duplicate_region_names_and_aliases() {
    let dup_name = format!("{}\n[[regions]]\nname = \"a\"\n", two_regions("", AB));
    assert_eq!(
        parse_err(&dup_name, &["`a`"]),
        TopologyError::DuplicateRegion { name: "a".into() }
    );
    // An alias equal to another region's name is ambiguous too.
    assert_eq!(
        parse_err(&two_regions("alias = \"b\"", AB), &["`b`"]),
        TopologyError::DuplicateRegion { name: "b".into() }
    );
    // An alias equal to its own region's name is merely redundant.
    assert!(Topology::parse(&two_regions("alias = \"a\"", AB)).is_ok());
}

#[test]
fn rejects_empty_region_names() {
    let text = "name = \"t\"\n[[regions]]\nname = \"\"\n";
    assert_eq!(
        parse_err(text, &["#0", "name"]),
        TopologyError::EmptyName {
            index: 0,
            field: "name"
        }
    );
    let err = parse_err(&two_regions("alias = \"\"", AB), &["alias"]);
    assert_eq!(
        err,
        TopologyError::EmptyName {
            index: 0,
            field: "alias"
        }
    );
}

#[test]
fn rejects_a_link_to_an_unknown_region_naming_it() {
    let links = "[[links]]\na = \"a\"\nb = \"mars\"\nrtt_ms = 10\n";
    let err = parse_err(&two_regions("", links), &["mars"]);
    assert!(matches!(err, TopologyError::UnknownRegion { region, .. } if region == "mars"));
}

#[test]
fn rejects_a_missing_pair_naming_both_regions() {
    let text = format!("{}\n[[regions]]\nname = \"c\"\n", two_regions("", AB));
    assert_eq!(
        parse_err(&text, &["`a`", "`c`"]),
        TopologyError::MissingLink {
            a: "a".into(),
            b: "c".into()
        }
    );
}

#[test]
fn rejects_a_pair_given_twice_with_different_values() {
    let reversed = "[[links]]\na = \"b\"\nb = \"a\"\nrtt_ms = 12\n";
    let err = parse_err(
        &two_regions("", &format!("{AB}{reversed}")),
        &["a <-> b", "10", "12"],
    );
    assert!(matches!(err, TopologyError::AsymmetricLink { .. }));
    let jittery = "[[links]]\na = \"a\"\nb = \"b\"\nrtt_ms = 10\njitter_ms = 1\n";
    let err = parse_err(&two_regions("", &format!("{AB}{jittery}")), &["jitter_ms"]);
    assert!(matches!(err, TopologyError::AsymmetricLink { .. }));
    // The same pair twice with the same values is accepted.
    let same = "[[links]]\na = \"b\"\nb = \"a\"\nrtt_ms = 10\n";
    assert!(Topology::parse(&two_regions("", &format!("{AB}{same}"))).is_ok());
}

#[test]
fn rejects_a_self_link() {
    let links = format!("{AB}[[links]]\na = \"a\"\nb = \"a\"\nrtt_ms = 1\n");
    assert_eq!(
        parse_err(&two_regions("", &links), &["intra_rtt_ms"]),
        TopologyError::SelfLink { region: "a".into() }
    );
}

#[test]
fn rejects_negative_nan_and_infinite_latencies_naming_the_field() {
    let cases = [
        (
            two_regions("", "[[links]]\na = \"a\"\nb = \"b\"\nrtt_ms = -1\n"),
            "links[a <-> b].rtt_ms",
        ),
        (
            two_regions("", "[[links]]\na = \"a\"\nb = \"b\"\nrtt_ms = nan\n"),
            "links[a <-> b].rtt_ms",
        ),
        (
            two_regions(
                "",
                "[[links]]\na = \"a\"\nb = \"b\"\nrtt_ms = 1\njitter_ms = inf\n",
            ),
            "links[a <-> b].jitter_ms",
        ),
        (
            two_regions("intra_rtt_ms = -0.1", AB),
            "regions[a].intra_rtt_ms",
        ),
        (
            two_regions("intra_jitter_ms = nan", AB),
            "regions[a].intra_jitter_ms",
        ),
    ];
    for (text, field) in cases {
        let err = parse_err(&text, &[field]);
        assert!(matches!(err, TopologyError::InvalidMs { .. }), "{err:?}");
    }
}

#[test]
fn delay_draws_keep_the_measured_mean_rtt() {
    let topology = builtin("epaxos-5");
    let (va, or) = (
        topology.region_index("VA").unwrap(),
        topology.region_index("OR").unwrap(),
    );
    // rtt 72.503 ms, jitter 2.433 ms: each direction 36.252 ms ± 0.608 ms.
    let draw = topology.one_way_draw(va, or);
    assert_eq!(draw.spread_us, 1_217);
    assert_eq!(draw.low_us, 36_252 - 608);
    assert_eq!(draw, topology.one_way_draw(or, va));
    for a in 0..topology.regions().len() {
        for b in 0..topology.regions().len() {
            let draw = topology.one_way_draw(a, b);
            let mean_x2 = 2 * draw.low_us + draw.spread_us;
            let expected_x2 = 2 * topology.one_way_us(a, b);
            assert!(mean_x2.abs_diff(expected_x2) <= 1, "{a}->{b}: {draw:?}");
        }
    }
}

#[test]
fn a_jitter_wider_than_the_delay_never_draws_below_zero() {
    let topology = Topology::parse(&two_regions(
        "",
        "[[links]]\na = \"a\"\nb = \"b\"\nrtt_ms = 1\njitter_ms = 8\n",
    ))
    .unwrap();
    let draw = topology.one_way_draw(0, 1);
    assert_eq!(draw.low_us, 0);
    assert_eq!(draw.spread_us, 1_000);
}
