use super::*;

fn change(keyspace: &str, outcome: ChangeReport) -> KeyspaceChange {
    KeyspaceChange {
        keyspace: keyspace.into(),
        protocol: keyspace.into(),
        outcome,
    }
}

fn skipped() -> KeyspaceChange {
    let reason = "membership change is not supported for epaxos keyspaces yet";
    change("epaxos", ChangeReport::Skipped(reason.into()))
}

#[test]
fn exit_codes_never_count_a_skipped_keyspace_as_done() {
    let changed = change("multipaxos", ChangeReport::Changed { epoch: 2 });
    let failed = change(
        "paxos-b",
        ChangeReport::Failed("node 3 is already a voter".into()),
    );
    let late = change("paxos-c", ChangeReport::TimedOut("timed out".into()));
    assert_eq!(exit_code(&[changed.clone(), skipped()]), EXIT_OK);
    assert_eq!(exit_code(&[skipped()]), EXIT_REFUSED);
    assert_eq!(exit_code(&[]), EXIT_REFUSED);
    assert_eq!(exit_code(&[changed.clone(), failed]), EXIT_REFUSED);
    assert_eq!(exit_code(&[changed, late]), EXIT_UNAVAILABLE);
}

#[test]
fn text_and_json_name_each_keyspace_and_its_outcome() {
    let changes = [
        skipped(),
        change("multipaxos", ChangeReport::Changed { epoch: 3 }),
    ];
    assert_eq!(
        changes_text(&changes),
        "epaxos skipped: membership change is not supported for epaxos keyspaces yet\n\
         multipaxos changed epoch 3\n"
    );
    let json = changes_json(&changes);
    assert_eq!(json["keyspaces"][0]["outcome"], "skipped");
    assert!(json["keyspaces"][0]["reason"]
        .as_str()
        .unwrap()
        .contains("epaxos"));
    assert_eq!(json["keyspaces"][1]["outcome"], "changed");
    assert_eq!(json["keyspaces"][1]["epoch"], 3);
}
