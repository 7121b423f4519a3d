use super::*;
use crate::certs;
use crate::test_support::TempDir;
use std::path::Path;

/// Node `id` of a 3-node cluster on 10.0.0.1-3, certificates in `certs`.
fn text(id: u16, certs: &Path) -> String {
    let mut text = format!(
        "id = {id}\nregion = \"r{id}\"\nlisten = \"0.0.0.0:7000\"\ndata_dir = \"/var/lib/meridian\"\n\
         [tls]\nca = \"{c}/ca.pem\"\ncert = \"{c}/node-{id}.pem\"\nkey = \"{c}/node-{id}.key\"\n",
        c = certs.display()
    );
    for peer in (0..3).filter(|&p| p != id) {
        text.push_str(&format!(
            "[[peers]]\nid = {peer}\nregion = \"r{peer}\"\naddress = \"10.0.0.{}:7000\"\n",
            peer + 1
        ));
    }
    text.push_str("[[keyspaces]]\nname = \"kv\"\nprotocol = \"multipaxos\"\n");
    text.push_str("[[keyspaces]]\nname = \"fast\"\nprotocol = \"epaxos\"\n");
    text
}

fn load(texts: &[String]) -> Vec<(PathBuf, NodeConfig)> {
    texts
        .iter()
        .enumerate()
        .map(|(i, t)| {
            let path = PathBuf::from(format!("node-{i}.toml"));
            let config = NodeConfig::parse(t, &path).expect("each file is valid alone");
            (path, config)
        })
        .collect()
}

fn certs_dir() -> TempDir {
    let dir = TempDir::new("config-set");
    certs::init(dir.path(), 3, 30, 30).unwrap();
    dir
}

#[test]
fn a_consistent_set_has_no_problems() {
    let dir = certs_dir();
    let texts: Vec<String> = (0..3).map(|i| text(i, dir.path())).collect();
    assert_eq!(check_cluster(&load(&texts)), Vec::<String>::new());
}

#[test]
fn disagreements_between_files_are_each_reported() {
    let dir = certs_dir();
    let mut texts: Vec<String> = (0..3).map(|i| text(i, dir.path())).collect();
    // Node 0 has node 2 on the wrong port; node 1 runs the EPaxos keyspace thrifty.
    texts[0] = texts[0].replace("10.0.0.3:7000", "10.0.0.3:7001");
    texts[1] = texts[1].replace(
        "protocol = \"epaxos\"",
        "protocol = \"epaxos\"\nthrifty = true",
    );
    let problems = check_cluster(&load(&texts));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("node-0.toml: peers[1] (node 2): address 10.0.0.3:7001")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("node-1.toml: keyspace options differ")),
        "{problems:#?}"
    );
    assert_eq!(problems.len(), 2, "{problems:#?}");
}

#[test]
fn a_missing_node_a_duplicate_id_and_a_wrong_certificate_are_reported() {
    let dir = certs_dir();
    let texts = vec![text(0, dir.path()), text(1, dir.path())];
    let problems = check_cluster(&load(&texts));
    assert!(
        problems.iter().any(|p| p.contains("no config for node 2")),
        "{problems:#?}"
    );
    let wrong_cert = text(1, dir.path()).replace("node-1.pem", "node-2.pem");
    let texts = vec![text(0, dir.path()), wrong_cert, text(1, dir.path())];
    let problems = check_cluster(&load(&texts));
    assert!(
        problems.iter().any(|p| p.contains("are both node 1")),
        "{problems:#?}"
    );
    assert!(
        problems
            .iter()
            .any(|p| p.contains("does not name node 1 (node-1.meridian)")),
        "{problems:#?}"
    );
}

#[test]
fn the_example_deployment_in_the_repository_is_consistent() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../deploy/examples/three-hosts");
    let mut configs = Vec::new();
    for i in 0..3 {
        let path = dir.join(format!("node-{i}.toml"));
        let config = NodeConfig::load(&path).unwrap_or_else(|e| panic!("{e}"));
        configs.push((path, config));
    }
    assert_eq!(check_cluster(&configs), Vec::<String>::new());
}

/// Node 3, added by `member add`: every node a peer, and `keyspaces`.
fn joining_text(certs: &Path, keyspaces: &str) -> String {
    let mut text = format!(
        "id = 3\nregion = \"r3\"\nlisten = \"0.0.0.0:7000\"\ndata_dir = \"/var/lib/meridian\"\n\
         [tls]\nca = \"{c}/ca.pem\"\ncert = \"{c}/node-3.pem\"\nkey = \"{c}/node-3.key\"\n",
        c = certs.display()
    );
    for peer in 0..3 {
        text.push_str(&format!(
            "[[peers]]\nid = {peer}\nregion = \"r{peer}\"\naddress = \"10.0.0.{}:7000\"\n",
            peer + 1
        ));
    }
    text + keyspaces
}

#[test]
fn a_joining_node_serves_the_keyspaces_that_change_membership_with_the_first_members() {
    let dir = certs_dir();
    let node_3 = certs::Subject::Node(NodeId(3));
    certs::issue(dir.path(), None, &node_3, 30, false).unwrap();
    let mut texts: Vec<String> = (0..3).map(|i| text(i, dir.path())).collect();
    let kv = "[[keyspaces]]\nname = \"kv\"\nprotocol = \"multipaxos\"\n";
    let epaxos = "[[keyspaces]]\nname = \"fast\"\nprotocol = \"epaxos\"\n";
    let first = "initial_members = [0, 1, 2]\n";
    texts.push(joining_text(
        dir.path(),
        &format!("{kv}{first}{epaxos}{first}"),
    ));
    assert_eq!(check_cluster(&load(&texts)), Vec::<String>::new());

    // Leaving the EPaxos keyspace out, or naming other first members, is reported.
    texts[3] = joining_text(dir.path(), &format!("{kv}{first}"));
    let problems = check_cluster(&load(&texts));
    assert!(
        problems.len() == 1 && problems[0].contains("is a joining node"),
        "{problems:#?}"
    );
    texts[3] = joining_text(
        dir.path(),
        &format!("{kv}initial_members = [0, 1]\n{epaxos}{first}"),
    );
    let problems = check_cluster(&load(&texts));
    assert!(
        problems
            .iter()
            .any(|p| p.contains("initial_members = [0, 1, 2]")),
        "{problems:#?}"
    );
}
