use super::*;

#[test]
fn protocol_counters_are_read_for_one_keyspace() {
    let text = "\
# TYPE meridian_protocol counter
meridian_protocol{node=\"0\",keyspace=\"epaxos\",protocol=\"epaxos\",name=\"fast_path\"} 12
meridian_protocol{node=\"0\",keyspace=\"epaxos\",protocol=\"epaxos\",name=\"slow_path\"} 3
meridian_protocol{node=\"0\",keyspace=\"epaxos-thrifty\",protocol=\"epaxos\",name=\"fast_path\"} 99
meridian_requests_total{node=\"0\",keyspace=\"epaxos\"} 15
meridian_protocol{node=\"0\",keyspace=\"epaxos\",protocol=\"epaxos\",name=\"broken\"} x
";
    let counters = protocol_counters(text, "epaxos");
    assert_eq!(counters.get("fast_path"), 12);
    assert_eq!(counters.get("slow_path"), 3);
    assert_eq!(counters.get("broken"), 0);
    let later = protocol_counters(&text.replace("} 12", "} 20"), "epaxos");
    assert_eq!(delta(&counters, &later).get("fast_path"), 8);
}
