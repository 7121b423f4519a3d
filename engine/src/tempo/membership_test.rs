//! Membership switches (docs/design.md#tempo-epochs-the-rule-and-why-it-is-safe): a switch
//! ends its epoch's range of timestamps on every key; a command whose timestamp falls
//! outside its epoch's range runs nowhere and its coordinator proposes it again.

use super::dots::epoch_base;
use super::test_support::{assert_same_order, config, Pump, STEPS};
use super::{Message, Protocol, Stage, Tempo, TempoConfig};
use crate::configuration::{Change, ChangeFailure, Configuration};
use crate::id::{ClientId, NodeId, RequestId};
use crate::protocol::{Member, Membership};
use crate::request::{ClientRequest, RequestError};
use crate::test_host::{self, put_request, Order};
use std::collections::BTreeSet;
use std::time::Duration;

/// `n` replicas of which those in `initial` form epoch 0 (all of them if `None`).
fn pump(n: u16, initial: Option<Vec<u16>>, seed: u64) -> Pump {
    pump_knowing(n, initial, seed, move |_, _| n)
}

/// As [`pump`], but replica `id` in incarnation `i` starts knowing only the first
/// `known(id, i)` replicas (it learns the others from the configurations it runs).
fn pump_knowing(
    n: u16,
    initial: Option<Vec<u16>>,
    seed: u64,
    known: impl Fn(NodeId, u64) -> u16 + 'static,
) -> Pump {
    let mut tempo = config(1);
    if let Some(initial) = initial {
        tempo = tempo.with_initial_members(initial.into_iter().map(NodeId).collect());
    }
    let build: test_host::Build<Tempo> = Box::new(move |id, incarnation, records| {
        let node_seed = seed ^ (u64::from(id.0) << 32) ^ (incarnation << 48);
        let members = Membership::local(known(id, incarnation));
        Tempo::new(id, &members, tempo.clone(), node_seed, records)
    });
    Pump::new(n, seed, Order::Shuffled, build)
}

/// Four replicas; the cores of the first three (the first configuration) know only each
/// other, replica 3 knows all four.
fn late_joiner_pump(seed: u64) -> Pump {
    let known = |id: NodeId, _| if id == NodeId(3) { 4 } else { 3 };
    pump_knowing(4, Some(vec![0, 1, 2]), seed, known)
}

/// Whether `puts` sent request `id` (one of `first..`, through `[0, 1, 2]`) to `node`.
fn id_sent_to(id: RequestId, node: u64) -> bool {
    id.seq <= 60 && id.seq % 3 == node
}

fn learner(id: u16) -> Change {
    Change::AddLearner(Member {
        id: NodeId(id),
        region: "local".into(),
    })
}

fn operator(seq: u64) -> RequestId {
    RequestId {
        client: ClientId(u64::MAX),
        seq,
    }
}

/// Propose `change` at `at` (operator request `seq`).
fn propose(pump: &mut Pump, at: u16, seq: u64, change: Change) {
    pump.with_core(NodeId(at), |core, now| {
        core.propose_change(now, operator(seq), change)
    });
}

/// Run until `at` reports how its change ended.
fn outcome(pump: &mut Pump, at: u16) -> Result<Configuration, ChangeFailure> {
    let node = NodeId(at);
    let ended = pump.run_until(STEPS, |p| !p.up(node).replica.change_outcomes.is_empty());
    assert!(ended, "seed {}: the change at {at} never ended", pump.seed);
    let ended = pump.with_core(node, |core, _| core.poll_change_outcome());
    ended.flatten().expect("an outcome").result
}

/// Promote `learner` at `at` (operator requests from `seq`), again while it is refused
/// because the learner has not caught up.
fn promote(pump: &mut Pump, at: u16, seq: u64, learner: u16) -> Configuration {
    for attempt in 0..200 {
        propose(
            pump,
            at,
            seq + 1_000 * attempt,
            Change::Promote(NodeId(learner)),
        );
        match outcome(pump, at) {
            Ok(configuration) => return configuration,
            Err(ChangeFailure::RefusedByLeader(_)) => {
                let until = pump.now + Duration::from_millis(100);
                pump.run_until(STEPS, |p| p.now >= until);
            }
            Err(other) => panic!("seed {}: promote failed: {other}", pump.seed),
        }
    }
    panic!("seed {}: learner {learner} never caught up", pump.seed)
}

/// Puts `first..first + count` through `nodes` in turn, a third on one hot key.
fn puts(pump: &mut Pump, nodes: &[u16], first: u64, count: u64) -> Vec<(RequestId, String)> {
    let nodes: Vec<NodeId> = nodes.iter().copied().map(NodeId).collect();
    pump.puts_through(&nodes, first, count, 3)
}

/// Run until `nodes` all executed the switch to `epoch` (an operator asks the next
/// change of a replica that knows the last one).
fn reach_epoch(pump: &mut Pump, nodes: &[u16], epoch: u64) {
    let reached = |p: &Pump| {
        nodes
            .iter()
            .all(|&n| p.up(NodeId(n)).replica.configuration().epoch() >= epoch)
    };
    assert!(
        pump.run_until(STEPS, reached),
        "seed {}: epoch {epoch}",
        pump.seed
    );
}

/// Every write is answered, and answered as written.
fn all_written(pump: &mut Pump, writes: &[(RequestId, String)]) {
    let ids: Vec<RequestId> = writes.iter().map(|(id, _)| *id).collect();
    all_answered(pump, &ids);
    let failed: Vec<_> = ids
        .iter()
        .filter_map(|id| pump.replies[id].outcome.clone().err().map(|e| (*id, e)))
        .collect();
    assert!(failed.is_empty(), "seed {}: {failed:?}", pump.seed);
}

/// Every request of `ids` is answered.
fn all_answered(pump: &mut Pump, ids: &[RequestId]) {
    if pump.run_until(STEPS, |p| p.answered(ids)) {
        return;
    }
    let cores: Vec<String> = pump
        .live()
        .map(|core| {
            let m = core.metrics();
            format!(
                "{}: epoch {} waiting {} live {} abandoned {} clients {}",
                core.id(),
                core.replica.configuration().epoch(),
                m.get("execution_waiting"),
                m.get("commands_live"),
                m.get("abandoned"),
                core.replica.clients.len(),
            )
        })
        .collect();
    let missing: Vec<_> = ids
        .iter()
        .filter(|id| !pump.replies.contains_key(*id))
        .collect();
    panic!(
        "seed {}: requests not answered {missing:?}; {cores:#?}",
        pump.seed
    );
}

/// Every live replica among `nodes` executed every written key, interfering commands in
/// one order, and holds the same configurations.
fn assert_agreement(pump: &mut Pump, nodes: &[u16], writes: &[(RequestId, String)], epoch: u64) {
    let keys: BTreeSet<&String> = writes.iter().map(|(_, k)| k).collect();
    let done = |p: &Pump| {
        let first = p.up(NodeId(nodes[0])).kv();
        nodes.iter().all(|&n| {
            let core = p.up(NodeId(n));
            core.replica.configuration().epoch() == epoch
                && keys.iter().all(|k| core.kv().read(k.as_bytes()).is_some())
                && core.kv() == first
        })
    };
    assert!(
        pump.run_until(STEPS, done),
        "seed {}: not every replica executed every key in epoch {epoch}",
        pump.seed
    );
    assert_same_order(pump);
    let epochs: Vec<_> = nodes
        .iter()
        .map(|&n| pump.up(NodeId(n)).replica.executor.epochs().clone())
        .collect();
    assert!(
        epochs.windows(2).all(|w| w[0] == w[1]),
        "seed {}: configurations differ",
        pump.seed
    );
}

/// Two voters removed one after the other from five while writes run at the three that
/// stay: every write is answered, the three execute every write in one order and hold the
/// same ranges. Over the seeds some commands land outside their epoch's range and are
/// proposed again.
#[test]
fn removing_voters_under_load_loses_no_write_and_keeps_one_order() {
    let mut abandoned = 0;
    for seed in 0..20 {
        let mut pump = pump(5, None, seed);
        let mut writes = puts(&mut pump, &[0, 1, 2], 1, 30);
        propose(&mut pump, 0, 1, Change::Remove(NodeId(4)));
        writes.extend(puts(&mut pump, &[0, 1, 2], 31, 30));
        let first = outcome(&mut pump, 0).expect("voter 4 removed");
        assert_eq!(first.voter_count(), 4);
        writes.extend(puts(&mut pump, &[0, 1, 2], 61, 30));
        reach_epoch(&mut pump, &[1], 1);
        propose(&mut pump, 1, 2, Change::Remove(NodeId(3)));
        writes.extend(puts(&mut pump, &[0, 1, 2], 91, 30));
        let second = outcome(&mut pump, 1).expect("voter 3 removed");
        assert_eq!(second.voters().collect::<Vec<_>>(), [0, 1, 2].map(NodeId));
        writes.extend(puts(&mut pump, &[0, 1, 2], 121, 30));
        all_written(&mut pump, &writes);
        assert_agreement(&mut pump, &[0, 1, 2], &writes, 2);
        abandoned += pump
            .live()
            .map(|c| c.metrics().get("abandoned"))
            .sum::<u64>();
    }
    assert!(
        abandoned > 0,
        "no command ever fell outside its epoch's range"
    );
}

/// Replace as the design says: spare 3 joins as a learner (fetching the members' state),
/// is promoted while writes run, and voter 0 is removed while writes run. Every write is
/// answered; the three voters left, the new one included, execute every write in one
/// order and hold the same ranges.
#[test]
fn a_replace_adds_promotes_and_removes_under_load() {
    for seed in 0..20 {
        let mut pump = pump(4, Some(vec![0, 1, 2]), seed);
        let mut writes = puts(&mut pump, &[0, 1, 2], 1, 30);
        propose(&mut pump, 0, 1, learner(3));
        let added = outcome(&mut pump, 0).expect("learner added");
        assert_eq!(added.epoch(), 1);
        reach_epoch(&mut pump, &[0, 1, 2, 3], 1);
        writes.extend(puts(&mut pump, &[0, 1, 2], 31, 30));
        reach_epoch(&mut pump, &[1], 1);
        let promoted = promote(&mut pump, 1, 2, 3);
        assert_eq!(promoted.voter_count(), 4);
        reach_epoch(&mut pump, &[0, 1, 2, 3], 2);
        writes.extend(puts(&mut pump, &[1, 2, 3], 61, 30));
        reach_epoch(&mut pump, &[2], 2);
        propose(&mut pump, 2, 3, Change::Remove(NodeId(0)));
        writes.extend(puts(&mut pump, &[1, 2, 3], 91, 30));
        let removed = outcome(&mut pump, 2).expect("voter 0 removed");
        assert_eq!(removed.voters().collect::<Vec<_>>(), [1, 2, 3].map(NodeId));
        writes.extend(puts(&mut pump, &[1, 2, 3], 121, 30));
        // A write voter 0 took and had to propose again after it was removed is refused
        // ("send the request to a voter"); it ran nowhere, so the client sends it to a
        // voter under a new id.
        let ids: Vec<RequestId> = writes.iter().map(|(id, _)| *id).collect();
        all_answered(&mut pump, &ids);
        // One voter 0 still drove when it executed its removal is answered with an
        // unknown outcome (it hears no more promises, so it cannot run it): the client
        // sends it again the same way.
        let refused: Vec<String> = writes
            .iter()
            .filter(|(id, _)| match &pump.replies[id].outcome {
                Err(RequestError::Rejected(why)) => why.contains("not a voter"),
                Err(RequestError::Timeout) => id_sent_to(*id, 0),
                _ => false,
            })
            .map(|(_, key)| key.clone())
            .collect();
        writes.retain(|(id, _)| pump.replies[id].outcome.is_ok());
        for (n, key) in refused.iter().enumerate() {
            let request = put_request(1_000 + n as u64, key);
            writes.push((request.id, key.clone()));
            pump.request(NodeId(1), request);
        }
        all_written(&mut pump, &writes);
        assert_agreement(&mut pump, &[1, 2, 3], &writes, 3);
        let joined = pump.up(NodeId(3)).metrics();
        assert_eq!(joined.get("rejoining"), 0);
        assert_eq!(joined.get("state_transfers_completed"), 1);
    }
}

/// A removed replica fences itself as after a lost disk: added again while writes ran
/// without it, it fetches the members' state, is promoted, and holds every write.
#[test]
fn a_removed_replica_added_again_fetches_the_members_state() {
    for seed in 0..10 {
        let mut pump = pump(5, None, seed);
        let mut writes = puts(&mut pump, &[0, 1, 2], 1, 20);
        propose(&mut pump, 0, 1, Change::Remove(NodeId(4)));
        outcome(&mut pump, 0).expect("voter 4 removed");
        reach_epoch(&mut pump, &[0, 1, 2, 3, 4], 1);
        let fenced = |p: &Pump| p.up(NodeId(4)).metrics().get("rejoining") == 1;
        assert!(
            pump.run_until(STEPS, fenced),
            "seed {seed}: 4 never retired"
        );
        writes.extend(puts(&mut pump, &[0, 1, 2], 21, 40));
        all_written(&mut pump, &writes);
        propose(&mut pump, 0, 2, learner(4));
        outcome(&mut pump, 0).expect("4 added as a learner");
        let rejoined = |p: &Pump| p.up(NodeId(4)).metrics().get("rejoining") == 0;
        assert!(
            pump.run_until(STEPS, rejoined),
            "seed {seed}: 4 never fetched state"
        );
        reach_epoch(&mut pump, &[0], 2);
        promote(&mut pump, 0, 3, 4);
        reach_epoch(&mut pump, &[4], 3);
        writes.extend(puts(&mut pump, &[0, 4], 61, 20));
        all_written(&mut pump, &writes);
        assert_agreement(&mut pump, &[0, 1, 2, 3, 4], &writes, 3);
    }
}

/// Two switches from one epoch: one applies, the other is answered `NotApplied`, and
/// every replica holds the same ranges.
#[test]
fn of_two_switches_from_one_epoch_one_applies() {
    for seed in 0..10 {
        let mut pump = pump(5, None, seed);
        let writes = puts(&mut pump, &[0, 1, 2], 1, 20);
        propose(&mut pump, 0, 1, Change::Remove(NodeId(4)));
        propose(&mut pump, 1, 2, Change::Remove(NodeId(3)));
        let outcomes = [outcome(&mut pump, 0), outcome(&mut pump, 1)];
        let applied = outcomes.iter().filter(|o| o.is_ok()).count();
        assert_eq!(applied, 1, "seed {seed}: {outcomes:?}");
        assert!(
            outcomes
                .iter()
                .any(|o| matches!(o, Err(ChangeFailure::NotApplied(_)))),
            "seed {seed}: {outcomes:?}"
        );
        all_written(&mut pump, &writes);
        assert_agreement(&mut pump, &[0, 1, 2], &writes, 1);
    }
}

/// What is refused before anything is ordered: too few voters left for `f`, a change
/// that does not apply, a change asked of a replica that does not vote; and client
/// commands on the switch lane or sent to a replica that does not vote.
#[test]
fn refusals_are_immediate_and_say_why() {
    let mut pump = pump(4, Some(vec![0, 1, 2]), 1);
    propose(&mut pump, 0, 1, Change::Remove(NodeId(2)));
    let refused = outcome(&mut pump, 0).unwrap_err();
    assert!(
        matches!(&refused, ChangeFailure::Refused(why) if why.contains("at least 3 voters")),
        "{refused:?}"
    );
    propose(&mut pump, 0, 2, Change::Promote(NodeId(1)));
    assert!(matches!(
        outcome(&mut pump, 0),
        Err(ChangeFailure::Refused(_))
    ));
    propose(&mut pump, 3, 3, Change::Remove(NodeId(0)));
    let refused = outcome(&mut pump, 3).unwrap_err();
    assert!(refused.to_string().contains("not a voter"), "{refused}");
    let lane = put_request(1, "");
    pump.request(NodeId(0), lane.clone());
    let spare = put_request(2, "k");
    pump.request(NodeId(3), spare.clone());
    pump.run_until(STEPS, |p| p.answered(&[lane.id, spare.id]));
    let invalid = pump.replies[&lane.id].outcome.clone().unwrap_err();
    assert!(
        matches!(&invalid, RequestError::Invalid(why) if why.contains("empty key")),
        "{invalid:?}"
    );
    let rejected = pump.replies[&spare.id].outcome.clone().unwrap_err();
    assert!(rejected.to_string().contains("not a voter"), "{rejected}");
}

/// A Tempo keyspace reports its configuration to the host.
#[test]
fn a_tempo_core_reports_its_configuration() {
    let members = Membership::local(3);
    let core = Tempo::new(NodeId(0), &members, TempoConfig::default(), 0, Vec::new());
    let configuration = core.configuration().expect("a configuration");
    assert_eq!(configuration.epoch(), 0);
    assert_eq!(configuration.voter_count(), 3);
}

/// Found by t19 seed 5105: a report from a peer that had not executed the removal yet
/// made a removed replica fetch state as if added again, from the members of the old
/// configuration, one of which was removed later and never answered. Only a report from
/// a newer configuration than its own means it was added again.
#[test]
fn a_removed_replica_is_added_again_only_by_a_report_from_a_newer_configuration() {
    let mut pump = pump(5, None, 3);
    let writes = puts(&mut pump, &[0, 1, 2], 1, 10);
    all_written(&mut pump, &writes);
    propose(&mut pump, 0, 1, Change::Remove(NodeId(4)));
    outcome(&mut pump, 0).expect("voter 4 removed");
    reach_epoch(&mut pump, &[4], 1);
    let mut removed = pump.nodes[4].take().expect("up");
    let report = |config_epoch| Message::Executed {
        prefix: Vec::new(),
        epoch: 0,
        config_epoch,
    };
    let now = pump.now;
    removed.handle_message(now, NodeId(1), report(0));
    removed.handle_message(now, NodeId(1), report(1));
    assert_eq!(removed.metrics().get("readded_here"), 0);
    assert_eq!(removed.fence().stage, Stage::Voter);
    removed.handle_message(now, NodeId(1), report(2));
    assert_eq!(removed.metrics().get("readded_here"), 1);
    assert_eq!(removed.fence().stage, Stage::QueryingWithRecords);
}

/// Found by t19 seed 16028: a spare that joined (its fence says it rejoined), was removed,
/// and restarted forgot it had been removed; added again, it never learned so (it runs
/// nothing while removed) and never fetched the members' state.
#[test]
fn a_joined_spare_removed_and_restarted_is_added_again_through_a_state_transfer() {
    for seed in 0..4 {
        let mut pump = pump(4, Some(vec![0, 1, 2]), seed);
        let mut writes = puts(&mut pump, &[0, 1, 2], 1, 20);
        propose(&mut pump, 0, 1, learner(3));
        outcome(&mut pump, 0).expect("learner added");
        let joined = |p: &Pump| p.up(NodeId(3)).fence().stage == Stage::Rejoined;
        assert!(pump.run_until(STEPS, joined), "seed {seed}: 3 never joined");
        reach_epoch(&mut pump, &[0, 1, 2, 3], 1);
        propose(&mut pump, 0, 2, Change::Remove(NodeId(3)));
        outcome(&mut pump, 0).expect("learner removed");
        reach_epoch(&mut pump, &[3], 2);
        pump.crash(NodeId(3));
        pump.restart(NodeId(3));
        writes.extend(puts(&mut pump, &[0, 1, 2], 21, 20));
        all_written(&mut pump, &writes);
        propose(&mut pump, 0, 3, learner(3));
        outcome(&mut pump, 0).expect("learner added again");
        let readded = |p: &Pump| p.up(NodeId(3)).metrics().get("readded_here") == 1;
        assert!(
            pump.run_until(STEPS, readded),
            "seed {seed}: 3 never learned it was added again"
        );
        let fetched = |p: &Pump| p.up(NodeId(3)).metrics().get("rejoining") == 0;
        assert!(
            pump.run_until(STEPS, fetched),
            "seed {seed}: 3 never fetched state"
        );
        reach_epoch(&mut pump, &[3], 3);
        assert_agreement(&mut pump, &[0, 1, 2, 3], &writes, 3);
    }
}

/// Found by t19 seed 23101: a replica cut off while it was removed and added again ran
/// both switches in one pass once healed: the second made it a member again after it gave
/// its state up, so no report ever looked newer than its configuration and it never
/// fetched the members' state. Nothing runs after the switch that removes a replica.
#[test]
fn a_replica_removed_and_added_again_while_cut_off_fetches_the_members_state() {
    for seed in 0..4 {
        let mut pump = pump(5, None, seed);
        let mut writes = puts(&mut pump, &[0, 1, 2], 1, 20);
        all_written(&mut pump, &writes);
        pump.isolate(NodeId(4));
        propose(&mut pump, 0, 1, Change::Remove(NodeId(4)));
        outcome(&mut pump, 0).expect("voter 4 removed");
        reach_epoch(&mut pump, &[0], 1);
        propose(&mut pump, 0, 2, learner(4));
        outcome(&mut pump, 0).expect("4 added again as a learner");
        writes.extend(puts(&mut pump, &[0, 1, 2], 21, 20));
        all_written(&mut pump, &writes);
        pump.heal();
        let fetched = |p: &Pump| {
            let metrics = p.up(NodeId(4)).metrics();
            metrics.get("state_transfers_completed") == 1 && metrics.get("rejoining") == 0
        };
        assert!(
            pump.run_until(STEPS, fetched),
            "seed {seed}: 4 never fetched the members' state"
        );
        reach_epoch(&mut pump, &[4], 2);
        assert_eq!(pump.up(NodeId(4)).metrics().get("removed_here"), 1);
        // Its records were intact: it votes on every command again, as before.
        let fence = pump.up(NodeId(4)).fence();
        assert_eq!(fence.stage, Stage::Voter, "seed {seed}");
        assert!(fence.epoch >= 1 && fence.bounds.is_empty(), "seed {seed}");
        assert_agreement(&mut pump, &[0, 1, 2, 3, 4], &writes, 2);
    }
}

/// A replica started after the others (the cores of the first three know only each
/// other): once added as a learner it is heard, fetches the members' state, is promoted
/// and holds every write; the others count it in their quorums.
#[test]
fn a_replica_the_others_were_not_started_with_joins() {
    for seed in 0..4 {
        let mut pump = late_joiner_pump(seed);
        let mut writes = puts(&mut pump, &[0, 1, 2], 1, 30);
        all_written(&mut pump, &writes);
        propose(&mut pump, 0, 1, learner(3));
        outcome(&mut pump, 0).expect("learner added");
        let joined = |p: &Pump| p.up(NodeId(3)).fence().stage == Stage::Rejoined;
        assert!(pump.run_until(STEPS, joined), "seed {seed}: 3 never joined");
        writes.extend(puts(&mut pump, &[0, 1, 2], 31, 30));
        reach_epoch(&mut pump, &[1], 1);
        promote(&mut pump, 1, 2, 3);
        reach_epoch(&mut pump, &[0, 1, 2, 3], 2);
        writes.extend(puts(&mut pump, &[1, 2, 3], 61, 30));
        all_written(&mut pump, &writes);
        assert_agreement(&mut pump, &[0, 1, 2, 3], &writes, 2);
    }
}

/// The first voters leave for good; a key written only before the added replica joined
/// is read through it (and through a first voter that stayed): the closed ranges are
/// stable on it through the floor promises their switches waited for, not through
/// announcements on the key from the voters that left (`floors.rs`).
#[test]
fn a_key_idle_since_a_replica_joined_is_read_through_it_after_the_first_voters_leave() {
    for seed in 0..4 {
        let mut pump = late_joiner_pump(seed);
        let idle = put_request(900, "idle");
        let idle_id = idle.id;
        pump.request(NodeId(0), idle);
        all_answered(&mut pump, &[idle_id]);
        let writes = puts(&mut pump, &[0, 1, 2], 1, 30);
        all_written(&mut pump, &writes);
        propose(&mut pump, 0, 1, learner(3));
        outcome(&mut pump, 0).expect("learner added");
        let joined = |p: &Pump| p.up(NodeId(3)).fence().stage == Stage::Rejoined;
        assert!(pump.run_until(STEPS, joined), "seed {seed}: 3 never joined");
        reach_epoch(&mut pump, &[1], 1);
        promote(&mut pump, 1, 2, 3);
        reach_epoch(&mut pump, &[1], 2);
        propose(&mut pump, 1, 3, Change::Remove(NodeId(0)));
        outcome(&mut pump, 1).expect("0 removed");
        reach_epoch(&mut pump, &[1, 2, 3], 3);
        pump.crash(NodeId(0));
        pump.crash(NodeId(1));
        let read = ClientRequest::new(
            RequestId {
                client: ClientId(99),
                seq: 1,
            },
            crate::command::Command::Get {
                key: b"idle".to_vec(),
            },
        );
        let id = read.id;
        pump.request(NodeId(3), read);
        all_answered(&mut pump, &[id]);
        let outcome = &pump.replies[&id].outcome;
        assert!(outcome.is_ok(), "seed {seed}: {outcome:?}");
    }
}

/// A replica that lost its disk voted per the bounds its rejoin set, and had none for a
/// replica added to the cluster after that: it withheld its vote on every command of the
/// new replica for good, so those commands could lose their recovery quorum with one more
/// replica down. A peer fenced in epoch `E` (a spare joining is one) has no command of
/// that epoch yet: the bound becomes `E`'s first number.
#[test]
fn a_replica_that_lost_its_disk_votes_on_the_commands_of_a_replica_added_later() {
    for seed in 0..2 {
        let mut pump = late_joiner_pump(seed);
        let mut writes = puts(&mut pump, &[0, 1, 2], 1, 30);
        all_written(&mut pump, &writes);
        lose_disk_and_rejoin(&mut pump, 2);
        add_spare(&mut pump, 1, 3);
        reach_epoch(&mut pump, &[1], 1);
        promote(&mut pump, 1, 2, 3);
        reach_epoch(&mut pump, &[0, 1, 2, 3], 2);
        writes.extend(puts(&mut pump, &[3], 61, 30));
        all_written(&mut pump, &writes);
        let rejoined = pump.up(NodeId(2));
        let first = rejoined.fence().bounds.get(&NodeId(3)).copied();
        assert_eq!(first, Some(epoch_base(1) + 1), "seed {seed}");
        assert_eq!(rejoined.metrics().get("votes_withheld"), 0, "seed {seed}");
        assert_agreement(&mut pump, &[0, 1, 2, 3], &writes, 2);
    }
}

/// `node` loses its disk and rejoins (it votes per bounds from then on).
fn lose_disk_and_rejoin(pump: &mut Pump, node: u16) {
    let id = NodeId(node);
    pump.crash(id);
    pump.wipe(id);
    pump.restart_rejoining(id);
    let rejoined = |p: &Pump| p.up(id).fence().stage == Stage::Rejoined;
    assert!(
        pump.run_until(STEPS, rejoined),
        "seed {}: {node} never rejoined",
        pump.seed
    );
}

/// Add `node` as a learner through replica 0 (operator request `seq`) and run until it
/// fetched the members' state.
fn add_spare(pump: &mut Pump, seq: u64, node: u16) {
    propose(pump, 0, seq, learner(node));
    outcome(pump, 0).expect("learner added");
    let joined = |p: &Pump| p.up(NodeId(node)).fence().stage == Stage::Rejoined;
    assert!(
        pump.run_until(STEPS, joined),
        "seed {}: {node} never joined",
        pump.seed
    );
}

/// Five replicas, the first four the first configuration. The cores of the first four
/// know only each other, replica 4 knows all five, and so does replica 3 from its third
/// incarnation on (an operator who adds a replica back starts it knowing the cluster).
fn readded_pump(seed: u64) -> Pump {
    let known = |id: NodeId, incarnation| {
        let knows_all = id == NodeId(4) || (id == NodeId(3) && incarnation >= 2);
        if knows_all {
            5
        } else {
            4
        }
    };
    pump_knowing(5, Some(vec![0, 1, 2, 3]), seed, known)
}

/// A replica that lost its disk votes per the bounds of that rejoin. Removed, it missed a
/// replica joining (it served no fetch of it, so it took no bound for it), and added back
/// with its records it kept its bounds: it withheld its vote on every command of the
/// replica that joined meanwhile, for good. The members' answers to its fetch name each
/// member's last own command, and every command its former self could have voted on came
/// before that: it votes on the joiner's later commands.
#[test]
fn a_fenced_replica_added_back_votes_on_a_replica_that_joined_while_it_was_out() {
    for seed in 0..2 {
        let mut pump = readded_pump(seed);
        let mut writes = puts(&mut pump, &[0, 1, 2, 3], 1, 20);
        all_written(&mut pump, &writes);
        lose_disk_and_rejoin(&mut pump, 3);
        propose(&mut pump, 0, 1, Change::Remove(NodeId(3)));
        outcome(&mut pump, 0).expect("3 removed");
        reach_epoch(&mut pump, &[0, 1, 2, 3], 1);
        pump.crash(NodeId(3));
        pump.restart(NodeId(3));
        add_spare(&mut pump, 2, 4);
        reach_epoch(&mut pump, &[1], 2);
        promote(&mut pump, 1, 3, 4);
        reach_epoch(&mut pump, &[0, 1, 2, 4], 3);
        writes.extend(puts(&mut pump, &[4], 21, 10));
        all_written(&mut pump, &writes);
        propose(&mut pump, 0, 4, learner(3));
        outcome(&mut pump, 0).expect("3 added back");
        let fetched = |p: &Pump| {
            let metrics = p.up(NodeId(3)).metrics();
            metrics.get("readded_here") == 1 && metrics.get("rejoining") == 0
        };
        assert!(
            pump.run_until(STEPS, fetched),
            "seed {seed}: 3 never fetched"
        );
        reach_epoch(&mut pump, &[1], 4);
        promote(&mut pump, 1, 5, 3);
        reach_epoch(&mut pump, &[0, 1, 2, 3, 4], 5);
        assert_eq!(
            pump.up(NodeId(3)).fence().stage,
            Stage::Rejoined,
            "seed {seed}"
        );
        let withheld = pump.up(NodeId(3)).metrics().get("votes_withheld");
        writes.extend(puts(&mut pump, &[4], 31, 20));
        all_written(&mut pump, &writes);
        let replica = pump.up(NodeId(3));
        assert_eq!(
            replica.metrics().get("votes_withheld"),
            withheld,
            "seed {seed}: 3 withheld votes on commands of 4 (bound {:?}; {withheld} before)",
            replica.fence().bounds.get(&NodeId(4))
        );
        assert_agreement(&mut pump, &[0, 1, 2, 3, 4], &writes, 5);
    }
}
