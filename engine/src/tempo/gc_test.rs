//! Catching up a replica that missed commits.

use super::*;
use crate::tempo::test_support::{config, new_pump, request, synced, timed, Pump};
use crate::tempo::Tempo;
use crate::Protocol;
use std::time::Duration;

/// Hand `to` a message from `from` and return what `to` sends, by destination.
fn exchange(pump: &mut Pump, from: NodeId, to: NodeId, message: Message) -> Vec<(NodeId, Message)> {
    pump.with_core(to, |core: &mut Tempo, now| {
        core.handle_message(now, from, message);
        synced(core).1
    })
    .expect("up")
}

/// A replica that missed commits asks a peer that reported them executed for exactly
/// those it lacks (at most a batch), and the peer answers each with its commit.
#[test]
fn a_lagging_replica_asks_for_exactly_the_commits_it_lacks() {
    let mut pump = new_pump(3, 7, timed(), config(1));
    pump.isolate(NodeId(2));
    let total = CATCH_UP_BATCH as u64 + 40;
    for seq in 1..=total {
        pump.request(NodeId(0), request(seq, &format!("k{seq}")));
    }
    pump.run_for(Duration::from_secs(3));
    let executed: Vec<Dot> = pump
        .up(NodeId(0))
        .executed()
        .iter()
        .map(|e| e.dot)
        .collect();
    assert_eq!(
        executed.len() as u64,
        total,
        "node 0 executed every command"
    );
    let highest = executed.iter().map(|d| d.seq).max().unwrap();
    let report = Message::Executed {
        prefix: vec![(NodeId(0), highest)],
        epoch: 0,
        config_epoch: 0,
    };
    let asked: Vec<Dot> = exchange(&mut pump, NodeId(0), NodeId(2), report)
        .into_iter()
        .flat_map(|(to, message)| match message {
            Message::Inquire { dots } if to == NodeId(0) => dots,
            _ => Vec::new(),
        })
        .collect();
    let mut lacking = executed.clone();
    lacking.sort();
    assert_eq!(
        asked,
        lacking[..CATCH_UP_BATCH],
        "the first batch, in seq order"
    );
    let answers = exchange(
        &mut pump,
        NodeId(2),
        NodeId(0),
        Message::Inquire {
            dots: asked.clone(),
        },
    );
    let committed: Vec<Dot> = answers
        .into_iter()
        .filter_map(|(to, message)| match message {
            Message::Commit { dot, .. } if to == NodeId(2) => Some(dot),
            _ => None,
        })
        .collect();
    assert_eq!(committed, asked);
    // Once reconnected, the reports bring the rest: node 2 executes everything.
    pump.heal();
    pump.run_for(Duration::from_secs(5));
    assert_eq!(pump.up(NodeId(2)).executed().len() as u64, total);
}
