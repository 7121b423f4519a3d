//! Client intake and optional batching (off by default: docs/design.md#epaxos, rule 7).
//!
//! An instance's value is a [`Batch`] of client commands (`instance.rs`), executed in
//! order, each client answered on its own. A command leader proposes a request in the
//! very input that brings it, unless
//! [`max_in_flight`](super::config::EpaxosConfig::max_in_flight) of its own instances are
//! still uncommitted: then requests queue, and each input that frees a place puts up to
//! [`max_batch`](super::config::EpaxosConfig::max_batch) of the queued ones into one
//! instance (the Multi-Paxos scheme). No timer ever holds a request back. A batch
//! interferes with every command that interferes with one of its commands, so its
//! dependencies are the union of its commands' (`key_index.rs`).

use super::instance::{Batch, Payload};
use super::leader::Leadership;
use super::replica::Replica;
use crate::command::{batch_len, CommandResult};
use crate::request::{ClientReply, ClientRequest, Consistency, RequestError, Response};
use crate::time::Time;
use std::collections::VecDeque;

/// Requests a leader holds while its window of uncommitted instances is full; more are
/// refused as overloaded.
const MAX_QUEUE: usize = 100_000;

/// Client requests waiting for room in the window of own instances.
#[derive(Clone, Default, Hash)]
pub(super) struct Intake {
    queued: VecDeque<Payload>,
    /// The host is handing over a burst of waiting inputs: propose at its end.
    burst: bool,
}

impl Intake {
    /// A burst of waiting inputs begins: requests queue until [`Self::end_burst`].
    pub(super) fn begin_burst(&mut self) {
        self.burst = true;
    }

    /// The burst is over: propose what queued during it, packed.
    pub(super) fn end_burst(&mut self, leader: &mut Leadership, replica: &mut Replica, now: Time) {
        self.burst = false;
        self.propose(leader, replica, now);
    }

    /// This replica was removed: what waits here will not be proposed; each client is
    /// told so (a definite refusal: nothing was ordered).
    pub(super) fn refuse_queued(&mut self, replica: &mut Replica) {
        for payload in self.queued.drain(..) {
            replica.outbox.reply(ClientReply {
                id: payload.request,
                outcome: Err(RequestError::Rejected(
                    "this replica was removed from the keyspace before it proposed the \
                     request; send it to a voter"
                        .into(),
                )),
            });
        }
    }

    /// A client request at this replica: answered at once (a local read, a request this
    /// keyspace cannot serve, an overload), or proposed, or queued.
    pub(super) fn on_request(
        &mut self,
        leader: &mut Leadership,
        replica: &mut Replica,
        now: Time,
        request: ClientRequest,
    ) {
        let reply = |outcome| ClientReply {
            id: request.id,
            outcome,
        };
        match request.consistency {
            Consistency::Dynamo(level) => {
                replica
                    .outbox
                    .reply(reply(Err(RequestError::Invalid(format!(
                "consistency level {level} applies to Dynamo keyspaces; this keyspace runs EPaxos \
                     (use linearizable or local reads)"
            )))))
            }
            level @ (Consistency::Lease
            | Consistency::ReadIndex
            | Consistency::Follower
            | Consistency::Stale { .. }) => {
                replica
                    .outbox
                    .reply(reply(Err(RequestError::Invalid(format!(
                        "read level {level} needs a leader (Multi-Paxos keyspaces); this keyspace \
                     runs EPaxos, which has no leader to hold a lease or a read index (use \
                     linearizable or local reads; docs/design.md#reads-without-the-log)"
                    )))))
            }
            Consistency::LocalRead if request.command.is_read() => {
                let result = replica.executor.kv().read_only(&request.command);
                let result = result.unwrap_or(CommandResult::Value(None));
                replica.outbox.reply(reply(Ok(Response::Kv(result))));
            }
            Consistency::Linearizable if request.command.prefix().is_some() => replica
                .outbox
                .reply(reply(Err(RequestError::range_read_unordered("EPaxos")))),
            Consistency::LocalRead | Consistency::Linearizable
                if !replica
                    .epochs
                    .counts_vote(replica.epochs.current(), replica.id) =>
            {
                // Only voters lead (`has_room`): a spare, a learner or a removed replica
                // sends its clients to the voters.
                let epoch = replica.epochs.current();
                replica
                    .outbox
                    .reply(reply(Err(RequestError::Rejected(format!(
                    "this replica is not a voter of the keyspace (configuration epoch {epoch}): \
                     it is joining, catching up or removed; send the request to a voter"
                )))))
            }
            Consistency::LocalRead | Consistency::Linearizable => {
                let payload = Payload {
                    request: request.id,
                    resend: request.resend,
                    command: request.command,
                    change: None,
                };
                if !self.submit(leader, replica, now, payload) {
                    replica.metrics.incr("requests_rejected");
                    replica.outbox.reply(reply(Err(RequestError::Rejected(
                        "too many requests queued at this replica".to_owned(),
                    ))));
                }
            }
        }
    }

    /// A client request for this leader: proposed now, or queued while the window of
    /// uncommitted instances is full. False if the queue is full too.
    fn submit(
        &mut self,
        leader: &mut Leadership,
        replica: &mut Replica,
        now: Time,
        payload: Payload,
    ) -> bool {
        let known = self.queued.iter().any(|p| p.request == payload.request);
        if !known {
            if self.queued.len() >= MAX_QUEUE {
                return false;
            }
            self.queued.push_back(payload);
        }
        self.propose(leader, replica, now);
        true
    }

    /// Fill free places of the window with batches of queued requests.
    pub(super) fn propose(&mut self, leader: &mut Leadership, replica: &mut Replica, now: Time) {
        if self.burst {
            return;
        }
        while !self.queued.is_empty() && has_room(leader, replica) {
            let take = batch_len(
                self.queued.iter().map(|p| &p.command),
                replica.config.max_batch,
                replica.config.max_batch_bytes,
            );
            let batch: Vec<Payload> = self.queued.drain(..take).collect();
            if batch.len() > 1 {
                replica.metrics.incr("batches");
                replica.metrics.add("batched_commands", batch.len() as u64);
            }
            replica.metrics.incr("instances_led");
            replica.metrics.add("commands_led", batch.len() as u64);
            leader.lead(replica, now, Batch::from(batch));
        }
    }
}

/// Whether fewer than `max_in_flight` own instances are proposed and uncommitted
/// (counted only when everything led here could be one), and the next own slot lies
/// less than `max_in_flight` above the first own slot not known committed (or above the
/// start of a rejoined replica's own instances): a replica that loses its disk starts
/// its new instances above every slot it could have used (docs/design.md#epaxos-rejoin-rule).
/// Nothing is proposed while a replica that lost its disk has not rejoined, nor by a
/// replica that is not a voter of its current epoch (a spare, a learner, a removed
/// replica: its requests wait; docs/design.md, "EPaxos epochs", rule 5).
fn has_room(leader: &mut Leadership, replica: &Replica) -> bool {
    if !replica.fence.may_propose() {
        return false;
    }
    if !replica
        .epochs
        .counts_vote(replica.epochs.current(), replica.id)
    {
        return false;
    }
    let limit = replica.config.max_in_flight;
    let window = leader.len() < limit || leader.own_in_flight(replica.id) < limit;
    let base = leader
        .own_prefix(replica)
        .max(replica.fence.own_start(replica.id));
    window && leader.next_slot() < base.saturating_add(limit as u64)
}
