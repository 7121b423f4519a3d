//! Executor tests. Reference: Moraru et al., SOSP'13 — §4.4 (execution algorithm).

use super::execution::Executor;
use super::test_support::{attrs, batch, id};
use super::{Batch, InstanceId, Payload};
use crate::command::Command;
use crate::id::{ClientId, RequestId};
use crate::session::KEY_SESSION_WINDOW;
use crate::time::Time;

fn order(executor: &Executor) -> Vec<InstanceId> {
    executor.order().iter().map(|e| e.instance).collect()
}

/// §4.4: a cycle runs as one component, ordered by sequence number.
#[test]
fn a_dependency_cycle_executes_by_sequence_number() {
    let mut executor = Executor::new(true, KEY_SESSION_WINDOW);
    let (a, b) = (id(0, 0), id(1, 0));
    assert!(
        executor
            .commit(Time::ZERO, a, batch(1, "k"), attrs(2, &[b]))
            .is_empty(),
        "b not committed yet"
    );
    let done = executor.commit(Time::ZERO, b, batch(2, "k"), attrs(1, &[a]));
    assert_eq!(done.len(), 2);
    assert_eq!(
        order(&executor),
        vec![b, a],
        "lower seq first inside the component"
    );
}

/// A commit that arrives before its dependency waits; unrelated instances do not.
#[test]
fn an_uncommitted_dependency_blocks_only_its_dependents() {
    let mut executor = Executor::new(true, KEY_SESSION_WINDOW);
    let (missing, blocked, independent) = (id(2, 0), id(0, 0), id(1, 0));
    executor.commit(Time::ZERO, blocked, batch(1, "k"), attrs(2, &[missing]));
    executor.commit(Time::ZERO, independent, batch(2, "other"), attrs(1, &[]));
    assert_eq!(order(&executor), vec![independent]);
    assert_eq!(executor.stalled(Time::ZERO), vec![missing]);
    executor.commit(Time::ZERO, missing, batch(3, "k"), attrs(1, &[]));
    assert_eq!(order(&executor), vec![independent, missing, blocked]);
    assert!(!executor.has_blocked());
}

/// Dependencies always run first, through long chains (iterative Tarjan, no recursion).
#[test]
fn a_long_chain_committed_in_reverse_executes_in_dependency_order() {
    let mut executor = Executor::new(true, KEY_SESSION_WINDOW);
    let n = 5_000;
    for slot in (0..n).rev() {
        let deps: Vec<InstanceId> = if slot == 0 {
            vec![]
        } else {
            vec![id(0, slot - 1)]
        };
        executor.commit(
            Time::ZERO,
            id(0, slot),
            batch(slot, "k"),
            attrs(slot + 1, &deps),
        );
    }
    let expected: Vec<InstanceId> = (0..n).map(|s| id(0, s)).collect();
    assert_eq!(order(&executor), expected);
}

/// A replica catching up runs a client's newer requests (on other keys) before its older
/// ones; the older ones must still run (a per-client dedup window skipped them).
#[test]
fn old_requests_committed_after_thousands_of_newer_ones_still_execute() {
    let mut executor = Executor::new(false, KEY_SESSION_WINDOW);
    let request = |seq: u64| Payload {
        request: RequestId {
            client: ClientId(9),
            seq,
        },
        resend: false,
        command: Command::Put {
            key: format!("k{seq}").into_bytes(),
            value: b"v".to_vec(),
        },
        change: None,
    };
    for seq in (0..3_000).rev() {
        executor.commit(
            Time::ZERO,
            id(0, seq),
            Batch::single(request(seq)),
            attrs(1, &[]),
        );
    }
    assert_eq!(executor.kv().len(), 3_000, "every write applied");
}

/// A snapshot shares the executor's map and session table until the next write, which
/// copies them: the snapshot keeps what it was taken with, and encodes as the plain
/// map and table did.
#[test]
fn a_snapshot_keeps_its_state_while_execution_goes_on() {
    let mut executor = Executor::new(false, KEY_SESSION_WINDOW);
    executor.commit(Time::ZERO, id(0, 0), batch(1, "k"), attrs(1, &[]));
    let taken = executor.executed_state();
    let bytes = crate::transfer::encode(&taken);
    executor.commit(
        Time::ZERO,
        id(0, 1),
        batch(2, "other"),
        attrs(2, &[id(0, 0)]),
    );
    assert_eq!(taken.kv.len(), 1);
    assert_eq!(executor.kv().len(), 2);
    assert_eq!(crate::transfer::encode(&taken), bytes);
    let plain = (&taken.prefix, &taken.above, &*taken.kv, &*taken.sessions);
    let shared = (&taken.prefix, &taken.above, &taken.kv, &taken.sessions);
    assert_eq!(
        crate::transfer::encode(&plain),
        crate::transfer::encode(&shared)
    );
}
