//! Vote bounds of a rejoined replica on members that joined after its rejoin
//! (docs/design.md#epaxos-rejoin-rule, "A rejoined replica and a later member").
//!
//! ```text
//!  rejoined R, on the GC tick, per member L it holds no bound for:
//!        ─▶ AskNextSlot{nonce, R's own start S}
//!  L: first ask for (R, S): told = L's next own slot; persist BoundTold{R, S, told}
//!     any later ask for (R, S): the same told (a restart of R asks again)
//!        ─▶ NextSlot{nonce, told}, behind the durable record
//!  R: bound for L = told (persisted); votes on L's instances from there
//! ```
//! The answer is the same for every ask of one rejoin: a crash of R that lost the bound
//! before it was synced asks again and gets the same slot, not L's next slot by then,
//! so R never withholds its vote from L's instances in between. A new rejoin of R (a
//! new start) gets a fresh answer: R's former self may have voted on L's instances
//! since the last one.

use super::fence::Stage;
use super::messages::{Message, Record};
use super::Epaxos;
use crate::id::NodeId;
use crate::protocol::Effect;
use std::collections::BTreeMap;

/// Per rejoined peer that asked, its start when it asked and the slot told.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash)]
pub(super) struct BoundsTold(BTreeMap<NodeId, (u64, u64)>);

impl BoundsTold {
    /// Rebuilt from a `BoundTold` record (the later start wins).
    pub(super) fn restore(&mut self, asker: NodeId, start: u64, slot: u64) {
        if self.0.get(&asker).is_none_or(|&(known, _)| start >= known) {
            self.0.insert(asker, (start, slot));
        }
    }

    /// What to tell `asker`, asking for its rejoin from `start`, while our next own slot
    /// is `next`: the slot told to the first ask for that start, with the record to
    /// persist before telling it if this is that first ask; nothing for an ask of an
    /// earlier rejoin than one already told.
    fn answer(&mut self, asker: NodeId, start: u64, next: u64) -> Option<(u64, Option<Record>)> {
        match self.0.get(&asker) {
            Some(&(told_start, slot)) if told_start == start => Some((slot, None)),
            Some(&(told_start, _)) if told_start > start => None,
            _ => {
                self.0.insert(asker, (start, next));
                let record = Record::BoundTold {
                    asker,
                    start,
                    slot: next,
                };
                Some((next, Some(record)))
            }
        }
    }

    /// The records that keep every answer across a compaction.
    pub(super) fn records(&self) -> impl Iterator<Item = Record> + '_ {
        self.0
            .iter()
            .map(|(&asker, &(start, slot))| Record::BoundTold { asker, start, slot })
    }
}

impl Epaxos {
    /// On the GC timer: a member we hold no vote bound for (it joined after our rejoin)
    /// has instances we would never vote on, so an epoch in which it leads and we are
    /// needed for a majority would stall (t18 seed 6145). Its next own slot bounds
    /// every instance of its that our former self could have voted on, since it
    /// answers after our rejoin began (it tells every ask of this start the slot it
    /// told the first).
    pub(super) fn ask_missing_bounds(&mut self) {
        let fence = &self.replica.fence;
        if fence.stage != Stage::Rejoined {
            return;
        }
        let me = self.replica.id;
        let start = fence.own_start(me);
        let missing: Vec<NodeId> = self
            .replica
            .epochs
            .current_members()
            .into_iter()
            .filter(|&m| m != me && !fence.bounds.contains_key(&m))
            .collect();
        let nonce = self.rejoin_nonce();
        for peer in missing {
            self.replica
                .outbox
                .send(peer, Message::AskNextSlot { nonce, start });
        }
    }

    /// A rejoined peer whose own instances start at `start` asks for our next own
    /// slot: the first ask for that start is told it, durably, and every later one the
    /// same; an ask for an earlier start than one already told (a delayed message of
    /// an earlier rejoin) gets nothing. Told behind every record persisted so far (an
    /// instance voted on is durable here first). Not while we rejoin ourselves: our
    /// start is not fixed yet.
    pub(super) fn on_ask_next_slot(&mut self, from: NodeId, nonce: u64, start: u64) {
        if !self.replica.fence.may_propose() {
            return;
        }
        let next = self.leader.next_slot();
        let Some((slot, record)) = self.bounds_told.answer(from, start, next) else {
            return;
        };
        let reply = Effect::Send {
            to: from,
            message: Message::NextSlot { nonce, slot },
        };
        self.replica
            .outbox
            .persist(record.into_iter().collect(), vec![reply]);
    }

    /// A member's next own slot, asked by this boot: we vote on its instances from there.
    pub(super) fn on_next_slot(&mut self, from: NodeId, nonce: u64, slot: u64) {
        let asked = self.rejoin_nonce();
        let fence = &mut self.replica.fence;
        if nonce != asked || fence.stage != Stage::Rejoined || fence.bounds.contains_key(&from) {
            return;
        }
        fence.bounds.insert(from, slot);
        self.replica.metrics.incr("vote_bounds_learned");
        self.persist_fence();
    }
}
