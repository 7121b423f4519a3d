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
//! | `gc.rs` | announcements, executed reports, collection, catch-up |
//! | `replay.rs` | rebuilding from durable records |
//! | `dots.rs` | command-id sets |
//! | `messages.rs`, `config.rs` | wire messages and records; options |

mod acceptor;
mod clocks;
mod config;
mod coordinator;
mod dots;
mod execution;
mod gc;
mod messages;
mod recovery;
mod replay;
mod replica;

#[cfg(test)]
mod cluster_test;
#[cfg(test)]
mod coordinator_test;
#[cfg(test)]
mod model_check;
#[cfg(test)]
mod recovery_test;
#[cfg(test)]
mod test_support;

pub use config::TempoConfig;
pub use dots::DotSet;
pub use execution::ExecutedEntry;
pub use messages::{Ballot, Dot, KeyPromise, Message, Payload, RecReport, Record};

use crate::command::CommandResult;
use crate::id::NodeId;
use crate::protocol::{Membership, Metrics, Output, Protocol};
use crate::request::{ClientReply, ClientRequest, Consistency, RequestError, Response};
use crate::time::Time;
use crate::timer::Timers;
use coordinator::Drives;
use gc::Collector;
use replica::Replica;

/// Tempo duties on the clock (docs/design.md#timers).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
enum TempoTimer {
    /// Retransmissions and recoveries.
    Tick,
    /// Promise announcements.
    Promises,
    /// Executed reports and collection.
    Gc,
}

/// One Tempo replica.
#[derive(Clone)]
pub struct Tempo {
    replica: Replica,
    drives: Drives,
    collector: Collector,
    timers: Timers<TempoTimer>,
    /// When every live key was last announced.
    last_resend: Time,
}

impl Tempo {
    /// A replica of `cluster`, rebuilt from its durable `recovered` records. An `f` that
    /// does not suit the cluster is lowered to the largest that does (hosts check it
    /// first: [`TempoConfig::check`]).
    pub fn new(
        id: NodeId,
        cluster: &Membership,
        mut config: TempoConfig,
        _seed: u64,
        recovered: Vec<Record>,
    ) -> Self {
        let n = cluster.len();
        if config.check(n).is_err() {
            config.f = n.saturating_sub(1) / 2;
            config.f = config.f.max(1);
        }
        let mut replica = Replica::new(id, cluster, config);
        let last_seq = replay::replay(&mut replica, recovered);
        let mut timers = Timers::new();
        let config = &replica.config;
        timers.set(TempoTimer::Tick, Time::ZERO + config.tick);
        timers.set(TempoTimer::Promises, Time::ZERO + config.promise_interval);
        timers.set(TempoTimer::Gc, Time::ZERO + config.gc_interval);
        Self {
            replica,
            drives: Drives {
                last_seq,
                ..Drives::default()
            },
            collector: Collector::default(),
            timers,
            last_resend: Time::ZERO,
        }
    }

    /// Every command executed here, in order.
    pub fn executed(&self) -> &[ExecutedEntry] {
        self.replica.executed()
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

    fn dispatch(&mut self, now: Time, from: NodeId, message: Message) {
        let (r, drives) = (&mut self.replica, &mut self.drives);
        match message {
            Message::Propose { dot, payload, ts } => {
                acceptor::on_propose(r, now, from, dot, payload, ts)
            }
            Message::ProposeAck { dot, ts, promise } => {
                coordinator::on_propose_ack(r, drives, now, from, dot, ts, promise)
            }
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
            Message::Promises { keys } => acceptor::on_promises(r, from, keys),
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
            Message::Durable { dot } if from == r.id => r.on_durable(dot),
            Message::Durable { .. } => r.metrics.incr("dropped_messages"),
            Message::Executed { prefix } => {
                gc::on_executed(r, drives, &mut self.collector, from, prefix)
            }
        }
    }
}

impl Protocol for Tempo {
    type Message = Message;
    type Record = Record;

    fn id(&self) -> NodeId {
        self.replica.id
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
            Consistency::LocalRead if request.command.is_read() => {
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
            Consistency::LocalRead | Consistency::Linearizable => {
                coordinator::submit(r, &mut self.drives, now, request)
            }
        }
        self.replica.execute(now);
    }

    fn handle_message(&mut self, now: Time, from: NodeId, message: Message) {
        if !self.replica.members.contains(&from) {
            self.replica.metrics.incr("dropped_messages");
            return;
        }
        self.dispatch(now, from, message);
        self.replica.execute(now);
    }

    fn handle_timeout(&mut self, now: Time) {
        let config = self.replica.config.clone();
        if self.timers.take_if_due(TempoTimer::Promises, now) {
            let resend = now.saturating_since(self.last_resend) >= config.promise_resend;
            if resend {
                self.last_resend = now;
            }
            gc::announce(&mut self.replica, resend);
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
            self.timers.set(TempoTimer::Gc, now + config.gc_interval);
        }
        self.replica.execute(now);
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
        metrics
    }
}
