//! Executor tests. Reference: Moraru et al., SOSP'13 — §4.4 (execution algorithm).

use super::execution::Executor;
use super::test_support::{attrs, batch, id};
use super::{Batch, InstanceId, Payload};
use crate::command::Command;
use crate::id::{ClientId, NodeId, RequestId};
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

/// Instance `i` of a hot key written by five leaders in turn: it depends on the four
/// instances before it and on its leader's previous one (every command interferes).
fn hot_key_instance(i: u64) -> (InstanceId, super::Attributes) {
    let deps: Vec<InstanceId> = (i.saturating_sub(5)..i)
        .map(|d| id((d % 5) as u16, d / 5))
        .collect();
    (id((i % 5) as u16, i / 5), attrs(i + 1, &deps))
}

/// Everything on a hot key waits for its first command, committed last, and a second
/// missing one committed before it leaves the instances a pass found waiting for it
/// waiting for the first: they run, in order, only once both are committed.
#[test]
fn a_hot_key_runs_in_order_once_its_missing_commands_commit() {
    let mut executor = Executor::new(true, KEY_SESSION_WINDOW);
    let n = 300;
    let (first, second) = (0, 150);
    let commit = |executor: &mut Executor, i: u64| {
        let (instance, attributes) = hot_key_instance(i);
        executor.commit(Time::ZERO, instance, batch(i, "hot"), attributes)
    };
    for i in (1..n).filter(|&i| i != second) {
        assert!(commit(&mut executor, i).is_empty(), "{i} ran before 0");
    }
    assert_eq!(
        executor.stalled(Time::ZERO),
        vec![hot_key_instance(first).0, hot_key_instance(second).0]
    );
    assert!(commit(&mut executor, second).is_empty());
    assert_eq!(
        executor.stalled(Time::ZERO),
        vec![hot_key_instance(first).0]
    );
    assert_eq!(commit(&mut executor, first).len(), n as usize);
    let expected: Vec<InstanceId> = (0..n).map(|i| hot_key_instance(i).0).collect();
    assert_eq!(order(&executor), expected);
    assert!(!executor.has_blocked());
    // A pass per commit stops at the instances an earlier pass found waiting, then the
    // last commit walks everything once: not a walk of the whole backlog per commit
    // (n * n / 2 visits before passes remembered what held an instance back).
    assert!(
        executor.instances_visited() <= 3 * n,
        "{} visits for {n} commits",
        executor.instances_visited()
    );
}

/// A pass that found `v` waiting for `x` remembers it; `x` then commits while waiting for
/// `y`, so the next pass through `v` looks again and finds `y`; `y`'s commit runs all.
#[test]
fn an_instance_found_waiting_looks_again_once_what_it_waited_for_commits() {
    let mut executor = Executor::new(true, KEY_SESSION_WINDOW);
    let (y, x, v, u, w) = (id(3, 0), id(2, 0), id(0, 0), id(4, 0), id(1, 0));
    assert!(executor
        .commit(Time::ZERO, v, batch(1, "k"), attrs(3, &[x]))
        .is_empty());
    // u's dependencies are known: its pass walks to v and finds x missing.
    assert!(executor
        .commit(Time::ZERO, u, batch(2, "k"), attrs(4, &[v]))
        .is_empty());
    assert!(executor
        .commit(Time::ZERO, x, batch(3, "k"), attrs(2, &[y]))
        .is_empty());
    assert!(executor
        .commit(Time::ZERO, w, batch(4, "k"), attrs(4, &[v]))
        .is_empty());
    assert_eq!(executor.stalled(Time::ZERO), vec![y]);
    assert_eq!(
        executor
            .commit(Time::ZERO, y, batch(5, "k"), attrs(1, &[]))
            .len(),
        5
    );
    let ran = order(&executor);
    assert_eq!(ran[..3], [y, x, v]);
    let mut last: Vec<InstanceId> = ran[3..].to_vec();
    last.sort();
    assert_eq!(last, vec![w, u]);
}

/// A commit of the next epoch waits for its switch; passes that reach it meanwhile find it
/// missing. Once the switch runs it, what they found waiting for it runs too (it was left
/// listed as missing, and a pass would have stopped at what waited for it for good).
#[test]
fn what_waited_for_a_commit_of_the_next_epoch_runs_once_its_switch_does() {
    use crate::configuration::{Change, Configuration, ProposedChange};
    use crate::protocol::Membership;
    let mut executor = Executor::new(true, KEY_SESSION_WINDOW);
    executor.start_from(vec![Configuration::initial(&Membership::local(3))]);
    let (switch, next, v, u) = (id(0, 0), id(1, 0), id(2, 0), id(2, 1));
    let mut of_epoch_one = attrs(2, &[]);
    of_epoch_one.epoch = 1;
    assert!(executor
        .commit(Time::ZERO, next, batch(1, "k"), of_epoch_one)
        .is_empty());
    assert!(executor
        .commit(Time::ZERO, v, batch(2, "k"), attrs(3, &[next]))
        .is_empty());
    assert!(executor
        .commit(Time::ZERO, u, batch(3, "k"), attrs(4, &[v]))
        .is_empty());
    assert_eq!(executor.stalled(Time::ZERO), vec![next]);
    let change = ProposedChange {
        from_epoch: 0,
        change: Change::Remove(NodeId(2)),
    };
    let request = RequestId {
        client: ClientId(u64::MAX),
        seq: 1,
    };
    let ran = executor.commit(
        Time::ZERO,
        switch,
        Batch::single(Payload::switch(request, change)),
        attrs(1, &[]),
    );
    assert_eq!(ran.len(), 4);
    assert_eq!(order(&executor), vec![switch, next, v, u]);
    assert!(!executor.has_blocked(), "nothing left missing");
}
