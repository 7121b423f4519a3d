use super::*;

#[test]
fn parses_every_form_and_rejects_unknown_names() {
    assert_eq!(
        ProtocolSpec::parse("epaxos", "CA"),
        Ok(ProtocolSpec::Epaxos {
            thrifty: false,
            ordered: false
        })
    );
    let ordered = ProtocolSpec::parse("epaxos-ordered", "CA").unwrap();
    assert_eq!(
        ordered,
        ProtocolSpec::Epaxos {
            thrifty: false,
            ordered: true
        }
    );
    assert_eq!(ordered.to_string(), "epaxos-ordered");
    assert_eq!(
        ProtocolSpec::parse("multipaxos", "CA"),
        Ok(ProtocolSpec::MultiPaxos {
            leader_region: "CA".into()
        })
    );
    assert_eq!(
        ProtocolSpec::parse("multipaxos:VA", "CA"),
        Ok(ProtocolSpec::MultiPaxos {
            leader_region: "VA".into()
        })
    );
    assert_eq!(
        ProtocolSpec::parse("dynamo:LOCAL_QUORUM", "CA"),
        Ok(ProtocolSpec::Dynamo {
            level: Level::LocalQuorum
        })
    );
    let error = ProtocolSpec::parse("raft", "CA").unwrap_err();
    assert!(error.contains("unknown protocol"), "{error}");
    assert!(ProtocolSpec::parse("dynamo:SOMETIMES", "CA").is_err());
}
