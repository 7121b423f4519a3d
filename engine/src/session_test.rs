use super::*;

fn id(seq: u64) -> RequestId {
    RequestId {
        client: ClientId(1),
        seq,
    }
}

#[test]
fn a_repeat_gets_the_first_result_and_is_not_executed() {
    let mut table = SessionTable::new();
    assert_eq!(table.admit(id(3)), Admission::Execute);
    table.record(id(3), CommandResult::Written);
    assert_eq!(
        table.admit(id(3)),
        Admission::Duplicate(Some(CommandResult::Written))
    );
    assert_eq!(
        table.admit(id(4)),
        Admission::Execute,
        "other requests still run"
    );
}

#[test]
fn the_window_is_bounded_and_forgotten_requests_never_run() {
    let mut table = SessionTable::new();
    for seq in 0..(SESSION_WINDOW as u64 + 10) {
        table.record(id(seq), CommandResult::Written);
    }
    assert_eq!(table.clients[&ClientId(1)].results.len(), SESSION_WINDOW);
    assert_eq!(table.admit(id(0)), Admission::Duplicate(None));
}

/// `KeySessions`: exactly-once per key.
mod key_sessions {
    use super::*;

    fn id(client: u64, seq: u64) -> RequestId {
        RequestId {
            client: ClientId(client),
            seq,
        }
    }

    fn put(key: &str) -> Command {
        Command::Put {
            key: key.into(),
            value: b"v".to_vec(),
        }
    }

    #[test]
    fn a_repeated_write_gets_the_first_result_and_reads_run_again() {
        let mut table = KeySessions::new();
        assert_eq!(table.admit(id(1, 3), &put("k")), Admission::Execute);
        table.record(id(1, 3), &put("k"), CommandResult::Written);
        assert_eq!(
            table.admit(id(1, 3), &put("k")),
            Admission::Duplicate(Some(CommandResult::Written))
        );
        let get = Command::Get { key: "k".into() };
        table.record(id(1, 4), &get, CommandResult::Value(None));
        assert_eq!(table.admit(id(1, 4), &get), Admission::Execute);
    }

    /// The regression: the decision for an old request must not depend on how many of
    /// the client's newer requests, on other keys, ran first.
    #[test]
    fn newer_requests_on_other_keys_never_make_an_old_one_a_duplicate() {
        let mut table = KeySessions::new();
        for seq in 1_000..5_000 {
            let key = format!("k{seq}");
            table.record(id(1, seq), &put(&key), CommandResult::Written);
        }
        assert_eq!(table.admit(id(1, 7), &put("k7")), Admission::Execute);
    }

    #[test]
    fn each_key_remembers_a_bounded_window() {
        let mut table = KeySessions::new();
        for seq in 0..(KEY_SESSION_WINDOW as u64 + 5) {
            table.record(id(seq, 0), &put("hot"), CommandResult::Written);
        }
        assert_eq!(table.writes[&b"hot".to_vec()].len(), KEY_SESSION_WINDOW);
        assert_eq!(table.admit(id(0, 0), &put("hot")), Admission::Execute);
        assert!(matches!(
            table.admit(id(KEY_SESSION_WINDOW as u64 + 4, 0), &put("hot")),
            Admission::Duplicate(Some(_))
        ));
    }
}
