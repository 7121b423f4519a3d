use super::*;

fn id(seq: u64) -> RequestId {
    RequestId {
        client: ClientId(1),
        seq,
    }
}

fn client(client: u64, seq: u64) -> RequestId {
    RequestId {
        client: ClientId(client),
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
        Admission::Duplicate(CommandResult::Written)
    );
    assert_eq!(
        table.admit(id(4)),
        Admission::Execute,
        "other requests still run"
    );
}

#[test]
fn a_retry_older_than_the_clients_window_expires_and_never_runs() {
    let limits = SessionLimits {
        per_client: 8,
        ..SessionLimits::default()
    };
    let mut table = SessionTable::with_limits(limits);
    for seq in 0..20 {
        table.record(id(seq), CommandResult::Written);
    }
    assert_eq!(table.clients[&ClientId(1)].results.len(), 8);
    assert_eq!(table.admit(id(0)), Admission::Expired);
    assert_eq!(table.admit(id(11)), Admission::Expired);
    assert_eq!(
        table.admit(id(12)),
        Admission::Duplicate(CommandResult::Written)
    );
    assert_eq!(table.admit(id(20)), Admission::Execute);
}

#[test]
fn a_result_is_forgotten_after_its_age_in_executed_commands() {
    let limits = SessionLimits {
        result_commands: 5,
        ..SessionLimits::default()
    };
    let mut table = SessionTable::with_limits(limits);
    // Client 1 pipelines: seq 3 runs before seq 2.
    table.record(client(1, 3), CommandResult::Written);
    for seq in 0..5 {
        table.record(client(2, seq), CommandResult::Written);
    }
    assert_eq!(table.admit(client(1, 2)), Admission::Execute, "still young");
    assert_eq!(
        table.admit(client(1, 3)),
        Admission::Duplicate(CommandResult::Written)
    );
    table.record(client(2, 5), CommandResult::Written);
    assert_eq!(table.admit(client(1, 3)), Admission::Expired);
    assert_eq!(
        table.admit(client(1, 2)),
        Admission::Expired,
        "older than a forgotten result and never seen"
    );
    assert_eq!(table.admit(client(1, 4)), Admission::Execute);
    assert!(table.by_age.len() <= 6);
}

#[test]
fn the_least_recently_active_session_expires_beyond_the_count() {
    let limits = SessionLimits {
        max_clients: 3,
        ..SessionLimits::default()
    };
    let mut table = SessionTable::with_limits(limits);
    for c in 1..=3 {
        table.record(client(c, 1), CommandResult::Written);
    }
    // Client 1 is active again: client 2 is now the least recently active.
    table.record(client(1, 2), CommandResult::Written);
    table.record(client(4, 1), CommandResult::Written);
    assert_eq!(table.len(), 3);
    assert_eq!(
        table.admit(client(2, 1)),
        Admission::Expired,
        "an old retry of an expired session"
    );
    assert_eq!(
        table.admit(client(1, 1)),
        Admission::Duplicate(CommandResult::Written)
    );
    // Unknown clients below the highest expired id had sessions once; above it are new.
    assert_eq!(table.admit(client(0, 1)), Admission::Expired);
    assert_eq!(table.admit(client(5, 1)), Admission::Execute);
}

#[test]
fn an_idle_session_expires_after_its_age_in_executed_commands() {
    let limits = SessionLimits {
        idle_commands: 10,
        ..SessionLimits::default()
    };
    let mut table = SessionTable::with_limits(limits);
    table.record(client(1, 1), CommandResult::Written);
    for seq in 0..10 {
        table.record(client(2, seq), CommandResult::Written);
    }
    assert_eq!(
        table.admit(client(1, 1)),
        Admission::Duplicate(CommandResult::Written),
        "idle for exactly the limit: still remembered"
    );
    table.record(client(2, 10), CommandResult::Written);
    assert_eq!(table.admit(client(1, 1)), Admission::Expired);
    assert_eq!(table.admit(client(1, 2)), Admission::Expired);
    assert_eq!(table.len(), 1);
}

#[test]
fn a_table_survives_a_snapshot_round_trip_and_decides_alike() {
    let limits = SessionLimits {
        per_client: 4,
        result_commands: 20,
        max_clients: 5,
        idle_commands: 50,
    };
    let mut table = SessionTable::with_limits(limits);
    for i in 0..40u64 {
        table.record(client(i % 7, i), CommandResult::Written);
    }
    let bytes = postcard::to_allocvec(&table).expect("serialize");
    let mut restored: SessionTable = postcard::from_bytes(&bytes).expect("deserialize");
    restored.set_limits(limits);
    assert_eq!(restored, table);
    for i in 40..80u64 {
        let request = client(i % 9, i / 2);
        assert_eq!(restored.admit(request), table.admit(request), "{request}");
        restored.record(request, CommandResult::Written);
        table.record(request, CommandResult::Written);
    }
    assert_eq!(restored, table);
}

/// The table as it was, with B-tree maps (`clients`, `by_activity`, per-client
/// `results`): the specification of what the table decides and of its encoding.
mod reference {
    use crate::command::CommandResult;
    use crate::id::{ClientId, RequestId};
    use crate::session::{Admission, SessionLimits};
    use serde::{Deserialize, Serialize};
    use std::collections::{BTreeMap, VecDeque};

    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    struct ClientSession {
        results: BTreeMap<u64, CommandResult>,
        floor: u64,
        last_active: u64,
    }

    #[derive(Clone, Debug, Default, Serialize, Deserialize)]
    pub(super) struct Table {
        clients: BTreeMap<ClientId, ClientSession>,
        by_activity: BTreeMap<u64, ClientId>,
        by_age: VecDeque<(u64, RequestId)>,
        clock: u64,
        expired_up_to: Option<ClientId>,
        #[serde(skip)]
        pub(super) limits: SessionLimits,
    }

    impl Table {
        pub(super) fn admit(&self, request: RequestId) -> Admission {
            match self.clients.get(&request.client) {
                None if self.expired_up_to >= Some(request.client) => Admission::Expired,
                None => Admission::Execute,
                Some(session) => match session.results.get(&request.seq) {
                    Some(result) => Admission::Duplicate(result.clone()),
                    None if request.seq < session.floor => Admission::Expired,
                    None => Admission::Execute,
                },
            }
        }

        pub(super) fn record(&mut self, request: RequestId, result: CommandResult) {
            self.clock += 1;
            let clock = self.clock;
            let per_client = self.limits.per_client.max(1);
            let session = self.clients.entry(request.client).or_default();
            self.by_activity.remove(&session.last_active);
            session.last_active = clock;
            self.by_activity.insert(clock, request.client);
            session.results.insert(request.seq, result);
            while session.results.len() > per_client {
                if let Some((oldest, _)) = session.results.pop_first() {
                    session.floor = session.floor.max(oldest + 1);
                }
            }
            self.by_age.push_back((clock, request));
            while let Some(&(at, request)) = self.by_age.front() {
                if clock - at <= self.limits.result_commands {
                    break;
                }
                self.by_age.pop_front();
                if let Some(session) = self.clients.get_mut(&request.client) {
                    if session.results.remove(&request.seq).is_some() {
                        session.floor = session.floor.max(request.seq + 1);
                    }
                }
            }
            while let Some((&active, &client)) = self.by_activity.first_key_value() {
                let idle = clock - active > self.limits.idle_commands;
                if !idle && self.clients.len() <= self.limits.max_clients.max(1) {
                    break;
                }
                self.by_activity.remove(&active);
                self.clients.remove(&client);
                self.expired_up_to = self.expired_up_to.max(Some(client));
            }
        }
    }
}

/// Random histories (repeats, retries out of order, idle and evicted clients): the table
/// decides as the B-tree table did and encodes to the same bytes, also after a restore.
#[test]
fn the_table_decides_and_encodes_as_the_b_tree_table_it_replaced() {
    use rand::{Rng, SeedableRng};
    for seed in 0..40u64 {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let limits = SessionLimits {
            per_client: rng.gen_range(1..6),
            result_commands: rng.gen_range(5..60),
            max_clients: rng.gen_range(1..8),
            idle_commands: rng.gen_range(10..80),
        };
        let mut table = SessionTable::with_limits(limits);
        let mut model = reference::Table::default();
        model.limits = limits;
        let mut next_seq = [0u64; 10];
        for step in 0..2_000u32 {
            // Busy clients 0..3, the rest now and then (idle, evicted, back).
            let c = if rng.gen_bool(0.8) {
                rng.gen_range(0..3)
            } else {
                rng.gen_range(3..10)
            };
            let seq = if rng.gen_bool(0.15) {
                next_seq[c].saturating_sub(rng.gen_range(0..8))
            } else {
                next_seq[c] += 1;
                next_seq[c]
            };
            let request = client(c as u64, seq);
            let admission = model.admit(request);
            assert_eq!(table.admit(request), admission, "seed {seed} step {step}");
            if admission == Admission::Execute {
                let result = if rng.gen_bool(0.5) {
                    CommandResult::Written
                } else {
                    CommandResult::Count(u64::from(step))
                };
                model.record(request, result.clone());
                table.record(request, result);
            }
            if step % 97 == 0 {
                let bytes = postcard::to_allocvec(&table).expect("serialize");
                let expected = postcard::to_allocvec(&model).expect("serialize");
                assert_eq!(bytes, expected, "seed {seed} step {step}");
                let mut restored: SessionTable = postcard::from_bytes(&bytes).expect("decode");
                restored.set_limits(limits);
                assert_eq!(restored, table, "seed {seed} step {step}");
                table = restored;
            }
        }
    }
}

/// `KeySessions`: exactly-once per key.
mod key_sessions {
    use super::*;
    use rand::{Rng, SeedableRng};

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

    const FIRST: bool = false;
    const RESEND: bool = true;

    #[test]
    fn a_repeated_write_gets_the_first_result_and_reads_run_again() {
        let mut table = KeySessions::new();
        assert_eq!(table.admit(id(1, 3), &put("k"), FIRST), Admission::Execute);
        table.record(id(1, 3), &put("k"), CommandResult::Written);
        for resend in [FIRST, RESEND] {
            assert_eq!(
                table.admit(id(1, 3), &put("k"), resend),
                Admission::Duplicate(CommandResult::Written)
            );
        }
        let get = Command::Get { key: "k".into() };
        table.record(id(1, 4), &get, CommandResult::Value(None));
        assert_eq!(table.admit(id(1, 4), &get, RESEND), Admission::Execute);
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
        assert_eq!(table.admit(id(1, 7), &put("k7"), FIRST), Admission::Execute);
    }

    /// A key remembers its last `window` writes: a resend of one of them gets its
    /// result, a resend of an older one `SessionExpired`; a first send always runs.
    #[test]
    fn each_key_remembers_a_bounded_window() {
        let mut table = KeySessions::with_window(4);
        for seq in 0..9 {
            table.record(id(seq, 0), &put("hot"), CommandResult::Written);
        }
        assert_eq!(table.writes[&b"hot".to_vec()].len(), 4);
        assert_eq!(
            table.admit(id(4, 0), &put("hot"), RESEND),
            Admission::Expired
        );
        assert_eq!(
            table.admit(id(5, 0), &put("hot"), RESEND),
            Admission::Duplicate(CommandResult::Written)
        );
        assert_eq!(
            table.admit(id(9, 0), &put("hot"), FIRST),
            Admission::Execute
        );
        assert_eq!(KeySessions::new().window(), KEY_SESSION_WINDOW);
    }

    /// A resend the key never saw may still have its original ordered later (it was
    /// sent before, and may be in flight): it is not run.
    #[test]
    fn a_resend_the_key_never_saw_is_not_run() {
        let table = KeySessions::new();
        assert_eq!(table.admit(id(1, 0), &put("k"), RESEND), Admission::Expired);
        assert_eq!(table.admit(id(1, 0), &put("k"), FIRST), Admission::Execute);
    }

    /// A key written once by a put holds only the request id (a unique-key load writes
    /// every key once); other results are kept whole.
    #[test]
    fn a_key_written_once_by_a_put_holds_only_its_request() {
        let mut table = KeySessions::new();
        table.record(id(1, 0), &put("once"), CommandResult::Written);
        assert!(matches!(
            table.writes[&b"once".to_vec()],
            Window::Written(_)
        ));
        let cas = Command::Cas {
            key: "cas".into(),
            expected: None,
            new: b"v".to_vec(),
        };
        let result = CommandResult::Cas {
            applied: true,
            previous: None,
        };
        table.record(id(2, 0), &cas, result.clone());
        assert_eq!(
            table.admit(id(2, 0), &cas, RESEND),
            Admission::Duplicate(result)
        );
        table.record(id(3, 0), &put("once"), CommandResult::Written);
        assert!(matches!(&table.writes[&b"once".to_vec()], Window::Writes(w) if w.len() == 2));
        assert_eq!(
            table.admit(id(1, 0), &put("once"), RESEND),
            Admission::Duplicate(CommandResult::Written)
        );
    }

    /// A window of puts and deletes keeps ids alone, and turns to whole results (and
    /// back) as a result that is not `Written` comes and goes; it stays canonical, so
    /// tables with the same writes compare equal however they got there.
    #[test]
    fn a_window_keeps_ids_alone_while_every_result_is_written() {
        let cas = CommandResult::Cas {
            applied: false,
            previous: None,
        };
        let mut window = Window::first(id(1, 0), CommandResult::Written);
        window.push((id(2, 0), CommandResult::Written), 3);
        assert!(matches!(&window, Window::Writes(ids) if ids.len() == 2));
        window.push((id(3, 0), cas.clone()), 3);
        assert!(matches!(&window, Window::Many(w) if w.len() == 3));
        assert_eq!(window.result_of(id(3, 0)), Some(cas));
        assert_eq!(window.result_of(id(1, 0)), Some(CommandResult::Written));
        for seq in 4..7 {
            window.push((id(seq, 0), CommandResult::Written), 3);
        }
        let back: Window = Window::canonical(
            (4..7)
                .map(|seq| (id(seq, 0), CommandResult::Written))
                .collect(),
        );
        assert_eq!(window, back);
        assert!(matches!(&window, Window::Writes(ids) if ids.len() == 3));
        assert_eq!(window.result_of(id(3, 0)), None);
        let mut one = Window::first(id(8, 0), CommandResult::Written);
        one.push((id(9, 0), CommandResult::Written), 1);
        assert_eq!(one, Window::Written(id(9, 0)));
    }

    /// The encoding is the one of the enum before ids were kept alone (`Written(id)` or
    /// `Many([(id, result)])`), so snapshots keep their bytes, and decodes canonical.
    #[test]
    fn a_window_encodes_as_before() {
        #[derive(Serialize)]
        #[serde(rename = "Window")]
        enum Before {
            Written(RequestId),
            Many(Box<[(RequestId, CommandResult)]>),
        }
        let cas = CommandResult::Cas {
            applied: true,
            previous: Some(b"v".to_vec()),
        };
        let cases = [
            (Window::Written(id(1, 2)), Before::Written(id(1, 2))),
            (
                Window::Writes(Box::new([id(1, 2), id(3, 4)])),
                Before::Many(Box::new([
                    (id(1, 2), CommandResult::Written),
                    (id(3, 4), CommandResult::Written),
                ])),
            ),
            (
                Window::Many(Box::new([
                    (id(5, 6), cas.clone()),
                    (id(7, 8), CommandResult::Written),
                ])),
                Before::Many(Box::new([
                    (id(5, 6), cas),
                    (id(7, 8), CommandResult::Written),
                ])),
            ),
        ];
        for (window, before) in cases {
            let bytes = crate::transfer::encode(&window);
            assert_eq!(bytes, crate::transfer::encode(&before));
            let decoded: Window = crate::transfer::decode(&bytes).expect("decodes");
            assert_eq!(decoded, window);
        }
        // A one-write `Many` of old (a window of 1) decodes canonical.
        let old = crate::transfer::encode(&Before::Many(Box::new([(
            id(9, 9),
            CommandResult::Written,
        )])));
        let decoded: Window = crate::transfer::decode(&old).expect("decodes");
        assert_eq!(decoded, Window::Written(id(9, 9)));
    }

    /// Snapshots: a table decodes to the same table (its window comes from the
    /// configuration, not the snapshot).
    #[test]
    fn a_table_survives_encoding() {
        let mut table = KeySessions::with_window(3);
        for seq in 0..5 {
            table.record(id(seq, 0), &put("hot"), CommandResult::Written);
        }
        table.record(id(9, 0), &put("once"), CommandResult::Written);
        let bytes = crate::transfer::encode(&table);
        let mut decoded: KeySessions = crate::transfer::decode(&bytes).expect("decodes");
        decoded.set_window(3);
        assert_eq!(decoded, table);
    }

    /// The rule over random histories of one key: every request sent once as a first
    /// send and resent any number of times, in any order (the key's execution order,
    /// the same on every replica): no request runs twice, a first send is never refused,
    /// and a resend runs never.
    #[test]
    fn no_request_runs_twice_and_no_first_send_is_refused() {
        for seed in 0..200u64 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
            let mut table = KeySessions::with_window(rng.gen_range(1..6));
            let requests = rng.gen_range(1..40u64);
            let mut sends: Vec<(u64, bool)> = (0..requests).map(|r| (r, FIRST)).collect();
            for _ in 0..rng.gen_range(0..60) {
                sends.push((rng.gen_range(0..requests), RESEND));
            }
            for i in (1..sends.len()).rev() {
                sends.swap(i, rng.gen_range(0..=i));
            }
            let mut ran = vec![0u32; requests as usize];
            for (request, resend) in sends {
                match table.admit(id(request, 1), &put("k"), resend) {
                    Admission::Execute => {
                        assert!(!resend, "seed {seed}: a resend ran");
                        ran[request as usize] += 1;
                        table.record(id(request, 1), &put("k"), CommandResult::Written);
                    }
                    Admission::Duplicate(_) => assert!(ran[request as usize] > 0),
                    Admission::Expired => assert!(resend, "seed {seed}: a first send refused"),
                }
            }
            assert!(ran.iter().all(|&n| n == 1), "seed {seed}: {ran:?}");
        }
    }
}
