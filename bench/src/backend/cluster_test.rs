use super::*;

#[test]
fn protocol_counters_are_read_for_one_keyspace() {
    let text = "\
# TYPE meridian_protocol_events_total counter
meridian_protocol_events_total{node=\"0\",keyspace=\"epaxos\",protocol=\"epaxos\",name=\"fast_path\"} 12
meridian_protocol_events_total{node=\"0\",keyspace=\"epaxos\",protocol=\"epaxos\",name=\"slow_path\"} 3
meridian_protocol_events_total{node=\"0\",keyspace=\"epaxos-thrifty\",protocol=\"epaxos\",name=\"fast_path\"} 99
meridian_requests_total{node=\"0\",keyspace=\"epaxos\"} 15
meridian_protocol_events_total{node=\"0\",keyspace=\"epaxos\",protocol=\"epaxos\",name=\"broken\"} x
# TYPE meridian_protocol_state gauge
meridian_protocol_state{node=\"0\",keyspace=\"epaxos\",protocol=\"epaxos\",name=\"instances_live\"} 5
";
    let counters = protocol_counters(text, "epaxos");
    assert_eq!(counters.get("fast_path"), 12);
    assert_eq!(counters.get("slow_path"), 3);
    assert_eq!(counters.get("broken"), 0);
    assert_eq!(counters.get("instances_live"), 5);
    let later = protocol_counters(&text.replace("} 12", "} 20"), "epaxos");
    assert_eq!(delta(&counters, &later).get("fast_path"), 8);
}

/// The commit is placed at the return minus the replica's hold after commit, with its
/// path; a hold longer than the whole request (clocks of two machines never mix here,
/// but a note is data from the wire) is clamped to the call.
#[test]
fn a_commit_note_places_the_commit_before_the_return() {
    let call = Time::from_micros(1_000);
    let ret = Time::from_micros(81_000);
    let note = |held| CommitNote {
        path: CommitPath::Fast,
        before_reply_us: held,
    };
    assert_eq!(
        commit_of(call, ret, note(15_000)),
        (Time::from_micros(66_000), CommitPath::Fast)
    );
    assert_eq!(commit_of(call, ret, note(0)).0, ret);
    assert_eq!(commit_of(call, ret, note(500_000)).0, call);
}
