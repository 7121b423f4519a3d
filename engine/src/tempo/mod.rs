//! Tempo: leaderless consensus by timestamps (Enes, Baquero, Gotsman, Sutra, EuroSys
//! 2021).
//!
//! ```text
//!  client ─▶ coordinator C: t = clock[key] + 1; persist; Propose ─▶ everyone
//!   fast quorum (⌊n/2⌋ + f, C included): t_j = max(t, clock_j[key] + 1); persist; ProposeAck ─▶ C
//!   C: t = max t_j; reported by >= f members ─▶ commit                  (1 round trip)
//!      otherwise Consensus(t) in ballot (1, C) ─▶ f + 1 accepts ─▶ commit (2 round trips)
//!   every replica: announces its clocks (promises); a timestamp is stable on a key once a
//!   majority promised everything up to it; committed commands run per key in
//!   (timestamp, dot) order once stable. No dependency graph.
//! ```
//! A command whose coordinator goes quiet is recovered by another replica with a higher
//! ballot, `n - f` answers and the rule in `recovery.rs`. The rules and where each is
//! enforced: docs/design.md#tempo.
//!
//! | file | concept |
//! |------|---------|
//! | `mod.rs` | [`Tempo`]: the parts, the dispatcher, timers, the `Protocol` impl |
//! | `replica.rs` | shared state: identity, quorums, command table, clocks, promises, executor; commit, execution |
//! | `coordinator.rs` | propose, fast and slow paths, retransmission |
//! | `acceptor.rs` | proposing in a fast quorum, accepting, recovery answers, promises |
//! | `recovery.rs` | recovery ballots and the timestamp rule |
//! | `clocks.rs` | own clocks and attached promises; the promise table and stability |
//! | `execution.rs` | per-key execution in timestamp order, sessions |
//! | `waits.rs` | own commands committed and waiting to execute, by dot and by key |
//! | `gc.rs` | announcements, executed reports, collection, catch-up, forgetting idle keys |
//! | `compaction.rs` | snapshots and log compaction |
//! | `rejoin.rs` | a replica that lost its disk: epochs, fences, state transfer (`fence.rs`: its value type) |
//! | `replay.rs` | rebuilding from durable records |
//! | `dots.rs` | command ids, epochs, command-id sets |
//! | `epochs.rs`, `membership.rs` | configuration epochs and their timestamp ranges; membership changes |
//! | `floors.rs` | floor promises: a switch closes its range on every key |
//! | `messages.rs`, `config.rs` | wire messages and records; options |

mod acceptor;
mod clocks;
mod compaction;
mod config;
mod coordinator;
mod dots;
mod epochs;
mod execution;
mod fence;
mod floors;
mod gc;
mod membership;
mod messages;
mod recovery;
mod rejoin;
mod replay;
mod replica;
mod waits;

#[cfg(test)]
mod announce_test;
#[cfg(test)]
mod answer_test;
#[cfg(test)]
mod cluster_test;
#[cfg(test)]
mod compaction_test;
#[cfg(test)]
mod coordinator_test;
#[cfg(test)]
mod forget_test;
#[cfg(test)]
mod membership_test;
#[cfg(test)]
mod model_check;
#[cfg(test)]
mod recovery_test;
#[cfg(test)]
mod rejoin_test;
#[cfg(test)]
mod test_support;

pub use config::TempoConfig;
pub use dots::{DotSet, EPOCH_BITS};
pub use epochs::Epochs;
pub use execution::ExecutedEntry;
pub use fence::{Fence, Stage};
pub use messages::{
    Ballot, Dot, FloorPromise, KeyPromise, Message, Payload, PeerState, RecReport, Record,
    RejoinState, Snapshot, SWITCH_LANE,
};

use crate::command::CommandResult;
use crate::configuration::{Change, ChangeOutcome, Configuration};
use crate::id::{NodeId, RequestId};
use crate::protocol::{Membership, Metrics, Output, Protocol};
use crate::request::{ClientReply, ClientRequest, Consistency, RequestError, Response};
use crate::time::Time;
use crate::timer::Timers;
use compaction::LastCompaction;
use coordinator::Drives;
use gc::Collector;
use rejoin::Rejoin;
use replica::Replica;

/// Tempo duties on the clock (docs/design.md#timers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum TempoTimer {
    /// Retransmissions and recoveries.
    Tick,
    /// Promise announcements.
    Promises,
    /// Executed reports, collection and compaction.
    Gc,
    /// A rejoin after a lost disk: queries and fetches retried (`rejoin.rs`).
    Rejoin,
}

/// One Tempo replica.
#[derive(Clone)]
pub struct Tempo {
    replica: Replica,
    drives: Drives,
    collector: Collector,
    timers: Timers<TempoTimer>,
    /// When lost announcements were last looked for.
    last_resend: Time,
    /// When the last compaction ran (when the next is due).
    last_compaction: LastCompaction,
    /// A rejoin after a lost disk, and answers served to peers that rejoin.
    rejoin: Rejoin,
}

impl Tempo {
    /// A replica of `cluster`, rebuilt from its durable `recovered` records. An `f` that
    /// does not suit the cluster is lowered to the largest that does (hosts check it
    /// first: [`TempoConfig::check`]). `seed` must differ from boot to boot: it names
    /// this boot's rejoin attempts and the lineage of its announcements.
    pub fn new(
        id: NodeId,
        cluster: &Membership,
        mut config: TempoConfig,
        seed: u64,
        recovered: Vec<Record>,
    ) -> Self {
        let n = Configuration::initial_of(cluster, config.initial_members.as_deref()).voter_count();
        if config.check(n).is_err() {
            config.f = n.saturating_sub(1) / 2;
            config.f = config.f.max(1);
        }
        let mut replica = Replica::new(id, cluster, config);
        // Before the replay: a boot's announcements are a lineage of their own.
        replica.clocks = clocks::Clocks::new(seed);
        let spare = recovered.is_empty() && !replica.members.contains(&id);
        let last_seq = replay::replay(&mut replica, recovered);
        if replica.fence.may_propose() && replica.fence.lost_state {
            // Removed before this restart (`left_configuration`).
            replica.removed = true;
        }
        // A rejoin (over or not) numbers our commands above its epoch's base, even if it
        // gave back a voter's stage (records intact) before we proposed any.
        let last_seq = last_seq.max(dots::epoch_base(replica.fence.epoch));
        let mut timers = Timers::new();
        let config = &replica.config;
        timers.set(TempoTimer::Tick, Time::ZERO + config.tick);
        timers.set(TempoTimer::Promises, Time::ZERO + config.promise_interval);
        timers.set(TempoTimer::Gc, Time::ZERO + config.gc_interval);
        let mut tempo = Self {
            replica,
            drives: Drives {
                last_seq,
                ..Drives::default()
            },
            collector: Collector::default(),
            timers,
            last_resend: Time::ZERO,
            last_compaction: LastCompaction::default(),
            rejoin: Rejoin::new(seed),
        };
        if spare {
            // Outside the first configuration and nothing on disk: a spare, or a replica
            // added later that lost its disk. Either way it fetches the members' state,
            // fenced, once a switch makes it a member (docs/design.md, "Tempo epochs").
            tempo.fence_for_rejoin(false);
        }
        tempo.resume_rejoin();
        tempo
    }

    /// The rejoin fence: what this replica may vote on after a lost disk.
    pub fn fence(&self) -> &Fence {
        &self.replica.fence
    }

    /// Every command executed here, in order.
    pub fn executed(&self) -> &[ExecutedEntry] {
        self.replica.executed()
    }

    /// The configurations and the range of timestamps each owns, as executed here.
    pub fn epochs(&self) -> &Epochs {
        self.replica.executor.epochs()
    }

    /// The key-value map as executed here.
    pub fn kv(&self) -> &crate::state_machine::KvStore {
        self.replica.executor.kv()
    }

    /// Commands held in memory.
    pub fn live_commands(&self) -> usize {
        self.replica.cmds.len()
    }

    /// The fast quorum this replica proposes to.
    pub fn fast_quorum(&self) -> &[NodeId] {
        &self.replica.fast_quorum
    }

    /// Run what became stable; propose again the own commands that were abandoned
    /// (their timestamps fell outside their epoch's range).
    fn settle(&mut self, now: Time) {
        self.replica.execute(now);
        for dot in std::mem::take(&mut self.replica.abandoned) {
            let r = &mut self.replica;
            let Some(payload) = r.cmds.get(&dot).and_then(|c| c.payload.clone()) else {
                continue;
            };
            if r.clients.remove(&dot).is_none() {
                continue;
            }
            r.metrics.incr("proposed_again");
            if !r.configuration().counts_vote(r.id) {
                let epoch = r.configuration().epoch();
                r.outbox.reply(ClientReply {
                    id: payload.request,
                    outcome: Err(not_a_voter(epoch)),
                });
                continue;
            }
            let request = ClientRequest {
                resend: payload.resend,
                ..ClientRequest::new(payload.request, payload.command)
            };
            coordinator::submit(r, &mut self.drives, now, request);
        }
    }

    fn dispatch(&mut self, now: Time, from: NodeId, message: Message) {
        let (r, drives) = (&mut self.replica, &mut self.drives);
        match message {
            Message::Propose { dot, .. } if r.is_stale(dot) => r.metrics.incr("stale_messages"),
            Message::Propose { dot, .. }
            | Message::Consensus { dot, .. }
            | Message::Rec { dot, .. }
                if !rejoin::may_vote(r, from, dot) => {}
            Message::Propose { dot, payload, ts } => {
                acceptor::on_propose(r, now, from, dot, payload, ts)
            }
            Message::ProposeAck { promise, .. } if !r.fence.current(from, promise.epoch) => {
                r.metrics.incr("stale_messages")
            }
            Message::ProposeAck { collected, .. } if !gc::executed_all(r, &collected) => {
                self.left_behind(now)
            }
            Message::ProposeAck {
                dot,
                ts,
                promise,
                lane,
                collected: _,
            } => coordinator::on_propose_ack(r, drives, now, from, dot, ts, (promise, lane)),
            Message::Consensus {
                dot,
                ballot,
                ts,
                payload,
            } => acceptor::on_consensus(r, now, from, dot, ballot, ts, payload),
            Message::ConsensusAck { dot, ballot } => {
                coordinator::on_consensus_ack(r, drives, now, from, dot, ballot)
            }
            Message::Commit { dot, payload, ts } => {
                drives.map.remove(&dot);
                r.commit(now, dot, payload, ts, None);
            }
            Message::Promises { collected, .. } if !gc::executed_all(r, &collected) => {
                self.left_behind(now)
            }
            Message::Promises { keys, .. } => acceptor::on_promises(r, from, &keys),
            Message::AskPromises { keys } => gc::on_ask_promises(r, from, keys),
            Message::Floors { promises } => floors::on_floors(r, promises),
            Message::AskFloors { ts } => floors::on_ask_floors(r, from, ts),
            Message::Inquire { dots } => gc::on_inquire(r, from, dots),
            Message::Collected { dots } => {
                if gc::behind_collection(r, &dots) {
                    self.left_behind(now);
                }
            }
            Message::Rec {
                dot,
                ballot,
                payload,
            } => acceptor::on_rec(r, now, from, dot, ballot, payload),
            Message::RecAck {
                dot,
                ballot,
                report,
            } => recovery::on_rec_ack(r, drives, now, from, dot, ballot, report),
            Message::Nack { dot, promised } => coordinator::on_nack(r, drives, now, dot, promised),
            Message::Durable { dot } if from == r.id => {
                if let Some(ts) = r.on_durable(dot) {
                    // A switch's commit: the floor is at least its timestamp now.
                    floors::on_switch_durable(r, ts);
                }
            }
            Message::Durable { .. } => r.metrics.incr("dropped_messages"),
            Message::Executed { epoch, .. } if !r.fence.current(from, epoch) => {
                r.metrics.incr("stale_messages")
            }
            Message::Executed { config_epoch, .. }
                if r.removed && from != r.id && config_epoch > r.configuration().epoch() =>
            {
                // Reports go to members only: a configuration newer than the one that
                // removed this replica added it again. Its state is behind what the
                // members collected without it: fetch theirs.
                r.removed = false;
                r.metrics.incr("readded_here");
                self.fence_for_rejoin(true);
                self.on_rejoin_timer(now);
            }
            Message::Executed { prefix, .. } => {
                gc::on_executed(r, drives, &mut self.collector, from, prefix)
            }
            Message::RejoinQuery { nonce } => self.on_rejoin_query(from, nonce),
            Message::RejoinBound {
                nonce,
                epoch,
                config_epoch,
                members,
            } => self.on_rejoin_bound(now, from, nonce, epoch, (config_epoch, members)),
            Message::RejoinFetch {
                nonce,
                epoch,
                at,
                offset,
            } => self.on_rejoin_fetch(now, from, nonce, epoch, (at, offset)),
            Message::RejoinChunk {
                nonce,
                at,
                offset,
                total,
                bytes,
            } => self.on_rejoin_chunk(now, from, nonce, (at, offset, total, bytes)),
        }
    }
}

impl Protocol for Tempo {
    type Message = Message;
    type Record = Record;

    fn id(&self) -> NodeId {
        self.replica.id
    }

    fn compacted(&mut self, bytes: u64) {
        compaction::note_compacted(&mut self.replica, &mut self.last_compaction, bytes);
    }

    fn handle_request(&mut self, now: Time, request: ClientRequest) {
        let r = &mut self.replica;
        let id = request.id;
        let refuse = |why: String| ClientReply {
            id,
            outcome: Err(RequestError::Invalid(why)),
        };
        match request.consistency {
            Consistency::Dynamo(level) => r.outbox.reply(refuse(format!(
                "consistency level {level} applies to Dynamo keyspaces; this keyspace runs Tempo \
                 (use linearizable or local reads)"
            ))),
            level @ (Consistency::Lease
            | Consistency::ReadIndex
            | Consistency::Follower
            | Consistency::Stale { .. }) => r.outbox.reply(refuse(format!(
                "read level {level} needs a leader (Multi-Paxos keyspaces); this keyspace runs \
                 Tempo (use linearizable or local reads)"
            ))),
            Consistency::LocalRead if request.command.is_read() && r.fence.executes() => {
                let result = r.executor.kv().read_only(&request.command);
                r.outbox.reply(ClientReply {
                    id,
                    outcome: Ok(Response::Kv(result.unwrap_or(CommandResult::Value(None)))),
                });
            }
            Consistency::Linearizable if request.command.prefix().is_some() => {
                r.outbox.reply(ClientReply {
                    id,
                    outcome: Err(RequestError::range_read_unordered("Tempo")),
                })
            }
            Consistency::LocalRead | Consistency::Linearizable
                if request.command.key().as_slice() == SWITCH_LANE =>
            {
                r.outbox.reply(refuse(
                    "Tempo keyspaces reserve the empty key (membership switches are ordered on \
                     it); use a non-empty key"
                        .to_owned(),
                ))
            }
            Consistency::LocalRead | Consistency::Linearizable
                if !r.configuration().counts_vote(r.id) =>
            {
                // Only voters coordinate (rule 1 of the epochs).
                let epoch = r.configuration().epoch();
                r.outbox.reply(ClientReply {
                    id,
                    outcome: Err(not_a_voter(epoch)),
                })
            }
            Consistency::LocalRead | Consistency::Linearizable if !r.fence.may_propose() => {
                self.queue_request(request)
            }
            Consistency::LocalRead | Consistency::Linearizable => {
                coordinator::submit(r, &mut self.drives, now, request)
            }
        }
        self.settle(now);
    }

    fn handle_message(&mut self, now: Time, from: NodeId, message: Message) {
        // Spares and removed replicas are heard too: a removed replica stays an acceptor
        // of its epochs' commands (rule 1 of the epochs).
        if !self.replica.cluster.contains(from) {
            self.replica.metrics.incr("dropped_messages");
            return;
        }
        self.replica.heard(from);
        self.dispatch(now, from, message);
        self.settle(now);
    }

    fn handle_timeout(&mut self, now: Time) {
        let config = self.replica.config.clone();
        if self.timers.take_if_due(TempoTimer::Promises, now) {
            let resend = now.saturating_since(self.last_resend) >= config.promise_resend;
            if resend {
                self.last_resend = now;
            }
            if self.replica.fence.may_propose() {
                gc::announce(&mut self.replica, false);
            }
            if resend && self.replica.fence.executes() {
                gc::ask_for_lost_promises(&mut self.replica);
                floors::ask_for_missing(&mut self.replica);
            }
            self.timers
                .set(TempoTimer::Promises, now + config.promise_interval);
        }
        if self.timers.take_if_due(TempoTimer::Tick, now) {
            let (r, drives) = (&mut self.replica, &mut self.drives);
            let mut stuck = coordinator::retransmit(r, drives, now);
            stuck.extend(recovery::due(r, drives, now));
            for dot in stuck {
                recovery::start(r, drives, now, dot);
            }
            self.timers.set(TempoTimer::Tick, now + config.tick);
        }
        if self.timers.take_if_due(TempoTimer::Gc, now) {
            gc::report(&mut self.replica);
            gc::forget_idle_keys(&mut self.replica);
            let last_seq = self.drives.last_seq;
            compaction::maybe_compact(&mut self.replica, &mut self.last_compaction, last_seq);
            self.timers.set(TempoTimer::Gc, now + config.gc_interval);
        }
        if self.timers.take_if_due(TempoTimer::Rejoin, now) {
            self.on_rejoin_timer(now);
        }
        membership::give_up_late_changes(&mut self.replica, now);
        self.settle(now);
    }

    fn poll_output(&mut self) -> Option<Output<Message, Record>> {
        self.replica.outbox.pop()
    }

    fn poll_timeout(&self) -> Option<Time> {
        self.timers.next()
    }

    fn metrics(&self) -> Metrics {
        let mut metrics = self.replica.metrics.clone();
        metrics.set("commands_live", self.replica.cmds.len() as u64);
        metrics.set("execution_waiting", self.replica.executor.backlog() as u64);
        let fence = &self.replica.fence;
        metrics.set(
            "rejoining",
            u64::from(!fence.may_propose() || !fence.executes()),
        );
        metrics.set("clock_keys", self.replica.clocks.key_count() as u64);
        metrics.set("promise_keys", self.replica.promises.key_count() as u64);
        metrics
    }

    fn rejoin(&mut self, now: Time) {
        self.begin_rejoin(now);
    }

    fn configuration(&self) -> Option<Configuration> {
        Some(self.replica.configuration().clone())
    }

    fn changes_membership(&self) -> bool {
        true
    }

    fn propose_change(&mut self, now: Time, request: RequestId, change: Change) {
        let parts = (&mut self.replica, &mut self.drives, &self.collector);
        membership::propose_change(parts, now, request, change);
        self.settle(now);
    }

    fn poll_change_outcome(&mut self) -> Option<ChangeOutcome> {
        self.replica.change_outcomes.pop_front()
    }
}

/// The answer to a client of a replica that is not a voter of `epoch`.
fn not_a_voter(epoch: u64) -> RequestError {
    RequestError::Rejected(format!(
        "this replica is not a voter of the keyspace (configuration epoch {epoch}): it is \
         joining, a learner or removed; send the request to a voter"
    ))
}
