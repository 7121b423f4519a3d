use super::*;
use crate::storage::FILE_HEADER_LEN;
use crate::test_support::TempDir;

/// A config of node `id` (cluster `cluster`) with keyspaces `kv` and `ev`, its data
/// directory `data` under `dir`.
fn config(dir: &Path, id: u16, cluster: Option<&str>) -> NodeConfig {
    let cluster = cluster.map_or(String::new(), |c| format!("cluster_id = {c:?}\n"));
    let text = format!(
        "id = {id}\n{cluster}region = \"r\"\nlisten = \"127.0.0.1:7000\"\ndata_dir = \"data\"\n\
         [tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n\
         [[peers]]\nid = {other}\nregion = \"r\"\naddress = \"127.0.0.1:7001\"\n\
         [[keyspaces]]\nname = \"kv\"\nprotocol = \"multipaxos\"\n\
         [[keyspaces]]\nname = \"ev\"\nprotocol = \"epaxos\"\n",
        other = 1 - id
    );
    let mut config = NodeConfig::parse(&text, &dir.join("node.toml")).expect("config");
    config.data_dir = dir.join("data");
    config
}

/// Give keyspace `k` a log with one record's worth of bytes after the header.
fn write_log(config: &NodeConfig, k: &str) {
    let dir = config.data_dir.join(k);
    fs::create_dir_all(&dir).unwrap();
    fs::write(dir.join(LOG_FILE), vec![7u8; FILE_HEADER_LEN + 10]).unwrap();
}

/// Every file under `dir` with its bytes.
fn snapshot(dir: &Path) -> Vec<(PathBuf, Vec<u8>)> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        for entry in fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push((path.clone(), fs::read(&path).unwrap()));
            }
        }
    }
    files.sort();
    files
}

#[test]
fn a_missing_data_dir_is_refused_without_init_or_rejoin_and_not_created() {
    let tmp = TempDir::new("id-missing");
    fs::create_dir_all(tmp.path()).unwrap();
    let c = config(tmp.path(), 0, Some("c1"));
    let e = prepare(&c, StartMode::Normal).unwrap_err();
    assert!(matches!(e, IdentityError::NoState { .. }), "{e}");
    let text = e.to_string();
    assert!(
        text.contains("does not exist") && text.contains("--init") && text.contains("--rejoin"),
        "{text}"
    );
    assert!(!c.data_dir.exists());
    // An empty directory is refused too, and left empty.
    fs::create_dir(&c.data_dir).unwrap();
    let e = prepare(&c, StartMode::Normal).unwrap_err();
    assert!(e.to_string().contains("no identity.toml"), "{e}");
    assert!(snapshot(&c.data_dir).is_empty());
}

#[test]
fn init_creates_the_identity_once_and_a_normal_start_then_checks_it() {
    let tmp = TempDir::new("id-init");
    fs::create_dir_all(tmp.path()).unwrap();
    let c = config(tmp.path(), 0, Some("c1"));
    let p = prepare(&c, StartMode::Init).unwrap();
    assert_eq!(p.action, "initialised");
    assert!(p.rejoin.is_empty());
    assert_eq!(p.identity.node_id, 0);
    assert_eq!(p.identity.cluster_id.as_deref(), Some("c1"));
    assert_eq!(p.identity.keyspaces, ["kv", "ev"]);
    assert_eq!(read(&c.data_dir).unwrap(), Some(p.identity.clone()));
    let again = prepare(&c, StartMode::Normal).unwrap();
    assert_eq!(again.action, "checked");
    assert_eq!(again.identity, p.identity);
    let e = prepare(&c, StartMode::Init).unwrap_err();
    assert!(
        matches!(e, IdentityError::AlreadyInitialised { node: 0, .. }),
        "{e}"
    );
}

#[test]
fn init_does_not_create_a_data_dir_whose_parent_is_missing() {
    let tmp = TempDir::new("id-parent");
    fs::create_dir_all(tmp.path()).unwrap();
    let mut c = config(tmp.path(), 0, None);
    c.data_dir = tmp.path().join("typo").join("data");
    for mode in [StartMode::Init, StartMode::Rejoin] {
        let e = prepare(&c, mode).unwrap_err();
        assert!(matches!(e, IdentityError::NoParent { .. }), "{e}");
    }
    assert!(!tmp.path().join("typo").exists());
}

#[test]
fn another_nodes_or_clusters_data_dir_is_refused_untouched() {
    let tmp = TempDir::new("id-foreign");
    fs::create_dir_all(tmp.path()).unwrap();
    let c0 = config(tmp.path(), 0, Some("c1"));
    prepare(&c0, StartMode::Init).unwrap();
    write_log(&c0, "kv");
    let before = snapshot(&c0.data_dir);
    let c1 = config(tmp.path(), 1, Some("c1"));
    for mode in [StartMode::Normal, StartMode::Rejoin, StartMode::Init] {
        let e = prepare(&c1, mode).unwrap_err();
        let text = e.to_string();
        assert!(
            text.contains("belongs to node 0 of cluster \"c1\"")
                && text.contains("config says node 1"),
            "{text}"
        );
    }
    let other_cluster = config(tmp.path(), 0, Some("c2"));
    let e = prepare(&other_cluster, StartMode::Normal).unwrap_err();
    assert!(e.to_string().contains("cluster \"c2\""), "{e}");
    let unnamed = config(tmp.path(), 0, None);
    assert!(prepare(&unnamed, StartMode::Normal).is_err());
    assert_eq!(snapshot(&c0.data_dir), before);
}

#[test]
fn a_cluster_id_named_later_is_recorded() {
    let tmp = TempDir::new("id-adopt-cluster");
    fs::create_dir_all(tmp.path()).unwrap();
    prepare(&config(tmp.path(), 0, None), StartMode::Init).unwrap();
    let named = config(tmp.path(), 0, Some("c9"));
    let p = prepare(&named, StartMode::Normal).unwrap();
    assert_eq!(p.identity.cluster_id.as_deref(), Some("c9"));
    assert_eq!(
        read(&named.data_dir)
            .unwrap()
            .unwrap()
            .cluster_id
            .as_deref(),
        Some("c9")
    );
}

#[test]
fn logs_written_before_identities_are_adopted() {
    let tmp = TempDir::new("id-adopt");
    fs::create_dir_all(tmp.path()).unwrap();
    let c = config(tmp.path(), 0, Some("c1"));
    write_log(&c, "kv");
    let p = prepare(&c, StartMode::Normal).unwrap();
    assert_eq!(p.action, "adopted");
    assert!(p.rejoin.is_empty());
    assert!(read(&c.data_dir).unwrap().is_some());
}

#[test]
fn rejoin_bumps_the_incarnation_and_rejoins_empty_keyspaces_until_they_hold_state() {
    let tmp = TempDir::new("id-rejoin");
    fs::create_dir_all(tmp.path()).unwrap();
    let c = config(tmp.path(), 0, Some("c1"));
    let first = prepare(&c, StartMode::Init).unwrap().identity;
    write_log(&c, "kv");
    write_log(&c, "ev");
    // The disk loses one keyspace: a plain start refuses, naming it.
    fs::remove_dir_all(c.data_dir.join("ev")).unwrap();
    let e = prepare(&c, StartMode::Normal).unwrap_err();
    assert!(
        matches!(&e, IdentityError::LostKeyspace { keyspace, .. } if keyspace == "ev"),
        "{e}"
    );
    let p = prepare(&c, StartMode::Rejoin).unwrap();
    assert_eq!(p.action, "rejoining");
    assert_eq!(p.rejoin, ["ev"]);
    assert!(p.identity.incarnation > first.incarnation);
    // Crashed before the core persisted anything: the next plain start rejoins again.
    let again = prepare(&c, StartMode::Normal).unwrap();
    assert_eq!(again.rejoin, ["ev"]);
    assert_eq!(again.identity.incarnation, p.identity.incarnation);
    // Once the keyspace holds records, its core knows where its rejoin stands.
    write_log(&c, "ev");
    assert!(prepare(&c, StartMode::Normal).unwrap().rejoin.is_empty());
}

#[test]
fn rejoin_on_a_lost_disk_creates_a_new_incarnation_rejoining_every_keyspace() {
    let tmp = TempDir::new("id-amnesia");
    fs::create_dir_all(tmp.path()).unwrap();
    let c = config(tmp.path(), 1, Some("c1"));
    let p = prepare(&c, StartMode::Rejoin).unwrap();
    assert_eq!(p.rejoin, ["kv", "ev"]);
    assert_eq!(p.identity.node_id, 1);
    assert_eq!(read(&c.data_dir).unwrap().unwrap().rejoin, ["kv", "ev"]);
}

#[test]
fn a_keyspace_added_to_the_config_is_recorded() {
    let tmp = TempDir::new("id-new-keyspace");
    fs::create_dir_all(tmp.path()).unwrap();
    let c = config(tmp.path(), 0, None);
    let mut identity = prepare(&c, StartMode::Init).unwrap().identity;
    identity.keyspaces = vec!["kv".into()];
    write(&c.data_dir, &identity).unwrap();
    write_log(&c, "kv");
    let p = prepare(&c, StartMode::Normal).unwrap();
    assert_eq!(p.identity.keyspaces, ["kv", "ev"]);
    assert!(p.rejoin.is_empty());
}

#[test]
fn a_malformed_identity_is_an_error_naming_the_file() {
    let tmp = TempDir::new("id-malformed");
    fs::create_dir_all(tmp.path()).unwrap();
    let c = config(tmp.path(), 0, None);
    fs::create_dir(&c.data_dir).unwrap();
    fs::write(c.data_dir.join(IDENTITY_FILE), "node_id = \"zero\"\n").unwrap();
    let e = prepare(&c, StartMode::Normal).unwrap_err();
    assert!(
        matches!(e, IdentityError::Malformed { .. }) && e.to_string().contains(IDENTITY_FILE),
        "{e}"
    );
}

/// Tempo has a rejoin rule (docs/design.md#tempo-rejoin-rule): a `--rejoin` rejoins a
/// Tempo keyspace whose log is empty like any other; once its log holds state (only
/// another keyspace lost its log) the rejoin goes ahead without it.
#[test]
fn rejoin_covers_tempo_keyspaces_with_an_empty_log() {
    let tmp = TempDir::new("id-tempo-rejoin");
    fs::create_dir_all(tmp.path()).unwrap();
    let text = "id = 0\nregion = \"r\"\nlisten = \"127.0.0.1:7000\"\ndata_dir = \"data\"\n\
        [tls]\nca = \"ca.pem\"\ncert = \"c.pem\"\nkey = \"c.key\"\n\
        [[peers]]\nid = 1\nregion = \"r\"\naddress = \"127.0.0.1:7001\"\n\
        [[peers]]\nid = 2\nregion = \"r\"\naddress = \"127.0.0.1:7002\"\n\
        [[keyspaces]]\nname = \"ev\"\nprotocol = \"epaxos\"\n\
        [[keyspaces]]\nname = \"tv\"\nprotocol = \"tempo\"\n";
    let mut c = NodeConfig::parse(text, &tmp.path().join("node.toml")).expect("config");
    c.data_dir = tmp.path().join("data");
    let p = prepare(&c, StartMode::Rejoin).unwrap();
    assert_eq!(p.rejoin, ["ev", "tv"]);

    write_log(&c, "tv");
    let p = prepare(&c, StartMode::Rejoin).unwrap();
    assert_eq!(p.rejoin, ["ev"]);
}
