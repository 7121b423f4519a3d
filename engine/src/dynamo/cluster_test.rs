//! Scenario tests on a small deterministic cluster (see `test_support`).
//! Reference: DeCandia et al., "Dynamo" (SOSP 2007): §4.4 versioning, §4.5 R/W, §4.6
//! sloppy quorum and hinted handoff, §4.7 Merkle anti-entropy; Riak kv679 (epochs).

use super::test_support::{new_pump, DynamoPump, Pump};
use super::{Actor, Dot, DynamoConfig, HintLimits, VersionVector};
use crate::command::{Command, Value};
use crate::id::NodeId;
use crate::protocol::{Member, Membership, Protocol};
use crate::request::{ClientReply, Level, ReadRepair, RequestError, Response, VersionedResponse};
use std::time::Duration;

const SECOND: Duration = Duration::from_secs(1);

fn config() -> DynamoConfig {
    DynamoConfig {
        // Anti-entropy off unless a test turns it on, so other repairs are observable.
        anti_entropy_interval: Duration::from_secs(3_600),
        ..DynamoConfig::default()
    }
}

fn pump(n: u16, config: DynamoConfig) -> Pump {
    let mut pump = new_pump(Membership::local(n), config, 42);
    pump.run_for(Duration::from_millis(10));
    pump
}

fn put(key: &str, value: &str) -> Command {
    Command::Put {
        key: key.as_bytes().to_vec(),
        value: value.as_bytes().to_vec(),
    }
}

fn get(key: &str) -> Command {
    Command::Get {
        key: key.as_bytes().to_vec(),
    }
}

fn ok(reply: &ClientReply) -> &VersionedResponse {
    match &reply.outcome {
        Ok(Response::Versioned(v)) => v,
        other => panic!("expected a versioned response, got {other:?}"),
    }
}

fn strings(siblings: &[Option<Value>]) -> Vec<String> {
    let mut out: Vec<String> = siblings
        .iter()
        .map(|v| {
            v.as_ref()
                .map_or("<deleted>".into(), |v| String::from_utf8_lossy(v).into())
        })
        .collect();
    out.sort();
    out
}

fn stored_values(pump: &Pump, node: NodeId, key: &str) -> Vec<String> {
    pump.up(node)
        .stored(key.as_bytes())
        .map(|o| strings(&o.values()))
        .unwrap_or_default()
}

/// The owners of `key` and one node that is not an owner.
fn placement(pump: &Pump, key: &str) -> (Vec<NodeId>, Vec<NodeId>) {
    let owners = pump.up(NodeId(0)).preference_list(key.as_bytes());
    let others = (0..5).map(NodeId).filter(|n| !owners.contains(n)).collect();
    (owners, others)
}

/// §4.6: with sloppy quorum, W=2 succeeds while two of three owners are down, the
/// fallback acknowledging with a durable hint; the receipt says so.
#[test]
fn sloppy_w2_write_succeeds_with_two_of_three_owners_down() {
    let mut pump = pump(5, config());
    let (owners, others) = placement(&pump, "k");
    pump.crash(owners[1]);
    pump.crash(owners[2]);
    pump.run_for(SECOND);
    let id = pump.kv(owners[0], put("k", "v"), Level::Two, Vec::new(), Some(true));
    let reply = pump.run_until_reply(id, 2 * SECOND);
    let response = ok(&reply);
    let receipt = &response.receipt;
    assert!(receipt.met);
    assert_eq!(receipt.requested, "TWO");
    assert_eq!(receipt.answered[0].node, owners[0]);
    assert!(!receipt.answered[0].fallback);
    assert!(receipt.answered[1..]
        .iter()
        .all(|r| r.fallback && others.contains(&r.node)));
    assert!(receipt.hints_written >= 1);
    pump.run_for(SECOND);
    let hints: usize = others.iter().map(|&n| pump.up(n).hint_count()).sum();
    assert_eq!(hints, 2, "one hint per down owner");
}

/// The same write without sloppy quorum fails with a clear Unavailable error and writes
/// nothing; levels are never downgraded.
#[test]
fn strict_w2_write_fails_with_unavailable_when_two_owners_are_down() {
    let mut pump = pump(5, config());
    let (owners, _) = placement(&pump, "k");
    pump.crash(owners[1]);
    pump.crash(owners[2]);
    pump.run_for(SECOND);
    let id = pump.kv(owners[0], put("k", "v"), Level::Two, Vec::new(), None);
    let reply = pump.run_until_reply(id, 2 * SECOND);
    match reply.outcome {
        Err(RequestError::Unavailable {
            replied: 0,
            needed: 2,
            detail,
        }) => {
            assert!(detail.contains("sloppy quorum is off"), "{detail}");
            assert!(detail.contains("nothing was sent"), "{detail}");
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    assert_eq!(pump.up(owners[0]).stored(b"k"), None);
    assert_eq!(pump.up(owners[0]).metrics().get("unavailable"), 1);
}

/// Before the failure detector notices, the write goes out and fails at the deadline
/// with the counts of what was acknowledged.
#[test]
fn an_unmet_level_fails_at_the_deadline_with_counts() {
    let mut pump = pump(5, config());
    let (owners, _) = placement(&pump, "k");
    pump.crash(owners[1]);
    pump.crash(owners[2]);
    let id = pump.kv(owners[0], put("k", "v"), Level::Quorum, Vec::new(), None);
    let reply = pump.run_until_reply(id, 2 * SECOND);
    match reply.outcome {
        Err(RequestError::Unavailable {
            replied: 1,
            needed: 2,
            detail,
        }) => assert!(
            detail.contains(&format!("durable at: {}", owners[0])),
            "{detail}"
        ),
        other => panic!("expected Unavailable 1 of 2, got {other:?}"),
    }
}

/// §4.6: hints reach their owners once they are reachable again, then are deleted.
#[test]
fn hints_reach_the_owner_after_it_returns() {
    let mut pump = pump(5, config());
    let (owners, others) = placement(&pump, "k");
    pump.crash(owners[1]);
    pump.crash(owners[2]);
    pump.run_for(SECOND);
    let id = pump.kv(owners[0], put("k", "v"), Level::Two, Vec::new(), Some(true));
    ok(&pump.run_until_reply(id, 2 * SECOND));
    pump.run_for(SECOND);
    pump.restart(owners[1]);
    pump.restart(owners[2]);
    pump.run_for(3 * SECOND);
    for &owner in &owners {
        assert_eq!(stored_values(&pump, owner, "k"), vec!["v"], "{owner}");
    }
    let hints: usize = others.iter().map(|&n| pump.up(n).hint_count()).sum();
    assert_eq!(hints, 0, "delivered hints are deleted");
    let delivered: u64 = others
        .iter()
        .map(|&n| pump.up(n).metrics().get("hints_delivered"))
        .sum();
    assert_eq!(delivered, 2);
    // The deletion is durable: a restarted fallback does not resend.
    for &n in &others {
        pump.crash(n);
        pump.restart(n);
        assert_eq!(pump.up(n).hint_count(), 0);
    }
}

/// §4.4: writes that did not see each other become siblings; a write carrying the
/// read's context resolves them.
#[test]
fn concurrent_writes_become_siblings_and_the_reads_context_resolves_them() {
    let mut pump = pump(5, config());
    let (owners, others) = placement(&pump, "k");
    let a = pump.kv(owners[0], put("k", "left"), Level::One, Vec::new(), None);
    let b = pump.kv(owners[1], put("k", "right"), Level::One, Vec::new(), None);
    ok(&pump.run_until_reply(a, SECOND));
    ok(&pump.run_until_reply(b, SECOND));
    pump.run_for(SECOND);
    let read = pump.kv(others[0], get("k"), Level::All, Vec::new(), None);
    let response = ok(&pump.run_until_reply(read, SECOND)).clone();
    assert_eq!(strings(&response.siblings), vec!["left", "right"]);
    let write = pump.kv(
        others[1],
        put("k", "merged"),
        Level::Quorum,
        response.context.clone(),
        None,
    );
    ok(&pump.run_until_reply(write, SECOND));
    pump.run_for(SECOND);
    let read = pump.kv(owners[2], get("k"), Level::All, Vec::new(), None);
    let response = ok(&pump.run_until_reply(read, SECOND)).clone();
    assert_eq!(strings(&response.siblings), vec!["merged"]);
    for &owner in &owners {
        assert_eq!(stored_values(&pump, owner, "k"), vec!["merged"]);
    }
}

/// Read repair: a stale owner the read waited on is repaired before the reply.
#[test]
fn read_repair_fixes_a_stale_owner_before_replying() {
    let mut pump = pump(5, config());
    let (owners, _) = placement(&pump, "k");
    pump.isolate(owners[2]);
    let write = pump.kv(owners[0], put("k", "v"), Level::Two, Vec::new(), None);
    ok(&pump.run_until_reply(write, SECOND));
    pump.heal();
    pump.run_for(SECOND);
    assert_eq!(pump.up(owners[2]).stored(b"k"), None);
    let read = pump.kv(owners[0], get("k"), Level::All, Vec::new(), None);
    let response = ok(&pump.run_until_reply(read, SECOND)).clone();
    assert_eq!(strings(&response.siblings), vec!["v"]);
    assert_eq!(response.receipt.read_repair, ReadRepair::Blocking);
    assert_eq!(response.receipt.answered.len(), 3);
    assert_eq!(
        stored_values(&pump, owners[2], "k"),
        vec!["v"],
        "repaired before the reply"
    );
}

/// Read repair: an owner that answers after a ONE read replied is repaired in the
/// background.
#[test]
fn late_stale_answers_are_repaired_in_the_background() {
    let mut pump = pump(5, config());
    let (owners, _) = placement(&pump, "k");
    pump.isolate(owners[2]);
    let write = pump.kv(owners[0], put("k", "v"), Level::Two, Vec::new(), None);
    ok(&pump.run_until_reply(write, SECOND));
    pump.heal();
    pump.run_for(SECOND);
    let read = pump.kv(owners[0], get("k"), Level::One, Vec::new(), None);
    let response = ok(&pump.run_until_reply(read, SECOND)).clone();
    assert_eq!(response.receipt.read_repair, ReadRepair::NotNeeded);
    assert_eq!(
        response.receipt.answered.len(),
        1,
        "the local answer met ONE"
    );
    pump.run_for(SECOND);
    assert_eq!(stored_values(&pump, owners[2], "k"), vec!["v"]);
    assert_eq!(
        pump.up(owners[0]).metrics().get("read_repairs_background"),
        1
    );
}

/// §4.7: Merkle anti-entropy makes divergent owners converge without any read.
#[test]
fn merkle_anti_entropy_converges_divergent_replicas() {
    let config = DynamoConfig {
        anti_entropy_interval: Duration::from_millis(20),
        ..config()
    };
    let mut pump = pump(5, config);
    pump.isolate(NodeId(4));
    let mut ids = Vec::new();
    for i in 0..60u16 {
        let key = format!("key-{i}");
        let at = NodeId(i % 4);
        ids.push(pump.kv(
            at,
            put(&key, &format!("v{i}")),
            Level::One,
            Vec::new(),
            None,
        ));
    }
    for id in ids {
        ok(&pump.run_until_reply(id, SECOND));
    }
    pump.run_for(SECOND);
    let missing = (0..60)
        .filter(|i| {
            let key = format!("key-{i}");
            let owners = pump.up(NodeId(0)).preference_list(key.as_bytes());
            owners.contains(&NodeId(4)) && pump.up(NodeId(4)).stored(key.as_bytes()).is_none()
        })
        .count();
    assert!(
        missing > 10,
        "node 4 missed its share of writes ({missing})"
    );
    pump.heal();
    pump.run_for(20 * SECOND);
    for i in 0..60u16 {
        let key = format!("key-{i}");
        let owners = pump.up(NodeId(0)).preference_list(key.as_bytes());
        let first = pump.up(owners[0]).stored(key.as_bytes()).cloned();
        assert!(first.is_some(), "{key}");
        for &owner in &owners[1..] {
            assert_eq!(
                pump.up(owner).stored(key.as_bytes()).cloned(),
                first,
                "{key} at {owner}"
            );
        }
    }
    let repaired: u64 = (0..5)
        .map(|n| {
            pump.up(NodeId(n))
                .metrics()
                .get("anti_entropy_keys_repaired")
        })
        .sum();
    assert!(
        repaired as usize >= missing,
        "{repaired} keys repaired, {missing} were missing"
    );
}

/// SESSION: a read returns a version at least as new as the client's context, waiting
/// for the one owner that has it; ONE may return the stale local copy.
#[test]
fn session_reads_see_the_clients_own_write() {
    let mut pump = pump(5, config());
    let (owners, _) = placement(&pump, "k");
    pump.block(owners[0], owners[1]);
    pump.block(owners[0], owners[2]);
    let write = pump.kv(owners[0], put("k", "mine"), Level::One, Vec::new(), None);
    let context = ok(&pump.run_until_reply(write, SECOND)).context.clone();
    pump.heal();
    let one = pump.kv(owners[1], get("k"), Level::One, Vec::new(), None);
    let stale = ok(&pump.run_until_reply(one, SECOND)).clone();
    assert!(
        stale.siblings.is_empty(),
        "ONE answered from the stale local copy"
    );
    let session = pump.kv(owners[2], get("k"), Level::Session, context.clone(), None);
    let fresh = ok(&pump.run_until_reply(session, SECOND)).clone();
    assert_eq!(strings(&fresh.siblings), vec!["mine"]);
    let covers = VersionVector::decode(&fresh.context)
        .unwrap()
        .dominates(&VersionVector::decode(&context).unwrap());
    assert!(covers, "the returned context covers the client's");
}

/// SESSION fails clearly at the deadline when no reachable owner has the client's write.
#[test]
fn a_session_read_that_cannot_catch_up_fails_at_the_deadline() {
    let mut pump = pump(5, config());
    let (owners, _) = placement(&pump, "k");
    pump.block(owners[0], owners[1]);
    pump.block(owners[0], owners[2]);
    let write = pump.kv(owners[0], put("k", "mine"), Level::One, Vec::new(), None);
    let context = ok(&pump.run_until_reply(write, SECOND)).context.clone();
    pump.crash(owners[0]);
    pump.heal();
    let session = pump.kv(owners[1], get("k"), Level::Session, context, None);
    match pump.run_until_reply(session, 2 * SECOND).outcome {
        Err(RequestError::Unavailable { detail, .. }) => {
            assert!(detail.contains("SESSION"), "{detail}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

/// Riak kv679: an owner that lost its disk restarts in a new epoch, so its new writes
/// never reuse a dot that others hold for an older version.
#[test]
fn a_wiped_owner_takes_a_new_epoch_and_loses_no_write() {
    let mut pump = pump(5, config());
    let (owners, _) = placement(&pump, "k");
    let first = pump.kv(owners[0], put("k", "before"), Level::All, Vec::new(), None);
    ok(&pump.run_until_reply(first, SECOND));
    let old_epoch = pump.up(owners[0]).epoch();
    pump.crash(owners[0]);
    pump.wipe(owners[0]);
    pump.restart(owners[0]);
    pump.run_for(SECOND);
    // A blind write (no context) at the wiped owner: concurrent with "before".
    let second = pump.kv(owners[0], put("k", "after"), Level::One, Vec::new(), None);
    ok(&pump.run_until_reply(second, SECOND));
    pump.run_for(SECOND);
    let read = pump.kv(owners[1], get("k"), Level::All, Vec::new(), None);
    let response = ok(&pump.run_until_reply(read, SECOND)).clone();
    assert_eq!(strings(&response.siblings), vec!["after", "before"]);
    assert_ne!(pump.up(owners[0]).epoch(), old_epoch);
}

/// An acknowledged write survives the owner's crash and restart (persist before ack).
#[test]
fn acknowledged_writes_survive_a_restart() {
    let mut pump = pump(5, config());
    let (owners, _) = placement(&pump, "k");
    let write = pump.kv(owners[0], put("k", "v"), Level::One, Vec::new(), None);
    ok(&pump.run_until_reply(write, SECOND));
    pump.crash(owners[0]);
    pump.restart(owners[0]);
    assert_eq!(stored_values(&pump, owners[0], "k"), vec!["v"]);
    // The restarted node does not reissue the dot it used.
    let again = pump.kv(owners[0], put("k", "w"), Level::One, Vec::new(), None);
    ok(&pump.run_until_reply(again, SECOND));
    assert_eq!(stored_values(&pump, owners[0], "k"), vec!["v", "w"]);
}

/// Sibling limits: warn above the soft limit, reject above the hard one; never prune.
#[test]
fn sibling_limits_warn_then_reject() {
    let config = config().with_sibling_limits(2, 3);
    let mut pump = pump(5, config);
    let (owners, _) = placement(&pump, "k");
    for i in 0..3 {
        let id = pump.kv(
            owners[0],
            put("k", &format!("v{i}")),
            Level::One,
            Vec::new(),
            None,
        );
        ok(&pump.run_until_reply(id, SECOND));
    }
    let id = pump.kv(owners[0], put("k", "v3"), Level::One, Vec::new(), None);
    match pump.run_until_reply(id, SECOND).outcome {
        Err(RequestError::Rejected(reason)) => assert!(reason.contains("hard limit 3"), "{reason}"),
        other => panic!("expected Rejected, got {other:?}"),
    }
    let node = pump.up(owners[0]);
    assert_eq!(node.metrics().get("sibling_warnings"), 1);
    assert_eq!(node.metrics().get("sibling_rejections"), 1);
    assert_eq!(
        stored_values(&pump, owners[0], "k").len(),
        3,
        "nothing pruned"
    );
}

/// A write sent to a non-owner is coordinated by the nearest live owner.
#[test]
fn a_write_at_a_non_owner_is_forwarded_to_an_owner() {
    let mut pump = pump(5, config());
    let (owners, others) = placement(&pump, "k");
    let id = pump.kv(others[0], put("k", "v"), Level::Quorum, Vec::new(), None);
    let response = ok(&pump.run_until_reply(id, SECOND)).clone();
    assert!(response
        .receipt
        .answered
        .iter()
        .all(|r| owners.contains(&r.node)));
    assert_eq!(pump.up(others[0]).metrics().get("forwarded"), 1);
    assert_eq!(
        pump.up(others[0]).stored(b"k"),
        None,
        "non-owners store nothing"
    );
}

/// An expired hint is dropped, counted, and its range is exchanged with priority, which
/// brings the write to the returning owner instead.
#[test]
fn an_expired_hint_is_counted_and_anti_entropy_delivers_the_write() {
    let config = DynamoConfig {
        hints: HintLimits {
            max_age: SECOND,
            ..HintLimits::default()
        },
        anti_entropy_interval: Duration::from_millis(50),
        ..config()
    };
    let mut pump = pump(5, config);
    let (owners, others) = placement(&pump, "k");
    pump.crash(owners[2]);
    pump.run_for(SECOND);
    let id = pump.kv(owners[0], put("k", "v"), Level::Two, Vec::new(), Some(true));
    ok(&pump.run_until_reply(id, SECOND));
    pump.run_for(3 * SECOND);
    let dropped: u64 = others
        .iter()
        .map(|&n| pump.up(n).metrics().get("hints_dropped"))
        .sum();
    assert_eq!(dropped, 1);
    assert!(
        pump.up(owners[0])
            .metrics()
            .get("anti_entropy_priority_marks")
            >= 1
    );
    pump.restart(owners[2]);
    pump.run_for(5 * SECOND);
    assert_eq!(stored_values(&pump, owners[2], "k"), vec!["v"]);
}

/// Compaction replaces the log with live state; a restart from it rebuilds that state.
#[test]
fn a_node_restarts_from_its_compacted_log() {
    let config = DynamoConfig {
        compact_after_records: 10,
        ..config()
    };
    let mut pump = pump(3, config);
    let mut context = Vec::new();
    for i in 0..30 {
        let id = pump.kv(
            NodeId(0),
            put("k", &format!("v{i}")),
            Level::All,
            context,
            None,
        );
        context = ok(&pump.run_until_reply(id, SECOND)).context.clone();
    }
    pump.run_for(SECOND);
    assert!(pump.up(NodeId(1)).metrics().get("compactions") >= 1);
    assert!(pump.disks[1].len() < 30, "{} records", pump.disks[1].len());
    let before = pump.up(NodeId(1)).stored(b"k").cloned();
    pump.crash(NodeId(1));
    pump.restart(NodeId(1));
    assert_eq!(pump.up(NodeId(1)).stored(b"k").cloned(), before);
}

fn regions_cluster() -> Membership {
    let regions = ["va", "va", "ie", "ie", "jp", "jp"];
    Membership {
        members: regions
            .iter()
            .enumerate()
            .map(|(i, r)| Member {
                id: NodeId(i as u16),
                region: (*r).to_owned(),
            })
            .collect(),
        rtt_us: Vec::new(),
    }
}

/// Region levels: LOCAL_QUORUM needs only the coordinator's region; EACH_QUORUM needs
/// every region and fails while one region's owner is down, unless a sloppy request lets
/// a fallback of that region stand in for it.
#[test]
fn region_levels_count_per_region_and_fallbacks_only_when_sloppy() {
    let mut pump = new_pump(regions_cluster(), config(), 7);
    pump.run_for(Duration::from_millis(10));
    let owners = pump.up(NodeId(0)).preference_list(b"k");
    let ring = pump.up(NodeId(0)).ring().clone();
    let regions: Vec<&str> = owners.iter().map(|&n| ring.region_of(n)).collect();
    assert_eq!(regions.len(), 3, "one owner per region: {regions:?}");
    let jp_owner = owners[regions.iter().position(|r| *r == "jp").unwrap()];
    let va_owner = owners[regions.iter().position(|r| *r == "va").unwrap()];
    pump.crash(jp_owner);
    pump.run_for(SECOND);
    let local = pump.kv(
        va_owner,
        put("k", "v"),
        Level::LocalQuorum,
        Vec::new(),
        None,
    );
    let receipt = ok(&pump.run_until_reply(local, SECOND)).receipt.clone();
    assert_eq!(receipt.answered[0].region, "va");
    let each = pump.kv(va_owner, put("k", "w"), Level::EachQuorum, Vec::new(), None);
    match pump.run_until_reply(each, SECOND).outcome {
        Err(RequestError::Unavailable {
            needed: 3, detail, ..
        }) => {
            assert!(detail.contains("region \"jp\""), "{detail}")
        }
        other => panic!("expected Unavailable, got {other:?}"),
    }
    let sloppy = pump.kv(
        va_owner,
        put("k", "x"),
        Level::EachQuorum,
        Vec::new(),
        Some(true),
    );
    let receipt = ok(&pump.run_until_reply(sloppy, SECOND)).receipt.clone();
    let stand_in = receipt
        .answered
        .iter()
        .find(|r| r.fallback)
        .expect("a fallback answered");
    assert_eq!(
        stand_in.region, "jp",
        "the fallback comes from the owner's region"
    );
    assert_eq!(receipt.hints_written, 1);
}

/// A sloppy read asks the fallback holding the hint in place of the down owner.
#[test]
fn a_sloppy_read_counts_the_fallback_holding_the_hint() {
    let mut pump = pump(5, config());
    let (owners, _) = placement(&pump, "k");
    pump.crash(owners[1]);
    pump.crash(owners[2]);
    pump.run_for(SECOND);
    let write = pump.kv(owners[0], put("k", "v"), Level::All, Vec::new(), Some(true));
    ok(&pump.run_until_reply(write, SECOND));
    let strict = pump.kv(owners[0], get("k"), Level::Two, Vec::new(), None);
    assert!(matches!(
        pump.run_until_reply(strict, SECOND).outcome,
        Err(RequestError::Unavailable { .. })
    ));
    let sloppy = pump.kv(owners[0], get("k"), Level::All, Vec::new(), Some(true));
    let response = ok(&pump.run_until_reply(sloppy, SECOND)).clone();
    assert_eq!(strings(&response.siblings), vec!["v"]);
    assert_eq!(
        response
            .receipt
            .answered
            .iter()
            .filter(|r| r.fallback)
            .count(),
        2
    );
}

/// A full hint store refuses: the refusal does not count, the write fails at its
/// deadline saying why, and the range is marked for priority anti-entropy.
#[test]
fn a_refused_hint_does_not_count_and_marks_the_range() {
    let config = DynamoConfig {
        hints: HintLimits {
            max_per_target: 0,
            ..HintLimits::default()
        },
        ..config()
    };
    let mut pump = pump(5, config);
    let (owners, others) = placement(&pump, "k");
    pump.crash(owners[2]);
    pump.run_for(SECOND);
    let write = pump.kv(owners[0], put("k", "v"), Level::All, Vec::new(), Some(true));
    match pump.run_until_reply(write, 2 * SECOND).outcome {
        Err(RequestError::Unavailable {
            replied: 2,
            needed: 3,
            detail,
        }) => assert!(detail.contains("refused a hint"), "{detail}"),
        other => panic!("expected Unavailable 2 of 3, got {other:?}"),
    }
    let refused: u64 = others
        .iter()
        .map(|&n| pump.up(n).metrics().get("hints_refused"))
        .sum();
    assert_eq!(refused, 1);
    assert!(
        pump.up(owners[1])
            .metrics()
            .get("anti_entropy_priority_marks")
            >= 1
    );
}

/// Tombstones are collected only after the grace period AND an anti-entropy exchange
/// with every other owner that started after the delete.
#[test]
fn tombstones_are_collected_only_after_grace_and_anti_entropy_coverage() {
    let grace = DynamoConfig {
        tombstone_grace: 2 * SECOND,
        gc_interval: Duration::from_millis(100),
        ..config()
    };
    // Without anti-entropy nothing proves the other owners hold the tombstone.
    let mut pump = pump(5, grace.clone());
    let (owners, _) = placement(&pump, "k");
    let write = pump.kv(owners[0], put("k", "v"), Level::All, Vec::new(), None);
    let context = ok(&pump.run_until_reply(write, SECOND)).context.clone();
    let delete = Command::Delete { key: b"k".to_vec() };
    let id = pump.kv(owners[0], delete.clone(), Level::All, context.clone(), None);
    ok(&pump.run_until_reply(id, SECOND));
    pump.run_for(5 * SECOND);
    for &owner in &owners {
        assert!(
            pump.up(owner).stored(b"k").unwrap().is_tombstone(),
            "{owner} kept it"
        );
    }
    // With anti-entropy, every owner drops it after the grace period.
    let mut pump = self::pump(
        5,
        DynamoConfig {
            anti_entropy_interval: Duration::from_millis(20),
            ..grace
        },
    );
    let write = pump.kv(owners[0], put("k", "v"), Level::All, Vec::new(), None);
    let context = ok(&pump.run_until_reply(write, SECOND)).context.clone();
    let id = pump.kv(owners[0], delete, Level::All, context, None);
    ok(&pump.run_until_reply(id, SECOND));
    pump.run_for(SECOND);
    assert!(pump.up(owners[0]).stored(b"k").is_some(), "grace not over");
    pump.run_for(5 * SECOND);
    for &owner in &owners {
        assert_eq!(pump.up(owner).stored(b"k"), None, "{owner}");
    }
    let collected: u64 = owners
        .iter()
        .map(|&n| pump.up(n).metrics().get("tombstones_collected"))
        .sum();
    assert!(collected >= 3, "{collected}");
    let read = pump.kv(owners[1], get("k"), Level::All, Vec::new(), None);
    assert!(ok(&pump.run_until_reply(read, SECOND)).siblings.is_empty());
}

/// A coordinator's new version leaves before its own fsync; if it crashes before the
/// sync, the restarted node (new epoch) must not reissue that dot for another value:
/// the acknowledged second write survives next to the unacknowledged first.
#[test]
fn a_dot_that_left_before_the_crash_is_never_reissued() {
    let mut pump = pump(5, config());
    let (owners, _) = placement(&pump, "k");
    let lost = pump.kv(
        owners[0],
        put("k", "unsynced"),
        Level::Two,
        Vec::new(),
        None,
    );
    pump.crash(owners[0]);
    pump.run_for(SECOND);
    assert!(!pump.replies.contains_key(&lost), "its coordinator died");
    assert_eq!(stored_values(&pump, owners[1], "k"), vec!["unsynced"]);
    pump.restart(owners[0]);
    assert_eq!(pump.up(owners[0]).stored(b"k"), None, "lost with the crash");
    let acked = pump.kv(owners[0], put("k", "acked"), Level::One, Vec::new(), None);
    ok(&pump.run_until_reply(acked, SECOND));
    pump.run_for(SECOND);
    let read = pump.kv(owners[1], get("k"), Level::All, Vec::new(), None);
    let response = ok(&pump.run_until_reply(read, SECOND)).clone();
    assert_eq!(strings(&response.siblings), vec!["acked", "unsynced"]);
}

/// Answered reads that wait for late answers (to repair them) do not count as load.
#[test]
fn answered_reads_lingering_for_repair_do_not_count_as_pending() {
    let config = DynamoConfig {
        max_pending_requests: 2,
        ..config()
    };
    let mut pump = pump(5, config);
    let (owners, _) = placement(&pump, "k");
    pump.isolate(owners[2]);
    for _ in 0..4 {
        let read = pump.kv(owners[0], get("k"), Level::One, Vec::new(), None);
        ok(&pump.run_until_reply(read, SECOND));
    }
    let node = pump.up(owners[0]);
    assert_eq!(
        node.metrics().get("reads_lingering"),
        4,
        "waiting for the isolated owner"
    );
    assert_eq!(node.metrics().get("requests_in_flight"), 0);
    pump.run_for(3 * SECOND);
    assert_eq!(pump.up(owners[0]).metrics().get("reads_lingering"), 0);
}

/// Object size limit (docs/design.md#object-size): a write whose object, every sibling
/// counted, would exceed `max_object_bytes` is refused with a clear error and stores
/// nothing; the key stays writable (a write with the read's context replaces the sibling,
/// a delete works). A value alone over the limit is refused by the node it reaches, owner
/// or not, before it is forwarded.
#[test]
fn an_object_over_the_size_limit_is_refused_and_the_key_stays_writable() {
    let mut pump = pump(5, config().with_max_object_bytes(10_000));
    let (owners, others) = placement(&pump, "k");
    let refused = |reply: ClientReply, what: &str| match reply.outcome {
        Err(RequestError::Rejected(reason)) => {
            assert!(reason.contains("limit of 10000"), "{what}: {reason}")
        }
        other => panic!("{what}: expected Rejected, got {other:?}"),
    };
    let huge = "h".repeat(10_001);
    for at in [others[0], owners[0]] {
        let id = pump.kv(at, put("k", &huge), Level::Quorum, Vec::new(), None);
        refused(pump.run_until_reply(id, SECOND), "a value over the limit");
    }
    let big = "a".repeat(6_000);
    let id = pump.kv(owners[0], put("k", &big), Level::All, Vec::new(), None);
    ok(&pump.run_until_reply(id, SECOND));
    // Two values under the limit whose siblings together exceed it: the blind second write
    // is refused, nothing stored.
    let other = "b".repeat(6_000);
    let id = pump.kv(owners[0], put("k", &other), Level::All, Vec::new(), None);
    refused(pump.run_until_reply(id, SECOND), "a second sibling");
    for &owner in &owners {
        assert_eq!(stored_values(&pump, owner, "k"), vec![big.clone()]);
    }
    let read = pump.kv(others[1], get("k"), Level::All, Vec::new(), None);
    let context = ok(&pump.run_until_reply(read, SECOND)).context.clone();
    let id = pump.kv(owners[1], put("k", &other), Level::All, context, None);
    let written = ok(&pump.run_until_reply(id, SECOND)).clone();
    pump.run_for(SECOND);
    for &owner in &owners {
        assert_eq!(stored_values(&pump, owner, "k"), vec![other.clone()]);
    }
    let delete = Command::Delete { key: b"k".to_vec() };
    let id = pump.kv(owners[2], delete, Level::All, written.context, None);
    ok(&pump.run_until_reply(id, SECOND));
    let rejections: u64 = (0..5)
        .map(|n| pump.up(NodeId(n)).metrics().get("size_rejections"))
        .sum();
    assert_eq!(rejections, 3);
}

/// An anti-entropy batch stops at `max_object_bytes` (past its first object), so a
/// message carrying objects is never much larger than one object.
#[test]
fn anti_entropy_batches_stop_at_the_object_size_limit() {
    let mut pump = pump(3, config().with_max_object_bytes(2_500));
    let value = "v".repeat(1_000);
    let keys: Vec<String> = (0..40).map(|i| format!("key-{i}")).collect();
    for key in &keys {
        let id = pump.kv(NodeId(0), put(key, &value), Level::All, Vec::new(), None);
        ok(&pump.run_until_reply(id, SECOND));
    }
    let node = pump.up(NodeId(0));
    let mut ranges: Vec<_> = keys
        .iter()
        .map(|k| node.ring.range_of(k.as_bytes()))
        .collect();
    ranges.sort();
    let leaves: Vec<u32> = (0..1 << 16).collect();
    let batch = |range| node.objects_in_leaves(range, &leaves);
    let (mut largest, mut total) = (0, 0);
    ranges.dedup();
    for range in ranges {
        let objects = batch(range);
        let bytes: usize = objects
            .iter()
            .map(|(k, o)| k.len() + o.approx_bytes())
            .sum();
        assert!(bytes <= 2_500, "{} objects, {bytes} bytes", objects.len());
        largest = largest.max(objects.len());
        total += objects.len();
    }
    assert_eq!(largest, 2, "a range holds several keys; a batch takes two");
    assert!(total < keys.len());
}

/// A causal context naming versions the coordinator never issued (a corrupt client)
/// must not make its writes count as already seen: the forged write and a later one
/// without context both survive at every owner.
#[test]
fn a_context_from_the_future_does_not_swallow_writes() {
    let mut pump = pump(3, config());
    let node = NodeId(0);
    let first = pump.kv(node, put("k", "one"), Level::All, Vec::new(), None);
    let context = ok(&pump.run_until_reply(first, SECOND)).context.clone();
    let mut forged = VersionVector::decode(&context).expect("a context");
    let actors: Vec<Actor> = forged.iter().map(|(actor, _)| *actor).collect();
    for actor in actors {
        forged.add(&Dot {
            actor,
            counter: 1_000,
        });
    }
    let write = pump.kv(node, put("k", "two"), Level::All, forged.encode(), None);
    ok(&pump.run_until_reply(write, SECOND));
    let later = pump.kv(node, put("k", "three"), Level::All, Vec::new(), None);
    ok(&pump.run_until_reply(later, SECOND));
    pump.run_for(SECOND);
    let read = pump.kv(NodeId(1), get("k"), Level::All, Vec::new(), None);
    let response = ok(&pump.run_until_reply(read, SECOND)).clone();
    assert_eq!(strings(&response.siblings), vec!["three", "two"]);
}
