//! Rebuilding a replica from its durable records: commands, ballots, clocks and
//! attached promises; commands it executed before run again, in the same order.

use super::messages::{Dot, Record, Snapshot};
use super::replica::{Cmd, Replica};
use crate::time::Time;
use std::collections::BTreeSet;

/// Replay `records` into `r`; returns the highest own sequence number used.
pub(super) fn replay(r: &mut Replica, records: Vec<Record>) -> u64 {
    let mut last_seq = 0;
    let mut executed: BTreeSet<Dot> = BTreeSet::new();
    let me = r.id;
    let own = |dot: Dot, last: &mut u64| {
        if dot.node == me {
            *last = (*last).max(dot.seq);
        }
    };
    for record in records {
        match record {
            Record::Proposed {
                dot,
                payload,
                ts,
                in_recovery,
            } => {
                own(dot, &mut last_seq);
                r.clocks.attach(payload.key(), dot, ts);
                let cmd = entry(r, dot);
                cmd.payload.get_or_insert(payload);
                cmd.proposal = Some(ts);
                cmd.in_recovery = in_recovery;
            }
            Record::Promised { dot, ballot } => {
                own(dot, &mut last_seq);
                let cmd = entry(r, dot);
                cmd.ballot = cmd.ballot.max(ballot);
            }
            Record::Accepted {
                dot,
                ballot,
                ts,
                payload,
            } => {
                own(dot, &mut last_seq);
                r.clocks.bump(payload.key(), ts);
                let cmd = entry(r, dot);
                cmd.payload.get_or_insert(payload);
                cmd.ballot = cmd.ballot.max(ballot);
                if ballot >= cmd.accepted {
                    cmd.accepted = ballot;
                    cmd.accepted_ts = ts;
                }
            }
            Record::Committed { dot, payload, ts } => {
                own(dot, &mut last_seq);
                r.clocks.bump(payload.key(), ts);
                let cmd = entry(r, dot);
                cmd.payload = Some(payload);
                cmd.decided = Some(ts);
                cmd.durable = true;
            }
            Record::Clocks { keys } => {
                for (key, clock) in keys {
                    r.clocks.bump(&key, clock);
                }
            }
            Record::Floor { clock } => r.clocks.raise_floor(clock),
            Record::Executed { dots } => executed.extend(dots),
            Record::Snapshot(snapshot) => {
                let Snapshot {
                    executed: done,
                    kv,
                    sessions,
                    collected,
                    epochs,
                    clocks,
                    attached,
                    last_seq: seq,
                    floor,
                } = *snapshot;
                r.clocks.raise_floor(floor);
                last_seq = last_seq.max(seq);
                r.executor.restore(done, (kv, sessions), epochs);
                r.collected = collected;
                for (key, clock) in clocks {
                    r.clocks.bump(&key, clock);
                }
                for (key, ts, dot) in attached {
                    r.clocks.attach(&key, dot, ts);
                }
            }
            Record::Fence(fence) => {
                r.clocks.set_epoch(fence.epoch);
                r.fence = *fence;
            }
        }
    }
    // What a snapshot holds ran already; what it collected is forgotten.
    executed.retain(|dot| !r.executor.executed.contains(*dot));
    let collected = &r.collected;
    r.cmds.retain(|dot, _| !collected.contains(*dot));
    // What ran before runs again in (timestamp, dot) order: per key that is the order it
    // ran in. The rest waits for stability as usual. A replica whose durable fence says
    // its state is lost (it installed a peer's state and ran commits on it, then crashed
    // before that state was durable) has no base to run them on: they wait, like any
    // commit learned meanwhile, for the next install (`rejoin.rs`), which skips what the
    // installed state executed.
    let base_is_complete = r.fence.executes();
    let mut rerun = Vec::new();
    for (&dot, cmd) in &r.cmds {
        let (Some(ts), Some(payload)) = (cmd.decided, cmd.payload.as_ref()) else {
            continue;
        };
        if executed.contains(&dot) && base_is_complete {
            rerun.push((ts, dot, payload.clone()));
        } else {
            r.executor.add(payload.key(), ts, dot);
            r.touched.insert(payload.key().clone());
        }
    }
    // Every clock so far was raised by a durable record.
    r.clocks.take_unrecorded();
    rerun.sort_by_key(|(ts, dot, _)| (*ts, *dot));
    for (ts, dot, payload) in rerun {
        r.executor.rerun(dot, ts, &payload);
    }
    r.follow_configuration();
    last_seq
}

fn entry(r: &mut Replica, dot: Dot) -> &mut Cmd {
    r.cmds.entry(dot).or_insert_with(|| Cmd::new(Time::ZERO))
}
